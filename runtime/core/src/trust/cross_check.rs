//! Tier 2 when the requester cannot run the component itself: the canary
//! goes to the candidate and to a witness, and their answers are compared.
//!
//! The witness is drawn at random, so an executor cannot know in advance who
//! will check it, among candidates that
//!
//! * were not rejected for cause (an inconclusive candidate did nothing
//!   wrong and may witness), and that the requester has not caught lying
//!   lately ([`super::Reputation::caught_lying`]: a liar caught once does
//!   not vote again),
//! * are published by another peer than the candidate, and
//! * are not published by a peer already used as a witness for this
//!   candidate (two listings of one peer are one opinion).
//!
//! One agreeing witness passes the candidate. One disagreeing witness is not
//! enough to reject it (the witness may be the liar): a second one is
//! drawn, and the candidate is rejected only if that one disagrees too. A
//! silent witness is inconclusive and another is drawn. After
//! [`MAX_WITNESSES`], or when no witness is left, the candidate is not
//! checked: it is passed over without a verdict
//! ([`super::Rejection::Inconclusive`]).

use serde::{Deserialize, Serialize};

use super::Entropy;
use crate::identity::PeerId;

/// The most witnesses one candidate is cross-checked against.
pub const MAX_WITNESSES: usize = 3;

/// Disagreeing witnesses that reject a candidate.
pub(super) const DISAGREEMENTS_TO_REJECT: usize = 2;

/// How one cross-check ended, reported with [`super::Event::CrossCheck`].
/// (A candidate that does not answer is reported as
/// `Event::Rejected(Rejection::Timeout)` or `Unavailable`, as for any other
/// request.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CrossCheckOutcome {
    /// The candidate and the witness answered with equal outputs.
    Agreed,
    /// Both answered, with different outputs.
    Disagreed,
    /// The witness did not answer (timeout, unavailable, gone): the check
    /// says nothing about the candidate, and another witness is drawn.
    WitnessSilent,
}

/// Draws a witness for `candidate` (see the module docs): `None` when no
/// candidate qualifies. `rejected[i]` says candidate `i` was rejected for
/// cause; `used` are the witnesses already drawn for this candidate.
pub(super) fn draw_witness(
    peers: &[PeerId],
    candidate: usize,
    rejected: &[bool],
    used: &[usize],
    rng: &mut dyn Entropy,
) -> Option<usize> {
    let me = peers.get(candidate)?;
    let eligible: Vec<usize> = (0..peers.len())
        .filter(|&w| {
            w != candidate
                && peers[w] != *me
                && !rejected.get(w).copied().unwrap_or(false)
                && used.iter().all(|&u| peers.get(u) != Some(&peers[w]))
        })
        .collect();
    if eligible.is_empty() {
        return None;
    }
    Some(eligible[rng.below(eligible.len())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use crate::trust::SplitMix;

    #[test]
    fn witnesses_are_other_publishers_not_rejected_and_not_reused() {
        let a = testing::key(1).peer_id();
        let b = testing::key(2).peer_id();
        let c = testing::key(3).peer_id();
        // Candidate 0 is a; 1 is a's second listing; 2 and 3 are b; 4 is c.
        let peers = [a, a, b, b, c];
        let mut rng = SplitMix(5);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let w = draw_witness(&peers, 0, &[false; 5], &[], &mut rng).unwrap();
            seen[w] = true;
        }
        assert_eq!(seen, [false, false, true, true, true]);
        // b already witnessed: only c is left; c rejected: nobody.
        for _ in 0..50 {
            assert_eq!(
                draw_witness(&peers, 0, &[false; 5], &[2], &mut rng),
                Some(4)
            );
        }
        let rejected = [false, false, false, false, true];
        assert_eq!(draw_witness(&peers, 0, &rejected, &[3], &mut rng), None);
    }
}
