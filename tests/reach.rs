//! Reaching peers that cannot be dialled (issue 13): relays, address
//! discovery, hole punching. On loopback here; across real NATs in network
//! namespaces at the end of this file, when the machine allows it.

use std::time::Duration;

use errand_core::SecretKey;

use crate::support::{NodeProc, NodeSpec, Sandbox, code, eventually, pack_example, stderr, stdout};

/// A registry that also relays.
fn registry_relay(extra: &str) -> NodeProc {
    NodeProc::start(&NodeSpec {
        registry: true,
        extra: format!("{extra}[relay]\n"),
        ..NodeSpec::default()
    })
}

/// An executor hosting text-stats that says it cannot be dialled: it
/// reserves with its registry (which relays) and publishes only that path.
fn private_executor(reg: &NodeProc) -> NodeProc {
    let tmp = tempfile::tempdir().unwrap();
    let key = SecretKey::from_seed(crate::support::rand_seed());
    pack_example("text-stats", tmp.path(), &key, None);
    let mut exec = NodeProc::prepare(&NodeSpec {
        packages: true,
        registries: vec![reg.peer_addr()],
        refresh_ms: Some(1_000),
        top: "reachability = \"private\"\n".into(),
        ..NodeSpec::default()
    });
    std::fs::copy(
        tmp.path().join("text-stats.errand"),
        exec.packages().join("text-stats.errand"),
    )
    .unwrap();
    exec.spawn();
    exec
}

#[test]
fn a_private_node_is_found_and_invoked_through_its_registrys_relay() {
    let reg = registry_relay("");
    let exec = private_executor(&reg);
    let user = Sandbox::new();
    std::fs::write(user.path("in.txt"), "through the relay").unwrap();
    let registry = reg.peer_addr().to_string();
    // Listed with its relay path only.
    let relay_path = format!("relay://{registry}");
    let listed = eventually(Duration::from_secs(20), || {
        let o = user.errand(&["find", "word count", "--registry", &registry]);
        code(&o) == 0 && stdout(&o).contains(&relay_path)
    });
    assert!(listed.is_some(), "{}", exec.log());
    let o = user.errand(&["find", "word count", "--registry", &registry, "--json"]);
    assert!(stdout(&o).contains("\"relay\""), "{}", stdout(&o));
    assert!(!stdout(&o).contains("\"quic\""), "{}", stdout(&o));

    let o = user.errand(&[
        "invoke",
        "--intent",
        "word count",
        "--registry",
        &registry,
        "--input",
        "in.txt",
    ]);
    assert_eq!(code(&o), 0, "{}\n{}", stderr(&o), exec.log());
    assert!(stdout(&o).contains("\"words\":3"), "{}", stdout(&o));

    // The executor counts the session as relayed, and shows its
    // reservation and published path.
    let status = exec_status(&exec);
    assert!(status.contains("relayed connections"), "{status}");
    assert!(
        status.contains(&format!("relay      reserved with {registry}")),
        "{status}"
    );
    assert!(status.contains(&relay_path), "{status}");
    let made = status
        .lines()
        .find(|l| l.starts_with("made"))
        .unwrap_or_default()
        .to_owned();
    assert!(!made.contains(" 0 relayed"), "{status}");
    let relaying = reg_status(&reg);
    assert!(relaying.contains("relaying   1 reservations"), "{relaying}");
}

/// `errand status` of a node, as its operator runs it.
pub fn exec_status(node: &NodeProc) -> String {
    let o = std::process::Command::new(crate::support::bin())
        .args(["status", "--config", "node.toml"])
        .current_dir(&node.dir)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    stdout(&o)
}

fn reg_status(node: &NodeProc) -> String {
    exec_status(node)
}

// ------------------------------------------------------- across real NATs

