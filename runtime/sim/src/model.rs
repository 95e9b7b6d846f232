//! The simulated world and its event loop.
//!
//! Time is virtual (microseconds). Every random choice comes from one
//! seeded generator, and simultaneous events run in the order they were
//! scheduled, so a seed and a configuration determine a run exactly.
//!
//! What is modelled here, and what is Errand's own code:
//!
//! | part | where |
//! |---|---|
//! | descriptors, their validity and expiry | `errand_core::descriptor`, real objects |
//! | registry indexing, matching, ranking, soft-state expiry | `errand_core::discovery::Index`, one per registry |
//! | merging several registries' answers | `errand_core::discovery::merge` |
//! | reputation, candidate ordering, exploration | `errand_core::trust` |
//! | canaries, cross-checks, receipts, replay, fallback | `errand_core::trust::Delegation` |
//! | risk → tiers | `errand_core::trust::Policy` |
//! | whether a receipt answers the signed request (params, component, seed, …) | `errand_core::request::Request::check_receipt`, on real objects |
//! | links, processing times, executors' answers, attacks, drift, feedback | modelled here |
//! | the requester's own replay run (it re-runs the request; it can fail) | modelled here |
//!
//! Signatures are not computed: publishers send descriptors with a
//! placeholder signature and registries take the path they take after a
//! successful verification ([`errand_core::discovery::Index::insert_verified`]).
//! A Sybil's own descriptors are validly signed in reality, so this changes
//! nothing the model measures.
//!
//! ## The flow of one workflow step
//!
//! ```text
//! requester ──query──▶ every registry of its region ──candidates──▶ requester
//!   merge answers → order (tier 1) → Delegation::new
//!   loop: Delegation::decide → Canary / CrossCheck / Invoke / Replay
//!         ──request──▶ executor ──answer (or silence until the timeout)──▶
//!         Delegation::observe
//!   until Succeeded (next step) or Failed (the workflow fails)
//! ```
//!
//! A workflow succeeds only if every step's accepted answer was right: the
//! ground truth is kept beside the requester's view, never inferred from it.
//!
//! ## What an executor ran, what its receipt claims, and replay
//!
//! Each answer records what the executor *ran* (the asked parameters or
//! cheaper ones, the asked component or another, the request's seed or
//! another: a [`Run`]), what its receipt *claims* it ran, whether the
//! receipt's signature holds, and whether the output is what running the
//! request gives. When receipts are checked (tier 3), the claimed fields go
//! through the real `Request::check_receipt` against the signed request
//! ([`Binding`]): a receipt that honestly names cheaper parameters fails,
//! naming `params`, and is an invalid receipt, replay or not. Replay runs
//! the *request*, never the receipt's claims: it matches an honest run,
//! contradicts a cheating run whose receipt answers the request (fraud),
//! and with probability [`Params::replay_fail`] fails on the requester's own
//! side (package missing, host error), which is inconclusive: no fraud, no
//! reputation change.
//!
//! ## Canary-aware attackers and the detector's accuracy
//!
//! A canary-aware (or param-swap) Sybil classifies each request as canary
//! or real work and cheats only on what it takes for real work. Its
//! classifier is modelled at a balanced operating point with accuracy
//! `a` = [`Params::detector_accuracy`]: a canary is flagged as a canary with
//! probability `a` and real work as real with probability `a`, so it cheats
//! on real work with probability `a` and on canaries with probability
//! `1 − a` (where the canary catches it). `a = 0.5` is a coin flip (it
//! cheats on half of everything), `a = 1` a perfect detector (canaries never
//! see it). [`Params::canary_detect`] overrides this with the older model:
//! a canary is recognised with that probability and real work is never
//! mistaken for one.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, LazyLock};

use errand_core::bounded::{BString, BVec};
use errand_core::descriptor::{
    Descriptor, MediaSpec, NetAddr, Qos, SignedDescriptor, Tiers, Version,
};
use errand_core::discovery::{Index, Ranking, RegistryLimits, merge};
use errand_core::receipt::{BindingError, InvocationContext, Receipt};
use errand_core::request::{Request, Seed, SignedRequest};
use errand_core::trust::{
    self, CandidateView, CrossCheckOutcome, Decision, Delegation, Entropy, Event, Observation,
    Policy, Rejection, ReplayOutcome, Reputation, ReputationConfig, Risk, SplitMix, TierSet,
    order_candidates,
};
use errand_core::wire::Query;
use errand_core::{Digest, PeerId, UnixMillis};

/// How Sybils cheat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// Wrong output, with a receipt that matches it (the paper's attacker).
    WrongOutput,
    /// Right output, invalid receipt.
    ForgeReceipt,
    /// No answer at all.
    Silent,
    /// Answers what it takes for a canary honestly and cheats (wrong
    /// output, with a receipt that answers the request) on what it takes
    /// for real work; see the module docs for how often it guesses right.
    CanaryAware,
    /// Serves honestly `defect_after` times, then gives wrong output.
    BuildThenDefect,
    /// Runs cheaper parameters than asked on what it takes for real work
    /// (guessing like [`Attack::CanaryAware`]) and signs that honestly: its
    /// receipt names the cheaper parameters, and the cheaper output differs
    /// from the asked one. Receipt binding (tier 3) rejects it without
    /// replay; canaries see it only when it does not recognise them.
    ParamSwap,
    /// Each Sybil picks one of the five cheating strategies at random.
    Mixed,
}

impl Attack {
    /// Every strategy, in documentation order.
    pub const ALL: [Attack; 7] = [
        Attack::WrongOutput,
        Attack::ForgeReceipt,
        Attack::Silent,
        Attack::CanaryAware,
        Attack::BuildThenDefect,
        Attack::ParamSwap,
        Attack::Mixed,
    ];

    /// Parses a name as used by `--set attack=…`.
    pub fn parse(s: &str) -> Option<Attack> {
        Attack::ALL.into_iter().find(|a| a.name() == s)
    }

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Attack::WrongOutput => "wrong-output",
            Attack::ForgeReceipt => "forge-receipt",
            Attack::Silent => "silent",
            Attack::CanaryAware => "canary-aware",
            Attack::BuildThenDefect => "build-then-defect",
            Attack::ParamSwap => "param-swap",
            Attack::Mixed => "mixed",
        }
    }
}

/// How a requester without tier 1 picks among the registry's candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The best-ranked candidate (the paper's optimistic baseline).
    Best,
    /// A uniformly random candidate (for the analytic check).
    Random,
}

/// A run's parameters. Times are in milliseconds unless named otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Peers (honest and Sybil).
    pub peers: usize,
    /// Fraction of peers that are Sybils (α).
    pub sybil_fraction: f64,
    /// How Sybils cheat.
    pub attack: Attack,
    /// Accuracy of a canary-aware or param-swap Sybil's canary detector on
    /// a balanced sample: it cheats on real work with this probability and
    /// on canaries with one minus it (see the module docs). Default
    /// [`DETECTOR_ACCURACY`].
    pub detector_accuracy: f64,
    /// Overrides the detector model: the chance a canary is recognised,
    /// real work never being taken for a canary (the older model; `None`
    /// uses [`Params::detector_accuracy`]).
    pub canary_detect: Option<f64>,
    /// Chance a replay fails on the requester's own side (package missing,
    /// host error, a local limit): inconclusive, never fraud. Default
    /// [`REPLAY_FAIL`].
    pub replay_fail: f64,
    /// Honest answers a build-then-defect Sybil gives first.
    pub defect_after: u32,
    /// Sybils take a fresh identity this often (0: never).
    pub remint_ms: u64,
    /// Whether Sybils stuff their descriptors with the popular intents and
    /// advertise unbeatable QoS (index poisoning).
    pub sybil_attractive: bool,
    /// Capability kinds in the catalogue.
    pub kinds: usize,
    /// Capabilities each honest peer hosts.
    pub caps_per_peer: usize,
    /// Registries (0: one per 10,000 peers).
    pub registries: usize,
    /// Network regions.
    pub regions: usize,
    /// One-way latency within a region.
    pub intra_ms: f64,
    /// One-way latency between regions.
    pub inter_ms: f64,
    /// One-way latency per pair of regions, row-major (`regions`²
    /// entries); empty to use `intra_ms` and `inter_ms`.
    pub region_ms: Vec<f64>,
    /// Relative jitter of link latency (0.2: ±20%).
    pub jitter: f64,
    /// Mean processing time of a capability (each kind and each host
    /// scale it).
    pub processing_ms: f64,
    /// Registry service time per query (plus 1 µs per 1,000 entries).
    pub registry_ms: f64,
    /// Descriptor lifetime (TTL).
    pub ttl_ms: u32,
    /// Refresh interval.
    pub refresh_ms: u32,
    /// Changes per capability per second (λ): half disappear (their
    /// descriptors linger until the TTL), the rest degrade, recover or
    /// change version and say so.
    pub drift_rate: f64,
    /// Requesters.
    pub requesters: usize,
    /// Workflows to run, in total.
    pub workflows: usize,
    /// Steps per workflow (the paper: 2, image generation then publishing).
    pub steps: usize,
    /// Mean pause between one requester's workflows.
    pub think_ms: f64,
    /// Verification policy. The last step is high risk, the others medium.
    pub policy: Policy,
    /// How a requester without tier 1 picks.
    pub selection: Selection,
    /// Fallbacks per step, per discovery round.
    pub fallback_budget: usize,
    /// Wider discovery rounds after a round with no one trustworthy
    /// (`errand_core::trust::next_round`, as the node's runner).
    pub widen: u8,
    /// Exploration probability (tier 1).
    pub exploration: f64,
    /// Chance that a wrong answer accepted under tier 1 is noticed later
    /// (by the user, downstream) and reported to the reputation system.
    pub feedback: f64,
    /// Requesters' wait before giving up on an executor.
    pub timeout_ms: u64,
    /// Fraction of capabilities whose component is public (runnable
    /// locally, for canaries and replay; the rest are cross-checked).
    pub public_fraction: f64,
    /// Candidates asked for per query (1..=100).
    pub candidates: u16,
    /// How registries order matches: sampled (Errand's default) or
    /// relevance (BM25 × declared QoS, gameable).
    pub ranking: RegistryRanking,
    /// Publishing before the first workflow.
    pub warmup_ms: u64,
}

