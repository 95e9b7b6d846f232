//! `errand demo`: a whole Errand network on loopback, under attack.
//!
//! One command starts, in one process, real nodes talking QUIC on loopback:
//!
//! * a **registry**;
//! * **honest** executors hosting `imagegen` and `publish`;
//! * **Sybil** executors hosting the same tools but advertising irresistible
//!   QoS (1 ms, free), then cheating in turn: cheaper work than asked,
//!   honestly signed (`param-swap`); guessing which request is a canary and
//!   lying on the other (`canary-aware`); corrupted output with a matching
//!   receipt; lazy work that claims the full job; forged receipts;
//! * **drifting** executors whose capability comes and goes while their
//!   descriptors stay listed.
//!
//! A requester then runs the seed paper's two-step workflow (generate an
//! image from a prompt, publish it) `runs` times under each policy: none,
//! T1, T1+T2, T1+T2+T3, and risk-tiered, each on a fresh network started
//! from the same seed, with a fresh reputation and the runner's default
//! fallback budget. Success is judged against ground truth: the demo
//! computes the right outputs itself, so an undetected wrong answer counts
//! as a failure. Every accepted result's evidence is then audited offline,
//! as an auditor would (the executor the requester dialled, the signed
//! request, a replay of that request from the author's package); the runs
//! whose evidence fails are reported as *exposed*. The evidence and any
//! fraud proofs stay in the output folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use errand_core::receipt::InvocationContext;
use errand_core::signed;
use errand_core::{SecretKey, UnixMillis};
use errand_host::{Host, HostConfig};

use crate::client::Client;
use crate::config::{NodeConfig, PeerAddr};
use crate::node::Node;
use crate::workflow::{InputSpec, Runner, RunnerConfig, StepSpec, WorkflowFile, run_locally};

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Honest executors.
    pub honest: usize,
    /// Sybil executors.
    pub sybil: usize,
    /// Drifting executors.
    pub drifting: usize,
    /// Workflow runs per policy.
    pub runs: usize,
    /// Output folder.
    pub out: PathBuf,
    /// Seed of every key and every requester decision: each policy meets
    /// the same network, started afresh.
    pub seed: u64,
}

/// One policy's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyResult {
    /// The policy.
    pub policy: String,
    /// Runs.
    pub runs: usize,
    /// Runs whose outputs were right.
    pub successes: usize,
    /// Mean end-to-end latency (ms).
    pub mean_ms: f64,
    /// 95th percentile latency (ms).
    pub p95_ms: f64,
    /// Mean discovery latency per step (ms).
    pub discovery_ms: f64,
    /// Control-plane messages (discovery, canaries, fetches, publishing).
    pub control_messages: u64,
    /// Control-plane bytes.
    pub control_bytes: u64,
    /// Fallbacks used, in total.
    pub fallbacks: usize,
    /// Fraud proofs kept.
    pub fraud_proofs: usize,
    /// Results the policy accepted that the offline audit (expected
    /// executor, signed request, replay) exposes as wrong.
    pub exposed: usize,
}

impl PolicyResult {
    /// Share of runs that succeeded.
    pub fn success_rate(&self) -> f64 {
        self.successes as f64 / self.runs.max(1) as f64
    }
}

/// The demo's results.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    /// Per policy.
    pub policies: Vec<PolicyResult>,
    /// Evidence files verified offline.
    pub evidence_verified: usize,
    /// Evidence files that failed offline verification.
    pub evidence_failed: usize,
    /// Where the evidence is.
    pub evidence_dir: PathBuf,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Setting up a node or the requester failed.
    #[error("demo setup: {0}")]
    Setup(String),
}

fn setup<E: std::fmt::Display>(e: E) -> DemoError {
    DemoError::Setup(e.to_string())
}

fn seed_key(seed: u64, tag: &str) -> SecretKey {
    let mix =
        errand_core::Digest::of_parts(&[b"errand/demo-key", &seed.to_le_bytes(), tag.as_bytes()]);
    SecretKey::from_seed(mix.0)
}

