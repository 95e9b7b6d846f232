//! Wider discovery rounds: what a requester does when a whole round of
//! candidates yields no one trustworthy.
//!
//! A registry answers a query with at most `limit` candidates. Sybils that
//! fill that answer to the brim (index poisoning), or a cold start whose
//! first draws are all cheaters, would otherwise fail the step while honest
//! providers sit just below the cut. So, for verified policies (tier 1 and
//! up), a round that ends in [`super::Decision::Failed`] is followed by
//! another, as long as the registries' answer was full:
//!
//! ```text
//! round 0: query(limit) ─► order ─► Delegation ─► Succeeded ─► done
//!                                       │
//!                                       └─ Failed, answer full, rounds left
//!                                             │
//! round n: query(limit × WIDEN_FACTOR, ≤ MAX_CANDIDATES)
//!          minus every peer already tried, minus every peer caught lying
//!          ─► order ─► a fresh Delegation (its own fallback budget) ─► …
//! ```
//!
//! Liars cost a canary each and are caught for good, so an attacker's
//! numbers cannot exhaust the search; peers that merely time out cost the
//! step timeout each, which is what `rounds` bounds. The node's workflow
//! runner and the simulator both follow [`next_round`] and [`admit`].

use super::{Reputation, TierSet};
use crate::identity::PeerId;
use crate::time::UnixMillis;
use crate::wire::MAX_CANDIDATES;

/// How much a wider round multiplies the candidates asked for.
pub const WIDEN_FACTOR: u16 = 4;

/// The candidate limit of the round after round `round` (0-based) failed,
/// or `None` when the search stops: the policy is optimistic (no tier 1),
/// `max_rounds` wider rounds were run already, the registries returned
/// fewer than `limit` candidates (they hold no more), or `limit` is the
/// protocol's most already.
pub fn next_round(
    tiers: TierSet,
    round: usize,
    max_rounds: u8,
    limit: u16,
    answered: usize,
) -> Option<u16> {
    let max = MAX_CANDIDATES as u16;
    (tiers.reputation && round < usize::from(max_rounds) && answered >= usize::from(limit))
        .then(|| limit.saturating_mul(WIDEN_FACTOR).min(max))
        .filter(|&next| next > limit)
}

/// Whether `peer` is a candidate in round `round`: never one already tried
/// in this step, and, in wider rounds, never one caught lying.
pub fn admit(
    round: usize,
    tried: &[PeerId],
    rep: &Reputation,
    peer: &PeerId,
    now: UnixMillis,
) -> bool {
    !tried.contains(peer) && (round == 0 || !rep.caught_lying(peer, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{Observation, ReputationConfig};

    #[test]
    fn rounds_widen_only_for_verified_policies_with_a_full_answer() {
        assert_eq!(next_round(TierSet::T2, 0, 2, 10, 10), Some(40));
        assert_eq!(next_round(TierSet::T2, 1, 2, 40, 40), Some(100));
        assert_eq!(next_round(TierSet::T2, 2, 2, 100, 100), None, "rounds used");
        assert_eq!(
            next_round(TierSet::T2, 0, 2, 10, 9),
            None,
            "registry had no more"
        );
        assert_eq!(next_round(TierSet::NONE, 0, 2, 10, 10), None, "optimistic");
        assert_eq!(next_round(TierSet::T2, 0, 5, 100, 100), None, "at the cap");
        assert_eq!(next_round(TierSet::T2, 0, 0, 10, 10), None, "widening off");
    }

    #[test]
    fn wider_rounds_leave_out_tried_peers_and_liars() {
        let mut rep = Reputation::new(ReputationConfig::default());
        let (a, b, c) = (PeerId([1; 32]), PeerId([2; 32]), PeerId([3; 32]));
        let now = UnixMillis(1_000_000);
        rep.observe(b, Observation::WrongResult, now);
        assert!(!admit(0, &[a], &rep, &a, now));
        assert!(admit(0, &[a], &rep, &b, now), "round 0 takes what it gets");
        assert!(!admit(1, &[a], &rep, &b, now), "a liar is left out later");
        assert!(admit(1, &[a], &rep, &c, now));
    }
}