/// The accuracy of the canary detector an adversary is assumed to have
/// (see the module docs for how it maps to cheating rates).
///
/// This equals the canary-indistinguishability figure recorded in
/// `BENCHMARKS.md` ("Canaries against a detector that knows the
/// protocol"): the highest accuracy the protocol-aware detector reached
/// against the node's canaries on a balanced sample (0.545, at 4,000
/// training pairs). Change both together, and regenerate
/// `docs/evaluation`.
pub const DETECTOR_ACCURACY: f64 = 0.545;

/// The default chance that a replay fails on the requester's side.
pub const REPLAY_FAIL: f64 = 0.01;

/// Which [`Ranking`] the registries run (their seeds come from the run's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryRanking {
    /// [`Ranking::Sampled`].
    Sampled,
    /// [`Ranking::Relevance`].
    Relevance,
}

impl Default for Params {
    /// The paper's setting: 100 peers, a two-step workflow, 15 s TTL.
    fn default() -> Params {
        Params {
            peers: 100,
            sybil_fraction: 0.0,
            attack: Attack::WrongOutput,
            detector_accuracy: DETECTOR_ACCURACY,
            canary_detect: None,
            replay_fail: REPLAY_FAIL,
            defect_after: 5,
            remint_ms: 0,
            sybil_attractive: true,
            kinds: 8,
            caps_per_peer: 2,
            registries: 0,
            regions: 4,
            intra_ms: 5.0,
            inter_ms: 40.0,
            region_ms: Vec::new(),
            jitter: 0.2,
            processing_ms: 40.0,
            registry_ms: 0.2,
            ttl_ms: 15_000,
            refresh_ms: 5_000,
            drift_rate: 0.0,
            requesters: 10,
            workflows: 300,
            steps: 2,
            think_ms: 200.0,
            policy: Policy::Fixed(TierSet::NONE),
            selection: Selection::Best,
            fallback_budget: 4,
            widen: 2,
            exploration: 0.1,
            feedback: 0.3,
            timeout_ms: 2_000,
            public_fraction: 1.0,
            candidates: 10,
            ranking: RegistryRanking::Sampled,
            warmup_ms: 6_000,
        }
    }
}

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

const US: u64 = 1_000;

fn us(t_ms: f64) -> u64 {
    (t_ms * US as f64).max(0.0) as u64
}

/// Kinds of capability in the catalogue, most popular first: the paper's two
/// steps (image generation, publishing), then others.
const CATALOGUE: &[(&str, &str, [&str; 2])] = &[
    (
        "imagegen",
        "Generates images from text prompts",
        ["generate image", "text to image"],
    ),
    (
        "publish",
        "Publishes content with a content address",
        ["publish content", "share"],
    ),
    (
        "thumbnail",
        "Resizes images to thumbnails",
        ["resize image", "thumbnail"],
    ),
    (
        "markdown",
        "Renders Markdown as HTML",
        ["render markdown", "html"],
    ),
    (
        "text-stats",
        "Counts words and terms",
        ["word count", "statistics"],
    ),
    (
        "translate",
        "Translates text",
        ["translate text", "language"],
    ),
    (
        "transcribe",
        "Transcribes speech",
        ["speech to text", "audio"],
    ),
    ("summarize", "Summarizes documents", ["summarize", "digest"]),
    ("ocr", "Reads text in images", ["ocr", "scan to text"]),
    ("classify", "Labels images", ["classify image", "labels"]),
    (
        "geocode",
        "Finds coordinates",
        ["geocode", "address lookup"],
    ),
    ("forecast", "Forecasts weather", ["weather", "forecast"]),
];

/// Kind `k`'s capability name.
pub fn kind_name(k: usize) -> String {
    match CATALOGUE.get(k) {
        Some(c) => c.0.to_owned(),
        None => format!("kind{k}"),
    }
}

/// The intent text a requester uses for kind `k`.
pub fn intent(k: usize) -> String {
    match CATALOGUE.get(k) {
        Some(c) => format!("{} {}", c.2[0], c.1.to_lowercase()),
        None => format!("kind{k} service"),
    }
}

/// The query a requester sends for kind `k`: its intent, constrained to the
/// kind's capability name.
pub fn query(k: usize, limit: u16) -> Query {
    let mut q = Query::intent(&intent(k), limit.clamp(1, 100));
    q.name = Some(BString::truncate_from(&kind_name(k)));
    q
}

#[derive(Debug, Clone)]
struct Cap {
    kind: u16,
    version: u32,
    seq: u64,
    alive: bool,
    slow: bool,
    public: bool,
    /// The host's speed: processing time is scaled by this.
    speed: f32,
    /// Bumped when the capability disappears or comes back, so that its
    /// old refresh and drift timers are ignored.
    epoch: u32,
}

#[derive(Debug, Clone)]
struct Peer {
    id: PeerId,
    generation: u32,
    region: u16,
    /// The registry it publishes to.
    registry: u16,
    sybil: Option<Attack>,
    served: u32,
    caps: Vec<Cap>,
}

/// What a run was, in the fields of a signed request an executor could
/// cheapen: `true` where it is what the request asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The asked parameters (not cheaper ones).
    pub params: bool,
    /// The asked component (not another one).
    pub component: bool,
    /// The request's seed (not another one, say a cached run's).
    pub seed: bool,
}

impl Run {
    /// Exactly what the request asked.
    pub const ASKED: Run = Run {
        params: true,
        component: true,
        seed: true,
    };
    /// The request, with cheaper parameters.
    pub const CHEAPER_PARAMS: Run = Run {
        params: false,
        ..Run::ASKED
    };

    fn index(self) -> usize {
        usize::from(!self.params) | usize::from(!self.component) << 1 | usize::from(!self.seed) << 2
    }
}

/// A real signed request and, for each [`Run`] a receipt could claim, a
/// real receipt claiming it: the sim asks `Request::check_receipt` whether
/// a claim answers the request, rather than restating the rule. Built once
/// (signing costs tens of microseconds); a check costs a few comparisons.
pub struct Binding {
    request: Request,
    digest: Digest,
    receipts: Vec<Receipt>,
}

