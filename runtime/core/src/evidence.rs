//! Evidence packages, traces, and offline verification.
//!
//! An [`Evidence`] package is a signed receipt plus whatever an auditor needs
//! to check it without asking anyone: the requester's signed request (what was
//! asked), the input, the output, the full trace and the component, each
//! either embedded as bytes, named by digest, or left out (its digest is in
//! the receipt). Every field present is checked: a digest that contradicts
//! the receipt fails verification as surely as wrong bytes. [`verify`] runs every check that the material at hand allows
//! and returns a [`Report`] naming each check and its verdict. It does no I/O:
//! the caller reads files and passes their bytes.
//!
//! # The trace
//!
//! Every host call a guest makes is a [`TraceEvent`]: the fuel consumed when it
//! was made, the call's name, and digests of its arguments and results. The
//! events form a hash chain:
//!
//! ```text
//! h0     = SHA-256("errand/trace/v1")
//! h(i+1) = SHA-256(h(i) ‖ fuel:u64le ‖ len(call):u8 ‖ call ‖ args ‖ result)
//! root   = h(n)
//! ```
//!
//! The receipt carries the root and `n`, so one event changed, dropped, added or
//! reordered changes the root.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::bounded::{BBytes, BString, BVec};
use crate::digest::Digest;
use crate::identity::PeerId;
use crate::receipt::{InvocationContext, SignedReceipt};
use crate::request::{ParamsText, SignedRequest};
use crate::signed::{Invalid, Kind, Object};
use crate::time::UnixMillis;

/// Largest input, output or component an evidence package may embed: 64 MiB.
pub const MAX_BLOB_BYTES: usize = 64 << 20;
/// Most trace events an evidence package may embed.
pub const MAX_TRACE_EVENTS: usize = 1 << 20;

/// One host call, as recorded in the trace.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceEvent {
    /// Fuel consumed by the guest when it made the call.
    pub fuel: u64,
    /// The call, as `interface#function`, e.g. `wasi:clocks/wall-clock#now`.
    pub call: BString<96>,
    /// Digest of the call's arguments.
    pub args: Digest,
    /// Digest of what the call returned.
    pub result: Digest,
}

/// The running head of a trace's hash chain.
#[derive(Debug, Clone)]
pub struct TraceChain {
    head: [u8; 32],
    count: u32,
}

impl Default for TraceChain {
    fn default() -> Self {
        TraceChain::new()
    }
}

impl TraceChain {
    /// The chain of no events.
    pub fn new() -> TraceChain {
        TraceChain {
            head: Sha256::digest(b"errand/trace/v1").into(),
            count: 0,
        }
    }

    /// Appends one event.
    pub fn push(&mut self, e: &TraceEvent) {
        let mut h = Sha256::new();
        h.update(self.head);
        h.update(e.fuel.to_le_bytes());
        // `call` is bounded to 96 bytes, so its length fits a byte.
        h.update([e.call.len() as u8]);
        h.update(e.call.as_bytes());
        h.update(e.args.0);
        h.update(e.result.0);
        self.head = h.finalize().into();
        self.count = self.count.saturating_add(1);
    }

    /// The current root.
    pub fn root(&self) -> Digest {
        Digest(self.head)
    }

    /// How many events have been pushed.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The root and count of a whole trace.
    pub fn of(events: &[TraceEvent]) -> (Digest, u32) {
        let mut c = TraceChain::new();
        for e in events {
            c.push(e);
        }
        (c.root(), c.count())
    }
}

/// A blob in an evidence package: embedded, or named by digest only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Blob {
    /// The bytes themselves.
    Bytes(BBytes<MAX_BLOB_BYTES>),
    /// Only the digest.
    Digest(Digest),
}

impl Blob {
    /// The bytes, if embedded.
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Blob::Bytes(b) => Some(b),
            Blob::Digest(_) => None,
        }
    }

    /// The digest of the blob.
    pub fn digest(&self) -> Digest {
        match self {
            Blob::Bytes(b) => Digest::of(b),
            Blob::Digest(d) => *d,
        }
    }

    /// Embeds `bytes`, or fails if they are over [`MAX_BLOB_BYTES`].
    pub fn embed(bytes: Vec<u8>) -> Result<Blob, crate::bounded::BoundViolation> {
        Ok(Blob::Bytes(BBytes::new(bytes)?))
    }
}

/// A trace in an evidence package: all its events, or only its root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceBlob {
    /// Every event.
    Events(BVec<TraceEvent, MAX_TRACE_EVENTS>),
    /// Only the root (already in the receipt).
    Root(Digest),
}

