//! Paired A/B timing for benchmarks on a shared, noisy machine.
//!
//! Criterion measures one benchmark after another, so a neighbour's load that
//! comes and goes between two benchmarks shows up as a difference between
//! them. For ratios ("ours against the baseline") we instead interleave: each
//! round times a block of the baseline and a block of ours back to back, in
//! alternating order, and the ratio is taken per round. The median of the
//! per-round ratios is robust to load that changes between rounds.
//!
//! ```
//! let r = benchkit::paired(20, 100, || { std::hint::black_box(1 + 1); }, || { std::hint::black_box(2 + 2); });
//! assert!(r.ratio_median > 0.0);
//! println!("{}", r.row("add", "add"));
//! ```

use std::time::Instant;

/// The result of a paired comparison.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// Median nanoseconds per iteration of the baseline.
    pub base_ns: f64,
    /// Median nanoseconds per iteration of ours.
    pub ours_ns: f64,
    /// Median over rounds of ours / baseline.
    pub ratio_median: f64,
    /// 10th percentile of the per-round ratio.
    pub ratio_p10: f64,
    /// 90th percentile of the per-round ratio.
    pub ratio_p90: f64,
}

impl Paired {
    /// A Markdown table row: `| what | base | ours | ratio (p10–p90) |`.
    pub fn row(&self, base_name: &str, ours_name: &str) -> String {
        format!(
            "| {ours_name} vs {base_name} | {} | {} | {:.3} ({:.3}–{:.3}) |",
            fmt_ns(self.base_ns),
            fmt_ns(self.ours_ns),
            self.ratio_median,
            self.ratio_p10,
            self.ratio_p90
        )
    }

    /// Throughput of ours relative to the baseline (1 / ratio).
    pub fn relative_throughput(&self) -> f64 {
        1.0 / self.ratio_median
    }
}

/// Formats nanoseconds with a sensible unit.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn time_block(iters: usize, f: &mut impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Interleaves `rounds` blocks of `iters` calls of `base` and `ours`.
pub fn paired(
    rounds: usize,
    iters: usize,
    mut base: impl FnMut(),
    mut ours: impl FnMut(),
) -> Paired {
    // Warm up both.
    time_block(iters.div_ceil(4).max(1), &mut base);
    time_block(iters.div_ceil(4).max(1), &mut ours);
    let mut b = Vec::with_capacity(rounds);
    let mut o = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (tb, to) = if round % 2 == 0 {
            let tb = time_block(iters, &mut base);
            (tb, time_block(iters, &mut ours))
        } else {
            let to = time_block(iters, &mut ours);
            (time_block(iters, &mut base), to)
        };
        b.push(tb);
        o.push(to);
        ratios.push(to / tb);
    }
    let sort = |v: &mut Vec<f64>| v.sort_by(f64::total_cmp);
    sort(&mut b);
    sort(&mut o);
    sort(&mut ratios);
    Paired {
        base_ns: percentile(&b, 0.5),
        ours_ns: percentile(&o, 0.5),
        ratio_median: percentile(&ratios, 0.5),
        ratio_p10: percentile(&ratios, 0.1),
        ratio_p90: percentile(&ratios, 0.9),
    }
}

/// Times `f` over `rounds` blocks of `iters` calls; returns the median
/// nanoseconds per call and the (p10, p90) spread.
pub fn single(rounds: usize, iters: usize, mut f: impl FnMut()) -> (f64, f64, f64) {
    time_block(iters.div_ceil(4).max(1), &mut f);
    let mut v: Vec<f64> = (0..rounds).map(|_| time_block(iters, &mut f)).collect();
    v.sort_by(f64::total_cmp);
    (
        percentile(&v, 0.5),
        percentile(&v, 0.1),
        percentile(&v, 0.9),
    )
}

/// Prints a Markdown table header for [`Paired::row`].
pub fn header() -> &'static str {
    "| comparison | baseline | ours | ours/baseline median (p10–p90) |\n|---|---|---|---|"
}

/// Interleaves blocks of `iters` calls of every function in `fns`, for
/// `rounds` rounds (rotating the order each round). Returns, per function,
/// the nanoseconds per call of each round, in round order.
pub fn interleaved(rounds: usize, iters: usize, fns: &mut [&mut dyn FnMut()]) -> Vec<Vec<f64>> {
    for f in fns.iter_mut() {
        time_block(iters.div_ceil(4).max(1), f);
    }
    let n = fns.len();
    let mut out = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let t = time_block(iters, &mut fns[i]);
            out[i].push(t);
        }
    }
    out
}

/// The median of `v`.
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    percentile(&s, 0.5)
}

/// The `p` quantile (0..=1) of `v`.
pub fn quantile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    percentile(&s, p)
}
