//! The simulator's integration tests: they fail if the model is broken.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use errand_core::trust::{Policy, RiskPolicy, TierSet};
use errand_sim::model::{
    Attack, Params, RegistryRanking, Selection, World, analytic_random_success, simulate,
};
use errand_sim::scenario::{self, NoProgress, Options, Scenario, SimError};

fn none() -> Policy {
    Policy::Fixed(TierSet::NONE)
}

fn risk() -> Policy {
    Policy::Risk(RiskPolicy::default())
}

fn all_policies() -> Vec<(&'static str, Policy)> {
    errand_core::trust::standard_policies(1.0)
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn small_sybil_sweep(out: &Path, seed: u64, threads: usize) -> BTreeMap<String, Vec<u8>> {
    let opts = Options {
        seed,
        runs: Some(2),
        threads,
        sets: scenario::parse_sets(&[
            "workflows=40".into(),
            "alpha=0,0.3".into(),
            "policies=none,t2,risk".into(),
        ])
        .unwrap(),
        command: "errand sim sybil-sweep (test)".into(),
        ..Options::new(out.to_path_buf())
    };
    scenario::run(Scenario::SybilSweep, &opts, &NoProgress).unwrap();
    files(out)
}

#[test]
fn the_same_seed_gives_the_same_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let first = small_sybil_sweep(a.path(), 7, 2);
    // Another directory, one thread instead of two: the same bytes.
    let second = small_sybil_sweep(b.path(), 7, 1);
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        [
            "sybil-sweep-latency.svg",
            "sybil-sweep-success.svg",
            "sybil-sweep.csv",
            "sybil-sweep.md"
        ]
    );
    for (name, bytes) in &first {
        assert!(
            second[name] == *bytes,
            "{name} differs between identical runs"
        );
    }
    // A different seed changes the results.
    let third = small_sybil_sweep(c.path(), 8, 2);
    assert_ne!(first["sybil-sweep.csv"], third["sybil-sweep.csv"]);
    // And a single world is deterministic too, metric for metric.
    let p = Params {
        sybil_fraction: 0.3,
        drift_rate: 0.05,
        policy: risk(),
        workflows: 100,
        ..Params::default()
    };
    assert_eq!(simulate(&p, 3), simulate(&p, 3));
}

#[test]
fn a_wrong_output_is_never_counted_as_a_success() {
    let mut wrong_seen = 0;
    for attack in Attack::ALL {
        for (label, policy) in all_policies() {
            for drift in [0.0, 0.05] {
                let p = Params {
                    sybil_fraction: 0.3,
                    attack,
                    drift_rate: drift,
                    policy,
                    workflows: 60,
                    ..Params::default()
                };
                let m = simulate(&p, 11);
                assert_eq!(m.workflows as usize, m.records.len());
                assert_eq!(m.honest_banned, 0, "{label} {attack:?}");
                let counted = m.records.iter().filter(|r| r.success).count() as u64;
                assert_eq!(counted, m.successes, "{label} {attack:?}");
                for r in &m.records {
                    if r.success {
                        assert!(
                            r.all_right(p.steps),
                            "{label} {attack:?}: success with a wrong step: {r:?}"
                        );
                    }
                    if !r.all_right(p.steps) && usize::from(r.accepted) == p.steps {
                        wrong_seen += 1;
                    }
                }
                assert_eq!(m.latencies_ms.len() as u64, m.successes);
            }
        }
    }
    // The invariant was exercised: workflows that accepted a wrong answer
    // at every step's end exist, and none of them counted.
    assert!(
        wrong_seen > 100,
        "only {wrong_seen} wrong-but-complete workflows"
    );
}

#[test]
fn without_sybils_or_drift_every_policy_succeeds() {
    for (label, policy) in all_policies() {
        let m = simulate(
            &Params {
                policy,
                workflows: 300,
                ..Params::default()
            },
            5,
        );
        assert_eq!(m.workflows, 300, "{label}");
        assert!(m.success_rate() >= 0.99, "{label}: {}", m.success_rate());
        assert_eq!(m.wrong_accepted, 0, "{label}");
    }
}

