//! Connectivity and discovery benchmarks, side by side in one run:
//!
//! 1. Remote invocation of a trivial tool over an established connection,
//!    against a raw quinn request/response of the same sizes (same TLS) plus
//!    the local invocation cost; and throughput with 64 requests in flight.
//! 2. A registry node process with 100,000 descriptors: ingest over the
//!    network, query latency over the network, resident memory.
//! 3. Resident memory of idle nodes.
//!
//! `cargo bench -p errand --bench network` runs all three;
//! `cargo bench -p errand --bench network -- invocation` (or `registry`,
//! `memory`) runs one.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use errand::client::{Ask, Client};
use errand::config::{NodeConfig, PeerAddr};
use errand::node::Node;
use errand::store::Store;
use errand_core::bounded::{BBytes, BString, BVec};
use errand_core::descriptor::SignedDescriptor;
use errand_core::receipt::{InvocationContext, RequestId};
use errand_core::request::{CapabilityTarget, Seed};
use errand_core::wire::{Query, Request, Response};
use errand_core::{SecretKey, UnixMillis, signed, testing};
use errand_host::{Host, Invocation, Limits, ReceiptInfo};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

fn key(n: u64) -> SecretKey {
    SecretKey::from_seed(*errand_core::Digest::of(&n.to_le_bytes()).as_bytes())
}

fn now() -> UnixMillis {
    errand::node::now()
}

fn invoke_request(id: u128, input: &[u8]) -> Ask {
    Ask {
        request_id: RequestId(id.to_le_bytes()),
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

/// A raw quinn server answering every stream with `reply_len` bytes.
async fn echo_server(k: &SecretKey, reply_len: usize) -> SocketAddr {
    let cfg = quinn::ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(errand_net::tls::server_config(k).unwrap()).unwrap(),
    ));
    let ep = quinn::Endpoint::server(cfg, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(inc) = ep.accept().await {
            tokio::spawn(async move {
                let conn = inc.await.unwrap();
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        let req = recv.read_to_end(1 << 24).await.unwrap();
                        std::hint::black_box(req);
                        send.write_all(&vec![7u8; reply_len]).await.unwrap();
                        send.finish().unwrap();
                    });
                }
            });
        }
    });
    addr
}

async fn echo_client(k: &SecretKey, server: &SecretKey, addr: SocketAddr) -> quinn::Connection {
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(errand_net::tls::client_config(k, server.peer_id()).unwrap())
            .unwrap(),
    )));
    ep.connect(addr, "errand.invalid").unwrap().await.unwrap()
}