/// The topology of issue 13, in network namespaces:
///
/// ```text
///  pub: 198.51.100.0/24 on a bridge
///       .2 registry   .3 relay   .4 a peer with a public address
///    ├── nat1 .11  MASQUERADE (endpoint-independent)  ── home1 10.0.1.2
///    ├── nat2 .12  MASQUERADE (endpoint-independent)  ── home2 10.0.2.2
///    └── nat3 .13  MASQUERADE --random-fully (symmetric) ── home3 10.0.3.2
/// ```
///
/// Each NAT drops unsolicited UDP to itself, as home routers do (and so
/// that a probe arriving before the way out opened leaves no conntrack
/// entry to collide with). Needs root, `ip` and `iptables`; without them
/// the tests print why and skip.
pub struct Topology {
    tag: String,
}

/// Registry, relay and public peer addresses.
pub const REGISTRY_ADDR: &str = "198.51.100.2:4433";
pub const RELAY_ADDR: &str = "198.51.100.3:4433";
pub const PUBLIC_ADDR: &str = "198.51.100.4:4433";

/// A home network's host address.
pub fn home_addr(n: u8) -> String {
    format!("10.0.{n}.2:4433")
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    match std::process::Command::new(cmd).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

impl Topology {
    /// Builds it, or prints why `test` skips and returns `None`.
    pub fn create(test: &str) -> Option<Topology> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = Topology {
            tag: format!("e13-{}-{n}", std::process::id()),
        };
        if let Err(why) = run("iptables", &["-V"]) {
            println!(
                "SKIPPED {test}: `iptables` is not available ({why}); needs root, iproute2 and iptables"
            );
            return None;
        }
        let mut steps: Vec<(&str, Vec<String>)> = Vec::new();
        let mut ip = |args: &[&str]| {
            steps.push(("ip", args.iter().map(|s| s.to_string()).collect()));
        };
        let pubns = t.ns("pub");
        ip(&["netns", "add", &pubns]);
        ip(&["-n", &pubns, "link", "set", "lo", "up"]);
        ip(&["-n", &pubns, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &pubns, "link", "set", "br0", "up"]);
        for a in 1..=4 {
            ip(&[
                "-n",
                &pubns,
                "addr",
                "add",
                &format!("198.51.100.{a}/24"),
                "dev",
                "br0",
            ]);
        }
        for n in 1..=3u8 {
            let (nat, home) = (t.ns(&format!("nat{n}")), t.ns(&format!("home{n}")));
            let p = format!("p{n}");
            ip(&["netns", "add", &nat]);
            ip(&["netns", "add", &home]);
            ip(&["-n", &nat, "link", "set", "lo", "up"]);
            ip(&["-n", &home, "link", "set", "lo", "up"]);
            ip(&[
                "-n", &pubns, "link", "add", &p, "type", "veth", "peer", "name", "out", "netns",
                &nat,
            ]);
            ip(&["-n", &pubns, "link", "set", &p, "master", "br0", "up"]);
            ip(&[
                "-n",
                &nat,
                "addr",
                "add",
                &format!("198.51.100.1{n}/24"),
                "dev",
                "out",
            ]);
            ip(&["-n", &nat, "link", "set", "out", "up"]);
            ip(&[
                "-n", &nat, "link", "add", "in", "type", "veth", "peer", "name", "eth0", "netns",
                &home,
            ]);
            ip(&[
                "-n",
                &nat,
                "addr",
                "add",
                &format!("10.0.{n}.1/24"),
                "dev",
                "in",
            ]);
            ip(&["-n", &nat, "link", "set", "in", "up"]);
            ip(&[
                "-n",
                &home,
                "addr",
                "add",
                &format!("10.0.{n}.2/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &home, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                &home,
                "route",
                "add",
                "default",
                "via",
                &format!("10.0.{n}.1"),
            ]);
            ip(&[
                "netns",
                "exec",
                &nat,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
            ]);
            let mut masq = vec![
                "netns",
                "exec",
                &nat,
                "iptables",
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-o",
                "out",
                "-j",
                "MASQUERADE",
            ];
            if n == 3 {
                masq.push("--random-fully");
            }
            ip(&masq);
            ip(&[
                "netns",
                "exec",
                &nat,
                "iptables",
                "-A",
                "INPUT",
                "-i",
                "out",
                "-p",
                "udp",
                "-m",
                "conntrack",
                "--ctstate",
                "NEW",
                "-j",
                "DROP",
            ]);
        }
        for (cmd, args) in steps {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Err(why) = run(cmd, &args) {
                println!(
                    "SKIPPED {test}: `{cmd} {}` failed ({why}); needs root, iproute2 and iptables",
                    args.join(" ")
                );
                return None;
            }
        }
        Some(t)
    }

    /// A namespace's name: `pub`, `natN` or `homeN`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let mut names = vec![self.ns("pub")];
        for n in 1..=3 {
            names.push(self.ns(&format!("nat{n}")));
            names.push(self.ns(&format!("home{n}")));
        }
        for ns in names {
            let _ = run("ip", &["netns", "del", &ns]);
        }
    }
}

