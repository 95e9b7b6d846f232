//! Signed invocation requests: exactly what a requester asked for.
//!
//! Before it sends work to an executor, a requester signs a [`Request`]: the
//! executor it addresses, the capability (or component digest) to run, the
//! digest of the input, the parameters and declared time the tool will see,
//! the fuel cap and (when the requester knows them from the author-signed
//! manifest) the run limits, a single-use nonce, and the seed of the guest's
//! randomness. The seed is drawn by the requester and does not depend on the
//! nonce, so the same request can go to two executors (a cross-check) and
//! must give the same answer.
//!
//! The executor's receipt commits to the request's digest
//! ([`crate::receipt::Receipt::request`]) and repeats each field it ran
//! with; [`Request::check_receipt`] compares them one by one and names the
//! first that differs. Replay runs the *request*, never the receipt's
//! claims, so an executor that ran cheaper work (other parameters, less
//! fuel, another seed) and signed that honestly is caught either way.
//!
//! ```text
//! requester                                   executor
//!   sign Request{executor, target, input digest, params, time,
//!                fuel cap, limits?, nonce, seed}
//!   Invoke{signed request, input}  ─────────────►  checks: signed by the
//!                                                  connection's peer, addressed
//!                                                  to us, input digest, fresh
//!                                                  nonce, within our caps
//!                                                  runs exactly that
//!   ◄──────────── Invoked{output, receipt{request digest, …}}
//!   check_receipt: every field, then the digest
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bounded::hex_array;
use crate::descriptor::{Name, Version, validate_name};
use crate::digest::Digest;
use crate::identity::PeerId;
use crate::receipt::{BindingError, InvocationContext, Receipt, RequestId, RunLimits};
use crate::signed::{Invalid, Kind, Object, Signable, Signed};

/// The seed of the guest's randomness, chosen by the requester.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seed(pub [u8; 32]);

impl fmt::Display for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seed({self})")
    }
}

impl Serialize for Seed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex_array::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Seed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Seed, D::Error> {
        hex_array::deserialize(d).map(Seed)
    }
}

/// A published capability, by name and (optionally) a compatible version.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CapabilityTarget {
    /// The capability's name.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::name))]
    pub name: Name,
    /// A version the executor's must be compatible with (same major, at
    /// least this one).
    pub version: Option<Version>,
}

/// A signed request (see the module docs).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The peer asking, which signs.
    pub requester: PeerId,
    /// The peer asked to run it.
    pub executor: PeerId,
    /// The requester's single-use nonce.
    pub request_id: RequestId,
    /// The published capability to run; `None` for a shipped component.
    pub capability: Option<CapabilityTarget>,
    /// The exact component to run, when the requester pins one (always for
    /// a shipped component).
    pub component: Option<Digest>,
    /// SHA-256 of the input.
    pub input: Digest,
    /// The declared time and the parameters the tool sees.
    pub context: InvocationContext,
    /// The fuel the run has: an executor whose policy allows less refuses
    /// the request rather than run with less.
    pub fuel: u64,
    /// The limits the run must have, when the requester states them (from
    /// the author-signed manifest); otherwise the executor's, as recorded
    /// in its receipt.
    pub limits: Option<RunLimits>,
    /// The seed of the guest's randomness.
    pub seed: Seed,
}

/// A signed request.
pub type SignedRequest = Signed<Request>;

impl Object for Request {
    const KIND: Kind = Kind::SignedRequest;
    const VERSION: u8 = 1;

    fn validate(&self) -> Result<(), Invalid> {
        match (&self.capability, &self.component) {
            (None, None) => Err(Invalid::new(
                "capability",
                "and component are both missing: a request must name what to run",
            )),
            (Some(c), _) => {
                validate_name(&c.name).map_err(|p| Invalid::new("capability.name", p))?;
                self.context.check_keys()
            }
            _ => self.context.check_keys(),
        }
    }
}

impl Signable for Request {
    fn signer(&self) -> PeerId {
        self.requester
    }
}

fn field<T: fmt::Display + PartialEq>(
    field: &'static str,
    asked: &T,
    ran: &T,
) -> Result<(), BindingError> {
    if asked == ran {
        Ok(())
    } else {
        Err(BindingError::Field {
            field,
            asked: asked.to_string(),
            ran: ran.to_string(),
        })
    }
}

impl Request {
    /// Checks that `receipt` answers exactly this request: same parties,
    /// nonce, target, input, parameters, time, seed, limits, fuel, and the
    /// request's digest `digest`. Names the first
    /// field that differs. The signatures are not checked here.
    pub fn check_receipt(&self, digest: Digest, receipt: &Receipt) -> Result<(), BindingError> {
        field("executor", &self.executor, &receipt.executor)?;
        field("requester", &self.requester, &receipt.requester)?;
        field("request id", &self.request_id, &receipt.request_id)?;
        if let Some(c) = &self.component {
            field("component", c, &receipt.component)?;
        }
        match (&self.capability, &receipt.capability) {
            (Some(want), Some(got)) => {
                field("capability", &want.name, &got.name)?;
                if let Some(v) = want.version
                    && !(got.version.major == v.major && got.version >= v)
                {
                    return Err(BindingError::Field {
                        field: "capability version",
                        asked: format!("{v} or compatible"),
                        ran: got.version.to_string(),
                    });
                }
            }
            (Some(want), None) => {
                return Err(BindingError::Field {
                    field: "capability",
                    asked: want.name.to_string(),
                    ran: "a shipped component".into(),
                });
            }
            (None, Some(got)) => {
                return Err(BindingError::Field {
                    field: "capability",
                    asked: "a shipped component".into(),
                    ran: got.name.to_string(),
                });
            }
            (None, None) => {}
        }
        field("input", &self.input, &receipt.input)?;
        field(
            "params",
            &ParamsText(&self.context),
            &ParamsText(&receipt.context),
        )?;
        field("time", &self.context.time, &receipt.context.time)?;
        field("seed", &self.seed, &receipt.seed)?;
        // Exactly the fuel asked: with less, an executor could stop early,
        // report running out of fuel, and have a replay agree.
        field("fuel", &self.fuel, &receipt.fuel_limit)?;
        if let Some(l) = &self.limits {
            field("limits", &LimitsText(l), &LimitsText(&receipt.limits))?;
        }
        field("request", &digest, &receipt.request)
    }
}

/// Parameters as `k=v, …`, in order (for messages). Two are equal only
/// when the guest would see the same list.
pub struct ParamsText<'a>(pub &'a InvocationContext);

impl fmt::Display for ParamsText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.params.is_empty() {
            return f.write_str("(none)");
        }
        for (i, p) in self.0.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}={}", p.key, p.value)?;
        }
        Ok(())
    }
}

impl PartialEq for ParamsText<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.0.params == o.0.params
    }
}

#[derive(PartialEq)]
struct LimitsText<'a>(&'a RunLimits);

impl fmt::Display for LimitsText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}
