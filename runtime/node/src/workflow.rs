//! Workflows: multi-step delegation across the network, with tiered,
//! risk-aware verification.
//!
//! A workflow file lists steps. Each step names an intent, constraints, a
//! risk level and where its input comes from:
//!
//! ```toml
//! name = "generate-and-publish"
//!
//! [[steps]]
//! name = "generate"
//! intent = "generate an image from a text prompt"
//! input = { text = "a lighthouse in a storm" }   # or { file = "prompt.txt" }
//! params = { size = "128" }
//! risk = "low"
//! output_type = "image/png"
//!
//! [[steps]]
//! name = "publish"
//! intent = "publish content"
//! input = { from = "generate" }                   # or { from = "previous" }
//! params = { title = "Lighthouse" }
//! risk = "high"
//! # tiers = "t2"                                  # override the policy for this step
//! # author = "PEER-ID"                            # only tools packaged by this author
//! # component = "sha256:..."                      # only this component
//! # compatible = "1.2.0"                         # only versions 1.x, at least 1.2.0
//! ```
//!
//! For each step the [`Runner`] discovers candidates across the registries,
//! orders them with the requester's reputation, and drives the I/O-free
//! [`Delegation`] state machine from `errand-core`. It performs what it
//! decides: canaries answered by running the public component locally (from
//! the package the candidate's descriptor names, accepted only with its
//! author's signature, whoever serves it),
//! cross-checks, the real invocation, receipt checks and replays. A replay
//! that contradicts a receipt is kept as a fraud proof in the evidence
//! folder. Reputation is stored durably and survives restarts.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use errand_core::bounded::{BBytes, BString};
use errand_core::descriptor::{SignedDescriptor, Version};
use errand_core::evidence::{Blob, Evidence, MAX_BLOB_BYTES, TraceBlob};
use errand_core::manifest::Manifest;
use errand_core::package::Package;
use errand_core::receipt::{InvocationContext, Outcome, RequestId, RunLimits};
use errand_core::request::CapabilityTarget;
use errand_core::signed;
use errand_core::trust;
use errand_core::trust::{
    CanaryPool, CandidateView, CrossCheckOutcome, Decision, Delegation, Entropy, Event, Policy,
    Rejection, ReplayOutcome, Reputation, ReputationConfig, Risk, SplitMix, TierSet,
    order_candidates,
};
use errand_core::wire::Query;
use errand_core::{Digest, PeerId, UnixMillis};
use errand_host::{Host, Invocation};
use serde::{Deserialize, Serialize};

use crate::client::{Ask, Client, ClientError, DEFAULT_FUEL};
use crate::config::PeerAddr;
use crate::store::Store;

/// Where a step's input comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputSpec {
    /// Inline text.
    Text(String),
    /// A file, relative to the workflow file.
    File(PathBuf),
    /// Another step's output (`previous` for the one before).
    From(String),
}

/// One step of a workflow file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// The step's name.
    pub name: String,
    /// What to get done, in words.
    pub intent: String,
    /// The input.
    pub input: InputSpec,
    /// Request parameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// How much is at stake (default medium).
    #[serde(default = "default_risk")]
    pub risk: Risk,
    /// Tiers for this step whatever the policy: none, t1, t2 or t3.
    #[serde(default)]
    pub tiers: Option<String>,
    /// Only capabilities declaring at most this latency.
    #[serde(default)]
    pub max_latency_ms: Option<u32>,
    /// Only capabilities declaring at most this cost.
    #[serde(default)]
    pub max_cost: Option<u32>,
    /// Required input media type.
    #[serde(default)]
    pub input_type: Option<String>,
    /// Required output media type.
    #[serde(default)]
    pub output_type: Option<String>,
    /// Exact capability name.
    #[serde(default)]
    pub capability: Option<String>,
    /// A version the capability must be compatible with, `major.minor.patch`:
    /// the same major version, and at least this one.
    #[serde(default)]
    pub compatible: Option<String>,
    /// Fuel to ask for.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Only tools packaged by this author (a peer id): candidates whose
    /// descriptor names another author, or no package, are dropped.
    #[serde(default)]
    pub author: Option<String>,
    /// Only this component (sha256 hex, `sha256:` prefix optional).
    #[serde(default)]
    pub component: Option<String>,
}

/// The author and component a step is pinned to, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pins {
    /// Only tools packaged by this author.
    pub author: Option<PeerId>,
    /// Only this component.
    pub component: Option<Digest>,
}

impl Pins {
    /// Parses the pins; an error names the bad value.
    pub fn parse(author: Option<&str>, component: Option<&str>) -> Result<Pins, String> {
        Ok(Pins {
            author: author
                .map(|a| {
                    a.parse::<PeerId>()
                        .map_err(|e| format!("author = {a:?} is not a peer id: {e}"))
                })
                .transpose()?,
            component: component
                .map(|c| {
                    c.trim()
                        .parse::<Digest>()
                        .map_err(|e| format!("component = {c:?}: {e}"))
                })
                .transpose()?,
        })
    }

    /// Whether a candidate's descriptor matches the pins.
    pub fn admit(&self, d: &errand_core::descriptor::Descriptor) -> bool {
        self.author
            .is_none_or(|a| d.package.is_some_and(|p| p.author == a))
            && self.component.is_none_or(|c| d.component == Some(c))
    }
}

impl StepSpec {
    /// The step's pins (see [`Pins`]).
    pub fn pins(&self) -> Result<Pins, String> {
        Pins::parse(self.author.as_deref(), self.component.as_deref())
    }

    /// The parsed `compatible` version, if any; an error names the value.
    pub fn compatible_version(&self) -> Result<Option<Version>, String> {
        self.compatible
            .as_deref()
            .map(|v| v.parse().map_err(|e| format!("compatible = {v:?}: {e}")))
            .transpose()
    }
}

fn default_risk() -> Risk {
    Risk::Medium
}

/// A workflow file (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowFile {
    /// The workflow's name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
}

