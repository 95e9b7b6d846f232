//! Reachability: relays, address discovery, NAT classification and hole
//! punching, as data and I/O-free logic (the sockets are in `errand-net`).
//!
//! See `docs/reachability.md` for the operator's view. Whatever path a
//! session takes (direct, punched or relayed), it is QUIC with TLS bound to
//! both peers' ed25519 keys, end to end; a relay only ever forwards the
//! session's ciphertext.
//!
//! ## Message flows
//!
//! **Address discovery** (any peer → any peer, usually a registry or relay):
//!
//! ```text
//! Observe  →  Observed(the address the packet came from)
//! ```
//! Asked from the one UDP socket a node uses for everything, so the answer is
//! the NAT mapping its sessions use. [`classify`] compares what observers at
//! two addresses see. Only observers the node chose itself (its configured
//! registries and relays) count: an observer can say anything, and one that
//! lied could change the node's classification and its punch candidates.
//!
//! **Reservation** (unreachable peer B → relay R, on B's connection to R):
//!
//! ```text
//! Relay(Reserve)  →  Relay(Reserved{observed, limits})      // or Refused(why)
//! ```
//! While that connection lives, R may open circuits to B on it. B publishes
//! `relay://R@addr` among its paths.
//!
//! **Circuit** (requester A → relay R → B):
//!
//! ```text
//! A→R  Relay(Connect{target: B})            on a new stream of A's connection
//!      R→B  Relay(Incoming{from: A})        on a new stream of B's connection
//!      B→R  Relay(Accepted)
//! R→A  Relay(Connected{observed, limits})   // or Refused(why), naming the limit
//! then, on both streams, packets:  len: u16 big-endian ‖ packet   (≤ MAX_RELAYED_PACKET)
//! ```
//! The packets are A's and B's own QUIC packets: A dials B through the
//! circuit exactly as it dials an address, and the TLS handshake inside
//! proves B's key to A and A's to B. R copies packets from one stream to the
//! other; it counts their bytes and ends the circuit (resetting both streams
//! with the code of the limit, [`CircuitEnd`]) when a byte or duration
//! limit is reached.
//!
//! **Hole punching** (A → B, over their relayed session):
//!
//! ```text
//! Punch(PunchOffer{A's candidates})  →  Punch(PunchOffer{B's candidates})
//! ```
//! Both sides then follow a [`PunchPlan`]: probe packets at the other's
//! candidates from their session socket, several times; A also dials each
//! candidate. A direct session that completes replaces the relayed one for
//! new requests. The offers travel inside the end-to-end session, so the
//! relay cannot alter them in flight; but what a peer offers is partly what
//! its observers told it, and a relay named in someone else's descriptor
//! is nobody's chosen observer: its word (`Connected{observed}`) is a
//! candidate for that one punch only, never part of the node's NAT
//! picture. Only relayed sessions are punched, offers are answered once
//! per peer per 30 s, and probes and dials only go to [`punchable`]
//! addresses.
//!
//! **Status** (the node's own key only):
//!
//! ```text
//! Reachability  →  Reachability(ReachabilityReport)
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bounded::{BString, BVec};
use crate::descriptor::NetAddr;
use crate::identity::PeerId;

/// The largest packet a circuit carries, in bytes (QUIC packets are at
/// most about 1.5 KB on the paths Errand uses).
pub const MAX_RELAYED_PACKET: usize = 2048;

/// A circuit stream, split into its packets (`len: u16 big-endian ‖
/// packet`, 1 to [`MAX_RELAYED_PACKET`] bytes) whatever pieces its bytes
/// arrive in. Holds at most one partial packet beyond what was pushed.
#[derive(Debug, Clone, Default)]
pub struct PacketFrames {
    buf: Vec<u8>,
    at: usize,
}

impl PacketFrames {
    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at >= self.buf.len() / 2 {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, if one has arrived; a frame whose length is
    /// 0 or over [`MAX_RELAYED_PACKET`] is [`CircuitEnd::Malformed`] (and
    /// so is everything after it).
    pub fn next_packet(&mut self) -> Result<Option<&[u8]>, CircuitEnd> {
        let rest = &self.buf[self.at..];
        let Some(head) = rest.get(..2) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([head[0], head[1]]));
        if len == 0 || len > MAX_RELAYED_PACKET {
            return Err(CircuitEnd::Malformed);
        }
        if rest.len() < 2 + len {
            return Ok(None);
        }
        let start = self.at + 2;
        self.at = start + len;
        Ok(Some(&self.buf[start..start + len]))
    }

    /// Bytes held that are not yet a whole packet.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.at
    }
}

/// Appends `packet` to `out` as a circuit frame; a packet that is empty or
/// over [`MAX_RELAYED_PACKET`] is left out (`false`): no QUIC packet is.
pub fn frame_packet(out: &mut Vec<u8>, packet: &[u8]) -> bool {
    let Ok(len) = u16::try_from(packet.len()) else {
        return false;
    };
    if packet.is_empty() || packet.len() > MAX_RELAYED_PACKET {
        return false;
    }
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(packet);
    true
}

/// The first bytes of a hole-punching probe; the sender's peer id (32
/// bytes) follows.
pub const PROBE_MAGIC: &[u8; 8] = b"errandP\x01";

/// A probe's length.
pub const PROBE_LEN: usize = PROBE_MAGIC.len() + 32;

/// A hole-punching probe from `me`: a datagram sent out of the session's
/// UDP socket towards a punch candidate (see `errand_net::punch`).
pub fn probe(me: PeerId) -> [u8; PROBE_LEN] {
    let mut p = [0u8; PROBE_LEN];
    p[..PROBE_MAGIC.len()].copy_from_slice(PROBE_MAGIC);
    p[PROBE_MAGIC.len()..].copy_from_slice(&me.0);
    p
}

