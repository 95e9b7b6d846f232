//! The state machine that runs one step's delegation (see the module docs
//! of [`crate::trust`]).

use serde::{Deserialize, Serialize};

use super::cross_check::{DISAGREEMENTS_TO_REJECT, MAX_WITNESSES, draw_witness};
use super::evidence::{ReplayPlan, replay_plan};
use super::{
    CrossCheckOutcome, Entropy, Observation, ReplayOutcome, Reputation, SplitMix, TierSet,
};
use crate::identity::PeerId;
use crate::time::UnixMillis;

/// The longest pause, in milliseconds, [`Delegation::delay_ms`] asks for
/// between a candidate's canary and real request.
pub const MAX_PAIR_DELAY_MS: u64 = 250;

/// Mixed into the delegation's seed for the order/delay generator.
const ORDER_SALT: u64 = 0x6f72_6465_725f_6461;

/// Why a candidate was rejected, or passed over without a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// It answered the canary wrongly.
    CanaryFailed,
    /// Two witnesses' answers to the cross-check disagreed with its answer.
    CrossCheckFailed,
    /// Its receipt does not bind the invocation.
    InvalidReceipt(String),
    /// Replaying the run contradicted its receipt: fraud.
    ReplayMismatch(String),
    /// It did not answer in time.
    Timeout,
    /// It refused or could not serve.
    Unavailable(String),
    /// The requester could not check it (no witness left, its own canary
    /// run or replay failed): the delegation moves on to the next candidate
    /// and records no reputation observation, since the candidate did
    /// nothing wrong.
    Inconclusive(String),
}

impl Rejection {
    /// What the rejection says about the candidate; `None` when it says
    /// nothing (inconclusive).
    fn observation(&self) -> Option<Observation> {
        Some(match self {
            Rejection::CanaryFailed | Rejection::CrossCheckFailed => Observation::WrongResult,
            Rejection::InvalidReceipt(_) => Observation::InvalidReceipt,
            Rejection::ReplayMismatch(_) => Observation::Fraud,
            Rejection::Timeout => Observation::Timeout,
            Rejection::Unavailable(_) => Observation::Unavailable,
            Rejection::Inconclusive(_) => return None,
        })
    }

    /// Whether this is a verdict against the candidate (anything but
    /// [`Rejection::Inconclusive`]).
    pub fn is_for_cause(&self) -> bool {
        !matches!(self, Rejection::Inconclusive(_))
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::CanaryFailed => f.write_str("wrong answer to the canary"),
            Rejection::CrossCheckFailed => {
                f.write_str("disagreed with two witnesses in the cross-check")
            }
            Rejection::InvalidReceipt(e) => write!(f, "invalid receipt: {e}"),
            Rejection::ReplayMismatch(e) => {
                write!(f, "replay contradicts the receipt (fraud): {e}")
            }
            Rejection::Timeout => f.write_str("timed out"),
            Rejection::Unavailable(e) => write!(f, "unavailable: {e}"),
            Rejection::Inconclusive(e) => {
                write!(f, "inconclusive: {e} (not held against the executor)")
            }
        }
    }
}

/// What the caller should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send candidate `candidate` a canary whose answer the caller can
    /// compute (by running the public component), then report
    /// [`Event::Canary`], or [`Event::CanaryInconclusive`] if the caller's
    /// own run failed. It may come before or after the candidate's
    /// [`Decision::Invoke`] ([`Delegation::real_first`]); leave
    /// [`Delegation::delay_ms`] between the two.
    Canary {
        /// Index into the ordered candidates.
        candidate: usize,
    },
    /// The capability cannot be run locally: send the same canary to
    /// `candidate` and to `witness`, and report [`Event::CrossCheck`] (or
    /// [`Event::Rejected`] if the candidate itself did not answer). Witnesses
    /// are drawn at random; a candidate may be asked for several cross-checks
    /// in a row, each against a new witness.
    CrossCheck {
        /// The candidate under test.
        candidate: usize,
        /// The other candidate it is checked against.
        witness: usize,
    },
    /// Send the real request, then report [`Event::Invoked`]. When it comes
    /// before the canary, keep its answer until the canary passed.
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
    /// The canary was answered; `correct` says whether the answer matched
    /// the caller's own run.
    Canary {
        /// Whether the answer was right.
        correct: bool,
    },
    /// The caller's own run of the canary failed (package missing, host
    /// error, a limit on the caller's side), so the candidate's answer
    /// cannot be judged: inconclusive, not held against the candidate.
    CanaryInconclusive(String),
    /// The cross-check ran: how the witness's answer compared with the
    /// candidate's.
    CrossCheck(CrossCheckOutcome),
    /// The real request was answered; with evidence required, whether the
    /// receipt binds it (`None` when not checked).
    Invoked {
        /// `Some(Ok(()))` for a binding receipt, `Some(Err(why))` otherwise,
        /// `None` when the receipt was not checked.
        receipt: Option<Result<(), String>>,
    },
    /// The replay ran, or could not run.
    Replayed(ReplayOutcome),
    /// The candidate failed in some other way
    /// ([`Rejection::Inconclusive`] records nothing against it).
    Rejected(Rejection),
}

