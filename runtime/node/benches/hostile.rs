//! The honest requester's latency while hostile peers attack (issue 11):
//! an `errand node` process hosting text-stats with the default limits;
//! an honest requester invoking it one call after another over its
//! established connection (from 127.0.0.1); each attack of
//! [`errand_net::testing`] mounted for a fixed time from fresh identities
//! on the same machine, from another loopback address (127.0.0.2), or
//! from many (127.0.1.x) where the row says so: an attacker with many
//! machines, which the per-address handshake limit does not stop. Each attack
//! window follows an idle window of the same requester; the figure is the
//! requester's p50 during the attack over its p50 in the idle window just
//! before, per round, and the median of the rounds. Target: at most 2×.
//! As a control, each attack is then aimed at a second node process on
//! the same machine while the requester keeps calling the first: that
//! ratio is what the machine loses to the attackers' (and the decoy's)
//! CPU, whatever the node does.
//!
//! `cargo bench -p errand --bench hostile`
//!
//! `HOSTILE_ROUNDS` (default 3), `HOSTILE_SECS` (each attack's length,
//! default 6) and `HOSTILE_IDLE_SECS` (default 4) adjust the run;
//! `HOSTILE_ONLY=WORD` runs only the attacks whose name holds WORD.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use errand::client::{Ask, Backoff, Client};
use errand::config::PeerAddr;
use errand_core::bounded::{BBytes, BString};
use errand_core::receipt::{InvocationContext, RequestId};
use errand_core::request::{CapabilityTarget, Seed};
use errand_core::wire::{InvokeRequest, Request};
use errand_core::{SecretKey, signed};
use errand_host::Host;
use errand_net::testing::{self, Attack, Target};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fresh_key() -> SecretKey {
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).unwrap();
    SecretKey::from_seed(s)
}

fn ask(id: RequestId, input: &[u8]) -> Ask {
    Ask {
        request_id: id,
        capability: Some(CapabilityTarget {
            name: BString::new("text-stats").unwrap(),
            version: None,
        }),
        component: None,
        input: BBytes::new(input.to_vec()).unwrap(),
        context: InvocationContext::default(),
        fuel: errand::client::DEFAULT_FUEL,
        limits: None,
        seed: Seed([7; 32]),
        want_trace: false,
    }
}

/// A folder with a key, text-stats packed into `packages/`, and a node
/// config with the default limits.
fn node_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let k = fresh_key();
    errand::keystore::save(&k, &dir.path().join("key"), false).unwrap();
    let packages = dir.path().join("packages");
    std::fs::create_dir_all(&packages).unwrap();
    let tool = errand_example_tools::get("text-stats").unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("capability.toml"), tool.manifest).unwrap();
    std::fs::write(work.path().join("c.wasm"), tool.component).unwrap();
    let r = errand::packaging::pack(
        &Host::new().unwrap(),
        &work.path().join("capability.toml"),
        Some(&work.path().join("c.wasm")),
        &k,
        errand::node::now(),
    )
    .unwrap();
    let pkg = packages.join("text-stats.errand");
    std::fs::write(&pkg, signed::encode(&r.package).unwrap()).unwrap();
    std::fs::write(
        dir.path().join("node.toml"),
        "key = \"key\"\nlisten = \"127.0.0.1:0\"\nstorage = \"data\"\npackages = \"packages\"\n",
    )
    .unwrap();
    (dir, pkg)
}

/// Starts the real `errand node` binary in `dir`.
fn spawn_node(dir: &std::path::Path) -> (std::process::Child, PeerAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["node", "--config", "node.toml"])
        .current_dir(dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (peer, addr): (_, SocketAddr) = errand::node::parse_ready_line(&line).unwrap();
    (child, PeerAddr { peer, addr })
}

/// What the honest requester saw in one window.
#[derive(Default)]
struct Window {
    /// Each call's time, retries included, in nanoseconds.
    lat: Vec<f64>,
    /// Calls that failed after their retries.
    failed: u64,
    /// Retryable refusals (Busy) it waited out.
    retries: u64,
}

/// Invokes text-stats on `target` one call after another for `span`.
async fn honest(client: &Client, target: PeerAddr, span: Duration) -> Window {
    let mut w = Window::default();
    let t0 = Instant::now();
    while t0.elapsed() < span {
        let (id, _) = Ask::fresh_ids();
        let a = ask(id, b"so much depends upon a red wheel barrow");
        let t = Instant::now();
        let mut retries = 0;
        let done = errand::client::retry(
            Backoff::default(),
            || client.invoke(target, &a),
            |_, _| retries += 1,
        )
        .await;
        w.retries += retries;
        match done {
            Ok(_) => w.lat.push(t.elapsed().as_nanos() as f64),
            Err(_) => w.failed += 1,
        }
    }
    w
}

