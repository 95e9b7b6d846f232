//! Tool receipts: what an executor signs about one run.
//!
//! A [`Receipt`] binds together who ran what for whom: the executor and the
//! requester, the requester's nonce, the capability and the exact component
//! (by digest), the digests of input and output, the outcome, the fuel used,
//! the root of the hash-chained trace of every host call, and the platform the
//! run happened on. Because execution is deterministic, anyone holding the
//! component and the input can replay the run and compare output digest, fuel
//! and trace root with the receipt.
//!
//! Everything the guest can observe that is not in the input is in the
//! receipt too: the wall-clock time it saw ([`InvocationContext::time`]), the
//! request parameters, and the seed of its randomness. A receipt answers one
//! signed [`crate::request::Request`]: it commits to that request's digest,
//! and [`SignedReceipt::check_binding`] checks every field against it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bounded::{BString, BVec, hex_array};
use crate::descriptor::{Name, Version, validate_name};
use crate::digest::Digest;
use crate::identity::PeerId;
use crate::request::{Seed, SignedRequest};
use crate::signed::{Invalid, Kind, Object, Signable, Signed};
use crate::time::UnixMillis;

/// A requester-chosen nonce naming one request: 16 bytes, hex in text.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RequestId(pub [u8; 16]);

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({self})")
    }
}

/// A request id that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request id {0:?}: expected 32 hex digits")]
pub struct ParseRequestIdError(pub String);

impl FromStr for RequestId {
    type Err = ParseRequestIdError;
    fn from_str(s: &str) -> Result<RequestId, ParseRequestIdError> {
        let mut out = [0u8; 16];
        hex::decode_to_slice(s.trim(), &mut out).map_err(|_| ParseRequestIdError(s.to_owned()))?;
        Ok(RequestId(out))
    }
}

impl Serialize for RequestId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex_array::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RequestId, D::Error> {
        hex_array::deserialize(d).map(RequestId)
    }
}

/// Which published capability a run was for.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CapabilityRef {
    /// The descriptor's name.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::name))]
    pub name: Name,
    /// The descriptor's version.
    pub version: Version,
    /// The descriptor's sequence number.
    pub seq: u64,
}

/// A request parameter the guest can read (for example a title).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Param {
    /// The key.
    pub key: BString<64>,
    /// The value.
    pub value: BString<1024>,
}

/// What the guest observes besides its input.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct InvocationContext {
    /// The wall-clock time the guest sees, fixed for the whole run.
    pub time: UnixMillis,
    /// Request parameters, at most 16.
    pub params: BVec<Param, 16>,
}

impl InvocationContext {
    /// A context at `time` with parameters from `(key, value)` pairs.
    /// Refuses repeated keys and anything over the bounds.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        time: UnixMillis,
        pairs: &[(K, V)],
    ) -> Result<InvocationContext, Invalid> {
        let mut params = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            if params.iter().any(|p: &Param| p.key == k) {
                return Err(Invalid::new(
                    "context.params",
                    format!("repeats the key {k:?}"),
                ));
            }
            params.push(Param {
                key: BString::new(k)
                    .map_err(|e| Invalid::new("context.params", format!("key {k:?}: {e}")))?,
                value: BString::new(v)
                    .map_err(|e| Invalid::new("context.params", format!("value of {k:?}: {e}")))?,
            });
        }
        Ok(InvocationContext {
            time,
            params: BVec::new(params).map_err(|e| Invalid::new("context.params", e.to_string()))?,
        })
    }

    /// Refuses a repeated parameter key.
    pub fn check_keys(&self) -> Result<(), Invalid> {
        let mut keys: Vec<&str> = self.params.iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        if keys.windows(2).any(|w| w[0] == w[1]) {
            return Err(Invalid::new("context.params", "repeats a key"));
        }
        Ok(())
    }

    /// The value of parameter `key`, if given.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.value.as_str())
    }
}

/// Why the host ended a run early.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbortReason {
    /// The fuel limit was reached.
    OutOfFuel,
    /// The guest tried to grow memory past its limit.
    MemoryLimit,
    /// The guest tried to grow a table past its limit.
    TableLimit,
    /// The guest created more instances than allowed.
    InstanceLimit,
    /// The wall-clock deadline passed (a backstop; not replayable).
    Deadline,
    /// The output exceeded its size limit.
    OutputTooLarge,
    /// The trace exceeded its event limit.
    TraceLimit,
    /// Captured stdout or stderr exceeded its limit.
    StdioLimit,
    /// The guest trapped (including a Rust panic or a stack overflow).
    Trap,
    /// The guest called an interface it was not granted.
    CapabilityDenied,
}

