//! Multi-node tests: real `errand node` processes on loopback.

use std::time::Duration;

use errand::client::{Ask, Client};
use errand::config::PeerAddr;
use errand_core::bounded::{BBytes, BString, BVec};
use errand_core::descriptor::SignedDescriptor;
use errand_core::receipt::{InvocationContext, RequestId};
use errand_core::request::{CapabilityTarget, Seed};
use errand_core::wire::{ErrorCode, PublishOutcome, Query, Request, Response};
use errand_core::{SecretKey, testing};

use crate::support::{
    NodeProc, NodeSpec, Sandbox, code, eventually, p, pack_example, stderr, stdout,
};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    crate::support::rt().block_on(f)
}

fn registry() -> NodeProc {
    NodeProc::start(&NodeSpec {
        registry: true,
        ..NodeSpec::default()
    })
}

fn executor(reg: &NodeProc, tools: &[&str], ttl_ms: u32, refresh_ms: u32) -> NodeProc {
    let spec = NodeSpec {
        packages: true,
        registries: vec![reg.peer_addr()],
        ttl_ms: Some(ttl_ms),
        refresh_ms: Some(refresh_ms),
        ..NodeSpec::default()
    };
    // Packed in a scratch folder, then copied into the running node's.
    let tmp = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(crate::support::rand_seed());
    for t in tools {
        pack_example(t, tmp.path(), &key, None);
    }
    let n = NodeProc::start(&spec);
    for t in tools {
        std::fs::copy(
            tmp.path().join(format!("{t}.errand")),
            n.packages().join(format!("{t}.errand")),
        )
        .unwrap();
    }
    // The scanner (every 200 ms) picks them up and publishes at once.
    n
}