/// A registry and a relay on the public network, and the nodes started
/// in the topology.
pub struct Internet {
    pub registry: NodeProc,
    pub relay: NodeProc,
    pub nodes: Vec<NodeProc>,
    // Last, so that the nodes stop before their namespaces go.
    pub topo: Topology,
}

impl Internet {
    /// The topology with a registry, and a relay configured with
    /// `relay_extra` (e.g. an adversary), or `None` if it cannot be built.
    pub fn start(test: &str, relay_extra: &str) -> Option<Internet> {
        let topo = Topology::create(test)?;
        let mut registry = NodeProc::prepare(&NodeSpec {
            registry: true,
            listen: Some(REGISTRY_ADDR.into()),
            ..NodeSpec::default()
        });
        registry.spawn_with(Some(&topo.ns("pub")));
        let mut relay = NodeProc::prepare(&NodeSpec {
            listen: Some(RELAY_ADDR.into()),
            extra: format!("[relay]\n{relay_extra}"),
            ..NodeSpec::default()
        });
        relay.spawn_with(Some(&topo.ns("pub")));
        Some(Internet {
            registry,
            relay,
            nodes: Vec::new(),
            topo,
        })
    }

    /// `PEERID@ADDR` of the registry.
    pub fn registry(&self) -> String {
        self.registry.peer_addr().to_string()
    }