/// A receipt plus the material to check it offline (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The signed receipt.
    pub receipt: SignedReceipt,
    /// The input.
    pub input: Option<Blob>,
    /// The output.
    pub output: Option<Blob>,
    /// The trace.
    pub trace: Option<TraceBlob>,
    /// The WebAssembly component.
    pub component: Option<Blob>,
    /// The requester's signed request, which the receipt answers.
    pub request: Option<SignedRequest>,
}

impl Evidence {
    /// A package holding only the receipt.
    pub fn of_receipt(receipt: SignedReceipt) -> Evidence {
        Evidence {
            receipt,
            input: None,
            output: None,
            trace: None,
            component: None,
            request: None,
        }
    }
}

impl Object for Evidence {
    const KIND: Kind = Kind::Evidence;
    /// 2: carries the signed request.
    const VERSION: u8 = 2;

    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", content = "detail", rename_all = "lowercase")]
pub enum Verdict {
    /// The check passed.
    Pass(String),
    /// The check failed.
    Fail(String),
    /// The check could not run with the material given.
    Skip(String),
}

/// A named check and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The check's name: `format`, `signature`, `executor`, `request`,
    /// `component`, `input`, `output`, `trace`, or (with replay) `replay-*`.
    pub name: &'static str,
    /// Its verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// The result of verifying evidence: every check that ran, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    /// Adds a check.
    pub fn push(&mut self, name: &'static str, verdict: Verdict) {
        self.checks.push(Check { name, verdict });
    }

    /// True when no check failed.
    pub fn verified(&self) -> bool {
        !self
            .checks
            .iter()
            .any(|c| matches!(c.verdict, Verdict::Fail(_)))
    }

    /// The first failed check.
    pub fn first_failure(&self) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| matches!(c.verdict, Verdict::Fail(_)))
    }
}

/// Material supplied next to the package (for example files on the command
/// line). Each, when given, must match the receipt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Supplied<'a> {
    /// The component bytes.
    pub component: Option<&'a [u8]>,
    /// The input bytes.
    pub input: Option<&'a [u8]>,
    /// The output bytes.
    pub output: Option<&'a [u8]>,
    /// The executor the verifier expects.
    pub executor: Option<PeerId>,
    /// What the auditor says was asked, when the package has no signed
    /// request (or to check it against one): the parameters …
    pub params: Option<&'a InvocationContext>,
    /// … and the declared time (`UnixMillis(0)` in `params` is ignored
    /// when this is `None`).
    pub time: Option<UnixMillis>,
}

fn check_blob(
    report: &mut Report,
    name: &'static str,
    expected: &Digest,
    embedded: Option<&Blob>,
    supplied: Option<&[u8]>,
) {
    let mut sources: Vec<(&str, Digest)> = Vec::new();
    if let Some(b) = supplied {
        sources.push(("supplied", Digest::of(b)));
    }
    match embedded {
        Some(Blob::Bytes(b)) => sources.push(("embedded", Digest::of(b))),
        // A digest alone proves nothing, but one that contradicts the
        // receipt is a package that was tampered with.
        Some(Blob::Digest(d)) if d != expected => sources.push(("named", *d)),
        _ => {}
    }
    if sources.is_empty() {
        report.push(
            name,
            Verdict::Skip(format!("no {name} given; receipt says sha256:{expected}")),
        );
        return;
    }
    for (from, got) in &sources {
        if got != expected {
            report.push(
                name,
                Verdict::Fail(format!(
                    "{from} {name} has sha256:{got}, receipt says sha256:{expected}"
                )),
            );
            return;
        }
    }
    let from: Vec<&str> = sources
        .iter()
        .map(|s| s.0)
        .filter(|s| *s != "named")
        .collect();
    report.push(
        name,
        Verdict::Pass(format!(
            "{} {name} matches sha256:{expected}",
            from.join(" and ")
        )),
    );
}

/// Runs every check the material allows (see the module docs).
pub fn verify(evidence: &Evidence, supplied: &Supplied<'_>) -> Report {
    verify_with(evidence, supplied, evidence.receipt.verify())
}

/// [`verify`] for many packages, checking the receipts' signatures in one
/// ed25519 batch ([`crate::signed::verify_batch`], which accepts exactly
/// what the single check does; on a failed batch each is checked alone).
pub fn verify_many(list: &[&Evidence], supplied: &Supplied<'_>) -> Vec<Report> {
    let receipts: Vec<&SignedReceipt> = list.iter().map(|e| &e.receipt).collect();
    let batch_ok = crate::signed::verify_batch(&receipts).is_ok();
    list.iter()
        .map(|e| {
            let sig = if batch_ok { Ok(()) } else { e.receipt.verify() };
            verify_with(e, supplied, sig)
        })
        .collect()
}