fn write_package(dir: &Path, host: &Host, tool: &str, author: &SecretKey) -> Result<(), DemoError> {
    let t =
        errand_example_tools::get(tool).ok_or_else(|| setup(format!("no example tool {tool}")))?;
    let work = dir.join(format!(".{tool}"));
    std::fs::create_dir_all(&work).map_err(setup)?;
    std::fs::write(work.join("capability.toml"), t.manifest).map_err(setup)?;
    std::fs::write(work.join("c.wasm"), t.component).map_err(setup)?;
    let r = crate::packaging::pack(
        host,
        &work.join("capability.toml"),
        Some(&work.join("c.wasm")),
        author,
        crate::node::now(),
    )
    .map_err(setup)?;
    std::fs::write(
        dir.join(format!("{tool}.errand")),
        signed::encode(&r.package).map_err(setup)?,
    )
    .map_err(setup)?;
    Ok(())
}

struct Network {
    registry: Node,
    nodes: Vec<Node>,
}

async fn start_node(seed: u64, host: &Host, dir: &Path, toml: &str) -> Result<Node, DemoError> {
    std::fs::create_dir_all(dir).map_err(setup)?;
    let tag = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let key = seed_key(seed, &tag);
    crate::keystore::save(&key, &dir.join("key"), true).map_err(setup)?;
    std::fs::write(dir.join("node.toml"), toml).map_err(setup)?;
    let config = NodeConfig::load(&dir.join("node.toml")).map_err(setup)?;
    Node::start_with_host(config, Some(host.clone()))
        .await
        .map_err(setup)
}

/// Packs the demo's tools once, as their author.
fn write_packages(cfg: &DemoConfig, host: &Host) -> Result<PathBuf, DemoError> {
    let packages = cfg.out.join("packages");
    std::fs::create_dir_all(&packages).map_err(setup)?;
    let author = seed_key(cfg.seed, "tool-author");
    for tool in ["imagegen", "publish"] {
        write_package(&packages, host, tool, &author)?;
    }
    Ok(packages)
}

async fn start_network(
    cfg: &DemoConfig,
    host: &Host,
    nodes_dir: &Path,
    packages: &Path,
) -> Result<Network, DemoError> {
    let _ = std::fs::remove_dir_all(nodes_dir);
    let seed = cfg.seed;
    let base = "key = \"key\"\nlisten = \"127.0.0.1:0\"\nstorage = \"data\"\n";
    // The registry ranks by declared relevance and QoS, the worst case for
    // index poisoning (Errand's default, sampled ranking, would show each
    // requester a random sample instead): the Sybils come first, in a
    // deterministic order, and the tiers have to earn every success.
    let registry = start_node(
        seed,
        host,
        &nodes_dir.join("registry"),
        &format!("{base}[registry]\nranking = \"relevance\"\n"),
    )
    .await?;
    let reg = PeerAddr {
        peer: registry.peer_id(),
        addr: registry.local_addr(),
    };
    let executor = |extra: &str, pkgs: &Path| {
        format!(
            "{base}packages = {:?}\n[[registries]]\npeer = \"{}\"\naddr = \"{}\"\n[publish]\nttl_ms = 6000\nrefresh_ms = 2000\nscan_ms = 60000\n[limits]\nmax_concurrent_invocations = 4\n{extra}",
            pkgs.display().to_string(),
            reg.peer,
            reg.addr
        )
    };
    let mut nodes = Vec::new();
    for i in 0..cfg.honest {
        nodes.push(
            start_node(
                seed,
                host,
                &nodes_dir.join(format!("honest-{i}")),
                &executor("", packages),
            )
            .await?,
        );
    }
    // The most attractive Sybils (lowest advertised latency) do cheaper
    // work than asked and sign it honestly; then ones that try to tell
    // canaries from real work; then liars about their output; then lazy
    // ones; then receipt forgers, whose outputs are right. Distinct
    // latencies make the registry's ranking, and so the demo, deterministic.
    let cheats = [
        "param-swap",
        "canary-aware",
        "wrong-output",
        "lazy",
        "forge-receipt",
    ];
    for i in 0..cfg.sybil {
        let adv = format!(
            "[adversary]\nbehaviour = \"{}\"\nadvertise_latency_ms = {}\nadvertise_cost = 0\nextra_intents = [\"fast\", \"best quality\", \"image generation\", \"publish\"]\n",
            cheats[i % cheats.len()],
            1 + i
        );
        nodes.push(
            start_node(
                seed,
                host,
                &nodes_dir.join(format!("sybil-{i}")),
                &executor(&adv, packages),
            )
            .await?,
        );
    }
    for i in 0..cfg.drifting {
        let adv = format!(
            "[adversary]\nbehaviour = \"drift\"\ndrift_period_ms = {}\n",
            700 + 300 * i
        );
        nodes.push(
            start_node(
                seed,
                host,
                &nodes_dir.join(format!("drifting-{i}")),
                &executor(&adv, packages),
            )
            .await?,
        );
    }
    Ok(Network { registry, nodes })
}

