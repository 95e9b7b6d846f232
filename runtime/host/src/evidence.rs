//! Receipts, evidence packages and replay.
//!
//! After a run, the executor signs a [`Receipt`] over the [`Execution`] and
//! can bundle it with the input, output, trace and component into an
//! [`Evidence`] package. Anyone holding the component and the input can
//! [`replay`] the run: execution is deterministic, so the output digest, the
//! fuel consumed and the trace root must match the receipt exactly.

use errand_core::bounded::BVec;
use errand_core::evidence::{Blob, Evidence, Report, TraceBlob, TraceEvent, Verdict};
use errand_core::manifest::Manifest;
use errand_core::receipt::{
    AbortReason, CapabilityRef, InvocationContext, Outcome, Platform, Receipt, RequestId,
    SignedReceipt,
};
use errand_core::request::{Request, Seed};
use errand_core::signed::EncodeError;
use errand_core::{Digest, PeerId, SecretKey};

use crate::host::{Host, LoadError, NanMode};
use crate::run::{Execution, Invocation, Limits, RunError};

/// Who ran what for whom: the parts of a receipt that are not in the
/// [`Execution`].
#[derive(Debug, Clone)]
pub struct ReceiptInfo<'a> {
    /// The executor's key, which signs.
    pub executor: &'a SecretKey,
    /// The requester.
    pub requester: PeerId,
    /// The requester's nonce.
    pub request_id: RequestId,
    /// Digest of the signed request the run answers.
    pub request: Digest,
    /// The seed the guest's randomness had.
    pub seed: Seed,
    /// The published capability, if the run was for one.
    pub capability: Option<CapabilityRef>,
    /// The component's digest.
    pub component: Digest,
    /// What the guest saw besides its input.
    pub context: InvocationContext,
    /// The limits the run had.
    pub limits: Limits,
}

impl Host {
    /// Builds and signs the receipt for `exec`.
    pub fn sign_receipt(
        &self,
        info: &ReceiptInfo<'_>,
        exec: &Execution,
    ) -> Result<SignedReceipt, EncodeError> {
        let receipt = Receipt {
            executor: info.executor.peer_id(),
            requester: info.requester,
            request_id: info.request_id,
            request: info.request,
            seed: info.seed,
            capability: info.capability.clone(),
            component: info.component,
            input: exec.input_digest,
            context: info.context.clone(),
            outcome: exec.outcome.clone(),
            output: exec.output_digest,
            fuel_limit: exec.fuel_limit,
            fuel_consumed: exec.fuel_consumed,
            limits: info.limits.run_limits(),
            trace_root: exec.trace_root,
            trace_events: exec.trace_events,
            started_at: exec.started_at,
            finished_at: exec.finished_at.max(exec.started_at),
            // The engine the run had: its NaN mode included.
            platform: Platform {
                engine: exec.engine,
                ..self.platform()
            },
        };
        SignedReceipt::sign(receipt, info.executor)
    }
}

/// What to embed in an evidence package besides the receipt.
#[derive(Debug, Clone, Copy, Default)]
pub struct Embed<'a> {
    /// The input bytes.
    pub input: Option<&'a [u8]>,
    /// The output bytes.
    pub output: Option<&'a [u8]>,
    /// The trace events.
    pub trace: Option<&'a [TraceEvent]>,
    /// The component bytes.
    pub component: Option<&'a [u8]>,
}