/// Why a workflow could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The file is unreadable or malformed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A step refers to something that does not exist.
    #[error("step `{step}`: {reason}")]
    Step {
        /// The step.
        step: String,
        /// Why.
        reason: String,
    },
    /// The reputation store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl WorkflowFile {
    /// Reads and checks a workflow file.
    pub fn load(path: &Path) -> Result<WorkflowFile, WorkflowError> {
        let err = |reason: String| WorkflowError::File {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let wf: WorkflowFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        wf.check()?;
        Ok(wf)
    }

    /// Checks step names, input references and tier overrides.
    pub fn check(&self) -> Result<(), WorkflowError> {
        if self.steps.is_empty() {
            return Err(WorkflowError::Step {
                step: self.name.clone(),
                reason: "a workflow needs at least one step".into(),
            });
        }
        for (i, s) in self.steps.iter().enumerate() {
            let bad = |reason: String| WorkflowError::Step {
                step: s.name.clone(),
                reason,
            };
            if self.steps[..i].iter().any(|o| o.name == s.name) {
                return Err(bad("repeats an earlier step's name".into()));
            }
            if let InputSpec::From(from) = &s.input {
                let ok = (from == "previous" && i > 0)
                    || self.steps[..i].iter().any(|o| &o.name == from);
                if !ok {
                    return Err(bad(format!(
                        "takes its input from `{from}`, which is not an earlier step"
                    )));
                }
            }
            if let Some(t) = &s.tiers
                && Policy::parse(t, Default::default(), 1.0).is_none()
            {
                return Err(bad(format!(
                    "tiers = {t:?}: use none, t1, t2, t3, t3:P (replay probability P) or risk"
                )));
            }
            step_context(s, UnixMillis(0)).map_err(|e| bad(e.to_string()))?;
            s.pins().map_err(bad)?;
            s.compatible_version().map_err(bad)?;
        }
        Ok(())
    }
}

/// How the runner behaves.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The verification policy.
    pub policy: Policy,
    /// Most fallbacks per step.
    pub fallback_budget: usize,
    /// Chance of trying a newcomer first.
    pub exploration: f64,
    /// Replay probability for `t3` steps.
    pub replay: f64,
    /// How long to wait for an executor.
    pub step_timeout: Duration,
    /// Candidates to consider per step (asked of the registries in the
    /// first discovery round).
    pub candidates: u16,
    /// Wider discovery rounds after a round with no trustworthy executor
    /// (verified policies only), each asking for
    /// [`errand_core::trust::WIDEN_FACTOR`] times more candidates, up to the
    /// protocol's most ([`errand_core::trust::next_round`]).
    pub widen: u8,
    /// Where evidence and fraud proofs go.
    pub evidence_dir: Option<PathBuf>,
    /// Ask for the full trace even when no evidence tier applies, to keep
    /// it in the evidence (`errand invoke --trace`).
    pub keep_trace: bool,
}

impl Default for RunnerConfig {
    fn default() -> RunnerConfig {
        RunnerConfig {
            policy: Policy::Risk(Default::default()),
            fallback_budget: 4,
            exploration: 0.1,
            replay: 0.5,
            step_timeout: Duration::from_secs(10),
            candidates: 10,
            widen: 2,
            evidence_dir: None,
            keep_trace: false,
        }
    }
}

/// One attempt on one candidate, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptReport {
    /// The executor.
    pub peer: String,
    /// The capability.
    pub capability: String,
    /// The checks that ran and whether each passed.
    pub checks: Vec<(String, bool)>,
    /// Why it was rejected, if it was.
    pub rejected: Option<String>,
}

/// Traffic, by plane.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Traffic {
    /// Discovery, canaries, cross-checks and package fetches: messages.
    pub control_messages: u64,
    /// … and their bytes.
    pub control_bytes: u64,
    /// Real invocations: messages.
    pub data_messages: u64,
    /// … and their bytes.
    pub data_bytes: u64,
}

impl std::ops::AddAssign for Traffic {
    fn add_assign(&mut self, o: Traffic) {
        self.control_messages += o.control_messages;
        self.control_bytes += o.control_bytes;
        self.data_messages += o.data_messages;
        self.data_bytes += o.data_bytes;
    }
}

/// What happened in one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The step.
    pub name: String,
    /// The tiers applied.
    pub tiers: String,
    /// Distinct candidates discovered, over every discovery round.
    pub candidates: usize,
    /// The attempts, in order.
    pub attempts: Vec<AttemptReport>,
    /// Fallbacks used, over every discovery round.
    pub fallbacks: usize,
    /// Discovery rounds run: 1, plus one for each time the search widened.
    pub discovery_rounds: usize,
    /// Discovery time.
    pub discovery_ms: f64,
    /// Whole step time.
    pub latency_ms: f64,
    /// The executor whose answer was used.
    pub executor: Option<String>,
    /// The output's digest, on success.
    pub output: Option<String>,
    /// The digest of the signed receipt behind the output, on success.
    pub receipt: Option<String>,
    /// The outcome that receipt states, on success (a step without the
    /// reputation tier takes an answer whatever its outcome).
    pub outcome: Option<String>,
    /// The output's media type, as the descriptor of the executor whose
    /// answer was used declares it, on success.
    pub output_type: Option<String>,
    /// Why the step failed, if it did.
    pub error: Option<String>,
    /// Evidence written.
    pub evidence: Vec<String>,
    /// Traffic.
    pub traffic: Traffic,
}

/// What happened in a workflow.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowReport {
    /// The workflow.
    pub name: String,
    /// Whether every step succeeded.
    pub succeeded: bool,
    /// The steps that ran.
    pub steps: Vec<StepReport>,
    /// End-to-end time.
    pub latency_ms: f64,
    /// Every step's output, by step name.
    #[serde(skip)]
    pub outputs: HashMap<String, Vec<u8>>,
}

/// Runs workflows as one requester (see the module docs).
pub struct Runner {
    client: Client,
    host: Host,
    registries: Vec<PeerAddr>,
    config: RunnerConfig,
    reputation: Reputation,
    store: Option<Store>,
    /// Fetched packages, by package digest; each checked against the
    /// descriptor that named it (see [`Runner::package`]).
    packages: HashMap<Digest, Package>,
    rng: Box<dyn Entropy + Send + Sync>,
    /// The requester's own recent inputs, per capability: canaries are
    /// made from them, never from public examples.
    canaries: CanaryPool,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("registries", &self.registries)
            .finish_non_exhaustive()
    }
}

const REPUTATION_BLOB: &str = "reputation";

fn os_seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}

