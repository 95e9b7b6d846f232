//! Which tiers a step gets: risk levels, tier sets and policies.

use serde::{Deserialize, Serialize};

/// How much is at stake in a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Read-only, easily redone.
    Low,
    /// Wrong output costs something.
    Medium,
    /// Side effects, or wrong output is costly.
    High,
}

/// Which checks a step gets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TierSet {
    /// Tier 1: reputation-ordered selection with fallback.
    pub reputation: bool,
    /// Tier 2: a canary before the real request.
    pub canary: bool,
    /// Tier 3: receipts must bind the invocation.
    pub evidence: bool,
    /// Tier 3: probability of also replaying the run (0 to 1).
    pub replay: f64,
}

impl TierSet {
    /// No checks: the registry's first answer, taken on trust.
    pub const NONE: TierSet = TierSet {
        reputation: false,
        canary: false,
        evidence: false,
        replay: 0.0,
    };
    /// Tier 1.
    pub const T1: TierSet = TierSet {
        reputation: true,
        canary: false,
        evidence: false,
        replay: 0.0,
    };
    /// Tiers 1 and 2.
    pub const T2: TierSet = TierSet {
        reputation: true,
        canary: true,
        evidence: false,
        replay: 0.0,
    };

    /// Tiers 1, 2 and 3, replaying with probability `replay`.
    pub const fn t3(replay: f64) -> TierSet {
        TierSet {
            reputation: true,
            canary: true,
            evidence: true,
            replay,
        }
    }

    /// A short label: `none`, `T1`, `T1+T2`, `T1+T2+T3(no replay)`,
    /// `T1+T2+T3(replay 25%)`.
    pub fn label(&self) -> String {
        if !self.reputation && !self.canary && !self.evidence {
            return "none".into();
        }
        let mut v = Vec::new();
        if self.reputation {
            v.push("T1".to_owned());
        }
        if self.canary {
            v.push("T2".to_owned());
        }
        if self.evidence {
            v.push(if self.replay > 0.0 {
                format!("T3(replay {:.0}%)", self.replay * 100.0)
            } else {
                "T3(no replay)".to_owned()
            });
        }
        v.join("+")
    }
}

/// Maps risk to tiers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskPolicy {
    /// For low-risk steps.
    pub low: TierSet,
    /// For medium-risk steps.
    pub medium: TierSet,
    /// For high-risk steps.
    pub high: TierSet,
}

impl Default for RiskPolicy {
    /// low → T1; medium → T1+T2 with receipts bound to the signed request
    /// (no replay: the check is a signature and a field comparison, so a
    /// forged or param-swapped receipt is never accepted where it costs
    /// nothing to refuse it); high → T1+T2+T3 with replay always.
    fn default() -> RiskPolicy {
        RiskPolicy {
            low: TierSet::T1,
            medium: TierSet::t3(0.0),
            high: TierSet::t3(1.0),
        }
    }
}

impl RiskPolicy {
    /// The tiers for `risk`.
    pub fn tiers(&self, risk: Risk) -> TierSet {
        match risk {
            Risk::Low => self.low,
            Risk::Medium => self.medium,
            Risk::High => self.high,
        }
    }
}

/// A workflow-wide policy: a fixed tier set for every step, or by risk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Policy {
    /// The same tiers for every step.
    Fixed(TierSet),
    /// Tiers by each step's risk.
    Risk(RiskPolicy),
}

impl Policy {
    /// The tiers for a step of `risk`, unless the step overrides them.
    pub fn tiers(&self, risk: Risk, step_override: Option<TierSet>) -> TierSet {
        if let Some(t) = step_override {
            return t;
        }
        match self {
            Policy::Fixed(t) => *t,
            Policy::Risk(p) => p.tiers(risk),
        }
    }

    /// Parses `none`, `t1`, `t2`, `t3`, `t3:P` or `risk`; `t3` replays with
    /// probability `replay`, `t3:P` with probability `P` (0 to 1; `t3:0`
    /// checks receipts against the signed request and never replays).
    pub fn parse(s: &str, risk: RiskPolicy, replay: f64) -> Option<Policy> {
        let s = s.to_ascii_lowercase();
        if let Some(p) = s.strip_prefix("t3:") {
            let p: f64 = p.parse().ok()?;
            return (0.0..=1.0)
                .contains(&p)
                .then_some(Policy::Fixed(TierSet::t3(p)));
        }
        Some(match s.as_str() {
            "none" => Policy::Fixed(TierSet::NONE),
            "t1" => Policy::Fixed(TierSet::T1),
            "t2" => Policy::Fixed(TierSet::T2),
            "t3" => Policy::Fixed(TierSet::t3(replay)),
            "risk" => Policy::Risk(risk),
            _ => return None,
        })
    }
}

/// The five policies Errand compares (the demo's table and the simulator's
/// sweeps): no checks, T1, T1+T2, T1+T2+T3 replaying with probability
/// `replay`, and risk-tiered ([`RiskPolicy::default`]).
pub fn standard_policies(replay: f64) -> Vec<(&'static str, Policy)> {
    vec![
        ("none", Policy::Fixed(TierSet::NONE)),
        ("T1", Policy::Fixed(TierSet::T1)),
        ("T1+T2", Policy::Fixed(TierSet::T2)),
        ("T1+T2+T3", Policy::Fixed(TierSet::t3(replay))),
        ("risk-tiered", Policy::Risk(RiskPolicy::default())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_policy_maps_as_documented_and_steps_can_override() {
        let p = Policy::Risk(RiskPolicy::default());
        assert_eq!(p.tiers(Risk::Low, None), TierSet::T1);
        assert_eq!(p.tiers(Risk::Medium, None), TierSet::t3(0.0));
        assert_eq!(p.tiers(Risk::High, None), TierSet::t3(1.0));
        assert_eq!(p.tiers(Risk::High, Some(TierSet::NONE)), TierSet::NONE);
        assert_eq!(
            Policy::parse("t3:0", RiskPolicy::default(), 1.0),
            Some(Policy::Fixed(TierSet::t3(0.0)))
        );
        assert_eq!(
            Policy::parse("T3:0.25", RiskPolicy::default(), 1.0),
            Some(Policy::Fixed(TierSet::t3(0.25)))
        );
        for bad in ["t3:", "t3:1.5", "t3:-0.1", "t3:NaN", "t4"] {
            assert_eq!(
                Policy::parse(bad, RiskPolicy::default(), 1.0),
                None,
                "{bad}"
            );
        }
        assert_eq!(
            Policy::parse("t1", RiskPolicy::default(), 0.5),
            Some(Policy::Fixed(TierSet::T1))
        );
        assert_eq!(
            Policy::parse("T3", RiskPolicy::default(), 0.5),
            Some(Policy::Fixed(TierSet::t3(0.5)))
        );
        assert!(Policy::parse("max", RiskPolicy::default(), 0.5).is_none());
        assert_eq!(TierSet::t3(0.25).label(), "T1+T2+T3(replay 25%)");
    }
}
