//! The trust plane end to end: real nodes (in process, real QUIC on
//! loopback) with cheating executors, and the workflow runner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand::client::Client;
use errand::config::{NodeConfig, PeerAddr};
use errand::node::Node;
use errand::workflow::{InputSpec, Runner, RunnerConfig, StepSpec, WorkflowFile, WorkflowReport};
use errand_core::bounded::{BBytes, BVec};
use errand_core::descriptor::{NetAddr, SignedDescriptor};
use errand_core::package::Package;
use errand_core::trust::{Policy, Risk, RiskPolicy, TierSet};
use errand_core::wire::{ErrorCode, InvokeRequest, InvokeResponse, Request, Response, WireError};
use errand_core::{PeerId, SecretKey, signed};
use errand_host::{Host, Invocation, ReceiptInfo};

use crate::support::{Sandbox, code, pack_example, rand_seed, rt, shared_host, stdout};

/// A network of in-process nodes in a temporary folder.
struct Net {
    dir: tempfile::TempDir,
    registry: Node,
    nodes: Vec<Node>,
    author: SecretKey,
}

impl Net {
    fn new() -> Net {
        let dir = tempfile::tempdir().unwrap();
        // Strict relevance ranking: the attractive Sybil descriptors these
        // tests publish are then always offered first, the worst case the
        // trust tiers must handle (the default sampled ranking would only
        // offer them first some of the time).
        let registry = start(
            &dir.path().join("registry"),
            "[registry]\nranking = \"relevance\"\n",
        );
        Net {
            dir,
            registry,
            nodes: Vec::new(),
            author: SecretKey::from_seed(rand_seed()),
        }
    }

    fn reg(&self) -> PeerAddr {
        PeerAddr {
            peer: self.registry.peer_id(),
            addr: self.registry.local_addr(),
        }
    }

    /// Starts an executor hosting `tools`, with extra config (an adversary).
    fn executor(&mut self, name: &str, tools: &[&str], extra: &str) -> PeerId {
        let author = self.author.clone();
        self.executor_by(name, tools, extra, &author)
    }

    /// Starts an executor hosting `tools` packaged by `author`.
    fn executor_by(
        &mut self,
        name: &str,
        tools: &[&str],
        extra: &str,
        author: &SecretKey,
    ) -> PeerId {
        let dir = self.dir.path().join(name);
        let packages = dir.join("packages");
        for t in tools {
            pack_example(t, &packages, author, None);
        }
        self.start_executor(name, extra)
    }

    /// Starts an executor on whatever is in its packages folder.
    fn start_executor(&mut self, name: &str, extra: &str) -> PeerId {
        let dir = self.dir.path().join(name);
        let cfg = format!(
            "packages = \"packages\"\n[[registries]]\npeer = \"{}\"\naddr = \"{}\"\n[publish]\nttl_ms = 10000\nrefresh_ms = 2000\nscan_ms = 60000\n{extra}",
            self.registry.peer_id(),
            self.registry.local_addr()
        );
        let n = start(&dir, &cfg);
        let id = n.peer_id();
        self.nodes.push(n);
        id
    }