#[test]
fn with_sybils_no_verification_degrades_and_tiers_hold() {
    let run = |alpha, policy| {
        simulate(
            &Params {
                sybil_fraction: alpha,
                policy,
                workflows: 400,
                ..Params::default()
            },
            21,
        )
        .success_rate()
    };
    let clean = run(0.0, none());
    let poisoned = run(0.3, none());
    let worse = run(0.5, none());
    assert!(
        poisoned < clean - 0.3,
        "none: {clean} at α=0, {poisoned} at α=0.3"
    );
    assert!(
        worse < poisoned,
        "none: {poisoned} at α=0.3, {worse} at α=0.5"
    );
    let tiered = run(0.5, risk());
    assert!(tiered >= 0.9, "risk-tiered at α=0.5: {tiered}");
}

#[test]
fn no_verification_matches_its_analytic_expectation_under_random_selection() {
    for alpha in [0.2, 0.4] {
        let p = Params {
            sybil_fraction: alpha,
            selection: Selection::Random,
            // Every provider is a candidate, so the pick is uniform over all.
            candidates: 100,
            policy: none(),
            workflows: 3_000,
            requesters: 20,
            ..Params::default()
        };
        let world = World::new(p.clone(), 99);
        let expected = analytic_random_success(world.providers(), p.steps);
        let m = world.run(None);
        let got = m.success_rate();
        let sigma = (expected * (1.0 - expected) / m.workflows as f64).sqrt();
        assert!(
            (got - expected).abs() <= 4.0 * sigma + 0.005,
            "α={alpha}: simulated {got:.4}, analytic {expected:.4} (σ {sigma:.4})"
        );
        // And the analytic value is not trivially 0 or 1.
        assert!((0.1..0.9).contains(&expected), "{expected}");
    }
}

#[test]
fn a_descriptor_that_is_not_refreshed_stops_being_returned_after_its_ttl() {
    let p = Params {
        peers: 40,
        ttl_ms: 6_000,
        refresh_ms: 2_000,
        workflows: 1,
        ..Params::default()
    };
    let mut w = World::new(p, 1);
    w.advance_to(5_000);
    let kind = 0;
    let before = w.registry_answer(0, kind);
    assert!(before.len() >= 10, "{before:?}");
    let victim = before[0];
    let other = before[1];
    w.stop_peer(victim);
    let stopped = 5_000;
    // Still listed shortly after it stopped: soft state lingers.
    w.advance_to(stopped + 500);
    assert!(w.registry_answer(0, kind).contains(&victim));
    // Gone once its TTL ran out (at most one TTL after its last refresh,
    // plus one expiry sweep and a link's latency).
    w.advance_to(stopped + 6_000 + 1_100);
    let after = w.registry_answer(0, kind);
    assert!(!after.contains(&victim), "still listed: {after:?}");
    // Peers that keep refreshing stay.
    assert!(after.contains(&other));
    w.advance_to(stopped + 60_000);
    assert!(w.registry_answer(0, kind).contains(&other));
}

/// A node refreshes all its descriptors in one `Publish` message; the
/// simulator once sent one message per capability, overstating refresh
/// traffic by the number of capabilities a peer hosts.
#[test]
fn a_peers_refresh_is_one_message_for_all_its_capabilities() {
    let (peers, secs) = (60u64, 20u64);
    let run = |caps| {
        let p = Params {
            peers: peers as usize,
            caps_per_peer: caps,
            sybil_fraction: 0.0,
            drift_rate: 0.0,
            refresh_ms: 1_000,
            workflows: 1_000_000,
            ..Params::default()
        };
        World::new(p, 1).run(Some(secs * 1_000))
    };
    let (one, three) = (run(1), run(3));
    // A message and its acknowledgement per peer per refresh, give or
    // take each peer's first one (their phases are random).
    let expected = 2 * peers * secs;
    for m in [&one, &three] {
        assert!(
            m.publish_messages.abs_diff(expected) <= 2 * peers,
            "{} publish messages, expected about {expected}",
            m.publish_messages
        );
    }
    // The bytes still grow with what the messages carry.
    assert!(
        three.publish_bytes as f64 > 2.5 * one.publish_bytes as f64,
        "{} bytes for three capabilities a peer, {} for one",
        three.publish_bytes,
        one.publish_bytes
    );
}

