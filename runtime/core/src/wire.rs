//! Wire messages between peers.
//!
//! Peers talk over QUIC (see `errand-net`). Every exchange is one request
//! and one response on a fresh bidirectional stream; each message is one
//! length-prefixed frame holding a [`Request`] or [`Response`], encoded like
//! every Errand object (type tag, format version, canonical postcard, bounds
//! checked before allocating; see [`crate::signed`]).
//!
//! ## Message flows
//!
//! **Publishing** (publisher → registry):
//!
//! ```text
//! Publish([signed descriptor, …])  →  Published([outcome per descriptor])
//! ```
//! The registry checks each signature, freshness and sequence number, and
//! answers per descriptor: accepted, stale, expired, withdrawn, over quota,
//! or invalid. Publishers refresh before the TTL runs out and republish at
//! once, with a higher `seq`, when a capability changes or goes away.
//!
//! **Discovery** (requester → registry):
//!
//! ```text
//! Query{intent, constraints, limit}  →  Candidates([signed descriptor, …])
//! ```
//! Candidates are full signed descriptors, best first, so the requester
//! verifies each itself and trusts the registry for nothing but recall.
//!
//! **Invocation** (requester → executor):
//!
//! ```text
//! Invoke{signed request, input}  →  Invoked{output, receipt, trace?}
//! ```
//! The requester signs what it asks for ([`crate::request::Request`]: the
//! executor, the capability, the input's digest, parameters, time, fuel cap,
//! limits, nonce and seed). The executor checks that the request is signed
//! by the peer on the connection, addressed to it, for this input, with a
//! fresh nonce and within its caps; runs exactly that; stores the receipt
//! durably; then answers. The requester checks that the receipt is signed by
//! the peer it dialled and answers its request field by field
//! ([`crate::receipt::SignedReceipt::check_binding`]).
//!
//! **Action shipping** (requester → executor, if the executor's policy
//! allows it for this requester):
//!
//! ```text
//! Invoke{request{component: digest}, no bytes}  →  Error(NeedComponent)   // only if not held
//! Invoke{request{component: digest}, bytes}     →  Invoked{…}
//! ```
//!
//! **Auditing and canaries**:
//!
//! ```text
//! GetReceipt(request id)  →  Receipt(signed receipt, if stored)   // the asker's own requests only
//! FetchPackage(package digest) → Package(tool package, if hosted)
//! Status                  →  Status(report)            // the node's own key only
//! Ping                    →  Pong
//! ```
//!
//! **Reachability** (see [`crate::reach`] for the flows: address discovery,
//! relay reservations and circuits, hole punching):
//!
//! ```text
//! Observe                 →  Observed(address seen)
//! Relay(relay request)    →  Relay(relay response)     // then, on a circuit, packets
//! Punch(offer)            →  Punch(offer)
//! Reachability            →  Reachability(report)      // the node's own key only
//! ```
//!
//! Any request may instead get `Error{code, message}`. A peer that sends a
//! frame that does not decode, or one over the size limit, gets a
//! `BadRequest`/`TooLarge` error and is disconnected.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::bounded::{BBytes, BString, BVec};
use crate::descriptor::{MediaType, Name, SignedDescriptor, Tiers, Version};
use crate::digest::Digest;
use crate::evidence::{MAX_BLOB_BYTES, MAX_TRACE_EVENTS, TraceEvent};
use crate::identity::PeerId;
use crate::package::Package;
use crate::reach::{PunchOffer, ReachabilityReport, RelayLimits, RelayRefusal};
use crate::receipt::{RequestId, SignedReceipt};
use crate::request::SignedRequest;
use crate::signed::{Invalid, Kind, Object};

/// Most descriptors in one `Publish`.
pub const MAX_PUBLISH_BATCH: usize = 512;
/// Most candidates in one answer.
pub const MAX_CANDIDATES: usize = 100;

/// What a requester is looking for (see [`crate::discovery`]).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Query {
    /// Free text: what the requester wants done.
    pub intent: BString<512>,
    /// Only capabilities declaring at most this latency.
    pub max_latency_ms: Option<u32>,
    /// Only capabilities declaring at most this cost.
    pub max_cost: Option<u32>,
    /// Tiers the capability must support.
    pub tiers: Tiers,
    /// Required input media type (parameters ignored).
    pub input: Option<MediaType>,
    /// Required output media type (parameters ignored).
    pub output: Option<MediaType>,
    /// Exact capability name.
    pub name: Option<Name>,
    /// A version the capability must be compatible with: same major
    /// version, and at least this one.
    pub version: Option<Version>,
    /// Only this publisher's capabilities.
    pub publisher: Option<PeerId>,
    /// Most candidates wanted (1..=100).
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::query_limit))]
    pub limit: u16,
}