    /// Starts a node in namespace `ns` listening on `listen`, hosting
    /// `tools` (packed by a key of its own), configured with nothing but
    /// the registry and the relay.
    pub fn node(&mut self, ns: &str, listen: &str, tools: &[&str]) -> usize {
        let mut n = NodeProc::prepare(&NodeSpec {
            packages: true,
            registries: vec![self.registry.peer_addr()],
            listen: Some(listen.into()),
            refresh_ms: Some(1_000),
            top: format!("relays = [\"{}\"]\n", self.relay.peer_addr()),
            ..NodeSpec::default()
        });
        let key = SecretKey::from_seed(crate::support::rand_seed());
        for t in tools {
            pack_example(t, &n.packages(), &key, None);
        }
        n.spawn_with(Some(&self.topo.ns(ns)));
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    /// Runs `errand ARGS` as `user` in namespace `ns`.
    pub fn errand(&self, ns: &str, user: &Sandbox, args: &[&str]) -> std::process::Output {
        self.command(ns, user, args).output().unwrap()
    }

    /// The command [`Internet::errand`] runs.
    pub fn command(&self, ns: &str, user: &Sandbox, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("ip");
        c.args(["netns", "exec", &self.topo.ns(ns), crate::support::bin()])
            .args(args)
            .current_dir(user.dir.path())
            .env("ERRAND_KEY", user.path("key"))
            .env("ERRAND_CACHE_DIR", user.path("cache"))
            .env("ERRAND_STATE", user.path("state"))
            .env_remove("ERRAND_REGISTRIES");
        c
    }

    /// `errand status` of node `i`, run in its namespace.
    pub fn status(&self, i: usize, ns: &str) -> String {
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", &self.topo.ns(ns), crate::support::bin()])
            .args(["status", "--config", "node.toml"])
            .current_dir(&self.nodes[i].dir)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        stdout(&o)
    }

    /// Waits until node `i` (in `ns`) has classified its NAT as `nat` and
    /// the registry lists it with its relay path.
    pub fn wait_ready(&self, i: usize, ns: &str, nat: &str, user: &Sandbox) {
        let node = &self.nodes[i];
        let ready = eventually(Duration::from_secs(30), || {
            self.status(i, ns)
                .lines()
                .any(|l| l.starts_with("nat") && l.contains(nat))
        });
        assert!(ready.is_some(), "{}\n{}", self.status(i, ns), node.log());
        let relay = self.relay.peer.to_string();
        let listed = eventually(Duration::from_secs(30), || {
            let o = self.errand(
                "home2",
                user,
                &[
                    "find",
                    "",
                    "--registry",
                    &self.registry(),
                    "--limit",
                    "100",
                    "--json",
                ],
            );
            let text = stdout(&o);
            code(&o) == 0 && text.contains(&node.peer.to_string()) && text.contains(&relay)
        });
        assert!(listed.is_some(), "{}", node.log());
    }
}

/// Two nodes behind separate endpoint-independent NATs, configured with
/// nothing but a registry and a relay: the requester reaches the executor
/// through the relay at once, then directly after a hole punch; both count
/// the punched connection, and the executor is invoked. The public peer is
/// reached directly.
#[test]
fn two_peers_behind_endpoint_independent_nats_end_up_direct_after_a_punch() {
    let test = "two_peers_behind_endpoint_independent_nats_end_up_direct_after_a_punch";
    let Some(mut net) = Internet::start(test, "") else {
        return;
    };
    let user = Sandbox::new();
    let e1 = net.node("home1", &home_addr(1), &["text-stats"]);
    let public = net.node("pub", PUBLIC_ADDR, &["markdown"]);
    net.wait_ready(e1, "home1", "endpoint-independent", &user);
    let peer = net.nodes[e1].peer.to_string();
    let registry = net.registry();
    let o = net.errand(
        "home2",
        &user,
        &[
            "ping",
            &peer,
            "--registry",
            &registry,
            "--wait-direct-ms",
            "5000",
            "--count",
            "3",
            "--interval-ms",
            "100",
        ],
    );
    let text = stdout(&o);
    assert_eq!(code(&o), 0, "{text}{}", stderr(&o));
    assert!(text.contains(&format!("reached {peer} relayed")), "{text}");
    assert!(text.contains("direct (punched) after"), "{text}");
    assert!(
        text.contains("ping 3: ") && text.contains("ms punched"),
        "{text}"
    );
    let status = net.status(e1, "home1");
    let made = status
        .lines()
        .find(|l| l.starts_with("made"))
        .unwrap_or_default();
    assert!(!made.contains(" 0 punched"), "{status}");

    // Found and invoked by intent, across both NATs.
    std::fs::write(user.path("in.txt"), "across two NATs").unwrap();
    let o = net.errand(
        "home2",
        &user,
        &[
            "invoke",
            "--intent",
            "word count",
            "--registry",
            &registry,
            "--input",
            "in.txt",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stderr(&o), net.nodes[e1].log());
    assert!(stdout(&o).contains("\"words\":3"), "{}", stdout(&o));

    // The peer with a public address: direct at once.
    let status = net.status(public, "pub");
    assert!(
        status.contains("nat        none (public address)"),
        "{status}"
    );
    let peer = net.nodes[public].peer.to_string();
    let o = net.errand("home2", &user, &["ping", &peer, "--registry", &registry]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("reached {peer} direct")),
        "{}",
        stdout(&o)
    );
}

/// A node behind a symmetric NAT is classified so, and served over the
/// relay: the punch fails and the relayed session stays, and works.
#[test]
fn a_peer_behind_a_symmetric_nat_is_served_over_the_relay() {
    let test = "a_peer_behind_a_symmetric_nat_is_served_over_the_relay";
    let Some(mut net) = Internet::start(test, "") else {
        return;
    };
    let user = Sandbox::new();
    let e3 = net.node("home3", &home_addr(3), &["text-stats"]);
    net.wait_ready(e3, "home3", "endpoint-dependent", &user);
    let peer = net.nodes[e3].peer.to_string();
    let registry = net.registry();
    let o = net.errand(
        "home2",
        &user,
        &[
            "ping",
            &peer,
            "--registry",
            &registry,
            "--wait-direct-ms",
            "3000",
            "--count",
            "2",
            "--interval-ms",
            "100",
        ],
    );
    let text = stdout(&o);
    assert_eq!(code(&o), 0, "{text}{}", stderr(&o));
    assert!(text.contains(&format!("reached {peer} relayed")), "{text}");
    assert!(text.contains("stayed relayed"), "{text}");
    assert!(
        text.contains("ping 2: ") && text.contains("ms relayed"),
        "{text}"
    );

    std::fs::write(user.path("in.txt"), "served over the relay").unwrap();
    let o = net.errand(
        "home2",
        &user,
        &[
            "invoke",
            "--intent",
            "word count",
            "--registry",
            &registry,
            "--input",
            "in.txt",
        ],
    );
    assert_eq!(code(&o), 0, "{}{}", stderr(&o), net.nodes[e3].log());
    assert!(stdout(&o).contains("\"words\":4"), "{}", stdout(&o));
    let status = net.status(e3, "home3");
    let made = status
        .lines()
        .find(|l| l.starts_with("made"))
        .unwrap_or_default();
    assert!(
        made.contains(" 0 punched") && !made.contains(" 0 relayed"),
        "{status}"
    );
}

/// The seed paper's two-step workflow, run from behind one NAT with
/// executors behind the two others (one endpoint-independent, one
/// symmetric), with the default risk-tiered verification; every piece of
/// evidence it writes verifies offline.
#[test]
fn the_two_step_workflow_runs_across_the_nats_and_every_receipt_verifies_offline() {
    let test = "the_two_step_workflow_runs_across_the_nats_and_every_receipt_verifies_offline";
    let Some(mut net) = Internet::start(test, "") else {
        return;
    };
    let user = Sandbox::new();
    let e1 = net.node("home1", &home_addr(1), &["imagegen", "publish"]);
    let e3 = net.node("home3", &home_addr(3), &["imagegen", "publish"]);
    net.wait_ready(e1, "home1", "endpoint-independent", &user);
    net.wait_ready(e3, "home3", "endpoint-dependent", &user);
    let wf = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/workflows/generate-and-publish.toml");
    let o = net.errand(
        "home2",
        &user,
        &[
            "workflow",
            "run",
            wf.to_str().unwrap(),
            "--registry",
            &net.registry(),
            "--state",
            "state",
            "--evidence-dir",
            "ev",
        ],
    );
    let text = stdout(&o);
    assert_eq!(code(&o), 0, "{text}{}", stderr(&o));
    assert!(
        text.contains("step generate [T1+T2+T3(no replay)]"),
        "{text}"
    );
    assert!(
        text.contains("step publish [T1+T2+T3(replay 100%)]"),
        "{text}"
    );
    assert!(
        text.contains("canary ok") && text.contains("replay ok"),
        "{text}"
    );
    assert!(
        text.contains("workflow generate-and-publish succeeded"),
        "{text}"
    );
    let mut verified = 0;
    for e in std::fs::read_dir(user.path("ev")).unwrap() {
        let o = user.errand(&["verify", e.unwrap().path().to_str().unwrap()]);
        assert_eq!(code(&o), 0, "{}", stdout(&o));
        verified += 1;
    }
    assert!(verified >= 2, "{verified} evidence files");
}

/// After a punch, the relay is killed: the direct connection carries on,
/// and every ping after it is answered over it.
#[test]
fn killing_the_relay_after_a_punch_keeps_the_direct_connection() {
    use std::io::BufRead as _;
    let test = "killing_the_relay_after_a_punch_keeps_the_direct_connection";
    let Some(mut net) = Internet::start(test, "") else {
        return;
    };
    let user = Sandbox::new();
    let e1 = net.node("home1", &home_addr(1), &["text-stats"]);
    net.wait_ready(e1, "home1", "endpoint-independent", &user);
    let peer = net.nodes[e1].peer.to_string();
    let mut child = net
        .command(
            "home2",
            &user,
            &[
                "ping",
                &peer,
                "--registry",
                &net.registry(),
                "--wait-direct-ms",
                "5000",
                "--count",
                "12",
                "--interval-ms",
                "250",
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.starts_with("direct (punched)") || line.starts_with("stayed relayed") {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.starts_with("direct (punched)")),
        "{seen:#?}"
    );
    net.relay.kill();
    let after: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{seen:#?}\n{after:#?}");
    assert!(after.iter().any(|l| l == "12 of 12 answered"), "{after:#?}");
    let pings: Vec<&String> = after.iter().filter(|l| l.starts_with("ping ")).collect();
    assert_eq!(pings.len(), 11, "{after:#?}");
    assert!(pings.iter().all(|l| l.ends_with("punched")), "{after:#?}");
}

/// A relay that flips bits in the packets it carries: the requester sees
/// the session fail (the handshake or the request times out), never an
/// answer; the executor never runs anything.
#[test]
fn a_hostile_relay_is_detected() {
    let test = "a_hostile_relay_is_detected";
    let Some(mut net) = Internet::start(test, "[adversary]\nbehaviour = \"relay-flip-bits\"\n")
    else {
        return;
    };
    let user = Sandbox::new();
    let e3 = net.node("home3", &home_addr(3), &["text-stats"]);
    net.wait_ready(e3, "home3", "endpoint-dependent", &user);
    let registry = net.registry();
    std::fs::write(user.path("in.txt"), "tampered with on the way").unwrap();
    // Straight to the executor (no canary first), so that the failure is
    // the session's own.
    let o = net.errand(
        "home2",
        &user,
        &[
            "invoke",
            "--intent",
            "word count",
            "--registry",
            &registry,
            "--input",
            "in.txt",
            "--policy",
            "none",
        ],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert_ne!(code(&o), 0, "{out}");
    assert!(!out.contains("words"), "{out}");
    assert!(
        err.contains("timed out") || err.contains("handshake") || err.contains("circuit"),
        "{out}\n---\n{err}"
    );
    // With verification, the runner cannot even fetch the package to make
    // a canary: the executor is not trusted, and nothing is returned.
    let o = net.errand(
        "home2",
        &user,
        &[
            "invoke",
            "--intent",
            "word count",
            "--registry",
            &registry,
            "--input",
            "in.txt",
        ],
    );
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    assert!(!stdout(&o).contains("words"), "{}", stdout(&o));
    // A ping fails too, naming the relay.
    let peer = net.nodes[e3].peer.to_string();
    let o = net.errand("home2", &user, &["ping", &peer, "--registry", &registry]);
    assert_ne!(code(&o), 0, "{}", stdout(&o));
    assert!(stderr(&o).contains("through relay"), "{}", stderr(&o));
    let status = net.status(e3, "home3");
    assert!(status.contains("served     0 invocations"), "{status}");
}

// -------------------------------------------------------------- benchmark

/// The figures of BENCHMARKS.md, "Reaching peers behind NAT": in the
/// namespace topology, from every side of every NAT type, time to the first
/// answer, time to the direct path and how often a punch succeeds; then,
/// in this process on loopback, relayed against direct throughput, paired.
/// Not run by CI (`#[ignore]`); see BENCHMARKS.md for the command.
#[test]
#[ignore]
fn reach_benchmark() {
    let rounds: usize = std::env::var("ERRAND_REACH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    println!("\n### Time to first answer, to the direct path, and punch success\n");
    // One requester key pings 60 times in a couple of minutes: above the
    // relay's default rate per peer, which is not what is measured here.
    if let Some(mut net) = Internet::start("reach_benchmark", "circuits_per_minute = 10000\n") {
        let user = Sandbox::new();
        let e1 = net.node("home1", &home_addr(1), &["text-stats"]);
        let e3 = net.node("home3", &home_addr(3), &["text-stats"]);
        let public = net.node("pub", PUBLIC_ADDR, &["text-stats"]);
        net.wait_ready(e1, "home1", "endpoint-independent", &user);
        net.wait_ready(e3, "home3", "endpoint-dependent", &user);
        let registry = net.registry();
        println!(
            "| requester | executor | rounds | first answer, median | path first | direct after, median | punch success |"
        );
        println!("|---|---|---|---|---|---|---|");
        let pairs: [(&str, &str, usize, &str); 6] = [
            (
                "home2",
                "endpoint-independent NAT",
                public,
                "public address",
            ),
            (
                "home2",
                "endpoint-independent NAT",
                e1,
                "endpoint-independent NAT",
            ),
            ("home2", "endpoint-independent NAT", e3, "symmetric NAT"),
            ("home3", "symmetric NAT", e1, "endpoint-independent NAT"),
            ("pub", "public address", e1, "endpoint-independent NAT"),
            ("pub", "public address", e3, "symmetric NAT"),
        ];
        for (ns, from, to, to_name) in pairs {
            let peer = net.nodes[to].peer.to_string();
            let (mut first, mut direct) = (Vec::new(), Vec::new());
            let mut kinds = std::collections::BTreeMap::<String, usize>::new();
            let mut relayed_first = 0;
            for _ in 0..rounds {
                let o = net.errand(
                    ns,
                    &user,
                    &[
                        "ping",
                        &peer,
                        "--registry",
                        &registry,
                        "--wait-direct-ms",
                        "3000",
                        "--json",
                    ],
                );
                let text = stdout(&o);
                let Some(line) = text.lines().last() else {
                    println!("(a ping failed: {})", stderr(&o).trim());
                    continue;
                };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    panic!("{text}{}", stderr(&o));
                };
                first.push(v["first"]["ms"].as_f64().unwrap_or(0.0));
                let kind = v["first"]["kind"].as_str().unwrap_or("?").to_owned();
                if kind == "relayed" {
                    relayed_first += 1;
                    if let Some(ms) = v["direct"]["ms"].as_f64() {
                        direct.push(ms);
                    }
                }
                *kinds.entry(kind).or_default() += 1;
            }
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let success = if relayed_first == 0 {
                "— (direct at once)".to_owned()
            } else {
                format!(
                    "{} of {relayed_first} ({:.0}%)",
                    direct.len(),
                    100.0 * direct.len() as f64 / relayed_first as f64
                )
            };
            let n_direct = direct.len();
            println!(
                "| {from} | {to_name} | {} | {:.1} ms | {} | {} | {success} |",
                first.len(),
                benchkit::median(&first),
                kinds.join(", "),
                if n_direct == 0 {
                    "—".to_owned()
                } else {
                    format!("{:.1} ms", benchkit::median(&direct))
                },
            );
        }
    } else {
        println!("(skipped: see above)");
    }

    println!("\n### Relayed throughput against direct (loopback, in-process)\n");
    let (direct_mbs, relayed_mbs, ratios) = crate::support::rt().block_on(throughput(rounds));
    let med = benchkit::median(&ratios);
    println!("| transfer | direct | relayed | relayed / direct, median (p10–p90) |");
    println!("|---|---|---|---|");
    println!(
        "| 4 MiB answers, {rounds} paired rounds of 3 each | {direct_mbs:.0} MB/s | {relayed_mbs:.0} MB/s | **{med:.2}** ({:.2}–{:.2}) |",
        benchkit::quantile(&ratios, 0.1),
        benchkit::quantile(&ratios, 0.9)
    );
}

/// Serves 4 MiB answers.
struct Big(errand_core::wire::Response);

impl errand_net::Handler for Big {
    async fn handle(
        &self,
        _peer: errand_core::PeerId,
        _req: errand_core::wire::Request,
    ) -> errand_core::wire::Response {
        self.0.clone()
    }
}

/// Median MB/s direct and relayed, and the per-round ratios relayed /
/// direct, alternating which goes first.
async fn throughput(rounds: usize) -> (f64, f64, Vec<f64>) {
    use errand_core::reach::RelayLimits;
    use errand_core::wire::{InvokeResponse, Request, Response};
    use errand_net::{Endpoint, NetConfig};
    let exec = errand_core::testing::key(1);
    let receipt = errand_core::receipt::SignedReceipt::sign(
        errand_core::testing::receipt(&exec, &errand_core::testing::key(2)),
        &exec,
    )
    .unwrap();
    let size = 4usize << 20;
    let big = Response::Invoked(Box::new(InvokeResponse {
        output: errand_core::bounded::BBytes::new(vec![7u8; size]).unwrap(),
        receipt,
        trace: None,
    }));
    let cfg = || NetConfig {
        punch: false,
        ..NetConfig::default()
    };
    let key = || SecretKey::from_seed(crate::support::rand_seed());
    let local: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let relay = Endpoint::bind(
        local,
        key(),
        NetConfig {
            relay: Some(RelayLimits::default()),
            ..cfg()
        },
    )
    .unwrap();
    tokio::spawn(errand_net::serve(
        relay.clone(),
        std::sync::Arc::new(Big(Response::Pong)),
    ));
    let server = Endpoint::bind(local, key(), cfg()).unwrap();
    tokio::spawn(errand_net::serve(
        server.clone(),
        std::sync::Arc::new(Big(big)),
    ));
    let _held = server.keep_reservation(relay.peer_id(), relay.local_addr().unwrap());
    while server.reserved_relays().is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = Endpoint::bind(local, key(), cfg()).unwrap();
    let direct = client
        .connect(server.local_addr().unwrap(), server.peer_id())
        .await
        .unwrap();
    let relayed = client
        .connect_relayed(
            relay.peer_id(),
            relay.local_addr().unwrap(),
            server.peer_id(),
        )
        .await
        .unwrap();
    let fetch = Request::FetchPackage(Default::default());
    let time = |c: &errand_net::Connection| {
        let c = c.clone();
        let fetch = fetch.clone();
        async move {
            let t = std::time::Instant::now();
            for _ in 0..3 {
                c.request(&fetch).await.unwrap();
            }
            (3 * size) as f64 / t.elapsed().as_secs_f64() / 1e6
        }
    };
    // Warm up both paths.
    time(&direct).await;
    time(&relayed).await;
    let (mut d, mut r, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds.max(1) {
        let (a, b) = if i % 2 == 0 {
            let a = time(&direct).await;
            (a, time(&relayed).await)
        } else {
            let b = time(&relayed).await;
            (time(&direct).await, b)
        };
        d.push(a);
        r.push(b);
        ratios.push(b / a);
    }
    (benchkit::median(&d), benchkit::median(&r), ratios)
}