impl AbortReason {
    /// A short human name.
    pub fn as_str(self) -> &'static str {
        match self {
            AbortReason::OutOfFuel => "out of fuel",
            AbortReason::MemoryLimit => "memory limit",
            AbortReason::TableLimit => "table limit",
            AbortReason::InstanceLimit => "instance limit",
            AbortReason::Deadline => "deadline",
            AbortReason::OutputTooLarge => "output too large",
            AbortReason::TraceLimit => "trace limit",
            AbortReason::StdioLimit => "stdio limit",
            AbortReason::Trap => "trap",
            AbortReason::CapabilityDenied => "capability denied",
        }
    }
}

/// How a run ended.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The tool returned output.
    Ok,
    /// The tool refused its input.
    InvalidInput {
        /// The tool's message.
        message: BString<512>,
    },
    /// The tool reported a failure (for WASI commands: a non-zero exit).
    Failed {
        /// The tool's message.
        message: BString<512>,
    },
    /// The host ended the run.
    Aborted {
        /// Why.
        reason: AbortReason,
        /// Details.
        detail: BString<512>,
    },
}

impl Outcome {
    /// Whether the tool returned output.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::InvalidInput { message } => write!(f, "invalid input: {message}"),
            Outcome::Failed { message } => write!(f, "failed: {message}"),
            Outcome::Aborted { reason, detail } => {
                write!(f, "aborted ({}): {detail}", reason.as_str())
            }
        }
    }
}

/// The platform a run happened on.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// The Errand version.
    pub errand: BString<32>,
    /// The wasmtime version.
    pub wasmtime: BString<32>,
    /// Digest of the engine settings that make execution deterministic; a
    /// replay on an engine with another fingerprint may differ in fuel.
    pub engine: Digest,
}

/// The limits a run had, beyond fuel. A limit can decide how a run ends
/// (say, a memory-limit abort), so replay must apply the same ones; the
/// wall-clock deadline is left out because it cannot be replayed.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct RunLimits {
    /// Largest linear memory, in bytes.
    pub memory_bytes: u64,
    /// Largest table, in elements.
    pub table_elements: u64,
    /// Most core instances.
    pub instances: u32,
    /// Most tables.
    pub tables: u32,
    /// Most linear memories.
    pub memories: u32,
    /// Largest output, in bytes.
    pub max_output: u64,
    /// Most trace events.
    pub max_trace_events: u32,
    /// Most captured stdio bytes.
    pub max_stdio: u64,
    /// Most log bytes.
    pub max_log_bytes: u64,
}

/// A tool receipt (see the module docs).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The peer that ran the tool and signs this receipt.
    pub executor: PeerId,
    /// The peer that asked for the run.
    pub requester: PeerId,
    /// The requester's nonce.
    pub request_id: RequestId,
    /// Digest of the signed request this run answers
    /// ([`crate::request::SignedRequest::digest`]).
    pub request: Digest,
    /// The published capability, when the run was for one.
    pub capability: Option<CapabilityRef>,
    /// SHA-256 of the component that ran.
    pub component: Digest,
    /// SHA-256 of the input.
    pub input: Digest,
    /// What the guest saw besides its input.
    pub context: InvocationContext,
    /// The seed of the guest's randomness, from the request.
    pub seed: Seed,
    /// How the run ended.
    pub outcome: Outcome,
    /// SHA-256 of the output returned (of no bytes, when there was none).
    pub output: Digest,
    /// The fuel the run was allowed.
    pub fuel_limit: u64,
    /// The fuel it used.
    pub fuel_consumed: u64,
    /// The other limits it ran under.
    pub limits: RunLimits,
    /// The head of the hash chain over the trace ([`crate::evidence::TraceChain`]).
    pub trace_root: Digest,
    /// How many events the trace has.
    pub trace_events: u32,
    /// When the run started, by the executor's clock.
    pub started_at: UnixMillis,
    /// When it finished, by the executor's clock.
    pub finished_at: UnixMillis,
    /// What it ran on.
    pub platform: Platform,
}