/// An invocation request: the signed request and the bytes it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeRequest {
    /// What is asked, signed by the requester.
    pub request: SignedRequest,
    /// The input, whose digest the request names.
    pub input: BBytes<MAX_BLOB_BYTES>,
    /// Action shipping: the component's bytes, sent only when the executor
    /// does not hold the digest the request names.
    pub component: Option<BBytes<MAX_BLOB_BYTES>>,
    /// Whether to return the full trace.
    pub want_trace: bool,
}

/// An invocation's result.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeResponse {
    /// The output (empty unless the receipt's outcome is ok).
    pub output: BBytes<MAX_BLOB_BYTES>,
    /// The executor's signed receipt.
    pub receipt: SignedReceipt,
    /// The trace, when asked for.
    pub trace: Option<BVec<TraceEvent, MAX_TRACE_EVENTS>>,
}

/// A registry's verdict on one published descriptor.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PublishOutcome {
    /// Indexed.
    Accepted,
    /// A tombstone: the entry was removed.
    Withdrawn,
    /// The registry holds this or a newer sequence number.
    Stale {
        /// The sequence number held.
        held: u64,
    },
    /// Past its TTL, or issued in the future.
    Expired,
    /// The signature does not verify.
    BadSignature,
    /// The publisher is over its count or rate quota.
    OverQuota(BString<128>),
    /// The registry is full.
    Full,
}

/// Error classes.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request is malformed or inconsistent.
    BadRequest,
    /// A frame or field is over the size limit.
    TooLarge,
    /// No such capability, receipt or package.
    NotFound,
    /// Action shipping: send the component's bytes.
    NeedComponent,
    /// Policy forbids it (action shipping, status).
    Forbidden,
    /// At a concurrency limit; retry later.
    Busy,
    /// This node does not serve that role (e.g. not a registry).
    Unsupported,
    /// A nonce was reused.
    Replay,
    /// Something failed on the node.
    Internal,
}

/// An error answer.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The class.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: BString<1024>,
}

impl WireError {
    /// An error of class `code`.
    pub fn new(code: ErrorCode, message: impl std::fmt::Display) -> WireError {
        WireError {
            code,
            message: BString::truncate_from(&message.to_string()),
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

/// A hosted capability, in a status report.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedCapability {
    /// Name.
    pub name: Name,
    /// Version.
    pub version: Version,
    /// Component digest.
    pub component: Digest,
    /// Current descriptor sequence number.
    pub seq: u64,
    /// Measured latency (EWMA), if any run happened.
    pub measured_latency_ms: Option<u32>,
}

/// A node's status.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The node.
    pub peer: PeerId,
    /// Its Errand version.
    pub version: BString<32>,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Peers with an open connection.
    pub peers: BVec<PeerId, 4096>,
    /// What it hosts.
    pub capabilities: BVec<HostedCapability, 4096>,
    /// Live registry entries, if it is a registry.
    pub registry_entries: Option<u64>,
    /// Receipts in its durable store.
    pub receipts_stored: u64,
    /// Invocations served since start.
    pub invocations_served: u64,
}

/// What a relay is asked (see [`crate::reach`] for the flows).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayRequest {
    /// Hold a reservation for the asker: the relay may open circuits to it
    /// on this connection while it lives.
    Reserve,
    /// Open a circuit to `target`, which holds a reservation; the stream
    /// then carries packets.
    Connect {
        /// The peer to reach.
        target: PeerId,
    },
    /// From the relay to a peer holding a reservation: a circuit from
    /// `from` opens on this stream.
    Incoming {
        /// The peer that asked for the circuit.
        from: PeerId,
        /// The address the relay sees `from` at, which the target's
        /// admission control counts the circuit's connection against
        /// (with the relay's own address).
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::socket_addr))]
        seen: SocketAddr,
    },
}

/// A relay's answer (see [`crate::reach`] for the flows).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayResponse {
    /// The reservation is held.
    Reserved {
        /// The address the relay sees the asker at.
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::socket_addr))]
        observed: SocketAddr,
        /// The relay's limits.
        limits: RelayLimits,
    },
    /// The circuit is open: the stream now carries packets.
    Connected {
        /// The address the relay sees the asker at (for its hole punch).
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::socket_addr))]
        observed: SocketAddr,
        /// The relay's limits, which the circuit is held to.
        limits: RelayLimits,
    },
    /// From the reserved peer: it takes the circuit.
    Accepted,
    /// Refused, naming why.
    Refused(RelayRefusal),
}