async fn echo_call(conn: &quinn::Connection, payload: &[u8]) -> usize {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(payload).await.unwrap();
    send.finish().unwrap();
    recv.read_to_end(1 << 24).await.unwrap().len()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Starts the real `errand node` binary in `dir` and returns it with its address.
fn spawn_node(dir: &std::path::Path) -> (std::process::Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(["node", "--config", "node.toml"])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (_, addr) = errand::node::parse_ready_line(&line).unwrap();
    (child, addr)
}

fn node_dir(extra: &str, tools: &[&str]) -> (tempfile::TempDir, SecretKey) {
    let dir = tempfile::tempdir().unwrap();
    let k = SecretKey::from_seed(
        *errand_core::Digest::of(dir.path().to_str().unwrap().as_bytes()).as_bytes(),
    );
    errand::keystore::save(&k, &dir.path().join("key"), false).unwrap();
    let mut cfg = "key = \"key\"\nlisten = \"127.0.0.1:0\"\nstorage = \"data\"\n".to_owned();
    if !tools.is_empty() {
        let packages = dir.path().join("packages");
        std::fs::create_dir_all(&packages).unwrap();
        let host = Host::new().unwrap();
        for t in tools {
            let tool = errand_example_tools::get(t).unwrap();
            let work = tempfile::tempdir().unwrap();
            std::fs::write(work.path().join("capability.toml"), tool.manifest).unwrap();
            std::fs::write(work.path().join("c.wasm"), tool.component).unwrap();
            let r = errand::packaging::pack(
                &host,
                &work.path().join("capability.toml"),
                Some(&work.path().join("c.wasm")),
                &k,
                now(),
            )
            .unwrap();
            std::fs::write(
                packages.join(format!("{t}.errand")),
                signed::encode(&r.package).unwrap(),
            )
            .unwrap();
        }
        cfg.push_str("packages = \"packages\"\n");
    }
    cfg.push_str(extra);
    std::fs::write(dir.path().join("node.toml"), cfg).unwrap();
    (dir, k)
}

fn main() {
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |section: &str| only.as_deref().is_none_or(|o| o == section);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if run("invocation") {
        remote_invocation(&rt);
    }
    if run("memory") {
        idle_memory();
    }
    if run("registry") {
        registry(&rt);
    }
}

fn remote_invocation(rt: &tokio::runtime::Runtime) {
    // ------------------------------------------------ remote invocation
    let (dir, node_key) = node_dir(
        "[limits]\nmax_concurrent_invocations = 16\n",
        &["text-stats"],
    );
    let node = rt
        .block_on(Node::start(
            NodeConfig::load(&dir.path().join("node.toml")).unwrap(),
        ))
        .unwrap();
    let target = PeerAddr {
        peer: node.peer_id(),
        addr: node.local_addr(),
    };
    let client = rt.block_on(async { Client::new(key(7)).unwrap() });
    let input = b"hi".to_vec();
    let mut next_id: u128 = 1;
    let first = rt
        .block_on(client.invoke(target, &invoke_request(0, &input)))
        .unwrap();
    let req_len = signed::encode(&Request::Invoke(Box::new(
        errand_core::wire::InvokeRequest {
            request: first.request.clone(),
            input: BBytes::new(input.clone()).unwrap(),
            component: None,
            want_trace: false,
        },
    )))
    .unwrap()
    .len()
        + 4;
    let resp_len = signed::encode(&Response::Invoked(Box::new(first.response.clone())))
        .unwrap()
        .len()
        + 4;

    let echo_addr = rt.block_on(echo_server(&node_key, resp_len));
    let echo_conn = rt.block_on(echo_client(&key(8), &node_key, echo_addr));
    let req_payload = vec![1u8; req_len];

    // Local invocation cost: the same component, host, receipt signing.
    let host = Host::new().unwrap();
    let prepared = host.prepare(errand_example_tools::TEXT_STATS).unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let local_id = std::cell::Cell::new(1u128 << 100);
    let local = |durable: bool| {
        local_id.set(local_id.get() + 1);
        let r = run_and_sign(
            (&host, &prepared),
            &node_key,
            key(7).peer_id(),
            local_id.get(),
            &input,
            b"bench",
        );
        if durable {
            rt.block_on(store.put_receipt(&r, None)).unwrap();
        }
        std::hint::black_box(r);
    };
    let mut remote = || {
        next_id += 1;
        rt.block_on(client.invoke(target, &invoke_request(next_id, &input)))
            .unwrap();
    };
    let mut echo = || {
        rt.block_on(echo_call(&echo_conn, &req_payload));
    };
    let mut local_plain = || local(false);
    let mut durable = || local(true);
    // The disk's floor: a raw 512-byte append + fdatasync.
    let mut raw_file = std::fs::File::create(store_dir.path().join("fsync-floor")).unwrap();
    let mut raw_fsync = || {
        use std::io::Write as _;
        raw_file.write_all(&[7u8; 512]).unwrap();
        raw_file.sync_data().unwrap();
    };
    let times = benchkit::interleaved(
        30,
        40,
        &mut [
            &mut remote,
            &mut echo,
            &mut local_plain,
            &mut durable,
            &mut raw_fsync,
        ],
    );
    let (remote_t, echo_t, local_t, local_d, fsync_t) =
        (&times[0], &times[1], &times[2], &times[3], &times[4]);
    let ratio = |floor: &dyn Fn(usize) -> f64| -> Vec<f64> {
        (0..remote_t.len())
            .map(|i| remote_t[i] / floor(i))
            .collect()
    };
    let ratios = ratio(&|i| echo_t[i] + local_t[i]);
    let ratios_f = ratio(&|i| echo_t[i] + local_t[i] + fsync_t[i]);
    let ratios_d = ratio(&|i| echo_t[i] + local_d[i]);
    println!(
        "## Remote invocation vs the floor (text-stats on {:?}, request {req_len} B, response {resp_len} B)\n",
        "hi"
    );
    println!("| what | p50 per call |\n|---|---|");
    println!(
        "| raw quinn request/response, same sizes, same TLS | {} |",
        benchkit::fmt_ns(benchkit::median(echo_t))
    );
    println!(
        "| local invocation (instantiate, invoke, trace, sign) | {} |",
        benchkit::fmt_ns(benchkit::median(local_t))
    );
    println!(
        "| local invocation + durable receipt (the node's store) | {} |",
        benchkit::fmt_ns(benchkit::median(local_d))
    );
    println!(
        "| floor: raw 512 B append + fdatasync on the same disk | {} |",
        benchkit::fmt_ns(benchkit::median(fsync_t))
    );
    println!(
        "| **errand remote invocation** (verified receipt, durable store) | {} |",
        benchkit::fmt_ns(benchkit::median(remote_t))
    );
    let show = |r: &[f64]| {
        format!(
            "{:.2} (p10 {:.2}, p90 {:.2})",
            benchkit::median(r),
            benchkit::quantile(r, 0.1),
            benchkit::quantile(r, 0.9)
        )
    };
    println!(
        "\nremote / (echo + local + fsync floor) = {} (target <= 1.5)\nremote / (echo + local) = {}\nremote / (echo + local with durable store) = {}",
        show(&ratios_f),
        show(&ratios),
        show(&ratios_d),
    );

    // Throughput with 64 requests in flight.
    let run_concurrent = |n_tasks: usize, per_task: usize, echo_mode: bool| -> f64 {
        let t0 = Instant::now();
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for t in 0..n_tasks {
                let client = client.clone();
                let conn = echo_conn.clone();
                let payload = req_payload.clone();
                let input = input.clone();
                set.spawn(async move {
                    for i in 0..per_task {
                        if echo_mode {
                            echo_call(&conn, &payload).await;
                        } else {
                            let id = (1u128 << 64)
                                + (t as u128) * 1_000_000
                                + i as u128
                                + (rand_salt() << 80);
                            client
                                .invoke(target, &invoke_request(id, &input))
                                .await
                                .unwrap();
                        }
                    }
                });
            }
            while set.join_next().await.is_some() {}
        });
        (n_tasks * per_task) as f64 / t0.elapsed().as_secs_f64()
    };
    let echo_tp = run_concurrent(64, 50, true);
    let invoke_tp = run_concurrent(64, 25, false);
    let seq_tp = 1e9 / benchkit::median(remote_t);
    println!(
        "\n## Throughput with 64 requests in flight (one connection, node with 16 invocation slots, 2 cores)\n"
    );
    println!("| what | requests/s |\n|---|---|");
    println!("| raw quinn request/response | {echo_tp:.0} |");
    println!("| errand remote invocation, one at a time | {seq_tp:.0} |");
    println!("| **errand remote invocation, 64 in flight** | {invoke_tp:.0} |");
    println!(
        "\nconcurrency speed-up {:.2}x over one at a time",
        invoke_tp / seq_tp
    );

    // The CPU every invocation needs whatever the transport, store or
    // threading: the requester signs the request, the executor checks it,
    // runs the tool and signs the receipt, the requester checks the
    // receipt. Two threads (the machine's cores; the bench's client and
    // node share them too), no I/O, no hand-offs: a ceiling on throughput.
    let ceiling = |with_run: bool| -> f64 {
        let per_thread: usize = if with_run { 1_500 } else { 3_000 };
        let t0 = Instant::now();
        std::thread::scope(|s| {
            for t in 0..2u128 {
                let (host, prepared, node_key, input) = (&host, &prepared, &node_key, &input);
                s.spawn(move || {
                    let requester = key(7);
                    let (requester_id, executor_id) = (requester.peer_id(), node_key.peer_id());
                    let request = vec![1u8; req_len];
                    let answer = vec![2u8; resp_len];
                    for i in 0..per_thread as u128 {
                        let sig = requester.sign(&request);
                        requester_id.verify(&request, &sig).unwrap();
                        if with_run {
                            let id = (t << 100) + (1 << 90) + i;
                            run_and_sign(
                                (host, prepared),
                                node_key,
                                requester_id,
                                id,
                                input,
                                &request,
                            )
                            .verify()
                            .unwrap();
                        } else {
                            let sig = node_key.sign(&answer);
                            executor_id.verify(&answer, &sig).unwrap();
                        }
                    }
                });
            }
        });
        (2 * per_thread) as f64 / t0.elapsed().as_secs_f64()
    };
    let sig_ceiling = ceiling(false);
    let run_ceiling = ceiling(true);
    println!("\n## Ceiling: the CPU an invocation cannot do without, 2 threads, no I/O\n");
    println!("| what | requests/s | / raw quinn, 64 in flight |\n|---|---|---|");
    println!(
        "| four ed25519 operations (request signed and checked, receipt signed and checked) | {sig_ceiling:.0} | {:.2} |",
        sig_ceiling / echo_tp
    );
    println!(
        "| the same four, with the trivial tool run in between (instantiate, invoke, trace) | {run_ceiling:.0} | {:.2} |",
        run_ceiling / echo_tp
    );
    println!(
        "| errand remote invocation, 64 in flight (above) | {invoke_tp:.0} | {:.2} |",
        invoke_tp / echo_tp
    );
    rt.block_on(node.shutdown());
    drop((dir, store_dir));
}