/// One attempt in a delegation, for reporting.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Index into the ordered candidates.
    pub candidate: usize,
    /// The checks that ran, in order, with their verdicts: `("canary", ok)`,
    /// `("cross-check", agreed)` per witness that answered, `("receipt",
    /// ok)`, `("replay", matched)`. A check that could not reach a verdict
    /// is named with an ` (inconclusive)` suffix and reported `false`:
    /// `"canary (inconclusive)"`, `"cross-check (inconclusive)"` (a silent
    /// witness), `"replay (inconclusive)"`.
    pub checks: Vec<(&'static str, bool)>,
    /// Why it was rejected or passed over, if it was.
    pub rejected: Option<Rejection>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Canary,
    CrossCheck { witness: usize },
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
    /// Peers the requester caught lying: never drawn as witnesses.
    unfit_witness: Vec<bool>,
    budget: usize,
    current: usize,
    fallbacks: usize,
    phase: Phase,
    replay_roll: f64,
    /// Draws witnesses; seeded once in [`Delegation::new`].
    rng: SplitMix,
    /// Draws the order and delay of each canary/real pair; seeded once in
    /// [`Delegation::new`], apart from `rng` so witness draws do not change.
    order_rng: SplitMix,
    /// The current candidate gets the real request before its canary.
    real_first: bool,
    /// The pause to leave between the canary and the real request.
    delay_ms: u64,
    /// The current candidate's canary is still to be answered.
    canary_pending: bool,
    /// The current candidate answered the real request.
    real_done: bool,
    /// Witnesses drawn for the current candidate.
    witnesses: Vec<usize>,
    /// Witnesses that disagreed with the current candidate.
    disagreements: usize,
    /// A check passed for the current candidate in this attempt.
    checked: bool,
    attempts: Vec<Attempt>,
}

impl Delegation {
    /// A delegation over `peers` (already ordered) with `tiers`. At most
    /// `fallback_budget` candidates after the first are tried.
    /// `can_run_locally[i]` says whether the requester can run candidate
    /// `i`'s component itself (for canaries and replay). Takes 64 bits from
    /// `rng`, once: they make the replay roll and seed the witness draws and
    /// the canary/real order and delay, so the whole delegation replays
    /// exactly for a seed.
    pub fn new(
        tiers: TierSet,
        peers: Vec<PeerId>,
        can_run_locally: Vec<bool>,
        fallback_budget: usize,
        rng: &mut dyn Entropy,
    ) -> Delegation {
        Delegation::with_reputation(tiers, peers, can_run_locally, fallback_budget, rng, None)
    }

    /// [`Delegation::new`], with the requester's reputation as of a time: a
    /// peer it caught lying ([`Reputation::caught_lying`]) is never drawn as
    /// a witness, so a liar caught once cannot go on to vote in
    /// cross-checks.
    pub fn with_reputation(
        tiers: TierSet,
        peers: Vec<PeerId>,
        can_run_locally: Vec<bool>,
        fallback_budget: usize,
        rng: &mut dyn Entropy,
        rep: Option<(&Reputation, UnixMillis)>,
    ) -> Delegation {
        let unfit_witness = peers
            .iter()
            .map(|p| rep.is_some_and(|(r, now)| r.caught_lying(p, now)))
            .collect();
        let bits = rng.next_u64();
        let mut d = Delegation {
            tiers,
            can_run_locally,
            budget: if tiers.reputation { fallback_budget } else { 0 },
            current: 0,
            fallbacks: 0,
            phase: Phase::Canary,
            // The same value `Entropy::unit` makes of these bits.
            replay_roll: (bits >> 11) as f64 / (1u64 << 53) as f64,
            rng: SplitMix(bits),
            order_rng: SplitMix(bits ^ ORDER_SALT),
            real_first: false,
            delay_ms: 0,
            canary_pending: false,
            real_done: false,
            witnesses: Vec::new(),
            disagreements: 0,
            checked: false,
            attempts: Vec::new(),
            peers,
            unfit_witness,
        };
        d.start_candidate();
        d
    }