impl Binding {
    fn new() -> Binding {
        use errand_core::testing;
        let (executor, requester) = (testing::key(1), testing::key(2));
        let time = testing::SAMPLE_TIME;
        let context = |steps: &str| {
            InvocationContext::from_pairs(
                time,
                &[("prompt", "a red fox at dawn"), ("steps", steps)],
            )
            .unwrap_or_default()
        };
        let mut request = testing::request(&executor, &requester);
        request.context = context("50");
        let digest = SignedRequest::sign(request.clone(), &requester)
            .map_or_else(|_| Digest::of(b"errand-sim/request"), |s| s.digest());
        let component = request
            .component
            .unwrap_or_else(|| Digest::of(b"component"));
        let receipts = (0..8)
            .map(|i| {
                let claims = Run {
                    params: i & 1 == 0,
                    component: i & 2 == 0,
                    seed: i & 4 == 0,
                };
                let mut r = testing::receipt(&executor, &requester);
                r.request = digest;
                r.context = context(if claims.params { "50" } else { "4" });
                r.component = if claims.component {
                    component
                } else {
                    Digest::of(b"a cheaper component")
                };
                r.seed = if claims.seed {
                    request.seed
                } else {
                    Seed([0; 32])
                };
                r
            })
            .collect();
        Binding {
            request,
            digest,
            receipts,
        }
    }

    /// The binding shared by every run.
    pub fn get() -> &'static Binding {
        static BINDING: LazyLock<Binding> = LazyLock::new(Binding::new);
        &BINDING
    }

    /// `Request::check_receipt` on a receipt that claims `claims`.
    pub fn check(&self, claims: Run) -> Result<(), BindingError> {
        self.request
            .check_receipt(self.digest, &self.receipts[claims.index()])
    }
}

#[derive(Debug, Clone, Copy)]
struct Answer {
    /// No answer will come.
    silent: bool,
    /// The capability is not there (drifted away).
    gone: bool,
    /// The output is what running the request gives.
    correct: bool,
    /// What the executor ran.
    ran: Run,
    /// What its receipt says it ran.
    claims: Run,
    /// Whether the receipt's signature holds.
    signed: bool,
    /// Time the executor takes.
    work_us: u64,
}

impl Answer {
    /// What a tier-3 requester makes of the receipt: the signature, then
    /// every field against the signed request.
    fn receipt(&self) -> Result<(), String> {
        if !self.signed {
            return Err("receipt signature invalid (forged)".into());
        }
        Binding::get().check(self.claims).map_err(|e| e.to_string())
    }
}

#[derive(Debug)]
struct Active {
    step: usize,
    started: u64,
    /// When the current step's queries went out.
    sent: u64,
    right: u32,
    accepted: u8,
    /// Accepted executors, with whether their step used tier 1.
    chosen: Vec<(PeerId, bool)>,
    /// Answers still to come from the region's registries.
    awaiting: u16,
    answers: Vec<Vec<Arc<SignedDescriptor>>>,
    /// Candidates: (peer index, cap index, descriptor).
    cands: Vec<(u32, u16, Arc<SignedDescriptor>)>,
    /// The current step's discovery round (0, then 1 for each widening),
    /// the candidates it asks for, how many the registries answered, and
    /// the peers its earlier rounds tried.
    round: usize,
    limit: u16,
    answered: usize,
    tried: Vec<PeerId>,
    delegation: Option<Delegation>,
    /// The answer to the real request the delegation is judging, and who
    /// gave it (peer index).
    last: Option<Answer>,
    last_peer: Option<u32>,
    /// Whether this step met a stale descriptor.
    stale: bool,
    /// Bumped at every operation, so late outcomes are ignored.
    op: u32,
}

struct Requester {
    region: u16,
    reputation: Reputation,
    active: Option<Active>,
}

/// The event queue, a calendar queue: events wait in a slab; their keys
/// (time, scheduling order, slot) sit in one-millisecond buckets covering
/// the next 16 seconds, with later ones in a heap. Buckets are sorted when
/// reached, so events run in time order and simultaneous events in the
/// order they were scheduled, exactly as a heap would order them, but a
/// push or pop costs O(1) instead of O(log n) cache misses among hundreds
/// of thousands of pending timers.
struct Queue {
    slab: Vec<Option<Ev>>,
    free: Vec<u32>,
    seq: u64,
    /// `ring[b % RING]` holds bucket `b`, for `cursor <= b < cursor + RING`.
    ring: Vec<Vec<(u64, u64, u32)>>,
    /// Keys in the ring.
    in_ring: usize,
    /// Bit `b % RING` set: that bucket holds keys.
    occupied: Vec<u64>,
    /// The bucket being drained.
    cursor: u64,
    /// Whether the cursor's bucket is sorted (descending, so the next key
    /// is at the end).
    sorted: bool,
    /// Keys beyond the ring.
    far: BinaryHeap<Reverse<(u64, u64, u32)>>,
}

const BUCKET_US: u64 = 1_000;
const RING: u64 = 16_384;

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
            ring: (0..RING).map(|_| Vec::new()).collect(),
            in_ring: 0,
            occupied: vec![0; (RING / 64) as usize],
            cursor: 0,
            sorted: false,
            far: BinaryHeap::new(),
        }
    }
}

impl Queue {
    fn push(&mut self, t: u64, ev: Ev) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(ev);
                s
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        self.seq += 1;
        self.insert((t, self.seq, slot));
    }

    fn insert(&mut self, key: (u64, u64, u32)) {
        let b = (key.0 / BUCKET_US).max(self.cursor);
        if b >= self.cursor + RING {
            self.far.push(Reverse(key));
            return;
        }
        let i = (b % RING) as usize;
        self.occupied[i / 64] |= 1 << (i % 64);
        let bucket = &mut self.ring[i];
        if b == self.cursor && self.sorted {
            // Keep the bucket being drained in (descending) order.
            let at = bucket.partition_point(|k| *k > key);
            bucket.insert(at, key);
        } else {
            bucket.push(key);
        }
        self.in_ring += 1;
    }

    /// The next key, moving the cursor as far as needed.
    fn next_key(&mut self) -> Option<(u64, u64, u32)> {
        loop {
            let i = (self.cursor % RING) as usize;
            if !self.ring[i].is_empty() {
                if !self.sorted {
                    self.ring[i].sort_unstable_by(|a, b| b.cmp(a));
                    self.sorted = true;
                }
                return self.ring[i].last().copied();
            }
            if self.in_ring == 0 {
                // Jump straight to the earliest far event.
                let Reverse(k) = *self.far.peek()?;
                self.cursor = k.0 / BUCKET_US;
            } else {
                // Skip to the next occupied bucket. Every far key lies
                // beyond every ring key, so none is skipped.
                self.cursor += self.distance_to_next_occupied();
            }
            self.sorted = false;
            while let Some(Reverse(k)) = self.far.peek().copied() {
                if k.0 / BUCKET_US >= self.cursor + RING {
                    break;
                }
                self.far.pop();
                self.insert(k);
            }
        }
    }

    /// Buckets from the cursor to the next occupied one (the ring holds
    /// at least one key, in another bucket).
    fn distance_to_next_occupied(&self) -> u64 {
        let start = (self.cursor % RING) as usize;
        let words = self.occupied.len();
        for step in 0..=words {
            let w = (start / 64 + step) % words;
            let mut bits = self.occupied[w];
            if step == 0 {
                // Only buckets after the cursor's.
                bits &= u64::MAX.checked_shl((start % 64) as u32 + 1).unwrap_or(0);
            }
            if bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                return ((i + RING as usize - start) % RING as usize) as u64;
            }
        }
        1
    }

    fn peek_time(&mut self) -> Option<u64> {
        self.next_key().map(|k| k.0)
    }

    fn pop(&mut self) -> Option<(u64, Ev)> {
        let (t, _, slot) = self.next_key()?;
        let i = (self.cursor % RING) as usize;
        self.ring[i].pop();
        if self.ring[i].is_empty() {
            self.occupied[i / 64] &= !(1 << (i % 64));
        }
        self.in_ring -= 1;
        let ev = self.slab[slot as usize].take()?;
        self.free.push(slot);
        Some((t, ev))
    }
}

/// Hashes the simulator's peer ids (digests it made itself, so not chosen
/// by an adversary) by their first bytes, not with SipHash.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 = (self.0 ^ u64::from_le_bytes(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IdMap = HashMap<PeerId, u32, std::hash::BuildHasherDefault<IdHasher>>;

enum Ev {
    Refresh {
        peer: u32,
        cap: u16,
        epoch: u32,
    },
    Arrive {
        registry: u16,
        desc: Arc<SignedDescriptor>,
    },
    Expire,
    Drift {
        peer: u32,
        cap: u16,
        epoch: u32,
    },
    Remint {
        peer: u32,
    },
    Start {
        req: u32,
    },
    Query {
        req: u32,
        registry: u16,
        op: u32,
    },
    Candidates {
        req: u32,
        op: u32,
        list: Vec<Arc<SignedDescriptor>>,
    },
    /// A decision's outcome reaches the requester.
    Outcome {
        req: u32,
        op: u32,
        event: Event,
    },
}

