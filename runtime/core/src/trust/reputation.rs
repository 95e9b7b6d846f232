//! Tier 1: each requester's own record of every peer's direct outcomes,
//! and the order in which candidates are tried.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::Entropy;
use crate::descriptor::Descriptor;
use crate::identity::PeerId;
use crate::time::UnixMillis;

/// What a requester saw a peer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Observation {
    /// A checked answer: in this attempt a canary or cross-check passed,
    /// or a replay matched the receipt.
    Success,
    /// A wrong answer (a failed canary or cross-check).
    WrongResult,
    /// No answer in time, or the connection failed.
    Timeout,
    /// A receipt that does not bind the invocation.
    InvalidReceipt,
    /// The peer refused or could not serve (not found, busy).
    Unavailable,
    /// Proven cheating: a replay contradicted its signed receipt.
    Fraud,
    /// An answer accepted without any check that ran in this attempt (tier
    /// 1 only, or every check was skipped): it counts
    /// [`ReputationConfig::unverified_weight`] of a success, so a peer cannot
    /// build reputation as fast on answers nobody checked.
    Unverified,
}

/// Reputation parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReputationConfig {
    /// Pseudo-successes every peer starts with.
    pub prior_success: f64,
    /// Pseudo-failures every peer starts with.
    pub prior_failure: f64,
    /// Evidence halves toward the prior over this many milliseconds.
    pub half_life_ms: u64,
    /// Weight of a wrong result or invalid receipt, in failures.
    pub wrong_weight: f64,
    /// Weight of a timeout, in failures.
    pub timeout_weight: f64,
    /// Weight of an unavailable answer, in failures.
    pub unavailable_weight: f64,
    /// Weight of an unverified answer ([`Observation::Unverified`]), in
    /// successes; a checked answer weighs one.
    pub unverified_weight: f64,
    /// Peers with fewer observations than this are newcomers.
    pub newcomer_until: u32,
}

impl Default for ReputationConfig {
    /// A newcomer starts at 1/3 (one success, two failures): low, not zero.
    /// A wrong result weighs four failures, so a few of them sink a peer;
    /// evidence halves every six hours, so old sins fade but slowly. An
    /// answer nobody checked earns a quarter of a checked one.
    fn default() -> ReputationConfig {
        ReputationConfig {
            prior_success: 1.0,
            prior_failure: 2.0,
            half_life_ms: 6 * 3_600_000,
            wrong_weight: 4.0,
            timeout_weight: 1.0,
            unavailable_weight: 0.5,
            unverified_weight: 0.25,
            newcomer_until: 3,
        }
    }
}

/// One peer's record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Successes, decayed.
    pub successes: f64,
    /// Weighted failures, decayed.
    pub failures: f64,
    /// When last updated.
    pub at: UnixMillis,
    /// Observations ever made.
    pub observations: u32,
    /// Proven fraud: never trusted again.
    pub banned: bool,
    /// Lies caught (wrong answers, receipts that do not answer the
    /// request), decayed toward zero with the same half-life. Unlike
    /// `failures` it counts nothing a requester or the network could cause
    /// (timeouts, refusals), so nobody can frame a peer into it cheaply.
    pub lies: f64,
}

/// [`PeerRecord`] as snapshot version 1 stored it (no `lies`).
#[derive(Deserialize)]
struct PeerRecordV1 {
    successes: f64,
    failures: f64,
    at: UnixMillis,
    observations: u32,
    banned: bool,
}

/// A requester's local reputation of peers (see the module docs).
///
/// The score is the mean of a Beta distribution over the peer's chance of
/// serving correctly: `successes / (successes + failures)`, both starting at
/// the prior and decaying back toward it. Opinions from other peers
/// (EigenTrust-style global trust) can be folded in with
/// [`Reputation::fold_global`], which blends them with the local score; the
/// local record is kept separate so it stays first-hand evidence.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reputation {
    config: ReputationConfig,
    peers: HashMap<PeerId, PeerRecord>,
    global: HashMap<PeerId, f64>,
    global_weight: f64,
}

/// A reputation snapshot that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt reputation snapshot: {0}")]
pub struct SnapshotError(pub String);