    fn runs_locally(&self, i: usize) -> bool {
        self.can_run_locally.get(i).copied().unwrap_or(false)
    }

    /// Starts on candidate `self.current`, passing over (inconclusive)
    /// candidates that need a cross-check nobody can give.
    fn start_candidate(&mut self) {
        while self.current < self.peers.len() {
            self.attempts.push(Attempt {
                candidate: self.current,
                checks: Vec::new(),
                rejected: None,
            });
            self.witnesses.clear();
            self.disagreements = 0;
            self.checked = false;
            self.real_first = false;
            self.delay_ms = 0;
            self.canary_pending = false;
            self.real_done = false;
            if !self.tiers.canary {
                self.phase = Phase::Invoke;
                return;
            }
            if self.runs_locally(self.current) {
                self.real_first = self.order_rng.below(2) == 1;
                self.delay_ms = self.order_rng.below(MAX_PAIR_DELAY_MS as usize + 1) as u64;
                self.canary_pending = true;
                self.phase = if self.real_first {
                    Phase::Invoke
                } else {
                    Phase::Canary
                };
                return;
            }
            if self.draw_witness() {
                return;
            }
            self.mark(Rejection::Inconclusive(
                "no witness to cross-check against".into(),
            ));
            if !self.move_on() {
                return;
            }
        }
        self.phase = Phase::Done;
    }

    /// Draws the current candidate's next witness and asks for the
    /// cross-check; false if none is left.
    fn draw_witness(&mut self) -> bool {
        if self.witnesses.len() >= MAX_WITNESSES {
            return false;
        }
        let mut rejected = self.unfit_witness.clone();
        rejected.resize(self.peers.len(), false);
        for a in &self.attempts {
            if let (Some(r), Some(slot)) = (&a.rejected, rejected.get_mut(a.candidate)) {
                *slot |= r.is_for_cause();
            }
        }
        match draw_witness(
            &self.peers,
            self.current,
            &rejected,
            &self.witnesses,
            &mut self.rng,
        ) {
            Some(witness) => {
                self.witnesses.push(witness);
                self.phase = Phase::CrossCheck { witness };
                true
            }
            None => false,
        }
    }

    /// Records why the current attempt ended.
    fn mark(&mut self, why: Rejection) {
        if let Some(a) = self.attempts.last_mut() {
            a.rejected = Some(why);
        }
    }

