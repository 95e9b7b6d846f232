//! Running a sweep: jobs over threads, each run's seed, and what each
//! run contributes to the tables.

use std::time::Instant;

use super::*;

/// What one run contributes to the tables.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct RunResult {
    pub(super) success: f64,
    pub(super) wrong: f64,
    pub(super) stale_failures: f64,
    pub(super) stale_hit_rate: f64,
    pub(super) latency_p50: f64,
    pub(super) discovery_p50: f64,
    pub(super) discovery_p95: f64,
    pub(super) control_msgs: f64,
    pub(super) control_bytes: f64,
    pub(super) publish_msgs: f64,
    pub(super) publish_share: f64,
    pub(super) discovery_share: f64,
    pub(super) verify_share: f64,
    pub(super) fallbacks: f64,
    /// Wider discovery rounds per workflow.
    pub(super) wider_rounds: f64,
    pub(super) analytic: f64,
    /// Replays per workflow.
    pub(super) replays: f64,
    /// Inconclusive replays (failed on the requester's side) per replay.
    pub(super) inconclusive_share: f64,
    /// Receipts rejected because they name other parameters, per workflow.
    pub(super) params_rejections: f64,
    /// Honest executors banned (must stay 0).
    pub(super) honest_banned: f64,
    pub(super) events: u64,
    /// Wall time of the run, building the world included (never written
    /// to the outputs).
    pub(super) seconds: f64,
}

/// Reads one metric from a run.
pub(super) type Metric = fn(&RunResult) -> f64;

pub(super) const METRICS: [(&str, Metric); 20] = [
    ("success", |r| r.success),
    ("wrong_accepted", |r| r.wrong),
    ("stale_failures", |r| r.stale_failures),
    ("stale_hit_rate", |r| r.stale_hit_rate),
    ("latency_p50_ms", |r| r.latency_p50),
    ("discovery_p50_ms", |r| r.discovery_p50),
    ("discovery_p95_ms", |r| r.discovery_p95),
    ("control_msgs_per_peer_s", |r| r.control_msgs),
    ("control_bytes_per_peer_s", |r| r.control_bytes),
    ("publish_msgs_per_peer_s", |r| r.publish_msgs),
    ("publish_share", |r| r.publish_share),
    ("discovery_share", |r| r.discovery_share),
    ("verify_share", |r| r.verify_share),
    ("fallbacks_per_workflow", |r| r.fallbacks),
    ("wider_rounds_per_workflow", |r| r.wider_rounds),
    ("analytic_random_success", |r| r.analytic),
    ("replays_per_workflow", |r| r.replays),
    ("replay_inconclusive_share", |r| r.inconclusive_share),
    ("params_rejections_per_workflow", |r| r.params_rejections),
    ("honest_banned", |r| r.honest_banned),
];

pub(super) fn summarise(p: &Params, m: &Metrics, analytic: f64) -> RunResult {
    let wf = m.workflows.max(1) as f64;
    let peer_s = p.peers as f64 * (m.simulated_ms / 1e3).max(1e-9);
    RunResult {
        success: m.successes as f64 / wf,
        wrong: m.wrong_accepted as f64 / wf,
        stale_failures: m.stale_failures as f64 / wf,
        stale_hit_rate: m.stale_hits as f64 / m.invocations.max(1) as f64,
        latency_p50: quantile(&m.latencies_ms, 0.5),
        discovery_p50: quantile(&m.discovery_ms, 0.5),
        discovery_p95: quantile(&m.discovery_ms, 0.95),
        control_msgs: m.control_messages() as f64 / peer_s,
        control_bytes: m.control_bytes() as f64 / peer_s,
        publish_msgs: m.publish_messages as f64 / peer_s,
        publish_share: m.publish_messages as f64 / m.control_messages().max(1) as f64,
        discovery_share: m.discovery_messages as f64 / m.control_messages().max(1) as f64,
        verify_share: m.verify_messages as f64 / m.control_messages().max(1) as f64,
        fallbacks: m.fallbacks as f64 / wf,
        wider_rounds: m.wider_rounds as f64 / wf,
        analytic,
        replays: m.replays as f64 / wf,
        inconclusive_share: if m.replays == 0 {
            f64::NAN
        } else {
            m.replay_inconclusive as f64 / m.replays as f64
        },
        params_rejections: m.params_mismatches as f64 / wf,
        honest_banned: m.honest_banned as f64,
        events: m.events,
        seconds: 0.0,
    }
}

pub(super) fn seed_for(base: u64, sweep: &str, xi: usize, run: usize) -> u64 {
    let d = Digest::of_parts(&[
        b"errand-sim/seed",
        &base.to_le_bytes(),
        sweep.as_bytes(),
        &(xi as u64).to_le_bytes(),
        &(run as u64).to_le_bytes(),
    ]);
    u64::from_le_bytes([
        d.0[0], d.0[1], d.0[2], d.0[3], d.0[4], d.0[5], d.0[6], d.0[7],
    ])
}

