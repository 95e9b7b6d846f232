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

/// What tier 3 asks of an answer the receipt check passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReplayPlan {
    /// No replay this time: accept.
    Skip,
    /// Replay it.
    Replay,
    /// A replay is called for but the requester cannot run the component:
    /// the answer is unverifiable, so it is passed over (inconclusive),
    /// never accepted unchecked.
    Unverifiable,
}

/// Whether to replay a run: evidence is required and the delegation's roll
/// fell under the replay probability. An executor cannot escape a replay
/// by withholding its package: a run that should be replayed and cannot be
/// is not accepted.
pub(super) fn replay_plan(tiers: &TierSet, roll: f64, can_run_locally: bool) -> ReplayPlan {
    match (tiers.evidence && roll < tiers.replay, can_run_locally) {
        (false, _) => ReplayPlan::Skip,
        (true, true) => ReplayPlan::Replay,
        (true, false) => ReplayPlan::Unverifiable,
    }
}