/// The world (see the module docs).
pub struct World {
    p: Params,
    now: u64,
    rng: SplitMix,
    queue: Queue,
    /// Registries of each region (a requester queries all of its region's).
    region_registries: Vec<Vec<u16>>,
    peers: Vec<Peer>,
    honest: Vec<u32>,
    by_id: IdMap,
    /// (home region, index).
    registries: Vec<(u16, Index)>,
    requesters: Vec<Requester>,
    queries: Vec<Query>,
    /// Providers per kind: (honest, sybil), for the analytic check.
    providers: Vec<(u32, u32)>,
    kinds: usize,
    started_workflows: usize,
    first_start: Option<u64>,
    metrics: Metrics,
    wall_epoch: UnixMillis,
}

fn peer_id(index: u32, generation: u32) -> PeerId {
    let d = Digest::of_parts(&[
        b"errand-sim/peer",
        &index.to_le_bytes(),
        &generation.to_le_bytes(),
    ]);
    PeerId(d.0)
}

/// Registry quotas for simulated registries: sized for the whole network,
/// with rate limits out of the way (publishers here are well behaved about
/// rates; the attack is in what they publish).
fn sim_limits() -> RegistryLimits {
    RegistryLimits {
        max_entries: 4_000_000,
        max_per_publisher: 1_024,
        publish_rate: 1e9,
        publish_burst: 1e9,
    }
}