/// A step's request context: its parameters at the declared `time`.
fn step_context(
    spec: &StepSpec,
    time: UnixMillis,
) -> Result<InvocationContext, errand_core::signed::Invalid> {
    InvocationContext::from_pairs(time, &spec.params.iter().collect::<Vec<_>>())
}

/// The outcome every executor tried gave, when each was rejected because
/// the tool did not succeed, with the same outcome: the tool fails on the
/// request itself.
fn same_tool_failure(attempts: &[AttemptReport]) -> Option<String> {
    const PREFIX: &str = "unavailable: tool did not succeed: ";
    let mut outcomes = attempts
        .iter()
        .map(|a| a.rejected.as_deref().and_then(|r| r.strip_prefix(PREFIX)));
    let first = outcomes.next()??;
    outcomes.all(|o| o == Some(first)).then(|| first.to_owned())
}

/// An executor's answer and whether its receipt answers the request.
type Answered = (
    crate::client::Invoked,
    Result<(), errand_core::receipt::BindingError>,
);

/// The one request shape for real work, canaries and cross-checks alike, so
/// an executor cannot tell them apart by their form: the step's parameters
/// and time, the same fuel cap, the limits of the author-signed manifest
/// when the requester holds the package, a fresh nonce and a fresh seed.
fn ask_for(
    d: &SignedDescriptor,
    input: BBytes<MAX_BLOB_BYTES>,
    context: InvocationContext,
    fuel: u64,
    limits: Option<RunLimits>,
    want_trace: bool,
) -> Ask {
    let (request_id, seed) = Ask::fresh_ids();
    Ask {
        request_id,
        capability: Some(CapabilityTarget {
            name: d.body().name.clone(),
            version: Some(d.body().version),
        }),
        component: d.body().component,
        input,
        context,
        fuel,
        limits,
        seed,
        want_trace,
    }
}

/// Before the second request of a candidate's canary/real pair, waits the
/// delegation's random gap, so an executor cannot pair them by timing.
async fn pair_gap(paired: &mut Option<usize>, candidate: usize, delay_ms: u64) {
    if *paired == Some(candidate) {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        *paired = None;
    } else {
        *paired = Some(candidate);
    }
}

/// The run limits a package's manifest gives, as a request states them
/// (outputs bounded by what a reply can carry, as every executor bounds
/// them).
fn package_limits(pkg: &Package) -> Option<RunLimits> {
    let manifest: Manifest = toml::from_str(&pkg.manifest).ok()?;
    let mut l = crate::packaging::manifest_limits(&manifest);
    l.max_output = l.max_output.min(MAX_BLOB_BYTES);
    Some(l.run_limits())
}

