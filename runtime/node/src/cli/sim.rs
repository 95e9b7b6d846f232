//! `errand sim`: the discrete-event simulator's scenarios.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use errand_sim::scenario::{self, Options, Progress, RunRate, SETTINGS, Scenario};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `errand sim`.
#[derive(Debug, Args)]
#[command(after_long_help = settings_help())]
pub struct SimArgs {
    /// sybil-sweep, size-sweep, ttl-sweep, drift-sweep or paper.
    scenario: String,
    /// Output directory [default: docs/evaluation for paper, else sim-results/SCENARIO].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Base seed: the same seed and settings give the same output files.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Independent runs per point [default: 10; at most 3 from 10,000 peers, 2 from 1,000,000].
    #[arg(long)]
    runs: Option<usize>,
    /// Override a setting, e.g. `--set alpha=0,0.25,0.5 --set workflows=500`
    /// (repeatable; see the list below).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Threads for independent runs [default: every core].
    #[arg(long)]
    threads: Option<usize>,
}

fn settings_help() -> String {
    let mut s = String::from("Settings for --set:\n");
    for (k, what) in SETTINGS {
        s.push_str(&format!("  {k:<18} {what}\n"));
    }
    s
}

/// The command line, less the options that do not change results
/// (`--out`, `--threads`), as recorded in the outputs.
fn recorded_command() -> String {
    let mut out = vec!["errand".to_owned()];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--out" || a == "--threads" {
            args.next();
            continue;
        }
        if a.starts_with("--out=") || a.starts_with("--threads=") {
            continue;
        }
        out.push(if a.contains(' ') { format!("'{a}'") } else { a });
    }
    out.join(" ")
}

/// A progress bar on stderr (drawn only on a terminal).
struct Bar(Mutex<Option<ProgressBar>>);

impl Progress for Bar {
    fn begin(&self, phase: &str, total: u64) {
        let bar = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>24} [{bar:40}] {pos}/{len} workflows, {elapsed} (eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(phase.to_owned());
        bar.enable_steady_tick(Duration::from_millis(250));
        if let Ok(mut b) = self.0.lock() {
            *b = Some(bar);
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(b) = self.0.lock()
            && let Some(b) = b.as_ref()
        {
            b.inc(n);
        }
    }

    fn end(&self) {
        if let Ok(mut b) = self.0.lock()
            && let Some(b) = b.take()
        {
            b.finish_and_clear();
        }
    }
}

/// Runs listed one per line; above this, a summary of their rates.
const RUNS_LISTED: usize = 60;

/// Each run's events and events per second (one run is one thread), on
/// stderr: one line per run, or for more than [`RUNS_LISTED`] runs the
/// median and range.
fn print_rates(runs: &[RunRate]) {
    if runs.len() <= RUNS_LISTED {
        for r in runs {
            eprintln!(
                "run {} {} {}={} #{}: {} events in {:.2} s, {:.2} M events/s",
                r.sweep,
                r.series,
                r.x_label,
                r.x,
                r.run + 1,
                r.events,
                r.seconds,
                r.events_per_second() / 1e6
            );
        }
        return;
    }
    let mut rates: Vec<f64> = runs.iter().map(RunRate::events_per_second).collect();
    rates.sort_by(f64::total_cmp);
    let mut events: Vec<u64> = runs.iter().map(|r| r.events).collect();
    events.sort_unstable();
    let (Some(lo), Some(hi)) = (rates.first(), rates.last()) else {
        return;
    };
    eprintln!(
        "{} runs: {} to {} events per run (median {}); per run {:.2} M events/s median ({:.2} to {:.2} M)",
        runs.len(),
        events[0],
        events[events.len() - 1],
        events[events.len() / 2],
        rates[rates.len() / 2] / 1e6,
        lo / 1e6,
        hi / 1e6
    );
}

pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    let which = Scenario::parse(&args.scenario)?;
    let out = args.out.unwrap_or_else(|| match which {
        Scenario::Paper => PathBuf::from("docs/evaluation"),
        s => PathBuf::from("sim-results").join(s.name()),
    });
    let mut opts = Options::new(out);
    opts.seed = args.seed;
    opts.runs = args.runs;
    if let Some(t) = args.threads {
        opts.threads = t;
    }
    opts.sets = scenario::parse_sets(&args.sets)?;
    opts.command = recorded_command();
    let started = Instant::now();
    let outcome = scenario::run(which, &opts, &Bar(Mutex::new(None)))?;
    let secs = started.elapsed().as_secs_f64();
    if which == Scenario::Paper {
        let findings = outcome
            .summary
            .split("## Findings")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .unwrap_or("");
        outln!("Findings{findings}");
    } else {
        outln!("{}", outcome.summary);
    }
    outln!("wrote:");
    for f in &outcome.files {
        outln!("  {}", f.display());
    }
    print_rates(&outcome.runs);
    eprintln!(
        "simulated {} events in {:.1} s on {} threads ({:.2} M events/s)",
        outcome.events,
        secs,
        opts.threads,
        outcome.events as f64 / secs.max(1e-9) / 1e6
    );
    Ok(ExitCode::SUCCESS)
}