/// Assembles an evidence package. Blobs over the package bounds are named
/// by digest instead of embedded.
pub fn evidence(receipt: SignedReceipt, embed: Embed<'_>) -> Evidence {
    let r = receipt.body().clone();
    let blob = |bytes: Option<&[u8]>, digest: Digest| {
        Some(match bytes {
            Some(b) => Blob::embed(b.to_vec()).unwrap_or(Blob::Digest(digest)),
            None => Blob::Digest(digest),
        })
    };
    Evidence {
        input: blob(embed.input, r.input),
        output: blob(embed.output, r.output),
        component: blob(embed.component, r.component),
        trace: Some(match embed.trace {
            Some(t) => BVec::new(t.to_vec())
                .map(TraceBlob::Events)
                .unwrap_or(TraceBlob::Root(r.trace_root)),
            None => TraceBlob::Root(r.trace_root),
        }),
        receipt,
        request: None,
    }
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The component given is not the one the receipt names.
    #[error("the component given has sha256:{given}, the receipt names sha256:{expected}")]
    WrongComponent {
        /// Digest of what was given.
        given: Digest,
        /// What the receipt names.
        expected: Digest,
    },
    /// The input given is not the one the receipt names.
    #[error("the input given has sha256:{given}, the receipt names sha256:{expected}")]
    WrongInput {
        /// Digest of what was given.
        given: Digest,
        /// What the receipt names.
        expected: Digest,
    },
    /// The component does not load.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The run could not start.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The run had more memory than this host's engine gives a run, and
    /// the replay here ran out of it where the run did not.
    #[error(
        "the replay ran out of this host's memory cap of {cap} bytes (HostConfig::max_memory_bytes); the run had {limit}"
    )]
    OverCap {
        /// The run's limit.
        limit: u64,
        /// This host's cap.
        cap: u64,
    },
    /// The receipt's engine is one this host has, but the component could
    /// not be compiled for it here (a rewrite that fell back).
    #[error(
        "the receipt's run had NaN mode {mode:?}, which this host could not compile the component for (it would run {ran:?})"
    )]
    Mode {
        /// The receipt's mode.
        mode: NanMode,
        /// The mode this host would have run.
        ran: NanMode,
    },
    /// The replay hit its wall-clock backstop on this machine.
    #[error("the replay hit its wall-clock backstop of {0:?} on this machine")]
    Deadline(std::time::Duration),
}

/// The result of a replay: the re-execution and each comparison.
#[derive(Debug)]
pub struct Replay {
    /// The checks, named `replay-*`, to append to a verification report.
    pub report: Report,
    /// The re-execution.
    pub execution: Execution,
}

impl Replay {
    /// True when the replay matched the receipt.
    pub fn matched(&self) -> bool {
        self.report.verified()
    }
}

fn outcome_kind(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "ok".into(),
        Outcome::InvalidInput { .. } => "invalid input".into(),
        Outcome::Failed { .. } => "failed".into(),
        Outcome::Aborted { reason, .. } => format!("aborted ({})", reason.as_str()),
    }
}

/// Most fuel a replay is assumed to burn per second of wall-clock time at
/// worst: a replay's deadline is its fuel divided by this (at least
/// [`MIN_REPLAY_DEADLINE`]), so the bound comes from the request, not from a
/// default that a long but honest run would exceed.
pub const REPLAY_FUEL_PER_SEC: u64 = 25_000_000;
/// The shortest replay deadline.
pub const MIN_REPLAY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// The wall-clock backstop for replaying a run of `fuel`.
pub fn replay_deadline(fuel: u64) -> std::time::Duration {
    MIN_REPLAY_DEADLINE.max(std::time::Duration::from_secs(
        fuel / REPLAY_FUEL_PER_SEC + 1,
    ))
}