impl World {
    /// Builds the world for `p`, seeded with `seed`.
    pub fn new(p: Params, seed: u64) -> World {
        let mut rng = SplitMix(seed ^ 0x5eed_e11a_9d00_0001);
        let n_sybil = ((p.peers as f64) * p.sybil_fraction.clamp(0.0, 1.0)).round() as usize;
        let n_honest = p.peers.saturating_sub(n_sybil);
        let regions = p.regions.clamp(1, 1_000);
        let n_reg = if p.registries == 0 {
            (p.peers / 10_000).max(1)
        } else {
            p.registries
        }
        .clamp(1, u16::MAX as usize);
        let kinds = p.kinds.max(p.steps).clamp(1, 32);
        let registries: Vec<(u16, Index)> = (0..n_reg)
            .map(|r| {
                let ranking = match p.ranking {
                    RegistryRanking::Sampled => Ranking::Sampled {
                        seed: rng.next_u64(),
                    },
                    RegistryRanking::Relevance => Ranking::Relevance,
                };
                (
                    (r % regions) as u16,
                    Index::with_ranking(sim_limits(), ranking),
                )
            })
            .collect();
        let region_registries: Vec<Vec<u16>> = (0..regions)
            .map(|region| {
                let own: Vec<u16> = (0..n_reg)
                    .filter(|r| r % regions == region)
                    .map(|r| r as u16)
                    .collect();
                if own.is_empty() {
                    vec![(region % n_reg) as u16]
                } else {
                    own
                }
            })
            .collect();
        // Popularity: Zipf over kinds, for which kinds honest peers host.
        let weights: Vec<f64> = (0..kinds).map(|k| 1.0 / (k + 1) as f64).collect();
        let total: f64 = weights.iter().sum();
        let pick_kind = |rng: &mut SplitMix| {
            let mut x = rng.unit() * total;
            for (k, w) in weights.iter().enumerate() {
                if x < *w {
                    return k;
                }
                x -= w;
            }
            kinds - 1
        };
        let mut peers = Vec::with_capacity(p.peers);
        let mut providers = vec![(0u32, 0u32); kinds];
        let mut honest = Vec::with_capacity(n_honest);
        for i in 0..p.peers {
            let sybil = (i >= n_honest).then(|| match p.attack {
                Attack::Mixed => [
                    Attack::WrongOutput,
                    Attack::ForgeReceipt,
                    Attack::CanaryAware,
                    Attack::BuildThenDefect,
                    Attack::ParamSwap,
                ][rng.below(5)],
                a => a,
            });
            // Honest peers host popular kinds, and every workflow kind gets
            // providers; Sybils poison exactly the workflow's kinds.
            let wanted: Vec<usize> = if sybil.is_some() {
                (0..p.steps).collect()
            } else {
                honest.push(i as u32);
                let mut v = vec![i % p.steps.max(1)];
                let want = p.caps_per_peer.clamp(1, kinds);
                while v.len() < want {
                    let k = pick_kind(&mut rng);
                    if !v.contains(&k) {
                        v.push(k);
                    }
                }
                v
            };
            let mut caps = Vec::with_capacity(wanted.len());
            for k in wanted {
                if sybil.is_some() {
                    providers[k].1 += 1;
                } else {
                    providers[k].0 += 1;
                }
                caps.push(Cap {
                    kind: k as u16,
                    version: 1,
                    seq: 0,
                    alive: true,
                    slow: false,
                    public: rng.unit() < p.public_fraction,
                    speed: (0.5 + 1.5 * rng.unit()) as f32,
                    epoch: 0,
                });
            }
            let region = rng.below(regions) as u16;
            let mine = &region_registries[region as usize];
            peers.push(Peer {
                id: peer_id(i as u32, 0),
                generation: 0,
                region,
                registry: mine[i % mine.len()],
                sybil,
                served: 0,
                caps,
            });
        }
        let by_id = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i as u32))
            .collect();
        // Requesters are spread evenly over the regions, so that the mix of
        // near and far registries does not change with the seed.
        let requesters = (0..p.requesters.max(1))
            .map(|i| Requester {
                region: (i % regions) as u16,
                reputation: Reputation::new(ReputationConfig::default()),
                active: None,
            })
            .collect();
        let queries = (0..kinds).map(|k| query(k, p.candidates)).collect();
        let mut w = World {
            p,
            now: 0,
            rng,
            queue: Queue::default(),
            region_registries,
            peers,
            honest,
            by_id,
            registries,
            requesters,
            queries,
            providers,
            kinds,
            started_workflows: 0,
            first_start: None,
            metrics: Metrics::default(),
            // Virtual time maps onto a fixed calendar so descriptors' dates
            // are valid: 2026-03-04.
            wall_epoch: UnixMillis(1_772_600_000_000),
        };
        w.schedule_initial();
        w
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.queue.push(t, ev);
    }

    fn wall(&self, t: u64) -> UnixMillis {
        UnixMillis(self.wall_epoch.0 + t / US)
    }

    fn latency(&mut self, a: u16, b: u16) -> u64 {
        let regions = self.p.regions.clamp(1, 1_000);
        let base = match self.p.region_ms.get(a as usize * regions + b as usize) {
            Some(ms) if self.p.region_ms.len() == regions * regions => *ms,
            _ if a == b => self.p.intra_ms,
            _ => self.p.inter_ms,
        };
        let j = 1.0 + self.p.jitter * (2.0 * self.rng.unit() - 1.0);
        us(base * j)
    }

    fn schedule_initial(&mut self) {
        let refresh = us(f64::from(self.p.refresh_ms));
        for i in 0..self.peers.len() {
            for c in 0..self.peers[i].caps.len() {
                // Spread first publications over one refresh interval.
                let t = (self.rng.unit() * refresh as f64) as u64;
                self.at(
                    t,
                    Ev::Refresh {
                        peer: i as u32,
                        cap: c as u16,
                        epoch: 0,
                    },
                );
                if self.peers[i].sybil.is_none() && self.p.drift_rate > 0.0 {
                    let t = self.drift_delay();
                    self.at(
                        t,
                        Ev::Drift {
                            peer: i as u32,
                            cap: c as u16,
                            epoch: 0,
                        },
                    );
                }
            }
            if self.peers[i].sybil.is_some() && self.p.remint_ms > 0 {
                let t = self.p.warmup_ms * US
                    + (self.rng.unit() * (self.p.remint_ms * US) as f64) as u64;
                self.at(t, Ev::Remint { peer: i as u32 });
            }
        }
        self.at(US * 1_000, Ev::Expire);
        let warm = self.p.warmup_ms * US;
        for r in 0..self.requesters.len() {
            let t = warm + (self.rng.unit() * us(self.p.think_ms) as f64) as u64;
            self.at(t, Ev::Start { req: r as u32 });
        }
    }

    /// An exponential delay with mean `mean_ms`.
    fn exp_us(&mut self, mean_ms: f64) -> u64 {
        let u = self.rng.unit().max(1e-12);
        us(-mean_ms * u.ln())
    }

    fn drift_delay(&mut self) -> u64 {
        self.now + self.exp_us(1e3 / self.p.drift_rate)
    }

    fn processing_ms(&self, cap: &Cap) -> f64 {
        let kind = f64::from(cap.kind % 4);
        self.p.processing_ms
            * (1.0 + kind * 0.5)
            * f64::from(cap.speed)
            * if cap.slow { 4.0 } else { 1.0 }
    }

    fn descriptor(&self, peer: usize, cap: usize) -> Descriptor {
        let p = &self.peers[peer];
        let c = &p.caps[cap];
        let k = c.kind as usize;
        let (desc, intents): (String, Vec<String>) = match CATALOGUE.get(k) {
            Some(e) => (
                e.1.to_owned(),
                e.2.iter().map(|s| (*s).to_owned()).collect(),
            ),
            None => (format!("Serves kind {k}"), vec![format!("kind{k} service")]),
        };
        let attractive = p.sybil.is_some() && self.p.sybil_attractive;
        let (desc, intents) = if attractive {
            // Keyword stuffing: every word a requester might use, twice.
            let stuffed = format!("{desc}. {}. {}", intents.join(". "), intent(k));
            let mut v = intents.clone();
            v.extend(intents);
            v.push("fast".into());
            v.push("best quality".into());
            (stuffed, v)
        } else {
            (desc, intents)
        };
        let declared = self.processing_ms(c);
        Descriptor {
            publisher: p.id,
            name: BString::truncate_from(&kind_name(k)),
            version: Version::new(c.version, 0, 0),
            description: BString::truncate_from(&desc),
            intents: BVec::new(intents.iter().map(|s| BString::truncate_from(s)).collect())
                .unwrap_or_default(),
            input: MediaSpec {
                media_type: BString::truncate_from("application/octet-stream"),
                schema: None,
            },
            output: MediaSpec {
                media_type: BString::truncate_from("application/octet-stream"),
                schema: None,
            },
            component: c
                .public
                .then(|| Digest::of_parts(&[b"component", &(k as u64).to_le_bytes()])),
            package: None,
            qos: Qos {
                latency_ms: if attractive { 1 } else { declared as u32 },
                cost: if attractive { 0 } else { 1 + (k % 5) as u32 },
                fuel: 0,
                max_input_bytes: 1 << 20,
            },
            tiers: Tiers {
                canary: true,
                receipts: true,
                replay: c.public,
            },
            addrs: BVec::new(vec![NetAddr::Quic(SocketAddr::from((
                Ipv4Addr::from(0x0a00_0000 + peer as u32),
                4433,
            )))])
            .unwrap_or_default(),
            seq: c.seq,
            issued_at: self.wall(self.now),
            ttl_ms: self.p.ttl_ms,
            withdrawn: false,
        }
    }

    fn publish(&mut self, peer: usize, cap: usize) {
        self.peers[peer].caps[cap].seq += 1;
        let Ok(d) = SignedDescriptor::with_placeholder_signature(self.descriptor(peer, cap)) else {
            return;
        };
        // Descriptor, signature, framing; then a small acknowledgement.
        let bytes = d.encoded_len() as u64 + 16;
        self.metrics.publish_messages += 2;
        self.metrics.publish_bytes += bytes + 16;
        let region = self.peers[peer].region;
        let r = self.peers[peer].registry;
        let lat = self.latency(region, self.registries[r as usize].0);
        self.at(
            self.now + lat,
            Ev::Arrive {
                registry: r,
                desc: Arc::new(d),
            },
        );
    }

    /// Runs until every workflow has finished or `until_ms` of virtual time
    /// has passed. Returns the metrics.
    pub fn run(self, until_ms: Option<u64>) -> Metrics {
        self.run_observed(until_ms, &mut |_| {})
    }

    /// [`World::run`], calling `observe` with the number of finished
    /// workflows every 65,536 events (for progress bars).
    pub fn run_observed(mut self, until_ms: Option<u64>, observe: &mut dyn FnMut(u64)) -> Metrics {
        let limit = until_ms.map(|m| m * US).unwrap_or(u64::MAX);
        while let Some(t) = self.queue.peek_time() {
            if t > limit {
                break;
            }
            let Some((t, ev)) = self.queue.pop() else {
                break;
            };
            self.now = t;
            self.metrics.events += 1;
            if self.metrics.events & 0xffff == 0 {
                observe(self.metrics.workflows);
            }
            self.handle(ev);
            if self.started_workflows >= self.p.workflows
                && self.requesters.iter().all(|r| r.active.is_none())
            {
                break;
            }
        }
        observe(self.metrics.workflows);
        self.metrics.simulated_ms = self.now as f64 / US as f64;
        self.metrics.active_ms =
            self.now
                .saturating_sub(self.first_start.unwrap_or(self.now)) as f64
                / US as f64;
        self.metrics
    }

    /// Advances to `t_ms` without stopping at finished workflows (for
    /// looking at the registries).
    pub fn advance_to(&mut self, t_ms: u64) {
        let limit = t_ms * US;
        while self.queue.peek_time().is_some_and(|t| t <= limit) {
            let Some((t, ev)) = self.queue.pop() else {
                break;
            };
            self.now = t;
            self.metrics.events += 1;
            self.handle(ev);
        }
        self.now = self.now.max(limit);
    }

    /// The registries.
    pub fn registries(&self) -> usize {
        self.registries.len()
    }

    /// What registry `registry` returns now for kind `k` (publishers, as
    /// peer indexes, best first).
    pub fn registry_answer(&self, registry: usize, k: usize) -> Vec<usize> {
        let Some((_, index)) = self.registries.get(registry) else {
            return Vec::new();
        };
        index
            .query(&query(k, 100), self.wall(self.now))
            .iter()
            .filter_map(|c| {
                self.by_id
                    .get(&c.descriptor.body().publisher)
                    .map(|i| *i as usize)
            })
            .collect()
    }

    /// Whether peer `i` is a Sybil.
    pub fn is_sybil(&self, i: usize) -> bool {
        self.peers.get(i).is_some_and(|p| p.sybil.is_some())
    }

    /// The registry peer `i` publishes to.
    pub fn registry_of_peer(&self, i: usize) -> usize {
        self.peers.get(i).map_or(0, |p| usize::from(p.registry))
    }

    /// Stops peer `i`: it no longer serves or refreshes anything (a crash).
    pub fn stop_peer(&mut self, i: usize) {
        if let Some(p) = self.peers.get_mut(i) {
            for c in &mut p.caps {
                c.alive = false;
                c.epoch += 1;
            }
        }
    }

    /// Providers per workflow kind, `(honest, sybil)`.
    pub fn providers(&self) -> &[(u32, u32)] {
        &self.providers
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Refresh { peer, cap, epoch } => {
                let (p, c) = (peer as usize, cap as usize);
                let cur = &self.peers[p].caps[c];
                if cur.alive && cur.epoch == epoch {
                    self.publish(p, c);
                    let t = self.now + us(f64::from(self.p.refresh_ms));
                    self.at(t, Ev::Refresh { peer, cap, epoch });
                }
            }
            Ev::Arrive { registry, desc } => {
                let now = self.wall(self.now);
                let _ = self.registries[registry as usize]
                    .1
                    .insert_verified(desc, now);
            }
            Ev::Expire => {
                let now = self.wall(self.now);
                for (_, ix) in &mut self.registries {
                    ix.expire(now);
                }
                self.at(self.now + US * 1_000, Ev::Expire);
            }
            Ev::Drift { peer, cap, epoch } => {
                if self.peers[peer as usize].caps[cap as usize].epoch == epoch {
                    self.drift(peer as usize, cap as usize);
                }
            }
            Ev::Remint { peer } => {
                // A fresh identity; the old one keeps answering for its
                // lingering descriptors, since the same attacker runs both.
                let p = peer as usize;
                self.peers[p].generation += 1;
                self.peers[p].id = peer_id(peer, self.peers[p].generation);
                self.peers[p].served = 0;
                self.by_id.insert(self.peers[p].id, peer);
                for c in 0..self.peers[p].caps.len() {
                    self.peers[p].caps[c].seq = 0;
                    self.publish(p, c);
                }
                self.at(self.now + self.p.remint_ms * US, Ev::Remint { peer });
            }
            Ev::Start { req } => self.start(req as usize),
            Ev::Query { req, registry, op } => {
                let r = req as usize;
                let Some((step, limit)) = self.requesters[r]
                    .active
                    .as_ref()
                    .map(|a| (a.step, a.limit))
                else {
                    return;
                };
                let now = self.wall(self.now);
                let index = &self.registries[registry as usize].1;
                let base = &self.queries[step % self.kinds];
                let list: Vec<Arc<SignedDescriptor>> = if limit == base.limit {
                    index.query(base, now)
                } else {
                    // A wider round (`trust::next_round`).
                    let mut q = base.clone();
                    q.limit = limit;
                    index.query(&q, now)
                }
                .into_iter()
                .map(|c| c.descriptor)
                .collect();
                let service = us(self.p.registry_ms + 0.001 * index.len() as f64 / 1_000.0);
                let bytes: u64 = list
                    .iter()
                    .map(|d| d.encoded_len() as u64 + 64)
                    .sum::<u64>()
                    + 32;
                self.metrics.discovery_bytes += bytes;
                let lat = self.latency(
                    self.registries[registry as usize].0,
                    self.requesters[r].region,
                );
                self.at(self.now + service + lat, Ev::Candidates { req, op, list });
            }
            Ev::Candidates { req, op, list } => {
                let r = req as usize;
                let Some(a) = self.requesters[r].active.as_mut() else {
                    return;
                };
                if a.op != op {
                    return;
                }
                a.answers.push(list);
                a.awaiting = a.awaiting.saturating_sub(1);
                if a.awaiting == 0 {
                    let answers = std::mem::take(&mut a.answers);
                    let list = merge(answers);
                    a.answered = list.len();
                    self.candidates(r, list);
                }
            }
            Ev::Outcome { req, op, event } => {
                let r = req as usize;
                if self.requesters[r].active.as_ref().map(|a| a.op) != Some(op) {
                    return; // a late answer after a timeout already decided
                }
                self.observe(r, event);
            }
        }
    }

    fn schedule_cap(&mut self, p: usize, c: usize) {
        let epoch = self.peers[p].caps[c].epoch;
        let (peer, cap) = (p as u32, c as u16);
        let t = self.now + us(f64::from(self.p.refresh_ms));
        self.at(t, Ev::Refresh { peer, cap, epoch });
        if self.p.drift_rate > 0.0 {
            let t = self.drift_delay();
            self.at(t, Ev::Drift { peer, cap, epoch });
        }
    }

    fn drift(&mut self, p: usize, c: usize) {
        if !self.peers[p].caps[c].alive {
            return;
        }
        let roll = self.rng.unit();
        if roll < 0.5 {
            // Disappears without a word: its descriptor lingers until the
            // TTL. The same kind of capability appears on another peer.
            self.peers[p].caps[c].alive = false;
            self.peers[p].caps[c].epoch += 1;
            let kind = self.peers[p].caps[c].kind;
            for _ in 0..8 {
                let q = self.honest[self.rng.below(self.honest.len())] as usize;
                match self.peers[q].caps.iter().position(|x| x.kind == kind) {
                    Some(i) if self.peers[q].caps[i].alive => continue,
                    Some(i) => {
                        let x = &mut self.peers[q].caps[i];
                        x.alive = true;
                        x.slow = false;
                        x.version += 1;
                        x.epoch += 1;
                        self.publish(q, i);
                        self.schedule_cap(q, i);
                    }
                    None => {
                        let public = self.rng.unit() < self.p.public_fraction;
                        let speed = (0.5 + 1.5 * self.rng.unit()) as f32;
                        self.peers[q].caps.push(Cap {
                            kind,
                            version: 1,
                            seq: 0,
                            alive: true,
                            slow: false,
                            public,
                            speed,
                            epoch: 0,
                        });
                        let i = self.peers[q].caps.len() - 1;
                        self.publish(q, i);
                        self.schedule_cap(q, i);
                    }
                }
                break;
            }
            return;
        }
        if roll < 0.8 {
            // Degrades (4x slower) or recovers, and says so at once.
            self.peers[p].caps[c].slow = !self.peers[p].caps[c].slow;
        } else {
            self.peers[p].caps[c].version += 1;
        }
        self.publish(p, c);
        let epoch = self.peers[p].caps[c].epoch;
        let t = self.drift_delay();
        self.at(
            t,
            Ev::Drift {
                peer: p as u32,
                cap: c as u16,
                epoch,
            },
        );
    }

    fn start(&mut self, r: usize) {
        if self.started_workflows >= self.p.workflows {
            return;
        }
        self.started_workflows += 1;
        self.first_start.get_or_insert(self.now);
        self.requesters[r].active = Some(Active {
            step: 0,
            started: self.now,
            sent: self.now,
            right: 0,
            accepted: 0,
            chosen: Vec::with_capacity(self.p.steps),
            awaiting: 0,
            answers: Vec::new(),
            cands: Vec::new(),
            round: 0,
            limit: self.p.candidates,
            answered: 0,
            tried: Vec::new(),
            delegation: None,
            last: None,
            last_peer: None,
            stale: false,
            op: 0,
        });
        self.query(r);
    }

    /// Sends the current step's query to every registry of the region.
    fn query(&mut self, r: usize) {
        let region = self.requesters[r].region;
        let targets = self.region_registries[region as usize].clone();
        let op = self.bump(r);
        if let Some(a) = self.requesters[r].active.as_mut() {
            a.sent = self.now;
            a.awaiting = targets.len() as u16;
            a.answers.clear();
            a.stale = false;
        }
        for registry in targets {
            self.metrics.discovery_messages += 2;
            self.metrics.discovery_bytes += 160;
            let lat = self.latency(region, self.registries[registry as usize].0);
            self.at(
                self.now + lat,
                Ev::Query {
                    req: r as u32,
                    registry,
                    op,
                },
            );
        }
    }

    fn tiers(&self, step: usize) -> TierSet {
        let risk = if step + 1 == self.p.steps {
            Risk::High
        } else {
            Risk::Medium
        };
        self.p.policy.tiers(risk, None)
    }

    fn candidates(&mut self, r: usize, list: Vec<Arc<SignedDescriptor>>) {
        let Some((step, sent, round)) = self.requesters[r]
            .active
            .as_ref()
            .map(|a| (a.step, a.sent, a.round))
        else {
            return;
        };
        self.metrics
            .discovery_ms
            .push((self.now - sent) as f64 / US as f64);
        let kind = (step % self.kinds) as u16;
        let tiers = self.tiers(step);
        let now = self.wall(self.now);
        let mut cands: Vec<(u32, u16, Arc<SignedDescriptor>)> = Vec::with_capacity(list.len());
        let requester = &self.requesters[r];
        let tried: &[PeerId] = requester.active.as_ref().map_or(&[], |a| &a.tried);
        for d in list {
            if !trust::admit(
                round,
                tried,
                &requester.reputation,
                &d.body().publisher,
                now,
            ) {
                continue;
            }
            let Some(&pi) = self.by_id.get(&d.body().publisher) else {
                continue;
            };
            let Some(ci) = self.peers[pi as usize]
                .caps
                .iter()
                .position(|c| c.kind == kind)
            else {
                continue;
            };
            cands.push((pi, ci as u16, d));
        }
        if cands.is_empty() {
            self.finish(r, false);
            return;
        }
        let order: Vec<usize> = if tiers.reputation {
            let views: Vec<CandidateView<'_>> = cands
                .iter()
                .map(|(_, _, d)| CandidateView {
                    peer: d.body().publisher,
                    descriptor: d.body(),
                })
                .collect();
            order_candidates(
                &views,
                &self.requesters[r].reputation,
                now,
                &mut self.rng,
                self.p.exploration,
            )
        } else {
            let mut o: Vec<usize> = (0..cands.len()).collect();
            if self.p.selection == Selection::Random {
                let pick = self.rng.below(o.len());
                o.swap(0, pick);
            }
            o
        };
        if order.is_empty() {
            // Every candidate is banned.
            self.finish(r, false);
            return;
        }
        let mut slots: Vec<Option<(u32, u16, Arc<SignedDescriptor>)>> =
            cands.into_iter().map(Some).collect();
        let ordered: Vec<(u32, u16, Arc<SignedDescriptor>)> = order
            .into_iter()
            .filter_map(|i| slots.get_mut(i).and_then(Option::take))
            .collect();
        let peers: Vec<PeerId> = ordered.iter().map(|(_, _, d)| d.body().publisher).collect();
        let runnable: Vec<bool> = ordered
            .iter()
            .map(|(_, _, d)| d.body().component.is_some())
            .collect();
        let del = Delegation::with_reputation(
            tiers,
            peers,
            runnable,
            self.p.fallback_budget,
            &mut self.rng,
            tiers
                .reputation
                .then_some((&self.requesters[r].reputation, now)),
        );
        if let Some(a) = self.requesters[r].active.as_mut() {
            a.cands = ordered;
            a.delegation = Some(del);
        }
        self.advance(r);
    }

    /// How peer `pi`'s capability `ci` answers a request.
    fn answer(&mut self, pi: usize, ci: usize, canary: bool) -> Answer {
        let cap = &self.peers[pi].caps[ci];
        let alive = cap.alive;
        let mean = self.processing_ms(cap);
        let work = self.exp_us(mean);
        let honest = Answer {
            silent: false,
            gone: false,
            correct: true,
            ran: Run::ASKED,
            claims: Run::ASKED,
            signed: true,
            work_us: work,
        };
        if !alive {
            return Answer {
                gone: true,
                correct: false,
                work_us: 0,
                ..honest
            };
        }
        let Some(attack) = self.peers[pi].sybil else {
            return honest;
        };
        // Garbage output, with a receipt that answers the request.
        let wrong = Answer {
            correct: false,
            work_us: self.exp_us(1.0),
            ..honest
        };
        match attack {
            Attack::WrongOutput | Attack::Mixed => wrong,
            Attack::ForgeReceipt => Answer {
                signed: false,
                ..honest
            },
            Attack::Silent => Answer {
                silent: true,
                ..honest
            },
            Attack::CanaryAware => {
                if self.takes_for_canary(canary) {
                    honest
                } else {
                    wrong
                }
            }
            Attack::ParamSwap => {
                if self.takes_for_canary(canary) {
                    honest
                } else {
                    // Cheaper parameters, signed honestly: cheaper work
                    // always gives other output than the asked work.
                    Answer {
                        correct: false,
                        ran: Run::CHEAPER_PARAMS,
                        claims: Run::CHEAPER_PARAMS,
                        work_us: work / 4,
                        ..honest
                    }
                }
            }
            Attack::BuildThenDefect => {
                self.peers[pi].served += 1;
                if self.peers[pi].served <= self.p.defect_after {
                    honest
                } else {
                    wrong
                }
            }
        }
    }

    /// Whether a canary-aware Sybil takes this request (a canary or not)
    /// for a canary, and so answers it honestly (see the module docs).
    fn takes_for_canary(&mut self, canary: bool) -> bool {
        match self.p.canary_detect {
            // The older model, drawing exactly as it did.
            Some(detect) => canary && self.rng.unit() < detect,
            None => {
                let roll = self.rng.unit();
                let a = self.p.detector_accuracy;
                if canary { roll < a } else { roll >= a }
            }
        }
    }

    /// Sends a request to candidate `i` and schedules its outcome.
    fn send(
        &mut self,
        r: usize,
        i: usize,
        canary: bool,
        local_us: u64,
        make: impl FnOnce(Answer) -> Event,
    ) -> Option<Answer> {
        let (pi, ci) = {
            let a = self.requesters[r].active.as_ref()?;
            let c = a.cands.get(i)?;
            (c.0 as usize, c.1 as usize)
        };
        let ans = self.answer(pi, ci, canary);
        let region = self.requesters[r].region;
        let there = self.latency(region, self.peers[pi].region);
        let back = self.latency(self.peers[pi].region, region);
        self.metrics.invocations += 1;
        if ans.gone {
            self.metrics.stale_hits += 1;
            if let Some(a) = self.requesters[r].active.as_mut() {
                a.stale = true;
            }
        }
        let op = self.bump(r);
        let timeout = self.p.timeout_ms * US;
        let (t, event) = if ans.silent || there + ans.work_us + back > timeout {
            (self.now + timeout, Event::Rejected(Rejection::Timeout))
        } else if ans.gone {
            (
                self.now + there + back,
                Event::Rejected(Rejection::Unavailable("capability gone".into())),
            )
        } else {
            (self.now + there + ans.work_us + back, make(ans))
        };
        // The requester's own local run (a canary's expected answer) must
        // finish too before it can judge.
        let t = t.max(self.now + local_us);
        self.at(
            t,
            Ev::Outcome {
                req: r as u32,
                op,
                event,
            },
        );
        Some(ans)
    }

    fn bump(&mut self, r: usize) -> u32 {
        match self.requesters[r].active.as_mut() {
            Some(a) => {
                a.op = a.op.wrapping_add(1);
                a.op
            }
            None => 0,
        }
    }

    /// Asks the delegation what to do and does it.
    fn advance(&mut self, r: usize) {
        let Some(decision) = self.requesters[r]
            .active
            .as_ref()
            .and_then(|a| a.delegation.as_ref())
            .map(Delegation::decide)
        else {
            return;
        };
        match decision {
            Decision::Canary { candidate } => {
                // The requester runs the public component locally meanwhile.
                self.metrics.verify_messages += 2;
                self.metrics.verify_bytes += 2_048;
                let local = self.exp_us(self.p.processing_ms);
                self.send(r, candidate, true, local, |a| Event::Canary {
                    correct: a.correct,
                });
            }
            Decision::CrossCheck { candidate, witness } => {
                self.metrics.verify_messages += 4;
                self.metrics.verify_bytes += 4_096;
                let Some((pw, cw)) = self.requesters[r]
                    .active
                    .as_ref()
                    .and_then(|a| a.cands.get(witness))
                    .map(|c| (c.0 as usize, c.1 as usize))
                else {
                    return;
                };
                let witness_answer = self.answer(pw, cw, true);
                self.metrics.invocations += 1;
                // The requester needs the witness's answer too: it waits for
                // it, up to the timeout.
                let region = self.requesters[r].region;
                let round_trip = self.latency(region, self.peers[pw].region)
                    + self.latency(self.peers[pw].region, region);
                let timeout = self.p.timeout_ms * US;
                let witness_silent = witness_answer.silent
                    || witness_answer.gone
                    || round_trip + witness_answer.work_us > timeout;
                let witness_us = if witness_answer.silent {
                    timeout
                } else if witness_answer.gone {
                    round_trip
                } else {
                    (round_trip + witness_answer.work_us).min(timeout)
                };
                self.send(r, candidate, true, witness_us, move |a| {
                    let both_right = a.correct && witness_answer.correct;
                    // Colluding Sybils give the same wrong answer.
                    let both_wrong = !a.correct && !witness_answer.correct;
                    Event::CrossCheck(if witness_silent {
                        CrossCheckOutcome::WitnessSilent
                    } else if both_right || both_wrong {
                        CrossCheckOutcome::Agreed
                    } else {
                        CrossCheckOutcome::Disagreed
                    })
                });
            }
            Decision::Invoke { candidate } => {
                let evidence = self.requesters[r]
                    .active
                    .as_ref()
                    .and_then(|a| a.delegation.as_ref())
                    .is_some_and(|d| d.tiers().evidence);
                let peer = self.requesters[r]
                    .active
                    .as_ref()
                    .and_then(|a| a.cands.get(candidate))
                    .map(|c| c.0);
                let ans = self.send(r, candidate, false, 0, move |a| Event::Invoked {
                    receipt: evidence.then(|| a.receipt()),
                });
                if let Some(ans) = ans
                    && evidence
                    && !ans.silent
                    && !ans.gone
                    && let Err(why) = ans.receipt()
                {
                    self.metrics.invalid_receipts += 1;
                    if why.contains("params") {
                        self.metrics.params_mismatches += 1;
                    }
                }
                if let (Some(ans), Some(a)) = (ans, self.requesters[r].active.as_mut()) {
                    a.last = Some(ans);
                    a.last_peer = peer;
                }
            }
            Decision::Replay { .. } => {
                let last = self.requesters[r].active.as_ref().and_then(|a| a.last);
                let op = self.bump(r);
                let t = self.now + self.exp_us(self.p.processing_ms);
                // The requester re-runs the signed request (never the
                // receipt's claims) and compares with the receipt. Its own
                // run can fail: inconclusive, which proves nothing.
                self.metrics.replays += 1;
                let failed = self.p.replay_fail > 0.0 && self.rng.unit() < self.p.replay_fail;
                let event = Event::Replayed(if failed {
                    self.metrics.replay_inconclusive += 1;
                    ReplayOutcome::Inconclusive("the requester's own run failed".into())
                } else {
                    match last {
                        Some(a) if !a.correct => {
                            self.metrics.replay_mismatches += 1;
                            ReplayOutcome::Mismatch(if a.ran == Run::ASKED {
                                "output differs from the request's run".into()
                            } else {
                                "the executor ran other work than the request".into()
                            })
                        }
                        _ => ReplayOutcome::Matched,
                    }
                });
                self.at(
                    t,
                    Ev::Outcome {
                        req: r as u32,
                        op,
                        event,
                    },
                );
            }
            Decision::Succeeded { candidate } => {
                let Some(a) = self.requesters[r].active.as_mut() else {
                    return;
                };
                let right = a.last.is_some_and(|x| x.correct && !x.gone && !x.silent);
                let reputation = a.delegation.as_ref().is_some_and(|d| d.tiers().reputation);
                if let Some(c) = a.cands.get(candidate) {
                    a.chosen.push((c.2.body().publisher, reputation));
                }
                self.step_done(r, right);
            }
            Decision::Failed => self.widen_or_fail(r),
        }
    }

    /// After a round with no one trustworthy: a wider discovery round if
    /// `trust::next_round` allows one, else the workflow fails.
    fn widen_or_fail(&mut self, r: usize) {
        let widen = self.p.widen;
        let Some(a) = self.requesters[r].active.as_mut() else {
            return;
        };
        let next = a
            .delegation
            .as_ref()
            .and_then(|d| trust::next_round(d.tiers(), a.round, widen, a.limit, a.answered));
        let Some(limit) = next else {
            self.finish(r, false);
            return;
        };
        if let Some(d) = a.delegation.take() {
            self.metrics.fallbacks += d.fallbacks() as u64;
            a.tried.extend(
                d.attempts()
                    .iter()
                    .filter_map(|t| a.cands.get(t.candidate))
                    .map(|c| c.2.body().publisher),
            );
        }
        a.round += 1;
        a.limit = limit;
        a.last = None;
        a.last_peer = None;
        self.metrics.wider_rounds += 1;
        self.query(r);
    }

    fn observe(&mut self, r: usize, event: Event) {
        let now = self.wall(self.now);
        let replayed = matches!(event, Event::Replayed(_));
        let Requester {
            reputation, active, ..
        } = &mut self.requesters[r];
        let Some(a) = active.as_mut() else {
            return;
        };
        let Some(d) = a.delegation.as_mut() else {
            return;
        };
        d.observe(event, reputation, now);
        // Only a replay can ban (proven fraud): check it never bans an
        // honest executor, whatever the replay's outcome.
        if replayed
            && let Some(pi) = a.last_peer
            && let Some(p) = self.peers.get(pi as usize)
            && p.sybil.is_none()
            && reputation.is_banned(&p.id)
        {
            self.metrics.honest_banned += 1;
        }
        self.advance(r);
    }

    fn step_done(&mut self, r: usize, right: bool) {
        let steps = self.p.steps;
        let Some(a) = self.requesters[r].active.as_mut() else {
            return;
        };
        if right {
            a.right |= 1 << a.step.min(31);
        }
        a.accepted = a.accepted.saturating_add(1);
        if let Some(d) = &a.delegation {
            self.metrics.fallbacks += d.fallbacks() as u64;
        }
        a.step += 1;
        a.delegation = None;
        a.last = None;
        a.last_peer = None;
        a.round = 0;
        a.limit = self.p.candidates;
        a.tried.clear();
        if a.step >= steps {
            self.finish(r, true);
        } else {
            self.query(r);
        }
    }

    /// Ends requester `r`'s workflow. `completed` says every step accepted
    /// an answer; success also needs every accepted answer to be right.
    fn finish(&mut self, r: usize, completed: bool) {
        let Some(a) = self.requesters[r].active.take() else {
            return;
        };
        if let Some(d) = &a.delegation {
            self.metrics.fallbacks += d.fallbacks() as u64;
        }
        let record = WorkflowRecord {
            success: false,
            accepted: a.accepted,
            right: a.right,
        };
        let all_right = record.all_right(self.p.steps);
        let success = completed && all_right;
        self.metrics.workflows += 1;
        if success {
            self.metrics.successes += 1;
            self.metrics
                .latencies_ms
                .push((self.now - a.started) as f64 / US as f64);
        } else if !completed && a.stale {
            self.metrics.stale_failures += 1;
        }
        let wrong = (0..usize::from(a.accepted)).any(|i| a.right & (1 << i.min(31)) == 0);
        if wrong {
            self.metrics.wrong_accepted += 1;
        }
        // Wrong answers accepted on reputation alone are sometimes noticed
        // later and reported: the feedback reputation systems live on.
        let now = self.wall(self.now);
        for (i, (peer, reputation)) in a.chosen.iter().enumerate() {
            if *reputation && a.right & (1 << i.min(31)) == 0 && self.rng.unit() < self.p.feedback {
                self.requesters[r]
                    .reputation
                    .observe(*peer, Observation::WrongResult, now);
            }
        }
        self.metrics
            .records
            .push(WorkflowRecord { success, ..record });
        let think = self.exp_us(self.p.think_ms);
        self.at(self.now + think, Ev::Start { req: r as u32 });
    }
}