impl Runner {
    /// A runner. With `state`, reputation is loaded from and saved to the
    /// redb store there, and fetched packages are cached.
    pub fn new(
        client: Client,
        host: Host,
        registries: Vec<PeerAddr>,
        config: RunnerConfig,
        state: Option<&Path>,
    ) -> Result<Runner, WorkflowError> {
        let store = state.map(Store::open).transpose()?;
        let reputation = match store
            .as_ref()
            .map(|s| s.get_blob(REPUTATION_BLOB))
            .transpose()?
            .flatten()
        {
            Some(bytes) => Reputation::from_bytes(ReputationConfig::default(), &bytes)
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "starting with an empty reputation");
                    Reputation::new(ReputationConfig::default())
                }),
            None => Reputation::new(ReputationConfig::default()),
        };
        // Seeded from the OS: canaries and exploration must not be
        // predictable by executors.
        let seed = os_seed();
        Ok(Runner {
            client,
            host,
            registries,
            config,
            reputation,
            store,
            packages: HashMap::new(),
            rng: Box::new(SplitMix(seed)),
            canaries: CanaryPool::new(),
        })
    }

    /// Uses a fixed seed for decisions (exploration, canary choice, replay
    /// rolls): for tests and simulations. Request ids stay random.
    pub fn with_seed(mut self, seed: u64) -> Runner {
        self.rng = Box::new(SplitMix(seed));
        self
    }

    /// The requester's reputation of peers.
    pub fn reputation(&self) -> &Reputation {
        &self.reputation
    }

    /// The reputation, to adjust: an operator importing trust it
    /// established elsewhere, or a test giving a peer a track record.
    /// Saved with the rest after the next workflow.
    pub fn reputation_mut(&mut self) -> &mut Reputation {
        &mut self.reputation
    }

    /// Saves the reputation durably (also done after every workflow).
    pub fn save(&self) -> Result<(), WorkflowError> {
        if let Some(s) = &self.store {
            s.put_blob(REPUTATION_BLOB, &self.reputation.to_bytes())?;
        }
        Ok(())
    }

    /// The runner's configuration.
    pub fn config_mut(&mut self) -> &mut RunnerConfig {
        &mut self.config
    }

    /// Runs `wf`, resolving input files against `base`. `time` is the
    /// declared time every step's tools see.
    pub async fn run(
        &mut self,
        wf: &WorkflowFile,
        base: &Path,
        time: UnixMillis,
    ) -> Result<WorkflowReport, WorkflowError> {
        let t0 = Instant::now();
        let mut outputs: HashMap<String, Vec<u8>> = HashMap::new();
        let mut steps = Vec::new();
        let mut previous: Option<String> = None;
        let mut succeeded = true;
        for spec in &wf.steps {
            let input = match &spec.input {
                InputSpec::Text(t) => t.clone().into_bytes(),
                InputSpec::File(f) => {
                    std::fs::read(base.join(f)).map_err(|e| WorkflowError::Step {
                        step: spec.name.clone(),
                        reason: format!("cannot read {}: {e}", f.display()),
                    })?
                }
                InputSpec::From(from) => {
                    let name = if from == "previous" {
                        previous.clone().unwrap_or_default()
                    } else {
                        from.clone()
                    };
                    outputs
                        .get(&name)
                        .cloned()
                        .ok_or_else(|| WorkflowError::Step {
                            step: spec.name.clone(),
                            reason: format!("no output from `{name}`"),
                        })?
                }
            };
            let (report, output) = self.run_step(spec, &input, time).await;
            let ok = output.is_some();
            if let Some(out) = output {
                outputs.insert(spec.name.clone(), out);
            }
            steps.push(report);
            previous = Some(spec.name.clone());
            if !ok {
                succeeded = false;
                break;
            }
        }
        self.save()?;
        Ok(WorkflowReport {
            name: wf.name.clone(),
            succeeded,
            steps,
            latency_ms: t0.elapsed().as_secs_f64() * 1e3,
            outputs,
        })
    }

    fn query(&self, spec: &StepSpec, compatible: Option<Version>) -> Query {
        let mut q = Query::intent(&spec.intent, self.config.candidates);
        q.version = compatible;
        q.max_latency_ms = spec.max_latency_ms;
        q.max_cost = spec.max_cost;
        q.input = spec.input_type.as_deref().map(BString::truncate_from);
        q.output = spec.output_type.as_deref().map(BString::truncate_from);
        q.name = spec.capability.as_deref().map(BString::truncate_from);
        q
    }

    fn tiers(&self, spec: &StepSpec) -> TierSet {
        let step = spec
            .tiers
            .as_deref()
            .and_then(|t| Policy::parse(t, Default::default(), self.config.replay))
            .map(|p| p.tiers(spec.risk, None));
        self.config.policy.tiers(spec.risk, step)
    }

    /// The package descriptor `d` names, from the cache or fetched from a
    /// peer that names the same package. Whoever serves it, it is used only
    /// if it decodes, its author signature verifies, and its package digest
    /// and author are the ones `d` names; and only for `d` if it holds the
    /// component `d` names. `None` if `d` names no package or no holder
    /// serves one that passes: the candidate cannot be run locally.
    async fn package(
        &mut self,
        d: &errand_core::descriptor::Descriptor,
        holders: &[PeerAddr],
        traffic: &mut Traffic,
    ) -> Option<&Package> {
        let wanted = d.package?;
        if !self.packages.contains_key(&wanted.digest) {
            for h in holders {
                traffic.control_messages += 2;
                let got = tokio::time::timeout(
                    self.config.step_timeout,
                    self.client.fetch_package(*h, wanted.digest),
                )
                .await;
                if let Ok(Ok(Some(p))) = got {
                    traffic.control_bytes += p.component.len() as u64;
                    match wanted.check(&p) {
                        Ok(()) => {
                            self.packages.insert(wanted.digest, p);
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(peer = %h.peer, error = %e, "refusing a fetched package");
                        }
                    }
                }
            }
        }
        self.packages
            .get(&wanted.digest)
            .filter(|p| d.component == Some(p.authorship.body().component))
    }

    /// The checked package to run `d`'s component from: the one `d` names
    /// when it is held and holds that component; else a held package
    /// holding it, by the author `d` names if there is one, and otherwise
    /// the one with the lowest digest, so that the choice (and the limits
    /// canaries state) does not depend on map order or on how many copies
    /// an attacker authored.
    fn runnable(&self, d: &errand_core::descriptor::Descriptor) -> Option<&Package> {
        let component = d.component?;
        let own = d
            .package
            .and_then(|p| self.packages.get(&p.digest))
            .filter(|p| p.authorship.body().component == component);
        own.or_else(|| self.package_with_component(component, d.package.map(|p| p.author)))
    }

    /// Refuses a receipt whose engine is this host's engine without NaN
    /// canonicalisation when the tool's author-signed manifest (in a package
    /// held here) does not declare `observes_nan_bits = false`: the
    /// executor's own signature says it ran the tool in a mode its author
    /// did not allow. Without the package there is nothing to judge by.
    fn nan_allowed(
        &self,
        d: &errand_core::descriptor::Descriptor,
        receipt: &errand_core::receipt::Receipt,
    ) -> Result<(), String> {
        if self.host.nan_mode_of(&receipt.platform.engine) != Some(errand_host::NanMode::Native) {
            return Ok(());
        }
        let manifest = self
            .runnable(d)
            .and_then(|p| toml::from_str::<Manifest>(&p.manifest).ok());
        match manifest {
            Some(m) if m.observes_nan_bits() => Err(format!(
                "the receipt's engine {} ran without NaN canonicalisation, which the manifest \
                 of {} does not allow",
                receipt.platform.engine.short(),
                d.name
            )),
            _ => Ok(()),
        }
    }

    /// A checked package holding component `digest`, if one is cached: by
    /// `author` if there is one, otherwise the one with the lowest package
    /// digest, so the choice never depends on map order.
    fn package_with_component(&self, digest: Digest, author: Option<PeerId>) -> Option<&Package> {
        self.packages
            .iter()
            .filter(|(_, p)| p.authorship.body().component == digest)
            .min_by_key(|(key, p)| (Some(p.authorship.body().author) != author, **key))
            .map(|(_, p)| p)
    }

    /// Sends `ask` to `to` within the step timeout. A refusal the executor
    /// calls retryable (at its connection or memory limit, busy) is retried
    /// with the same, unused request id and a short backoff, so a loaded
    /// honest executor is not marked unavailable.
    async fn ask(
        &self,
        to: PeerAddr,
        ask: &Ask,
    ) -> Result<Result<Answered, ClientError>, tokio::time::error::Elapsed> {
        let backoff = crate::client::Backoff {
            attempts: 3,
            first: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        tokio::time::timeout(
            self.config.step_timeout,
            crate::client::retry(backoff, || self.client.invoke_raw(to, ask), |_, _| {}),
        )
        .await
    }

    fn run_local(&self, pkg: &Package, ask: &Ask) -> Option<Vec<u8>> {
        run_ask_locally(&self.host, pkg, ask)
    }

    /// Runs one step on `input`: discovery, ordering, and the delegation
    /// state machine with every check the step's tiers call for. Workflows,
    /// `errand invoke --intent` and any other front end share this path.
    /// Returns the report and, on success, the output.
    pub async fn run_step(
        &mut self,
        spec: &StepSpec,
        input: &[u8],
        time: UnixMillis,
    ) -> (StepReport, Option<Vec<u8>>) {
        let t0 = Instant::now();
        let tiers = self.tiers(spec);
        let mut traffic = Traffic::default();
        // Checked before anything goes on the wire: an input or parameters
        // over the protocol's bounds fail the step, never travel truncated.
        let request_parts = BBytes::new(input.to_vec())
            .map_err(|e| format!("input: {e}"))
            .and_then(|i| {
                step_context(spec, time)
                    .map(|c| (i, c))
                    .map_err(|e| e.to_string())
            })
            .and_then(|parts| spec.compatible_version().map(|v| (parts, v)));
        let mut report = StepReport {
            name: spec.name.clone(),
            tiers: tiers.label(),
            candidates: 0,
            attempts: Vec::new(),
            fallbacks: 0,
            discovery_rounds: 0,
            discovery_ms: 0.0,
            latency_ms: 0.0,
            executor: None,
            output: None,
            receipt: None,
            outcome: None,
            output_type: None,
            error: None,
            evidence: Vec::new(),
            traffic,
        };
        let ((input_bytes, context), compatible) = match request_parts {
            Ok(parts) => parts,
            Err(e) => {
                report.error = Some(e);
                return (report, None);
            }
        };
        // Pinned author or component: the others are dropped before ordering
        // (`WorkflowFile::check` already refused unparsable pins).
        let pins = spec.pins().unwrap_or_default();
        // Peers this step already tried (sent a canary, a cross-check or the
        // real request): a wider round never asks them again.
        let mut tried: Vec<PeerId> = Vec::new();
        let mut limit = self.config.candidates.max(1);
        // The optimistic policy asks once. Verified policies widen the
        // search when a round ends with no trustworthy executor and the
        // registries' answer was full (`errand_core::trust::next_round`):
        // each wider round asks for more candidates, leaves out every peer
        // already tried and every peer caught lying, and has its own
        // fallback budget.
        let mut result = None;
        for round in 0.. {
            let mut query = self.query(spec, compatible);
            query.limit = limit;
            let found = self
                .client
                .find(&self.registries, &query, crate::node::now())
                .await;
            let found = match found {
                Ok(f) => f,
                Err(e) if round == 0 => {
                    report.error = Some(format!("discovery failed: {e}"));
                    report.latency_ms = t0.elapsed().as_secs_f64() * 1e3;
                    return (report, None);
                }
                // A wider round that cannot reach the registries ends the
                // search; the report keeps the rounds already run.
                Err(_) => break,
            };
            report.discovery_rounds += 1;
            traffic.control_messages += found.messages;
            traffic.control_bytes += found.bytes;
            report.discovery_ms += found.elapsed.as_secs_f64() * 1e3;
            let answered = found.candidates.len();
            let now = crate::node::now();
            // Discovered: every candidate not tried already (nor, in a wider
            // round, caught lying), before the step's pins drop any.
            let fresh: Vec<SignedDescriptor> = found
                .candidates
                .into_iter()
                .filter(|d| {
                    let peer = d.body().publisher;
                    trust::admit(round, &tried, &self.reputation, &peer, now)
                })
                .collect();
            report.candidates += fresh.len();
            // One candidate per publisher in a round: an identity that
            // publishes many matching names must not take every slot (and
            // every attempt) of the round.
            let mut publishers = std::collections::HashSet::new();
            let cands: Vec<(PeerAddr, SignedDescriptor)> = fresh
                .into_iter()
                .filter(|d| pins.admit(d.body()))
                .filter_map(|d| Client::address_of(&d).ok().map(|a| (a, d)))
                .filter(|(a, _)| publishers.insert(a.peer))
                .collect();
            if cands.is_empty() {
                // A full answer with nothing usable (every entry tried, or
                // dropped by the pins) may hide usable ones below the cut.
                match trust::next_round(tiers, round, self.config.widen, limit, answered) {
                    Some(next) => {
                        limit = next;
                        continue;
                    }
                    None if round == 0 => {
                        report.error = Some("no candidate matches".into());
                        report.latency_ms = t0.elapsed().as_secs_f64() * 1e3;
                        return (report, None);
                    }
                    None => break,
                }
            }
            let round_result = self
                .delegate(
                    spec,
                    tiers,
                    (input, &input_bytes, &context),
                    &cands,
                    &mut traffic,
                    (&mut report, &mut tried),
                )
                .await;
            if let Some(done) = round_result {
                result = Some(done);
                break;
            }
            // Widening goes on even when every executor tried gave the same
            // failed outcome: that may be the tool failing on this request
            // (its input or parameters), but Sybils that fill a round can
            // fake it too, and must not end the search for the honest.
            match trust::next_round(tiers, round, self.config.widen, limit, answered) {
                Some(next) => limit = next,
                None => break,
            }
        }
        report.latency_ms = t0.elapsed().as_secs_f64() * 1e3;
        let output = match result {
            Some((executor, descriptor, done)) => {
                report.executor = Some(executor.to_string());
                report.output = Some(Digest::of(&done.response.output).to_string());
                report.receipt = Some(done.response.receipt.digest().to_string());
                report.outcome = Some(done.response.receipt.body().outcome.to_string());
                report.output_type = Some(descriptor.body().output.media_type.to_string());
                if let Some(path) = self.keep_evidence(spec, input, &done) {
                    report.evidence.push(path);
                }
                Some(done.response.output.into_vec())
            }
            None if same_tool_failure(&report.attempts).is_some() => {
                let why = same_tool_failure(&report.attempts).unwrap_or_default();
                report.error = Some(format!(
                    "the tool failed on this request: {why} (every executor tried gave this outcome; check the input and parameters)"
                ));
                None
            }
            None => {
                report.error = Some(format!(
                    "no trustworthy executor within the fallback budget ({} tried in {} discovery round{})",
                    report.attempts.len(),
                    report.discovery_rounds,
                    if report.discovery_rounds == 1 {
                        ""
                    } else {
                        "s"
                    }
                ));
                None
            }
        };
        report.traffic = traffic;
        (report, output)
    }

    /// One discovery round's delegation over `cands`, in the order the
    /// tiers call for: returns the executor and its answer on success.
    /// Appends the round's attempts and fallbacks to `report`, and any
    /// fraud proof it kept, and the peers it tried to `tried`.
    async fn delegate(
        &mut self,
        spec: &StepSpec,
        tiers: TierSet,
        (input, input_bytes, context): (&[u8], &BBytes<MAX_BLOB_BYTES>, &InvocationContext),
        cands: &[(PeerAddr, SignedDescriptor)],
        traffic: &mut Traffic,
        (report, tried): (&mut StepReport, &mut Vec<PeerId>),
    ) -> Option<(PeerAddr, SignedDescriptor, crate::client::Invoked)> {
        let now = crate::node::now();
        let order: Vec<usize> = if tiers.reputation {
            let views: Vec<CandidateView<'_>> = cands
                .iter()
                .map(|(a, d)| CandidateView {
                    peer: a.peer,
                    descriptor: d.body(),
                })
                .collect();
            order_candidates(
                &views,
                &self.reputation,
                now,
                &mut *self.rng,
                self.config.exploration,
            )
        } else {
            (0..cands.len()).collect()
        };
        let ordered: Vec<&(PeerAddr, SignedDescriptor)> =
            order.iter().map(|i| &cands[*i]).collect();

        // Components the requester can run itself (for canaries and replay).
        // Every package the candidates name is fetched and checked once,
        // from whichever holder serves it; then a candidate is runnable here
        // if any checked package holds its component. The bytes are the
        // digest's whoever authored the package, so executors that withhold
        // their own package (`witness-liar`) still get a local canary when
        // anyone serves the same component.
        let checks_locally = tiers.canary || tiers.evidence;
        if checks_locally {
            let mut tried = std::collections::HashSet::new();
            // Only the candidates the fallback budget can reach: a wide
            // round must not fetch a package per candidate before its
            // first canary.
            for (_, d) in ordered.iter().take(self.config.fallback_budget + 1) {
                let Some(pkg) = d.body().package else {
                    continue;
                };
                if !tried.insert(pkg.digest) {
                    continue;
                }
                let holders: Vec<PeerAddr> = ordered
                    .iter()
                    .filter(|(_, o)| o.body().package.map(|p| p.digest) == Some(pkg.digest))
                    .map(|(a, _)| *a)
                    .collect();
                let _ = self.package(d.body(), &holders, traffic).await;
            }
        }
        let can_run: Vec<bool> = ordered
            .iter()
            .map(|(_, d)| checks_locally && self.runnable(d.body()).is_some())
            .collect();

        let peers: Vec<PeerId> = ordered.iter().map(|(a, _)| a.peer).collect();
        let mut del = Delegation::with_reputation(
            tiers,
            peers,
            can_run,
            self.config.fallback_budget,
            &mut *self.rng,
            tiers
                .reputation
                .then_some((&self.reputation, crate::node::now())),
        );
        let mut last: Option<Answered> = None;
        // The fuel every request of this step states.
        let fuel = spec.fuel.unwrap_or(DEFAULT_FUEL);
        // The candidate whose canary or real request went out last: the
        // second of a pair waits a random gap, so timing tells nothing.
        let mut paired: Option<usize> = None;
        let result = loop {
            match del.decide() {
                Decision::Canary { candidate } => {
                    pair_gap(&mut paired, candidate, del.delay_ms()).await;
                    let event = self
                        .canary(
                            ordered[candidate],
                            input,
                            context,
                            (fuel, tiers.evidence || self.config.keep_trace),
                            traffic,
                        )
                        .await;
                    del.observe(event, &mut self.reputation, crate::node::now());
                }
                Decision::CrossCheck { candidate, witness } => {
                    let event = self
                        .cross_check(
                            ordered[candidate],
                            ordered[witness],
                            input,
                            context,
                            (fuel, tiers.evidence || self.config.keep_trace),
                            traffic,
                        )
                        .await;
                    del.observe(event, &mut self.reputation, crate::node::now());
                }
                Decision::Invoke { candidate } => {
                    pair_gap(&mut paired, candidate, del.delay_ms()).await;
                    let (to, d) = ordered[candidate];
                    if tiers.canary {
                        self.canaries.record(d.body().name.as_str(), input);
                    }
                    // The author-signed manifest's limits, as the canary
                    // stated them: the same request shape.
                    let limits = self.runnable(d.body()).and_then(package_limits);
                    let ask = ask_for(
                        d,
                        input_bytes.clone(),
                        context.clone(),
                        fuel,
                        limits,
                        tiers.evidence || self.config.keep_trace,
                    );
                    let got = self.ask(*to, &ask).await;
                    traffic.data_messages += 2;
                    let event = match got {
                        Err(_) => Event::Rejected(Rejection::Timeout),
                        Ok(Err(ClientError::Remote { error, .. })) => {
                            Event::Rejected(Rejection::Unavailable(error.to_string()))
                        }
                        Ok(Err(e)) => Event::Rejected(Rejection::Unavailable(e.to_string())),
                        Ok(Ok((done, binding))) => {
                            traffic.data_bytes += done.bytes;
                            let outcome = done.response.receipt.body().outcome.clone();
                            let binding_view = binding
                                .as_ref()
                                .map_err(|e| e.to_string())
                                .map(|_| ())
                                .and_then(|()| {
                                    self.nan_allowed(d.body(), done.response.receipt.body())
                                });
                            last = Some((done, binding));
                            // A run that failed is no answer, whatever the
                            // policy: even the optimistic one moves on.
                            if !matches!(outcome, Outcome::Ok) {
                                Event::Rejected(Rejection::Unavailable(format!(
                                    "tool did not succeed: {outcome}"
                                )))
                            } else if tiers.evidence {
                                Event::Invoked {
                                    receipt: Some(binding_view),
                                }
                            } else {
                                Event::Invoked { receipt: None }
                            }
                        }
                    };
                    del.observe(event, &mut self.reputation, crate::node::now());
                }
                Decision::Replay { candidate } => {
                    let (to, d) = ordered[candidate];
                    let event = match (&last, d.body().component) {
                        (Some((done, _)), Some(digest)) => {
                            let outcome = self.replay(digest, input, done);
                            if let ReplayOutcome::Mismatch(why) = &outcome
                                && let Some(path) = self.keep_fraud_proof(to.peer, input, done, why)
                            {
                                report.evidence.push(path);
                            }
                            Event::Replayed(outcome)
                        }
                        _ => Event::Replayed(ReplayOutcome::Inconclusive(
                            "nothing to replay: no answer or no component".into(),
                        )),
                    };
                    del.observe(event, &mut self.reputation, crate::node::now());
                }
                Decision::Succeeded { candidate } => break Some(candidate),
                Decision::Failed => break None,
            }
        };
        report.fallbacks += del.fallbacks();
        // Tried: candidates judged (rejected for cause, or passed); one
        // passed over as inconclusive (never contacted, or the requester's
        // own check failed) may be tried again in a wider round.
        tried.extend(
            del.attempts()
                .iter()
                .filter(|a| a.rejected.as_ref().is_none_or(|r| r.is_for_cause()))
                .map(|a| ordered[a.candidate].0.peer),
        );
        report.attempts.extend(
            del.attempts()
                .iter()
                .map(|a| AttemptReport {
                    peer: ordered[a.candidate].0.to_string(),
                    capability: ordered[a.candidate].1.body().name.to_string(),
                    checks: a
                        .checks
                        .iter()
                        .map(|(n, ok)| ((*n).to_owned(), *ok))
                        .collect(),
                    rejected: a.rejected.as_ref().map(|r| r.to_string()),
                })
                .collect::<Vec<_>>(),
        );
        match (result, last) {
            (Some(c), Some((done, _))) => Some((ordered[c].0, ordered[c].1.clone(), done)),
            _ => None,
        }
    }

    /// Sends a canary to `to` and checks the answer against a local run of
    /// the same request. The canary's input is made from this requester's
    /// own recent inputs to the capability, shaped like the real one; its
    /// parameters, time, fuel, limits and options are the real request's.
    /// When this side cannot make or answer a canary (no package, a local
    /// run that fails) the check is inconclusive and never held against
    /// the candidate.
    async fn canary(
        &mut self,
        (to, d): &(PeerAddr, SignedDescriptor),
        real_input: &[u8],
        context: &InvocationContext,
        (fuel, check_receipt): (u64, bool),
        traffic: &mut Traffic,
    ) -> Event {
        let ours = |why: String| Event::CanaryInconclusive(why);
        if d.body().component.is_none() {
            return ours("no component to run a canary against".into());
        }
        // An author-signed package holding the component, checked when
        // fetched.
        let Some(pkg) = self.runnable(d.body()).cloned() else {
            return ours("component package unavailable".into());
        };
        let made = self
            .canaries
            .make(d.body().name.as_str(), real_input, &mut *self.rng);
        let canary_input = match BBytes::new(made) {
            Ok(b) => b,
            Err(e) => return ours(format!("canary input: {e}")),
        };
        let ask = ask_for(
            d,
            canary_input,
            context.clone(),
            fuel,
            package_limits(&pkg),
            check_receipt,
        );
        let Some(expected) = self.run_local(&pkg, &ask) else {
            return ours("the canary's answer could not be computed locally".into());
        };
        traffic.control_messages += 2;
        let got = self.ask(*to, &ask).await;
        match got {
            Err(_) => Event::Rejected(Rejection::Timeout),
            Ok(Err(e)) => Event::Rejected(Rejection::Unavailable(e.to_string())),
            Ok(Ok((done, binding))) => {
                traffic.control_bytes += done.bytes;
                if check_receipt && let Err(e) = binding {
                    return Event::Rejected(Rejection::InvalidReceipt(e.to_string()));
                }
                Event::Canary {
                    correct: expected == done.response.output.as_slice(),
                }
            }
        }
    }

    /// Sends the same request (nonce, parameters, seed) to both candidates
    /// and compares their answers.
    async fn cross_check(
        &mut self,
        (a, da): &(PeerAddr, SignedDescriptor),
        (b, _): &(PeerAddr, SignedDescriptor),
        real_input: &[u8],
        context: &InvocationContext,
        (fuel, want_trace): (u64, bool),
        traffic: &mut Traffic,
    ) -> Event {
        // Made like a canary, from the requester's own inputs.
        let made = self
            .canaries
            .make(da.body().name.as_str(), real_input, &mut *self.rng);
        let Ok(input) = BBytes::new(made) else {
            return Event::Rejected(Rejection::Inconclusive(
                "cross-check input too large".into(),
            ));
        };
        // Shaped exactly like the real request (the requester holds no
        // package here, so no stated limits either way).
        let ask = ask_for(da, input, context.clone(), fuel, None, want_trace);
        let mut outs = Vec::new();
        let mut candidate_receipt = Ok(());
        for (i, to) in [a, b].into_iter().enumerate() {
            traffic.control_messages += 2;
            let got = self.ask(*to, &ask).await;
            outs.push(match got {
                Ok(Ok((done, binding))) => {
                    traffic.control_bytes += done.bytes;
                    // An answer whose receipt does not answer the request
                    // counts for nothing: from the witness, it is silence.
                    if i == 0 {
                        candidate_receipt = binding.map_err(|e| e.to_string());
                        Some(done.response.output.into_vec())
                    } else {
                        binding.ok().map(|()| done.response.output.into_vec())
                    }
                }
                _ => None,
            });
        }
        if let (Some(_), Err(why)) = (&outs[0], candidate_receipt) {
            return Event::Rejected(Rejection::InvalidReceipt(why));
        }
        match (&outs[0], &outs[1]) {
            (None, _) => Event::Rejected(Rejection::Timeout),
            (Some(_), None) => Event::CrossCheck(CrossCheckOutcome::WitnessSilent),
            (Some(x), Some(y)) if x == y => Event::CrossCheck(CrossCheckOutcome::Agreed),
            (Some(_), Some(_)) => Event::CrossCheck(CrossCheckOutcome::Disagreed),
        }
    }

    /// Replays the signed request behind `done` and compares the result
    /// with the receipt. Only a completed replay that contradicts the
    /// signed receipt is a mismatch (fraud, with proof); anything that stops
    /// this side from replaying is inconclusive.
    fn replay(&self, digest: Digest, input: &[u8], done: &crate::client::Invoked) -> ReplayOutcome {
        let Some(pkg) = self.package_with_component(digest, None) else {
            return ReplayOutcome::Inconclusive("the component's package is not held".into());
        };
        let receipt = done.response.receipt.body();
        // Fuel and traces are only comparable on the same engine settings
        // (either NaN mode of this host's); a difference there proves
        // nothing against the executor.
        if self.host.nan_mode_of(&receipt.platform.engine).is_none() {
            return ReplayOutcome::Inconclusive(format!(
                "the executor ran engine {}, this host is {}",
                receipt.platform.engine.short(),
                self.host.platform().engine.short()
            ));
        }
        let recorded: Option<Vec<_>> = done.response.trace.as_ref().map(|t| t.as_slice().to_vec());
        // The author-signed manifest decides whether the run could go
        // without NaN canonicalisation; a receipt that did when it may not
        // fails replay (the executor's signature says so).
        let manifest: Option<Manifest> = toml::from_str(&pkg.manifest).ok();
        match errand_host::replay(
            &self.host,
            receipt,
            Some(done.request.body()),
            &pkg.component,
            input,
            recorded.as_deref(),
            manifest.as_ref(),
        ) {
            Ok(r) if r.matched() => ReplayOutcome::Matched,
            Ok(r) => ReplayOutcome::Mismatch(
                r.report
                    .first_failure()
                    .map(|c| format!("{}: {:?}", c.name, c.verdict))
                    .unwrap_or_else(|| "replay differs".into()),
            ),
            Err(e) => ReplayOutcome::Inconclusive(e.to_string()),
        }
    }

    fn write_evidence(&self, name: &str, ev: &Evidence) -> Option<String> {
        let dir = self.config.evidence_dir.as_ref()?;
        let path = dir.join(name);
        let bytes = signed::encode(ev).ok()?;
        crate::files::write_atomic(&path, &bytes).ok()?;
        Some(path.display().to_string())
    }

    fn keep_evidence(
        &self,
        spec: &StepSpec,
        input: &[u8],
        done: &crate::client::Invoked,
    ) -> Option<String> {
        let r = &done.response;
        let ev = Evidence {
            receipt: r.receipt.clone(),
            input: Blob::embed(input.to_vec()).ok(),
            output: Blob::embed(r.output.to_vec()).ok(),
            trace: r.trace.clone().map(TraceBlob::Events),
            component: None,
            request: Some(done.request.clone()),
        };
        self.write_evidence(
            &format!("{}-{}.evidence", spec.name, r.receipt.body().request_id),
            &ev,
        )
    }

    /// Keeps a receipt that replay contradicted, with everything needed to
    /// show it: a signed fraud proof.
    fn keep_fraud_proof(
        &self,
        peer: PeerId,
        input: &[u8],
        done: &crate::client::Invoked,
        why: &str,
    ) -> Option<String> {
        tracing::warn!(%peer, reason = why, "replay contradicts a signed receipt: keeping a fraud proof");
        let r = &done.response;
        let component = r.receipt.body().component;
        let ev = Evidence {
            receipt: r.receipt.clone(),
            input: Blob::embed(input.to_vec()).ok(),
            output: Blob::embed(r.output.to_vec()).ok(),
            trace: r.trace.clone().map(TraceBlob::Events),
            component: self
                .package_with_component(component, None)
                .and_then(|p| Blob::embed(p.component.to_vec()).ok()),
            request: Some(done.request.clone()),
        };
        self.write_evidence(
            &format!(
                "FRAUD-{}-{}.evidence",
                peer.short(),
                r.receipt.body().request_id
            ),
            &ev,
        )
    }
}

