//! `ttl-sweep`: stale failures and refresh overhead against the TTL
//! under high drift, and the knee.

use super::*;

pub(super) fn ttl_sweep(st: &Settings, opts: &Options) -> Sweep {
    let choices = st.choices();
    let series = choices
        .iter()
        .map(|c| {
            let params = st
                .ttls
                .iter()
                .map(|ttl| {
                    let refresh = if st.is_set("refresh_ms") {
                        st.base.refresh_ms
                    } else {
                        ((f64::from(*ttl) * st.refresh_ratio) as u32).max(1)
                    };
                    Params {
                        ttl_ms: *ttl,
                        refresh_ms: refresh,
                        warmup_ms: st.base.warmup_ms.max(u64::from(refresh) + 1_000),
                        policy: c.policy,
                        selection: c.selection,
                        ..st.base.clone()
                    }
                })
                .collect();
            (c.label.to_owned(), params)
        })
        .collect();
    Sweep {
        name: "ttl-sweep".into(),
        title: format!(
            "The TTL trade-off under high drift (λ = {}/s)",
            fmt_x(st.base.drift_rate)
        ),
        x_label: "TTL (s)",
        xs: st.ttls.iter().map(|t| f64::from(*t) / 1e3).collect(),
        runs: vec![runs_or(opts, 10); st.ttls.len()],
        series,
    }
}

/// What the TTL sweep found.
pub(super) struct TtlFindings {
    pub(super) knee: Option<f64>,
    pub(super) balance: Option<f64>,
    pub(super) pure_knee: Option<f64>,
}

pub(super) fn ttl_findings(t: &Table) -> TtlFindings {
    let xs = &t.sweep.xs;
    let s = t.series_index("none").unwrap_or(0);
    let overhead: Vec<f64> = (0..xs.len())
        .map(|xi| t.est(s, xi, |r| r.publish_msgs).mean)
        .collect();
    let stale: Vec<f64> = (0..xs.len())
        .map(|xi| t.est(s, xi, |r| r.stale_failures).mean)
        .collect();
    let pure: Vec<f64> = xs.iter().map(|x| 1.0 / x).collect();
    TtlFindings {
        knee: knee_decreasing(xs, &overhead).map(|i| xs[i]),
        balance: balance(&stale, &overhead).map(|i| xs[i]),
        pure_knee: knee_decreasing(xs, &pure).map(|i| xs[i]),
    }
}

pub(super) fn ttl_report(t: &Table, w: &mut Writer<'_>) -> Result<(String, TtlFindings), SimError> {
    w.file("ttl-sweep.csv", &csv(t))?;
    let f = ttl_findings(t);
    let n = t.sweep.series.len();
    let stale: Vec<Series> = (0..n)
        .map(|s| Series {
            label: format!("{}: failures from stale descriptors", t.sweep.series[s].0),
            points: t.points(s, |r| r.stale_failures),
        })
        .collect();
    w.chart(
        "ttl-sweep-stale.svg",
        &Chart {
            title: "Workflows failed by stale descriptors",
            x: "TTL (s, refresh at TTL/3)",
            y: "fraction of workflows",
            log_x: true,
            y_range: None,
        },
        &stale,
    )?;
    let s0 = t.series_index("none").unwrap_or(0);
    w.chart(
        "ttl-sweep-overhead.svg",
        &Chart {
            title: "Refresh overhead",
            x: "TTL (s, refresh at TTL/3)",
            y: "publishing messages / peer / s",
            log_x: true,
            y_range: None,
        },
        &[Series {
            label: "publishing".into(),
            points: t.points(s0, |r| r.publish_msgs),
        }],
    )?;
    let mut md = format!("### {}\n\n", t.sweep.title);
    if let Some(p) = t.sweep.series.first().and_then(|s| s.1.first()) {
        let _ = writeln!(md, "Setting: {}\n", params_note(p));
    }
    md.push_str("![stale](ttl-sweep-stale.svg)\n![overhead](ttl-sweep-overhead.svg)\n\n");
    let _ = writeln!(
        md,
        "Workflows failed at a step that met a stale descriptor. {}\n",
        runs_note(t)
    );
    md.push_str(&grid(t, |r| r.stale_failures, pct));
    md.push_str(
        "\nRequests that reached a capability that had gone (stale hits), per request:\n\n",
    );
    md.push_str(&grid(t, |r| r.stale_hit_rate, pct));
    md.push_str("\nWorkflow success:\n\n");
    md.push_str(&grid(t, |r| r.success, pct));
    md.push_str("\nPublishing messages per peer per second:\n\n");
    md.push_str(&grid(t, |r| r.publish_msgs, |e| val(e, "")));
    let show = |x: Option<f64>| x.map_or("none found".to_owned(), |x| format!("{} s", fmt_x(x)));
    let _ = writeln!(
        md,
        "\nThe knee of the refresh-overhead curve (Kneedle) is at **{}**; the TTL that best balances stale \
         failures against overhead (each normalised to 0..1, their sum least) is **{}**. For comparison, the knee \
         of a pure 1/TTL curve over the same TTLs is at {}.\n",
        show(f.knee),
        show(f.balance),
        show(f.pure_knee)
    );
    md.push_str("Data: [`ttl-sweep.csv`](ttl-sweep.csv).\n\n");
    w.file("ttl-sweep.md", &md)?;
    Ok((md, f))
}
