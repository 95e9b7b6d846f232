//! Admission of new connections, decided before the handshake.
//!
//! A TLS handshake is the most expensive thing a stranger can make a node
//! do: a key exchange, a signature, a certificate to check. Identities are
//! free and a connection can be thrown away after one request (a peer that
//! sends a bad frame is disconnected, and simply dials again), so without
//! a limit a single machine keeps the node busy handshaking. Every new
//! connection is therefore admitted or not from its first packet, before
//! any of that work: QUIC hands the endpoint an [`quinn::Incoming`] whose
//! only cryptography so far is the unprotection of the client's Initial
//! packet with keys anyone can derive from it.
//!
//! **Per source.** Each source (an IPv4 address, or an IPv6 /64, since
//! one host gets a whole /64 for free) has a token bucket:
//! [`NetConfig::handshakes_per_address`] a second, up to
//! [`NetConfig::handshake_burst_per_address`] at once after a quiet spell.
//! A new connection takes a token; with none left it is refused at once
//! (QUIC `CONNECTION_REFUSED`, which the dialler reports as
//! [`NetError::Refused`](crate::NetError::Refused), retryable). Connections
//! already established are never touched: an honest peer's open
//! connection keeps being served whatever its neighbours do. Peers behind
//! one NAT address share one bucket: that is the cost, and why the default
//! is generous; an operator whose clients sit behind a large NAT raises it.
//!
//! **Relayed connections.** A connection through a relay circuit arrives
//! from the circuit's virtual address, one per circuit (see
//! [`crate::mux`]), so it is keyed instead by the relay's source and the
//! requester's source as the relay saw it ([`Origin::Relayed`], which the
//! relay sends when it opens the circuit): one requester's circuits
//! through one relay share one bucket, whatever number of circuits or
//! identities it uses, and neither its circuits nor the relay's other
//! traffic touch anyone else's bucket.
//!
//! **Spoofed sources.** UDP source addresses can be forged. A forged
//! Initial would make the node handshake with an address that never
//! answers, and would spend the tokens of the address it names. So a new
//! connection from an address that has not proven it receives our packets
//! (a QUIC *retry*: a stateless token the client must echo from that
//! address, one more round trip) is admitted without proof only while
//! (1) the node-wide budget of unproven handshakes has room,
//! [`NetConfig::unproven_handshakes`] a second, and (2) its source's
//! bucket is more than half full. Otherwise it is sent a retry, which
//! costs the node one small packet and no state. Only proven addresses
//! can take a bucket's lower half, so a forger can spend at most the
//! upper half of someone else's burst, and what refills it while that
//! address's own peers leave it unused: they then pay one round trip,
//! never a refusal. A bucket that is empty was emptied by proven
//! connections, so anything from that source is refused without a retry.
//!
//! **Refused once, then ignored.** A source over its rate is refused
//! explicitly at most once a second; its other attempts in that second
//! are ignored: no packet is sent, as if lost. Refusing costs the node a
//! packet and a pass through its endpoint for each attempt, and an
//! attacker that dials again at once after each refusal made thousands
//! of them a second: measured, that alone tripled the honest requester's
//! latency, with the handshakes themselves held to the rate. An ignored
//! dialler waits for its handshake timeout, and a QUIC client retransmits
//! its first packet after about a second, which is admitted if its source
//! has a token by then. Only proven connections empty a bucket, so a
//! forger cannot get someone else's attempts ignored.
//!
//! What this does not stop: an attacker with many real addresses gets each
//! address's rate (bounded in all by [`NetConfig::max_connections`] open at
//! once and by what the node's CPU does), and every packet that arrives is
//! still received and parsed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::NetConfig;

