//! `drift-sweep`: workflow success against the drift rate, per policy.

use super::*;

pub(super) fn drift_sweep(st: &Settings, opts: &Options) -> Sweep {
    let series = per_policy(st, &st.drifts, |p, d| p.drift_rate = d);
    Sweep {
        name: "drift-sweep".into(),
        title: "Workflow success against the drift rate".into(),
        x_label: "drift rate λ (changes per capability per s)",
        xs: st.drifts.clone(),
        runs: vec![runs_or(opts, 10); st.drifts.len()],
        series,
    }
}

pub(super) fn drift_report(t: &Table, w: &mut Writer<'_>) -> Result<String, SimError> {
    w.file("drift-sweep.csv", &csv(t))?;
    let series: Vec<Series> = (0..t.sweep.series.len())
        .map(|s| Series {
            label: t.sweep.series[s].0.clone(),
            points: t.points(s, |r| r.success),
        })
        .collect();
    w.chart(
        "drift-sweep-success.svg",
        &Chart {
            title: &t.sweep.title,
            x: "drift rate λ (per capability per s)",
            y: "workflow success",
            log_x: false,
            y_range: Some((0.0, 1.05)),
        },
        &series,
    )?;
    let mut md = format!("### {}\n\n", t.sweep.title);
    if let Some(p) = t.sweep.series.first().and_then(|s| s.1.first()) {
        let _ = writeln!(
            md,
            "Setting: α = {}; {}\n",
            fmt_x(p.sybil_fraction),
            params_note(p)
        );
    }
    md.push_str("![success](drift-sweep-success.svg)\n\n");
    let _ = writeln!(md, "{}\n", runs_note(t));
    md.push_str(&grid(t, |r| r.success, pct));
    md.push_str("\nFailures from stale descriptors:\n\n");
    md.push_str(&grid(t, |r| r.stale_failures, pct));
    md.push_str("\nData: [`drift-sweep.csv`](drift-sweep.csv).\n\n");
    w.file("drift-sweep.md", &md)?;
    Ok(md)
}