/// A signed tool receipt.
pub type SignedReceipt = Signed<Receipt>;

impl Receipt {
    /// How long the run took by the executor's clock, in milliseconds.
    pub fn elapsed_ms(&self) -> u64 {
        self.finished_at.since(self.started_at)
    }
}

/// A seed for a local run that answers no signed request (`errand run`):
/// `SHA-256(len‖"errand/seed/v1" ‖ len‖request_id ‖ len‖input digest)`.
pub fn local_seed(request_id: &RequestId, input: &Digest) -> Seed {
    Seed(Digest::of_parts(&[b"errand/seed/v1", &request_id.0, &input.0]).0)
}

impl Object for Receipt {
    const KIND: Kind = Kind::Receipt;
    /// 2: the receipt answers a signed request (`request`, `seed`).
    const VERSION: u8 = 2;

    fn validate(&self) -> Result<(), Invalid> {
        if let Some(c) = &self.capability {
            validate_name(&c.name).map_err(|p| Invalid::new("capability.name", p))?;
        }
        if self.fuel_consumed > self.fuel_limit {
            return Err(Invalid::new(
                "fuel_consumed",
                format!(
                    "is {} but the limit was {}",
                    self.fuel_consumed, self.fuel_limit
                ),
            ));
        }
        if self.finished_at < self.started_at {
            return Err(Invalid::new("finished_at", "is before started_at"));
        }
        self.context.check_keys()?;
        if !self.outcome.is_ok() && self.output != Digest::of(b"") {
            return Err(Invalid::new(
                "output",
                "must be the digest of no bytes when the outcome is not ok",
            ));
        }
        Ok(())
    }
}

impl Signable for Receipt {
    fn signer(&self) -> PeerId {
        self.executor
    }
}

/// How a receipt fails to bind an invocation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// The executor's signature does not verify.
    #[error("receipt signature invalid: {0}")]
    Signature(crate::identity::SignatureError),
    /// The request's signature does not verify.
    #[error("request signature invalid: {0}")]
    RequestSignature(crate::identity::SignatureError),
    /// The receipt ran something else than the request asked for.
    #[error("receipt does not answer the request: {field} asked {asked}, ran {ran}")]
    Field {
        /// Which field differs.
        field: &'static str,
        /// What the request asked for.
        asked: String,
        /// What the receipt says ran.
        ran: String,
    },
    /// Names another output than the one returned.
    #[error("receipt says output sha256:{found}, but the returned output is sha256:{expected}")]
    Output {
        /// Digest of what we got.
        expected: Digest,
        /// The receipt's.
        found: Digest,
    },
}

/// What a requester expects a receipt to bind.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The signed request we sent (it names the executor dialled, us, the
    /// nonce, the target, the input's digest and everything the run had to
    /// use).
    pub request: &'a SignedRequest,
    /// The output we got back.
    pub output: &'a [u8],
}

impl SignedReceipt {
    /// Checks that this receipt is a valid signature by the executor the
    /// request addressed, over exactly that request
    /// ([`crate::request::Request::check_receipt`]) and the output we
    /// received.
    pub fn check_binding(&self, e: &Expected<'_>) -> Result<(), BindingError> {
        self.bind(e, true)
    }

    /// [`SignedReceipt::check_binding`] for the requester that signed
    /// `e.request` itself and has held it since: every check but the
    /// request's own signature, which it made (one ed25519 verification
    /// fewer per invocation). Whoever got the request from elsewhere (an
    /// auditor, a witness) uses [`SignedReceipt::check_binding`].
    pub fn check_answer(&self, e: &Expected<'_>) -> Result<(), BindingError> {
        self.bind(e, false)
    }

    fn bind(&self, e: &Expected<'_>, verify_request: bool) -> Result<(), BindingError> {
        let r = self.body();
        let asked = e.request.body();
        if r.executor != asked.executor {
            return Err(BindingError::Field {
                field: "executor",
                asked: asked.executor.to_string(),
                ran: r.executor.to_string(),
            });
        }
        self.verify().map_err(BindingError::Signature)?;
        if verify_request {
            e.request.verify().map_err(BindingError::RequestSignature)?;
        }
        asked.check_receipt(e.request.digest(), r)?;
        let output = Digest::of(e.output);
        if output != r.output {
            return Err(BindingError::Output {
                expected: output,
                found: r.output,
            });
        }
        Ok(())
    }
}
