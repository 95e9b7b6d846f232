//! The scenarios behind `errand sim`: sweeps over one parameter, several
//! independent runs per point, results with 95% confidence intervals.
//!
//! | scenario | sweeps | reports |
//! |---|---|---|
//! | `sybil-sweep` | Sybil fraction α, 0 to 0.5, per policy | workflow success, latency, fallbacks |
//! | `size-sweep` | peers, 20 to 200 then to 1,000,000 | discovery latency p50/p95, control messages and bytes per peer per second |
//! | `ttl-sweep` | descriptor TTL under high drift (refresh at TTL/3) | failures from stale descriptors, refresh overhead, the knee |
//! | `drift-sweep` | drift rate λ, per policy | workflow success |
//! | `paper` | all four, paper-sized, plus smarter attackers | `REPORT.md` stating agreement with the paper |
//!
//! Every scenario writes, into its output directory, `<name>.csv` (one row
//! per series and point, every metric with its interval), `<name>-*.svg`
//! figures and `<name>.md`. Outputs hold no wall-clock times, so the same
//! seed and settings give the same bytes. Runs are spread over threads;
//! each run's seed depends only on the base seed, the sweep, the point and
//! the run number, never on scheduling. Series at the same point share
//! seeds (common random numbers), so policies are compared on the same
//! worlds.
//!
//! ## Where each part lives
//!
//! | file | part |
//! |---|---|
//! | `scenario/mod.rs` | [`Scenario`], [`Options`], [`run`] |
//! | `scenario/settings.rs` | `--set` settings and the policies compared |
//! | `scenario/runs.rs` | running sweeps over threads, seeds, what each run contributes |
//! | `scenario/report.rs` | CSV, figures and Markdown tables |
//! | `scenario/sybil.rs`, `size.rs`, `ttl.rs`, `drift.rs` | each sweep and its report |
//! | `scenario/paper.rs` | the `paper` report and its findings |

mod drift;
mod paper;
mod report;
mod runs;
mod settings;
mod size;
mod sybil;
mod ttl;

// What the parts below share: each `use super::*`.
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use errand_core::Digest;
use errand_core::trust::{Policy, RiskPolicy, TierSet};

use crate::model::{
    Attack, Metrics, Params, RegistryRanking, Selection, World, analytic_random_success,
};
use crate::plot::{Chart, Series, line_chart};
use crate::stats::{Estimate, balance, estimate, knee_decreasing, quantile};

pub use settings::{SETTINGS, parse_sets};

use drift::{drift_report, drift_sweep};
use paper::paper;
use report::*;
use runs::*;
use settings::{Choice, Settings};
use size::{size_report, size_sweep};
use sybil::{sybil_report, sybil_sweep};
use ttl::{TtlFindings, ttl_report, ttl_sweep};

/// A scenario (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// Success against the Sybil fraction, per policy.
    SybilSweep,
    /// Discovery latency and control overhead against network size.
    SizeSweep,
    /// Stale failures and refresh overhead against TTL.
    TtlSweep,
    /// Success against the drift rate, per policy.
    DriftSweep,
    /// All of the above, paper-sized, and the report.
    Paper,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 5] = [
        Scenario::SybilSweep,
        Scenario::SizeSweep,
        Scenario::TtlSweep,
        Scenario::DriftSweep,
        Scenario::Paper,
    ];

    /// Parses a scenario name.
    pub fn parse(s: &str) -> Result<Scenario, SimError> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| SimError::UnknownScenario(s.to_owned()))
    }

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::SybilSweep => "sybil-sweep",
            Scenario::SizeSweep => "size-sweep",
            Scenario::TtlSweep => "ttl-sweep",
            Scenario::DriftSweep => "drift-sweep",
            Scenario::Paper => "paper",
        }
    }
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario name is not one of ours.
    #[error(
        "unknown scenario `{0}`: expected sybil-sweep, size-sweep, ttl-sweep, drift-sweep or paper"
    )]
    UnknownScenario(String),
    /// A `--set` argument is not `key=value`.
    #[error("`--set {0}` is not key=value")]
    MalformedSet(String),
    /// A `--set` key is not a setting.
    #[error("unknown setting `{key}`; settings are: {known}")]
    UnknownSetting {
        /// The key given.
        key: String,
        /// The settings there are.
        known: String,
    },
    /// A `--set` value does not parse or is out of range.
    #[error("setting `{key}`: `{value}` is not {expected}")]
    BadValue {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// What it should be.
        expected: String,
    },
    /// Runs or threads were zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// An output file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A figure could not be drawn.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
}

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base seed.
    pub seed: u64,
    /// Runs per point (default: each scenario's own, 10 for the paper).
    pub runs: Option<usize>,
    /// Threads for independent runs.
    pub threads: usize,
    /// `--set key=value` overrides, in order.
    pub sets: Vec<(String, String)>,
    /// Output directory.
    pub out: PathBuf,
    /// The command line, recorded in the outputs.
    pub command: String,
}