/// The sender a probe names, if `datagram` is one. Unauthenticated: it only
/// says where to try a connection, whose handshake then proves the key.
pub fn parse_probe(datagram: &[u8]) -> Option<PeerId> {
    if datagram.len() != PROBE_LEN {
        return None;
    }
    let rest = datagram.strip_prefix(&PROBE_MAGIC[..])?;
    Some(PeerId(rest.try_into().ok()?))
}

/// Most candidates in a [`PunchOffer`].
pub const MAX_PUNCH_CANDIDATES: usize = 8;

/// How a connection was made.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PathKind {
    /// Straight to the peer's address.
    Direct,
    /// Straight to the peer's address, after a hole punch.
    Punched,
    /// Through a relay.
    Relayed,
}

impl PathKind {
    /// Whether a connection made this way is better than one made `other`
    /// way: any direct path beats a relayed one.
    pub fn better_than(self, other: PathKind) -> bool {
        self != PathKind::Relayed && other == PathKind::Relayed
    }
}

impl std::fmt::Display for PathKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathKind::Direct => "direct",
            PathKind::Punched => "punched",
            PathKind::Relayed => "relayed",
        })
    }
}

/// What a node knows of its NAT's address mapping (see [`classify`]).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NatMapping {
    /// No observer has answered yet.
    Unknown,
    /// Observers see one of the node's own addresses: no NAT.
    Public,
    /// Behind a NAT, seen by one observer only: not classified yet.
    Unclassified,
    /// Observers at different addresses see the same address and port:
    /// hole punching works.
    EndpointIndependent,
    /// Observers at different addresses see different ports ("symmetric"
    /// NAT): peers reach the node through a relay.
    EndpointDependent,
}

impl std::fmt::Display for NatMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NatMapping::Unknown => "unknown (no observer yet)",
            NatMapping::Public => "none (public address)",
            NatMapping::Unclassified => "behind NAT (one observer, not classified yet)",
            NatMapping::EndpointIndependent => "endpoint-independent (hole punching works)",
            NatMapping::EndpointDependent => "endpoint-dependent, symmetric (relayed)",
        })
    }
}

/// What one observer saw: the address a node's packets came from.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Observation {
    /// The observer.
    pub observer: PeerId,
    /// Where the observer was reached.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::socket_addr))]
    pub observer_addr: SocketAddr,
    /// The address it saw the node's packets come from.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::socket_addr))]
    pub seen: SocketAddr,
    /// The node's own address towards that observer (its socket's port and
    /// the interface address the route to the observer leaves from), when
    /// known.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::option_socket_addr))]
    pub local: Option<SocketAddr>,
}

impl Observation {
    /// Whether the observer saw the node's own address: no NAT on the way.
    pub fn unmapped(&self) -> bool {
        self.local == Some(self.seen)
    }
}

/// Classifies a node's NAT mapping from what its observers saw (the latest
/// observation per observer). Observers at the same address count once.
/// Pass only observers the node chose (its configured registries and
/// relays): any one of them can make the node [`NatMapping::Public`], and
/// so stop it reserving with relays.
///
/// * none: [`NatMapping::Unknown`];
/// * any observer saw the node's own address: [`NatMapping::Public`];
/// * one observer address: [`NatMapping::Unclassified`];
/// * observers at two or more addresses, all seeing one address and port:
///   [`NatMapping::EndpointIndependent`]; seeing several:
///   [`NatMapping::EndpointDependent`].
pub fn classify(observations: &[Observation]) -> NatMapping {
    if observations.is_empty() {
        return NatMapping::Unknown;
    }
    if observations.iter().any(Observation::unmapped) {
        return NatMapping::Public;
    }
    let mut observers: Vec<SocketAddr> = observations.iter().map(|o| o.observer_addr).collect();
    observers.sort();
    observers.dedup();
    if observers.len() < 2 {
        return NatMapping::Unclassified;
    }
    let first = observations[0].seen;
    if observations.iter().all(|o| o.seen == first) {
        NatMapping::EndpointIndependent
    } else {
        NatMapping::EndpointDependent
    }
}

/// Whether a node may be dialled at its own addresses, as far as it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// Decide from the observers: reserve with relays unless they see the
    /// node's own address.
    #[default]
    Auto,
    /// Always reachable at its addresses: never reserve.
    Public,
    /// Never reachable at its addresses: always reserve, and publish only
    /// relay paths (and addresses listed explicitly).
    Private,
}

/// Whether a node in `mode`, whose mapping is `nat`, should hold relay
/// reservations. In `Auto` it waits for a first observation rather than
/// reserving on the way up.
pub fn wants_relay(mode: Reachability, nat: NatMapping) -> bool {
    match mode {
        Reachability::Public => false,
        Reachability::Private => true,
        Reachability::Auto => !matches!(nat, NatMapping::Public | NatMapping::Unknown),
    }
}

/// Orders a peer's paths for dialling: direct ones first, in the order
/// published, then relayed ones. Duplicates go. They are then tried all at
/// once; the order decides which wins a tie.
pub fn order_paths(paths: &[NetAddr]) -> Vec<NetAddr> {
    let mut out: Vec<NetAddr> = Vec::with_capacity(paths.len());
    for p in paths.iter().filter(|p| !p.is_relayed()) {
        if !out.contains(p) {
            out.push(*p);
        }
    }
    for p in paths.iter().filter(|p| p.is_relayed()) {
        if !out.contains(p) {
            out.push(*p);
        }
    }
    out
}