/// One line saying why step `s` failed: its error and every candidate it
/// tried.
fn why_failed(s: &crate::workflow::StepReport) -> String {
    let tried: Vec<String> = s
        .attempts
        .iter()
        .map(|a| {
            let peer = a.peer.split('@').next().unwrap_or(&a.peer);
            let short = peer.get(..16).unwrap_or(peer);
            match &a.rejected {
                Some(r) => format!("{short}: {r}"),
                None => format!("{short}: accepted"),
            }
        })
        .collect();
    format!(
        "step {} failed: {} [{}]",
        s.name,
        s.error.as_deref().unwrap_or("?"),
        tried.join("; ")
    )
}

fn workflow(run: usize) -> WorkflowFile {
    let prompts = [
        "a lighthouse in a storm",
        "a red fox at dawn",
        "moss on an old stone wall",
        "a harbour under a violet sky",
        "a paper boat on a river",
    ];
    let mut gen_params = std::collections::BTreeMap::new();
    gen_params.insert("size".to_owned(), "96".to_owned());
    gen_params.insert("iterations".to_owned(), "48".to_owned());
    let mut pub_params = std::collections::BTreeMap::new();
    pub_params.insert("title".to_owned(), format!("Picture {run}"));
    WorkflowFile {
        name: "generate-and-publish".into(),
        description: None,
        steps: vec![
            StepSpec {
                name: "generate".into(),
                intent: "generate an image from a text prompt".into(),
                input: InputSpec::Text(format!("{} #{run}", prompts[run % prompts.len()])),
                params: gen_params,
                risk: errand_core::trust::Risk::Medium,
                tiers: None,
                max_latency_ms: None,
                max_cost: None,
                input_type: None,
                output_type: Some("image/png".into()),
                capability: None,
                compatible: None,
                fuel: None,
                author: None,
                component: None,
            },
            StepSpec {
                name: "publish".into(),
                intent: "publish content".into(),
                input: InputSpec::From("previous".into()),
                params: pub_params,
                risk: errand_core::trust::Risk::High,
                tiers: None,
                max_latency_ms: None,
                max_cost: None,
                input_type: None,
                output_type: Some("application/json".into()),
                capability: None,
                compatible: None,
                fuel: None,
                author: None,
                component: None,
            },
        ],
    }
}

/// The right outputs of a run, computed locally from the published tools.
fn ground_truth(
    host: &Host,
    wf: &WorkflowFile,
    time: UnixMillis,
    pkg_dir: &Path,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let load = |name: &str| {
        let bytes = std::fs::read(pkg_dir.join(format!("{name}.errand"))).ok()?;
        signed::decode::<errand_core::package::Package>(&bytes).ok()
    };
    let (gen_pkg, pub_pkg) = (load("imagegen")?, load("publish")?);
    let ctx = |s: &StepSpec| {
        InvocationContext::from_pairs(time, &s.params.iter().collect::<Vec<_>>()).ok()
    };
    let InputSpec::Text(prompt) = &wf.steps[0].input else {
        return None;
    };
    let png = run_locally(host, &gen_pkg, prompt.as_bytes(), &ctx(&wf.steps[0])?)?;
    let record = run_locally(host, &pub_pkg, &png, &ctx(&wf.steps[1])?)?;
    Some((png, record))
}

