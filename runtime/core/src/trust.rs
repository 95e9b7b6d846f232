//! The trust and verification plane, as pure decisions.
//!
//! Everything here takes candidates, observations and time, and returns
//! decisions; nothing does I/O. The node's workflow runner and the
//! discrete-event simulator drive the same [`Delegation`] state machine and
//! keep the same [`Reputation`].
//!
//! ## Tiers
//!
//! * **Tier 1, reputation.** Each requester keeps its own record of every
//!   peer's direct outcomes ([`Reputation`]). Candidates are ordered by
//!   reputation × match × declared QoS, with a bounded chance to try a
//!   newcomer ([`order_candidates`]).
//! * **Tier 2, canaries.** Before the real request the requester sends a
//!   canary: an invocation whose right answer it knows, either by running
//!   the public component itself or, when it cannot, by cross-checking a
//!   second candidate. Canary inputs are derived from the manifest's
//!   examples and varied per request ([`vary_canary`]) so that an executor
//!   cannot recognise them, and they travel exactly like real requests.
//! * **Tier 3, evidence.** The receipt must bind executor, nonce, component,
//!   input and output; with a configurable probability the requester also
//!   replays the run. A failed replay is proof of cheating: the evidence is
//!   kept as a fraud proof and the peer's reputation drops to zero for good.
//!
//! ## One delegation
//!
//! ```text
//!            ┌──────────────── next candidate (fallback, within budget) ◄──────────────┐
//!            ▼                                                                          │
//!   [T2] Canary ──pass──► Invoke ──ok──► [T3] Replay? ──match──► Succeeded            │
//!      │ fail               │ error, timeout,        │ mismatch: fraud proof        │
//!      └────────────────────┴─ invalid receipt ──────┴──────────────────────────────►┘
//! ```
//!
//! When the candidates or the fallback budget run out the delegation fails.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::descriptor::Descriptor;
use crate::identity::PeerId;
use crate::time::UnixMillis;

/// A source of randomness, injected so that decisions replay exactly.
pub trait Entropy {
    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64;

    /// A uniform float in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform integer in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// A small, fast, seedable generator (SplitMix64) for simulations and for
/// decisions that must replay; seed it from the OS for live use.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl Entropy for SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

// ------------------------------------------------------------- reputation

/// What a requester saw a peer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Observation {
    /// Right answer, valid evidence.
    Success,
    /// A wrong answer (a failed canary or cross-check).
    WrongResult,
    /// No answer in time, or the connection failed.
    Timeout,
    /// A receipt that does not bind the invocation.
    InvalidReceipt,
    /// The peer refused or could not serve (not found, busy).
    Unavailable,
    /// Proven cheating: a replay contradicted its signed receipt.
    Fraud,
}

/// Reputation parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReputationConfig {
    /// Pseudo-successes every peer starts with.
    pub prior_success: f64,
    /// Pseudo-failures every peer starts with.
    pub prior_failure: f64,
    /// Evidence halves toward the prior over this many milliseconds.
    pub half_life_ms: u64,
    /// Weight of a wrong result or invalid receipt, in failures.
    pub wrong_weight: f64,
    /// Weight of a timeout, in failures.
    pub timeout_weight: f64,
    /// Weight of an unavailable answer, in failures.
    pub unavailable_weight: f64,
    /// Peers with fewer observations than this are newcomers.
    pub newcomer_until: u32,
}

impl Default for ReputationConfig {
    /// A newcomer starts at 1/3 (one success, two failures): low, not zero.
    /// A wrong result weighs four failures, so a few of them sink a peer;
    /// evidence halves every six hours, so old sins fade but slowly.
    fn default() -> ReputationConfig {
        ReputationConfig {
            prior_success: 1.0,
            prior_failure: 2.0,
            half_life_ms: 6 * 3_600_000,
            wrong_weight: 4.0,
            timeout_weight: 1.0,
            unavailable_weight: 0.5,
            newcomer_until: 3,
        }
    }
}

/// One peer's record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Successes, decayed.
    pub successes: f64,
    /// Weighted failures, decayed.
    pub failures: f64,
    /// When last updated.
    pub at: UnixMillis,
    /// Observations ever made.
    pub observations: u32,
    /// Proven fraud: never trusted again.
    pub banned: bool,
}

/// A requester's local reputation of peers (see the module docs).
///
/// The score is the mean of a Beta distribution over the peer's chance of
/// serving correctly: `successes / (successes + failures)`, both starting at
/// the prior and decaying back toward it. Opinions from other peers
/// (EigenTrust-style global trust) can be folded in with
/// [`Reputation::fold_global`], which blends them with the local score; the
/// local record is kept separate so it stays first-hand evidence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reputation {
    config: ReputationConfig,
    peers: HashMap<PeerId, PeerRecord>,
    global: HashMap<PeerId, f64>,
    global_weight: f64,
}