/// Runs one simulation.
pub fn simulate(p: &Params, seed: u64) -> Metrics {
    World::new(p.clone(), seed).run(None)
}

/// The analytic success of the no-verification policy under random
/// selection among every provider: each step succeeds only on an honest
/// provider, so success is the product over steps of honest / all.
pub fn analytic_random_success(providers: &[(u32, u32)], steps: usize) -> f64 {
    providers
        .iter()
        .take(steps)
        .map(|&(h, s)| f64::from(h) / f64::from(h + s).max(1.0))
        .product()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sim's binding verdicts are `Request::check_receipt`'s on real
    /// objects: a receipt that answers the request passes, and each
    /// cheapened field is named, parameters first.
    #[test]
    fn binding_is_the_real_check_receipt() {
        let b = Binding::get();
        assert!(b.check(Run::ASKED).is_ok());
        let named = |run: Run| match b.check(run) {
            Err(BindingError::Field { field, .. }) => field,
            other => panic!("{run:?}: {other:?}"),
        };
        assert_eq!(named(Run::CHEAPER_PARAMS), "params");
        let other_component = Run {
            component: false,
            ..Run::ASKED
        };
        assert_eq!(named(other_component), "component");
        let other_seed = Run {
            seed: false,
            ..Run::ASKED
        };
        assert_eq!(named(other_seed), "seed");
        for i in 1..8 {
            let run = Run {
                params: i & 1 == 0,
                component: i & 2 == 0,
                seed: i & 4 == 0,
            };
            assert_eq!(run.index(), i);
            assert!(b.check(run).is_err(), "{run:?}");
        }
        // A forged signature fails before the fields are looked at.
        let forged = Answer {
            silent: false,
            gone: false,
            correct: true,
            ran: Run::ASKED,
            claims: Run::ASKED,
            signed: false,
            work_us: 0,
        };
        assert!(forged.receipt().is_err_and(|e| e.contains("signature")));
        let swapped = Answer {
            signed: true,
            correct: false,
            ran: Run::CHEAPER_PARAMS,
            claims: Run::CHEAPER_PARAMS,
            ..forged
        };
        assert!(swapped.receipt().is_err_and(|e| e.contains("params")));
    }

    /// The calendar queue pops exactly what a binary heap keyed by (time,
    /// scheduling order) would, including events scheduled for the bucket
    /// being drained, far-future events and long idle gaps.
    #[test]
    fn calendar_queue_orders_like_a_heap() {
        let mut rng = SplitMix(3);
        let mut q = Queue::default();
        let mut reference: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
        let id = |ev: Ev| match ev {
            Ev::Start { req } => u64::from(req),
            _ => u64::MAX,
        };
        let mut seq = 0u64;
        let mut now = 0u64;
        for round in 0..200_000u32 {
            if rng.below(3) > 0 || reference.is_empty() {
                let delay = match rng.below(6) {
                    0 => 0,
                    1 => rng.below(1_000) as u64,
                    2 => rng.below(50_000) as u64,
                    3 => rng.below(40_000_000) as u64,
                    4 => 20_000_000 + rng.below(100_000) as u64,
                    _ => rng.below(3_000) as u64 * 1_000,
                };
                seq += 1;
                q.push(now + delay, Ev::Start { req: seq as u32 });
                reference.push(Reverse((now + delay, seq)));
            } else {
                let Reverse((t, s)) = reference.pop().unwrap();
                assert_eq!(q.peek_time(), Some(t), "round {round}");
                let (got, ev) = q.pop().unwrap();
                assert_eq!((got, id(ev)), (t, s), "round {round}");
                now = t;
            }
        }
        while let Some(Reverse((t, s))) = reference.pop() {
            assert_eq!(q.pop().map(|(t, ev)| (t, id(ev))), Some((t, s)));
        }
        assert!(q.pop().is_none());
    }
}