impl Reputation {
    /// An empty reputation.
    pub fn new(config: ReputationConfig) -> Reputation {
        Reputation {
            config,
            ..Reputation::default()
        }
    }

    /// The parameters.
    pub fn config(&self) -> &ReputationConfig {
        &self.config
    }

    fn decayed(&self, r: &PeerRecord, now: UnixMillis) -> (f64, f64) {
        let c = &self.config;
        let d = self.decay(r, now);
        (
            c.prior_success + (r.successes - c.prior_success) * d,
            c.prior_failure + (r.failures - c.prior_failure) * d,
        )
    }

    /// The peer's local score in `[0, 1]`; the prior for strangers, 0 once
    /// fraud is proven.
    pub fn local_score(&self, peer: &PeerId, now: UnixMillis) -> f64 {
        self.local_of(self.peers.get(peer), now)
    }

    fn local_of(&self, record: Option<&PeerRecord>, now: UnixMillis) -> f64 {
        let c = &self.config;
        match record {
            Some(r) if r.banned => 0.0,
            Some(r) => {
                let (s, f) = self.decayed(r, now);
                s / (s + f)
            }
            None => c.prior_success / (c.prior_success + c.prior_failure),
        }
    }

    /// The score used for selection: the local score, blended with folded-in
    /// global trust when there is any. Proven fraud is always 0.
    pub fn score(&self, peer: &PeerId, now: UnixMillis) -> f64 {
        self.score_of(peer, self.peers.get(peer), now)
    }

    /// [`Reputation::score`] given the peer's record, looked up once.
    fn score_of(&self, peer: &PeerId, record: Option<&PeerRecord>, now: UnixMillis) -> f64 {
        if record.is_some_and(|r| r.banned) {
            return 0.0;
        }
        let local = self.local_of(record, now);
        if self.global.is_empty() {
            return local;
        }
        match self.global.get(peer) {
            Some(g) => (1.0 - self.global_weight) * local + self.global_weight * g.clamp(0.0, 1.0),
            None => local,
        }
    }

