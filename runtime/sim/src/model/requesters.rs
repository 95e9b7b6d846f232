//! The requesters: each runs workflows one after another; each step
//! queries its region's registries, merges their answers, orders the
//! candidates and runs `errand_core::trust::Delegation` to the end.

use std::sync::Arc;

use errand_core::PeerId;
use errand_core::descriptor::SignedDescriptor;
use errand_core::trust::{
    self, CandidateView, CrossCheckOutcome, Decision, Delegation, Entropy, Event, Observation,
    Rejection, ReplayOutcome, Reputation, Risk, TierSet, order_candidates,
};

use super::attacks::Answer;
use super::{Ev, Run, Selection, US, WorkflowRecord, World};

#[derive(Debug)]
pub(super) struct Active {
    pub(super) step: usize,
    pub(super) started: u64,
    /// When the current step's queries went out.
    pub(super) sent: u64,
    pub(super) right: u32,
    pub(super) accepted: u8,
    /// Accepted executors, with whether their step used tier 1.
    pub(super) chosen: Vec<(PeerId, bool)>,
    /// Answers still to come from the region's registries.
    pub(super) awaiting: u16,
    pub(super) answers: Vec<Vec<Arc<SignedDescriptor>>>,
    /// Candidates: (peer index, cap index, descriptor).
    pub(super) cands: Vec<(u32, u16, Arc<SignedDescriptor>)>,
    /// The current step's discovery round (0, then 1 for each widening),
    /// the candidates it asks for, how many the registries answered, and
    /// the peers its earlier rounds tried.
    pub(super) round: usize,
    pub(super) limit: u16,
    pub(super) answered: usize,
    pub(super) tried: Vec<PeerId>,
    pub(super) delegation: Option<Delegation>,
    /// The answer to the real request the delegation is judging, and who
    /// gave it (peer index).
    pub(super) last: Option<Answer>,
    pub(super) last_peer: Option<u32>,
    /// Whether this step met a stale descriptor.
    pub(super) stale: bool,
    /// Bumped at every operation, so late outcomes are ignored.
    pub(super) op: u32,
}

pub(super) struct Requester {
    pub(super) region: u16,
    pub(super) reputation: Reputation,
    pub(super) active: Option<Active>,
}

impl World {
    pub(super) fn start(&mut self, r: usize) {
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
    pub(super) fn query(&mut self, r: usize) {
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

    pub(super) fn tiers(&self, step: usize) -> TierSet {
        let risk = if step + 1 == self.p.steps {
            Risk::High
        } else {
            Risk::Medium
        };
        self.p.policy.tiers(risk, None)
    }

    pub(super) fn candidates(&mut self, r: usize, list: Vec<Arc<SignedDescriptor>>) {
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

    /// Sends a request to candidate `i` and schedules its outcome.
    pub(super) fn send(
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
                event: Box::new(event),
            },
        );
        Some(ans)
    }

    pub(super) fn bump(&mut self, r: usize) -> u32 {
        match self.requesters[r].active.as_mut() {
            Some(a) => {
                a.op = a.op.wrapping_add(1);
                a.op
            }
            None => 0,
        }
    }

    /// Asks the delegation what to do and does it.
    pub(super) fn advance(&mut self, r: usize) {
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
                        event: Box::new(event),
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
    pub(super) fn widen_or_fail(&mut self, r: usize) {
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

    pub(super) fn observe(&mut self, r: usize, event: Event) {
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

    pub(super) fn step_done(&mut self, r: usize, right: bool) {
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
    pub(super) fn finish(&mut self, r: usize, completed: bool) {
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