impl Options {
    /// Defaults: seed 1, every core, no overrides.
    pub fn new(out: PathBuf) -> Options {
        Options {
            seed: 1,
            runs: None,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            sets: Vec::new(),
            out,
            command: String::new(),
        }
    }
}

/// Where a long run reports progress (the CLI draws a bar).
pub trait Progress: Sync {
    /// A phase begins that will finish `total` workflows.
    fn begin(&self, phase: &str, total: u64);
    /// `n` more workflows finished.
    fn advance(&self, n: u64);
    /// The phase ended.
    fn end(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}

/// What a scenario wrote.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// The Markdown summary (also written to disk).
    pub summary: String,
    /// Events simulated, over every run.
    pub events: u64,
    /// Each run's events and wall time, in the order the sweeps list them.
    pub runs: Vec<RunRate>,
}

/// One run's size and speed: what `errand sim` prints so that anyone can
/// check the simulator's rate. Wall times vary, so they are never written
/// to the output files.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRate {
    /// The sweep (`sybil-sweep`, …).
    pub sweep: String,
    /// The series (a policy).
    pub series: String,
    /// What the sweep varies.
    pub x_label: String,
    /// The point.
    pub x: f64,
    /// The run's number at that point, from 0.
    pub run: usize,
    /// Events processed.
    pub events: u64,
    /// Wall time on one thread, building the world included.
    pub seconds: f64,
}

impl RunRate {
    /// Events per second on one thread.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

/// Each scenario's defaults before `--set`.
fn defaults(s: Scenario) -> Params {
    match s {
        // High drift: each capability changes every 20 s on average.
        Scenario::TtlSweep => Params {
            drift_rate: 0.05,
            ..Params::default()
        },
        _ => Params::default(),
    }
}

fn settings(s: Scenario, opts: &Options) -> Result<Settings, SimError> {
    let mut st = Settings::new(defaults(s));
    match s {
        Scenario::SizeSweep => st.policies = vec!["risk".into()],
        Scenario::TtlSweep => st.policies = vec!["none".into(), "risk".into()],
        Scenario::SybilSweep => st.policies.push("none-random".into()),
        _ => {}
    }
    st.apply(&opts.sets)?;
    // A scalar setting that names a sweep axis fixes the axis for other
    // scenarios (alpha=0.2 in drift-sweep), but the sweep's own axis keeps
    // its list.
    Ok(st)
}

fn header(opts: &Options) -> String {
    format!(
        "Made by `{}` (seed {}).\n\n",
        if opts.command.is_empty() {
            "errand sim"
        } else {
            &opts.command
        },
        opts.seed
    )
}

/// Runs `scenario` and writes its outputs into `opts.out`.
pub fn run(
    scenario: Scenario,
    opts: &Options,
    progress: &dyn Progress,
) -> Result<Outcome, SimError> {
    if opts.runs == Some(0) {
        return Err(SimError::Zero("--runs"));
    }
    if opts.threads == 0 {
        return Err(SimError::Zero("--threads"));
    }
    std::fs::create_dir_all(&opts.out).map_err(|source| SimError::Io {
        path: opts.out.clone(),
        source,
    })?;
    let mut w = Writer {
        dir: &opts.out,
        files: Vec::new(),
    };
    let (summary, runs) = match scenario {
        Scenario::SybilSweep => {
            let t = run_sweep(
                sybil_sweep("sybil-sweep", &settings(scenario, opts)?, opts),
                opts,
                progress,
            );
            (header(opts) + &sybil_report(&t, &mut w)?, t.rates())
        }
        Scenario::SizeSweep => {
            let t = run_sweep(size_sweep(&settings(scenario, opts)?, opts), opts, progress);
            (header(opts) + &size_report(&t, &mut w)?, t.rates())
        }
        Scenario::TtlSweep => {
            let t = run_sweep(ttl_sweep(&settings(scenario, opts)?, opts), opts, progress);
            (header(opts) + &ttl_report(&t, &mut w)?.0, t.rates())
        }
        Scenario::DriftSweep => {
            let t = run_sweep(
                drift_sweep(&settings(scenario, opts)?, opts),
                opts,
                progress,
            );
            (header(opts) + &drift_report(&t, &mut w)?, t.rates())
        }
        Scenario::Paper => paper(opts, &mut w, progress)?,
    };
    Ok(Outcome {
        files: w.files,
        summary,
        events: runs.iter().map(|r| r.events).sum(),
        runs,
    })
}
