//! The state machine that runs one step's delegation (see the module docs
//! of [`crate::trust`]).

use serde::{Deserialize, Serialize};

use super::cross_check::pick_witness;
use super::evidence::should_replay;
use super::{Entropy, Observation, Reputation, TierSet};
use crate::identity::PeerId;
use crate::time::UnixMillis;

/// Why a candidate was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// It answered the canary wrongly.
    CanaryFailed,
    /// The cross-check disagreed with it.
    CrossCheckFailed,
    /// Its receipt does not bind the invocation.
    InvalidReceipt(String),
    /// Replaying the run contradicted its receipt: fraud.
    ReplayMismatch(String),
    /// It did not answer in time.
    Timeout,
    /// It refused or could not serve.
    Unavailable(String),
}

impl Rejection {
    fn observation(&self) -> Observation {
        match self {
            Rejection::CanaryFailed | Rejection::CrossCheckFailed => Observation::WrongResult,
            Rejection::InvalidReceipt(_) => Observation::InvalidReceipt,
            Rejection::ReplayMismatch(_) => Observation::Fraud,
            Rejection::Timeout => Observation::Timeout,
            Rejection::Unavailable(_) => Observation::Unavailable,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::CanaryFailed => f.write_str("wrong answer to the canary"),
            Rejection::CrossCheckFailed => f.write_str("disagreed with the cross-check"),
            Rejection::InvalidReceipt(e) => write!(f, "invalid receipt: {e}"),
            Rejection::ReplayMismatch(e) => {
                write!(f, "replay contradicts the receipt (fraud): {e}")
            }
            Rejection::Timeout => f.write_str("timed out"),
            Rejection::Unavailable(e) => write!(f, "unavailable: {e}"),
        }
    }
}

/// What the caller should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send candidate `candidate` a canary whose answer the caller can
    /// compute (by running the public component), then report
    /// [`Event::Canary`].
    Canary {
        /// Index into the ordered candidates.
        candidate: usize,
    },
    /// The capability cannot be run locally: send the same canary to
    /// `candidate` and to `witness`, and report [`Event::CrossCheck`].
    CrossCheck {
        /// The candidate under test.
        candidate: usize,
        /// The second candidate it is checked against.
        witness: usize,
    },
    /// Send the real request, then report [`Event::Invoked`].
    Invoke {
        /// Index into the ordered candidates.
        candidate: usize,
    },
    /// Replay the run locally and report [`Event::Replayed`].
    Replay {
        /// Index into the ordered candidates.
        candidate: usize,
    },
    /// Done: use this candidate's answer.
    Succeeded {
        /// Index into the ordered candidates.
        candidate: usize,
    },
    /// Done: no candidate could be trusted within the budget.
    Failed,
}

/// What happened, reported by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The canary was answered; `correct` says whether the answer matched.
    Canary {
        /// Whether the answer was right.
        correct: bool,
    },
    /// The cross-check ran: whether the two answers agreed, and whether
    /// the witness answered at all.
    CrossCheck {
        /// The two outputs were equal.
        agreed: bool,
        /// The witness answered (if not, the check is inconclusive and the
        /// candidate is given the benefit of the doubt).
        witness_answered: bool,
    },
    /// The real request was answered; with evidence required, whether the
    /// receipt binds it (`None` when not checked).
    Invoked {
        /// `Some(Ok(()))` for a binding receipt, `Some(Err(why))` otherwise,
        /// `None` when the receipt was not checked.
        receipt: Option<Result<(), String>>,
    },
    /// The replay ran; `Err(why)` if it contradicted the receipt.
    Replayed(Result<(), String>),
    /// The candidate failed in some other way.
    Rejected(Rejection),
}

/// One attempt in a delegation, for reporting.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Index into the ordered candidates.
    pub candidate: usize,
    /// The checks that ran, in order, with their verdicts.
    pub checks: Vec<(&'static str, bool)>,
    /// Why it was rejected, if it was.
    pub rejected: Option<Rejection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Canary,
    Invoke,
    Replay,
    Done,
}

/// One step's delegation to the network (see the module docs).
///
/// Feed it the ordered candidates (from [`super::order_candidates`], or the
/// registry's order for the optimistic policy), then alternate
/// [`Delegation::decide`] and [`Delegation::observe`].
#[derive(Debug, Clone)]
pub struct Delegation {
    tiers: TierSet,
    peers: Vec<PeerId>,
    can_run_locally: Vec<bool>,
    budget: usize,
    current: usize,
    fallbacks: usize,
    phase: Phase,
    replay_roll: f64,
    attempts: Vec<Attempt>,
}