/// Runs a package's component locally, with a fixed nonce and seed: the
/// demo's ground truth and tests.
pub fn run_locally(
    host: &Host,
    pkg: &Package,
    input: &[u8],
    context: &InvocationContext,
) -> Option<Vec<u8>> {
    let id = RequestId([0; 16]);
    run_with(
        host,
        pkg,
        input,
        context,
        id,
        errand_core::receipt::local_seed(&id, &Digest::of(input)),
        None,
    )
}

/// Runs `ask` locally exactly as an executor must (its nonce, seed,
/// parameters, fuel and limits): the answer a canary must get.
pub fn run_ask_locally(host: &Host, pkg: &Package, ask: &Ask) -> Option<Vec<u8>> {
    run_with(
        host,
        pkg,
        &ask.input,
        &ask.context,
        ask.request_id,
        ask.seed,
        Some((ask.fuel, ask.limits)),
    )
}

fn run_with(
    host: &Host,
    pkg: &Package,
    input: &[u8],
    context: &InvocationContext,
    request_id: RequestId,
    seed: errand_core::request::Seed,
    asked: Option<(u64, Option<RunLimits>)>,
) -> Option<Vec<u8>> {
    let manifest: Manifest = toml::from_str(&pkg.manifest).ok()?;
    let prepared = host
        .prepare_with(
            &pkg.component,
            errand_host::NanMode::for_manifest(&manifest),
        )
        .ok()?;
    let mut limits = crate::packaging::manifest_limits(&manifest);
    if let Some((fuel, stated)) = asked {
        limits.fuel = fuel;
        if let Some(l) = stated {
            limits = errand_host::Limits::for_replay(fuel, &l, &limits);
        }
    }
    let exec = host
        .run(
            &prepared,
            &Invocation {
                input,
                request_id,
                seed,
                context: context.clone(),
                limits,
                keep_trace: false,
            },
        )
        .ok()?;
    exec.outcome.is_ok().then_some(exec.output)
}