/// A reputation snapshot that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt reputation snapshot: {0}")]
pub struct SnapshotError(pub String);

impl Reputation {
    /// An empty reputation.
    pub fn new(config: ReputationConfig) -> Reputation {
        Reputation {
            config,
            ..Reputation::default()
        }
    }

    /// The parameters.
    pub fn config(&self) -> &ReputationConfig {
        &self.config
    }

    fn decayed(&self, r: &PeerRecord, now: UnixMillis) -> (f64, f64) {
        let c = &self.config;
        let d = 0.5f64.powf(now.since(r.at) as f64 / c.half_life_ms.max(1) as f64);
        (
            c.prior_success + (r.successes - c.prior_success) * d,
            c.prior_failure + (r.failures - c.prior_failure) * d,
        )
    }

    /// The peer's local score in `[0, 1]`; the prior for strangers, 0 once
    /// fraud is proven.
    pub fn local_score(&self, peer: &PeerId, now: UnixMillis) -> f64 {
        self.local_of(self.peers.get(peer), now)
    }

    fn local_of(&self, record: Option<&PeerRecord>, now: UnixMillis) -> f64 {
        let c = &self.config;
        match record {
            Some(r) if r.banned => 0.0,
            Some(r) => {
                let (s, f) = self.decayed(r, now);
                s / (s + f)
            }
            None => c.prior_success / (c.prior_success + c.prior_failure),
        }
    }

    /// The score used for selection: the local score, blended with folded-in
    /// global trust when there is any. Proven fraud is always 0.
    pub fn score(&self, peer: &PeerId, now: UnixMillis) -> f64 {
        self.score_of(peer, self.peers.get(peer), now)
    }

    /// [`Reputation::score`] given the peer's record, looked up once.
    fn score_of(&self, peer: &PeerId, record: Option<&PeerRecord>, now: UnixMillis) -> f64 {
        if record.is_some_and(|r| r.banned) {
            return 0.0;
        }
        let local = self.local_of(record, now);
        if self.global.is_empty() {
            return local;
        }
        match self.global.get(peer) {
            Some(g) => (1.0 - self.global_weight) * local + self.global_weight * g.clamp(0.0, 1.0),
            None => local,
        }
    }

    /// Whether fraud by the peer has been proven.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|r| r.banned)
    }

    /// Whether the peer has too few observations to judge.
    pub fn is_newcomer(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_none_or(|r| r.observations < self.config.newcomer_until)
    }

    /// The peer's record, if any.
    pub fn record(&self, peer: &PeerId) -> Option<&PeerRecord> {
        self.peers.get(peer)
    }

    /// Records a direct outcome.
    pub fn observe(&mut self, peer: PeerId, obs: Observation, now: UnixMillis) {
        let c = self.config;
        let (s, f) = match self.peers.get(&peer) {
            Some(r) => self.decayed(r, now),
            None => (c.prior_success, c.prior_failure),
        };
        let r = self.peers.entry(peer).or_insert(PeerRecord {
            successes: s,
            failures: f,
            at: now,
            observations: 0,
            banned: false,
        });
        r.successes = s;
        r.failures = f;
        r.at = r.at.max(now);
        r.observations = r.observations.saturating_add(1);
        match obs {
            Observation::Success => r.successes += 1.0,
            Observation::WrongResult | Observation::InvalidReceipt => r.failures += c.wrong_weight,
            Observation::Timeout => r.failures += c.timeout_weight,
            Observation::Unavailable => r.failures += c.unavailable_weight,
            Observation::Fraud => r.banned = true,
        }
    }

    /// Folds in global trust values in `[0, 1]` (for example EigenTrust's
    /// normalised scores computed from trusted peers' opinions), weighted
    /// `weight` against local evidence.
    pub fn fold_global(&mut self, global: HashMap<PeerId, f64>, weight: f64) {
        self.global = global;
        self.global_weight = weight.clamp(0.0, 1.0);
    }

    /// Normalised local trust values (EigenTrust's `c_ij`): each peer's
    /// satisfactory-minus-unsatisfactory evidence above the prior, clipped at
    /// zero and summing to one. What a requester would share as its opinion.
    pub fn local_trust(&self, now: UnixMillis) -> Vec<(PeerId, f64)> {
        let mut v: Vec<(PeerId, f64)> = self
            .peers
            .iter()
            .filter(|(_, r)| !r.banned)
            .map(|(p, r)| {
                let (s, f) = self.decayed(r, now);
                let sat = (s - self.config.prior_success) - (f - self.config.prior_failure);
                (*p, sat.max(0.0))
            })
            .collect();
        let total: f64 = v.iter().map(|(_, x)| x).sum();
        if total > 0.0 {
            for (_, x) in &mut v {
                *x /= total;
            }
        }
        v.retain(|(_, x)| *x > 0.0);
        v.sort_by_key(|x| x.0);
        v
    }

    /// Peers on record.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is on record.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// A snapshot for durable storage (postcard; the config is not stored).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v: Vec<(PeerId, PeerRecord)> = self.peers.iter().map(|(p, r)| (*p, *r)).collect();
        v.sort_by_key(|x| x.0);
        postcard::to_allocvec(&(1u8, v)).unwrap_or_default()
    }

    /// Restores a snapshot made by [`Reputation::to_bytes`].
    pub fn from_bytes(config: ReputationConfig, bytes: &[u8]) -> Result<Reputation, SnapshotError> {
        let (version, v): (u8, Vec<(PeerId, PeerRecord)>) =
            postcard::from_bytes(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        if version != 1 {
            return Err(SnapshotError(format!("unknown version {version}")));
        }
        Ok(Reputation {
            config,
            peers: v.into_iter().collect(),
            ..Reputation::default()
        })
    }
}