/// A relay's limits, per peer. Each one refused or reached is reported by
/// name ([`RelayRefusal`], [`CircuitEnd`]).
///
/// Besides these, one requester's address (an IPv4 address or an IPv6 /64,
/// as the relay sees it) may hold at most a quarter of a target's circuits
/// ([`RelayLimits::circuits_per_address_to_target`]) and open at most a
/// quarter of its circuits per minute
/// ([`RelayLimits::rate_per_address_to_target`]), so that no one host can
/// take every circuit slot of a target.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RelayLimits {
    /// Peers holding a reservation, in all.
    pub max_reservations: u32,
    /// Reservations held from one address (an IPv4 address or an IPv6
    /// /64): one host cannot fill the relay with made-up identities.
    pub max_reservations_per_address: u32,
    /// Circuits open at once with a given peer at either end.
    pub max_circuits_per_peer: u32,
    /// Bytes one circuit carries, both ways together.
    pub max_circuit_bytes: u64,
    /// How long one circuit lasts, in milliseconds.
    pub max_circuit_duration_ms: u64,
    /// How long either direction of a circuit may carry nothing before the
    /// circuit is closed, in milliseconds. A live QUIC session sends
    /// keep-alives both ways well within it (Errand every 10 s by default);
    /// a circuit that carries nothing each way within
    /// [`CIRCUIT_HANDSHAKE_MS`] of opening (or this, if shorter) is closed
    /// then.
    pub circuit_idle_ms: u64,
    /// New circuits a given peer may open or receive per minute.
    pub circuits_per_minute: u32,
}

impl Default for RelayLimits {
    fn default() -> RelayLimits {
        RelayLimits {
            max_reservations: 1024,
            max_reservations_per_address: 8,
            max_circuits_per_peer: 16,
            max_circuit_bytes: 1 << 30,
            max_circuit_duration_ms: 3_600_000,
            circuit_idle_ms: 60_000,
            circuits_per_minute: 60,
        }
    }
}

/// How soon after opening a circuit must have carried a packet each way
/// (the start of a QUIC handshake), in milliseconds, unless
/// [`RelayLimits::circuit_idle_ms`] is shorter.
pub const CIRCUIT_HANDSHAKE_MS: u64 = 10_000;

/// A quarter of `limit`, at least 1: one requester address's share of a
/// target's limit.
fn share(limit: u32) -> u32 {
    (limit / 4).max(1)
}

impl RelayLimits {
    /// Circuits one requester address may hold open to one target: a
    /// quarter of [`RelayLimits::max_circuits_per_peer`], at least 1.
    pub fn circuits_per_address_to_target(&self) -> u32 {
        share(self.max_circuits_per_peer)
    }

    /// New circuits a minute one requester address may open to one target:
    /// a quarter of [`RelayLimits::circuits_per_minute`], at least 1.
    pub fn rate_per_address_to_target(&self) -> u32 {
        share(self.circuits_per_minute)
    }

    /// How soon after opening a circuit must carry a packet each way, in
    /// milliseconds: [`CIRCUIT_HANDSHAKE_MS`], or
    /// [`RelayLimits::circuit_idle_ms`] if shorter.
    pub fn handshake_ms(&self) -> u64 {
        CIRCUIT_HANDSHAKE_MS.min(self.circuit_idle_ms)
    }
}

/// Why a relay refused a reservation or a circuit.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum RelayRefusal {
    /// The node does not relay.
    #[error("this node is not a relay")]
    NotARelay,
    /// The target holds no reservation with this relay.
    #[error("{target} holds no reservation with this relay")]
    NoReservation {
        /// The peer asked for.
        target: PeerId,
    },
    /// The relay holds as many reservations as it allows.
    #[error("the relay is at its limit of {max} reservations")]
    Reservations {
        /// The limit.
        max: u32,
    },
    /// A peer at one end already has as many circuits open as it may.
    #[error("{peer} has {max} circuits open through this relay, its limit")]
    Circuits {
        /// The peer at its limit.
        peer: PeerId,
        /// The limit.
        max: u32,
    },
    /// A peer at one end opened or received circuits too fast.
    #[error("{peer} opened or received {per_minute} circuits in the last minute, its limit")]
    Rate {
        /// The peer at its limit.
        peer: PeerId,
        /// The limit.
        per_minute: u32,
    },
    /// A circuit from a peer to itself.
    #[error("a circuit from a peer to itself")]
    ToSelf,
    /// The target did not take the circuit (it went away, or refused).
    #[error("{target} did not accept the circuit: {reason}")]
    Unreachable {
        /// The peer asked for.
        target: PeerId,
        /// What happened.
        reason: BString<256>,
    },
    /// The asker's address already holds as many reservations as one
    /// address may.
    #[error("this address holds {max} reservations with the relay, the most one address may")]
    AddressReservations {
        /// The limit.
        max: u32,
    },
    /// The asker's address already has its share of the target's circuits
    /// open.
    #[error("this address has {max} circuits open to {target}, the most one address may")]
    AddressCircuits {
        /// The peer asked for.
        target: PeerId,
        /// The limit.
        max: u32,
    },
    /// The asker's address opened its share of the target's circuits in
    /// the last minute.
    #[error(
        "this address opened {per_minute} circuits to {target} in the last minute, the most one address may"
    )]
    AddressRate {
        /// The peer asked for.
        target: PeerId,
        /// The limit.
        per_minute: u32,
    },
    /// Asked over a connection that itself runs through a relay circuit:
    /// relays are reached directly.
    #[error(
        "asked over a relayed connection; a relay takes reservations and circuits only from peers that reach it directly"
    )]
    OverACircuit,
}