/// An answer carries each descriptor as encoded, signature included: the
/// same bytes its publisher sent. The simulator once counted every
/// answered descriptor's signature twice.
#[test]
fn an_answered_descriptor_costs_what_its_publisher_sent() {
    let p = Params {
        peers: 1,
        kinds: 1,
        caps_per_peer: 1,
        requesters: 1,
        workflows: 1,
        steps: 1,
        regions: 1,
        registries: 1,
        sybil_fraction: 0.0,
        policy: none(),
        ..Params::default()
    };
    let m = World::new(p, 1).run(None);
    assert_eq!((m.workflows, m.successes), (1, 1));
    // One query (a message and its answer) to the one registry.
    assert_eq!(m.discovery_messages, 2);
    // Each publish: the descriptor as encoded, 16 bytes of framing, and a
    // 16-byte acknowledgement.
    let publishes = m.publish_messages / 2;
    assert!(publishes > 0);
    let descriptor = m.publish_bytes / publishes - 32;
    assert_eq!(m.publish_bytes, publishes * (descriptor + 32));
    // The query (160 bytes with its framing), then the answer: the one
    // descriptor and 32 bytes of framing.
    assert_eq!(m.discovery_bytes, 160 + descriptor + 32);
}

/// A node whose capability changes republishes all its descriptors in one
/// message and restarts its refresh timer; the simulator once sent the
/// changed descriptor alone and kept the old timer running.
#[test]
fn a_change_republishes_all_of_a_peers_descriptors_and_restarts_its_refresh() {
    let run = |caps, refresh_ms| {
        let p = Params {
            peers: 60,
            caps_per_peer: caps,
            sybil_fraction: 0.0,
            // About one change per capability per second.
            drift_rate: 1.0,
            refresh_ms,
            ttl_ms: 3 * refresh_ms,
            workflows: 1_000_000,
            ..Params::default()
        };
        World::new(p, 1).run(Some(30_000))
    };
    let per_message =
        |m: &errand_sim::model::Metrics| m.publish_bytes as f64 / (m.publish_messages as f64 / 2.0);
    // Changes come far more often than the 20 s refresh, so nearly every
    // message is a change's: with two capabilities a peer it carries both
    // when both are alive (1.5x here; 1.0x when a change sent only itself).
    let (one, two) = (run(1, 20_000), run(2, 20_000));
    let ratio = per_message(&two) / per_message(&one);
    assert!(
        ratio > 1.3,
        "a change message carries {ratio:.2}x the bytes with two capabilities a peer"
    );
    // Each change restarts the timer: with changes every second or so,
    // a 2 s refresh timer seldom fires, so messages stay near one per
    // change (1.03x here), not one per change plus one per 2 s (1.21x).
    let fast = run(2, 2_000);
    assert!(
        (fast.publish_messages as f64) < 1.1 * two.publish_messages as f64,
        "{} messages with a 2 s refresh, {} with 20 s",
        fast.publish_messages,
        two.publish_messages
    );
}

#[test]
fn poisoned_relevance_ranking_starves_the_optimistic_policy_and_widening_recovers_the_tiers() {
    let run = |ranking, policy, widen| {
        simulate(
            &Params {
                sybil_fraction: 0.2,
                ranking,
                policy,
                widen,
                workflows: 200,
                ..Params::default()
            },
            4,
        )
        .success_rate()
    };
    // 20 stuffed Sybils fill the ten places of every answer.
    assert!(run(RegistryRanking::Relevance, none(), 2) < 0.02);
    // A requester that asks once starves with them (index poisoning) ...
    let once = run(RegistryRanking::Relevance, risk(), 0);
    assert!(once < 0.02, "{once}");
    // ... one that widens the search after a round of liars finds the
    // honest providers ranked below them.
    let widened = run(RegistryRanking::Relevance, risk(), 2);
    assert!(widened >= 0.9, "{widened}");
    // Sampled answers are a fair sample: the optimistic pick is honest
    // about 80% of the time per step, and the tiers recover the rest.
    let sampled = run(RegistryRanking::Sampled, none(), 2);
    assert!((0.5..0.8).contains(&sampled), "{sampled}");
    assert!(run(RegistryRanking::Sampled, risk(), 2) >= 0.95);
}