// -------------------------------------------------------------- selection

/// What selection needs to know about a candidate.
#[derive(Debug, Clone, Copy)]
pub struct CandidateView<'a> {
    /// The executor.
    pub peer: PeerId,
    /// Its descriptor.
    pub descriptor: &'a Descriptor,
}

/// How good a registry rank is as a match: the registry's best answer
/// counts fully, later ones less.
pub fn match_weight(rank: usize) -> f64 {
    1.0 / (1.0 + 0.25 * rank as f64)
}

/// Orders candidates for trying (indexes into `cands`), best first, and
/// drops peers proven to cheat. The order is reputation × match × QoS;
/// then, with probability `exploration`, one newcomer chosen uniformly is
/// moved to the front. The chance of trying *a* newcomer is `exploration`
/// however many newcomers there are, so an attacker gains nothing by
/// minting identities.
pub fn order_candidates(
    cands: &[CandidateView<'_>],
    rep: &Reputation,
    now: UnixMillis,
    rng: &mut dyn Entropy,
    exploration: f64,
) -> Vec<usize> {
    // (index, score, newcomer), one reputation lookup per candidate.
    let mut scored: Vec<(usize, f64, bool)> = Vec::with_capacity(cands.len());
    for (i, c) in cands.iter().enumerate() {
        let record = rep.record(&c.peer);
        if record.is_some_and(|r| r.banned) {
            continue;
        }
        let qos = crate::discovery::qos_factor(c.descriptor) as f64;
        let newcomer = record.is_none_or(|r| r.observations < rep.config.newcomer_until);
        scored.push((
            i,
            rep.score_of(&c.peer, record, now) * match_weight(i) * (0.5 + 0.5 * qos),
            newcomer,
        ));
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let newcomers: Vec<usize> = scored.iter().filter(|s| s.2).map(|s| s.0).collect();
    let mut order: Vec<usize> = scored.into_iter().map(|(i, _, _)| i).collect();
    if !newcomers.is_empty() && rng.unit() < exploration {
        let pick = newcomers[rng.below(newcomers.len())];
        order.retain(|i| *i != pick);
        order.insert(0, pick);
    }
    order
}

// ------------------------------------------------------- tiers and policy

/// How much is at stake in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Read-only, easily redone.
    Low,
    /// Wrong output costs something.
    Medium,
    /// Side effects, or wrong output is costly.
    High,
}

/// Which checks a step gets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TierSet {
    /// Tier 1: reputation-ordered selection with fallback.
    pub reputation: bool,
    /// Tier 2: a canary before the real request.
    pub canary: bool,
    /// Tier 3: receipts must bind the invocation.
    pub evidence: bool,
    /// Tier 3: probability of also replaying the run (0 to 1).
    pub replay: f64,
}

impl TierSet {
    /// No checks: the registry's first answer, taken on trust.
    pub const NONE: TierSet = TierSet {
        reputation: false,
        canary: false,
        evidence: false,
        replay: 0.0,
    };
    /// Tier 1.
    pub const T1: TierSet = TierSet {
        reputation: true,
        canary: false,
        evidence: false,
        replay: 0.0,
    };
    /// Tiers 1 and 2.
    pub const T2: TierSet = TierSet {
        reputation: true,
        canary: true,
        evidence: false,
        replay: 0.0,
    };

    /// Tiers 1, 2 and 3, replaying with probability `replay`.
    pub const fn t3(replay: f64) -> TierSet {
        TierSet {
            reputation: true,
            canary: true,
            evidence: true,
            replay,
        }
    }

