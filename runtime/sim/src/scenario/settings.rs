//! The settings `--set` accepts, and the policies a sweep compares.

use super::*;

/// Settings `--set` accepts, with what they mean.
pub const SETTINGS: &[(&str, &str)] = &[
    ("peers", "peers (a list in size-sweep)"),
    ("alpha", "Sybil fraction α, 0..=1 (a list in sybil-sweep)"),
    (
        "attack",
        "wrong-output, forge-receipt, silent, canary-aware, build-then-defect, param-swap, mixed",
    ),
    (
        "detector_accuracy",
        "accuracy A of a canary-aware/param-swap Sybil's canary detector on a balanced sample, 0..=1 \
         (default 0.545, the measured detector): it cheats on real work with prob A, on canaries with prob 1-A",
    ),
    (
        "canary_detect",
        "override: chance a canary is spotted, real work never taken for one (unset: from detector_accuracy)",
    ),
    (
        "replay_fail",
        "chance a replay fails on the requester's side (default 0.01): inconclusive, never fraud, 0..=1",
    ),
    (
        "defect_after",
        "honest answers before a build-then-defect Sybil cheats",
    ),
    (
        "remint_ms",
        "Sybils take a fresh identity this often (0: never)",
    ),
    (
        "sybil_attractive",
        "Sybils stuff descriptors and claim the best QoS (true/false)",
    ),
    ("kinds", "capability kinds in the catalogue"),
    ("caps_per_peer", "capabilities per honest peer"),
    ("registries", "registries (0: one per 10,000 peers)"),
    ("regions", "network regions"),
    ("intra_ms", "one-way latency within a region"),
    ("inter_ms", "one-way latency between regions"),
    (
        "region_ms",
        "one-way latency per region pair, regions² values, row-major",
    ),
    ("jitter", "relative link jitter, 0..=1"),
    ("processing_ms", "mean processing time of a capability"),
    ("registry_ms", "registry service time per query"),
    ("ttl_ms", "descriptor TTL (a list in ttl-sweep)"),
    ("refresh_ms", "refresh interval"),
    (
        "refresh_ratio",
        "refresh interval as a fraction of the TTL (ttl-sweep)",
    ),
    (
        "drift",
        "capability changes per capability per second (a list in drift-sweep)",
    ),
    ("requesters", "requesters"),
    ("workflows", "workflows per run"),
    ("steps", "steps per workflow, 1..=8"),
    ("think_ms", "mean pause between a requester's workflows"),
    (
        "policies",
        "policies to compare: none, t1, t2, t3, risk, none-random",
    ),
    ("replay", "replay probability of the T1+T2+T3 policy, 0..=1"),
    ("fallback_budget", "fallbacks per step, per discovery round"),
    (
        "widen",
        "wider discovery rounds after a round with no one trustworthy (0 turns widening off)",
    ),
    ("exploration", "chance to try a newcomer first, 0..=1"),
    (
        "feedback",
        "chance a wrong answer accepted on reputation is noticed later, 0..=1",
    ),
    ("timeout_ms", "how long a requester waits for an executor"),
    (
        "public_fraction",
        "fraction of capabilities whose component is public, 0..=1",
    ),
    ("candidates", "candidates per query, 1..=100"),
    (
        "ranking",
        "registry ranking: sampled (default) or relevance",
    ),
    ("warmup_ms", "publishing time before the first workflow"),
];

/// A policy to compare: its label, tiers and how the untiered pick.
#[derive(Debug, Clone)]
pub(super) struct Choice {
    pub(super) label: &'static str,
    pub(super) policy: Policy,
    pub(super) selection: Selection,
}

pub(super) fn choice(name: &str, replay: f64) -> Option<Choice> {
    let (label, policy, selection) = match name {
        "none" => ("none", Policy::Fixed(TierSet::NONE), Selection::Best),
        "none-random" => (
            "none (random pick)",
            Policy::Fixed(TierSet::NONE),
            Selection::Random,
        ),
        "t1" => ("T1", Policy::Fixed(TierSet::T1), Selection::Best),
        "t2" => ("T1+T2", Policy::Fixed(TierSet::T2), Selection::Best),
        "t3" => (
            "T1+T2+T3",
            Policy::Fixed(TierSet::t3(replay)),
            Selection::Best,
        ),
        "risk" => (
            "risk-tiered",
            Policy::Risk(RiskPolicy::default()),
            Selection::Best,
        ),
        _ => return None,
    };
    Some(Choice {
        label,
        policy,
        selection,
    })
}

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) base: Params,
    pub(super) alphas: Vec<f64>,
    pub(super) sizes: Vec<usize>,
    pub(super) ttls: Vec<u32>,
    pub(super) drifts: Vec<f64>,
    pub(super) policies: Vec<String>,
    pub(super) replay: f64,
    pub(super) refresh_ratio: f64,
    /// Keys the user set, which scenario-derived values must not override.
    pub(super) explicit: HashSet<String>,
}

