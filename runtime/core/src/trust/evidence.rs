//! Tier 3: receipts must bind the invocation, and some runs are replayed.

use super::TierSet;

/// Whether to replay a run: evidence is required, the delegation's roll
/// fell under the replay probability, and the requester can run the
/// component itself.
pub(super) fn should_replay(tiers: &TierSet, roll: f64, can_run_locally: bool) -> bool {
    tiers.evidence && roll < tiers.replay && can_run_locally
}