    /// A short label: `none`, `T1`, `T1+T2`, `T1+T2+T3`.
    pub fn label(&self) -> String {
        if !self.reputation && !self.canary && !self.evidence {
            return "none".into();
        }
        let mut v = Vec::new();
        if self.reputation {
            v.push("T1".to_owned());
        }
        if self.canary {
            v.push("T2".to_owned());
        }
        if self.evidence {
            v.push(if self.replay > 0.0 {
                format!("T3(replay {:.0}%)", self.replay * 100.0)
            } else {
                "T3".to_owned()
            });
        }
        v.join("+")
    }
}

/// Maps risk to tiers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskPolicy {
    /// For low-risk steps.
    pub low: TierSet,
    /// For medium-risk steps.
    pub medium: TierSet,
    /// For high-risk steps.
    pub high: TierSet,
}

impl Default for RiskPolicy {
    /// low → T1; medium → T1+T2; high → T1+T2+T3 with replay always.
    fn default() -> RiskPolicy {
        RiskPolicy {
            low: TierSet::T1,
            medium: TierSet::T2,
            high: TierSet::t3(1.0),
        }
    }
}

impl RiskPolicy {
    /// The tiers for `risk`.
    pub fn tiers(&self, risk: Risk) -> TierSet {
        match risk {
            Risk::Low => self.low,
            Risk::Medium => self.medium,
            Risk::High => self.high,
        }
    }
}

/// A workflow-wide policy: a fixed tier set for every step, or by risk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Policy {
    /// The same tiers for every step.
    Fixed(TierSet),
    /// Tiers by each step's risk.
    Risk(RiskPolicy),
}

impl Policy {
    /// The tiers for a step of `risk`, unless the step overrides them.
    pub fn tiers(&self, risk: Risk, step_override: Option<TierSet>) -> TierSet {
        if let Some(t) = step_override {
            return t;
        }
        match self {
            Policy::Fixed(t) => *t,
            Policy::Risk(p) => p.tiers(risk),
        }
    }

    /// Parses `none`, `t1`, `t2`, `t3` or `risk`; `t3` replays with
    /// probability `replay`.
    pub fn parse(s: &str, risk: RiskPolicy, replay: f64) -> Option<Policy> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => Policy::Fixed(TierSet::NONE),
            "t1" => Policy::Fixed(TierSet::T1),
            "t2" => Policy::Fixed(TierSet::T2),
            "t3" => Policy::Fixed(TierSet::t3(replay)),
            "risk" => Policy::Risk(risk),
            _ => return None,
        })
    }
}

/// The five policies Errand compares (the demo's table and the simulator's
/// sweeps): no checks, T1, T1+T2, T1+T2+T3 replaying with probability
/// `replay`, and risk-tiered ([`RiskPolicy::default`]).
pub fn standard_policies(replay: f64) -> Vec<(&'static str, Policy)> {
    vec![
        ("none", Policy::Fixed(TierSet::NONE)),
        ("T1", Policy::Fixed(TierSet::T1)),
        ("T1+T2", Policy::Fixed(TierSet::T2)),
        ("T1+T2+T3", Policy::Fixed(TierSet::t3(replay))),
        ("risk-tiered", Policy::Risk(RiskPolicy::default())),
    ]
}

// --------------------------------------------------------------- canaries

/// Words used to vary text canaries.
const CANARY_WORDS: &[&str] = &[
    "river", "amber", "quiet", "north", "lantern", "meadow", "copper", "swift", "harbor", "violet",
    "morning", "stone", "echo", "garden", "silver", "forest", "ember", "ocean", "maple", "winter",
];

/// A canary input derived from a manifest example: for UTF-8 text, a copy
/// with a few words inserted at random word boundaries, so every canary is
/// new to the executor yet shaped like real work; other inputs are used as
/// they are. The requester computes the right answer itself.
pub fn vary_canary(example: &[u8], rng: &mut dyn Entropy) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(example) else {
        return example.to_vec();
    };
    let mut words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    for _ in 0..(1 + rng.below(3)) {
        let w = CANARY_WORDS[rng.below(CANARY_WORDS.len())];
        let at = rng.below(words.len() + 1);
        words.insert(at, w.to_owned());
    }
    words.join(" ").into_bytes()
}

// ------------------------------------------------------------- delegation

/// Why a candidate was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// It answered the canary wrongly.
    CanaryFailed,
    /// The cross-check disagreed with it.
    CrossCheckFailed,
    /// Its receipt does not bind the invocation.
    InvalidReceipt(String),
    /// Replaying the run contradicted its receipt: fraud.
    ReplayMismatch(String),
    /// It did not answer in time.
    Timeout,
    /// It refused or could not serve.
    Unavailable(String),
}