/// Why a circuit ended: the code the relay resets both of its streams
/// with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CircuitEnd {
    /// The circuit carried [`RelayLimits::max_circuit_bytes`].
    #[error("the relay's limit of {max} bytes per circuit was reached")]
    Bytes {
        /// The limit.
        max: u64,
    },
    /// The circuit lasted [`RelayLimits::max_circuit_duration_ms`].
    #[error("the relay's limit of {max_ms} ms per circuit was reached")]
    Duration {
        /// The limit, in milliseconds.
        max_ms: u64,
    },
    /// The other end closed, or its connection to the relay broke.
    #[error("the other end left the circuit")]
    PeerGone,
    /// A packet over [`MAX_RELAYED_PACKET`], or a malformed frame.
    #[error("a malformed packet frame on the circuit")]
    Malformed,
    /// The relay is shutting down.
    #[error("the relay shut down")]
    Shutdown,
    /// A direction of the circuit carried nothing for
    /// [`RelayLimits::circuit_idle_ms`].
    #[error("the circuit carried nothing one way for {max_ms} ms, the relay's idle limit")]
    Idle {
        /// The limit, in milliseconds.
        max_ms: u64,
    },
    /// The circuit carried no packet one way within
    /// [`RelayLimits::handshake_ms`] of opening, or (at its target) no
    /// session started on it within the target's time to connect.
    #[error("no session started on the circuit within {within_ms} ms")]
    NoHandshake {
        /// The limit, in milliseconds.
        within_ms: u64,
    },
}

impl CircuitEnd {
    /// The stream reset code for this end.
    pub fn code(self) -> u32 {
        match self {
            CircuitEnd::Bytes { .. } => 0x10,
            CircuitEnd::Duration { .. } => 0x11,
            CircuitEnd::PeerGone => 0x12,
            CircuitEnd::Malformed => 0x13,
            CircuitEnd::Shutdown => 0x14,
            CircuitEnd::Idle { .. } => 0x15,
            CircuitEnd::NoHandshake { .. } => 0x16,
        }
    }

    /// The end a reset `code` names, given the circuit's `limits`; `None`
    /// for codes that are not a circuit end.
    pub fn from_code(code: u64, limits: &RelayLimits) -> Option<CircuitEnd> {
        Some(match code {
            0x10 => CircuitEnd::Bytes {
                max: limits.max_circuit_bytes,
            },
            0x11 => CircuitEnd::Duration {
                max_ms: limits.max_circuit_duration_ms,
            },
            0x12 => CircuitEnd::PeerGone,
            0x13 => CircuitEnd::Malformed,
            0x14 => CircuitEnd::Shutdown,
            0x15 => CircuitEnd::Idle {
                max_ms: limits.circuit_idle_ms,
            },
            0x16 => CircuitEnd::NoHandshake {
                within_ms: limits.handshake_ms(),
            },
            _ => return None,
        })
    }
}

/// A circuit's byte and time budget, as the relay keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBudget {
    limits: RelayLimits,
    bytes: u64,
    deadline: Instant,
}

impl CircuitBudget {
    /// A circuit opened at `now` under `limits`.
    pub fn new(limits: RelayLimits, now: Instant) -> CircuitBudget {
        CircuitBudget {
            limits,
            bytes: 0,
            deadline: now + Duration::from_millis(limits.max_circuit_duration_ms),
        }
    }

    /// When the circuit's time runs out.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Bytes carried so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Counts `n` more bytes at `now`: `Err` once a limit is passed (the
    /// packet that passes it is not forwarded).
    pub fn carry(&mut self, n: usize, now: Instant) -> Result<(), CircuitEnd> {
        if now >= self.deadline {
            return Err(CircuitEnd::Duration {
                max_ms: self.limits.max_circuit_duration_ms,
            });
        }
        let total = self.bytes.saturating_add(n as u64);
        if total > self.limits.max_circuit_bytes {
            return Err(CircuitEnd::Bytes {
                max: self.limits.max_circuit_bytes,
            });
        }
        self.bytes = total;
        Ok(())
    }
}

/// When each direction of a circuit last carried a packet, as a relay or
/// an end keeps it: a circuit whose direction stays silent past
/// [`RelayLimits::circuit_idle_ms`] (or, before its first packet, past
/// [`RelayLimits::handshake_ms`]) is ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitActivity {
    opened: Instant,
    last: [Option<Instant>; 2],
    idle_ms: u64,
    handshake_ms: u64,
}

impl CircuitActivity {
    /// A circuit opened at `now` under `limits`.
    pub fn new(limits: &RelayLimits, now: Instant) -> CircuitActivity {
        CircuitActivity {
            opened: now,
            last: [None, None],
            idle_ms: limits.circuit_idle_ms,
            handshake_ms: limits.handshake_ms(),
        }
    }

    /// Direction `way` (0 or 1; anything else counts as 1) carried a
    /// packet at `now`.
    pub fn carried(&mut self, way: usize, now: Instant) {
        self.last[way.min(1)] = Some(now);
    }

    /// `Ok(when to check next)`, or how the circuit ends at `now`.
    pub fn check(&self, now: Instant) -> Result<Instant, CircuitEnd> {
        let mut next = None::<Instant>;
        for last in self.last {
            let (from, limit, end) = match last {
                Some(t) => (
                    t,
                    self.idle_ms,
                    CircuitEnd::Idle {
                        max_ms: self.idle_ms,
                    },
                ),
                None => (
                    self.opened,
                    self.handshake_ms,
                    CircuitEnd::NoHandshake {
                        within_ms: self.handshake_ms,
                    },
                ),
            };
            let due = from + Duration::from_millis(limit);
            if now >= due {
                return Err(end);
            }
            next = Some(next.map_or(due, |n| n.min(due)));
        }
        Ok(next.unwrap_or(now + Duration::from_millis(self.idle_ms)))
    }
}

/// Events per minute, over a sliding window of one minute: a peer's new
/// circuits at a relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerMinute {
    recent: std::collections::VecDeque<Instant>,
}