    /// Waits until the registry holds `n` live descriptors.
    fn wait_for(&self, n: u64) {
        for _ in 0..200 {
            if self.registry.status().registry_entries.unwrap_or(0) >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("registry never reached {n} descriptors");
    }

    /// A runner that has already seen each of `veterans` serve well (three
    /// checked successes), so it tries them before any newcomer: a
    /// newcomer's advertised QoS and registry rank buy it nothing, so this
    /// is how a test puts an adversary first (as one that built a record).
    fn runner_trusting(&self, policy: Policy, state: Option<&Path>, veterans: &[PeerId]) -> Runner {
        let mut r = self.runner(policy, state);
        let now = errand::node::now();
        for p in veterans {
            for _ in 0..3 {
                r.reputation_mut()
                    .observe(*p, errand_core::trust::Observation::Success, now);
            }
        }
        r
    }

    fn runner(&self, policy: Policy, state: Option<&Path>) -> Runner {
        let client =
            rt().block_on(async { Client::new(SecretKey::from_seed(rand_seed())).unwrap() });
        Runner::new(
            client,
            shared_host(),
            vec![self.reg()],
            RunnerConfig {
                policy,
                fallback_budget: 6,
                exploration: 0.0,
                step_timeout: Duration::from_secs(5),
                evidence_dir: Some(self.dir.path().join("evidence")),
                ..RunnerConfig::default()
            },
            state,
        )
        .unwrap()
        .with_seed(11)
    }
}

fn start(dir: &Path, extra: &str) -> Node {
    std::fs::create_dir_all(dir).unwrap();
    errand::keystore::save(&SecretKey::from_seed(rand_seed()), &dir.join("key"), true).unwrap();
    std::fs::write(
        dir.join("node.toml"),
        format!("key = \"key\"\nlisten = \"127.0.0.1:0\"\nstorage = \"data\"\n{extra}"),
    )
    .unwrap();
    let cfg = NodeConfig::load(&dir.join("node.toml")).unwrap();
    rt().block_on(Node::start_with_host(cfg, Some(shared_host())))
        .unwrap()
}

/// Makes an executor the most attractive candidate by its claims: first in
/// the relevance-ranked registry's answers (what the optimistic policy
/// takes), though claims no longer order newcomers under reputation.
const ATTRACTIVE: &str = "advertise_latency_ms = 1\nadvertise_cost = 0\n";

fn count_step(input: &str, risk: Risk) -> WorkflowFile {
    WorkflowFile {
        name: "count".into(),
        description: None,
        steps: vec![StepSpec {
            name: "count".into(),
            intent: "count the words in a text".into(),
            input: InputSpec::Text(input.into()),
            params: BTreeMap::new(),
            risk,
            tiers: None,
            max_latency_ms: None,
            max_cost: None,
            input_type: None,
            output_type: None,
            capability: Some("text-stats".into()),
            compatible: None,
            fuel: None,
            author: None,
            component: None,
        }],
    }
}

fn run(runner: &mut Runner, wf: &WorkflowFile) -> WorkflowReport {
    rt().block_on(runner.run(wf, Path::new("."), errand::node::now()))
        .unwrap()
}

fn right_count(report: &WorkflowReport, text: &str) -> bool {
    report.outputs.get("count") == Some(&serde_json::to_vec(&text_stats::stats(text, 10)).unwrap())
}

fn executor_of(report: &WorkflowReport) -> String {
    report.steps[0].executor.clone().unwrap_or_default()
}

#[test]
fn tier2_catches_a_sybil_returning_wrong_output_and_fallback_succeeds() {
    let mut net = Net::new();
    let sybil = net.executor(
        "sybil",
        &["text-stats"],
        &format!("[adversary]\nbehaviour = \"wrong-output\"\n{ATTRACTIVE}"),
    );
    let honest = net.executor("honest", &["text-stats"], "");
    net.wait_for(2);
    let text = "one fish two fish red fish blue fish";

    // Without verification, the attractive Sybil's wrong answer is taken.
    let mut optimistic = net.runner(Policy::Fixed(TierSet::NONE), None);
    let r = run(&mut optimistic, &count_step(text, Risk::Low));
    assert!(r.succeeded, "the requester sees nothing wrong");
    assert!(executor_of(&r).starts_with(&sybil.to_string()));
    assert!(!right_count(&r, text), "and the output is wrong");

    // With canaries, the Sybil is caught and the next candidate serves.
    let mut careful = net.runner_trusting(Policy::Fixed(TierSet::T2), None, &[sybil]);
    let r = run(&mut careful, &count_step(text, Risk::Low));
    assert!(r.succeeded, "{r:#?}");
    assert!(right_count(&r, text));
    let s = &r.steps[0];
    assert_eq!(
        s.attempts[0].rejected.as_deref(),
        Some("wrong answer to the canary"),
        "{s:#?}"
    );
    assert!(s.attempts[0].peer.starts_with(&sybil.to_string()));
    assert_eq!(s.fallbacks, 1);
    assert!(executor_of(&r).starts_with(&honest.to_string()));
    let now = errand::node::now();
    assert!(careful.reputation().score(&sybil, now) < careful.reputation().score(&honest, now));
}

#[test]
fn tier3_catches_a_node_that_forges_receipts() {
    let mut net = Net::new();
    let forger = net.executor(
        "forger",
        &["text-stats"],
        &format!("[adversary]\nbehaviour = \"forge-receipt\"\n{ATTRACTIVE}"),
    );
    net.executor("honest", &["text-stats"], "");
    net.wait_for(2);
    let text = "receipts matter";
    // Tier 2 alone accepts it: its output is right.
    let r = run(
        &mut net.runner_trusting(Policy::Fixed(TierSet::T2), None, &[forger]),
        &count_step(text, Risk::Low),
    );
    assert!(executor_of(&r).starts_with(&forger.to_string()));
    // Tier 3 refuses it, already at the canary's receipt.
    let r = run(
        &mut net.runner_trusting(Policy::Fixed(TierSet::t3(0.0)), None, &[forger]),
        &count_step(text, Risk::High),
    );
    assert!(r.succeeded);
    assert!(right_count(&r, text));
    let first = &r.steps[0].attempts[0];
    assert!(first.peer.starts_with(&forger.to_string()));
    assert!(
        first
            .rejected
            .as_deref()
            .unwrap_or("")
            .starts_with("invalid receipt"),
        "{first:?}"
    );
}

#[test]
fn replay_catches_a_node_running_a_different_component_and_keeps_a_fraud_proof() {
    let mut net = Net::new();
    let impostor = pack_example(
        "markdown",
        &net.dir.path().join("impostor"),
        &net.author,
        None,
    );
    let liar = net.executor(
        "liar",
        &["text-stats"],
        &format!(
            "[adversary]\nbehaviour = \"different-component\"\nimpostor = {:?}\n{ATTRACTIVE}",
            impostor.display().to_string()
        ),
    );
    net.executor("honest", &["text-stats"], "");
    net.wait_for(2);
    // Receipts checked and every run replayed, no canary: replay alone must
    // catch it (the liar's receipt names the advertised component and binds
    // the output it returned).
    let replay_only = TierSet {
        reputation: true,
        canary: false,
        evidence: true,
        replay: 1.0,
    };
    let mut runner = net.runner_trusting(Policy::Fixed(replay_only), None, &[liar]);
    let text = "what really ran";
    let r = run(&mut runner, &count_step(text, Risk::High));
    assert!(r.succeeded);
    assert!(right_count(&r, text));
    let first = &r.steps[0].attempts[0];
    assert!(first.peer.starts_with(&liar.to_string()));
    assert!(
        first.checks.contains(&("receipt".to_owned(), true)),
        "the receipt itself looked fine: {first:?}"
    );
    assert!(
        first.rejected.as_deref().unwrap_or("").contains("fraud"),
        "{first:?}"
    );
    assert_eq!(runner.reputation().score(&liar, errand::node::now()), 0.0);
    // The fraud proof verifies offline: the liar's own signature convicts it.
    let proof = r.steps[0]
        .evidence
        .iter()
        .find(|p| p.contains("FRAUD"))
        .expect("fraud proof kept");
    let o = Sandbox::new().errand(&["verify", proof, "--replay"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("signature        pass"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("replay-output    FAIL"),
        "{}",
        stdout(&o)
    );
}

/// A minimal honest executor that records every invocation it receives.
struct Recorder {
    key: SecretKey,
    host: Host,
    package: Package,
    seen: Mutex<Vec<InvokeRequest>>,
}

impl errand_net::Handler for Recorder {
    async fn handle(&self, peer: PeerId, req: Request) -> Response {
        match req {
            Request::FetchPackage(_) => Response::Package(Some(Box::new(self.package.clone()))),
            Request::Invoke(inv) => {
                self.seen.lock().unwrap().push((*inv).clone());
                let asked = inv.request.body().clone();
                let prepared = self.host.prepare(&self.package.component).unwrap();
                let mut limits = errand_host::Limits {
                    fuel: asked.fuel,
                    ..Default::default()
                };
                if let Some(l) = &asked.limits {
                    limits = errand_host::Limits::for_replay(asked.fuel, l, &limits);
                }
                let exec = self
                    .host
                    .run(
                        &prepared,
                        &Invocation {
                            input: &inv.input,
                            request_id: asked.request_id,
                            seed: asked.seed,
                            context: asked.context.clone(),
                            limits,
                            keep_trace: inv.want_trace,
                        },
                    )
                    .unwrap();
                let receipt = self
                    .host
                    .sign_receipt(
                        &ReceiptInfo {
                            executor: &self.key,
                            requester: peer,
                            request_id: asked.request_id,
                            request: inv.request.digest(),
                            seed: asked.seed,
                            capability: Some(errand_core::receipt::CapabilityRef {
                                name: self.package.descriptor.body().name.clone(),
                                version: self.package.descriptor.body().version,
                                seq: 1,
                            }),
                            component: prepared.digest(),
                            context: asked.context.clone(),
                            limits,
                        },
                        &exec,
                    )
                    .unwrap();
                Response::Invoked(Box::new(InvokeResponse {
                    output: BBytes::new(exec.output).unwrap(),
                    receipt,
                    trace: exec.trace.map(|t| BVec::new(t).unwrap()),
                }))
            }
            _ => Response::Error(WireError::new(ErrorCode::Unsupported, "recorder")),
        }
    }
}

#[test]
fn a_canary_is_indistinguishable_from_a_real_request() {
    let net = Net::new();
    let key = SecretKey::from_seed(rand_seed());
    let pkg_path = pack_example("text-stats", &net.dir.path().join("rec"), &key, None);
    let package: Package = signed::decode(&std::fs::read(&pkg_path).unwrap()).unwrap();
    let recorder = Arc::new(Recorder {
        key: key.clone(),
        host: shared_host(),
        package: package.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let addr = rt().block_on(async {
        let ep = errand_net::Endpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            key.clone(),
            Default::default(),
        )
        .unwrap();
        tokio::spawn(errand_net::serve(ep.clone(), recorder.clone()));
        // Publish the recorder's descriptor.
        let mut d = package.descriptor.body().clone();
        d.addrs = BVec::new(vec![NetAddr::Quic(ep.local_addr().unwrap())]).unwrap();
        d.seq = 1;
        d.issued_at = errand::node::now();
        let c = Client::new(SecretKey::from_seed(rand_seed())).unwrap();
        c.request(
            net.reg(),
            &Request::Publish(BVec::new(vec![SignedDescriptor::sign(d, &key).unwrap()]).unwrap()),
        )
        .await
        .unwrap();
        ep.local_addr().unwrap()
    });
    let _ = addr;
    let mut runner = net.runner(Policy::Fixed(TierSet::t3(0.0)), None);
    let mut wf = count_step("a real sentence to count, from a real user", Risk::Medium);
    wf.steps[0].params.insert("top".into(), "3".into());
    let r = run(&mut runner, &wf);
    assert!(r.succeeded, "{r:#?}");
    let seen = recorder.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "a canary and the real request");
    let (a, b) = (&seen[0], &seen[1]);
    let (qa, qb) = (a.request.body(), b.request.body());
    // Same shape on the wire: same target, same options, the same
    // parameters and declared time, fresh random ids and seeds.
    assert_eq!(
        (
            &qa.capability,
            qa.component,
            qa.fuel,
            qa.limits,
            a.want_trace
        ),
        (
            &qb.capability,
            qb.component,
            qb.fuel,
            qb.limits,
            b.want_trace
        )
    );
    assert_eq!(qa.context, qb.context);
    assert_ne!(qa.request_id, qb.request_id);
    assert_ne!(qa.seed, qb.seed);
    // And the canary's input is not a public example the executor could
    // recognise: it is a fresh variant.
    let manifest: errand_core::manifest::Manifest = toml::from_str(&package.manifest).unwrap();
    for ex in &manifest.examples {
        let bytes = ex.bytes().unwrap();
        assert_ne!(a.input.as_slice(), bytes.as_slice());
        assert_ne!(b.input.as_slice(), bytes.as_slice());
    }
    assert!(std::str::from_utf8(&a.input).is_ok() && std::str::from_utf8(&b.input).is_ok());
}

#[test]
fn reputation_survives_a_restart() {
    let mut net = Net::new();
    let sybil = net.executor(
        "sybil",
        &["text-stats"],
        &format!("[adversary]\nbehaviour = \"wrong-output\"\n{ATTRACTIVE}"),
    );
    let honest = net.executor("honest", &["text-stats"], "");
    net.wait_for(2);
    let state = net.dir.path().join("state");
    let before = {
        // Both with a record, the Sybil's claims rank it first.
        let mut runner =
            net.runner_trusting(Policy::Fixed(TierSet::T2), Some(&state), &[sybil, honest]);
        let r = run(&mut runner, &count_step("remember me", Risk::Low));
        assert_eq!(r.steps[0].fallbacks, 1);
        *runner.reputation().record(&sybil).unwrap()
    };
    // A new runner (a restart) loads the same record...
    let mut runner = net.runner(Policy::Fixed(TierSet::T2), Some(&state));
    assert_eq!(runner.reputation().record(&sybil), Some(&before));
    // ...and so no longer tries the Sybil first.
    let r = run(&mut runner, &count_step("remember me again", Risk::Low));
    assert_eq!(r.steps[0].fallbacks, 0, "{:#?}", r.steps[0]);
    assert!(!executor_of(&r).starts_with(&sybil.to_string()));
}

#[test]
fn the_risk_policy_picks_tiers_as_configured() {
    let mut net = Net::new();
    net.executor("honest", &["text-stats"], "");
    net.wait_for(1);
    let mut wf = count_step("tiers by risk", Risk::Low);
    let mut medium = wf.steps[0].clone();
    medium.name = "medium".into();
    medium.risk = Risk::Medium;
    medium.input = InputSpec::Text("medium stakes".into());
    let mut high = wf.steps[0].clone();
    high.name = "high".into();
    high.risk = Risk::High;
    high.input = InputSpec::Text("high stakes".into());
    let mut overridden = high.clone();
    overridden.name = "overridden".into();
    overridden.tiers = Some("t1".into());
    wf.steps.extend([medium, high, overridden]);
    let r = run(
        &mut net.runner(Policy::Risk(RiskPolicy::default()), None),
        &wf,
    );
    assert!(r.succeeded, "{r:#?}");
    let tiers: Vec<&str> = r.steps.iter().map(|s| s.tiers.as_str()).collect();
    assert_eq!(
        tiers,
        ["T1", "T1+T2+T3(no replay)", "T1+T2+T3(replay 100%)", "T1"]
    );
    // What ran matches: a canary and the receipt at medium, canary +
    // receipt + replay at high.
    let checks = |i: usize| {
        r.steps[i].attempts[0]
            .checks
            .iter()
            .map(|(n, _)| n.clone())
            .collect::<Vec<_>>()
    };
    assert!(checks(0).is_empty());
    let mut medium = checks(1);
    medium.sort();
    assert_eq!(medium, ["canary", "receipt"]);
    assert_eq!(checks(2), ["canary", "receipt", "replay"]);
    assert!(checks(3).is_empty());

    // A node configuration can remap the risk levels.
    let custom = RiskPolicy {
        low: TierSet::T2,
        ..RiskPolicy::default()
    };
    let r = run(
        &mut net.runner(Policy::Risk(custom), None),
        &count_step("remapped", Risk::Low),
    );
    assert_eq!(r.steps[0].tiers, "T1+T2");
}

#[test]
fn with_only_honest_peers_every_policy_succeeds() {
    let mut net = Net::new();
    net.executor("a", &["text-stats"], "");
    net.executor("b", &["text-stats"], "");
    net.wait_for(2);
    for (label, policy) in errand::demo::policies(1.0) {
        let text = format!("honest work under {label}");
        let r = run(
            &mut net.runner(policy, None),
            &count_step(&text, Risk::High),
        );
        assert!(r.succeeded && right_count(&r, &text), "{label}: {r:#?}");
        assert_eq!(r.steps[0].fallbacks, 0, "{label}");
    }
}

#[test]
fn with_sybils_no_verification_fails_while_full_verification_stays_high() {
    let out = tempfile::tempdir().unwrap();
    let cfg = errand::demo::DemoConfig {
        honest: 2,
        sybil: 4,
        drifting: 1,
        runs: 5,
        out: out.path().to_path_buf(),
        seed: 7,
    };
    let report = rt().block_on(errand::demo::run(&cfg, &|_| {})).unwrap();
    let rate = |name: &str| {
        report
            .policies
            .iter()
            .find(|p| p.policy == name)
            .unwrap()
            .success_rate()
    };
    let exposed = |name: &str| {
        report
            .policies
            .iter()
            .find(|p| p.policy == name)
            .unwrap()
            .exposed
    };
    let table = errand::demo::table(&report);
    assert!(rate("none") <= 0.2, "{table}");
    // Issue 10's target against the informed mix (param-swap included).
    // Risk-tiered is not asserted here: its medium-risk step runs T1+T2,
    // where a canary-aware executor that guesses the pair right gets one
    // wrong answer through before it is caught (see BENCHMARKS.md).
    assert!(rate("T1+T2+T3") >= 0.95, "{table}");
    // The audit can fail: it exposes what no verification accepted, and
    // nothing that full verification accepted.
    assert!(exposed("none") > 0, "{table}");
    assert_eq!(exposed("T1+T2+T3"), 0, "{table}");
    assert!(report.evidence_verified > 0);
}

#[test]
fn workflow_run_from_the_cli_prints_each_steps_checks() {
    let mut net = Net::new();
    net.executor("honest", &["imagegen", "publish"], "");
    net.wait_for(2);
    let user = Sandbox::new();
    let wf: PathBuf = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/workflows/generate-and-publish.toml");
    let o = user.errand(&[
        "workflow",
        "run",
        wf.to_str().unwrap(),
        "--registry",
        &net.reg().to_string(),
        "--state",
        "state",
        "--evidence-dir",
        "ev",
    ]);
    assert_eq!(
        code(&o),
        0,
        "{}{}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let text = stdout(&o);
    assert!(
        text.contains("step generate [T1+T2+T3(no replay)]"),
        "{text}"
    );
    assert!(
        text.contains("step publish [T1+T2+T3(replay 100%)]"),
        "{text}"
    );
    assert!(text.contains("canary ok"), "{text}");
    assert!(text.contains("replay ok"), "{text}");
    assert!(
        text.contains("workflow generate-and-publish succeeded"),
        "{text}"
    );
    // Every piece of evidence it wrote verifies offline.
    for e in std::fs::read_dir(user.path("ev")).unwrap() {
        let o = user.errand(&["verify", e.unwrap().path().to_str().unwrap()]);
        assert_eq!(code(&o), 0, "{}", stdout(&o));
    }
}

/// The text-stats manifest of `package`, doctored: a fuel limit no run
/// fits in, and no examples to make a canary from.
fn doctored_manifest(package: &Package) -> String {
    let mut m: errand_core::manifest::Manifest = toml::from_str(&package.manifest).unwrap();
    m.limits.fuel = Some(1);
    m.examples.clear();
    toml::to_string(&m).unwrap()
}

/// An adversary that advertises the honest package (same digest, same
/// author), attractively, but serves a doctored manifest with the honest
/// component when asked for it, and runs nothing.
struct Doctor {
    doctored: Package,
}

impl errand_net::Handler for Doctor {
    async fn handle(&self, _peer: PeerId, req: Request) -> Response {
        match req {
            Request::FetchPackage(_) => Response::Package(Some(Box::new(self.doctored.clone()))),
            _ => Response::Error(WireError::new(ErrorCode::Busy, "busy")),
        }
    }
}

/// Issue 10, item 3: the package a canary's expected answer and limits come
/// from must not be whatever the first (most attractive) candidate serves.
/// Two attractive adversaries serve the honest component with a doctored
/// manifest (tiny limits, no examples): one under the honest package's
/// digest and author, one re-signed as its own package. The honest
/// candidates are still canaried with the honest author's package, pass,
/// and one of them serves the step.
#[test]
fn canary_material_from_the_adversary_is_not_used() {
    let mut net = Net::new();
    // The honest package, as the honest executors host it.
    let honest_pkg_path = pack_example(
        "text-stats",
        &net.dir.path().join("honest-package"),
        &net.author,
        None,
    );
    let honest_pkg: Package = signed::decode(&std::fs::read(&honest_pkg_path).unwrap()).unwrap();
    let doctored_text = doctored_manifest(&honest_pkg);

    // Adversary 1: a real node hosting the honest component with the
    // doctored manifest, signed as its own package.
    let sybil_author = SecretKey::from_seed(rand_seed());
    let resigned = Package::sign(
        errand_core::bounded::BString::new(doctored_text.clone()).unwrap(),
        honest_pkg.component.clone(),
        honest_pkg.descriptor.body().clone(),
        &sybil_author,
    )
    .unwrap();
    assert_eq!(resigned.component_digest(), honest_pkg.component_digest());
    let dir = net.dir.path().join("sybil").join("packages");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("text-stats.errand"),
        signed::encode(&resigned).unwrap(),
    )
    .unwrap();
    let sybil = net.start_executor(
        "sybil",
        &format!("[adversary]\nbehaviour = \"wrong-output\"\n{ATTRACTIVE}"),
    );

    // Adversary 2: names the honest package but serves the doctored manifest
    // under the honest author's signature.
    let mut doctored = honest_pkg.clone();
    doctored.manifest = errand_core::bounded::BString::new(doctored_text).unwrap();
    let doctor_key = SecretKey::from_seed(rand_seed());
    let doctor = doctor_key.peer_id();
    rt().block_on(async {
        let ep = errand_net::Endpoint::bind(
            "127.0.0.1:0".parse().unwrap(),
            doctor_key.clone(),
            Default::default(),
        )
        .unwrap();
        tokio::spawn(errand_net::serve(ep.clone(), Arc::new(Doctor { doctored })));
        let mut d = honest_pkg.descriptor.body().clone();
        assert_eq!(d.package, Some(honest_pkg.reference()));
        d.publisher = doctor;
        d.addrs = BVec::new(vec![NetAddr::Quic(ep.local_addr().unwrap())]).unwrap();
        d.qos.latency_ms = 1;
        d.qos.cost = 0;
        d.seq = 1;
        d.issued_at = errand::node::now();
        let c = Client::new(SecretKey::from_seed(rand_seed())).unwrap();
        c.request(
            net.reg(),
            &Request::Publish(
                BVec::new(vec![SignedDescriptor::sign(d, &doctor_key).unwrap()]).unwrap(),
            ),
        )
        .await
        .unwrap();
    });

    let honest = [
        net.executor("honest-1", &["text-stats"], ""),
        net.executor("honest-2", &["text-stats"], ""),
    ];
    net.wait_for(4);

    let text = "one fish two fish red fish blue fish";
    let mut runner = net.runner(Policy::Fixed(TierSet::T2), None);
    let r = run(&mut runner, &count_step(text, Risk::Low));
    assert!(r.succeeded, "{r:#?}");
    assert!(right_count(&r, text));
    let s = &r.steps[0];
    let exec = executor_of(&r);
    assert!(
        honest.iter().any(|h| exec.starts_with(&h.to_string())),
        "{s:#?}"
    );
    // The adversaries ranked first and were tried first...
    assert!(s.attempts.len() >= 3, "{s:#?}");
    for a in &s.attempts[..2] {
        assert!(
            a.peer.starts_with(&sybil.to_string()) || a.peer.starts_with(&doctor.to_string()),
            "{s:#?}"
        );
        assert!(a.rejected.is_some(), "{s:#?}");
    }
    // ...and no honest candidate was marked wrong.
    for a in &s.attempts {
        if honest.iter().any(|h| a.peer.starts_with(&h.to_string())) {
            assert_eq!(a.rejected, None, "{s:#?}");
            assert!(a.checks.iter().all(|(_, ok)| *ok), "{s:#?}");
        }
    }
    let now = errand::node::now();
    for h in &honest {
        assert!(runner.reputation().score(h, now) >= runner.reputation().score(&sybil, now));
    }
}

/// A step pinned to an author ignores candidates whose package has another
/// author, however attractive.
#[test]
fn a_step_pinned_to_an_author_ignores_other_authors_packages() {
    let mut net = Net::new();
    let other_author = SecretKey::from_seed(rand_seed());
    let other = net.executor_by(
        "other",
        &["text-stats"],
        &format!("[adversary]\nbehaviour = \"wrong-output\"\n{ATTRACTIVE}"),
        &other_author,
    );
    let pinned = net.executor("pinned", &["text-stats"], "");
    net.wait_for(2);
    let text = "red fish blue fish";

    // Unpinned, the attractive one serves.
    let mut runner = net.runner(Policy::Fixed(TierSet::NONE), None);
    let r = run(&mut runner, &count_step(text, Risk::Low));
    assert!(executor_of(&r).starts_with(&other.to_string()), "{r:#?}");

    // Pinned to the net's author, it is never tried.
    let mut wf = count_step(text, Risk::Low);
    wf.steps[0].author = Some(net.author.peer_id().to_string());
    wf.check().unwrap();
    let r = run(&mut runner, &wf);
    assert!(r.succeeded, "{r:#?}");
    assert!(executor_of(&r).starts_with(&pinned.to_string()), "{r:#?}");
    assert_eq!(r.steps[0].candidates, 2, "discovery still sees both");
    assert!(
        r.steps[0]
            .attempts
            .iter()
            .all(|a| !a.peer.starts_with(&other.to_string())),
        "{r:#?}"
    );

    // Pinned to a component nobody hosts: no candidate.
    let mut wf = count_step(text, Risk::Low);
    wf.steps[0].component = Some(format!("sha256:{}", errand_core::Digest::of(b"nothing")));
    let r = run(&mut runner, &wf);
    assert!(!r.succeeded);
    assert_eq!(r.steps[0].error.as_deref(), Some("no candidate matches"));

    // A bad pin is refused by name.
    let mut wf = count_step(text, Risk::Low);
    wf.steps[0].author = Some("not-a-peer".into());
    let e = wf.check().unwrap_err().to_string();
    assert!(e.contains("not-a-peer"), "{e}");
    let mut wf = count_step(text, Risk::Low);
    wf.steps[0].component = Some("sha256:xyz".into());
    let e = wf.check().unwrap_err().to_string();
    assert!(e.contains("sha256:xyz"), "{e}");
}

/// Issue 10, item 1: tier 3 did not bind what was asked. A `param-swap`
/// executor runs cheaper parameters (`top=6` becomes `top=1`) and signs
/// that honestly; receipts alone (no canary, no replay) now catch it,
/// naming the parameters, and the next candidate serves.
#[test]
fn tier3_param_swap_honestly_signed_fails_the_request_binding() {
    let mut net = Net::new();
    let cheat = net.executor(
        "cheat",
        &["text-stats"],
        &format!("[adversary]\nbehaviour = \"param-swap\"\n{ATTRACTIVE}"),
    );
    let honest = net.executor("honest", &["text-stats"], "");
    net.wait_for(2);
    let text = "one fish two fish red fish blue fish and a cat and a hat";
    let mut wf = count_step(text, Risk::High);
    wf.steps[0].params.insert("top".into(), "6".into());
    let right = serde_json::to_vec(&text_stats::stats(text, 6)).unwrap();

    // Reputation alone takes the cheaper work.
    let mut t1 = net.runner_trusting(Policy::Fixed(TierSet::T1), None, &[cheat]);
    let r = run(&mut t1, &wf);
    assert!(
        r.succeeded && executor_of(&r).starts_with(&cheat.to_string()),
        "{r:#?}"
    );
    assert_ne!(
        r.outputs.get("count"),
        Some(&right),
        "the cheaper answer was taken"
    );

    // Receipts bound to the signed request: no canary, no replay needed.
    let receipts_only = TierSet {
        reputation: true,
        canary: false,
        evidence: true,
        replay: 0.0,
    };
    let mut t3 = net.runner_trusting(Policy::Fixed(receipts_only), None, &[cheat]);
    let r = run(&mut t3, &wf);
    assert!(r.succeeded, "{r:#?}");
    assert_eq!(r.outputs.get("count"), Some(&right));
    let s = &r.steps[0];
    assert!(s.attempts[0].peer.starts_with(&cheat.to_string()), "{s:#?}");
    let why = s.attempts[0].rejected.clone().unwrap_or_default();
    assert!(
        why.contains("params") && why.contains("top=6") && why.contains("top=1"),
        "{why}"
    );
    assert!(executor_of(&r).starts_with(&honest.to_string()));
}

/// Issue 10, items 3 and 5: a `frame-the-honest` node advertises the honest
/// package but serves a doctored manifest, hoping the requester's own
/// canary runs and replays fail and honest executors get the blame. The
/// package's author signature refuses the doctored copy; no honest
/// executor is rejected for cause and the step succeeds with full checks.
#[test]
fn frame_the_honest_cannot_get_honest_executors_blamed() {
    let mut net = Net::new();
    let framer = net.executor(
        "framer",
        &["text-stats"],
        &format!("[adversary]\nbehaviour = \"frame-the-honest\"\n{ATTRACTIVE}"),
    );
    let honest = net.executor("honest", &["text-stats"], "");
    net.wait_for(2);
    let text = "frame me if you can";
    let mut runner = net.runner(Policy::Fixed(TierSet::t3(1.0)), None);
    for _ in 0..3 {
        let r = run(&mut runner, &count_step(text, Risk::High));
        assert!(r.succeeded && right_count(&r, text), "{r:#?}");
        for a in &r.steps[0].attempts {
            if a.peer.starts_with(&honest.to_string()) {
                assert!(a.rejected.is_none(), "honest executor blamed: {a:#?}");
            }
        }
    }
    assert!(!runner.reputation().is_banned(&honest));
    assert!(
        !runner.reputation().is_banned(&framer),
        "serving a bad copy is not fraud by the executor's receipts"
    );
}

/// A `build-then-defect` executor serves honestly, then lies: replay catches
/// the defection and keeps a fraud proof that anyone can re-check offline.
#[test]
fn build_then_defect_is_caught_by_replay_with_a_fraud_proof() {
    let mut net = Net::new();
    let defector = net.executor(
        "defector",
        &["text-stats"],
        &format!("[adversary]\nbehaviour = \"build-then-defect\"\ndefect_after = 2\n{ATTRACTIVE}"),
    );
    net.executor("honest", &["text-stats"], "");
    net.wait_for(2);
    let no_canary = TierSet {
        reputation: true,
        canary: false,
        evidence: true,
        replay: 1.0,
    };
    let mut runner = net.runner_trusting(Policy::Fixed(no_canary), None, &[defector]);
    let mut fraud = None;
    for i in 0..5 {
        let text = format!("patience pays {i}");
        let r = run(&mut runner, &count_step(&text, Risk::High));
        assert!(r.succeeded && right_count(&r, &text), "{r:#?}");
        fraud = fraud.or(r.steps[0]
            .evidence
            .iter()
            .find(|e| e.contains("FRAUD-"))
            .cloned());
    }
    assert!(runner.reputation().is_banned(&defector));
    let fraud = fraud.expect("a fraud proof was kept");
    let user = Sandbox::new();
    let o = user.errand(&["verify", &fraud, "--replay"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("replay-output"), "{}", stdout(&o));
}

/// A `canary-aware` executor pairs each requester's requests and asks the
/// protocol-aware detector which one is the canary, lying on the other.
/// Whatever it guesses, full verification (canary, receipt, replay) never
/// accepts a wrong answer from it.
#[test]
fn canary_aware_executor_never_gets_a_wrong_answer_past_replay() {
    let mut net = Net::new();
    net.executor(
        "aware",
        &["text-stats"],
        &format!("[adversary]\nbehaviour = \"canary-aware\"\n{ATTRACTIVE}"),
    );
    net.executor("honest", &["text-stats"], "");
    net.wait_for(2);
    let mut runner = net.runner(Policy::Fixed(TierSet::t3(1.0)), None);
    for i in 0..4 {
        let text = format!("count these words again and again, round {i}");
        let r = run(&mut runner, &count_step(&text, Risk::High));
        assert!(r.succeeded && right_count(&r, &text), "{r:#?}");
    }
}

/// A `witness-liar` ring packs the honest component under its own author,
/// withholds that package and lies alike, hoping the requester cannot run
/// the component and falls back to cross-checks where one member vouches
/// for another. The requester runs any author-signed package holding the
/// same component, so every ring member meets a local canary; and a member
/// caught once is never drawn as a witness. On the old code the ring's
/// candidates were cross-checked, and a member witnessing another passed
/// its wrong answer.
#[test]
fn witness_liar_ring_withholding_its_package_is_caught_by_a_local_canary() {
    let mut net = Net::new();
    let ring_author = SecretKey::from_seed([77; 32]);
    let liar = format!("[adversary]\nbehaviour = \"witness-liar\"\n{ATTRACTIVE}");
    let ring: Vec<PeerId> = (0..3)
        .map(|i| net.executor_by(&format!("liar-{i}"), &["text-stats"], &liar, &ring_author))
        .collect();
    let honest = net.executor("honest", &["text-stats"], "");
    net.wait_for(4);
    let mut runner = net.runner(Policy::Fixed(TierSet::T2), None);
    for i in 0..6 {
        let text = format!("ring {i} of liars vouching for each other");
        let r = run(&mut runner, &count_step(&text, Risk::Medium));
        assert!(r.succeeded && right_count(&r, &text), "{r:#?}");
        assert!(executor_of(&r).starts_with(&honest.to_string()), "{r:#?}");
        for a in &r.steps[0].attempts {
            let checks: Vec<&str> = a.checks.iter().map(|(n, _)| n.as_str()).collect();
            assert!(
                !checks.iter().any(|c| c.starts_with("cross-check")),
                "no cross-check was needed: {a:#?}"
            );
            if ring.iter().any(|p| a.peer.starts_with(&p.to_string())) {
                assert_eq!(
                    a.rejected.as_deref(),
                    Some("wrong answer to the canary"),
                    "{a:#?}"
                );
            }
        }
    }
    for p in &ring {
        let rep = runner.reputation();
        assert!(rep.caught_lying(p, errand::node::now()) || rep.record(p).is_none());
    }
}

/// Index poisoning (issue 10): Sybils fill the registry's answer to the brim,
/// so the honest executor ranked below them is not in it. A round that finds
/// no one trustworthy widens the search (more candidates, leaving out the
/// peers already tried and caught), instead of failing the step.
#[test]
fn a_registry_answer_full_of_liars_widens_discovery_to_the_honest_executor() {
    let mut net = Net::new();
    let mut sybils = Vec::new();
    for i in 0..4 {
        sybils.push(net.executor(
            &format!("sybil-{i}"),
            &["text-stats"],
            &format!("[adversary]\nbehaviour = \"wrong-output\"\n{ATTRACTIVE}"),
        ));
    }
    let honest = net.executor("honest", &["text-stats"], "");
    net.wait_for(5);
    let text = "one fish two fish red fish blue fish";

    // The old behaviour: one round, whose two candidates are both Sybils.
    let mut narrow = net.runner(Policy::Fixed(TierSet::T2), None);
    narrow.config_mut().candidates = 2;
    narrow.config_mut().widen = 0;
    let r = run(&mut narrow, &count_step(text, Risk::Low));
    assert!(!r.succeeded, "{r:#?}");
    let s = &r.steps[0];
    assert_eq!(s.discovery_rounds, 1);
    assert!(
        s.attempts
            .iter()
            .all(|a| sybils.iter().any(|p| a.peer.starts_with(&p.to_string()))),
        "the first answer holds only Sybils: {s:#?}"
    );

    // Widening: the second round asks for more and finds the honest peer.
    let mut wide = net.runner(Policy::Fixed(TierSet::T2), None);
    wide.config_mut().candidates = 2;
    let r = run(&mut wide, &count_step(text, Risk::Low));
    assert!(r.succeeded, "{r:#?}");
    assert!(right_count(&r, text));
    assert!(executor_of(&r).starts_with(&honest.to_string()));
    let s = &r.steps[0];
    assert_eq!(s.discovery_rounds, 2, "{s:#?}");
    for a in &s.attempts[..s.attempts.len() - 1] {
        assert_eq!(a.rejected.as_deref(), Some("wrong answer to the canary"));
    }
    // No peer is tried twice across rounds.
    let mut peers: Vec<&str> = s.attempts.iter().map(|a| a.peer.as_str()).collect();
    peers.sort_unstable();
    peers.dedup();
    assert_eq!(peers.len(), s.attempts.len(), "{s:#?}");

    // The optimistic policy asks once, whatever it got.
    let mut optimistic = net.runner(Policy::Fixed(TierSet::NONE), None);
    optimistic.config_mut().candidates = 2;
    let r = run(&mut optimistic, &count_step(text, Risk::Low));
    assert_eq!(r.steps[0].discovery_rounds, 1);
}

/// A run whose receipt says the tool failed is no answer, whatever the
/// policy: the optimistic one used to take it as a success with an empty
/// output (`errand invoke --intent --policy none` exited 0).
#[test]
fn a_failed_run_is_no_answer_even_without_verification() {
    let mut net = Net::new();
    net.executor("honest", &["text-stats"], "");
    net.wait_for(1);
    let spec = count_step("unused", Risk::Low).steps.remove(0);
    let not_utf8 = [0xff, 0xfe, 0xfd];
    for policy in [Policy::Fixed(TierSet::NONE), Policy::Fixed(TierSet::T1)] {
        let mut runner = net.runner(policy, None);
        let (report, output) =
            rt().block_on(runner.run_step(&spec, &not_utf8, errand::node::now()));
        assert!(output.is_none(), "{report:#?}");
        assert!(report.executor.is_none(), "{report:#?}");
        let why = report.attempts[0].rejected.as_deref().unwrap_or_default();
        assert!(why.contains("tool did not succeed"), "{report:#?}");
    }
}

/// One identity publishing many names that match the intent (H2 of this
/// round's review): it filled round 0 and every slot of the wider round
/// too, so every candidate there was "tried already" and the search ended
/// before the honest executor ranked below them.
#[test]
fn one_identity_with_many_matching_names_cannot_end_the_wider_search() {
    let mut net = Net::new();
    let attacker = SecretKey::from_seed(rand_seed());
    let packages = net.dir.path().join("attacker").join("packages");
    let tool = errand_example_tools::get("text-stats").unwrap();
    for i in 0..9 {
        let work = tempfile::tempdir().unwrap();
        let manifest =
            tool.manifest
                .replacen("name = \"text-stats\"", &format!("name = \"cw-{i}\""), 1);
        std::fs::write(work.path().join("capability.toml"), manifest).unwrap();
        std::fs::write(work.path().join("tool.wasm"), tool.component).unwrap();
        let report = errand::packaging::pack(
            &shared_host(),
            &work.path().join("capability.toml"),
            Some(&work.path().join("tool.wasm")),
            &attacker,
            errand::node::now(),
        )
        .unwrap();
        std::fs::create_dir_all(&packages).unwrap();
        std::fs::write(
            packages.join(format!("cw-{i}.errand")),
            signed::encode(&report.package).unwrap(),
        )
        .unwrap();
    }
    let evil = net.start_executor(
        "attacker",
        &format!("[adversary]\nbehaviour = \"wrong-output\"\n{ATTRACTIVE}"),
    );
    let honest = net.executor("honest", &["text-stats"], "");
    net.wait_for(10);
    let text = "one fish two fish red fish blue fish";
    let mut wf = count_step(text, Risk::Low);
    wf.steps[0].capability = None;
    let mut runner = net.runner(Policy::Fixed(TierSet::T2), None);
    runner.config_mut().candidates = 2;
    let r = run(&mut runner, &wf);
    assert!(r.succeeded, "{r:#?}");
    assert!(right_count(&r, text));
    assert!(executor_of(&r).starts_with(&honest.to_string()), "{r:#?}");
    let s = &r.steps[0];
    // One attempt on the attacker in all: a round takes one candidate per
    // publisher, and later rounds leave it out.
    let on_evil = s
        .attempts
        .iter()
        .filter(|a| a.peer.starts_with(&evil.to_string()))
        .count();
    assert_eq!(on_evil, 1, "{s:#?}");
}