impl Rejection {
    fn observation(&self) -> Observation {
        match self {
            Rejection::CanaryFailed | Rejection::CrossCheckFailed => Observation::WrongResult,
            Rejection::InvalidReceipt(_) => Observation::InvalidReceipt,
            Rejection::ReplayMismatch(_) => Observation::Fraud,
            Rejection::Timeout => Observation::Timeout,
            Rejection::Unavailable(_) => Observation::Unavailable,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::CanaryFailed => f.write_str("wrong answer to the canary"),
            Rejection::CrossCheckFailed => f.write_str("disagreed with the cross-check"),
            Rejection::InvalidReceipt(e) => write!(f, "invalid receipt: {e}"),
            Rejection::ReplayMismatch(e) => {
                write!(f, "replay contradicts the receipt (fraud): {e}")
            }
            Rejection::Timeout => f.write_str("timed out"),
            Rejection::Unavailable(e) => write!(f, "unavailable: {e}"),
        }
    }
}

/// What the caller should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send candidate `candidate` a canary whose answer the caller can
    /// compute (by running the public component), then report
    /// [`Event::Canary`].
    Canary {
        /// Index into the ordered candidates.
        candidate: usize,
    },
    /// The capability cannot be run locally: send the same canary to
    /// `candidate` and to `witness`, and report [`Event::CrossCheck`].
    CrossCheck {
        /// The candidate under test.
        candidate: usize,
        /// The second candidate it is checked against.
        witness: usize,
    },
    /// Send the real request, then report [`Event::Invoked`].
    Invoke {
        /// Index into the ordered candidates.
        candidate: usize,
    },
    /// Replay the run locally and report [`Event::Replayed`].
    Replay {
        /// Index into the ordered candidates.
        candidate: usize,
    },
    /// Done: use this candidate's answer.
    Succeeded {
        /// Index into the ordered candidates.
        candidate: usize,
    },
    /// Done: no candidate could be trusted within the budget.
    Failed,
}

/// What happened, reported by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The canary was answered; `correct` says whether the answer matched.
    Canary {
        /// Whether the answer was right.
        correct: bool,
    },
    /// The cross-check ran: whether the two answers agreed, and whether
    /// the witness answered at all.
    CrossCheck {
        /// The two outputs were equal.
        agreed: bool,
        /// The witness answered (if not, the check is inconclusive and the
        /// candidate is given the benefit of the doubt).
        witness_answered: bool,
    },
    /// The real request was answered; with evidence required, whether the
    /// receipt binds it (`None` when not checked).
    Invoked {
        /// `Some(Ok(()))` for a binding receipt, `Some(Err(why))` otherwise,
        /// `None` when the receipt was not checked.
        receipt: Option<Result<(), String>>,
    },
    /// The replay ran; `Err(why)` if it contradicted the receipt.
    Replayed(Result<(), String>),
    /// The candidate failed in some other way.
    Rejected(Rejection),
}

/// One attempt in a delegation, for reporting.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Index into the ordered candidates.
    pub candidate: usize,
    /// The checks that ran, in order, with their verdicts.
    pub checks: Vec<(&'static str, bool)>,
    /// Why it was rejected, if it was.
    pub rejected: Option<Rejection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Canary,
    Invoke,
    Replay,
    Done,
}

/// One step's delegation to the network (see the module docs).
///
/// Feed it the ordered candidates (from [`order_candidates`], or the
/// registry's order for the optimistic policy), then alternate
/// [`Delegation::decide`] and [`Delegation::observe`].
#[derive(Debug, Clone)]
pub struct Delegation {
    tiers: TierSet,
    peers: Vec<PeerId>,
    can_run_locally: Vec<bool>,
    budget: usize,
    current: usize,
    fallbacks: usize,
    phase: Phase,
    replay_roll: f64,
    attempts: Vec<Attempt>,
}

impl Delegation {
    /// A delegation over `peers` (already ordered) with `tiers`. At most
    /// `fallback_budget` candidates after the first are tried.
    /// `can_run_locally[i]` says whether the requester can run candidate
    /// `i`'s component itself (for canaries and replay).
    pub fn new(
        tiers: TierSet,
        peers: Vec<PeerId>,
        can_run_locally: Vec<bool>,
        fallback_budget: usize,
        rng: &mut dyn Entropy,
    ) -> Delegation {
        let mut d = Delegation {
            tiers,
            can_run_locally,
            budget: if tiers.reputation { fallback_budget } else { 0 },
            current: 0,
            fallbacks: 0,
            phase: Phase::Canary,
            replay_roll: rng.unit(),
            attempts: Vec::new(),
            peers,
        };
        d.start_candidate();
        d
    }

    fn start_candidate(&mut self) {
        if self.current >= self.peers.len() {
            self.phase = Phase::Done;
            return;
        }
        self.attempts.push(Attempt {
            candidate: self.current,
            checks: Vec::new(),
            rejected: None,
        });
        self.phase = if self.tiers.canary {
            Phase::Canary
        } else {
            Phase::Invoke
        };
    }

    /// Fallbacks used so far.
    pub fn fallbacks(&self) -> usize {
        self.fallbacks
    }

