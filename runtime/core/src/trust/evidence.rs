//! Tier 3: receipts must bind the invocation, and some runs are replayed.
//!
//! A replay can end three ways, and only one of them says anything about
//! the executor: the requester's own correct re-run contradicting the
//! executor's signed receipt is proof of fraud; a replay that could not run
//! on the requester's side proves nothing either way.

use serde::{Deserialize, Serialize};

use super::TierSet;

/// How a replay ended, reported with [`super::Event::Replayed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplayOutcome {
    /// The requester's re-run produced what the receipt says.
    Matched,
    /// Proof of cheating: the requester's correct re-run contradicts the
    /// executor's signed receipt (why, for the fraud proof). The executor is
    /// banned for good.
    Mismatch(String),
    /// The requester could not replay (the package is missing, a host error,
    /// a limit on the requester's side): nothing is proven and nothing is
    /// held against the executor.
    Inconclusive(String),
}

/// Whether to replay a run: evidence is required, the delegation's roll
/// fell under the replay probability, and the requester can run the
/// component itself.
pub(super) fn should_replay(tiers: &TierSet, roll: f64, can_run_locally: bool) -> bool {
    tiers.evidence && roll < tiers.replay && can_run_locally
}