/// A request (see the module docs).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness.
    Ping,
    /// Publish descriptors to a registry.
    Publish(BVec<SignedDescriptor, MAX_PUBLISH_BATCH>),
    /// Ask a registry for candidates.
    Query(Query),
    /// Run something.
    Invoke(Box<InvokeRequest>),
    /// Fetch a stored receipt.
    GetReceipt(RequestId),
    /// Fetch a hosted tool package by package digest
    /// ([`crate::package::Package::digest`]).
    FetchPackage(Digest),
    /// The node's status (its own key only).
    Status,
    /// The address this request came from, as the node sees it.
    Observe,
    /// A relay reservation or circuit.
    Relay(RelayRequest),
    /// Hole punching: the asker's candidates.
    Punch(PunchOffer),
    /// The node's reachability (its own key only).
    Reachability,
}

/// A response (see the module docs).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Liveness.
    Pong,
    /// Per-descriptor outcomes, in order.
    Published(BVec<PublishOutcome, MAX_PUBLISH_BATCH>),
    /// Candidates, best first.
    Candidates(BVec<SignedDescriptor, MAX_CANDIDATES>),
    /// An invocation's result.
    Invoked(Box<InvokeResponse>),
    /// A stored receipt, if any.
    Receipt(Option<Box<SignedReceipt>>),
    /// A hosted package, if any.
    Package(Option<Box<Package>>),
    /// Status.
    Status(Box<StatusReport>),
    /// An error.
    Error(WireError),
    /// The address the request came from.
    Observed(
        #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::socket_addr))]
        SocketAddr,
    ),
    /// A relay's answer.
    Relay(RelayResponse),
    /// Hole punching: the answerer's candidates (it is probing the asker's).
    Punch(PunchOffer),
    /// Reachability.
    Reachability(Box<ReachabilityReport>),
}

impl Object for Request {
    const KIND: Kind = Kind::Request;
    /// 2: invocations carry a signed request. 3: reachability (`Observe`,
    /// `Relay`, `Punch`, `Reachability`); version 2 is still read.
    const VERSION: u8 = 3;
    const MIN_VERSION: u8 = 2;

    fn check_version(&self, version: u8) -> Result<(), Invalid> {
        match self {
            Request::Observe | Request::Relay(_) | Request::Punch(_) | Request::Reachability
                if version < 3 =>
            {
                Err(Invalid::new(
                    "request",
                    format!("is a reachability request, which version {version} does not have"),
                ))
            }
            _ => Ok(()),
        }
    }

    fn validate(&self) -> Result<(), Invalid> {
        match self {
            Request::Query(q) if q.limit == 0 || usize::from(q.limit) > MAX_CANDIDATES => {
                Err(Invalid::new(
                    "query.limit",
                    format!("is {}, must be 1..={MAX_CANDIDATES}", q.limit),
                ))
            }
            Request::Invoke(inv) => {
                let asked = inv.request.body();
                if Digest::of(&inv.input) != asked.input {
                    return Err(Invalid::new(
                        "input",
                        "does not match the digest the signed request names",
                    ));
                }
                match (&inv.component, asked.component) {
                    (Some(b), Some(d)) if Digest::of(b) != d => Err(Invalid::new(
                        "component",
                        "bytes do not match the digest the signed request names",
                    )),
                    (Some(_), None) => Err(Invalid::new(
                        "component",
                        "bytes sent, but the signed request names no component",
                    )),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}

impl Object for Response {
    const KIND: Kind = Kind::Response;
    /// 2: packages carry their author's signature. 3: reachability
    /// (`Observed`, `Relay`, `Punch`, `Reachability`, descriptors with relay
    /// paths); version 2 is still read.
    const VERSION: u8 = 3;
    const MIN_VERSION: u8 = 2;

    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }

    fn check_version(&self, version: u8) -> Result<(), Invalid> {
        match self {
            Response::Observed(_)
            | Response::Relay(_)
            | Response::Punch(_)
            | Response::Reachability(_)
                if version < 3 =>
            {
                Err(Invalid::new(
                    "response",
                    format!("is a reachability answer, which version {version} does not have"),
                ))
            }
            _ => Ok(()),
        }
    }
}