impl PerMinute {
    /// Records an event at `now` if fewer than `max` happened in the minute
    /// before; returns whether it was allowed.
    pub fn allow(&mut self, now: Instant, max: u32) -> bool {
        if !self.would_allow(now, max) {
            return false;
        }
        self.record(now);
        true
    }

    /// Whether an event at `now` would be allowed, recording nothing: to
    /// check several limits before counting against any of them.
    pub fn would_allow(&mut self, now: Instant, max: u32) -> bool {
        while let Some(t) = self.recent.front() {
            if now.saturating_duration_since(*t) >= Duration::from_secs(60) {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.len() < max as usize
    }

    /// Records an event at `now`, whatever the limit.
    pub fn record(&mut self, now: Instant) {
        self.recent.push_back(now);
    }

    /// Whether no event is left in the window at `now` (the entry can go).
    pub fn idle(&self, now: Instant) -> bool {
        self.recent
            .back()
            .is_none_or(|t| now.saturating_duration_since(*t) >= Duration::from_secs(60))
    }
}

/// What a peer offers to punch with: the addresses it may be reached at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PunchOffer {
    /// Observed (public) addresses first, then local ones.
    pub addrs: BVec<SocketAddr, MAX_PUNCH_CANDIDATES>,
}

impl PunchOffer {
    /// An offer of `addrs`, cleaned up with [`candidates`] (loopback
    /// addresses kept: the receiver decides whether they are in scope).
    pub fn new(addrs: &[SocketAddr]) -> PunchOffer {
        PunchOffer {
            addrs: BVec::new(candidates(addrs, true)).unwrap_or_default(),
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address as plain IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Whether a hole punch may send packets to `addr`. Whatever a peer
/// offers, probes and dials never go to: port 0; an unspecified,
/// "this network" (0.0.0.0/8), multicast or broadcast address; 240.0.0.0/4
/// (reserved, and where relay circuits live); a link-local address (no
/// interface can be named); and loopback unless `loopback` (the session
/// itself runs over loopback, as in tests). Private and shared addresses
/// (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7) stay: peers on one
/// network, or behind one carrier NAT, punch through them.
pub fn punchable(addr: SocketAddr, loopback: bool) -> bool {
    let addr = canonical(addr);
    if addr.port() == 0 {
        return false;
    }
    match addr.ip() {
        std::net::IpAddr::V4(ip) => {
            let first = ip.octets()[0];
            !(first == 0
                || first >= 240
                || ip.is_multicast()
                || ip.is_link_local()
                || (ip.is_loopback() && !loopback))
        }
        std::net::IpAddr::V6(ip) => {
            !(ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_unicast_link_local()
                || (ip.is_loopback() && !loopback))
        }
    }
}

/// Addresses worth punching towards, in order: only [`punchable`] ones
/// (IPv4-mapped ones as IPv4), no duplicates, at most
/// [`MAX_PUNCH_CANDIDATES`].
pub fn candidates(addrs: &[SocketAddr], loopback: bool) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in addrs.iter().map(|a| canonical(*a)) {
        if !punchable(a, loopback) || out.contains(&a) {
            continue;
        }
        out.push(a);
        if out.len() == MAX_PUNCH_CANDIDATES {
            break;
        }
    }
    out
}

/// How a hole punch is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PunchConfig {
    /// Between rounds of probe packets.
    pub interval: Duration,
    /// Rounds of probes.
    pub rounds: u32,
    /// From the start to the first dial (the dialling side only): time for
    /// the other side's probes to open its NAT. The other side starts
    /// probing before it answers the offer, so by the time the dialling
    /// side has the answer its first probes are out; this is a margin. (A
    /// dial that arrives before them is dropped by its NAT and costs a QUIC
    /// retransmission, about a second.)
    pub dial_after: Duration,
    /// From the start until the punch is given up.
    pub give_up_after: Duration,
}

impl Default for PunchConfig {
    fn default() -> PunchConfig {
        PunchConfig {
            interval: Duration::from_millis(100),
            rounds: 20,
            dial_after: Duration::from_millis(30),
            give_up_after: Duration::from_secs(5),
        }
    }
}

/// What to do next in a hole punch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PunchStep {
    /// Send one probe to each of these addresses.
    Probe(Vec<SocketAddr>),
    /// Dial each of these addresses (each at most once per punch).
    Dial(Vec<SocketAddr>),
    /// Nothing until then.
    Wait(Instant),
    /// Done: succeeded, or out of time.
    Done,
}

/// One side of a hole punch, as a state machine: time is passed in, timers
/// are data. Both sides probe the other's candidates every
/// [`PunchConfig::interval`] for [`PunchConfig::rounds`] rounds; the dialling
/// side also dials every candidate once, from [`PunchConfig::dial_after`]
/// on, and every candidate learnt later (a probe that arrived from an
/// address the offer did not list: a peer-reflexive candidate) at once. The
/// side that only probes is done after its rounds; the dialling side at
/// success or after [`PunchConfig::give_up_after`].
///
/// Probes are unauthenticated, so a learnt candidate must be
/// [`punchable`] and at an IP address the offer listed (the other side's
/// NAT gave it another port): a forged probe cannot point the punch at a
/// third party.
#[derive(Debug, Clone)]
pub struct PunchPlan {
    config: PunchConfig,
    dials: bool,
    loopback: bool,
    candidates: Vec<SocketAddr>,
    offered: Vec<std::net::IpAddr>,
    dialled: Vec<SocketAddr>,
    start: Instant,
    next_probe: Instant,
    rounds: u32,
    done: bool,
}

impl PunchPlan {
    /// A punch starting at `now` towards `theirs` (cleaned up with
    /// [`candidates`]; `loopback` when the session runs over loopback);
    /// `dials` for the side that opens the direct connection.
    pub fn new(
        config: PunchConfig,
        theirs: &[SocketAddr],
        loopback: bool,
        dials: bool,
        now: Instant,
    ) -> PunchPlan {
        let candidates = candidates(theirs, loopback);
        let mut offered: Vec<std::net::IpAddr> = candidates.iter().map(|a| a.ip()).collect();
        offered.sort_unstable();
        offered.dedup();
        PunchPlan {
            config,
            dials,
            loopback,
            offered,
            candidates,
            dialled: Vec::new(),
            start: now,
            next_probe: now,
            rounds: 0,
            done: false,
        }
    }

