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
//!   peer's direct outcomes ([`Reputation`]). Peers with a track record are
//!   ordered by reputation × match × declared QoS; newcomers' claims earn
//!   nothing yet, so they are shuffled behind them, with a bounded chance
//!   to try one first ([`order_candidates`]).
//! * **Tier 2, canaries.** Before the real request the requester sends a
//!   canary: an invocation whose right answer it knows, either by running
//!   the public component itself or, when it cannot, by cross-checking a
//!   second candidate, a *witness* drawn at random ([`CrossCheckOutcome`]).
//!   Canary inputs are made from the requester's own recent real inputs
//!   for the capability ([`CanaryPool`]), never from the manifest's public
//!   examples or a fixed word list; the canary and the real request travel
//!   alike (parameters, time, fuel, limits, fresh nonce and seed each), go
//!   in a random order ([`Delegation::real_first`]) with a random gap
//!   ([`Delegation::delay_ms`]). An executor sees only two requests of
//!   the same shape, size and type; [`detector`] is the adversary that
//!   tries to tell them apart, and the tests measure how well it does.
//! * **Tier 3, evidence.** The receipt must bind executor, nonce, component,
//!   input and output; with a configurable probability the requester also
//!   replays the run. A replay that contradicts the signed receipt is proof
//!   of cheating: the evidence is kept as a fraud proof and the peer's
//!   reputation drops to zero for good ([`ReplayOutcome`]).
//!
//! Only what the requester actually established counts. An answer accepted
//! after a check passed in the same attempt (canary, cross-check, replay) is
//! an [`Observation::Success`]; one accepted with no check is
//! [`Observation::Unverified`], worth a fraction of a success. When the
//! requester cannot check a candidate (its own canary run or replay failed,
//! no witness answered or none is left) the outcome is *inconclusive*
//! ([`Rejection::Inconclusive`]): the delegation moves on to the next
//! candidate and records nothing against this one.
//!
//! ## One delegation
//!
//! ```text
//! candidate i (the next one in order, while the fallback budget lasts)
//!   │
//!   ├─ no tier 2 ────────────────────────────────────────────────┐
//!   ├─ the requester can run it: [T2] Canary (before or after    │
//!   │   Invoke, at random, with a random gap; a wrong canary     │
//!   │   discards the real answer)                                │
//!   │     ├─ right ──────────────────────────────────── checked ─┤
//!   │     ├─ wrong ────────────────────────────► ✗               │
//!   │     └─ its own run failed ───────────────► ?               │
//!   └─ it cannot: draw a witness at random ◄───────┐             │
//!         ├─ none left, or 3 drawn already ────► ? │             │
//!         └─ [T2] CrossCheck with the witness      │             │
//!               ├─ agreed ───────────────────────────── checked ─┤
//!               ├─ witness silent ─────────────────┤             │
//!               ├─ first disagreement ─────────────┘             │
//!               └─ second disagreement ────────► ✗               │
//!   ┌────────────────────────────────────────────────────────────┘
//!   ▼
//! Invoke ─┬─ error, timeout, invalid receipt ─► ✗
//!         └─ ok: [T3] replay rolled, and the requester can run it?
//!              ├─ no ──► Succeeded (Success if checked, else Unverified)
//!              └─ yes: Replay ─┬─ matched ─► Succeeded (Success)
//!                              ├─ mismatch ─► ✗ fraud: banned
//!                              └─ the requester could not replay ─► ?
//! ```
//!
//! ✗ and ? both move on to the next candidate; ✗ counts against the
//! candidate in its reputation (tier 1), ? (inconclusive) counts nothing.
//! A candidate that does not answer a canary or cross-check in time, or
//! refuses it, is ✗ as at Invoke.
//! A candidate is cross-checked against at most [`MAX_WITNESSES`]
//! witnesses, each drawn from candidates not rejected for cause and
//! published by another peer than the candidate and its earlier witnesses.
//! When the candidates or the fallback budget run out the delegation fails;
//! the requester may then run a wider discovery round ([`next_round`]).
//!
//! ## Layout
//!
//! | module | tier | what |
//! |---|---|---|
//! | `reputation` | 1 | observations, peer records, candidate ordering |
//! | `canary` | 2 | canary inputs drawn from the requester's own traffic |
//! | `detector` | 2 | the adversary model: an executor guessing which request is a canary |
//! | `cross_check` | 2 | witness draws and cross-check outcomes |
//! | `evidence` | 3 | replay outcomes and whether to replay a run |
//! | `policy` | all | risk, tier sets, policies |
//! | `delegation` | all | the state machine that runs one step's delegation |
//! | `rounds` | all | wider discovery rounds after a round with no one trustworthy |
//!
//! Every item is re-exported here, so `errand_core::trust::X` is the path
//! to use.

mod canary;
mod cross_check;
mod delegation;
pub mod detector;
mod evidence;
mod policy;
mod reputation;
mod rounds;

pub use canary::{
    CanaryPool, PNG_SIGNATURE, POOL_CAPABILITIES, POOL_MAX_BYTES, POOL_MAX_INPUT,
    POOL_PER_CAPABILITY, encode_png, vary_canary,
};
pub use cross_check::{CrossCheckOutcome, MAX_WITNESSES};
pub use delegation::{Attempt, Decision, Delegation, Event, MAX_PAIR_DELAY_MS, Rejection};
pub use evidence::ReplayOutcome;
pub use policy::{Policy, Risk, RiskPolicy, TierSet, standard_policies};
pub use reputation::{
    CandidateView, Observation, PeerRecord, Reputation, ReputationConfig, SnapshotError,
    match_weight, order_candidates,
};
pub use rounds::{WIDEN_FACTOR, admit, next_round};

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