    /// The attempts so far.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The tiers in force.
    pub fn tiers(&self) -> TierSet {
        self.tiers
    }

    /// What to do next.
    pub fn decide(&self) -> Decision {
        if self.phase == Phase::Done || self.current >= self.peers.len() {
            return match self.attempts.last() {
                Some(a)
                    if a.rejected.is_none()
                        && self.phase == Phase::Done
                        && self.current < self.peers.len() =>
                {
                    Decision::Succeeded {
                        candidate: a.candidate,
                    }
                }
                _ => Decision::Failed,
            };
        }
        let c = self.current;
        match self.phase {
            Phase::Canary if self.can_run_locally.get(c).copied().unwrap_or(false) => {
                Decision::Canary { candidate: c }
            }
            Phase::Canary => {
                match (0..self.peers.len()).find(|w| *w != c && self.peers[*w] != self.peers[c]) {
                    Some(witness) => Decision::CrossCheck {
                        candidate: c,
                        witness,
                    },
                    // Nobody to cross-check against: go on unchecked.
                    None => Decision::Invoke { candidate: c },
                }
            }
            Phase::Invoke => Decision::Invoke { candidate: c },
            Phase::Replay => Decision::Replay { candidate: c },
            Phase::Done => Decision::Failed,
        }
    }

    fn check(&mut self, name: &'static str, ok: bool) {
        if let Some(a) = self.attempts.last_mut() {
            a.checks.push((name, ok));
        }
    }

    fn reject(&mut self, why: Rejection, rep: &mut Reputation, now: UnixMillis) {
        if self.tiers.reputation {
            rep.observe(self.peers[self.current], why.observation(), now);
        }
        if let Some(a) = self.attempts.last_mut() {
            a.rejected = Some(why);
        }
        if self.fallbacks < self.budget && self.current + 1 < self.peers.len() {
            self.fallbacks += 1;
            self.current += 1;
            self.start_candidate();
        } else {
            self.phase = Phase::Done;
            self.current = self.peers.len();
        }
    }

    fn succeed(&mut self, rep: &mut Reputation, now: UnixMillis) {
        if self.tiers.reputation {
            rep.observe(self.peers[self.current], Observation::Success, now);
        }
        self.phase = Phase::Done;
    }

