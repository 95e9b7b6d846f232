//! Tool results: outputs as MCP content, the evidence in `_meta`, and
//! failures an agent can act on.
//!
//! | output media type | content |
//! |---|---|
//! | JSON (`application/json`, `*/*+json`) | text (the JSON), and `structuredContent` |
//! | `text/*` | text |
//! | `image/*` | image, base64 |
//! | anything else | an embedded resource, base64 blob, `errand:output:sha256:HEX` |
//!
//! Output that should be text but is not UTF-8 is sent as an embedded
//! resource. Every result of a call that reached the network carries the
//! `_meta` keys of [`evidence_meta`].

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock, MetaObject, ResourceContents};
use serde_json::{Map, Value, json};

use crate::workflow::StepReport;

use super::schema::{self, Checks};

/// A failed call: one text block, `isError`.
pub fn failure(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// Arguments that do not match the tool's schema: nothing was sent.
pub fn schema_failure(tool: &str, problems: &[String]) -> CallToolResult {
    failure(format!(
        "{tool}: the arguments do not match the tool's inputSchema, so nothing was sent:\n{}\nFix the arguments and call again.",
        problems
            .iter()
            .map(|p| format!("- {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// The `_meta` of a result: what the verification did and where its
/// evidence is (see `docs/mcp.md`).
pub fn evidence_meta(report: &StepReport) -> Map<String, Value> {
    let checks = |c: &[(String, bool)]| {
        Value::Object(
            c.iter()
                .map(|(name, ok)| (name.clone(), Value::Bool(*ok)))
                .collect(),
        )
    };
    let accepted = report
        .attempts
        .iter()
        .rfind(|a| a.rejected.is_none() && report.executor.as_deref() == Some(a.peer.as_str()));
    let (fraud, evidence): (Vec<&String>, Vec<&String>) = report.evidence.iter().partition(|p| {
        p.rsplit('/')
            .next()
            .is_some_and(|f| f.starts_with("FRAUD-"))
    });
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(format!("errand/{k}"), v);
    };
    put(
        "capability",
        json!(
            accepted
                .or(report.attempts.last())
                .map(|a| a.capability.as_str())
        ),
    );
    put("executor", json!(report.executor));
    put(
        "receipt",
        json!(report.receipt.as_ref().map(|d| format!("sha256:{d}"))),
    );
    put(
        "output",
        json!(report.output.as_ref().map(|d| format!("sha256:{d}"))),
    );
    put("outcome", json!(report.outcome));
    put("tiers", json!(report.tiers));
    put("checks", accepted.map_or(json!({}), |a| checks(&a.checks)));
    put("fallbacks", json!(report.fallbacks));
    put("discovery_rounds", json!(report.discovery_rounds));
    put("candidates", json!(report.candidates));
    put(
        "attempts",
        Value::Array(
            report
                .attempts
                .iter()
                .map(|a| {
                    json!({
                        "executor": a.peer,
                        "capability": a.capability,
                        "checks": checks(&a.checks),
                        "rejected": a.rejected,
                    })
                })
                .collect(),
        ),
    );
    put("evidence", json!(evidence.last()));
    put("fraud_proofs", json!(fraud));
    put(
        "latency_ms",
        json!((report.latency_ms * 10.0).round() / 10.0),
    );
    m
}

/// The result of a step: the output as content with the evidence in
/// `_meta`, or a failure that says what happened and what to do.
pub fn from_step(
    tool: &str,
    report: &StepReport,
    output: Option<Vec<u8>>,
    checks: Option<&Checks>,
) -> CallToolResult {
    let meta = evidence_meta(report);
    let mut result = match output {
        None => failure(failure_text(tool, report)),
        Some(_) if report.outcome.as_deref().is_some_and(|o| o != "ok") => failure(format!(
            "{tool}: the tool ran on {} but did not succeed: {}.\nThe executor's signed receipt says so; check the input and params against the tool's description, or call at a higher risk so that failing executors are passed over.",
            report.executor.as_deref().unwrap_or("the executor"),
            report.outcome.as_deref().unwrap_or("unknown outcome")
        )),
        Some(bytes) => content(tool, report, bytes, checks),
    };
    result.meta = Some(MetaObject(meta));
    result
}

/// The output as content (see the module docs).
fn content(
    tool: &str,
    report: &StepReport,
    bytes: Vec<u8>,
    checks: Option<&Checks>,
) -> CallToolResult {
    let media = report
        .output_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let essence = schema::essence(&media);
    let digest = report.output.clone().unwrap_or_default();
    let resource = |bytes: &[u8]| {
        ContentBlock::resource(
            ResourceContents::blob(
                base64::engine::general_purpose::STANDARD.encode(bytes),
                format!("errand:output:sha256:{digest}"),
            )
            .with_mime_type(media.clone()),
        )
    };
    if schema::is_json(&essence) {
        let parsed = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(t).ok().map(|v| (t, v)));
        let declared = checks.filter(|c| c.has_output_schema());
        return match (parsed, declared) {
            (Some((text, v)), declared) => match declared.map(|c| c.output(&v)) {
                Some(Err(problems)) => failure(format!(
                    "{tool}: the output does not match the outputSchema the publisher declares:\n{}\nThe executor, the tool or its descriptor is at fault, not the arguments; the evidence is kept (see _meta).",
                    problems
                        .iter()
                        .map(|p| format!("- {p}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                )),
                _ => {
                    let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
                    r.structured_content = Some(v);
                    r
                }
            },
            (None, Some(_)) => failure(format!(
                "{tool}: the output is not JSON, though the publisher declares a JSON outputSchema. The executor or the tool is at fault, not the arguments; the evidence is kept (see _meta)."
            )),
            (None, None) => CallToolResult::success(vec![resource(&bytes)]),
        };
    }
    if essence.starts_with("text/") {
        return match String::from_utf8(bytes) {
            Ok(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            Err(e) => CallToolResult::success(vec![resource(e.as_bytes())]),
        };
    }
    if essence.starts_with("image/") {
        return CallToolResult::success(vec![ContentBlock::image(
            base64::engine::general_purpose::STANDARD.encode(&bytes),
            essence,
        )]);
    }
    CallToolResult::success(vec![resource(&bytes)])
}

/// What went wrong in a failed step, and what the agent can do about it.
fn failure_text(tool: &str, report: &StepReport) -> String {
    let why = report.error.as_deref().unwrap_or("it failed");
    let mut s = format!("{tool} failed: {why}.");
    if why.starts_with("discovery failed") {
        s.push_str("\nThe registries could not be asked. Check that they are running and reachable (the server's log says which failed), then call again.");
    } else if report.attempts.is_empty() && report.candidates == 0 {
        s.push_str("\nNo executor offers this capability now: its descriptors may have expired. List the tools again, or use `find` to look for another capability.");
    } else if report.attempts.is_empty() {
        s.push_str("\nNone of the executors found matches what this call pins. Use `find` to see who offers what.");
    } else {
        s.push_str(&format!(
            "\n{} executor{} tried, under {}:",
            report.attempts.len(),
            if report.attempts.len() == 1 { "" } else { "s" },
            report.tiers
        ));
        for a in &report.attempts {
            let checks: Vec<String> = a
                .checks
                .iter()
                .map(|(n, ok)| format!("{n} {}", if *ok { "passed" } else { "FAILED" }))
                .collect();
            s.push_str(&format!(
                "\n- {}: {}{}",
                a.peer,
                if checks.is_empty() {
                    String::new()
                } else {
                    format!("{}; ", checks.join(", "))
                },
                a.rejected.as_deref().unwrap_or("accepted")
            ));
        }
        s.push_str("\nNo executor passed verification within the fallback budget. Call again later (executors come and go), or use `find` to see who else offers this capability. Do not rely on any output from these executors.");
    }
    if let Some(f) = report.evidence.iter().find(|p| p.contains("FRAUD-")) {
        s.push_str(&format!(
            "\nA replay caught an executor signing a false receipt; the fraud proof is {f}."
        ));
    }
    if why.starts_with("input") || why.contains("param") {
        s.push_str("\nShorten the input or the parameters to within the protocol's bounds.");
    }
    s
}