fn idle_memory() {
    let (bare_dir, _) = node_dir("", &[]);
    let (mut bare, _) = spawn_node(bare_dir.path());
    let (tools_dir, _) = node_dir(
        "",
        &["imagegen", "publish", "thumbnail", "markdown", "text-stats"],
    );
    let (mut tools, _) = spawn_node(tools_dir.path());
    std::thread::sleep(Duration::from_secs(2));
    let (bare_rss, tools_rss) = (rss_kib(bare.id()), rss_kib(tools.id()));
    let _ = bare.kill();
    let _ = tools.kill();
    println!("\n## Idle node memory (real process)\n");
    println!("| node | RSS |\n|---|---|");
    println!(
        "| bare node (no packages, not a registry) | {:.1} MiB |",
        bare_rss as f64 / 1024.0
    );
    println!(
        "| node hosting the 5 example tools (compiled) | {:.1} MiB |",
        tools_rss as f64 / 1024.0
    );
    drop((bare_dir, tools_dir));
}

/// One registry process per ranking, the same descriptors and queries.
fn registry(rt: &tokio::runtime::Runtime) {
    let client = rt.block_on(async { Client::new(key(7)).unwrap() });
    println!("\n## Registry node with 100000 descriptors (real process, over QUIC)\n");
    println!(
        "| ranking | ingest, 100 per publish message, 8 in flight | query p50 over the network (incl. round trip) | query p95 | RSS empty | RSS full |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, config) in [
        ("sampled (default)", "[registry]\n"),
        ("relevance", "[registry]\nranking = \"relevance\"\n"),
    ] {
        let (reg_dir, reg_key) = node_dir(config, &[]);
        let (mut reg, reg_addr) = spawn_node(reg_dir.path());
        let reg_target = PeerAddr {
            peer: reg_key.peer_id(),
            addr: reg_addr,
        };
        std::thread::sleep(Duration::from_millis(500));
        let reg_empty = rss_kib(reg.id());
        const N: usize = 100_000;
        const PER_PUBLISHER: usize = 100;
        let issued = now();
        let publishers: Vec<SecretKey> = (0..(N / PER_PUBLISHER) as u64)
            .map(|i| key(1_000 + i))
            .collect();
        let batches: Vec<Vec<SignedDescriptor>> = publishers
            .iter()
            .map(|k| {
                (0..PER_PUBLISHER)
                    .map(|j| {
                        let mut d = testing::descriptor(k);
                        d.name = BString::new(format!("cap-{j}")).unwrap();
                        d.description = BString::new(format!(
                            "capability {j} of its publisher: {}",
                            [
                                "renders images",
                                "translates text",
                                "counts words",
                                "resizes pictures",
                                "publishes posts"
                            ][j % 5]
                        ))
                        .unwrap();
                        d.issued_at = issued;
                        d.ttl_ms = 3_600_000;
                        SignedDescriptor::sign(d, k).unwrap()
                    })
                    .collect()
            })
            .collect();
        let t0 = Instant::now();
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for (i, b) in batches.into_iter().enumerate() {
                let client = client.clone();
                set.spawn(async move {
                    let r = client
                        .request(reg_target, &Request::Publish(BVec::new(b).unwrap()))
                        .await
                        .unwrap();
                    assert!(matches!(r, Response::Published(_)), "{r:?}");
                    i
                });
                if set.len() >= 8 {
                    set.join_next().await;
                }
            }
            while set.join_next().await.is_some() {}
        });
        let ingest = N as f64 / t0.elapsed().as_secs_f64();
        let mut lat = Vec::new();
        let queries = [
            "render an image",
            "translate my text",
            "count words",
            "resize a picture",
            "publish a post",
        ];
        for round in 0..200 {
            let q = Query::intent(queries[round % queries.len()], 10);
            let t = Instant::now();
            let f = rt.block_on(client.find(&[reg_target], &q, now())).unwrap();
            lat.push(t.elapsed().as_nanos() as f64);
            assert_eq!(f.candidates.len(), 10);
        }
        std::thread::sleep(Duration::from_millis(500));
        let reg_full = rss_kib(reg.id());
        let _ = reg.kill();
        println!(
            "| {label} | {ingest:.0} descriptors/s | {} | {} | {:.1} MiB | {:.1} MiB ({:.0} bytes per descriptor) |",
            benchkit::fmt_ns(benchkit::median(&lat)),
            benchkit::fmt_ns(benchkit::quantile(&lat, 0.95)),
            reg_empty as f64 / 1024.0,
            reg_full as f64 / 1024.0,
            (reg_full - reg_empty) as f64 * 1024.0 / N as f64
        );
        drop(reg_dir);
    }
}

/// A local run of `prepared` on `input` and its signed receipt, as the
/// executor makes them for a request with id `id` and bytes `request`.
fn run_and_sign(
    (host, prepared): (&Host, &errand_host::Prepared),
    executor: &SecretKey,
    requester: errand_core::PeerId,
    id: u128,
    input: &[u8],
    request: &[u8],
) -> errand_core::receipt::SignedReceipt {
    let inv = Invocation {
        input,
        request_id: RequestId(id.to_le_bytes()),
        seed: Seed([7; 32]),
        context: InvocationContext::default(),
        limits: Limits::default(),
        keep_trace: false,
    };
    let exec = host.run(prepared, &inv).unwrap();
    host.sign_receipt(
        &ReceiptInfo {
            executor,
            requester,
            request_id: inv.request_id,
            request: errand_core::Digest::of(request),
            seed: inv.seed,
            capability: None,
            component: prepared.digest(),
            context: inv.context.clone(),
            limits: inv.limits,
        },
        &exec,
    )
    .unwrap()
}

fn rand_salt() -> u128 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b) as u128
}