    /// The candidates so far.
    pub fn candidates(&self) -> &[SocketAddr] {
        &self.candidates
    }

    /// A probe arrived from `addr`: a candidate too, if new, [`punchable`]
    /// and at an IP address the offer listed. Returns whether it was taken.
    pub fn learn(&mut self, addr: SocketAddr) -> bool {
        let addr = canonical(addr);
        if self.done
            || !punchable(addr, self.loopback)
            || !self.offered.contains(&addr.ip())
            || self.candidates.contains(&addr)
            || self.candidates.len() >= 2 * MAX_PUNCH_CANDIDATES
        {
            return false;
        }
        self.candidates.push(addr);
        true
    }

    /// A direct connection completed: stop.
    pub fn succeeded(&mut self) {
        self.done = true;
    }

    /// Whether the punch is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next step at `now`. Call again after acting on it.
    pub fn poll(&mut self, now: Instant) -> PunchStep {
        if self.done {
            return PunchStep::Done;
        }
        if now.saturating_duration_since(self.start) >= self.config.give_up_after {
            self.done = true;
            return PunchStep::Done;
        }
        if self.dials && now.saturating_duration_since(self.start) >= self.config.dial_after {
            let fresh: Vec<SocketAddr> = self
                .candidates
                .iter()
                .filter(|a| !self.dialled.contains(a))
                .copied()
                .collect();
            if !fresh.is_empty() {
                self.dialled.extend(&fresh);
                return PunchStep::Dial(fresh);
            }
        }
        if self.rounds < self.config.rounds && now >= self.next_probe {
            self.rounds += 1;
            self.next_probe = now + self.config.interval;
            return PunchStep::Probe(self.candidates.clone());
        }
        if !self.dials && self.rounds >= self.config.rounds {
            // The side that only probes has nothing left to do.
            self.done = true;
            return PunchStep::Done;
        }
        let mut wake = self.start + self.config.give_up_after;
        if self.rounds < self.config.rounds {
            wake = wake.min(self.next_probe);
        }
        if self.dials && self.dialled.len() < self.candidates.len() {
            wake = wake.min(self.start + self.config.dial_after);
        }
        PunchStep::Wait(wake.max(now))
    }
}

/// Connections made, by how.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PathCounts {
    /// Straight to an address.
    pub direct: u64,
    /// Straight to an address after a hole punch.
    pub punched: u64,
    /// Through a relay.
    pub relayed: u64,
}

impl PathCounts {
    /// Counts one more made `kind` way.
    pub fn add(&mut self, kind: PathKind) {
        let n = match kind {
            PathKind::Direct => &mut self.direct,
            PathKind::Punched => &mut self.punched,
            PathKind::Relayed => &mut self.relayed,
        };
        *n = n.saturating_add(1);
    }
}

/// An open connection, in a status report.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpenPath {
    /// The peer.
    pub peer: PeerId,
    /// How it was made.
    pub kind: PathKind,
    /// Whether the peer dialled us.
    pub incoming: bool,
    /// The peer's address, or the relay's for a relayed one.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::socket_addr))]
    pub remote: SocketAddr,
}

/// A relay this node keeps (or tries to keep) a reservation with.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RelayState {
    /// The relay.
    pub relay: PeerId,
    /// Its address.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::socket_addr))]
    pub addr: SocketAddr,
    /// Whether the reservation is held now.
    pub reserved: bool,
    /// The last failure, if the reservation is not held.
    pub error: Option<BString<256>>,
}

/// Hole punches, as the dialling side counts them.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct PunchCounts {
    /// Punches started.
    pub attempted: u64,
    /// Punches that ended in a direct connection.
    pub succeeded: u64,
}

/// What a relay is doing, in a status report.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct RelayServerStats {
    /// Reservations held now.
    pub reservations: u64,
    /// Circuits open now.
    pub circuits_open: u64,
    /// Circuits opened since start.
    pub circuits_total: u64,
    /// Bytes relayed since start, both ways.
    pub bytes_relayed: u64,
    /// Reservations and circuits refused at a limit since start.
    pub refused: u64,
}