fn verify_with(
    evidence: &Evidence,
    supplied: &Supplied<'_>,
    signature: Result<(), crate::identity::SignatureError>,
) -> Report {
    let mut report = Report::default();
    let r = evidence.receipt.body();
    report.push(
        "format",
        Verdict::Pass(format!(
            "well-formed tool receipt v{} ({} bytes); outcome {}",
            <crate::receipt::Receipt as Object>::VERSION,
            evidence.receipt.encoded_len(),
            r.outcome
        )),
    );
    match signature {
        Ok(()) => report.push(
            "signature",
            Verdict::Pass(format!("signed by executor {}", r.executor)),
        ),
        Err(e) => report.push(
            "signature",
            Verdict::Fail(format!("{e} (executor {})", r.executor)),
        ),
    }
    match supplied.executor {
        Some(want) if want == r.executor => {
            report.push("executor", Verdict::Pass(format!("executor is {want}")))
        }
        Some(want) => report.push(
            "executor",
            Verdict::Fail(format!("executor is {}, expected {want}", r.executor)),
        ),
        None => report.push(
            "executor",
            Verdict::Skip("no expected executor given".into()),
        ),
    }
    check_request(&mut report, evidence, supplied);
    check_blob(
        &mut report,
        "component",
        &r.component,
        evidence.component.as_ref(),
        supplied.component,
    );
    check_blob(
        &mut report,
        "input",
        &r.input,
        evidence.input.as_ref(),
        supplied.input,
    );
    check_blob(
        &mut report,
        "output",
        &r.output,
        evidence.output.as_ref(),
        supplied.output,
    );
    match &evidence.trace {
        Some(TraceBlob::Events(events)) => {
            let (root, count) = TraceChain::of(events);
            if root == r.trace_root && count == r.trace_events {
                report.push(
                    "trace",
                    Verdict::Pass(format!("{count} events chain to the receipt's root")),
                )
            } else if count != r.trace_events {
                report.push(
                    "trace",
                    Verdict::Fail(format!(
                        "trace has {count} events, receipt says {}",
                        r.trace_events
                    )),
                )
            } else {
                report.push(
                    "trace",
                    Verdict::Fail(format!(
                        "trace chains to {}, receipt says {}",
                        root.short(),
                        r.trace_root.short()
                    )),
                )
            }
        }
        Some(TraceBlob::Root(root)) if *root != r.trace_root => report.push(
            "trace",
            Verdict::Fail(format!(
                "package names trace root {}, receipt says {}",
                root.short(),
                r.trace_root.short()
            )),
        ),
        _ => report.push("trace", Verdict::Skip("no trace events embedded".into())),
    }
    report
}

/// The `request` check: the signed request, when the package carries one,
/// must be signed by the receipt's requester and be exactly what the receipt
/// answers; what the auditor states was asked must match too.
fn check_request(report: &mut Report, evidence: &Evidence, supplied: &Supplied<'_>) {
    let r = evidence.receipt.body();
    let mut passed = Vec::new();
    if let Some(req) = &evidence.request {
        let asked = req.body();
        if asked.requester != r.requester {
            return report.push(
                "request",
                Verdict::Fail(format!(
                    "the request is from {}, the receipt names requester {}",
                    asked.requester, r.requester
                )),
            );
        }
        if let Err(e) = req.verify() {
            return report.push(
                "request",
                Verdict::Fail(format!("the request's signature is invalid: {e}")),
            );
        }
        if let Err(e) = asked.check_receipt(req.digest(), r) {
            return report.push("request", Verdict::Fail(e.to_string()));
        }
        passed.push(format!(
            "the receipt answers the request signed by {}",
            asked.requester
        ));
    }
    if let Some(stated) = supplied.params {
        let ran = ParamsText(&r.context);
        if ParamsText(stated) != ran {
            return report.push(
                "request",
                Verdict::Fail(format!(
                    "params: you asked {}, the receipt says it ran {ran}",
                    ParamsText(stated)
                )),
            );
        }
        passed.push(format!("params are {ran}, as stated"));
    }
    if let Some(t) = supplied.time {
        if t != r.context.time {
            return report.push(
                "request",
                Verdict::Fail(format!(
                    "time: you asked {t}, the receipt says it ran at {}",
                    r.context.time
                )),
            );
        }
        passed.push(format!("time is {t}, as stated"));
    }
    if passed.is_empty() {
        report.push(
            "request",
            Verdict::Skip(
                "no signed request in the package and nothing stated (-p, --time): what was asked is unchecked"
                    .into(),
            ),
        );
    } else {
        report.push("request", Verdict::Pass(passed.join("; ")));
    }
}