/// Runs `jobs` on `threads` threads; results come back in job order.
pub(super) fn execute(
    jobs: &[(Params, u64)],
    threads: usize,
    progress: &dyn Progress,
) -> Vec<RunResult> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((p, seed)) = jobs.get(i) else { break };
                    let started = Instant::now();
                    let world = World::new(p.clone(), *seed);
                    let analytic = analytic_random_success(world.providers(), p.steps);
                    let mut seen = 0;
                    let m = world.run_observed(None, &mut |done| {
                        progress.advance(done.saturating_sub(seen));
                        seen = done;
                    });
                    let mut r = summarise(p, &m, analytic);
                    drop(m);
                    r.seconds = started.elapsed().as_secs_f64();
                    if let Ok(mut v) = results.lock() {
                        v[i] = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect()
}

/// One sweep: series × points, each run `runs[xi]` times.
pub(super) struct Sweep {
    pub(super) name: String,
    pub(super) title: String,
    pub(super) x_label: &'static str,
    pub(super) xs: Vec<f64>,
    pub(super) runs: Vec<usize>,
    /// Series label and its parameters at each point.
    pub(super) series: Vec<(String, Vec<Params>)>,
}

/// Results: per series, per point, the runs.
pub(super) struct Table {
    pub(super) sweep: Sweep,
    pub(super) cells: Vec<Vec<Vec<RunResult>>>,
}

impl Table {
    pub(super) fn est(&self, s: usize, xi: usize, f: fn(&RunResult) -> f64) -> Estimate {
        let xs: Vec<f64> = self.cells[s][xi]
            .iter()
            .map(f)
            .filter(|x| x.is_finite())
            .collect();
        estimate(&xs)
    }

    pub(super) fn series_index(&self, label: &str) -> Option<usize> {
        self.sweep.series.iter().position(|(l, _)| l == label)
    }

    /// Each run's events and wall time, in sweep order.
    pub(super) fn rates(&self) -> Vec<RunRate> {
        let mut out = Vec::new();
        for (s, (label, _)) in self.sweep.series.iter().enumerate() {
            for (xi, x) in self.sweep.xs.iter().enumerate() {
                for (run, r) in self.cells[s][xi].iter().enumerate() {
                    out.push(RunRate {
                        sweep: self.sweep.name.clone(),
                        series: label.clone(),
                        x_label: self.sweep.x_label.to_owned(),
                        x: *x,
                        run,
                        events: r.events,
                        seconds: r.seconds,
                    });
                }
            }
        }
        out
    }

    pub(super) fn points(&self, s: usize, f: fn(&RunResult) -> f64) -> Vec<(f64, f64, f64, f64)> {
        (0..self.sweep.xs.len())
            .map(|xi| {
                let e = self.est(s, xi, f);
                (self.sweep.xs[xi], e.mean, e.low, e.high)
            })
            .filter(|p| p.1.is_finite())
            .collect()
    }
}

pub(super) fn run_sweep(sweep: Sweep, opts: &Options, progress: &dyn Progress) -> Table {
    let mut jobs = Vec::new();
    let mut total = 0u64;
    for (_, params) in &sweep.series {
        for (xi, p) in params.iter().enumerate() {
            for run in 0..sweep.runs[xi] {
                jobs.push((p.clone(), seed_for(opts.seed, &sweep.name, xi, run)));
                total += p.workflows as u64;
            }
        }
    }
    progress.begin(&sweep.name, total);
    let results = execute(&jobs, opts.threads, progress);
    progress.end();
    let mut it = results.into_iter();
    let cells = sweep
        .series
        .iter()
        .map(|(_, params)| {
            (0..params.len())
                .map(|xi| it.by_ref().take(sweep.runs[xi]).collect())
                .collect()
        })
        .collect();
    Table { sweep, cells }
}

pub(super) fn runs_or(opts: &Options, default: usize) -> usize {
    opts.runs.unwrap_or(default).max(1)
}

/// One series per policy choice, with `set` applied at each x.
pub(super) fn per_policy(
    st: &Settings,
    xs: &[f64],
    set: impl Fn(&mut Params, f64),
) -> Vec<(String, Vec<Params>)> {
    st.choices()
        .iter()
        .map(|c| {
            let params = xs
                .iter()
                .map(|x| {
                    let mut p = Params {
                        policy: c.policy,
                        selection: c.selection,
                        ..st.base.clone()
                    };
                    set(&mut p, *x);
                    p
                })
                .collect();
            (c.label.to_owned(), params)
        })
        .collect()
}
