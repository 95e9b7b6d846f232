//! How executors answer: honestly, or as a Sybil with one of the
//! [`Attack`] strategies; what they ran, what their receipts claim, and the
//! real `Request::check_receipt` that judges those claims.

use std::sync::LazyLock;

use errand_core::Digest;
use errand_core::receipt::{BindingError, InvocationContext, Receipt};
use errand_core::request::{Request, Seed, SignedRequest};
use errand_core::trust::Entropy;

use super::World;

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

    pub(super) fn index(self) -> usize {
        usize::from(!self.params) | usize::from(!self.component) << 1 | usize::from(!self.seed) << 2
    }
}

/// A real signed request and, for each [`Run`] a receipt could claim, a
/// real receipt claiming it: the sim asks `Request::check_receipt` whether
/// a claim answers the request, rather than restating the rule. Built once
/// (signing costs tens of microseconds); a check costs a few comparisons.
pub struct Binding {
    pub(super) request: Request,
    pub(super) digest: Digest,
    pub(super) receipts: Vec<Receipt>,
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
pub(super) struct Answer {
    /// No answer will come.
    pub(super) silent: bool,
    /// The capability is not there (drifted away).
    pub(super) gone: bool,
    /// The output is what running the request gives.
    pub(super) correct: bool,
    /// What the executor ran.
    pub(super) ran: Run,
    /// What its receipt says it ran.
    pub(super) claims: Run,
    /// Whether the receipt's signature holds.
    pub(super) signed: bool,
    /// Time the executor takes.
    pub(super) work_us: u64,
}

impl Answer {
    /// What a tier-3 requester makes of the receipt: the signature, then
    /// every field against the signed request.
    pub(super) fn receipt(&self) -> Result<(), String> {
        if !self.signed {
            return Err("receipt signature invalid (forged)".into());
        }
        Binding::get().check(self.claims).map_err(|e| e.to_string())
    }
}

impl World {
    /// How peer `pi`'s capability `ci` answers a request.
    pub(super) fn answer(&mut self, pi: usize, ci: usize, canary: bool) -> Answer {
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
    pub(super) fn takes_for_canary(&mut self, canary: bool) -> bool {
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
}
