//! Tests of the `errand` binary, run as a user would run it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use errand_core::bounded::BVec;
use errand_core::evidence::{Blob, Evidence, TraceBlob, TraceChain};
use errand_core::receipt::SignedReceipt;
use errand_core::{Digest, signed, testing};

fn errand(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_errand"))
        .args(args)
        .env_remove("ERRAND_KEY")
        .output()
        .expect("run errand")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally, not by a signal")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Writes an evidence package signed by the key at `key_path`, with input
/// and output embedded, and returns its path plus the component bytes.
fn write_evidence(dir: &Path, key_path: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
    let key = errand::keystore::load(key_path).unwrap();
    let component = b"\0asm\x0d\0\x01\0 pretend component".to_vec();
    let input = b"count these words".to_vec();
    let output = br#"{"words":3}"#.to_vec();
    let trace = testing::trace();
    let mut r = testing::receipt(&key, &testing::key(77));
    r.component = Digest::of(&component);
    r.input = Digest::of(&input);
    r.output = Digest::of(&output);
    (r.trace_root, r.trace_events) = TraceChain::of(&trace);
    let e = Evidence {
        receipt: SignedReceipt::sign(r, &key).unwrap(),
        input: Some(Blob::embed(input).unwrap()),
        output: None,
        trace: Some(TraceBlob::Events(BVec::new(trace).unwrap())),
        component: None,
    };
    let path = dir.join("run.evidence");
    std::fs::write(&path, signed::encode(&e).unwrap()).unwrap();
    (path, component, output)
}

#[test]
fn keygen_id_verify_tamper_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("keys/node.key");

    let o = errand(&["keygen", "--out", p(&key)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let printed = stdout(&o).trim().to_owned();
    assert!(printed.starts_with("errand1"));

    let o = errand(&["id", "--key", p(&key)]);
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o).trim(), printed);

    let (evidence, component, output) = write_evidence(dir.path(), &key);
    let comp = dir.path().join("tool.wasm");
    let out = dir.path().join("out.json");
    std::fs::write(&comp, &component).unwrap();
    std::fs::write(&out, &output).unwrap();

    let o = errand(&[
        "verify",
        p(&evidence),
        "--component",
        p(&comp),
        "--output",
        p(&out),
        "--executor",
        &printed,
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    for check in [
        "format",
        "signature",
        "executor",
        "component",
        "input",
        "output",
        "trace",
    ] {
        assert!(text.contains(check), "report lacks {check}: {text}");
    }
    assert!(text.contains("verified: 7 checks passed"), "{text}");

    // A tampered copy: flip one bit inside the signed receipt.
    let mut bytes = std::fs::read(&evidence).unwrap();
    bytes[60] ^= 0x01;
    let tampered = dir.path().join("tampered.evidence");
    std::fs::write(&tampered, &bytes).unwrap();
    let o = errand(&["verify", p(&tampered)]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("NOT VERIFIED"), "{}", stdout(&o));

    // A different output file than the one the receipt names.
    let o = errand(&["verify", p(&evidence), "--output", p(&comp)]);
    assert_eq!(code(&o), 1);
    assert!(
        stdout(&o).contains("check `output` failed"),
        "{}",
        stdout(&o)
    );

    // Another executor than expected.
    let other = testing::key(5).peer_id().to_string();
    let o = errand(&["verify", p(&evidence), "--executor", &other]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("check `executor` failed"));

    // Garbage.
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"this is not evidence at all").unwrap();
    let o = errand(&["verify", p(&garbage)]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(stderr(&o).contains("not usable evidence"), "{}", stderr(&o));
}

#[test]
fn verify_json_report_names_each_check() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    assert_eq!(code(&errand(&["keygen", "--out", p(&key)])), 0);
    let (evidence, _, _) = write_evidence(dir.path(), &key);
    let o = errand(&["verify", p(&evidence), "--json"]);
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["verified"], true);
    let checks = v["checks"].as_array().unwrap();
    assert_eq!(checks[1]["name"], "signature");
    assert_eq!(checks[1]["verdict"], "pass");
    assert_eq!(checks[2]["verdict"], "skip");
    assert_eq!(v["receipt"]["kind"], "errand/receipt");

    // The JSON rendering of the receipt verifies too.
    let receipt_json = dir.path().join("receipt.json");
    std::fs::write(&receipt_json, serde_json::to_vec(&v["receipt"]).unwrap()).unwrap();
    let o = errand(&["verify", p(&receipt_json)]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    let first = stdout(&errand(&["keygen", "--out", p(&key)]));
    let o = errand(&["keygen", "--out", p(&key)]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(stdout(&errand(&["id", "--key", p(&key)])), first);
    let o = errand(&["keygen", "--out", p(&key), "--force"]);
    assert_eq!(code(&o), 0);
    assert_ne!(stdout(&o), first);
}

#[cfg(unix)]
#[test]
fn key_readable_by_others_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    assert_eq!(code(&errand(&["keygen", "--out", p(&key)])), 0);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = errand(&["id", "--key", p(&key)]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("chmod 600 {}", p(&key))),
        "{}",
        stderr(&o)
    );
}

#[test]
fn default_key_location_follows_errand_key_and_xdg() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_errand"))
        .arg("keygen")
        .env_remove("ERRAND_KEY")
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(dir.path().join("errand/key").exists());
    let o = Command::new(env!("CARGO_BIN_EXE_errand"))
        .arg("id")
        .env("ERRAND_KEY", dir.path().join("errand/key"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
}

#[test]
fn id_with_a_missing_key_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = errand(&["id", "--key", p(&dir.path().join("nope"))]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("errand keygen"), "{}", stderr(&o));
}

#[test]
fn verify_never_panics_on_hostile_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    assert_eq!(code(&errand(&["keygen", "--out", p(&key)])), 0);
    let (evidence, _, _) = write_evidence(dir.path(), &key);
    let good = std::fs::read(&evidence).unwrap();
    let descriptor = errand_core::descriptor::SignedDescriptor::sign(
        testing::descriptor(&testing::key(1)),
        &testing::key(1),
    )
    .unwrap()
    .to_bytes();

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("header-only", good[..16].to_vec()),
        (
            "random",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("oversized-claim", {
            let mut v = b"\x0ferrand/evidence\x01".to_vec();
            v.extend_from_slice(&[0xff; 16]);
            v
        }),
        ("descriptor", descriptor),
        ("json-garbage", b"{\"kind\": 3".to_vec()),
        ("future-version", {
            let mut v = good.clone();
            v[16] = 9;
            v
        }),
    ];
    for i in (0..good.len()).step_by(37) {
        let mut v = good.clone();
        v[i] ^= 0x80;
        cases.push(("bit-flip", v));
    }
    for (name, bytes) in cases {
        let f = dir.path().join(format!("case-{name}"));
        std::fs::write(&f, &bytes).unwrap();
        let o = errand(&["verify", p(&f)]);
        let c = code(&o);
        assert!(
            c == 1 || c == 2,
            "{name}: exit {c}\n{}{}",
            stdout(&o),
            stderr(&o)
        );
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{name} panicked: {err}");
        if c == 2 {
            assert_eq!(
                err.trim().lines().count(),
                1,
                "{name}: reason is not one line: {err}"
            );
        }
    }
    let o = errand(&["verify", p(&dir.path().join("missing"))]);
    assert_eq!(code(&o), 2);
}