/// A replay attack kept up for `hold`: four signed invocations, run once,
/// then sent again round after round, six copies of each at once over
/// three fresh connections. Only the first copy of the first round is
/// work; every other copy is a replay the node must recognise and refuse.
async fn replay_for(
    target: Target,
    exec: PeerAddr,
    hold: Duration,
    sources: Vec<IpAddr>,
) -> testing::Report {
    let key = fresh_key();
    let signer = Client::new(key.clone()).unwrap();
    let payloads: Vec<Vec<u8>> = (0..4)
        .map(|_| {
            let (id, _) = Ask::fresh_ids();
            let a = ask(id, b"replayed");
            let request = signer.sign(exec.peer, &a).unwrap();
            signed::encode(&Request::Invoke(Box::new(InvokeRequest {
                request,
                input: a.input,
                component: None,
                want_trace: false,
            })))
            .unwrap()
        })
        .collect();
    let attack = Attack::Replay {
        key,
        payloads,
        copies: 6,
        connections: 3,
    };
    let t0 = Instant::now();
    let mut total = testing::Report::default();
    while t0.elapsed() < hold {
        let r = testing::run_from(&attack, target, Duration::ZERO, &sources)
            .await
            .unwrap();
        total.connections += r.connections;
        total.streams += r.streams;
        total.refused += r.refused;
        total.failures += r.failures;
        for (k, v) in r.answers {
            *total.answers.entry(k).or_default() += v;
        }
    }
    total
}

/// CPU time a process has used (user + system), in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the whole line.
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

/// Ticks per second of `/proc/*/stat` (USER_HZ, 100 on Linux).
const HZ: f64 = 100.0;