/// Re-executes a run and compares the outcome, the output digest, the fuel
/// consumed and the trace with the receipt. With `asked` (the signed
/// request the receipt answers), it runs the *request*: its parameters,
/// time, seed and limits, and at most its fuel; the receipt's claims are
/// only compared. Without it (an auditor holding only the receipt), it runs
/// what the receipt says. With `recorded_trace` (from an evidence package),
/// a trace mismatch names the first event that differs.
///
/// The replay runs in the [`NanMode`] the receipt's engine fingerprint
/// records. With `manifest` (the tool's author-signed manifest), the
/// `nan-canonicalisation` check fails a receipt whose run went without NaN
/// canonicalisation when the manifest does not declare
/// `observes_nan_bits = false`: the executor's own signature says it ran
/// the tool in a mode its author did not allow. That replay runs
/// canonicalised ([`NanMode::for_manifest`]), as the manifest requires. Without `manifest`, such a
/// receipt cannot be judged and the check is skipped.
///
/// An `Err` means this side could not replay (wrong material, a component
/// that does not load, the wall-clock backstop): that says nothing about
/// the executor, so it is never evidence of fraud.
pub fn replay(
    host: &Host,
    receipt: &Receipt,
    asked: Option<&Request>,
    component: &[u8],
    input: &[u8],
    recorded_trace: Option<&[TraceEvent]>,
    manifest: Option<&Manifest>,
) -> Result<Replay, ReplayError> {
    let given = Digest::of(component);
    if given != receipt.component {
        return Err(ReplayError::WrongComponent {
            given,
            expected: receipt.component,
        });
    }
    let given = Digest::of(input);
    if given != receipt.input {
        return Err(ReplayError::WrongInput {
            given,
            expected: receipt.input,
        });
    }
    let mut report = Report::default();
    let allowed = manifest.map(NanMode::for_manifest);
    // On any architecture: a receipt from another one still says which
    // mode its run had.
    let ran = host.nan_mode_on_any_arch(&receipt.platform.engine);
    let nan = match (ran, allowed) {
        (Some(NanMode::Native), Some(allowed @ (NanMode::Canonical | NanMode::Selective))) => {
            report.push(
                "nan-canonicalisation",
                Verdict::Fail(
                    "the receipt's engine ran without NaN canonicalisation, but the tool's \
                     manifest does not declare `observes_nan_bits = false`"
                        .into(),
                ),
            );
            allowed
        }
        (Some(NanMode::Native), None) => {
            report.push(
                "nan-canonicalisation",
                Verdict::Skip(
                    "the run went without NaN canonicalisation; without the tool's manifest, \
                     whether its author allows that is not checked"
                        .into(),
                ),
            );
            NanMode::Native
        }
        (Some(NanMode::Native), Some(NanMode::Native)) => {
            report.push(
                "nan-canonicalisation",
                Verdict::Pass("off, as the manifest allows (`observes_nan_bits = false`)".into()),
            );
            NanMode::Native
        }
        (Some(ran @ (NanMode::Canonical | NanMode::Selective)), _) => ran,
        // Another engine: run the tool as its manifest says it may run.
        (None, allowed) => allowed.unwrap_or_default(),
    };
    let prepared = host.prepare_with(component, nan)?;
    // A mode this host knows, which it could not run the component in
    // (the rewrite of `NanMode::Selective` fell back here): this side
    // cannot replay, which says nothing about the executor.
    if ran == Some(nan) && prepared.nan_mode() != nan {
        return Err(ReplayError::Mode {
            mode: nan,
            ran: prepared.nan_mode(),
        });
    }
    let (context, seed, fuel, limits) = match asked {
        Some(q) => (
            q.context.clone(),
            q.seed,
            receipt.fuel_limit.min(q.fuel),
            q.limits.unwrap_or(receipt.limits),
        ),
        None => (
            receipt.context.clone(),
            receipt.seed,
            receipt.fuel_limit,
            receipt.limits,
        ),
    };
    let base = Limits {
        max_input: input.len().max(Limits::default().max_input),
        deadline: replay_deadline(fuel),
        ..Limits::default()
    };
    let inv = Invocation {
        input,
        request_id: receipt.request_id,
        seed,
        context,
        limits: Limits::for_replay(fuel, &limits, &base),
        keep_trace: recorded_trace.is_some(),
    };
    let exec = host.run(&prepared, &inv)?;
    // This host gives a run at most its own cap. A run that stays under it
    // goes exactly as the original (growth past a limit always ends a run,
    // it is never shown to the guest); one stopped by the cap where the
    // original was not cannot be judged here.
    let cap = host.config().max_memory_bytes as u64;
    let stopped_by_cap = matches!(
        exec.outcome,
        Outcome::Aborted {
            reason: AbortReason::MemoryLimit,
            ..
        }
    ) && !matches!(
        receipt.outcome,
        Outcome::Aborted {
            reason: AbortReason::MemoryLimit,
            ..
        }
    );
    if limits.memory_bytes > cap && stopped_by_cap {
        return Err(ReplayError::OverCap {
            limit: limits.memory_bytes,
            cap,
        });
    }
    if let Outcome::Aborted {
        reason: AbortReason::Deadline,
        ..
    } = exec.outcome
        && !matches!(
            receipt.outcome,
            Outcome::Aborted {
                reason: AbortReason::Deadline,
                ..
            }
        )
    {
        return Err(ReplayError::Deadline(base.deadline));
    }

    let platform = host.platform_for(prepared.nan_mode());
    if platform.engine == receipt.platform.engine {
        report.push(
            "replay-platform",
            Verdict::Pass(format!(
                "same engine settings ({})",
                platform.engine.short()
            )),
        );
    } else {
        report.push(
            "replay-platform",
            Verdict::Skip(format!(
                "receipt ran on engine {} (wasmtime {}), this host is {} (wasmtime {}): fuel may differ",
                receipt.platform.engine.short(),
                receipt.platform.wasmtime,
                platform.engine.short(),
                platform.wasmtime
            )),
        );
    }
    if let Outcome::Aborted {
        reason: AbortReason::Deadline,
        ..
    } = receipt.outcome
    {
        report.push(
            "replay-outcome",
            Verdict::Skip("the run hit its wall-clock deadline, which cannot be replayed".into()),
        );
        return Ok(Replay {
            report,
            execution: exec,
        });
    }

    // The whole outcome, the tool's own message included; for a host abort
    // the reason (its detail text is the host's wording).
    let same_outcome = match (&receipt.outcome, &exec.outcome) {
        (Outcome::Aborted { reason: a, .. }, Outcome::Aborted { reason: b, .. }) => a == b,
        (a, b) => a == b,
    };
    report.push(
        "replay-outcome",
        if same_outcome {
            Verdict::Pass(format!("outcome {}", outcome_kind(&exec.outcome)))
        } else {
            Verdict::Fail(format!(
                "replay ended {}, receipt says {}",
                exec.outcome, receipt.outcome
            ))
        },
    );
    let same_engine = platform.engine == receipt.platform.engine;
    report.push(
        "replay-output",
        if exec.output_digest == receipt.output {
            Verdict::Pass(format!("output sha256:{}", exec.output_digest))
        } else {
            Verdict::Fail(format!(
                "replay output has sha256:{}, receipt says sha256:{}",
                exec.output_digest, receipt.output
            ))
        },
    );
    if !same_engine {
        // Fuel and the fuel-stamped trace depend on the engine's settings.
        report.push(
            "replay-fuel",
            Verdict::Skip("another engine: fuel is not comparable".into()),
        );
        report.push(
            "replay-trace",
            Verdict::Skip("another engine: the fuel-stamped trace is not comparable".into()),
        );
        return Ok(Replay {
            report,
            execution: exec,
        });
    }
    report.push(
        "replay-fuel",
        if exec.fuel_consumed == receipt.fuel_consumed {
            Verdict::Pass(format!("{} fuel", exec.fuel_consumed))
        } else {
            Verdict::Fail(format!(
                "replay consumed {} fuel, receipt says {}",
                exec.fuel_consumed, receipt.fuel_consumed
            ))
        },
    );
    let trace_verdict = if exec.trace_root == receipt.trace_root
        && exec.trace_events == receipt.trace_events
    {
        Verdict::Pass(format!(
            "{} events, root {}",
            exec.trace_events,
            exec.trace_root.short()
        ))
    } else {
        let mut why = format!(
            "replay trace has {} events and root {}, receipt says {} and {}",
            exec.trace_events,
            exec.trace_root.short(),
            receipt.trace_events,
            receipt.trace_root.short()
        );
        if let (Some(recorded), Some(replayed)) = (recorded_trace, &exec.trace) {
            let first = recorded
                .iter()
                .zip(replayed.iter())
                .position(|(a, b)| a != b)
                .or_else(|| {
                    (recorded.len() != replayed.len()).then(|| recorded.len().min(replayed.len()))
                });
            if let Some(i) = first {
                let name = |t: &[TraceEvent]| {
                    t.get(i)
                        .map(|e| e.call.to_string())
                        .unwrap_or_else(|| "(none)".into())
                };
                why.push_str(&format!(
                    "; first difference at event {i}: recorded {}, replayed {}",
                    name(recorded),
                    name(replayed)
                ));
            }
        }
        Verdict::Fail(why)
    };
    report.push("replay-trace", trace_verdict);
    Ok(Replay {
        report,
        execution: exec,
    })
}
