//! `sybil-sweep`: workflow success against the Sybil fraction, per
//! policy.

use super::*;

pub(super) fn sybil_sweep(name: &str, st: &Settings, opts: &Options) -> Sweep {
    let series = per_policy(st, &st.alphas, |p, a| p.sybil_fraction = a);
    Sweep {
        name: name.to_owned(),
        title: format!(
            "Workflow success against the Sybil fraction ({})",
            st.base.attack.name()
        ),
        x_label: "Sybil fraction α",
        xs: st.alphas.clone(),
        runs: vec![runs_or(opts, 10); st.alphas.len()],
        series,
    }
}

pub(super) fn sybil_report(t: &Table, w: &mut Writer<'_>) -> Result<String, SimError> {
    let name = &t.sweep.name;
    w.file(&format!("{name}.csv"), &csv(t))?;
    let mut series: Vec<Series> = (0..t.sweep.series.len())
        .map(|s| Series {
            label: t.sweep.series[s].0.clone(),
            points: t.points(s, |r| r.success),
        })
        .collect();
    if let Some(s) = t.series_index("none (random pick)") {
        series.push(Series {
            label: "analytic, random pick".into(),
            points: t
                .points(s, |r| r.analytic)
                .into_iter()
                .map(|(x, y, _, _)| (x, y, y, y))
                .collect(),
        });
    }
    w.chart(
        &format!("{name}-success.svg"),
        &Chart {
            title: &t.sweep.title,
            x: t.sweep.x_label,
            y: "workflow success",
            log_x: false,
            y_range: Some((0.0, 1.05)),
        },
        &series,
    )?;
    let latency: Vec<Series> = (0..t.sweep.series.len())
        .map(|s| Series {
            label: t.sweep.series[s].0.clone(),
            points: t.points(s, |r| r.latency_p50),
        })
        .collect();
    w.chart(
        &format!("{name}-latency.svg"),
        &Chart {
            title: "Median latency of successful workflows",
            x: t.sweep.x_label,
            y: "latency (ms)",
            log_x: false,
            y_range: None,
        },
        &latency,
    )?;
    let p = t.sweep.series.first().and_then(|s| s.1.first());
    let mut md = format!("### {}\n\n", t.sweep.title);
    if let Some(p) = p {
        let _ = writeln!(md, "Setting: {}\n", params_note(p));
    }
    let _ = writeln!(
        md,
        "![success]({name}-success.svg)\n![latency]({name}-latency.svg)\n"
    );
    let _ = writeln!(md, "End-to-end workflow success. {}\n", runs_note(t));
    md.push_str(&grid(t, |r| r.success, pct));
    md.push_str("\nMedian latency of successful workflows (ms):\n\n");
    md.push_str(&grid(t, |r| r.latency_p50, |e| val(e, "")));
    md.push_str("\nFallbacks per workflow:\n\n");
    md.push_str(&grid(t, |r| r.fallbacks, |e| val(e, "")));
    let _ = writeln!(md, "\nData: [`{name}.csv`]({name}.csv).\n");
    w.file(&format!("{name}.md"), &md)?;
    Ok(md)
}
