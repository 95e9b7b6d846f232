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
//!
//! ## Layout
//!
//! | module | tier | what |
//! |---|---|---|
//! | `reputation` | 1 | observations, peer records, candidate ordering |
//! | `canary` | 2 | canary inputs varied per request |
//! | `cross_check` | 2 | choosing the witness a candidate is checked against |
//! | `evidence` | 3 | whether to replay a run |
//! | `policy` | all | risk, tier sets, policies |
//! | `delegation` | all | the state machine that runs one step's delegation |
//!
//! Every item is re-exported here, so `errand_core::trust::X` is the path
//! to use.

mod canary;
mod cross_check;
mod delegation;
mod evidence;
mod policy;
mod reputation;

pub use canary::vary_canary;
pub use delegation::{Attempt, Decision, Delegation, Event, Rejection};
pub use policy::{Policy, Risk, RiskPolicy, TierSet, standard_policies};
pub use reputation::{
    CandidateView, Observation, PeerRecord, Reputation, ReputationConfig, SnapshotError,
    match_weight, order_candidates,
};

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