pub(super) fn bad(key: &str, value: &str, expected: &str) -> SimError {
    SimError::BadValue {
        key: key.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

pub(super) fn list<T: std::str::FromStr>(
    key: &str,
    v: &str,
    expected: &str,
) -> Result<Vec<T>, SimError> {
    let items: Result<Vec<T>, _> = v.split(',').map(|s| s.trim().parse::<T>()).collect();
    match items {
        Ok(items) if !items.is_empty() => Ok(items),
        _ => Err(bad(key, v, expected)),
    }
}

pub(super) fn one<T: std::str::FromStr>(key: &str, v: &str, expected: &str) -> Result<T, SimError> {
    v.trim().parse::<T>().map_err(|_| bad(key, v, expected))
}

pub(super) fn prob(key: &str, v: &str) -> Result<f64, SimError> {
    let x: f64 = one(key, v, "a probability between 0 and 1")?;
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(bad(key, v, "a probability between 0 and 1"))
    }
}

pub(super) fn positive<T: std::str::FromStr + PartialOrd + Default>(
    key: &str,
    v: &str,
    what: &str,
) -> Result<T, SimError> {
    let x: T = one(key, v, what)?;
    if x > T::default() {
        Ok(x)
    } else {
        Err(bad(key, v, what))
    }
}

impl Settings {
    pub(super) fn new(base: Params) -> Settings {
        Settings {
            base,
            alphas: vec![0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5],
            sizes: vec![20, 50, 100, 150, 200, 1_000, 10_000, 100_000, 1_000_000],
            ttls: vec![
                2_000, 4_000, 6_000, 8_000, 10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 90_000,
                120_000,
            ],
            drifts: vec![0.0, 0.005, 0.01, 0.02, 0.05, 0.1],
            policies: ["none", "t1", "t2", "t3", "risk"]
                .map(String::from)
                .to_vec(),
            replay: 1.0,
            refresh_ratio: 1.0 / 3.0,
            explicit: HashSet::new(),
        }
    }

    pub(super) fn apply(&mut self, sets: &[(String, String)]) -> Result<(), SimError> {
        for (k, v) in sets {
            self.set(k, v)?;
            self.explicit.insert(k.clone());
        }
        let p = &self.base;
        if !p.region_ms.is_empty() && p.region_ms.len() != p.regions * p.regions {
            return Err(bad(
                "region_ms",
                &format!("{} values", p.region_ms.len()),
                &format!("regions² = {} values", p.regions * p.regions),
            ));
        }
        Ok(())
    }

    pub(super) fn set(&mut self, k: &str, v: &str) -> Result<(), SimError> {
        let p = &mut self.base;
        const COUNT: &str = "a whole number";
        const POS: &str = "a number above 0";
        match k {
            "peers" => {
                self.sizes = list(
                    k,
                    v,
                    "a peer count of at least 2, or a comma-separated list of them",
                )?;
                if self.sizes.iter().any(|n| *n < 2 || *n > 10_000_000) {
                    return Err(bad(
                        k,
                        v,
                        "a peer count from 2 to 10,000,000, or a comma-separated list of them",
                    ));
                }
                p.peers = self.sizes[0];
            }
            "alpha" => {
                self.alphas = list(
                    k,
                    v,
                    "a fraction between 0 and 1, or a comma-separated list of them",
                )?;
                if self.alphas.iter().any(|a| !(0.0..=1.0).contains(a)) {
                    return Err(bad(
                        k,
                        v,
                        "a fraction between 0 and 1, or a comma-separated list of them",
                    ));
                }
                p.sybil_fraction = self.alphas[0];
            }
            "attack" => p.attack = Attack::parse(v).ok_or_else(|| {
                bad(
                    k,
                    v,
                    "wrong-output, forge-receipt, silent, canary-aware, build-then-defect, param-swap or mixed",
                )
            })?,
            "detector_accuracy" => p.detector_accuracy = prob(k, v)?,
            "canary_detect" => p.canary_detect = Some(prob(k, v)?),
            "replay_fail" => p.replay_fail = prob(k, v)?,
            "defect_after" => p.defect_after = one(k, v, COUNT)?,
            "remint_ms" => p.remint_ms = one(k, v, COUNT)?,
            "sybil_attractive" => p.sybil_attractive = one(k, v, "true or false")?,
            "kinds" => {
                p.kinds = one(k, v, COUNT)?;
                if !(1..=32).contains(&p.kinds) {
                    return Err(bad(k, v, "between 1 and 32"));
                }
            }
            "caps_per_peer" => p.caps_per_peer = positive(k, v, "at least 1")?,
            "registries" => p.registries = one(k, v, COUNT)?,
            "regions" => {
                p.regions = one(k, v, COUNT)?;
                if !(1..=64).contains(&p.regions) {
                    return Err(bad(k, v, "between 1 and 64"));
                }
            }
            "intra_ms" => p.intra_ms = positive(k, v, POS)?,
            "inter_ms" => p.inter_ms = positive(k, v, POS)?,
            "region_ms" => {
                p.region_ms = list(k, v, "a comma-separated list of latencies")?;
                if p.region_ms.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                    return Err(bad(k, v, "latencies of 0 or more"));
                }
            }
            "jitter" => p.jitter = prob(k, v)?,
            "processing_ms" => p.processing_ms = positive(k, v, POS)?,
            "registry_ms" => {
                p.registry_ms = one(k, v, "a number")?;
                if !(p.registry_ms.is_finite() && p.registry_ms >= 0.0) {
                    return Err(bad(k, v, "0 or more"));
                }
            }
            "ttl_ms" => {
                self.ttls = list(
                    k,
                    v,
                    "a TTL in milliseconds, or a comma-separated list of them",
                )?;
                if self.ttls.contains(&0) {
                    return Err(bad(
                        k,
                        v,
                        "a TTL above 0 ms, or a comma-separated list of them",
                    ));
                }
                p.ttl_ms = self.ttls[0];
            }
            "refresh_ms" => p.refresh_ms = positive(k, v, POS)?,
            "refresh_ratio" => {
                self.refresh_ratio = positive(k, v, POS)?;
            }
            "drift" => {
                self.drifts = list(
                    k,
                    v,
                    "a rate per capability per second, or a comma-separated list of them",
                )?;
                if self.drifts.iter().any(|d| !(d.is_finite() && *d >= 0.0)) {
                    return Err(bad(
                        k,
                        v,
                        "a rate of 0 or more, or a comma-separated list of them",
                    ));
                }
                p.drift_rate = self.drifts[0];
            }
            "requesters" => p.requesters = positive(k, v, "at least 1")?,
            "workflows" => p.workflows = positive(k, v, "at least 1")?,
            "steps" => {
                p.steps = one(k, v, COUNT)?;
                if !(1..=8).contains(&p.steps) {
                    return Err(bad(k, v, "between 1 and 8"));
                }
            }
            "think_ms" => p.think_ms = positive(k, v, POS)?,
            "policies" => {
                let names: Vec<String> = v
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect();
                if names.is_empty() || names.iter().any(|n| choice(n, 1.0).is_none()) {
                    return Err(bad(k, v, "a list of none, t1, t2, t3, risk, none-random"));
                }
                self.policies = names;
            }
            "replay" => self.replay = prob(k, v)?,
            "fallback_budget" => p.fallback_budget = one(k, v, COUNT)?,
            "widen" => p.widen = one(k, v, "a count from 0 to 255")?,
            "exploration" => p.exploration = prob(k, v)?,
            "feedback" => p.feedback = prob(k, v)?,
            "timeout_ms" => p.timeout_ms = positive(k, v, "at least 1")?,
            "public_fraction" => p.public_fraction = prob(k, v)?,
            "candidates" => {
                p.candidates = one(k, v, COUNT)?;
                if !(1..=100).contains(&p.candidates) {
                    return Err(bad(k, v, "between 1 and 100"));
                }
            }
            "warmup_ms" => p.warmup_ms = one(k, v, COUNT)?,
            "ranking" => {
                p.ranking = match v {
                    "sampled" => RegistryRanking::Sampled,
                    "relevance" => RegistryRanking::Relevance,
                    _ => return Err(bad(k, v, "sampled or relevance")),
                }
            }
            _ => {
                return Err(SimError::UnknownSetting {
                    key: k.to_owned(),
                    known: SETTINGS
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        Ok(())
    }

    pub(super) fn choices(&self) -> Vec<Choice> {
        self.policies
            .iter()
            .filter_map(|n| choice(n, self.replay))
            .collect()
    }

    pub(super) fn is_set(&self, key: &str) -> bool {
        self.explicit.contains(key)
    }
}

/// Parses `key=value` arguments.
pub fn parse_sets(args: &[String]) -> Result<Vec<(String, String)>, SimError> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(SimError::MalformedSet(a.clone())),
        })
        .collect()
}