/// Where a new connection comes from, as far as limits go: an IPv4
/// address, or the /64 prefix of an IPv6 one (IPv4-mapped IPv6 addresses
/// count as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl Source {
    /// The source `addr` counts as.
    pub fn of(addr: SocketAddr) -> Source {
        match addr.ip() {
            IpAddr::V4(v4) => Source::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4),
                None => Source::V6((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// What a new connection's token bucket is keyed by: its source, or, for
/// a connection that arrives through a relay circuit, the relay's source
/// and the requester's as the relay saw it.
///
/// Each circuit arrives from a virtual address of its own (see
/// [`crate::mux`]), which the requester could multiply at will by opening
/// more circuits; keyed by the circuit, each would bring a full bucket. The
/// relay tells the target the address it sees the requester at when it
/// opens the circuit, so one requester's circuits through one relay share
/// one bucket, as its direct connections do. A relay that lied about it
/// would only spread its own circuits over several buckets, and circuits
/// come only through the relays the node chose to reserve with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A direct connection from this source.
    Direct(Source),
    /// A connection through the relay at `relay`, from a requester the
    /// relay saw at `requester`.
    Relayed {
        /// The relay's source.
        relay: Source,
        /// The requester's source, as the relay saw it.
        requester: Source,
    },
}

/// What to do with a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on with the handshake.
    Admit,
    /// Ask the client to prove its address first (a QUIC retry).
    Retry,
    /// Refuse it before the handshake.
    Refuse(Refusal),
    /// Drop it without an answer: its source was refused less than a
    /// second ago and is still over its rate.
    Ignore,
}

/// Why a new connection was refused before its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The node holds [`NetConfig::max_connections`] connections.
    NodeFull,
    /// Its source has used its new connections for now.
    SourceRate,
}

/// Counts of admission decisions since the endpoint was bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Handshakes started from addresses not proven by a retry.
    pub admitted_unproven: u64,
    /// Handshakes started from addresses proven by a retry.
    pub admitted_proven: u64,
    /// Retries sent (no handshake, no state kept).
    pub retried: u64,
    /// Refused before the handshake: the source's rate.
    pub refused_rate: u64,
    /// Refused before the handshake: the node's connection limit.
    pub refused_full: u64,
    /// Dropped without an answer: a source over its rate, refused less
    /// than a second before.
    pub ignored: u64,
}

impl AdmissionStats {
    /// Handshakes started, proven or not.
    pub fn admitted(&self) -> u64 {
        self.admitted_unproven + self.admitted_proven
    }

    /// New connections refused or ignored before the handshake, for any
    /// reason.
    pub fn refused(&self) -> u64 {
        self.refused_rate + self.refused_full + self.ignored
    }
}

/// A token bucket: `rate` tokens a second, holding at most `burst`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// When this source was last refused explicitly.
    refused_at: Option<Instant>,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: burst,
            at: now,
            refused_at: None,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
    }
}

/// A source over its rate is refused explicitly at most this often.
const REFUSE_EVERY: Duration = Duration::from_secs(1);

/// Sources are forgotten once their bucket has refilled: a full bucket is
/// the same as none. They are swept at most this often, and whenever the
/// map has grown past [`SWEEP_ABOVE`] since the last sweep.
const SWEEP_EVERY_SECS: f64 = 10.0;
/// See [`SWEEP_EVERY_SECS`].
const SWEEP_ABOVE: usize = 4096;

#[derive(Debug)]
struct State {
    sources: HashMap<Origin, Bucket>,
    unproven: Bucket,
    swept: Instant,
    swept_len: usize,
}

/// The admission policy of one endpoint (see the module docs).
#[derive(Debug)]
pub(crate) struct Admission {
    rate: f64,
    burst: f64,
    unproven_rate: f64,
    state: Mutex<State>,
    admitted_unproven: AtomicU64,
    admitted_proven: AtomicU64,
    retried: AtomicU64,
    refused_rate: AtomicU64,
    refused_full: AtomicU64,
    ignored: AtomicU64,
}

impl Admission {
    pub(crate) fn new(config: &NetConfig) -> Admission {
        let now = Instant::now();
        let unproven_rate = f64::from(config.unproven_handshakes);
        Admission {
            rate: f64::from(config.handshakes_per_address),
            burst: f64::from(config.handshake_burst_per_address),
            unproven_rate,
            state: Mutex::new(State {
                sources: HashMap::new(),
                unproven: Bucket::full(unproven_rate, now),
                swept: now,
                swept_len: 0,
            }),
            admitted_unproven: AtomicU64::new(0),
            admitted_proven: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            refused_rate: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
        }
    }