/// The policies compared, in table order.
pub use errand_core::trust::standard_policies as policies;

/// Runs the demo (see the module docs).
pub async fn run(cfg: &DemoConfig, progress: &dyn Fn(&str)) -> Result<DemoReport, DemoError> {
    std::fs::create_dir_all(&cfg.out).map_err(setup)?;
    // Node configs name paths relative to their own folder, so a relative
    // output folder would be joined twice: resolve it once, here.
    let out = std::path::absolute(&cfg.out).map_err(setup)?;
    let cfg = &DemoConfig { out, ..cfg.clone() };
    let host = Host::with_config(HostConfig {
        cache_dir: Some(cfg.out.join("compiled")),
        ..HostConfig::default()
    })
    .map_err(setup)?;
    let pkg_dir = write_packages(cfg, &host)?;
    // The author's packages, read once: the audit replays from them.
    let packages: Vec<errand_core::package::Package> = ["imagegen", "publish"]
        .iter()
        .map(|name| {
            let bytes = std::fs::read(pkg_dir.join(format!("{name}.errand"))).map_err(setup)?;
            signed::decode(&bytes).map_err(setup)
        })
        .collect::<Result<_, DemoError>>()?;
    let client = Client::new(seed_key(cfg.seed, "requester")).map_err(setup)?;
    progress(&format!(
        "each policy meets a fresh network of a registry, {} honest, {} Sybil and {} drifting executors on loopback",
        cfg.honest, cfg.sybil, cfg.drifting
    ));
    let mut results = Vec::new();
    let (mut verified, mut failed) = (0, 0);
    for (label, policy) in policies(0.5) {
        let slug = label.replace('+', "-");
        let net = start_network(cfg, &host, &cfg.out.join("nodes").join(&slug), &pkg_dir).await?;
        let reg = PeerAddr {
            peer: net.registry.peer_id(),
            addr: net.registry.local_addr(),
        };
        // Wait for every executor's descriptors.
        let want = (cfg.honest + cfg.sybil + cfg.drifting) * 2;
        for _ in 0..100 {
            if net.registry.status().registry_entries.unwrap_or(0) as usize >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let evidence_dir = cfg.out.join("evidence").join(&slug);
        let _ = std::fs::remove_dir_all(&evidence_dir);
        let state = cfg.out.join("state").join(&slug);
        let _ = std::fs::remove_dir_all(&state);
        let mut runner = Runner::new(
            client.clone(),
            host.clone(),
            vec![reg],
            RunnerConfig {
                policy,
                evidence_dir: Some(evidence_dir.clone()),
                step_timeout: Duration::from_secs(5),
                ..RunnerConfig::default()
            },
            Some(&state),
        )
        .map_err(setup)?
        .with_seed(cfg.seed);
        let (pub0, bytes0) = net.registry.publish_traffic();
        let mut latencies = Vec::new();
        let (mut successes, mut fallbacks, mut discovery, mut steps) = (0, 0, 0.0, 0usize);
        let (mut control_messages, mut control_bytes, mut exposed) = (0u64, 0u64, 0usize);
        for run in 0..cfg.runs {
            let wf = workflow(run);
            let time = crate::node::now();
            let report = runner.run(&wf, &cfg.out, time).await.map_err(setup)?;
            let truth = ground_truth(&host, &wf, time, &pkg_dir);
            let right = report.succeeded
                && truth.is_some_and(|(png, rec)| {
                    report.outputs.get("generate") == Some(&png)
                        && report.outputs.get("publish") == Some(&rec)
                });
            successes += usize::from(right);
            if let Some(s) = report.steps.iter().find(|s| s.error.is_some()) {
                eprintln!("demo: {label}, run {run}: {}", why_failed(s));
            }
            latencies.push(report.latency_ms);
            let mut run_exposed = false;
            for s in &report.steps {
                fallbacks += s.fallbacks;
                discovery += s.discovery_ms;
                steps += 1;
                control_messages += s.traffic.control_messages;
                control_bytes += s.traffic.control_bytes;
                // The offline audit: every accepted result's evidence, with
                // the executor the requester dialled, the signed request it
                // sent, and a replay from the author's package.
                let executor = s
                    .executor
                    .as_deref()
                    .and_then(|e| e.split('@').next()?.parse().ok());
                for path in s.evidence.iter().filter(|p| !p.contains("FRAUD-")) {
                    if audit(&host, Path::new(path), executor, &packages) {
                        verified += 1;
                    } else {
                        failed += 1;
                        run_exposed = true;
                    }
                }
            }
            exposed += usize::from(run_exposed);
        }
        let (pub1, bytes1) = net.registry.publish_traffic();
        control_messages += pub1 - pub0;
        control_bytes += bytes1 - bytes0;
        latencies.sort_by(f64::total_cmp);
        let fraud_proofs = std::fs::read_dir(&evidence_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("FRAUD"))
                    .count()
            })
            .unwrap_or(0);
        let r = PolicyResult {
            policy: label.into(),
            runs: cfg.runs,
            successes,
            mean_ms: latencies.iter().sum::<f64>() / latencies.len().max(1) as f64,
            p95_ms: latencies
                .get(((latencies.len() as f64 * 0.95).ceil() as usize).saturating_sub(1))
                .copied()
                .unwrap_or(0.0),
            discovery_ms: discovery / steps.max(1) as f64,
            control_messages,
            control_bytes,
            fallbacks,
            fraud_proofs,
            exposed,
        };
        progress(&format!(
            "policy {label:<12} {:>3}/{} runs right, {} exposed by the audit",
            r.successes, r.runs, r.exposed
        ));
        results.push(r);
        for n in &net.nodes {
            n.shutdown().await;
        }
        net.registry.shutdown().await;
    }
    client.close().await;
    Ok(DemoReport {
        policies: results,
        evidence_verified: verified,
        evidence_failed: failed,
        evidence_dir: cfg.out.join("evidence"),
    })
}