    /// Whether fraud by the peer has been proven.
    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|r| r.banned)
    }

    /// Whether the peer has too few observations to judge.
    pub fn is_newcomer(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_none_or(|r| r.observations < self.config.newcomer_until)
    }

    /// The peer's record, if any.
    pub fn record(&self, peer: &PeerId) -> Option<&PeerRecord> {
        self.peers.get(peer)
    }

    /// Whether this requester caught `peer` lying (a wrong answer, a
    /// receipt that does not answer the request, fraud) within about one
    /// half-life of `now`. Such a peer is not explored ahead of others and
    /// is not drawn as a cross-check witness. Timeouts and refusals do not
    /// count: anyone can cause those to an honest peer.
    pub fn caught_lying(&self, peer: &PeerId, now: UnixMillis) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|r| r.banned || self.lies_at(r, now) >= 0.5)
    }

    /// How much of `r`'s evidence is left at `now`: halves every half-life.
    fn decay(&self, r: &PeerRecord, now: UnixMillis) -> f64 {
        0.5f64.powf(now.since(r.at) as f64 / self.config.half_life_ms.max(1) as f64)
    }

    /// `r`'s caught lies, decayed to `now`.
    fn lies_at(&self, r: &PeerRecord, now: UnixMillis) -> f64 {
        r.lies * self.decay(r, now)
    }

    /// Records a direct outcome.
    pub fn observe(&mut self, peer: PeerId, obs: Observation, now: UnixMillis) {
        let c = self.config;
        let (s, f) = match self.peers.get(&peer) {
            Some(r) => self.decayed(r, now),
            None => (c.prior_success, c.prior_failure),
        };
        let lies = self.peers.get(&peer).map_or(0.0, |r| self.lies_at(r, now));
        let r = self.peers.entry(peer).or_insert(PeerRecord {
            successes: s,
            failures: f,
            at: now,
            observations: 0,
            banned: false,
            lies: 0.0,
        });
        r.successes = s;
        r.failures = f;
        r.lies = lies;
        r.at = r.at.max(now);
        r.observations = r.observations.saturating_add(1);
        match obs {
            Observation::Success => r.successes += 1.0,
            Observation::Unverified => r.successes += c.unverified_weight,
            Observation::WrongResult | Observation::InvalidReceipt => {
                r.failures += c.wrong_weight;
                r.lies += 1.0;
            }
            Observation::Timeout => r.failures += c.timeout_weight,
            Observation::Unavailable => r.failures += c.unavailable_weight,
            Observation::Fraud => r.banned = true,
        }
    }

    /// Folds in global trust values in `[0, 1]` (for example EigenTrust's
    /// normalised scores computed from trusted peers' opinions), weighted
    /// `weight` against local evidence.
    pub fn fold_global(&mut self, global: HashMap<PeerId, f64>, weight: f64) {
        self.global = global;
        self.global_weight = weight.clamp(0.0, 1.0);
    }

    /// Normalised local trust values (EigenTrust's `c_ij`): each peer's
    /// satisfactory-minus-unsatisfactory evidence above the prior, clipped at
    /// zero and summing to one. What a requester would share as its opinion.
    pub fn local_trust(&self, now: UnixMillis) -> Vec<(PeerId, f64)> {
        let mut v: Vec<(PeerId, f64)> = self
            .peers
            .iter()
            .filter(|(_, r)| !r.banned)
            .map(|(p, r)| {
                let (s, f) = self.decayed(r, now);
                let sat = (s - self.config.prior_success) - (f - self.config.prior_failure);
                (*p, sat.max(0.0))
            })
            .collect();
        let total: f64 = v.iter().map(|(_, x)| x).sum();
        if total > 0.0 {
            for (_, x) in &mut v {
                *x /= total;
            }
        }
        v.retain(|(_, x)| *x > 0.0);
        v.sort_by_key(|x| x.0);
        v
    }

    /// Peers on record.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is on record.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// A snapshot for durable storage (postcard; the config is not stored).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v: Vec<(PeerId, PeerRecord)> = self.peers.iter().map(|(p, r)| (*p, *r)).collect();
        v.sort_by_key(|x| x.0);
        postcard::to_allocvec(&(2u8, v)).unwrap_or_default()
    }

    /// Restores a snapshot made by [`Reputation::to_bytes`].
    pub fn from_bytes(config: ReputationConfig, bytes: &[u8]) -> Result<Reputation, SnapshotError> {
        let bad = |e: postcard::Error| SnapshotError(e.to_string());
        let (version, rest) = postcard::take_from_bytes::<u8>(bytes).map_err(bad)?;
        let peers: HashMap<PeerId, PeerRecord> = match version {
            // Before `lies` was recorded: nobody starts out caught.
            1 => {
                let v: Vec<(PeerId, PeerRecordV1)> = postcard::from_bytes(rest).map_err(bad)?;
                v.into_iter()
                    .map(|(p, r)| {
                        let r = PeerRecord {
                            successes: r.successes,
                            failures: r.failures,
                            at: r.at,
                            observations: r.observations,
                            banned: r.banned,
                            lies: 0.0,
                        };
                        (p, r)
                    })
                    .collect()
            }
            2 => {
                let v: Vec<(PeerId, PeerRecord)> = postcard::from_bytes(rest).map_err(bad)?;
                v.into_iter().collect()
            }
            _ => return Err(SnapshotError(format!("unknown version {version}"))),
        };
        Ok(Reputation {
            config,
            peers,
            ..Reputation::default()
        })
    }
}

/// What selection needs to know about a candidate.
#[derive(Debug, Clone, Copy)]
pub struct CandidateView<'a> {
    /// The executor.
    pub peer: PeerId,
    /// Its descriptor.
    pub descriptor: &'a Descriptor,
}

/// How good a registry rank is as a match: the registry's best answer
/// counts fully, later ones less.
pub fn match_weight(rank: usize) -> f64 {
    1.0 / (1.0 + 0.25 * rank as f64)
}