    /// Decides on a new connection from `from`; `proven` when it echoed a
    /// retry token. Counts the decision.
    pub(crate) fn decide(&self, from: Origin, proven: bool, now: Instant) -> Decision {
        let d = self.decision(from, proven, now);
        let counter = match d {
            Decision::Admit if proven => &self.admitted_proven,
            Decision::Admit => &self.admitted_unproven,
            Decision::Retry => &self.retried,
            Decision::Refuse(Refusal::SourceRate) => &self.refused_rate,
            Decision::Refuse(Refusal::NodeFull) => &self.refused_full,
            Decision::Ignore => &self.ignored,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        d
    }

    /// Counts a refusal made elsewhere (the node's connection limit).
    pub(crate) fn count_full(&self) {
        self.refused_full.fetch_add(1, Ordering::Relaxed);
    }

    fn decision(&self, source: Origin, proven: bool, now: Instant) -> Decision {
        let (rate, burst) = (self.rate, self.burst);
        let mut guard = crate::lock(&self.state);
        let state = &mut *guard;
        Self::sweep(state, rate, burst, now);
        let bucket = state
            .sources
            .entry(source)
            .or_insert_with(|| Bucket::full(burst, now));
        bucket.refill(rate, burst, now);
        if bucket.tokens < 1.0 {
            // Only proven connections take the lower half: this source's
            // own peers emptied it. Told once a second, then ignored.
            if bucket
                .refused_at
                .is_some_and(|t| now.saturating_duration_since(t) < REFUSE_EVERY)
            {
                return Decision::Ignore;
            }
            bucket.refused_at = Some(now);
            return Decision::Refuse(Refusal::SourceRate);
        }
        if proven {
            bucket.tokens -= 1.0;
            return Decision::Admit;
        }
        state
            .unproven
            .refill(self.unproven_rate, self.unproven_rate, now);
        if bucket.tokens >= 1.0 + burst / 2.0 && state.unproven.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            state.unproven.tokens -= 1.0;
            Decision::Admit
        } else {
            Decision::Retry
        }
    }

    /// Forgets sources whose bucket has refilled.
    fn sweep(state: &mut State, rate: f64, burst: f64, now: Instant) {
        let due = now.saturating_duration_since(state.swept).as_secs_f64() >= SWEEP_EVERY_SECS;
        if !due && state.sources.len() < state.swept_len + SWEEP_ABOVE {
            return;
        }
        state.sources.retain(|_, b| {
            b.refill(rate, burst, now);
            b.tokens < burst
        });
        state.swept = now;
        state.swept_len = state.sources.len();
    }

    /// Sources remembered right now (those with a bucket not yet refilled).
    #[cfg(test)]
    fn sources(&self) -> usize {
        crate::lock(&self.state).sources.len()
    }

