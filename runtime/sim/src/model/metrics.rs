//! What a run measures: counters, latencies, and each workflow's ground
//! truth.

/// One workflow's ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkflowRecord {
    /// Whether it was counted a success.
    pub success: bool,
    /// Steps that ended with an accepted answer.
    pub accepted: u8,
    /// Bit `i`: step `i`'s accepted answer was right.
    pub right: u32,
}

impl WorkflowRecord {
    /// Whether every one of `steps` steps accepted a right answer.
    pub fn all_right(&self, steps: usize) -> bool {
        usize::from(self.accepted) == steps && (0..steps).all(|i| self.right & (1 << i) != 0)
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Workflows finished.
    pub workflows: u64,
    /// Workflows whose every accepted answer was right.
    pub successes: u64,
    /// Workflows that failed at a step that had met a stale descriptor.
    pub stale_failures: u64,
    /// Workflows that accepted a wrong answer.
    pub wrong_accepted: u64,
    /// End-to-end latencies of successful workflows (ms).
    pub latencies_ms: Vec<f64>,
    /// Discovery round trips: from sending the queries to holding the
    /// merged candidates (ms).
    pub discovery_ms: Vec<f64>,
    /// Fallbacks used.
    pub fallbacks: u64,
    /// Wider discovery rounds run after a round with no one trustworthy.
    pub wider_rounds: u64,
    /// Publishing messages (descriptors and acknowledgements).
    pub publish_messages: u64,
    /// Publishing bytes.
    pub publish_bytes: u64,
    /// Discovery messages (queries and answers).
    pub discovery_messages: u64,
    /// Discovery bytes.
    pub discovery_bytes: u64,
    /// Verification messages (canaries and cross-checks).
    pub verify_messages: u64,
    /// Verification bytes.
    pub verify_bytes: u64,
    /// Requests (canaries and real) sent to executors.
    pub invocations: u64,
    /// … that reached a capability that had disappeared (stale descriptors).
    pub stale_hits: u64,
    /// Receipts refused by tier 3 (a forged signature, or a receipt that
    /// does not answer the signed request).
    pub invalid_receipts: u64,
    /// … of which `Request::check_receipt` named the parameters.
    pub params_mismatches: u64,
    /// Replays run.
    pub replays: u64,
    /// … that contradicted the receipt (fraud: the executor is banned).
    pub replay_mismatches: u64,
    /// … that failed on the requester's side (inconclusive).
    pub replay_inconclusive: u64,
    /// Honest executors a requester banned for fraud (should stay 0).
    pub honest_banned: u64,
    /// Events processed.
    pub events: u64,
    /// Virtual time simulated (ms).
    pub simulated_ms: f64,
    /// Virtual time during which workflows ran (ms), after the warm-up.
    pub active_ms: f64,
    /// Ground truth per workflow.
    pub records: Vec<WorkflowRecord>,
}

impl Metrics {
    /// Control-plane messages: publishing, discovery and verification.
    pub fn control_messages(&self) -> u64 {
        self.publish_messages + self.discovery_messages + self.verify_messages
    }

    /// Control-plane bytes.
    pub fn control_bytes(&self) -> u64 {
        self.publish_bytes + self.discovery_bytes + self.verify_bytes
    }

    /// Successes over workflows (NaN when none finished).
    pub fn success_rate(&self) -> f64 {
        self.successes as f64 / self.workflows as f64
    }
}
