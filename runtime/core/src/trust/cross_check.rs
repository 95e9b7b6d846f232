//! Tier 2 when the requester cannot run the component itself: the canary
//! goes to the candidate and to a witness, and their answers are compared.

use crate::identity::PeerId;

/// The witness to cross-check candidate `candidate` against: another
/// candidate published by a different peer.
pub(super) fn pick_witness(peers: &[PeerId], candidate: usize) -> Option<usize> {
    (0..peers.len()).find(|w| *w != candidate && peers[*w] != peers[candidate])
}