    /// Reports what happened and updates the requester's reputation.
    pub fn observe(&mut self, event: Event, rep: &mut Reputation, now: UnixMillis) {
        if self.phase == Phase::Done {
            return;
        }
        match event {
            Event::Canary { correct } => {
                self.check("canary", correct);
                if correct {
                    self.phase = Phase::Invoke;
                } else {
                    self.reject(Rejection::CanaryFailed, rep, now);
                }
            }
            Event::CrossCheck {
                agreed,
                witness_answered,
            } => {
                self.check("cross-check", agreed || !witness_answered);
                if agreed || !witness_answered {
                    self.phase = Phase::Invoke;
                } else {
                    self.reject(Rejection::CrossCheckFailed, rep, now);
                }
            }
            Event::Invoked { receipt } => match receipt {
                Some(Err(why)) => {
                    self.check("receipt", false);
                    self.reject(Rejection::InvalidReceipt(why), rep, now);
                }
                other => {
                    if other.is_some() {
                        self.check("receipt", true);
                    }
                    let replay = self.tiers.evidence
                        && self.replay_roll < self.tiers.replay
                        && self
                            .can_run_locally
                            .get(self.current)
                            .copied()
                            .unwrap_or(false);
                    if replay {
                        self.phase = Phase::Replay;
                    } else {
                        self.succeed(rep, now);
                    }
                }
            },
            Event::Replayed(r) => {
                self.check("replay", r.is_ok());
                match r {
                    Ok(()) => self.succeed(rep, now),
                    Err(why) => self.reject(Rejection::ReplayMismatch(why), rep, now),
                }
            }
            Event::Rejected(why) => self.reject(why, rep, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    fn peer(n: u8) -> PeerId {
        testing::key(n).peer_id()
    }

    #[test]
    fn newcomers_start_low_but_not_zero_and_fraud_is_final() {
        let mut r = Reputation::new(ReputationConfig::default());
        let t = UnixMillis(1_000);
        let s0 = r.score(&peer(1), t);
        assert!(s0 > 0.2 && s0 < 0.5, "{s0}");
        for _ in 0..10 {
            r.observe(peer(1), Observation::Success, t);
        }
        assert!(r.score(&peer(1), t) > 0.8);
        r.observe(peer(1), Observation::Fraud, t);
        assert_eq!(r.score(&peer(1), t), 0.0);
        r.observe(peer(1), Observation::Success, t);
        assert_eq!(r.score(&peer(1), t), 0.0, "fraud is never forgiven");
    }

    #[test]
    fn reputation_decays_toward_the_prior() {
        let c = ReputationConfig::default();
        let mut r = Reputation::new(c);
        let t = UnixMillis(0);
        for _ in 0..5 {
            r.observe(peer(2), Observation::WrongResult, t);
        }
        let low = r.score(&peer(2), t);
        let later = r.score(&peer(2), t.plus_ms(c.half_life_ms * 4));
        let prior = r.score(&peer(3), t);
        assert!(low < later && later < prior + 1e-9, "{low} {later} {prior}");
        // Five wrong results are 20 failures above the prior; after four
        // half-lives 20/16 remain.
        let expected = c.prior_success / (c.prior_success + c.prior_failure + 20.0 / 16.0);
        assert!((later - expected).abs() < 1e-9, "{later} vs {expected}");
    }

    #[test]
    fn snapshot_round_trips() {
        let mut r = Reputation::new(ReputationConfig::default());
        r.observe(peer(1), Observation::Success, UnixMillis(5));
        r.observe(peer(2), Observation::Fraud, UnixMillis(6));
        let back = Reputation::from_bytes(ReputationConfig::default(), &r.to_bytes()).unwrap();
        assert_eq!(back, r);
        assert!(Reputation::from_bytes(ReputationConfig::default(), b"junk").is_err());
    }

    #[test]
    fn local_trust_is_normalised_and_global_trust_folds_in() {
        let mut r = Reputation::new(ReputationConfig::default());
        let t = UnixMillis(0);
        for _ in 0..3 {
            r.observe(peer(1), Observation::Success, t);
        }
        r.observe(peer(2), Observation::Success, t);
        r.observe(peer(3), Observation::WrongResult, t);
        let lt = r.local_trust(t);
        assert!((lt.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(lt.iter().all(|(p, _)| *p != peer(3)));
        let before = r.score(&peer(4), t);
        r.fold_global([(peer(4), 1.0)].into_iter().collect(), 0.5);
        assert!(r.score(&peer(4), t) > before);
    }

    #[test]
    fn exploration_is_bounded_however_many_newcomers_there_are() {
        let d = testing::descriptor(&testing::key(1));
        let mut rep = Reputation::new(ReputationConfig::default());
        let t = UnixMillis(0);
        let veteran = peer(1);
        for _ in 0..20 {
            rep.observe(veteran, Observation::Success, t);
        }
        for sybils in [1usize, 10, 100] {
            let peers: Vec<PeerId> = std::iter::once(veteran)
                .chain((0..sybils).map(|i| testing::key(100 + i as u8).peer_id()))
                .collect();
            let cands: Vec<CandidateView<'_>> = peers
                .iter()
                .map(|p| CandidateView {
                    peer: *p,
                    descriptor: &d,
                })
                .collect();
            let mut rng = SplitMix(7);
            let trials = 4000;
            let newcomer_first = (0..trials)
                .filter(|_| order_candidates(&cands, &rep, t, &mut rng, 0.1)[0] != 0)
                .count() as f64
                / trials as f64;
            assert!(
                (newcomer_first - 0.1).abs() < 0.03,
                "{sybils} sybils: {newcomer_first}"
            );
        }
    }

    #[test]
    fn banned_peers_are_never_candidates() {
        let d = testing::descriptor(&testing::key(1));
        let mut rep = Reputation::new(ReputationConfig::default());
        rep.observe(peer(2), Observation::Fraud, UnixMillis(0));
        let cands = [
            CandidateView {
                peer: peer(2),
                descriptor: &d,
            },
            CandidateView {
                peer: peer(3),
                descriptor: &d,
            },
        ];
        let order = order_candidates(&cands, &rep, UnixMillis(0), &mut SplitMix(1), 1.0);
        assert_eq!(order, vec![1]);
    }

    fn run(
        tiers: TierSet,
        events: &mut dyn FnMut(&Decision) -> Option<Event>,
        n: u8,
        budget: usize,
    ) -> (Decision, Delegation, Reputation) {
        let mut rep = Reputation::new(ReputationConfig::default());
        let peers: Vec<PeerId> = (1..=n).map(peer).collect();
        let mut d = Delegation::new(
            tiers,
            peers,
            vec![true; n as usize],
            budget,
            &mut SplitMix(3),
        );
        for _ in 0..100 {
            let dec = d.decide();
            match events(&dec) {
                Some(e) => d.observe(e, &mut rep, UnixMillis(0)),
                None => return (dec, d, rep),
            }
        }
        panic!("did not finish");
    }

    #[test]
    fn a_failed_canary_falls_back_and_the_next_candidate_succeeds() {
        let (dec, d, rep) = run(
            TierSet::T2,
            &mut |dec| match dec {
                Decision::Canary { candidate } => Some(Event::Canary {
                    correct: *candidate == 1,
                }),
                Decision::Invoke { .. } => Some(Event::Invoked { receipt: None }),
                _ => None,
            },
            3,
            2,
        );
        assert_eq!(dec, Decision::Succeeded { candidate: 1 });
        assert_eq!(d.fallbacks(), 1);
        assert_eq!(d.attempts()[0].rejected, Some(Rejection::CanaryFailed));
        assert!(rep.score(&peer(1), UnixMillis(0)) < rep.score(&peer(2), UnixMillis(0)));
    }

    #[test]
    fn the_fallback_budget_is_respected() {
        let (dec, d, _) = run(
            TierSet::T2,
            &mut |dec| match dec {
                Decision::Canary { .. } => Some(Event::Canary { correct: false }),
                _ => None,
            },
            5,
            2,
        );
        assert_eq!(dec, Decision::Failed);
        assert_eq!(d.attempts().len(), 3);
    }

    #[test]
    fn tier3_rejects_bad_receipts_and_replay_mismatches_ban() {
        let (dec, d, rep) = run(
            TierSet::t3(1.0),
            &mut |dec| match dec {
                Decision::Canary { .. } => Some(Event::Canary { correct: true }),
                Decision::Invoke { candidate: 0 } => Some(Event::Invoked {
                    receipt: Some(Err("forged".into())),
                }),
                Decision::Invoke { .. } => Some(Event::Invoked {
                    receipt: Some(Ok(())),
                }),
                Decision::Replay { candidate: 1 } => {
                    Some(Event::Replayed(Err("output differs".into())))
                }
                Decision::Replay { .. } => Some(Event::Replayed(Ok(()))),
                _ => None,
            },
            3,
            5,
        );
        assert_eq!(dec, Decision::Succeeded { candidate: 2 });
        assert_eq!(d.fallbacks(), 2);
        assert!(matches!(
            d.attempts()[0].rejected,
            Some(Rejection::InvalidReceipt(_))
        ));
        assert!(rep.is_banned(&peer(2)), "a replay mismatch is fraud");
        assert!(!rep.is_banned(&peer(1)));
    }

    #[test]
    fn no_tiers_means_the_first_answer_and_no_fallback() {
        let (dec, d, rep) = run(
            TierSet::NONE,
            &mut |dec| match dec {
                Decision::Invoke { .. } => Some(Event::Rejected(Rejection::Timeout)),
                _ => None,
            },
            3,
            5,
        );
        assert_eq!(dec, Decision::Failed);
        assert_eq!(d.attempts().len(), 1);
        assert!(rep.is_empty(), "without tier 1 nothing is recorded");
    }

    #[test]
    fn cross_check_when_the_component_cannot_run_locally() {
        let mut rep = Reputation::new(ReputationConfig::default());
        let mut d = Delegation::new(
            TierSet::T2,
            vec![peer(1), peer(2)],
            vec![false, false],
            3,
            &mut SplitMix(1),
        );
        assert_eq!(
            d.decide(),
            Decision::CrossCheck {
                candidate: 0,
                witness: 1
            }
        );
        d.observe(
            Event::CrossCheck {
                agreed: false,
                witness_answered: true,
            },
            &mut rep,
            UnixMillis(0),
        );
        assert_eq!(
            d.decide(),
            Decision::CrossCheck {
                candidate: 1,
                witness: 0
            }
        );
    }

    #[test]
    fn canary_variants_differ_from_the_example_and_each_other() {
        let ex = b"the quick brown fox";
        let mut rng = SplitMix(9);
        let a = vary_canary(ex, &mut rng);
        let b = vary_canary(ex, &mut rng);
        assert_ne!(a, ex.to_vec());
        assert_ne!(a, b);
        assert!(std::str::from_utf8(&a).unwrap().contains("quick"));
        assert_eq!(vary_canary(&[0xff, 0x00], &mut rng), vec![0xff, 0x00]);
    }

    #[test]
    fn risk_policy_maps_as_documented_and_steps_can_override() {
        let p = Policy::Risk(RiskPolicy::default());
        assert_eq!(p.tiers(Risk::Low, None), TierSet::T1);
        assert_eq!(p.tiers(Risk::Medium, None), TierSet::T2);
        assert_eq!(p.tiers(Risk::High, None), TierSet::t3(1.0));
        assert_eq!(p.tiers(Risk::High, Some(TierSet::NONE)), TierSet::NONE);
        assert_eq!(
            Policy::parse("t1", RiskPolicy::default(), 0.5),
            Some(Policy::Fixed(TierSet::T1))
        );
        assert_eq!(
            Policy::parse("T3", RiskPolicy::default(), 0.5),
            Some(Policy::Fixed(TierSet::t3(0.5)))
        );
        assert!(Policy::parse("max", RiskPolicy::default(), 0.5).is_none());
        assert_eq!(TierSet::t3(0.25).label(), "T1+T2+T3(replay 25%)");
    }
}
