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
//!
//! ## Where each part lives
//!
//! | file | part |
//! |---|---|
//! | `model/mod.rs` | [`Params`], the [`World`] and its event loop |
//! | `model/peers.rs` | peers: the capability catalogue, what each peer hosts, its descriptors and publishing to registries |
//! | `model/requesters.rs` | requesters: workflows, discovery, candidate ordering, the delegation loop, feedback |
//! | `model/attacks.rs` | how executors answer, Sybil attacks, receipts and their binding to the request |
//! | `model/drift.rs` | capability drift: disappearing, degrading, new versions |
//! | `model/metrics.rs` | what a run measures ([`Metrics`]) |
//! | `model/queue.rs` | the calendar event queue |

mod attacks;
mod drift;
mod metrics;
mod peers;
mod queue;
mod requesters;

use std::sync::Arc;

use errand_core::UnixMillis;
use errand_core::descriptor::SignedDescriptor;
use errand_core::discovery::{Index, Ranking, merge};
use errand_core::trust::{Entropy, Event, Policy, Reputation, ReputationConfig, SplitMix, TierSet};
use errand_core::wire::Query;

pub use attacks::{Attack, Binding, Run};
pub use metrics::{Metrics, WorkflowRecord};
pub use peers::{intent, kind_name, query};

use peers::{Cap, IdMap, Peer, Words, peer_id, sim_limits};
use queue::Queue;
use requesters::Requester;

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

const US: u64 = 1_000;

fn us(t_ms: f64) -> u64 {
    (t_ms * US as f64).max(0.0) as u64
}

enum Ev {
    /// A peer's refresh timer: all its live capabilities, one message.
    Refresh {
        peer: u32,
        /// Ignored unless it is the peer's current `refresh_gen`.
        refresh_gen: u32,
    },
    /// A `Publish` message reaches a registry.
    Arrive {
        registry: u16,
        descs: Vec<Arc<SignedDescriptor>>,
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
    /// A decision's outcome reaches the requester. Boxed: it is the largest
    /// event, and every queued event (one refresh timer per peer) would
    /// otherwise take its size.
    Outcome {
        req: u32,
        op: u32,
        event: Box<Event>,
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
    /// Each kind's descriptor words, honest and attractive.
    words: Vec<[Words; 2]>,
    /// Providers per kind: (honest, sybil), for the analytic check.
    providers: Vec<(u32, u32)>,
    kinds: usize,
    started_workflows: usize,
    first_start: Option<u64>,
    metrics: Metrics,
    wall_epoch: UnixMillis,
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
                    // Hash keys from the seed, not the generator: hashing
                    // changes no answer, so it must draw nothing.
                    Index::keyed(
                        sim_limits(),
                        ranking,
                        seed.rotate_left(17) ^ (r as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    ),
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
                refresh_gen: 0,
                stopped: false,
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
            words: (0..kinds).map(Words::of_kind).collect(),
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
            // Spread first publications over one refresh interval.
            let t = (self.rng.unit() * refresh as f64) as u64;
            self.at(
                t,
                Ev::Refresh {
                    peer: i as u32,
                    refresh_gen: 0,
                },
            );
            for c in 0..self.peers[i].caps.len() {
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
            p.stopped = true;
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
            Ev::Refresh { peer, refresh_gen } => {
                // A stale timer (the peer republished since) or a peer with
                // nothing alive: the timer lapses; a change restarts it.
                if self.peers[peer as usize].refresh_gen == refresh_gen
                    && self.publish_alive(peer as usize)
                {
                    let t = self.now + us(f64::from(self.p.refresh_ms));
                    self.at(t, Ev::Refresh { peer, refresh_gen });
                }
            }
            Ev::Arrive { registry, descs } => {
                let now = self.wall(self.now);
                let index = &mut self.registries[registry as usize].1;
                for d in descs {
                    let _ = index.insert_verified(d, now);
                }
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
                }
                self.republish(p);
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
                // The descriptors as encoded (signatures included), and
                // the answer's framing.
                let bytes: u64 = list.iter().map(|d| d.encoded_len() as u64).sum::<u64>() + 32;
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
                self.observe(r, *event);
            }
        }
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