impl Delegation {
    /// A delegation over `peers` (already ordered) with `tiers`. At most
    /// `fallback_budget` candidates after the first are tried.
    /// `can_run_locally[i]` says whether the requester can run candidate
    /// `i`'s component itself (for canaries and replay).
    pub fn new(
        tiers: TierSet,
        peers: Vec<PeerId>,
        can_run_locally: Vec<bool>,
        fallback_budget: usize,
        rng: &mut dyn Entropy,
    ) -> Delegation {
        let mut d = Delegation {
            tiers,
            can_run_locally,
            budget: if tiers.reputation { fallback_budget } else { 0 },
            current: 0,
            fallbacks: 0,
            phase: Phase::Canary,
            replay_roll: rng.unit(),
            attempts: Vec::new(),
            peers,
        };
        d.start_candidate();
        d
    }

    fn start_candidate(&mut self) {
        if self.current >= self.peers.len() {
            self.phase = Phase::Done;
            return;
        }
        self.attempts.push(Attempt {
            candidate: self.current,
            checks: Vec::new(),
            rejected: None,
        });
        self.phase = if self.tiers.canary {
            Phase::Canary
        } else {
            Phase::Invoke
        };
    }

    /// Fallbacks used so far.
    pub fn fallbacks(&self) -> usize {
        self.fallbacks
    }

    /// The attempts so far.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// The tiers in force.
    pub fn tiers(&self) -> TierSet {
        self.tiers
    }

    /// What to do next.
    pub fn decide(&self) -> Decision {
        if self.phase == Phase::Done || self.current >= self.peers.len() {
            return match self.attempts.last() {
                Some(a)
                    if a.rejected.is_none()
                        && self.phase == Phase::Done
                        && self.current < self.peers.len() =>
                {
                    Decision::Succeeded {
                        candidate: a.candidate,
                    }
                }
                _ => Decision::Failed,
            };
        }
        let c = self.current;
        match self.phase {
            Phase::Canary if self.can_run_locally.get(c).copied().unwrap_or(false) => {
                Decision::Canary { candidate: c }
            }
            Phase::Canary => {
                match pick_witness(&self.peers, c) {
                    Some(witness) => Decision::CrossCheck {
                        candidate: c,
                        witness,
                    },
                    // Nobody to cross-check against: go on unchecked.
                    None => Decision::Invoke { candidate: c },
                }
            }
            Phase::Invoke => Decision::Invoke { candidate: c },
            Phase::Replay => Decision::Replay { candidate: c },
            Phase::Done => Decision::Failed,
        }
    }

    fn check(&mut self, name: &'static str, ok: bool) {
        if let Some(a) = self.attempts.last_mut() {
            a.checks.push((name, ok));
        }
    }

    fn reject(&mut self, why: Rejection, rep: &mut Reputation, now: UnixMillis) {
        if self.tiers.reputation {
            rep.observe(self.peers[self.current], why.observation(), now);
        }
        if let Some(a) = self.attempts.last_mut() {
            a.rejected = Some(why);
        }
        if self.fallbacks < self.budget && self.current + 1 < self.peers.len() {
            self.fallbacks += 1;
            self.current += 1;
            self.start_candidate();
        } else {
            self.phase = Phase::Done;
            self.current = self.peers.len();
        }
    }

    fn succeed(&mut self, rep: &mut Reputation, now: UnixMillis) {
        if self.tiers.reputation {
            rep.observe(self.peers[self.current], Observation::Success, now);
        }
        self.phase = Phase::Done;
    }