#[test]
fn canary_aware_sybils_beat_canaries_but_not_replay() {
    // A perfect canary detector (the model before detector_accuracy).
    let run = |policy| {
        simulate(
            &Params {
                sybil_fraction: 0.4,
                attack: Attack::CanaryAware,
                detector_accuracy: 1.0,
                policy,
                workflows: 300,
                ..Params::default()
            },
            8,
        )
        .success_rate()
    };
    let canaries = run(Policy::Fixed(TierSet::T2));
    let replay = run(Policy::Fixed(TierSet::t3(1.0)));
    assert!(
        canaries < 0.6,
        "T1+T2 against canary-aware Sybils: {canaries}"
    );
    assert!(replay > 0.9, "T1+T2+T3 with replay: {replay}");
}

#[test]
fn stale_failures_grow_with_the_ttl_and_refresh_traffic_shrinks() {
    let out = tempfile::tempdir().unwrap();
    let opts = Options {
        runs: Some(2),
        sets: scenario::parse_sets(&[
            "ttl_ms=2000,60000".into(),
            "workflows=150".into(),
            "policies=none".into(),
        ])
        .unwrap(),
        ..Options::new(out.path().to_path_buf())
    };
    scenario::run(Scenario::TtlSweep, &opts, &NoProgress).unwrap();
    let csv = std::fs::read_to_string(out.path().join("ttl-sweep.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<f64>> = lines
        .map(|l| {
            l.split(',')
                .skip(1)
                .map(|x| x.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    let (stale, publish) = (
        col("stale_failures") - 1,
        col("publish_msgs_per_peer_s") - 1,
    );
    assert_eq!(rows.len(), 2);
    assert!(rows[1][stale] > rows[0][stale] + 0.05, "{csv}");
    assert!(rows[1][publish] < rows[0][publish] / 5.0, "{csv}");
    let md = std::fs::read_to_string(out.path().join("ttl-sweep.md")).unwrap();
    assert!(md.contains("knee"), "{md}");
}

#[test]
fn every_scenario_writes_its_files() {
    for (which, sets, expect) in [
        (
            Scenario::SizeSweep,
            vec!["peers=20,60", "workflows=30"],
            vec![
                "size-sweep.csv",
                "size-sweep.md",
                "size-sweep-discovery.svg",
                "size-sweep-overhead.svg",
            ],
        ),
        (
            Scenario::DriftSweep,
            vec!["drift=0,0.1", "workflows=30", "policies=none,risk"],
            vec![
                "drift-sweep.csv",
                "drift-sweep.md",
                "drift-sweep-success.svg",
            ],
        ),
    ] {
        let out = tempfile::tempdir().unwrap();
        let opts = Options {
            runs: Some(1),
            sets: scenario::parse_sets(&sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
            ..Options::new(out.path().to_path_buf())
        };
        let outcome = scenario::run(which, &opts, &NoProgress).unwrap();
        let got = files(out.path());
        for f in expect {
            assert!(got.contains_key(f), "{which:?}: no {f} in {:?}", got.keys());
            assert!(!got[f].is_empty());
        }
        assert!(outcome.events > 0);
        // A header, then a row per series and point: one series of two
        // sizes; two policies at two rates.
        let rows = if which == Scenario::DriftSweep { 4 } else { 2 };
        let csv = String::from_utf8_lossy(&got[&format!("{}.csv", which.name())]).into_owned();
        assert_eq!(csv.lines().count(), 1 + rows, "{csv}");
    }
}

#[test]
fn bad_settings_are_refused_by_name() {
    let out = tempfile::tempdir().unwrap();
    let run = |sets: &[&str]| {
        let opts = Options {
            runs: Some(1),
            sets: scenario::parse_sets(&sets.iter().map(|s| s.to_string()).collect::<Vec<_>>())?,
            ..Options::new(out.path().to_path_buf())
        };
        scenario::run(Scenario::SybilSweep, &opts, &NoProgress).map(|_| ())
    };
    let msg = |r: Result<(), SimError>| r.unwrap_err().to_string();
    assert!(msg(run(&["nope=1"])).contains("unknown setting `nope`"));
    assert!(msg(run(&["alpha=2"])).contains("setting `alpha`"));
    assert!(msg(run(&["attack=polite"])).contains("param-swap"));
    assert!(msg(run(&["detector_accuracy=1.5"])).contains("setting `detector_accuracy`"));
    assert!(msg(run(&["replay_fail=-0.1"])).contains("setting `replay_fail`"));
    assert!(msg(run(&["candidates=0"])).contains("between 1 and 100"));
    assert!(msg(run(&["workflows"])).contains("is not key=value"));
    assert!(msg(run(&["regions=2", "region_ms=1,2,3"])).contains("regions²"));
    assert!(
        Scenario::parse("everything")
            .unwrap_err()
            .to_string()
            .contains("sybil-sweep")
    );
    let zero = Options {
        runs: Some(0),
        ..Options::new(out.path().to_path_buf())
    };
    assert!(
        scenario::run(Scenario::SybilSweep, &zero, &NoProgress)
            .unwrap_err()
            .to_string()
            .contains("--runs")
    );
    // Nothing was written by the refused runs.
    assert!(files(out.path()).is_empty());
}

/// Issue 10, item 9: replay is not a perfect oracle. It runs the request:
/// an honest run matches, a cheating run whose receipt answers the request
/// is fraud, and the requester's own run fails now and then
/// (`replay_fail`), which is inconclusive.
#[test]
fn sim_replay_is_not_a_perfect_oracle() {
    let run = |alpha, replay_fail| {
        simulate(
            &Params {
                sybil_fraction: alpha,
                policy: Policy::Fixed(TierSet::t3(1.0)),
                replay_fail,
                workflows: 300,
                ..Params::default()
            },
            12,
        )
    };
    // Honest executors, a replay that never fails: every replay matches.
    let perfect = run(0.0, 0.0);
    assert!(perfect.replays > 500, "{}", perfect.replays);
    assert_eq!(perfect.replay_inconclusive, 0);
    assert_eq!(perfect.replay_mismatches, 0);
    // The default: about one replay in a hundred is inconclusive.
    assert_eq!(Params::default().replay_fail, 0.01);
    let default = run(0.0, Params::default().replay_fail);
    assert!(default.replay_inconclusive > 0);
    assert!(default.replay_inconclusive * 20 < default.replays);
    assert_eq!(default.replay_mismatches, 0);
    // A flaky requester: inconclusive replays cost fallbacks, not fraud.
    let flaky = run(0.0, 0.3);
    let share = flaky.replay_inconclusive as f64 / flaky.replays as f64;
    assert!((0.25..0.35).contains(&share), "{share}");
    assert_eq!(flaky.replay_mismatches, 0);
    assert!(flaky.fallbacks > perfect.fallbacks);
    assert!(flaky.success_rate() > 0.95, "{}", flaky.success_rate());
    // Wrong output under a receipt that answers the request, from Sybils
    // that pass every canary: the replay of the request contradicts it.
    let cheats = simulate(
        &Params {
            sybil_fraction: 0.3,
            attack: Attack::CanaryAware,
            detector_accuracy: 1.0,
            policy: Policy::Fixed(TierSet::t3(1.0)),
            workflows: 300,
            ..Params::default()
        },
        12,
    );
    assert!(cheats.replay_mismatches > 0);
    assert_eq!(cheats.wrong_accepted, 0);
    assert_eq!(cheats.honest_banned, 0);
}

/// Issue 10, item 1: an executor that runs cheaper parameters and signs
/// that honestly. With receipts checked, `Request::check_receipt` rejects
/// it by name (`params`) even without replay; without them, canaries see
/// it only when it fails to recognise them.
#[test]
fn param_swap_is_caught_by_binding_in_the_sim() {
    let run = |policy, accuracy| {
        simulate(
            &Params {
                sybil_fraction: 0.4,
                attack: Attack::ParamSwap,
                detector_accuracy: accuracy,
                policy,
                workflows: 300,
                ..Params::default()
            },
            13,
        )
    };
    // Receipts bound, no canary, no replay: binding alone.
    let receipts_only = TierSet {
        reputation: true,
        canary: false,
        evidence: true,
        replay: 0.0,
    };
    let bound = run(Policy::Fixed(receipts_only), 1.0);
    assert_eq!(bound.replays, 0);
    assert!(bound.params_mismatches > 50, "{}", bound.params_mismatches);
    assert_eq!(bound.invalid_receipts, bound.params_mismatches);
    assert_eq!(bound.wrong_accepted, 0);
    assert!(bound.success_rate() > 0.9, "{}", bound.success_rate());
    assert_eq!(bound.honest_banned, 0);
    // T1+T2+T3 without replay: the same.
    let t3 = run(
        Policy::Fixed(TierSet::t3(0.0)),
        Params::default().detector_accuracy,
    );
    assert_eq!(t3.wrong_accepted, 0);
    assert!(t3.params_mismatches > 0);
    // Without receipts, a perfect detector hides it from canaries; a
    // detector at the target accuracy does not.
    let blind = run(Policy::Fixed(TierSet::T2), 1.0);
    let seen = run(Policy::Fixed(TierSet::T2), 0.55);
    let none = run(none(), 0.55);
    assert_eq!(blind.invalid_receipts + seen.invalid_receipts, 0);
    assert!(blind.success_rate() < 0.6, "{}", blind.success_rate());
    assert!(
        seen.success_rate() > blind.success_rate() + 0.15,
        "T1+T2: {} at accuracy 0.55, {} at 1",
        seen.success_rate(),
        blind.success_rate()
    );
    assert!(none.success_rate() < seen.success_rate());
}

/// Issue 10, item 5: a replay that fails on the requester's side is
/// inconclusive, never fraud: an honest executor is never banned, however
/// many inconclusive replays it gets.
#[test]
fn inconclusive_replays_never_ban_an_honest_executor() {
    for (alpha, replay_fail) in [(0.0, 1.0), (0.0, 0.5), (0.3, 0.5)] {
        let m = simulate(
            &Params {
                sybil_fraction: alpha,
                policy: Policy::Fixed(TierSet::t3(1.0)),
                replay_fail,
                workflows: 400,
                ..Params::default()
            },
            14,
        );
        assert!(m.replay_inconclusive > 300, "{}", m.replay_inconclusive);
        assert_eq!(m.honest_banned, 0, "α={alpha}, replay_fail={replay_fail}");
        if alpha == 0.0 {
            assert_eq!(m.replay_mismatches, 0);
            assert_eq!(m.wrong_accepted, 0);
        }
        if replay_fail == 1.0 {
            // Nothing can be confirmed, so every step fails, but no honest
            // executor is held responsible.
            assert_eq!(m.replay_inconclusive, m.replays);
            assert_eq!(m.successes, 0);
        }
    }
}

/// The canary-aware attacker's success follows the detector's accuracy
/// (cheating on real work with probability A, on canaries with 1 - A);
/// `canary_detect` still overrides it with the older model.
#[test]
fn canary_detection_follows_the_detector_accuracy() {
    let run = |accuracy, detect: Option<f64>| {
        simulate(
            &Params {
                sybil_fraction: 0.4,
                attack: Attack::CanaryAware,
                detector_accuracy: accuracy,
                canary_detect: detect,
                policy: Policy::Fixed(TierSet::T2),
                workflows: 300,
                ..Params::default()
            },
            15,
        )
        .success_rate()
    };
    assert_eq!(
        Params::default().detector_accuracy,
        errand_sim::model::DETECTOR_ACCURACY
    );
    let coin = run(0.5, None);
    let target = run(0.55, None);
    let perfect = run(1.0, None);
    let legacy = run(0.55, Some(1.0));
    assert!(perfect < 0.6, "{perfect}");
    assert!(legacy < 0.6, "{legacy}");
    assert!(target > perfect + 0.15, "{target} vs {perfect}");
    assert!(coin >= target - 0.05, "{coin} vs {target}");
}