/// Names the registry returns for `intent`, asked with `client`.
fn find_names(client: &Client, reg: &NodeProc, intent: &str) -> Vec<(String, String)> {
    let q = Query::intent(intent, 20);
    block_on(client.find(&[reg.peer_addr()], &q, errand::node::now()))
        .map(|f| {
            f.candidates
                .iter()
                .map(|d| (d.body().name.to_string(), d.body().version.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// An invocation of the hosted text-stats capability.
fn text_stats_request(id: RequestId, input: &[u8]) -> Ask {
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
        seed: Seed([id.0[0]; 32]),
        want_trace: false,
    }
}

/// Waits until the registry lists something for `intent`.
fn wait_until_listed(client: &Client, reg: &NodeProc, intent: &str) {
    let listed = eventually(Duration::from_secs(10), || {
        !find_names(client, reg, intent).is_empty()
    });
    assert!(listed.is_some(), "nothing was listed for {intent:?}");
}

fn new_client() -> Client {
    block_on(async { Client::new(SecretKey::from_seed(crate::support::rand_seed())).unwrap() })
}

#[test]
fn full_path_publish_find_invoke_verify_offline() {
    let reg = registry();
    let exec = executor(&reg, &["text-stats", "markdown"], 15_000, 5_000);
    let user = Sandbox::new();
    let registry = reg.peer_addr().to_string();

    // Published: the registry finds it by intent.
    let mut last = String::new();
    let found = eventually(Duration::from_secs(10), || {
        let o = user.errand(&["find", "count the words in a text", "--registry", &registry]);
        last = format!("{}{}", stdout(&o), stderr(&o));
        code(&o) == 0 && stdout(&o).contains("text-stats")
    });
    assert!(found.is_some(), "never published: {last}\n{}", exec.log());
    let o = user.errand(&[
        "find",
        "count the words in a text",
        "--registry",
        &registry,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["candidates"][0]["body"]["name"], "text-stats");
    assert_eq!(
        v["candidates"][0]["body"]["publisher"],
        exec.peer.to_string()
    );

    // Invoked by intent, receipt checked, evidence written.
    std::fs::write(user.path("in.txt"), "one fish two fish red fish blue fish").unwrap();
    let o = user.errand(&[
        "invoke",
        "--intent",
        "word frequency",
        "--registry",
        &registry,
        "--input",
        "in.txt",
        "-o",
        "out.json",
        "--evidence",
        "run.evidence",
        "--trace",
        "--risk",
        "high",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Through the trust plane: at high risk, canary, receipt and replay.
    for check in ["canary ok", "receipt ok", "replay ok", "accepted"] {
        assert!(stderr(&o).contains(check), "{check}: {}", stderr(&o));
    }
    let out: serde_json::Value =
        serde_json::from_slice(&std::fs::read(user.path("out.json")).unwrap()).unwrap();
    assert_eq!(out["words"], 8);
    assert_eq!(out["top_terms"][0]["term"], "fish");

    // Verified offline, and by replay against the published component.
    let o = user.errand(&[
        "verify",
        "run.evidence",
        "--executor",
        &exec.peer.to_string(),
        "--output",
        "out.json",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("trace            pass"),
        "{}",
        stdout(&o)
    );
    let pkg = exec.packages().join("text-stats.errand");
    let o = user.errand(&[
        "verify",
        "run.evidence",
        "--replay",
        "--component",
        p(&pkg),
        "--input",
        "in.txt",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));

    // Invoked by PEERID (looked up in the registry), several capabilities:
    // the CLI asks which one.
    let o = user.errand(&[
        "invoke",
        &exec.peer.to_string(),
        "--registry",
        &registry,
        "--input",
        "in.txt",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--capability"), "{}", stderr(&o));
    let o = user.errand(&[
        "invoke",
        &exec.peer.to_string(),
        "--capability",
        "markdown",
        "--registry",
        &registry,
        "--input",
        "in.txt",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "<p>one fish two fish red fish blue fish</p>\n");

    // The node's status, asked with its own key.
    let o = user.errand(&["status", "--config", p(&exec.dir.join("node.toml"))]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Two invocations, plus the canary the high-risk --intent call sent.
    assert!(stdout(&o).contains("receipts   3 stored"), "{}", stdout(&o));
    // Anyone else is refused.
    let o = user.errand(&["status", &exec.peer_addr().to_string()]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("Forbidden"), "{}", stderr(&o));
}

#[test]
fn a_dead_node_disappears_from_the_registry_when_its_ttl_passes() {
    let reg = registry();
    let mut exec = executor(&reg, &["text-stats"], 2_000, 600);
    let client = new_client();
    wait_until_listed(&client, &reg, "word count");
    exec.kill();
    // Gone within TTL plus one expiry sweep.
    let gone = eventually(Duration::from_secs(6), || {
        find_names(&client, &reg, "word count").is_empty()
    });
    let took = gone.expect("entries of a dead node never expired");
    assert!(took <= Duration::from_millis(3_500), "took {took:?}");
}

#[test]
fn a_swapped_version_reaches_the_registry_within_one_refresh() {
    let reg = registry();
    let exec = executor(&reg, &["text-stats"], 15_000, 3_000);
    let client = new_client();
    assert!(
        eventually(Duration::from_secs(10), || find_names(
            &client,
            &reg,
            "word count"
        ) == vec![(
            "text-stats".into(),
            "1.0.0".into()
        )])
        .is_some()
    );
    // The operator swaps the package for a new version.
    pack_example("text-stats", &exec.packages(), &exec.key(), Some("1.1.0"));
    let seen = eventually(Duration::from_secs(10), || {
        find_names(&client, &reg, "word count") == vec![("text-stats".into(), "1.1.0".into())]
    });
    let took = seen.expect("the new version never reached the registry");
    assert!(
        took < Duration::from_millis(3_000),
        "took {took:?}, more than one refresh"
    );
}

#[test]
fn removing_a_package_withdraws_it_at_once_and_sigterm_withdraws_everything() {
    let reg = registry();
    let mut exec = executor(&reg, &["text-stats", "markdown"], 15_000, 5_000);
    let client = new_client();
    assert!(
        eventually(Duration::from_secs(10), || find_names(
            &client,
            &reg,
            "markdown html"
        )
        .len()
            == 1)
        .is_some()
    );
    std::fs::remove_file(exec.packages().join("markdown.errand")).unwrap();
    let gone = eventually(Duration::from_secs(5), || {
        find_names(&client, &reg, "markdown html").is_empty()
    });
    assert!(gone.expect("not withdrawn") < Duration::from_secs(2));
    assert_eq!(find_names(&client, &reg, "word count").len(), 1);
    // Graceful shutdown withdraws the rest, long before the 15 s TTL.
    assert!(exec.terminate().success(), "{}", exec.log());
    assert!(find_names(&client, &reg, "word count").is_empty());
}

fn descriptor_for(key: &SecretKey, seq: u64, issued: errand_core::UnixMillis) -> SignedDescriptor {
    let mut d = testing::descriptor(key);
    d.seq = seq;
    d.issued_at = issued;
    SignedDescriptor::sign(d, key).unwrap()
}

#[test]
fn the_registry_refuses_forged_and_expired_descriptors() {
    let reg = registry();
    let client = new_client();
    let key = SecretKey::from_seed([42; 32]);
    let now = errand::node::now();
    let good = descriptor_for(&key, 1, now);
    let mut bytes = good.to_bytes();
    let n = bytes.len();
    bytes[n - 10] ^= 0x40; // inside the signature
    let forged = SignedDescriptor::decode(&bytes).unwrap();
    let expired = descriptor_for(&key, 2, now.minus_ms(60_000));
    // Someone else's key, claiming our identity: signature fails.
    let mut impostor = testing::descriptor(&SecretKey::from_seed([43; 32]));
    impostor.publisher = key.peer_id();
    let impostor_bytes = {
        let signed = SignedDescriptor::sign(
            testing::descriptor(&SecretKey::from_seed([43; 32])),
            &SecretKey::from_seed([43; 32]),
        )
        .unwrap();
        let mut b = errand_core::signed::encode(&impostor).unwrap();
        b.extend_from_slice(&signed.signature().0);
        b
    };
    let impostor = SignedDescriptor::decode(&impostor_bytes).unwrap();
    let req = Request::Publish(BVec::new(vec![forged, expired, impostor, good]).unwrap());
    let resp = block_on(client.request(reg.peer_addr(), &req)).unwrap();
    match resp {
        Response::Published(o) => assert_eq!(
            o.as_slice(),
            &[
                PublishOutcome::BadSignature,
                PublishOutcome::Expired,
                PublishOutcome::BadSignature,
                PublishOutcome::Accepted
            ]
        ),
        r => panic!("{r:?}"),
    }
    // Only the good one is findable.
    assert_eq!(find_names(&client, &reg, "generate image").len(), 1);
}

#[test]
fn a_peer_presenting_the_wrong_key_is_refused() {
    let reg = registry();
    let exec = executor(&reg, &["text-stats"], 15_000, 5_000);
    let user = Sandbox::new();
    std::fs::write(user.path("in.txt"), "hello").unwrap();
    // Dial the executor's address, expecting the registry's key.
    let wrong = PeerAddr {
        peer: reg.peer,
        addr: exec.addr,
    };
    let o = user.errand(&[
        "invoke",
        &wrong.to_string(),
        "--capability",
        "text-stats",
        "--input",
        "in.txt",
    ]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("expected {}", reg.peer)),
        "{}",
        stderr(&o)
    );
}

#[test]
fn malformed_and_oversized_frames_do_not_stop_the_node_serving_others() {
    let reg = registry();
    let exec = executor(&reg, &["text-stats"], 15_000, 5_000);
    assert!(
        eventually(Duration::from_secs(10), || {
            std::fs::read_dir(exec.dir.join("data/compiled")).is_ok_and(|d| d.count() > 0)
        })
        .is_some()
    );
    block_on(async {
        let bad = Client::new(SecretKey::from_seed([50; 32])).unwrap();
        let conn = bad.endpoint().connect(exec.addr, exec.peer).await.unwrap();
        match conn
            .request_raw(b"\x0eerrand/request\x01\x03garbage")
            .await
            .unwrap()
        {
            Response::Error(e) => assert_eq!(e.code, ErrorCode::BadRequest),
            r => panic!("{r:?}"),
        }
        let conn = bad.endpoint().connect(exec.addr, exec.peer).await.unwrap();
        let huge = vec![7u8; 97 << 20];
        match conn.request_raw(&huge).await {
            Ok(Response::Error(e)) => assert_eq!(e.code, ErrorCode::TooLarge),
            Ok(r) => panic!("{r:?}"),
            // The node may cut the connection before the whole frame is sent.
            Err(_) => {}
        }
        // An honest peer is served.
        let good = Client::new(SecretKey::from_seed([51; 32])).unwrap();
        let inv = text_stats_request(RequestId([9; 16]), b"still here");
        let done = good.invoke(exec.peer_addr(), &inv).await.unwrap();
        assert!(done.response.receipt.body().outcome.is_ok());
    });
    assert!(exec.log().contains("protocol violation"), "{}", exec.log());
}

#[test]
fn receipts_survive_sigkill_and_restart() {
    let reg = registry();
    let mut exec = executor(&reg, &["text-stats"], 15_000, 5_000);
    let client = new_client();
    wait_until_listed(&client, &reg, "word count");
    let ids: Vec<RequestId> = (0..20u8).map(|i| RequestId([i; 16])).collect();
    let receipts: Vec<_> = block_on(async {
        let mut out = Vec::new();
        for id in &ids {
            let inv = text_stats_request(*id, b"durable words");
            out.push(
                client
                    .invoke(exec.peer_addr(), &inv)
                    .await
                    .unwrap()
                    .response
                    .receipt,
            );
        }
        out
    });
    exec.kill();
    exec.spawn();
    block_on(async {
        for (id, r) in ids.iter().zip(&receipts) {
            match client
                .request(exec.peer_addr(), &Request::GetReceipt(*id))
                .await
                .unwrap()
            {
                Response::Receipt(Some(stored)) => assert_eq!(&*stored, r),
                other => panic!("receipt {id} lost after SIGKILL: {other:?}"),
            }
        }
        // A reused nonce is refused: receipts are also replay protection.
        let inv = text_stats_request(ids[0], b"again");
        match client.invoke(exec.peer_addr(), &inv).await {
            Err(errand::client::ClientError::Remote { error, .. }) => {
                assert_eq!(error.code, ErrorCode::Replay)
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn action_shipping_is_off_by_default_and_follows_the_allowlist() {
    let shipper = SecretKey::from_seed([61; 32]);
    let spec = NodeSpec {
        extra: format!(
            "[policy]\naction_shipping = true\nshipping_allow = [\"{}\"]\nshipping_max_fuel = 50000000\n",
            shipper.peer_id()
        ),
        ..NodeSpec::default()
    };
    let open = NodeProc::start(&spec);
    let closed = NodeProc::start(&NodeSpec::default());
    let component = errand_example_tools::TEXT_STATS;
    let digest = errand_core::Digest::of(component);
    let req = |id: u8| Ask {
        request_id: RequestId([id; 16]),
        capability: None,
        component: Some(digest),
        input: BBytes::new(b"shipped action".to_vec()).unwrap(),
        context: InvocationContext::default(),
        fuel: 50_000_000,
        limits: None,
        seed: Seed([id; 32]),
        want_trace: false,
    };
    let bytes = |b: Option<&[u8]>| b.map(|b| BBytes::new(b.to_vec()).unwrap());
    block_on(async {
        let allowed = Client::new(shipper.clone()).unwrap();
        let other = Client::new(SecretKey::from_seed([62; 32])).unwrap();
        let code_of = |r: Result<errand::client::Invoked, errand::client::ClientError>| match r {
            Err(errand::client::ClientError::Remote { error, .. }) => Some(error.code),
            Ok(_) => None,
            Err(e) => panic!("{e}"),
        };
        // Off by default.
        assert_eq!(
            code_of(
                allowed
                    .invoke_shipped(closed.peer_addr(), &req(1), bytes(Some(component)))
                    .await
            ),
            Some(ErrorCode::Forbidden)
        );
        // On, but not for this peer.
        assert_eq!(
            code_of(
                other
                    .invoke_shipped(open.peer_addr(), &req(2), bytes(Some(component)))
                    .await
            ),
            Some(ErrorCode::Forbidden)
        );
        // Allowed: by digest first; the node asks for the bytes once.
        assert_eq!(
            code_of(
                allowed
                    .invoke_shipped(open.peer_addr(), &req(3), bytes(None))
                    .await
            ),
            Some(ErrorCode::NeedComponent)
        );
        let done = allowed
            .invoke_shipped(open.peer_addr(), &req(4), bytes(Some(component)))
            .await
            .unwrap();
        let r = done.response.receipt.body();
        assert!(r.outcome.is_ok());
        assert_eq!(r.fuel_limit, 50_000_000, "exactly the fuel asked");
        // More fuel than the shipping policy allows is refused, by name,
        // rather than run with less than the request signed.
        let greedy = Ask {
            fuel: 50_000_001,
            ..req(6)
        };
        match allowed
            .invoke_shipped(open.peer_addr(), &greedy, bytes(Some(component)))
            .await
        {
            Err(errand::client::ClientError::Remote { error, .. }) => {
                assert_eq!(error.code, ErrorCode::Forbidden);
                assert!(error.message.contains("at most 50000000"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.component, digest);
        // Now held: the digest alone suffices.
        let done = allowed
            .invoke_shipped(open.peer_addr(), &req(5), bytes(None))
            .await
            .unwrap();
        assert!(done.response.receipt.body().outcome.is_ok());
    });
    // From the CLI, as the allowed shipper, with a component the node has
    // not seen: digest first, then the upload.
    let user = Sandbox::new();
    errand::keystore::save(&shipper, &user.path("key"), true).unwrap();
    std::fs::write(user.path("md.wasm"), errand_example_tools::MARKDOWN).unwrap();
    std::fs::write(user.path("in.md"), "*shipped*").unwrap();
    let o = user.errand(&[
        "invoke",
        &open.peer_addr().to_string(),
        "--ship",
        "md.wasm",
        "--input",
        "in.md",
    ]);
    // The default fuel is over this node's shipping cap: refused, saying
    // how much it allows, rather than run with less than was signed.
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("at most 50000000"), "{}", stderr(&o));
    let o = user.errand(&[
        "invoke",
        &open.peer_addr().to_string(),
        "--ship",
        "md.wasm",
        "--input",
        "in.md",
        "--fuel",
        "50000000",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "<p><em>shipped</em></p>\n");
}

/// Traffic across a real network stack: two network namespaces joined by a
/// veth pair, the registry and executor in one, the client in the other.
#[test]
fn nodes_in_separate_network_namespaces() {
    let Some(net) = Netns::create() else {
        return;
    };
    let mut reg = NodeProc::prepare(&NodeSpec {
        registry: true,
        listen: Some("10.77.0.1:4433".into()),
        ..NodeSpec::default()
    });
    reg.spawn_with(Some(&net.a));
    let tmp = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(crate::support::rand_seed());
    pack_example("text-stats", tmp.path(), &key, None);
    let mut exec = NodeProc::prepare(&NodeSpec {
        packages: true,
        registries: vec![reg.peer_addr()],
        listen: Some("10.77.0.1:4434".into()),
        ..NodeSpec::default()
    });
    std::fs::copy(
        tmp.path().join("text-stats.errand"),
        exec.packages().join("text-stats.errand"),
    )
    .unwrap();
    exec.spawn_with(Some(&net.a));
    let user = Sandbox::new();
    std::fs::write(user.path("in.txt"), "across namespaces").unwrap();
    let registry = reg.peer_addr().to_string();
    let run = |args: &[&str]| {
        std::process::Command::new("ip")
            .args(["netns", "exec", &net.b, crate::support::bin()])
            .args(args)
            .current_dir(user.dir.path())
            .env("ERRAND_KEY", user.path("key"))
            .env("ERRAND_STATE", user.path("state"))
            .output()
            .unwrap()
    };
    assert!(
        eventually(Duration::from_secs(15), || {
            let o = run(&["find", "word count", "--registry", &registry]);
            code(&o) == 0 && stdout(&o).contains("text-stats")
        })
        .is_some(),
        "{}",
        exec.log()
    );
    let o = run(&[
        "invoke",
        "--intent",
        "word count",
        "--registry",
        &registry,
        "--input",
        "in.txt",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("\"words\":2"), "{}", stdout(&o));
}

/// Two network namespaces `a` (10.77.0.1) and `b` (10.77.0.2) joined by veth.
struct Netns {
    a: String,
    b: String,
}

impl Netns {
    /// Creates them, or prints why not and returns `None`.
    fn create() -> Option<Netns> {
        let tag = std::process::id();
        let n = Netns {
            a: format!("errand-a-{tag}"),
            b: format!("errand-b-{tag}"),
        };
        let ip = |args: &[&str]| {
            std::process::Command::new("ip")
                .args(args)
                .output()
                .map(|o| {
                    o.status
                        .success()
                        .then_some(())
                        .ok_or(String::from_utf8_lossy(&o.stderr).into_owned())
                })
                .unwrap_or_else(|e| Err(e.to_string()))
        };
        let (va, vb) = (format!("ea{tag}"), format!("eb{tag}"));
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", &n.a],
            vec!["netns", "add", &n.b],
            vec!["link", "add", &va, "type", "veth", "peer", "name", &vb],
            vec!["link", "set", &va, "netns", &n.a],
            vec!["link", "set", &vb, "netns", &n.b],
            vec!["-n", &n.a, "addr", "add", "10.77.0.1/24", "dev", &va],
            vec!["-n", &n.b, "addr", "add", "10.77.0.2/24", "dev", &vb],
            vec!["-n", &n.a, "link", "set", &va, "up"],
            vec!["-n", &n.b, "link", "set", &vb, "up"],
            vec!["-n", &n.a, "link", "set", "lo", "up"],
            vec!["-n", &n.b, "link", "set", "lo", "up"],
        ];
        for s in steps {
            if let Err(why) = ip(&s) {
                println!(
                    "SKIPPED nodes_in_separate_network_namespaces: `ip {}` failed ({}); needs root and iproute2",
                    s.join(" "),
                    why.trim()
                );
                drop(n);
                return None;
            }
        }
        Some(n)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .output();
        }
    }
}

/// Auditing at scale: an operator exports a node's receipts, each with the
/// signed request it answers, and an auditor verifies the folder at once.
#[test]
fn receipts_export_with_their_requests_and_verify_as_a_folder() {
    let reg = registry();
    let mut exec = executor(&reg, &["text-stats"], 15_000, 5_000);
    let client = new_client();
    wait_until_listed(&client, &reg, "word count");
    block_on(async {
        for i in 0..3u8 {
            let inv = text_stats_request(RequestId([100 + i; 16]), b"audited words");
            client.invoke(exec.peer_addr(), &inv).await.unwrap();
        }
    });
    assert!(exec.terminate().success());
    let run = |args: &[&str]| {
        std::process::Command::new(crate::support::bin())
            .args(args)
            .current_dir(&exec.dir)
            .output()
            .unwrap()
    };
    let o = run(&["receipts", "--config", "node.toml", "--export", "exported"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
    assert!(!stdout(&o).contains("no signed request"), "{}", stdout(&o));
    let peer = exec.peer.to_string();
    let o = run(&["verify", "exported", "--executor", &peer]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("3 files: 3 verified, 0 failed"),
        "{}",
        stdout(&o)
    );
    // One flipped byte in one file: that file fails, the others pass, and
    // the exit status is the worst.
    let victim = std::fs::read_dir(exec.dir.join("exported"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&victim).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 1;
    std::fs::write(&victim, bytes).unwrap();
    let o = run(&["verify", "exported"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("2 verified, 1 failed"),
        "{}",
        stdout(&o)
    );
}

/// An executor hosting text-stats, with no registry, `extra` appended to its
/// node.toml; returns once it hosts the tool.
fn lone_executor(extra: &str) -> NodeProc {
    let exec = NodeProc::start(&NodeSpec {
        packages: true,
        extra: extra.to_owned(),
        ..NodeSpec::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(crate::support::rand_seed());
    pack_example("text-stats", tmp.path(), &key, None);
    std::fs::copy(
        tmp.path().join("text-stats.errand"),
        exec.packages().join("text-stats.errand"),
    )
    .unwrap();
    let own = block_on(async { Client::new(exec.key()).unwrap() });
    let hosted = eventually(Duration::from_secs(20), || {
        block_on(own.status(exec.peer_addr())).is_ok_and(|s| !s.capabilities.is_empty())
    });
    assert!(hosted.is_some(), "never hosted text-stats:\n{}", exec.log());
    block_on(own.close());
    exec
}

/// An encoded `Invoke` of text-stats on `exec`, signed by `key`.
fn signed_invoke(key: &SecretKey, exec: &NodeProc, id: RequestId, input: &[u8]) -> Vec<u8> {
    let client = block_on(async { Client::new(key.clone()).unwrap() });
    let ask = text_stats_request(id, input);
    let request = client.sign(exec.peer, &ask).unwrap();
    errand_core::signed::encode(&Request::Invoke(Box::new(
        errand_core::wire::InvokeRequest {
            request,
            input: ask.input,
            component: None,
            want_trace: false,
        },
    )))
    .unwrap()
}

#[test]
fn parallel_invokes_from_one_identity_all_succeed_and_every_receipt_is_delivered() {
    // Agents run tools in parallel from several processes under one key.
    // At its per-peer connection limit the node used to close the peer's
    // oldest connection, in-flight invocation included: the work was done
    // and its receipt stored, but the requester never got it.
    let exec = lone_executor("[limits]\nmax_connections_per_peer = 2\n");
    let user = Sandbox::new();
    std::fs::write(user.path("in.txt"), "twelve agents, one key, one executor").unwrap();
    let target = exec.peer_addr().to_string();
    let n = 12;
    let children: Vec<_> = (0..n)
        .map(|i| {
            user.command(&[
                "invoke",
                &target,
                "--capability",
                "text-stats",
                "--input",
                "in.txt",
                "-o",
                &format!("out{i}.json"),
                "--evidence",
                &format!("run{i}.evidence"),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), exec.log());
    }
    // Every receipt stored was delivered, and every one delivered is stored.
    let me = block_on(async {
        Client::new(errand::keystore::load(&user.path("key")).unwrap()).unwrap()
    });
    for i in 0..n {
        let ev = std::fs::read(user.path(&format!("run{i}.evidence"))).unwrap();
        let ev: errand_core::evidence::Evidence = errand_core::signed::decode(&ev).unwrap();
        let id = ev.receipt.body().request_id;
        match block_on(me.request(exec.peer_addr(), &Request::GetReceipt(id))).unwrap() {
            Response::Receipt(Some(stored)) => assert_eq!(*stored, ev.receipt),
            other => panic!("receipt {id} delivered but not stored: {other:?}"),
        }
    }
    let own = block_on(async { Client::new(exec.key()).unwrap() });
    let status = block_on(own.status(exec.peer_addr())).unwrap();
    assert_eq!(status.receipts_stored, n as u64, "{status:?}");
}

#[test]
fn status_does_not_list_its_own_probing_connection() {
    let exec = NodeProc::start(&NodeSpec::default());
    let user = Sandbox::new();
    let config = exec.dir.join("node.toml");
    let o = user.errand(&["status", "--config", p(&config)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("peers      0 connected"),
        "{}",
        stdout(&o)
    );
    // A real peer, connected while status is asked, is listed; the probe is not.
    let other = new_client();
    assert_eq!(
        block_on(other.request(exec.peer_addr(), &Request::Ping)).unwrap(),
        Response::Pong
    );
    let o = user.errand(&["status", "--config", p(&config), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        v["peers"],
        serde_json::json!([other.peer_id().to_string()]),
        "{v}"
    );
    block_on(other.close());
}

#[test]
fn concurrent_replays_of_one_request_id_run_exactly_once() {
    let exec = lone_executor("");
    let key = SecretKey::from_seed(crate::support::rand_seed());
    let ids: Vec<RequestId> = (0..6u8).map(|i| RequestId([i + 1; 16])).collect();
    let payloads: Vec<Vec<u8>> = ids
        .iter()
        .map(|id| signed_invoke(&key, &exec, *id, b"once and only once"))
        .collect();
    let target = errand_net::testing::Target {
        addr: exec.addr,
        peer: exec.peer,
    };
    let report = block_on(errand_net::testing::run(
        &errand_net::testing::Attack::Replay {
            key: key.clone(),
            payloads,
            copies: 8,
            connections: 4,
        },
        target,
        Duration::ZERO,
    ))
    .unwrap();
    assert_eq!(report.count("Invoked"), ids.len() as u64, "{report:?}");
    assert_eq!(
        report.count("Error(Replay)"),
        (ids.len() * 7) as u64,
        "{report:?}"
    );
    // What each requester got is what is stored: nothing was overwritten.
    let me = block_on(async { Client::new(key.clone()).unwrap() });
    for (i, resp) in &report.replies {
        if let Response::Invoked(r) = resp {
            match block_on(me.request(exec.peer_addr(), &Request::GetReceipt(ids[*i]))).unwrap() {
                Response::Receipt(Some(stored)) => assert_eq!(*stored, r.receipt),
                other => panic!("{other:?}"),
            }
        }
    }
    let own = block_on(async { Client::new(exec.key()).unwrap() });
    assert_eq!(
        block_on(own.status(exec.peer_addr()))
            .unwrap()
            .receipts_stored,
        ids.len() as u64
    );
}

#[test]
fn a_node_keeps_serving_an_honest_requester_through_hostile_peers() {
    use errand_net::testing::{self, Attack, Target};
    let exec = lone_executor(
        "[limits]\nmax_frame_bytes = 4194304\nframe_memory_bytes = 16777216\nrequest_timeout_ms = 2000\nwrite_timeout_ms = 1000\n",
    );
    let target = Target {
        addr: exec.addr,
        peer: exec.peer,
    };
    let package = {
        let path = exec.packages().join("text-stats.errand");
        let bytes = std::fs::read(&path).unwrap();
        errand::packaging::decode_package(&path, &bytes)
            .unwrap()
            .digest()
    };
    let ping = errand_core::signed::encode(&Request::Ping).unwrap();
    let fetch = errand_core::signed::encode(&Request::FetchPackage(package)).unwrap();
    let replayer = SecretKey::from_seed(crate::support::rand_seed());
    let replayed: Vec<Vec<u8>> = (0..4u8)
        .map(|i| signed_invoke(&replayer, &exec, RequestId([0xa0 + i; 16]), b"replayed"))
        .collect();
    let attacks = [
        Attack::ConnectionFlood {
            identities: 500,
            per_identity: 1,
        },
        Attack::DeclaredNotSent {
            identities: 50,
            streams: 8,
            declared: 4 << 20,
            sent: 0,
        },
        Attack::SlowSenders {
            identities: 10,
            streams: 4,
            payload: ping,
            chunk: 1,
            every: Duration::from_millis(300),
        },
        Attack::NeverRead {
            identities: 5,
            streams: 8,
            payload: fetch,
        },
        Attack::BadFrames {
            identities: 10,
            rounds: 6,
            oversized: 8 << 20,
        },
        Attack::Replay {
            key: replayer.clone(),
            payloads: replayed.clone(),
            copies: 6,
            connections: 3,
        },
    ];
    let honest = new_client();
    let mut delivered = Vec::new();
    let mut replays_run = 0;
    for attack in attacks {
        let hold = Duration::from_secs(3);
        let (report, served) = block_on(async {
            let run = {
                let attack = attack.clone();
                tokio::spawn(async move { testing::run(&attack, target, hold).await })
            };
            let t0 = std::time::Instant::now();
            let mut served = Vec::new();
            while t0.elapsed() < hold {
                let (id, _) = Ask::fresh_ids();
                let ask = text_stats_request(id, b"still served");
                let done = errand::client::retry(
                    errand::client::Backoff::default(),
                    || honest.invoke(exec.peer_addr(), &ask),
                    |_, _| {},
                )
                .await;
                served.push(done.map_err(|e| format!("{attack:?}: {e}")));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (run.await.unwrap().unwrap(), served)
        });
        for s in served {
            delivered.push(s.unwrap().response.receipt);
        }
        if matches!(attack, Attack::Replay { .. }) {
            assert_eq!(report.count("Invoked"), replayed.len() as u64, "{report:?}");
            replays_run += report.count("Invoked");
        }
    }
    assert!(!delivered.is_empty());
    // No honest receipt lost or overwritten.
    for r in &delivered {
        match block_on(honest.request(exec.peer_addr(), &Request::GetReceipt(r.body().request_id)))
            .unwrap()
        {
            Response::Receipt(Some(stored)) => assert_eq!(&*stored, r),
            other => panic!("{other:?}"),
        }
    }
    let own = block_on(async { Client::new(exec.key()).unwrap() });
    assert_eq!(
        block_on(own.status(exec.peer_addr()))
            .unwrap()
            .receipts_stored,
        delivered.len() as u64 + replays_run
    );
}

/// Issue 11, item 3: `errand find` needed a secret key, so a newcomer
/// without `errand keygen` got `no key at …`. With no key it now searches
/// with a one-off identity; a key named with `--key` must still exist.
#[test]
fn find_without_a_key_searches_with_a_one_off_identity() {
    let reg = registry();
    let _exec = executor(&reg, &["text-stats"], 15_000, 5_000);
    let user = Sandbox::new();
    let registry = reg.peer_addr().to_string();
    let no_key = user.path("no-such-key");
    // A newcomer: no $ERRAND_KEY, nothing in the default location.
    let config = user.path("empty-config");
    let mut last = String::new();
    let found = eventually(Duration::from_secs(10), || {
        let o = user
            .command(&["find", "count words", "--registry", &registry])
            .env_remove("ERRAND_KEY")
            .env("XDG_CONFIG_HOME", &config)
            .output()
            .unwrap();
        last = format!("{}{}", stdout(&o), stderr(&o));
        code(&o) == 0 && stdout(&o).contains("text-stats")
    });
    assert!(found.is_some(), "{last}");
    assert!(last.contains("one-off identity"), "{last}");
    assert!(!config.exists(), "find wrote a key");

    // A key named in $ERRAND_KEY must exist: a typo is not a throwaway
    // identity (review).
    let o = user
        .command(&["find", "count words", "--registry", &registry])
        .env("ERRAND_KEY", &no_key)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no key at"), "{}", stderr(&o));

    let o = user.errand(&[
        "find",
        "count words",
        "--registry",
        &registry,
        "--key",
        p(&no_key),
    ]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no key at"), "{}", stderr(&o));
}

/// Issue 11, item 5: invocations running side by side in one folder wrote
/// one evidence file (`text-stats.evidence`), each overwriting the last.
/// Each now gets its own file, named after its request and created only if
/// no file has the name; invocations by intent already named theirs after
/// the request, and this shows it holds for them too.
#[test]
fn concurrent_invokes_in_one_folder_each_keep_their_own_evidence() {
    // The callers share one identity: room for all their connections at
    // once (a peer's connections past the limit replace its oldest, which
    // is not what this test is about).
    let limits = "[limits]\nmax_connections_per_peer = 32\nmax_concurrent_invocations = 32\n";
    let reg = NodeProc::start(&NodeSpec {
        registry: true,
        extra: limits.into(),
        ..NodeSpec::default()
    });
    let exec = NodeProc::start(&NodeSpec {
        packages: true,
        registries: vec![reg.peer_addr()],
        extra: limits.into(),
        ..NodeSpec::default()
    });
    pack_example(
        "text-stats",
        &exec.packages(),
        &SecretKey::from_seed(crate::support::rand_seed()),
        None,
    );
    let user = Sandbox::new();
    let registry = reg.peer_addr().to_string();
    let listed = eventually(Duration::from_secs(10), || {
        let o = user.errand(&["find", "count words", "--registry", &registry]);
        code(&o) == 0 && stdout(&o).contains("text-stats")
    });
    assert!(listed.is_some(), "never listed:\n{}", exec.log());
    std::fs::write(
        user.path("notes.txt"),
        "so much depends upon a red wheel barrow",
    )
    .unwrap();

    let direct = exec.peer_addr().to_string();
    let mut calls: Vec<Vec<String>> = (0..8)
        .map(|i| {
            [
                "invoke",
                &direct,
                "--capability",
                "text-stats",
                "--input",
                "notes.txt",
                "-o",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain([format!("direct-{i}.json")])
            .collect()
        })
        .collect();
    calls.extend((0..4).map(|i| {
        [
            "invoke",
            "--intent",
            "count words",
            "--registry",
            &registry,
            "--input",
            "notes.txt",
            "--policy",
            "t1",
            "-o",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("intent-{i}.json")])
        .collect()
    }));
    let running: Vec<_> = calls
        .iter()
        .map(|args| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            user.command(&args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut printed = std::collections::BTreeSet::new();
    for (child, args) in running.into_iter().zip(&calls) {
        let o = child.wait_with_output().unwrap();
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        // Each prints the file it wrote.
        let path = stderr(&o)
            .rsplit("evidence ")
            .next()
            .map(|s| s.trim().trim_start_matches("./").to_owned())
            .unwrap();
        assert!(path.ends_with(".evidence"), "{args:?}: {}", stderr(&o));
        assert!(printed.insert(path.clone()), "{path} printed twice");
    }
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(user.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".evidence"))
        .collect();
    assert_eq!(on_disk, printed);
    assert_eq!(on_disk.len(), 12, "{on_disk:?}");
    assert_eq!(
        on_disk
            .iter()
            .filter(|n| n.starts_with("text-stats-"))
            .count(),
        8,
        "{on_disk:?}"
    );
    // Every one is whole and verifies.
    let mut args = vec!["verify", "--executor"];
    let executor = exec.peer.to_string();
    args.push(&executor);
    args.extend(on_disk.iter().map(String::as_str));
    let o = user.errand(&args);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("12 files: 12 verified"),
        "{}",
        stdout(&o)
    );
}
