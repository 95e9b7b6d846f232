//! `size-sweep`: discovery latency and control overhead against network
//! size.

use super::*;

pub(super) fn size_sweep(st: &Settings, opts: &Options) -> Sweep {
    let choices = st.choices();
    let policy = choices
        .iter()
        .find(|c| c.label == "risk-tiered")
        .or(choices.first())
        .cloned()
        .unwrap_or(Choice {
            label: "risk-tiered",
            policy: Policy::Risk(RiskPolicy::default()),
            selection: Selection::Best,
        });
    let runs = runs_or(opts, 10);
    let params: Vec<Params> = st
        .sizes
        .iter()
        .map(|n| {
            let mut p = Params {
                peers: *n,
                policy: policy.policy,
                selection: policy.selection,
                ..st.base.clone()
            };
            // Beyond the paper's sizes, load grows with the network: one
            // requester per 100 peers, 20 workflows each.
            if !st.is_set("requesters") {
                p.requesters = p.requesters.max(n / 100);
            }
            if !st.is_set("workflows") {
                p.workflows = p.workflows.max(p.requesters * 20);
            }
            p
        })
        .collect();
    Sweep {
        name: "size-sweep".into(),
        title: "Discovery latency and control overhead against network size".into(),
        x_label: "peers",
        xs: st.sizes.iter().map(|n| *n as f64).collect(),
        // Large networks get fewer runs: each is already an average over
        // thousands of workflows. A million peers take about 3.5 GB and a
        // few minutes per run: two.
        runs: st
            .sizes
            .iter()
            .map(|n| match *n {
                1_000_000.. => runs.min(2),
                10_000.. => runs.min(3),
                _ => runs,
            })
            .collect(),
        series: vec![(policy.label.to_owned(), params)],
    }
}

pub(super) fn size_report(t: &Table, w: &mut Writer<'_>) -> Result<String, SimError> {
    w.file("size-sweep.csv", &csv(t))?;
    let lo = t.sweep.xs.iter().fold(f64::INFINITY, |a, b| a.min(*b));
    let hi = t.sweep.xs.iter().fold(0.0f64, |a, b| a.max(*b));
    let log_x = lo > 0.0 && hi / lo > 20.0;
    w.chart(
        "size-sweep-discovery.svg",
        &Chart {
            title: "Discovery latency against network size",
            x: "peers",
            y: "query round trip (ms)",
            log_x,
            y_range: None,
        },
        &[
            Series {
                label: "p50".into(),
                points: t.points(0, |r| r.discovery_p50),
            },
            Series {
                label: "p95".into(),
                points: t.points(0, |r| r.discovery_p95),
            },
        ],
    )?;
    w.chart(
        "size-sweep-overhead.svg",
        &Chart {
            title: "Control-plane messages per peer per second",
            x: "peers",
            y: "messages / peer / s",
            log_x,
            y_range: None,
        },
        &[
            Series {
                label: "all control".into(),
                points: t.points(0, |r| r.control_msgs),
            },
            Series {
                label: "publishing (refresh)".into(),
                points: t.points(0, |r| r.publish_msgs),
            },
        ],
    )?;
    let mut md = format!("### {}\n\n", t.sweep.title);
    if let Some(p) = t.sweep.series.first().and_then(|s| s.1.first()) {
        let _ = writeln!(
            md,
            "Setting: policy {}; at the smallest size: {} Above 200 peers, one requester per 100 peers with 20 \
             workflows each, and one registry per 10,000 peers; each region's requesters query every registry of \
             their region and merge the answers.\n",
            t.sweep.series[0].0,
            params_note(p)
        );
    }
    md.push_str("![discovery](size-sweep-discovery.svg)\n![overhead](size-sweep-overhead.svg)\n\n");
    let _ = writeln!(
        md,
        "{} The last three columns split control messages into publishing, discovery and verification.\n",
        runs_note(t)
    );
    md.push_str(
        "| peers | discovery p50 (ms) | discovery p95 (ms) | control msgs/peer/s | control bytes/peer/s | publishing | discovery | verification |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (xi, x) in t.sweep.xs.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            fmt_x(*x),
            val(t.est(0, xi, |r| r.discovery_p50), ""),
            val(t.est(0, xi, |r| r.discovery_p95), ""),
            val(t.est(0, xi, |r| r.control_msgs), ""),
            val(t.est(0, xi, |r| r.control_bytes), ""),
            pct(t.est(0, xi, |r| r.publish_share)),
            pct(t.est(0, xi, |r| r.discovery_share)),
            pct(t.est(0, xi, |r| r.verify_share)),
        );
    }
    md.push_str("\nData: [`size-sweep.csv`](size-sweep.csv).\n\n");
    w.file("size-sweep.md", &md)?;
    Ok(md)
}
