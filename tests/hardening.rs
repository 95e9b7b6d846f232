//! Issue 11's last items, through the real binary: evidence files of local
//! runs side by side, addresses a node must never advertise, and the
//! handshake limits of `node.toml`.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use errand_core::SecretKey;
use errand_core::wire::{Request, Response};
use errand_net::{Endpoint, NetConfig, NetError};

use crate::support::{NodeProc, NodeSpec, Sandbox, bin, code, pack_example, rand_seed, rt, stderr};

/// The path `errand run` or `errand invoke` printed at the end of its
/// summary line: `… · evidence PATH`.
fn printed_evidence(err: &str) -> String {
    err.lines()
        .rev()
        .find_map(|l| l.rsplit_once(" · evidence "))
        .map(|(_, path)| path.trim().to_owned())
        .unwrap_or_default()
}

/// Regression (issue 11, item 5, for `errand run`): local runs wrote a
/// fixed `TOOL.evidence` by default, so runs side by side in one folder
/// overwrote each other's evidence. Each run now writes its own file,
/// `TOOL-REQUESTID.evidence`, created only if the name is free (as
/// `errand invoke` does), and prints its path; `--evidence PATH` still
/// names it.
#[test]
fn concurrent_runs_in_one_folder_keep_every_evidence_file() {
    let user = Sandbox::new();
    pack_example(
        "text-stats",
        user.dir.path(),
        &SecretKey::from_seed(rand_seed()),
        None,
    );
    std::fs::write(
        user.path("notes.txt"),
        "so much depends upon a red wheel barrow",
    )
    .unwrap();
    let runs = 8;
    let running: Vec<_> = (0..runs)
        .map(|i| {
            let out = format!("out-{i}.json");
            user.command(&[
                "run",
                "text-stats.errand",
                "--input",
                "notes.txt",
                "-o",
                &out,
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut printed = BTreeSet::new();
    for child in running {
        let o = child.wait_with_output().unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let path = printed_evidence(&stderr(&o));
        assert!(
            path.starts_with("text-stats-") && path.ends_with(".evidence"),
            "{}",
            stderr(&o)
        );
        assert!(printed.insert(path.clone()), "{path} printed twice");
    }
    let evidence_on_disk = || -> BTreeSet<String> {
        std::fs::read_dir(user.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".evidence"))
            .collect()
    };
    assert_eq!(evidence_on_disk(), printed);
    assert_eq!(printed.len(), runs);
    // Every one is whole and checks.
    for path in &printed {
        let o = user.errand(&["verify", path]);
        assert_eq!(code(&o), 0, "{path}: {}", stderr(&o));
    }
    // --evidence still names the file.
    let o = user.errand(&[
        "run",
        "text-stats.errand",
        "--input",
        "notes.txt",
        "-o",
        "named.json",
        "--evidence",
        "mine.evidence",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(printed_evidence(&stderr(&o)), "mine.evidence");
    assert_eq!(code(&user.errand(&["verify", "mine.evidence"])), 0);
    assert_eq!(evidence_on_disk().len(), runs + 1);
}

/// Regression (issue 11): a descriptor address keeps its IP and port only,
/// so a node that advertised an IPv6 address with a scope id published an
/// address other than the one it signed, and a link-local one reaches it
/// through none of the readers' interfaces. The node refuses to start,
/// naming the address and the setting.
#[test]
fn a_node_never_advertises_an_address_with_an_ipv6_scope_id() {
    for (config, field, addr) in [
        (
            "advertise = [\"[fe80::1%2]:4433\"]\n",
            "`advertise`",
            "[fe80::1%2]:4433",
        ),
        (
            "advertise = [\"[fe80::1]:4433\"]\n",
            "`advertise`",
            "[fe80::1]:4433",
        ),
        ("listen = \"[fe80::1%1]:0\"\n", "`listen`", "[fe80::1%1]:0"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        errand::keystore::save(
            &SecretKey::from_seed(rand_seed()),
            &dir.path().join("key"),
            false,
        )
        .unwrap();
        let mut toml = format!("key = \"key\"\nstorage = \"data\"\n{config}");
        if !config.starts_with("listen") {
            toml.push_str("listen = \"127.0.0.1:0\"\n");
        }
        std::fs::write(dir.path().join("node.toml"), toml).unwrap();
        let o = Command::new(bin())
            .args(["node", "--config", "node.toml"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_ne!(code(&o), 0, "{config}: started\n{err}");
        assert!(err.contains(field) && err.contains(addr), "{config}: {err}");
    }
}

/// Issue 11, the hostile-peer benchmark: `[limits]` sets how many new
/// connections one address may open (a second, and at once) before the
/// node refuses them ahead of the handshake; the refusal is typed and
/// retryable, and connections already open keep working. A limit of 0 is
/// refused by name.
#[test]
fn node_toml_limits_new_connections_per_address_before_the_handshake() {
    let node = NodeProc::start(&NodeSpec {
        extra: "[limits]\nhandshakes_per_address = 1\nhandshake_burst_per_address = 2\n".into(),
        ..NodeSpec::default()
    });
    let target = node.peer_addr();
    let dial = || {
        rt().block_on(async {
            let me = Endpoint::bind(
                "127.0.0.1:0".parse().unwrap(),
                SecretKey::from_seed(rand_seed()),
                NetConfig::default(),
            )
            .unwrap();
            let c = me.connect(target.addr, target.peer).await?;
            c.request(&Request::Ping).await.map(|r| (me, c, r))
        })
    };
    // The burst: two connections (the second proves its address first).
    let first = dial().unwrap();
    let second = dial().unwrap();
    assert_eq!((&first.2, &second.2), (&Response::Pong, &Response::Pong));
    let refused = dial().err().unwrap();
    assert!(matches!(refused, NetError::Refused(_)), "{refused}");
    assert!(refused.is_retryable(), "{refused}");
    assert!(
        refused.to_string().contains("refused the handshake"),
        "{refused}"
    );
    // The open connections are untouched.
    for (_, c, _) in [&first, &second] {
        assert_eq!(
            rt().block_on(c.request(&Request::Ping)).unwrap(),
            Response::Pong
        );
    }

    let mut zero = NodeProc::prepare(&NodeSpec {
        extra: "[limits]\nhandshakes_per_address = 0\n".into(),
        ..NodeSpec::default()
    });
    let o = Command::new(bin())
        .args(["node", "--config", "node.toml"])
        .current_dir(&zero.dir)
        .output()
        .unwrap();
    assert_ne!(code(&o), 0);
    assert!(
        stderr(&o).contains("limits.handshakes_per_address"),
        "{}",
        stderr(&o)
    );
    zero.kill();
}