/// Orders candidates for trying (indexes into `cands`), best first, and
/// drops peers proven to cheat. A peer with a track record is ordered by
/// reputation × match × declared QoS once its record beats the prior
/// (before that, its claims have earned nothing): an attacker who has read this code would declare the best
/// QoS and stuff its descriptor to top the registry's ranking, so a
/// newcomer is scored as if its match and QoS were the worst on offer, and
/// newcomers are shuffled among themselves. Then, with probability
/// `exploration`, one newcomer chosen uniformly is moved to the front. The
/// chance of trying *a* newcomer first is `exploration` however many
/// newcomers there are, and which one is tried does not depend on what
/// they claim, so an attacker gains nothing by minting identities or by
/// lying about them.
pub fn order_candidates(
    cands: &[CandidateView<'_>],
    rep: &Reputation,
    now: UnixMillis,
    rng: &mut dyn Entropy,
    exploration: f64,
) -> Vec<usize> {
    // The least a claim can earn: the last registry rank, the worst QoS.
    let unearned = match_weight(cands.len().saturating_sub(1)) * 0.5;
    let prior = rep.config.prior_success / (rep.config.prior_success + rep.config.prior_failure);
    // (index, score, newcomer, tie-break), one reputation lookup per
    // candidate. Ties (newcomers alike) break at random.
    let mut scored: Vec<(usize, f64, bool, u64)> = Vec::with_capacity(cands.len());
    for (i, c) in cands.iter().enumerate() {
        let record = rep.record(&c.peer);
        if record.is_some_and(|r| r.banned) {
            continue;
        }
        let newcomer = record.is_none_or(|r| r.observations < rep.config.newcomer_until);
        let score = rep.score_of(&c.peer, record, now);
        // Claims count only for a peer whose record beats the prior: three
        // refusals end a Sybil's newcomer status but earn its claims
        // nothing.
        let earned = !newcomer && score > prior;
        let claims = if earned {
            let qos = crate::discovery::qos_factor(c.descriptor) as f64;
            match_weight(i) * (0.5 + 0.5 * qos)
        } else {
            unearned
        };
        let tie = if earned { 0 } else { rng.next_u64() };
        scored.push((i, score * claims, newcomer, tie));
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.3.cmp(&b.3)).then(a.0.cmp(&b.0)));
    // Exploration tries a newcomer with nothing against it yet: one that
    // already failed a check is not explored again (it still comes up in
    // score order).
    let newcomers: Vec<usize> = scored
        .iter()
        .filter(|s| s.2)
        .filter(|s| !rep.caught_lying(&cands[s.0].peer, now))
        .map(|s| s.0)
        .collect();
    let mut order: Vec<usize> = scored.into_iter().map(|(i, ..)| i).collect();
    if !newcomers.is_empty() && rng.unit() < exploration {
        let pick = newcomers[rng.below(newcomers.len())];
        order.retain(|i| *i != pick);
        order.insert(0, pick);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use crate::trust::SplitMix;

    fn peer(n: u8) -> PeerId {
        testing::key(n).peer_id()
    }

    #[test]
    fn newcomers_start_low_but_not_zero_and_fraud_is_final() {
        let mut r = Reputation::new(ReputationConfig::default());
        let t = UnixMillis(1_000);
        let s0 = r.score(&peer(1), t);
        assert!(s0 > 0.2 && s0 < 0.5, "{s0}");
        for _ in 0..10 {
            r.observe(peer(1), Observation::Success, t);
        }
        assert!(r.score(&peer(1), t) > 0.8);
        r.observe(peer(1), Observation::Fraud, t);
        assert_eq!(r.score(&peer(1), t), 0.0);
        r.observe(peer(1), Observation::Success, t);
        assert_eq!(r.score(&peer(1), t), 0.0, "fraud is never forgiven");
    }

    #[test]
    fn reputation_decays_toward_the_prior() {
        let c = ReputationConfig::default();
        let mut r = Reputation::new(c);
        let t = UnixMillis(0);
        for _ in 0..5 {
            r.observe(peer(2), Observation::WrongResult, t);
        }
        let low = r.score(&peer(2), t);
        let later = r.score(&peer(2), t.plus_ms(c.half_life_ms * 4));
        let prior = r.score(&peer(3), t);
        assert!(low < later && later < prior + 1e-9, "{low} {later} {prior}");
        // Five wrong results are 20 failures above the prior; after four
        // half-lives 20/16 remain.
        let expected = c.prior_success / (c.prior_success + c.prior_failure + 20.0 / 16.0);
        assert!((later - expected).abs() < 1e-9, "{later} vs {expected}");
    }

    #[test]
    fn snapshot_round_trips() {
        let mut r = Reputation::new(ReputationConfig::default());
        r.observe(peer(1), Observation::Success, UnixMillis(5));
        r.observe(peer(2), Observation::Fraud, UnixMillis(6));
        let back = Reputation::from_bytes(ReputationConfig::default(), &r.to_bytes()).unwrap();
        assert_eq!(back, r);
        assert!(Reputation::from_bytes(ReputationConfig::default(), b"junk").is_err());
    }

    #[test]
    fn local_trust_is_normalised_and_global_trust_folds_in() {
        let mut r = Reputation::new(ReputationConfig::default());
        let t = UnixMillis(0);
        for _ in 0..3 {
            r.observe(peer(1), Observation::Success, t);
        }
        r.observe(peer(2), Observation::Success, t);
        r.observe(peer(3), Observation::WrongResult, t);
        let lt = r.local_trust(t);
        assert!((lt.iter().map(|x| x.1).sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(lt.iter().all(|(p, _)| *p != peer(3)));
        let before = r.score(&peer(4), t);
        r.fold_global([(peer(4), 1.0)].into_iter().collect(), 0.5);
        assert!(r.score(&peer(4), t) > before);
    }

    #[test]
    fn exploration_is_bounded_however_many_newcomers_there_are() {
        let d = testing::descriptor(&testing::key(1));
        let mut rep = Reputation::new(ReputationConfig::default());
        let t = UnixMillis(0);
        let veteran = peer(1);
        for _ in 0..20 {
            rep.observe(veteran, Observation::Success, t);
        }
        for sybils in [1usize, 10, 100] {
            let peers: Vec<PeerId> = std::iter::once(veteran)
                .chain((0..sybils).map(|i| testing::key(100 + i as u8).peer_id()))
                .collect();
            let cands: Vec<CandidateView<'_>> = peers
                .iter()
                .map(|p| CandidateView {
                    peer: *p,
                    descriptor: &d,
                })
                .collect();
            let mut rng = SplitMix(7);
            let trials = 4000;
            let newcomer_first = (0..trials)
                .filter(|_| order_candidates(&cands, &rep, t, &mut rng, 0.1)[0] != 0)
                .count() as f64
                / trials as f64;
            assert!(
                (newcomer_first - 0.1).abs() < 0.03,
                "{sybils} sybils: {newcomer_first}"
            );
        }
    }

    /// An informed Sybil declares the best QoS and sits at the registry's
    /// top rank; among newcomers that must buy it nothing. On the old code
    /// the attractive newcomer was tried first every time exploration did
    /// not fire.
    #[test]
    fn newcomer_claims_do_not_order_candidates() {
        let honest = testing::descriptor(&testing::key(1));
        let mut sybil = honest.clone();
        sybil.qos.latency_ms = 1;
        sybil.qos.cost = 0;
        let rep = Reputation::new(ReputationConfig::default());
        let peers: Vec<PeerId> = (0..4).map(|i| peer(40 + i)).collect();
        // The Sybil is candidate 0: the registry's best match.
        let cands: Vec<CandidateView<'_>> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| CandidateView {
                peer: *p,
                descriptor: if i == 0 { &sybil } else { &honest },
            })
            .collect();
        let mut rng = SplitMix(11);
        let trials = 4000;
        let sybil_first = (0..trials)
            .filter(|_| order_candidates(&cands, &rep, UnixMillis(0), &mut rng, 0.0)[0] == 0)
            .count() as f64
            / trials as f64;
        assert!((sybil_first - 0.25).abs() < 0.03, "{sybil_first}");
    }

    /// Regression (review): any failure, a timeout or a refusal the
    /// requester itself could cause, excluded an honest peer from
    /// witnessing and exploration for days. Only caught lies count, and
    /// they decay.
    #[test]
    fn refusals_and_timeouts_never_count_as_caught_lying() {
        let mut rep = Reputation::new(ReputationConfig::default());
        let t = UnixMillis(0);
        let (busy, liar) = (peer(60), peer(61));
        for _ in 0..5 {
            rep.observe(busy, Observation::Unavailable, t);
            rep.observe(busy, Observation::Timeout, t);
        }
        assert!(!rep.caught_lying(&busy, t));
        rep.observe(liar, Observation::WrongResult, t);
        assert!(rep.caught_lying(&liar, t));
        let half_life = ReputationConfig::default().half_life_ms;
        assert!(rep.caught_lying(&liar, UnixMillis(half_life / 2)));
        assert!(!rep.caught_lying(&liar, UnixMillis(2 * half_life)));
        rep.observe(liar, Observation::Fraud, t);
        assert!(rep.caught_lying(&liar, UnixMillis(100 * half_life)));
    }

    /// Regression (review): newcomer status ended after three
    /// observations, failures included, and then a peer's claims counted
    /// in full: a Sybil with the best QoS that refused three times outranked
    /// every honest newcomer.
    #[test]
    fn a_sybil_that_refused_three_times_does_not_outrank_newcomers() {
        let honest = testing::descriptor(&testing::key(1));
        let mut sybil = honest.clone();
        sybil.qos.latency_ms = 1;
        sybil.qos.cost = 0;
        let mut rep = Reputation::new(ReputationConfig::default());
        let t = UnixMillis(0);
        let peers: Vec<PeerId> = (0..4).map(|i| peer(70 + i)).collect();
        for _ in 0..3 {
            rep.observe(peers[0], Observation::Unavailable, t);
        }
        let cands: Vec<CandidateView<'_>> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| CandidateView {
                peer: *p,
                descriptor: if i == 0 { &sybil } else { &honest },
            })
            .collect();
        let mut rng = SplitMix(5);
        for _ in 0..500 {
            assert_ne!(order_candidates(&cands, &rep, t, &mut rng, 0.0)[0], 0);
        }
    }

    /// Snapshots written before `lies` existed still load.
    #[test]
    fn a_version_1_snapshot_still_loads() {
        #[derive(Serialize)]
        struct V1 {
            successes: f64,
            failures: f64,
            at: UnixMillis,
            observations: u32,
            banned: bool,
        }
        let v1 = V1 {
            successes: 4.0,
            failures: 2.0,
            at: UnixMillis(9),
            observations: 3,
            banned: false,
        };
        let bytes = postcard::to_allocvec(&(1u8, vec![(peer(80), v1)])).unwrap();
        let rep = Reputation::from_bytes(ReputationConfig::default(), &bytes).unwrap();
        let r = rep.record(&peer(80)).unwrap();
        assert_eq!((r.successes, r.observations, r.lies), (4.0, 3, 0.0));
        let again = Reputation::from_bytes(ReputationConfig::default(), &rep.to_bytes()).unwrap();
        assert_eq!(again.record(&peer(80)), Some(r));
    }

    /// A newcomer that already failed a check is not explored again ahead
    /// of the others.
    #[test]
    fn exploration_skips_newcomers_that_already_failed() {
        let d = testing::descriptor(&testing::key(1));
        let mut rep = Reputation::new(ReputationConfig::default());
        let t = UnixMillis(0);
        let (liar, fresh) = (peer(50), peer(51));
        rep.observe(liar, Observation::WrongResult, t);
        let cands = [
            CandidateView {
                peer: liar,
                descriptor: &d,
            },
            CandidateView {
                peer: fresh,
                descriptor: &d,
            },
        ];
        let mut rng = SplitMix(3);
        for _ in 0..200 {
            assert_eq!(order_candidates(&cands, &rep, t, &mut rng, 1.0), vec![1, 0]);
        }
    }

    #[test]
    fn banned_peers_are_never_candidates() {
        let d = testing::descriptor(&testing::key(1));
        let mut rep = Reputation::new(ReputationConfig::default());
        rep.observe(peer(2), Observation::Fraud, UnixMillis(0));
        let cands = [
            CandidateView {
                peer: peer(2),
                descriptor: &d,
            },
            CandidateView {
                peer: peer(3),
                descriptor: &d,
            },
        ];
        let order = order_candidates(&cands, &rep, UnixMillis(0), &mut SplitMix(1), 1.0);
        assert_eq!(order, vec![1]);
    }
}