/// The default state folder: `$ERRAND_STATE`, else
/// `$XDG_DATA_HOME/errand`, else `~/.local/share/errand`.
pub fn default_state_dir() -> Option<PathBuf> {
    crate::packaging::user_dir("ERRAND_STATE", "XDG_DATA_HOME", ".local/share")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_files_are_checked() {
        let ok = r#"
            name = "w"
            [[steps]]
            name = "a"
            intent = "x"
            input = { text = "hi" }
            [[steps]]
            name = "b"
            intent = "y"
            input = { from = "previous" }
            risk = "high"
        "#;
        let wf: WorkflowFile = toml::from_str(ok).unwrap();
        wf.check().unwrap();
        assert_eq!(wf.steps[0].risk, Risk::Medium);
        let bad = ok.replace("from = \"previous\"", "from = \"zzz\"");
        let wf: WorkflowFile = toml::from_str(&bad).unwrap();
        assert!(wf.check().unwrap_err().to_string().contains("zzz"));
        let bad = ok.replace("risk = \"high\"", "tiers = \"t9\"");
        let wf: WorkflowFile = toml::from_str(&bad).unwrap();
        assert!(wf.check().unwrap_err().to_string().contains("t9"));
    }

    #[test]
    fn a_parameter_over_its_bound_fails_the_file_instead_of_being_dropped() {
        let wf = format!(
            r#"
            name = "w"
            [[steps]]
            name = "a"
            intent = "x"
            input = {{ text = "hi" }}
            params = {{ title = "{}" }}
            "#,
            "t".repeat(2_000)
        );
        let wf: WorkflowFile = toml::from_str(&wf).unwrap();
        let e = wf.check().unwrap_err().to_string();
        assert!(e.contains("step `a`") && e.contains("title"), "{e}");
    }
}
