//! Output: files and figures, CSV, and the Markdown tables and notes
//! every report shares.

use super::*;

pub(super) struct Writer<'a> {
    pub(super) dir: &'a Path,
    pub(super) files: Vec<PathBuf>,
}

impl Writer<'_> {
    pub(super) fn file(&mut self, name: &str, text: &str) -> Result<(), SimError> {
        let path = self.dir.join(name);
        std::fs::write(&path, text).map_err(|source| SimError::Io {
            path: path.clone(),
            source,
        })?;
        self.files.push(path);
        Ok(())
    }

    pub(super) fn chart(
        &mut self,
        name: &str,
        chart: &Chart<'_>,
        series: &[Series],
    ) -> Result<(), SimError> {
        let path = self.dir.join(name);
        line_chart(&path, chart, series).map_err(|message| SimError::Plot {
            path: path.clone(),
            message,
        })?;
        self.files.push(path);
        Ok(())
    }
}

pub(super) fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

pub(super) fn csv(t: &Table) -> String {
    let mut out = String::from("series,x,runs");
    for (name, _) in METRICS {
        let _ = write!(out, ",{name},{name}_low,{name}_high");
    }
    out.push('\n');
    for (s, (label, _)) in t.sweep.series.iter().enumerate() {
        for (xi, x) in t.sweep.xs.iter().enumerate() {
            let _ = write!(out, "{label},{},{}", num(*x), t.cells[s][xi].len());
            for (_, f) in METRICS {
                let e = t.est(s, xi, f);
                let _ = write!(out, ",{},{},{}", num(e.mean), num(e.low), num(e.high));
            }
            out.push('\n');
        }
    }
    out
}

/// A proportion as a percentage, its interval clipped to 0–100% (the
/// t-interval of a proportion near 0 or 1 can reach past them; the CSV
/// keeps it unclipped).
pub(super) fn pct(e: Estimate) -> String {
    if !e.mean.is_finite() {
        return "n/a".into();
    }
    let e = Estimate {
        mean: e.mean,
        low: e.low.clamp(0.0, 1.0),
        high: e.high.clamp(0.0, 1.0),
    };
    if e.high - e.low < 1e-9 {
        return format!("{:.1}%", e.mean * 100.0);
    }
    format!(
        "{:.1}% [{:.1}, {:.1}]",
        e.mean * 100.0,
        e.low * 100.0,
        e.high * 100.0
    )
}

pub(super) fn val(e: Estimate, unit: &str) -> String {
    if !e.mean.is_finite() {
        return "n/a".into();
    }
    let digits = if e.mean.abs() >= 100.0 {
        0
    } else if e.mean.abs() >= 10.0 {
        1
    } else {
        2
    };
    if e.high - e.low < 1e-9 {
        return format!("{:.*}{unit}", digits, e.mean);
    }
    format!(
        "{:.*}{unit} [{:.*}, {:.*}]",
        digits, e.mean, digits, e.low, digits, e.high
    )
}

pub(super) fn fmt_x(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{x:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A Markdown table: one row per point, one column per series.
pub(super) fn grid(t: &Table, f: fn(&RunResult) -> f64, cell: fn(Estimate) -> String) -> String {
    let mut out = format!("| {} |", t.sweep.x_label);
    for (label, _) in &t.sweep.series {
        let _ = write!(out, " {label} |");
    }
    out.push_str("\n|---|");
    for _ in &t.sweep.series {
        out.push_str("---|");
    }
    out.push('\n');
    for (xi, x) in t.sweep.xs.iter().enumerate() {
        let _ = write!(out, "| {} |", fmt_x(*x));
        for s in 0..t.sweep.series.len() {
            let _ = write!(out, " {} |", cell(t.est(s, xi, f)));
        }
        out.push('\n');
    }
    out
}

pub(super) fn runs_note(t: &Table) -> String {
    let (lo, hi) = t
        .sweep
        .runs
        .iter()
        .fold((usize::MAX, 0), |(a, b), r| (a.min(*r), b.max(*r)));
    let runs = if lo == hi {
        format!("{lo} runs")
    } else {
        format!("{lo} to {hi} runs")
    };
    format!("{runs} per point; brackets are 95% confidence intervals over runs (Student t).")
}

pub(super) fn params_note(p: &Params) -> String {
    format!(
        "{} peers, {} requesters, {} workflows of {} steps per run; {} kinds of capability, {} per honest peer; \
         {} regions ({} ms within, {} ms between, ±{:.0}% jitter); processing {} ms mean; TTL {} s, refresh {} s; \
         fallback budget {} per round and up to {} wider discovery rounds, exploration {}, feedback {}; {} candidates per query; a replay fails on the requester's \
         side (inconclusive) with probability {}; Sybil attack `{}`{}{}.",
        p.peers,
        p.requesters,
        p.workflows,
        p.steps,
        p.kinds,
        p.caps_per_peer,
        p.regions,
        p.intra_ms,
        p.inter_ms,
        p.jitter * 100.0,
        p.processing_ms,
        f64::from(p.ttl_ms) / 1e3,
        f64::from(p.refresh_ms) / 1e3,
        p.fallback_budget,
        p.widen,
        p.exploration,
        p.feedback,
        p.candidates,
        fmt_x(p.replay_fail),
        p.attack.name(),
        match (p.attack, p.canary_detect) {
            (Attack::CanaryAware | Attack::ParamSwap | Attack::Mixed, None) => format!(
                " (canary detector accuracy {}: it cheats on real work with probability {} and on canaries with {})",
                fmt_x(p.detector_accuracy),
                fmt_x(p.detector_accuracy),
                fmt_x(1.0 - p.detector_accuracy)
            ),
            (Attack::CanaryAware | Attack::ParamSwap | Attack::Mixed, Some(d)) => format!(
                " (spots a canary with probability {}, always cheats on real work)",
                fmt_x(d)
            ),
            _ => String::new(),
        },
        if p.sybil_attractive {
            ", with attractive (stuffed, best-QoS) descriptors"
        } else {
            ""
        }
    )
}