    pub(crate) fn stats(&self) -> AdmissionStats {
        AdmissionStats {
            admitted_unproven: self.admitted_unproven.load(Ordering::Relaxed),
            admitted_proven: self.admitted_proven.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            refused_rate: self.refused_rate.load(Ordering::Relaxed),
            refused_full: self.refused_full.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn admission(rate: u32, burst: u32, unproven: u32) -> Admission {
        Admission::new(&NetConfig {
            handshakes_per_address: rate,
            handshake_burst_per_address: burst,
            unproven_handshakes: unproven,
            ..NetConfig::default()
        })
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn decide(a: &Admission, from: SocketAddr, proven: bool, now: Instant) -> Decision {
        a.decide(Origin::Direct(Source::of(from)), proven, now)
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(
            Source::of(addr("[2001:db8:1:2:aaaa::1]:1")),
            Source::of(addr("[2001:db8:1:2:bbbb::2]:2"))
        );
        assert_ne!(
            Source::of(addr("[2001:db8:1:2::1]:1")),
            Source::of(addr("[2001:db8:1:3::1]:1"))
        );
        assert_eq!(
            Source::of(addr("[::ffff:192.0.2.1]:1")),
            Source::of(addr("192.0.2.1:9"))
        );
        assert_ne!(
            Source::of(addr("192.0.2.1:1")),
            Source::of(addr("192.0.2.2:1"))
        );
    }

    #[test]
    fn a_source_gets_its_burst_then_its_rate_then_refusals() {
        let a = admission(10, 8, 1000);
        let t0 = Instant::now();
        let from = addr("192.0.2.1:1000");
        // The upper half without proof, the lower half with it.
        let mut unproven = 0;
        while decide(&a, from, false, t0) == Decision::Admit {
            unproven += 1;
        }
        assert_eq!(unproven, 4);
        assert_eq!(decide(&a, from, false, t0), Decision::Retry);
        for _ in 0..4 {
            assert_eq!(decide(&a, from, true, t0), Decision::Admit);
        }
        assert_eq!(
            decide(&a, from, true, t0),
            Decision::Refuse(Refusal::SourceRate)
        );
        // Empty: no retry to answer; refused once a second, then ignored,
        // proven or not.
        assert_eq!(decide(&a, from, false, t0), Decision::Ignore);
        assert_eq!(decide(&a, from, true, t0), Decision::Ignore);
        // Another source is untouched.
        assert_eq!(decide(&a, addr("192.0.2.2:1"), false, t0), Decision::Admit);
        // A tenth of a second later: one more token.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(decide(&a, from, true, t1), Decision::Admit);
        assert_eq!(decide(&a, from, true, t1), Decision::Ignore);
        // A second after the refusal: a full burst again (0.9 s at 10 a
        // second, capped at 8), then a refusal again.
        let t2 = t0 + Duration::from_millis(1000);
        for _ in 0..8 {
            assert_eq!(decide(&a, from, true, t2), Decision::Admit);
        }
        assert_eq!(
            decide(&a, from, true, t2),
            Decision::Refuse(Refusal::SourceRate)
        );
        let s = a.stats();
        assert_eq!((s.admitted_unproven, s.admitted_proven), (5, 13));
        assert_eq!((s.retried, s.refused_rate, s.ignored), (2, 2, 3));
        assert_eq!(s.refused(), 5);
    }

    #[test]
    fn a_forger_spends_only_the_upper_half_of_anothers_burst() {
        let a = admission(10, 8, 1000);
        let t0 = Instant::now();
        let victim = addr("192.0.2.7:4000");
        // Forged Initials naming the victim never prove it.
        for _ in 0..100 {
            let _ = decide(&a, victim, false, t0);
        }
        // The victim's own peers prove their address and get the rest.
        for _ in 0..4 {
            assert_eq!(decide(&a, victim, false, t0), Decision::Retry);
            assert_eq!(decide(&a, victim, true, t0), Decision::Admit);
        }
    }

    #[test]
    fn past_the_node_wide_unproven_budget_everyone_proves_their_address() {
        let a = admission(10, 8, 3);
        let t0 = Instant::now();
        let mut decisions = Vec::new();
        for i in 0..6u8 {
            decisions.push(decide(
                &a,
                SocketAddr::from(([198, 51, 100, i], 1)),
                false,
                t0,
            ));
        }
        assert_eq!(
            decisions,
            [
                Decision::Admit,
                Decision::Admit,
                Decision::Admit,
                Decision::Retry,
                Decision::Retry,
                Decision::Retry
            ]
        );
        // Proven, they are admitted on their own buckets.
        assert_eq!(
            decide(&a, SocketAddr::from(([198, 51, 100, 5], 1)), true, t0),
            Decision::Admit
        );
    }

    #[test]
    fn refilled_sources_are_forgotten() {
        let a = admission(10, 8, 100_000);
        let t0 = Instant::now();
        for i in 0..5000u32 {
            let ip = Ipv4Addr::from_bits(0x0a00_0000 + i);
            decide(&a, SocketAddr::from((ip, 1)), false, t0);
        }
        assert!(a.sources() <= 5000);
        // Eleven seconds later every bucket is full again, and a sweep is
        // due (at most every ten): the next decision forgets them all.
        decide(&a, addr("192.0.2.1:1"), false, t0 + Duration::from_secs(11));
        assert_eq!(a.sources(), 1);
    }
}