/// Audits one evidence file offline, as an auditor would: every check with
/// the executor the requester dialled, plus a replay of the signed request
/// from the author's package. True if it holds.
fn audit(
    host: &Host,
    path: &Path,
    executor: Option<errand_core::PeerId>,
    packages: &[errand_core::package::Package],
) -> bool {
    let Ok(ev) = crate::files::load_evidence(path) else {
        return false;
    };
    let report = errand_core::evidence::verify(
        &ev,
        &errand_core::evidence::Supplied {
            executor,
            ..Default::default()
        },
    );
    if !report.verified() || executor.is_none() || ev.request.is_none() {
        return false;
    }
    let r = ev.receipt.body();
    let component = packages
        .iter()
        .find(|p| p.component_digest() == r.component)
        .map(|p| &p.component);
    let (Some(component), Some(input)) = (component, ev.input.as_ref().and_then(|b| b.bytes()))
    else {
        return false;
    };
    let asked = ev.request.as_ref().map(|q| q.body());
    matches!(
        errand_host::replay(host, r, asked, component, input, None, None),
        Ok(replay) if replay.matched()
    )
}

/// The results table, as printed by `errand demo`.
pub fn table(r: &DemoReport) -> String {
    let mut s = String::new();
    s.push_str(
        "policy        success   exposed   mean ms    p95 ms   discovery ms   control msgs   control KiB   fallbacks   fraud proofs\n",
    );
    for p in &r.policies {
        s.push_str(&format!(
            "{:<12} {:>7.0}%  {:>8}  {:>8.1}  {:>8.1}   {:>12.2}   {:>12}   {:>11.1}   {:>9}   {:>12}\n",
            p.policy,
            100.0 * p.success_rate(),
            p.exposed,
            p.mean_ms,
            p.p95_ms,
            p.discovery_ms,
            p.control_messages,
            p.control_bytes as f64 / 1024.0,
            p.fallbacks,
            p.fraud_proofs
        ));
    }
    s
}