    /// Goes to the next candidate if the budget allows; otherwise ends the
    /// delegation (failed) and returns false.
    fn move_on(&mut self) -> bool {
        if self.fallbacks < self.budget && self.current + 1 < self.peers.len() {
            self.fallbacks += 1;
            self.current += 1;
            true
        } else {
            self.phase = Phase::Done;
            self.current = self.peers.len();
            false
        }
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

    /// Whether the current candidate gets the real request before its
    /// canary ([`Decision::Invoke`] comes first); drawn at random for each
    /// candidate tested with a canary, so order does not tell them apart.
    pub fn real_first(&self) -> bool {
        self.real_first
    }

    /// The pause, in milliseconds (`0..=`[`MAX_PAIR_DELAY_MS`]), the caller
    /// should leave between sending the first and the second of the current
    /// candidate's canary and real request, so that the gap does not tell
    /// them apart; drawn at random for each candidate tested with a canary,
    /// 0 otherwise.
    pub fn delay_ms(&self) -> u64 {
        self.delay_ms
    }

    /// What to do next. Cheap and pure: every random draw was made when the
    /// state changed.
    pub fn decide(&self) -> Decision {
        let c = self.current;
        if c >= self.peers.len() {
            return Decision::Failed;
        }
        match self.phase {
            Phase::Canary => Decision::Canary { candidate: c },
            Phase::CrossCheck { witness } => Decision::CrossCheck {
                candidate: c,
                witness,
            },
            Phase::Invoke => Decision::Invoke { candidate: c },
            Phase::Replay => Decision::Replay { candidate: c },
            Phase::Done => match self.attempts.last() {
                Some(a) if a.rejected.is_none() => Decision::Succeeded { candidate: c },
                _ => Decision::Failed,
            },
        }
    }

    fn check(&mut self, name: &'static str, ok: bool) {
        if let Some(a) = self.attempts.last_mut() {
            a.checks.push((name, ok));
        }
    }

    fn reject(&mut self, why: Rejection, rep: &mut Reputation, now: UnixMillis) {
        if self.tiers.reputation
            && let Some(obs) = why.observation()
        {
            rep.observe(self.peers[self.current], obs, now);
        }
        self.mark(why);
        if self.move_on() {
            self.start_candidate();
        }
    }

    /// Draws another witness for the current candidate, or passes it over
    /// as inconclusive when none is left.
    fn next_witness(&mut self, rep: &mut Reputation, now: UnixMillis) {
        if self.draw_witness() {
            return;
        }
        let why = if self.disagreements > 0 {
            "a witness disagreed and no second witness was left to settle it"
        } else {
            "no witness answered the cross-check"
        };
        self.reject(Rejection::Inconclusive(why.into()), rep, now);
    }

    fn succeed(&mut self, rep: &mut Reputation, now: UnixMillis) {
        if self.tiers.reputation {
            let obs = if self.checked {
                Observation::Success
            } else {
                Observation::Unverified
            };
            rep.observe(self.peers[self.current], obs, now);
        }
        self.phase = Phase::Done;
    }

    /// The real request was answered and the canary (if any) passed: replay
    /// it if rolled, else succeed.
    fn after_invoke(&mut self, rep: &mut Reputation, now: UnixMillis) {
        match replay_plan(
            &self.tiers,
            self.replay_roll,
            self.runs_locally(self.current),
        ) {
            ReplayPlan::Replay => self.phase = Phase::Replay,
            ReplayPlan::Skip => self.succeed(rep, now),
            ReplayPlan::Unverifiable => {
                self.check("replay (inconclusive)", false);
                self.reject(
                    Rejection::Inconclusive(
                        "a replay is due but the component cannot be run here".into(),
                    ),
                    rep,
                    now,
                );
            }
        }
    }

    /// Reports what happened and updates the requester's reputation.
    /// The canary and the real request of a candidate may be reported in
    /// either order; the candidate succeeds only when both are answered and
    /// the canary passed.
    pub fn observe(&mut self, event: Event, rep: &mut Reputation, now: UnixMillis) {
        if self.phase == Phase::Done || self.current >= self.peers.len() {
            return;
        }
        match event {
            Event::Canary { correct } => {
                self.check("canary", correct);
                self.canary_pending = false;
                if correct {
                    self.checked = true;
                    if self.real_done {
                        self.after_invoke(rep, now);
                    } else {
                        self.phase = Phase::Invoke;
                    }
                } else {
                    // After the real request too: its answer is discarded.
                    self.reject(Rejection::CanaryFailed, rep, now);
                }
            }
            Event::CanaryInconclusive(why) => {
                self.check("canary (inconclusive)", false);
                let why = format!("the requester's own canary run failed: {why}");
                self.reject(Rejection::Inconclusive(why), rep, now);
            }
            Event::CrossCheck(outcome) => match outcome {
                CrossCheckOutcome::Agreed => {
                    self.check("cross-check", true);
                    self.checked = true;
                    self.phase = Phase::Invoke;
                }
                CrossCheckOutcome::Disagreed => {
                    self.check("cross-check", false);
                    self.disagreements += 1;
                    if self.disagreements >= DISAGREEMENTS_TO_REJECT {
                        self.reject(Rejection::CrossCheckFailed, rep, now);
                    } else {
                        self.next_witness(rep, now);
                    }
                }
                CrossCheckOutcome::WitnessSilent => {
                    self.check("cross-check (inconclusive)", false);
                    self.next_witness(rep, now);
                }
            },
            Event::Invoked { receipt } => match receipt {
                Some(Err(why)) => {
                    self.check("receipt", false);
                    self.reject(Rejection::InvalidReceipt(why), rep, now);
                }
                other => {
                    if other.is_some() {
                        self.check("receipt", true);
                    }
                    self.real_done = true;
                    if self.canary_pending {
                        self.phase = Phase::Canary;
                    } else {
                        self.after_invoke(rep, now);
                    }
                }
            },
            Event::Replayed(outcome) => match outcome {
                ReplayOutcome::Matched => {
                    self.check("replay", true);
                    self.checked = true;
                    self.succeed(rep, now);
                }
                ReplayOutcome::Mismatch(why) => {
                    self.check("replay", false);
                    self.reject(Rejection::ReplayMismatch(why), rep, now);
                }
                ReplayOutcome::Inconclusive(why) => {
                    self.check("replay (inconclusive)", false);
                    let why = format!("the requester could not replay the run: {why}");
                    self.reject(Rejection::Inconclusive(why), rep, now);
                }
            },
            Event::Rejected(why) => self.reject(why, rep, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use crate::trust::ReputationConfig;

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
                // The real request may come first (random order).
                Decision::Invoke { .. } => Some(Event::Invoked { receipt: None }),
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
                Decision::Replay { candidate: 1 } => Some(Event::Replayed(
                    ReplayOutcome::Mismatch("output differs".into()),
                )),
                Decision::Replay { .. } => Some(Event::Replayed(ReplayOutcome::Matched)),
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
            Event::CrossCheck(CrossCheckOutcome::Disagreed),
            &mut rep,
            UnixMillis(0),
        );
        // One disagreement, and no second witness to settle it: candidate 0
        // is passed over without a verdict, and may witness for candidate 1.
        assert!(matches!(
            d.attempts()[0].rejected,
            Some(Rejection::Inconclusive(_))
        ));
        assert!(rep.is_empty());
        assert_eq!(
            d.decide(),
            Decision::CrossCheck {
                candidate: 1,
                witness: 0
            }
        );
        d.observe(
            Event::CrossCheck(CrossCheckOutcome::Agreed),
            &mut rep,
            UnixMillis(0),
        );
        d.observe(Event::Invoked { receipt: None }, &mut rep, UnixMillis(0));
        assert_eq!(d.decide(), Decision::Succeeded { candidate: 1 });
        assert_eq!(d.attempts()[1].checks, vec![("cross-check", true)]);
        assert_eq!(
            rep.record(&peer(2)).map(|r| r.successes),
            Some(ReputationConfig::default().prior_success + 1.0),
            "a passed cross-check makes a checked success"
        );
    }

    fn no_local_run(n: u8, seed: u64) -> Delegation {
        Delegation::new(
            TierSet::T2,
            (1..=n).map(peer).collect(),
            vec![false; n as usize],
            5,
            &mut SplitMix(seed),
        )
    }

    fn witness_of(d: &Delegation, candidate: usize) -> usize {
        match d.decide() {
            Decision::CrossCheck {
                candidate: c,
                witness,
            } if c == candidate => witness,
            other => panic!("expected a cross-check of {candidate}, got {other:?}"),
        }
    }

    // Regression (issue 10 item 2): the canary always came first, right
    // before the real request, so order and timing told them apart.
    #[test]
    fn canary_and_real_request_come_in_a_random_order_with_a_random_gap() {
        let t = UnixMillis(0);
        let mut firsts = [0usize; 2];
        let mut delays = std::collections::HashSet::new();
        for seed in 0..200 {
            let mut rep = Reputation::new(ReputationConfig::default());
            let mut d = Delegation::new(
                TierSet::T2,
                vec![peer(1), peer(2)],
                vec![true, true],
                5,
                &mut SplitMix(seed),
            );
            assert!(d.delay_ms() <= MAX_PAIR_DELAY_MS);
            delays.insert(d.delay_ms());
            if d.real_first() {
                firsts[1] += 1;
                assert_eq!(d.decide(), Decision::Invoke { candidate: 0 });
                d.observe(Event::Invoked { receipt: None }, &mut rep, t);
                // Not done before the canary passed.
                assert_eq!(d.decide(), Decision::Canary { candidate: 0 });
                // A failed canary after the real request discards its answer.
                d.observe(Event::Canary { correct: false }, &mut rep, t);
                assert_eq!(d.attempts()[0].rejected, Some(Rejection::CanaryFailed));
                assert!(matches!(
                    d.decide(),
                    Decision::Canary { candidate: 1 } | Decision::Invoke { candidate: 1 }
                ));
            } else {
                firsts[0] += 1;
                assert_eq!(d.decide(), Decision::Canary { candidate: 0 });
                d.observe(Event::Canary { correct: true }, &mut rep, t);
                assert_eq!(d.decide(), Decision::Invoke { candidate: 0 });
                d.observe(Event::Invoked { receipt: None }, &mut rep, t);
                assert_eq!(d.decide(), Decision::Succeeded { candidate: 0 });
                assert_eq!(d.attempts()[0].checks, vec![("canary", true)]);
            }
        }
        assert!(firsts[0] > 60 && firsts[1] > 60, "{firsts:?}");
        assert!(delays.len() > 50, "{}", delays.len());
    }

    #[test]
    fn real_request_first_then_a_passed_canary_succeeds_checked() {
        let t = UnixMillis(0);
        let seed = (0..100)
            .find(|&s| {
                Delegation::new(TierSet::T2, vec![peer(1)], vec![true], 5, &mut SplitMix(s))
                    .real_first()
            })
            .unwrap();
        let mut rep = Reputation::new(ReputationConfig::default());
        let mut d = Delegation::new(
            TierSet::T2,
            vec![peer(1)],
            vec![true],
            5,
            &mut SplitMix(seed),
        );
        d.observe(Event::Invoked { receipt: None }, &mut rep, t);
        assert!(rep.is_empty(), "nothing recorded before the canary");
        d.observe(Event::Canary { correct: true }, &mut rep, t);
        assert_eq!(d.decide(), Decision::Succeeded { candidate: 0 });
        assert_eq!(
            rep.record(&peer(1)).map(|r| r.successes),
            Some(ReputationConfig::default().prior_success + 1.0)
        );
    }

    // Regression (issue 10 item 4): the witness was always the lowest other
    // index, even a candidate already rejected.
    #[test]
    fn cross_check_witness_is_never_a_rejected_candidate() {
        let t = UnixMillis(0);
        for seed in 0..100 {
            let mut rep = Reputation::new(ReputationConfig::default());
            let mut d = no_local_run(4, seed);
            d.observe(Event::Rejected(Rejection::Timeout), &mut rep, t);
            let w = witness_of(&d, 1);
            assert!(w == 2 || w == 3, "seed {seed}: witness {w}");
            d.observe(Event::CrossCheck(CrossCheckOutcome::Disagreed), &mut rep, t);
            let w2 = witness_of(&d, 1);
            assert!(w2 != w && (w2 == 2 || w2 == 3), "seed {seed}: {w2}");
            d.observe(Event::CrossCheck(CrossCheckOutcome::Disagreed), &mut rep, t);
            assert_eq!(d.attempts()[1].rejected, Some(Rejection::CrossCheckFailed));
            // 0 and 1 are rejected: 3 is the only witness 2 can have.
            assert_eq!(witness_of(&d, 2), 3, "seed {seed}");
        }
    }

    // Regression (witness-liar): a peer the requester had caught lying in
    // an earlier delegation was still drawn as a witness, and could vote
    // a fellow liar through.
    #[test]
    fn a_witness_caught_lying_before_is_never_drawn_again() {
        let t = UnixMillis(0);
        let mut rep = Reputation::new(ReputationConfig::default());
        rep.observe(peer(2), Observation::WrongResult, t);
        for seed in 0..100 {
            let d = Delegation::with_reputation(
                TierSet::T2,
                (1..=4).map(peer).collect(),
                vec![false; 4],
                5,
                &mut SplitMix(seed),
                Some((&rep, t)),
            );
            let w = witness_of(&d, 0);
            assert!(w == 2 || w == 3, "seed {seed}: witness {w}");
        }
    }

    // Regression (item 4): a witness that did not answer passed the
    // candidate unchecked.
    #[test]
    fn silent_witness_never_passes_the_candidate() {
        let t = UnixMillis(0);
        for seed in 0..50 {
            let mut rep = Reputation::new(ReputationConfig::default());
            let mut d = no_local_run(6, seed);
            let mut asked = Vec::new();
            while let Decision::CrossCheck {
                candidate: 0,
                witness,
            } = d.decide()
            {
                asked.push(witness);
                d.observe(
                    Event::CrossCheck(CrossCheckOutcome::WitnessSilent),
                    &mut rep,
                    t,
                );
            }
            assert_eq!(asked.len(), MAX_WITNESSES, "seed {seed}: {asked:?}");
            asked.sort_unstable();
            asked.dedup();
            assert_eq!(asked.len(), MAX_WITNESSES, "a witness is asked once");
            assert!(matches!(
                d.attempts()[0].rejected,
                Some(Rejection::Inconclusive(_))
            ));
            assert_eq!(
                d.attempts()[0].checks,
                vec![("cross-check (inconclusive)", false); MAX_WITNESSES]
            );
            assert!(rep.record(&peer(1)).is_none(), "nothing held against it");
            assert!(matches!(
                d.decide(),
                Decision::CrossCheck { candidate: 1, .. }
            ));
        }
    }

    // Regression (item 4): one disagreeing witness rejected the candidate,
    // so a lying witness could sink honest peers.
    #[test]
    fn one_lying_witness_cannot_reject_an_honest_candidate() {
        let t = UnixMillis(0);
        for seed in 0..50 {
            let mut rep = Reputation::new(ReputationConfig::default());
            let mut d = no_local_run(3, seed);
            let liar = witness_of(&d, 0);
            d.observe(Event::CrossCheck(CrossCheckOutcome::Disagreed), &mut rep, t);
            assert_eq!(d.attempts()[0].rejected, None);
            let second = witness_of(&d, 0);
            assert_ne!(second, liar);
            d.observe(Event::CrossCheck(CrossCheckOutcome::Agreed), &mut rep, t);
            assert_eq!(d.decide(), Decision::Invoke { candidate: 0 });
            d.observe(Event::Invoked { receipt: None }, &mut rep, t);
            assert_eq!(d.decide(), Decision::Succeeded { candidate: 0 });
            assert_eq!(
                d.attempts()[0].checks,
                vec![("cross-check", false), ("cross-check", true)]
            );
            assert!(rep.score(&peer(1), t) > rep.score(&peer(9), t));
        }
    }

    #[test]
    fn two_disagreeing_witnesses_reject_the_candidate() {
        let t = UnixMillis(0);
        let mut rep = Reputation::new(ReputationConfig::default());
        let mut d = no_local_run(3, 4);
        d.observe(Event::CrossCheck(CrossCheckOutcome::Disagreed), &mut rep, t);
        d.observe(Event::CrossCheck(CrossCheckOutcome::Disagreed), &mut rep, t);
        assert_eq!(d.attempts()[0].rejected, Some(Rejection::CrossCheckFailed));
        assert!(rep.score(&peer(1), t) < rep.score(&peer(9), t));
    }

    #[test]
    fn a_candidate_nobody_can_witness_is_passed_over_not_trusted() {
        let t = UnixMillis(0);
        let mut rep = Reputation::new(ReputationConfig::default());
        // Two listings by one publisher: it cannot witness for itself.
        let mut d = Delegation::new(
            TierSet::T2,
            vec![peer(1), peer(1)],
            vec![false, false],
            5,
            &mut SplitMix(1),
        );
        assert_eq!(d.decide(), Decision::Failed);
        assert_eq!(d.attempts().len(), 2);
        for a in d.attempts() {
            let why = a.rejected.as_ref().map(ToString::to_string);
            assert_eq!(
                why.as_deref(),
                Some(
                    "inconclusive: no witness to cross-check against \
                     (not held against the executor)"
                )
            );
        }
        d.observe(Event::Invoked { receipt: None }, &mut rep, t);
        assert!(rep.is_empty());
    }

    #[test]
    fn witness_draws_replay_for_a_seed_and_vary_across_seeds() {
        let first = |seed| witness_of(&no_local_run(8, seed), 0);
        assert_eq!(first(11), first(11));
        let distinct: std::collections::HashSet<usize> = (0..64).map(first).collect();
        assert!(distinct.len() > 3, "{distinct:?}");
        assert!(!distinct.contains(&0));
    }

    // Regression (item 5): any replay error was a mismatch, fraud, a ban.
    #[test]
    /// Review finding: under T3 with replay due, a candidate whose
    /// component the requester cannot run (it withholds its package, or
    /// names none) was accepted unreplayed. Now it is passed over.
    fn t3_replay_cannot_be_escaped_by_withholding_the_package() {
        let t = UnixMillis(0);
        let mut rep = Reputation::new(ReputationConfig::default());
        let no_canary = TierSet {
            canary: false,
            ..TierSet::t3(1.0)
        };
        let mut d = Delegation::new(
            no_canary,
            vec![peer(1), peer(2)],
            vec![false, true],
            5,
            &mut SplitMix(1),
        );
        assert_eq!(d.decide(), Decision::Invoke { candidate: 0 });
        d.observe(
            Event::Invoked {
                receipt: Some(Ok(())),
            },
            &mut rep,
            t,
        );
        assert!(
            matches!(d.attempts()[0].rejected, Some(Rejection::Inconclusive(_))),
            "{:?}",
            d.attempts()
        );
        assert!(rep.record(&peer(1)).is_none(), "nothing proven against it");
        assert_eq!(d.decide(), Decision::Invoke { candidate: 1 });
        // Without replay due, an answer with a binding receipt is accepted.
        let mut d = Delegation::new(
            TierSet {
                canary: false,
                ..TierSet::t3(0.0)
            },
            vec![peer(1)],
            vec![false],
            5,
            &mut SplitMix(1),
        );
        d.observe(
            Event::Invoked {
                receipt: Some(Ok(())),
            },
            &mut rep,
            t,
        );
        assert_eq!(d.decide(), Decision::Succeeded { candidate: 0 });
    }

    #[test]
    fn replay_error_on_the_requesters_side_is_never_fraud() {
        let t = UnixMillis(0);
        let mut rep = Reputation::new(ReputationConfig::default());
        let mut d = Delegation::new(
            TierSet::t3(1.0),
            vec![peer(1), peer(2)],
            vec![true, true],
            5,
            &mut SplitMix(1),
        );
        d.observe(Event::Canary { correct: true }, &mut rep, t);
        d.observe(
            Event::Invoked {
                receipt: Some(Ok(())),
            },
            &mut rep,
            t,
        );
        assert_eq!(d.decide(), Decision::Replay { candidate: 0 });
        d.observe(
            Event::Replayed(ReplayOutcome::Inconclusive(
                "component package unavailable".into(),
            )),
            &mut rep,
            t,
        );
        assert!(!rep.is_banned(&peer(1)));
        assert!(rep.record(&peer(1)).is_none(), "nothing held against it");
        assert!(matches!(
            d.attempts()[0].rejected,
            Some(Rejection::Inconclusive(_))
        ));
        assert_eq!(
            d.attempts()[0].checks.last(),
            Some(&("replay (inconclusive)", false))
        );
        assert_eq!(d.decide(), Decision::Canary { candidate: 1 });
        // A real mismatch is still fraud.
        d.observe(Event::Canary { correct: true }, &mut rep, t);
        d.observe(
            Event::Invoked {
                receipt: Some(Ok(())),
            },
            &mut rep,
            t,
        );
        d.observe(
            Event::Replayed(ReplayOutcome::Mismatch("output differs".into())),
            &mut rep,
            t,
        );
        assert!(rep.is_banned(&peer(2)));
        assert_eq!(d.decide(), Decision::Failed);
    }

    // Regression (item 5): the requester's own failed canary run could only
    // be reported as a wrong answer.
    #[test]
    fn failed_local_canary_run_does_not_mark_the_candidate_wrong() {
        let t = UnixMillis(0);
        let mut rep = Reputation::new(ReputationConfig::default());
        let mut d = Delegation::new(
            TierSet::T2,
            vec![peer(1), peer(2)],
            vec![true, true],
            5,
            &mut SplitMix(1),
        );
        d.observe(
            Event::CanaryInconclusive("host error: out of memory".into()),
            &mut rep,
            t,
        );
        assert!(rep.record(&peer(1)).is_none());
        assert!(matches!(
            d.attempts()[0].rejected,
            Some(Rejection::Inconclusive(_))
        ));
        assert_eq!(
            d.attempts()[0].checks,
            vec![("canary (inconclusive)", false)]
        );
        assert_eq!(d.decide(), Decision::Canary { candidate: 1 });
    }

    // Regression (item 6): every accepted answer counted as a full success,
    // checked or not.
    #[test]
    fn unchecked_answers_earn_less_reputation_than_checked_ones() {
        let t = UnixMillis(0);
        let c = ReputationConfig::default();
        let mut rep = Reputation::new(c);
        // Tier 1 only: nothing checks the answer.
        let mut d = Delegation::new(TierSet::T1, vec![peer(1)], vec![true], 5, &mut SplitMix(1));
        d.observe(Event::Invoked { receipt: None }, &mut rep, t);
        assert_eq!(d.decide(), Decision::Succeeded { candidate: 0 });
        // A binding receipt alone is not a check of the answer either.
        let mut d = Delegation::new(
            TierSet {
                canary: false,
                ..TierSet::t3(0.0)
            },
            vec![peer(2)],
            vec![true],
            5,
            &mut SplitMix(1),
        );
        d.observe(
            Event::Invoked {
                receipt: Some(Ok(())),
            },
            &mut rep,
            t,
        );
        assert_eq!(d.decide(), Decision::Succeeded { candidate: 0 });
        // A passed canary is.
        let mut d = Delegation::new(TierSet::T2, vec![peer(3)], vec![true], 5, &mut SplitMix(1));
        d.observe(Event::Canary { correct: true }, &mut rep, t);
        d.observe(Event::Invoked { receipt: None }, &mut rep, t);
        assert_eq!(d.decide(), Decision::Succeeded { candidate: 0 });
        let s = |p| rep.score(&peer(p), t);
        assert!(s(1) < s(3) && s(2) < s(3), "{} {} {}", s(1), s(2), s(3));
        let successes = |p| rep.record(&peer(p)).map(|r| r.successes);
        assert_eq!(successes(1), Some(c.prior_success + c.unverified_weight));
        assert_eq!(successes(2), Some(c.prior_success + c.unverified_weight));
        assert_eq!(successes(3), Some(c.prior_success + 1.0));
    }
}