/// A node's reachability, for `errand status`.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReachabilityReport {
    /// Its NAT mapping, as classified.
    pub nat: NatMapping,
    /// What its observers saw, latest per observer.
    pub observed: BVec<Observation, 16>,
    /// The relays it keeps reservations with.
    pub relays: BVec<RelayState, 8>,
    /// The paths it publishes now.
    pub paths: BVec<NetAddr, 8>,
    /// Connections made since start, by how (both directions).
    pub made: PathCounts,
    /// Connections open now.
    pub open: BVec<OpenPath, 4096>,
    /// Hole punches it started.
    pub punches: PunchCounts,
    /// Its relay service, if it is a relay.
    pub relay: Option<RelayServerStats>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> PeerId {
        crate::testing::key(n).peer_id()
    }

    fn obs(n: u8, observer: &str, seen: &str, local: &str) -> Observation {
        Observation {
            observer: peer(n),
            observer_addr: observer.parse().unwrap(),
            seen: seen.parse().unwrap(),
            local: Some(local.parse().unwrap()),
        }
    }

    #[test]
    fn classification_follows_what_two_observers_see() {
        assert_eq!(classify(&[]), NatMapping::Unknown);
        let public = obs(
            1,
            "198.51.100.1:4433",
            "203.0.113.5:4433",
            "203.0.113.5:4433",
        );
        assert_eq!(classify(&[public]), NatMapping::Public);
        let a = obs(1, "198.51.100.1:4433", "203.0.113.5:40000", "10.0.0.2:4433");
        assert_eq!(classify(&[a]), NatMapping::Unclassified);
        // The same observer address twice is still one observer.
        assert_eq!(classify(&[a, a]), NatMapping::Unclassified);
        let b_same = obs(2, "198.51.100.2:4433", "203.0.113.5:40000", "10.0.0.2:4433");
        assert_eq!(classify(&[a, b_same]), NatMapping::EndpointIndependent);
        let b_other = obs(2, "198.51.100.2:4433", "203.0.113.5:40001", "10.0.0.2:4433");
        assert_eq!(classify(&[a, b_other]), NatMapping::EndpointDependent);
    }

    #[test]
    fn relays_are_wanted_only_when_not_known_to_be_public() {
        use NatMapping as N;
        use Reachability as R;
        assert!(!wants_relay(R::Auto, N::Unknown));
        assert!(!wants_relay(R::Auto, N::Public));
        assert!(wants_relay(R::Auto, N::Unclassified));
        assert!(wants_relay(R::Auto, N::EndpointIndependent));
        assert!(wants_relay(R::Auto, N::EndpointDependent));
        assert!(wants_relay(R::Private, N::Public));
        assert!(!wants_relay(R::Public, N::EndpointDependent));
    }

    #[test]
    fn direct_paths_come_first_and_beat_relayed_ones() {
        let relay = NetAddr::Relay {
            relay: peer(3),
            addr: "198.51.100.9:4433".parse().unwrap(),
        };
        let direct = NetAddr::Quic("203.0.113.5:4433".parse().unwrap());
        assert_eq!(
            order_paths(&[relay, direct, relay, direct]),
            vec![direct, relay]
        );
        assert!(PathKind::Direct.better_than(PathKind::Relayed));
        assert!(PathKind::Punched.better_than(PathKind::Relayed));
        assert!(!PathKind::Relayed.better_than(PathKind::Direct));
        assert!(!PathKind::Direct.better_than(PathKind::Punched));
    }

    #[test]
    fn a_circuit_budget_ends_at_its_byte_and_time_limits() {
        let t0 = Instant::now();
        let limits = RelayLimits {
            max_circuit_bytes: 1000,
            max_circuit_duration_ms: 500,
            ..RelayLimits::default()
        };
        let mut b = CircuitBudget::new(limits, t0);
        assert_eq!(b.carry(600, t0), Ok(()));
        assert_eq!(b.carry(400, t0), Ok(()));
        assert_eq!(b.carry(1, t0), Err(CircuitEnd::Bytes { max: 1000 }));
        let mut b = CircuitBudget::new(limits, t0);
        assert_eq!(
            b.carry(1, t0 + Duration::from_millis(500)),
            Err(CircuitEnd::Duration { max_ms: 500 })
        );
        for end in [
            CircuitEnd::Bytes { max: 1000 },
            CircuitEnd::Duration { max_ms: 500 },
            CircuitEnd::PeerGone,
            CircuitEnd::Malformed,
            CircuitEnd::Shutdown,
            CircuitEnd::Idle { max_ms: 60_000 },
            CircuitEnd::NoHandshake { within_ms: 10_000 },
        ] {
            assert_eq!(
                CircuitEnd::from_code(u64::from(end.code()), &limits),
                Some(end)
            );
        }
        assert_eq!(CircuitEnd::from_code(0, &limits), None);
    }

    #[test]
    fn a_circuit_silent_one_way_ends_idle_or_for_want_of_a_handshake() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let limits = RelayLimits {
            circuit_idle_ms: 1_000,
            ..RelayLimits::default()
        };
        assert_eq!(limits.handshake_ms(), 1_000);
        assert_eq!(RelayLimits::default().handshake_ms(), CIRCUIT_HANDSHAKE_MS);
        // Nothing ever carried: ended when the handshake window closes.
        let a = CircuitActivity::new(&limits, t0);
        assert_eq!(a.check(t0), Ok(t0 + ms(1_000)));
        assert_eq!(
            a.check(t0 + ms(1_000)),
            Err(CircuitEnd::NoHandshake { within_ms: 1_000 })
        );
        // One way only (a requester sending junk nobody answers): the same.
        let mut a = CircuitActivity::new(&limits, t0);
        a.carried(0, t0 + ms(900));
        assert_eq!(
            a.check(t0 + ms(1_000)),
            Err(CircuitEnd::NoHandshake { within_ms: 1_000 })
        );
        // Both ways, then one way only: idle once that way is silent.
        let mut a = CircuitActivity::new(&limits, t0);
        a.carried(0, t0 + ms(100));
        a.carried(1, t0 + ms(200));
        assert_eq!(a.check(t0 + ms(500)), Ok(t0 + ms(1_100)));
        a.carried(0, t0 + ms(1_050));
        assert_eq!(a.check(t0 + ms(1_100)), Ok(t0 + ms(1_200)));
        assert_eq!(
            a.check(t0 + ms(1_200)),
            Err(CircuitEnd::Idle { max_ms: 1_000 })
        );
        // Shares of a target's limits for one address.
        let d = RelayLimits::default();
        assert_eq!(d.circuits_per_address_to_target(), 4);
        assert_eq!(d.rate_per_address_to_target(), 15);
        let tiny = RelayLimits {
            max_circuits_per_peer: 1,
            circuits_per_minute: 2,
            ..d
        };
        assert_eq!(tiny.circuits_per_address_to_target(), 1);
        assert_eq!(tiny.rate_per_address_to_target(), 1);
    }

    #[test]
    fn per_minute_allows_max_in_any_minute() {
        let t0 = Instant::now();
        let mut r = PerMinute::default();
        assert!(r.allow(t0, 2));
        assert!(r.allow(t0 + Duration::from_secs(1), 2));
        assert!(!r.allow(t0 + Duration::from_secs(2), 2));
        assert!(!r.idle(t0 + Duration::from_secs(59)));
        assert!(r.allow(t0 + Duration::from_secs(60), 2));
        assert!(r.idle(t0 + Duration::from_secs(121)));
    }

    #[test]
    fn packet_frames_split_whatever_the_pieces_and_refuse_bad_lengths() {
        let packets: Vec<Vec<u8>> = vec![vec![1], vec![2; 1200], vec![3; MAX_RELAYED_PACKET]];
        let mut stream = Vec::new();
        for p in &packets {
            assert!(frame_packet(&mut stream, p));
        }
        assert!(!frame_packet(&mut stream, &[]));
        assert!(!frame_packet(&mut stream, &vec![0; MAX_RELAYED_PACKET + 1]));
        for piece in [1, 2, 3, 7, 1000, stream.len()] {
            let mut f = PacketFrames::default();
            let mut got = Vec::new();
            for chunk in stream.chunks(piece) {
                f.push(chunk);
                while let Some(p) = f.next_packet().unwrap() {
                    got.push(p.to_vec());
                }
            }
            assert_eq!(got, packets, "pieces of {piece}");
            assert_eq!(f.pending(), 0);
        }
        for bad in [[0u8, 0], [0x08, 0x01]] {
            let mut f = PacketFrames::default();
            f.push(&bad);
            assert_eq!(f.next_packet(), Err(CircuitEnd::Malformed));
        }
    }

    #[test]
    fn probes_name_their_sender_and_nothing_else_parses_as_one() {
        let me = peer(1);
        assert_eq!(parse_probe(&probe(me)), Some(me));
        assert_eq!(parse_probe(&probe(me)[..PROBE_LEN - 1]), None);
        let mut other = probe(me);
        other[0] ^= 1;
        assert_eq!(parse_probe(&other), None);
    }

    #[test]
    fn candidates_drop_duplicates_unspecified_and_port_zero() {
        let a: SocketAddr = "203.0.113.5:4433".parse().unwrap();
        let got = candidates(
            &[
                a,
                "0.0.0.0:4433".parse().unwrap(),
                "10.0.0.2:0".parse().unwrap(),
                a,
                "10.0.0.2:4433".parse().unwrap(),
            ],
            false,
        );
        assert_eq!(got, vec![a, "10.0.0.2:4433".parse().unwrap()]);
        let many: Vec<SocketAddr> = (1..40u16)
            .map(|p| SocketAddr::from(([10, 0, 0, 1], p)))
            .collect();
        assert_eq!(candidates(&many, false).len(), MAX_PUNCH_CANDIDATES);
    }

    #[test]
    fn a_punch_probes_in_rounds_dials_each_candidate_once_and_gives_up() {
        let t0 = Instant::now();
        let config = PunchConfig {
            interval: Duration::from_millis(100),
            rounds: 3,
            dial_after: Duration::from_millis(150),
            give_up_after: Duration::from_millis(1000),
        };
        let a: SocketAddr = "203.0.113.5:4433".parse().unwrap();
        let mut p = PunchPlan::new(config, &[a], false, true, t0);
        assert_eq!(p.poll(t0), PunchStep::Probe(vec![a]));
        assert_eq!(p.poll(t0), PunchStep::Wait(t0 + Duration::from_millis(100)));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(p.poll(t1), PunchStep::Probe(vec![a]));
        let t2 = t0 + Duration::from_millis(150);
        assert_eq!(p.poll(t2), PunchStep::Dial(vec![a]));
        // A probe from an address not offered: dialled at once.
        let reflexive: SocketAddr = "203.0.113.5:5555".parse().unwrap();
        assert!(p.learn(reflexive));
        assert!(!p.learn(reflexive));
        assert_eq!(p.poll(t2), PunchStep::Dial(vec![reflexive]));
        let t3 = t0 + Duration::from_millis(200);
        assert_eq!(p.poll(t3), PunchStep::Probe(vec![a, reflexive]));
        // Three rounds done: wait for the end.
        assert_eq!(
            p.poll(t3),
            PunchStep::Wait(t0 + Duration::from_millis(1000))
        );
        assert_eq!(p.poll(t0 + Duration::from_millis(1000)), PunchStep::Done);
        assert!(p.is_done());

        // The other side never dials, and is done after its rounds, or
        // stopped earlier.
        let mut q = PunchPlan::new(config, &[a], false, false, t0);
        assert_eq!(q.poll(t0), PunchStep::Probe(vec![a]));
        assert_eq!(q.poll(t2), PunchStep::Probe(vec![a]));
        let t4 = t0 + Duration::from_millis(250);
        assert_eq!(q.poll(t3), PunchStep::Wait(t4));
        assert_eq!(q.poll(t4), PunchStep::Probe(vec![a]));
        assert_eq!(q.poll(t4), PunchStep::Done);
        let mut q = PunchPlan::new(config, &[a], false, false, t0);
        assert_eq!(q.poll(t0), PunchStep::Probe(vec![a]));
        q.succeeded();
        assert_eq!(q.poll(t2), PunchStep::Done);
    }
}