fn main() {
    let rounds = env_u64("HOSTILE_ROUNDS", 3) as usize;
    let hold = Duration::from_secs(env_u64("HOSTILE_SECS", 6));
    let idle = Duration::from_secs(env_u64("HOSTILE_IDLE_SECS", 4));
    // The honest requester and the attackers on runtimes of their own, so
    // that neither's tasks queue behind the other's; the node is its own
    // process. All share the machine's two cores.
    let honest_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let attack_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    let (dir, pkg_path) = node_dir();
    let (mut node, exec) = spawn_node(dir.path());
    // The control: the same attacks aimed at another node process on the
    // same machine, while the requester still calls the first. What the
    // requester loses then is the machine's (CPU taken by the attackers
    // and the decoy), not the node's handling of the attack.
    let (decoy_dir, _) = node_dir();
    let (mut decoy, decoy_exec) = spawn_node(decoy_dir.path());
    let target = Target {
        addr: exec.addr,
        peer: exec.peer,
    };
    let decoy_target = Target {
        addr: decoy_exec.addr,
        peer: decoy_exec.peer,
    };
    let package = errand::packaging::decode_package(&pkg_path, &std::fs::read(&pkg_path).unwrap())
        .unwrap()
        .digest();
    let ping = signed::encode(&Request::Ping).unwrap();
    let fetch = signed::encode(&Request::FetchPackage(package)).unwrap();
    let max_frame = errand::config::LimitsConfig::default().max_frame_bytes as u32;
    // One attacker address, not the honest requester's; or many.
    let one: Vec<IpAddr> = vec![[127, 0, 0, 2].into()];
    let many = |n: u8| -> Vec<IpAddr> { (1..=n).map(|i| [127, 0, 1, i].into()).collect() };
    let attacks: Vec<(&str, Option<Attack>, Vec<IpAddr>)> = vec![
        (
            "fresh identities: 1000 identities, one connection each, from 50 addresses",
            Some(Attack::ConnectionFlood {
                identities: 1000,
                per_identity: 1,
            }),
            many(50),
        ),
        (
            "connection flood: 4 identities × 40 connections",
            Some(Attack::ConnectionFlood {
                identities: 4,
                per_identity: 40,
            }),
            one.clone(),
        ),
        (
            "declared, never sent: 50 × 8 streams declaring max_frame_bytes",
            Some(Attack::DeclaredNotSent {
                identities: 50,
                streams: 8,
                declared: max_frame,
                sent: 0,
            }),
            one.clone(),
        ),
        (
            "declared, 64 KiB sent: 20 × 4 streams declaring max_frame_bytes",
            Some(Attack::DeclaredNotSent {
                identities: 20,
                streams: 4,
                declared: max_frame,
                sent: 64 << 10,
            }),
            one.clone(),
        ),
        (
            "slow senders: 20 × 4 pings, 1 byte every 300 ms",
            Some(Attack::SlowSenders {
                identities: 20,
                streams: 4,
                payload: ping,
                chunk: 1,
                every: Duration::from_millis(300),
            }),
            one.clone(),
        ),
        (
            "never reading: 10 × 8 package fetches, answers never read",
            Some(Attack::NeverRead {
                identities: 10,
                streams: 8,
                payload: fetch,
            }),
            one.clone(),
        ),
        (
            "malformed, truncated, oversized frames: 10 identities, reconnecting",
            Some(Attack::BadFrames {
                identities: 10,
                rounds: 100_000,
                oversized: max_frame + 1,
            }),
            one.clone(),
        ),
        (
            "Initial flood: 5,000 connection attempts a second from one address, never waiting",
            Some(Attack::InitialFlood { per_second: 5_000 }),
            one.clone(),
        ),
        (
            "replayed ids: 4 used requests × 6 copies, round after round",
            None,
            one.clone(),
        ),
        (
            "malformed, truncated, oversized frames: 10 identities on each of 16 addresses, reconnecting",
            Some(Attack::BadFrames {
                identities: 160,
                rounds: 100_000,
                oversized: max_frame + 1,
            }),
            many(16),
        ),
    ];

    let attacks: Vec<_> = match std::env::var("HOSTILE_ONLY") {
        Ok(word) => attacks
            .into_iter()
            .filter(|(name, _, _)| name.contains(word.as_str()))
            .collect(),
        Err(_) => attacks,
    };
    let client = honest_rt.block_on(async { Client::new(fresh_key()).unwrap() });
    // Warm up: the connection, the compiled component, the store.
    honest_rt.block_on(honest(&client, exec, Duration::from_secs(2)));

    struct Row {
        idle: Vec<f64>,
        attack: Vec<f64>,
        ratios: Vec<f64>,
        node_cpu: Vec<f64>,
        ours_cpu: Vec<f64>,
        control: Vec<f64>,
        failed: u64,
        retries: u64,
        report: testing::Report,
    }
    let mut rows: Vec<Row> = attacks
        .iter()
        .map(|_| Row {
            idle: Vec::new(),
            attack: Vec::new(),
            ratios: Vec::new(),
            node_cpu: Vec::new(),
            ours_cpu: Vec::new(),
            control: Vec::new(),
            failed: 0,
            retries: 0,
            report: testing::Report::default(),
        })
        .collect();
    let mut idle_cpu = Vec::new();
    for round in 0..rounds {
        for (i, (name, attack, sources)) in attacks.iter().enumerate() {
            let q0 = (cpu_ticks(&node.id().to_string()), Instant::now());
            let quiet = honest_rt.block_on(honest(&client, exec, idle));
            idle_cpu.push(
                (cpu_ticks(&node.id().to_string()) - q0.0) as f64
                    / (q0.1.elapsed().as_secs_f64() * HZ),
            );
            let cpu0 = (
                cpu_ticks(&node.id().to_string()),
                cpu_ticks("self"),
                Instant::now(),
            );
            let from = sources.clone();
            let run =
                match attack.clone() {
                    Some(a) => attack_rt
                        .spawn(async move { testing::run_from(&a, target, hold, &from).await }),
                    None => attack_rt
                        .spawn(async move { Ok(replay_for(target, exec, hold, from).await) }),
                };
            let busy = honest_rt.block_on(honest(&client, exec, hold));
            let report = attack_rt.block_on(run).unwrap().unwrap();
            let span = cpu0.2.elapsed().as_secs_f64() * HZ;
            let node_cpu = (cpu_ticks(&node.id().to_string()) - cpu0.0) as f64 / span;
            let ours_cpu = (cpu_ticks("self") - cpu0.1) as f64 / span;
            let (p_idle, p_attack) = (benchkit::median(&quiet.lat), benchkit::median(&busy.lat));
            eprintln!(
                "round {round} {name}: idle {} attack {} ({} calls, {} failed, {} retries)",
                benchkit::fmt_ns(p_idle),
                benchkit::fmt_ns(p_attack),
                busy.lat.len(),
                busy.failed,
                busy.retries
            );
            let row = &mut rows[i];
            row.ratios.push(p_attack / p_idle);
            row.node_cpu.push(node_cpu);
            row.ours_cpu.push(ours_cpu);
            row.idle.extend(quiet.lat);
            row.attack.extend(busy.lat);
            row.failed += busy.failed + quiet.failed;
            row.retries += busy.retries;
            row.report.connections += report.connections;
            row.report.refused += report.refused;
            row.report.streams += report.streams;
            row.report.failures += report.failures;
            for (k, v) in report.answers {
                *row.report.answers.entry(k).or_default() += v;
            }
            // Let the node drop what the attackers left.
            std::thread::sleep(Duration::from_secs(1));

            // The control window: the same attack on the decoy.
            let quiet = honest_rt.block_on(honest(&client, exec, idle));
            let from = sources.clone();
            let run = match attack.clone() {
                Some(a) => attack_rt
                    .spawn(async move { testing::run_from(&a, decoy_target, hold, &from).await }),
                None => attack_rt.spawn(async move {
                    Ok(replay_for(decoy_target, decoy_exec, hold, from).await)
                }),
            };
            let cpu0 = (
                cpu_ticks(&decoy.id().to_string()),
                cpu_ticks("self"),
                Instant::now(),
            );
            let busy = honest_rt.block_on(honest(&client, exec, hold));
            let report = attack_rt.block_on(run).unwrap().unwrap();
            let span = cpu0.2.elapsed().as_secs_f64() * HZ;
            let control = benchkit::median(&busy.lat) / benchkit::median(&quiet.lat);
            eprintln!(
                "round {round} control, {name}: p50 / idle {control:.2}, decoy CPU {:.0}%, attackers + requester CPU {:.0}%, {} connections, {} refused",
                (cpu_ticks(&decoy.id().to_string()) - cpu0.0) as f64 / span * 100.0,
                (cpu_ticks("self") - cpu0.1) as f64 / span * 100.0,
                report.connections,
                report.refused,
            );
            rows[i].control.push(control);
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    println!(
        "\n## Honest requester under attack ({rounds} rounds; each attack {} s after {} s idle)\n",
        hold.as_secs(),
        idle.as_secs()
    );
    println!(
        "| attack | p50 idle | p50 attack | p95 idle | p95 attack | **p50 attack / idle**, median (min–max) | ≤ 2× | control: the attack on another node, p50 / idle | node CPU during the attack | attackers + requester CPU | honest calls failed / Busy retries | what the attack got |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for ((name, _, _), r) in attacks.iter().zip(&rows) {
        let ratio = benchkit::median(&r.ratios);
        let (lo, hi) = r
            .ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        let answers: Vec<String> = r
            .report
            .answers
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        println!(
            "| {name} | {} | {} | {} | {} | **{ratio:.2}** ({lo:.2}–{hi:.2}) | {} | {:.2} | {:.0}% | {:.0}% | {} / {} | {} connections, {} refused, {} streams, {} failures{}{} |",
            benchkit::fmt_ns(benchkit::median(&r.idle)),
            benchkit::fmt_ns(benchkit::median(&r.attack)),
            benchkit::fmt_ns(benchkit::quantile(&r.idle, 0.95)),
            benchkit::fmt_ns(benchkit::quantile(&r.attack, 0.95)),
            if ratio <= 2.0 { "yes" } else { "**no**" },
            benchkit::median(&r.control),
            benchkit::median(&r.node_cpu) * 100.0,
            benchkit::median(&r.ours_cpu) * 100.0,
            r.failed,
            r.retries,
            r.report.connections,
            r.report.refused,
            r.report.streams,
            r.report.failures,
            if answers.is_empty() {
                ""
            } else {
                "; answers: "
            },
            answers.join(", ")
        );
    }
    println!(
        "\nnode CPU in the idle windows (the honest requester alone): {:.0}%",
        benchkit::median(&idle_cpu) * 100.0
    );
    let rss = std::fs::read_to_string(format!("/proc/{}/status", node.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    println!(
        "\nnode RSS after every attack: {:.1} MiB",
        rss as f64 / 1024.0
    );
    for n in [&mut node, &mut decoy] {
        let _ = n.kill();
        let _ = n.wait();
    }
    drop((dir, decoy_dir));
}
