//! Simulator performance, as `BENCHMARKS.md` reports it:
//!
//! * event throughput on one core, against the event queue alone (the
//!   floor: the same pushes and pops with no model work);
//! * 100,000 peers running 1,000,000 workflow steps: wall time and peak
//!   memory;
//! * memory per peer, from 1,000 to 100,000 peers (each size measured in
//!   a fresh child process, so one size's freed memory does not hide
//!   another's);
//! * independent runs on one thread against two.
//!
//! `cargo bench -p errand-sim --bench sim` runs everything;
//! `-- quick` skips the million-step run.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::time::Instant;

use errand_core::trust::{Policy, RiskPolicy};
use errand_sim::model::{Params, World};
use errand_sim::scenario::{self, NoProgress, Options, Scenario};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn paper(workflows: usize) -> Params {
    Params {
        sybil_fraction: 0.2,
        policy: Policy::Risk(RiskPolicy::default()),
        workflows,
        ..Params::default()
    }
}

fn large(peers: usize, workflows: usize) -> Params {
    Params {
        peers,
        requesters: (peers / 100).max(10),
        workflows,
        ..paper(workflows)
    }
}

/// Events per second of one run on this thread, and the events.
fn throughput(p: &Params, seed: u64) -> (f64, u64) {
    let t = Instant::now();
    let m = World::new(p.clone(), seed).run(None);
    (m.events as f64 / t.elapsed().as_secs_f64(), m.events)
}

/// The floor: the textbook event queue alone, a binary heap holding 1,000
/// pending events, popping one and pushing one per event, no model work.
fn queue_floor(events: u64) -> f64 {
    use errand_core::trust::Entropy as _;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut rng = errand_core::trust::SplitMix(1);
    let t = Instant::now();
    let mut q: BinaryHeap<Reverse<(u64, u64, u32)>> = BinaryHeap::new();
    let mut now = 0u64;
    for i in 0..1_000u64 {
        q.push(Reverse((rng.below(5_000_000) as u64, i, 0)));
    }
    for i in 0..events {
        let Some(Reverse((tt, _, _))) = q.pop() else {
            break;
        };
        now = tt;
        q.push(Reverse((now + rng.below(200_000) as u64, i, 0)));
    }
    std::hint::black_box(now);
    events as f64 / t.elapsed().as_secs_f64()
}

fn child(args: &[&str]) -> String {
    let exe = std::env::current_exe().expect("bench executable");
    let out = Command::new(exe).args(args).output().expect("run child");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child-memory") {
        // RSS after building the world and one warm-up of publishing.
        let peers: usize = args[i + 1].parse().expect("peers");
        let before = status_kib("VmRSS:");
        let mut w = World::new(large(peers, 1), 1);
        w.advance_to(7_000);
        let after = status_kib("VmRSS:");
        std::hint::black_box(&w);
        println!("{}", (after.saturating_sub(before)) * 1024);
        return;
    }
    if args.iter().any(|a| a == "--child-million") {
        let p = large(100_000, 500_000);
        let t = Instant::now();
        let m = World::new(p.clone(), 1).run(None);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{} {} {} {:.1} {:.4}",
            m.workflows * p.steps as u64,
            m.events,
            status_kib("VmHWM:") * 1024,
            secs,
            m.success_rate()
        );
        return;
    }
    let quick = args.iter().any(|a| a == "quick");

    println!("## Event throughput, one core\n");
    println!("| run | events | events/s (median of 5) |\n|---|---|---|");
    let mut paper_rate = 0.0;
    for (label, p) in [
        (
            "paper setting: 100 peers, α = 0.2, risk-tiered, 50,000 workflows",
            paper(50_000),
        ),
        (
            "10,000 peers, 100 requesters, 20,000 workflows",
            large(10_000, 20_000),
        ),
        (
            "100,000 peers, 1,000 requesters, 20,000 workflows",
            large(100_000, 20_000),
        ),
    ] {
        let runs: Vec<(f64, u64)> = (0..5).map(|s| throughput(&p, s)).collect();
        let events = runs[0].1;
        let rate = median(runs.iter().map(|r| r.0).collect());
        if paper_rate == 0.0 {
            paper_rate = rate;
        }
        println!("| {label} | {events} | {:.2} M |", rate / 1e6);
    }
    let floors: Vec<f64> = (0..5).map(|_| queue_floor(5_000_000)).collect();
    let floor = median(floors);
    println!(
        "| floor: a binary-heap event queue alone (push + pop), 5,000,000 events | | {:.2} M |",
        floor / 1e6
    );
    println!(
        "\npaper setting / queue floor: {:.3} of the floor's rate\n",
        paper_rate / floor
    );

    println!("## Memory per peer\n");
    println!("| peers | RSS after warm-up | bytes per peer |\n|---|---|---|");
    let mut points = Vec::new();
    for peers in [1_000usize, 10_000, 100_000] {
        let bytes: f64 = child(&["--child-memory", &peers.to_string()])
            .trim()
            .parse()
            .expect("bytes");
        points.push((peers as f64, bytes));
        println!(
            "| {peers} | {:.1} MiB | {:.0} |",
            bytes / 1048576.0,
            bytes / peers as f64
        );
    }
    let (x0, y0) = points[0];
    let (x1, y1) = points[points.len() - 1];
    println!(
        "\nslope from 1,000 to 100,000 peers: {:.0} bytes per peer\n",
        (y1 - y0) / (x1 - x0)
    );

    println!("## Independent runs: one thread against two\n");
    let dir = std::env::temp_dir().join(format!("errand-sim-bench-{}", std::process::id()));
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..3 {
        for (slot, threads) in [(0usize, 1usize), (1, 2)] {
            let threads = if round % 2 == 0 { threads } else { 3 - threads };
            let slot = if round % 2 == 0 { slot } else { 1 - slot };
            let opts = Options {
                runs: Some(4),
                threads,
                sets: scenario::parse_sets(&[
                    "workflows=3000".into(),
                    "alpha=0,0.2,0.4".into(),
                    "policies=none,risk".into(),
                ])
                .expect("settings"),
                ..Options::new(dir.clone())
            };
            let t = Instant::now();
            scenario::run(Scenario::SybilSweep, &opts, &NoProgress).expect("scenario");
            times[slot].push(t.elapsed().as_secs_f64());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (one, two) = (median(times[0].clone()), median(times[1].clone()));
    println!("| threads | wall time (median of 3, alternating) |\n|---|---|");
    println!("| 1 | {one:.2} s |\n| 2 | {two:.2} s |");
    println!(
        "\nspeed-up with two threads: {:.2}x (on {} cores)\n",
        one / two,
        std::thread::available_parallelism().map_or(1, usize::from)
    );

    if !quick {
        println!("## 100,000 peers, 1,000,000 workflow steps\n");
        let out = child(&["--child-million"]);
        let v: Vec<&str> = out.split_whitespace().collect();
        println!(
            "{} steps, {} events in {} s on one core; peak RSS {:.0} MiB; success {}",
            v[0],
            v[1],
            v[3],
            v[2].parse::<f64>().unwrap_or(0.0) / 1048576.0,
            v[4]
        );
    }
}