    /// Reports what happened and updates the requester's reputation.
    pub fn observe(&mut self, event: Event, rep: &mut Reputation, now: UnixMillis) {
        if self.phase == Phase::Done {
            return;
        }
        match event {
            Event::Canary { correct } => {
                self.check("canary", correct);
                if correct {
                    self.phase = Phase::Invoke;
                } else {
                    self.reject(Rejection::CanaryFailed, rep, now);
                }
            }
            Event::CrossCheck {
                agreed,
                witness_answered,
            } => {
                self.check("cross-check", agreed || !witness_answered);
                if agreed || !witness_answered {
                    self.phase = Phase::Invoke;
                } else {
                    self.reject(Rejection::CrossCheckFailed, rep, now);
                }
            }
            Event::Invoked { receipt } => match receipt {
                Some(Err(why)) => {
                    self.check("receipt", false);
                    self.reject(Rejection::InvalidReceipt(why), rep, now);
                }
                other => {
                    if other.is_some() {
                        self.check("receipt", true);
                    }
                    let replay = should_replay(
                        &self.tiers,
                        self.replay_roll,
                        self.can_run_locally
                            .get(self.current)
                            .copied()
                            .unwrap_or(false),
                    );
                    if replay {
                        self.phase = Phase::Replay;
                    } else {
                        self.succeed(rep, now);
                    }
                }
            },
            Event::Replayed(r) => {
                self.check("replay", r.is_ok());
                match r {
                    Ok(()) => self.succeed(rep, now),
                    Err(why) => self.reject(Rejection::ReplayMismatch(why), rep, now),
                }
            }
            Event::Rejected(why) => self.reject(why, rep, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use crate::trust::{ReputationConfig, SplitMix};

    fn peer(n: u8) -> PeerId {
        testing::key(n).peer_id()
    }

    fn run(
        tiers: TierSet,
        events: &mut dyn FnMut(&Decision) -> Option<Event>,
        n: u8,
        budget: usize,
    ) -> (Decision, Delegation, Reputation) {
        let mut rep = Reputation::new(ReputationConfig::default());
        let peers: Vec<PeerId> = (1..=n).map(peer).collect();
        let mut d = Delegation::new(
            tiers,
            peers,
            vec![true; n as usize],
            budget,
            &mut SplitMix(3),
        );
        for _ in 0..100 {
            let dec = d.decide();
            match events(&dec) {
                Some(e) => d.observe(e, &mut rep, UnixMillis(0)),
                None => return (dec, d, rep),
            }
        }
        panic!("did not finish");
    }

    #[test]
    fn a_failed_canary_falls_back_and_the_next_candidate_succeeds() {
        let (dec, d, rep) = run(
            TierSet::T2,
            &mut |dec| match dec {
                Decision::Canary { candidate } => Some(Event::Canary {
                    correct: *candidate == 1,
                }),
                Decision::Invoke { .. } => Some(Event::Invoked { receipt: None }),
                _ => None,
            },
            3,
            2,
        );
        assert_eq!(dec, Decision::Succeeded { candidate: 1 });
        assert_eq!(d.fallbacks(), 1);
        assert_eq!(d.attempts()[0].rejected, Some(Rejection::CanaryFailed));
        assert!(rep.score(&peer(1), UnixMillis(0)) < rep.score(&peer(2), UnixMillis(0)));
    }

    #[test]
    fn the_fallback_budget_is_respected() {
        let (dec, d, _) = run(
            TierSet::T2,
            &mut |dec| match dec {
                Decision::Canary { .. } => Some(Event::Canary { correct: false }),
                _ => None,
            },
            5,
            2,
        );
        assert_eq!(dec, Decision::Failed);
        assert_eq!(d.attempts().len(), 3);
    }

    #[test]
    fn tier3_rejects_bad_receipts_and_replay_mismatches_ban() {
        let (dec, d, rep) = run(
            TierSet::t3(1.0),
            &mut |dec| match dec {
                Decision::Canary { .. } => Some(Event::Canary { correct: true }),
                Decision::Invoke { candidate: 0 } => Some(Event::Invoked {
                    receipt: Some(Err("forged".into())),
                }),
                Decision::Invoke { .. } => Some(Event::Invoked {
                    receipt: Some(Ok(())),
                }),
                Decision::Replay { candidate: 1 } => {
                    Some(Event::Replayed(Err("output differs".into())))
                }
                Decision::Replay { .. } => Some(Event::Replayed(Ok(()))),
                _ => None,
            },
            3,
            5,
        );
        assert_eq!(dec, Decision::Succeeded { candidate: 2 });
        assert_eq!(d.fallbacks(), 2);
        assert!(matches!(
            d.attempts()[0].rejected,
            Some(Rejection::InvalidReceipt(_))
        ));
        assert!(rep.is_banned(&peer(2)), "a replay mismatch is fraud");
        assert!(!rep.is_banned(&peer(1)));
    }

    #[test]
    fn no_tiers_means_the_first_answer_and_no_fallback() {
        let (dec, d, rep) = run(
            TierSet::NONE,
            &mut |dec| match dec {
                Decision::Invoke { .. } => Some(Event::Rejected(Rejection::Timeout)),
                _ => None,
            },
            3,
            5,
        );
        assert_eq!(dec, Decision::Failed);
        assert_eq!(d.attempts().len(), 1);
        assert!(rep.is_empty(), "without tier 1 nothing is recorded");
    }

    #[test]
    fn cross_check_when_the_component_cannot_run_locally() {
        let mut rep = Reputation::new(ReputationConfig::default());
        let mut d = Delegation::new(
            TierSet::T2,
            vec![peer(1), peer(2)],
            vec![false, false],
            3,
            &mut SplitMix(1),
        );
        assert_eq!(
            d.decide(),
            Decision::CrossCheck {
                candidate: 0,
                witness: 1
            }
        );
        d.observe(
            Event::CrossCheck {
                agreed: false,
                witness_answered: true,
            },
            &mut rep,
            UnixMillis(0),
        );
        assert_eq!(
            d.decide(),
            Decision::CrossCheck {
                candidate: 1,
                witness: 0
            }
        );
    }
}
