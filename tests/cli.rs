//! Tests of the `errand` binary in one process at a time: keys, offline
//! verification, packing, running and replay, and the simulator.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{Sandbox, code, p, stderr, stdout};

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
        request: None,
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

// ------------------------------------------------------------- issue 3

#[test]
fn pack_inspect_run_and_replay_every_example_tool() {
    let env = Sandbox::new();
    for tool in errand_example_tools::ALL {
        let (manifest, _component) = env.tool_dir(tool.name);
        let pkg = env.path(&format!("{}.errand", tool.name));
        // The component is found next to the manifest.
        let o = env.errand(&["pack", p(&manifest), "-o", p(&pkg)]);
        assert_eq!(
            code(&o),
            0,
            "pack {}: {}{}",
            tool.name,
            stdout(&o),
            stderr(&o)
        );
        assert!(stdout(&o).contains("errand tool"), "{}", stdout(&o));

        let o = env.errand(&["inspect", p(&pkg), "--json"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["descriptor"]["body"]["name"], tool.name);
        assert_eq!(v["descriptor_signature_valid"], true);
        assert_eq!(
            v["component"]["digest"],
            errand_core::Digest::of(tool.component).to_string()
        );

        // Every example runs, and replays in a new process.
        let manifest: errand_core::manifest::Manifest = toml::from_str(tool.manifest).unwrap();
        for ex in &manifest.examples {
            let input = env.path(&format!("{}-{}.in", tool.name, ex.name));
            std::fs::write(&input, ex.bytes().unwrap()).unwrap();
            let out = env.path(&format!("{}-{}.out", tool.name, ex.name));
            let ev = env.path(&format!("{}-{}.evidence", tool.name, ex.name));
            let mut args = vec![
                "run".to_owned(),
                p(&pkg).into(),
                "--input".into(),
                p(&input).into(),
            ];
            args.extend([
                "-o".into(),
                p(&out).into(),
                "--evidence".into(),
                p(&ev).into(),
            ]);
            for (k, v) in &ex.params {
                args.extend(["-p".into(), format!("{k}={v}")]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = env.errand(&args);
            assert_eq!(code(&o), 0, "run {} {}: {}", tool.name, ex.name, stderr(&o));
            assert!(stderr(&o).contains("fuel"), "{}", stderr(&o));
            assert!(std::fs::metadata(&out).unwrap().len() > 0);

            let id = stdout(&env.errand(&["id"])).trim().to_owned();
            let o = env.errand(&[
                "verify",
                p(&ev),
                "--replay",
                "--component",
                p(&pkg),
                "--input",
                p(&input),
                "--output",
                p(&out),
                "--executor",
                &id,
            ]);
            assert_eq!(
                code(&o),
                0,
                "replay {} {}: {}",
                tool.name,
                ex.name,
                stdout(&o)
            );
            for check in ["replay-output", "replay-fuel", "replay-trace"] {
                assert!(stdout(&o).contains(check), "{}", stdout(&o));
            }
        }
    }
}

#[test]
fn replay_names_the_mismatch_when_the_output_is_forged() {
    let env = Sandbox::new();
    let (manifest, component) = env.tool_dir("text-stats");
    let pkg = env.path("ts.errand");
    assert_eq!(
        code(&env.errand(&[
            "pack",
            p(&manifest),
            "--component",
            p(&component),
            "-o",
            p(&pkg)
        ])),
        0
    );
    std::fs::write(env.path("in.txt"), "one two two").unwrap();
    let o = env.errand(&[
        "run",
        p(&pkg),
        "--input",
        "in.txt",
        "-o",
        "out.json",
        "--evidence",
        "run.evidence",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // An executor that signs a receipt for output it did not compute: forge
    // the receipt with the executor's own key (so the signature is valid).
    let key = errand::keystore::load(&env.path("key")).unwrap();
    let bytes = std::fs::read(env.path("run.evidence")).unwrap();
    let mut ev: errand_core::evidence::Evidence = errand_core::signed::decode(&bytes).unwrap();
    let mut body = ev.receipt.body().clone();
    body.output = errand_core::Digest::of(b"{\"words\":99}");
    ev.receipt = errand_core::receipt::SignedReceipt::sign(body, &key).unwrap();
    ev.output = None;
    std::fs::write(
        env.path("forged.evidence"),
        errand_core::signed::encode(&ev).unwrap(),
    )
    .unwrap();

    // Offline checks pass (the signature is genuine)...
    assert_eq!(code(&env.errand(&["verify", "forged.evidence"])), 0);
    // ...but replay catches it, naming the output.
    let o = env.errand(&[
        "verify",
        "forged.evidence",
        "--replay",
        "--component",
        p(&pkg),
        "--input",
        "in.txt",
    ]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("replay-output    FAIL"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_run_that_traps_still_yields_verifiable_replayable_evidence() {
    let env = Sandbox::new();
    let hostile = env.path("hostile.wasm");
    std::fs::write(&hostile, errand_test_guests::HOSTILE).unwrap();
    std::fs::write(env.path("panic.txt"), "panic").unwrap();
    let o = env.errand(&[
        "run",
        p(&hostile),
        "--input",
        "panic.txt",
        "-o",
        "out",
        "--evidence",
        "p.evidence",
        "--embed-component",
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("aborted (trap)"), "{}", stderr(&o));
    // Component and input are embedded: replay needs no other file.
    let o = env.errand(&["verify", "p.evidence", "--replay"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("replay-outcome   pass  outcome aborted (trap)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn pack_refuses_a_component_that_is_not_a_tool() {
    let env = Sandbox::new();
    let (manifest, _) = env.tool_dir("markdown");
    let not_a_tool = env.path("empty.wasm");
    // A valid component that exports nothing.
    std::fs::write(&not_a_tool, b"\0asm\x0d\0\x01\0").unwrap();
    let o = env.errand(&["pack", p(&manifest), "--component", p(&not_a_tool)]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.contains("neither accepted world") && err.contains("errand:capability/tool"),
        "{err}"
    );

    let core = env.path("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let o = env.errand(&["pack", p(&manifest), "--component", p(&core)]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("core WebAssembly module"),
        "{}",
        stderr(&o)
    );

    let o = env.errand(&["pack", p(&env.path("nope.toml"))]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("nope.toml"), "{}", stderr(&o));
}

#[test]
fn run_accepts_plain_wasi_commands() {
    let env = Sandbox::new();
    let cmd = env.path("upper.wasm");
    std::fs::write(&cmd, errand_test_guests::UPPER_COMMAND).unwrap();
    std::fs::write(env.path("in.txt"), "shout this").unwrap();
    let o = env.errand(&["run", p(&cmd), "--input", "in.txt"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "SHOUT THIS");
    assert!(stderr(&o).contains("WASI command"));
}

#[test]
fn sim_writes_figures_data_and_a_summary_and_names_bad_settings() {
    let user = Sandbox::new();
    let o = user.errand(&[
        "sim",
        "sybil-sweep",
        "--runs",
        "2",
        "--seed",
        "3",
        "--set",
        "workflows=30",
        "--set",
        "alpha=0,0.4",
        "--set",
        "policies=none,risk",
        "--out",
        "out",
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The summary: the command that made it, and a row per α.
    assert!(
        text.contains("Made by `errand sim sybil-sweep --runs 2 --seed 3 --set workflows=30"),
        "{text}"
    );
    assert!(text.contains("| 0.4 |"), "{text}");
    for f in [
        "sybil-sweep.csv",
        "sybil-sweep.md",
        "sybil-sweep-success.svg",
        "sybil-sweep-latency.svg",
    ] {
        let p = user.path("out").join(f);
        assert!(
            std::fs::metadata(&p).map(|m| m.len() > 0).unwrap_or(false),
            "{}",
            p.display()
        );
    }
    let svg = std::fs::read_to_string(user.path("out").join("sybil-sweep-success.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("risk-tiered"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    // --help lists the settings.
    let help = user.errand(&["sim", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("canary_detect"));
    // Bad input: exit 1 and a message naming what was wrong.
    for (args, says) in [
        (vec!["sim", "everything"], "unknown scenario `everything`"),
        (
            vec!["sim", "ttl-sweep", "--set", "ttl=5"],
            "unknown setting `ttl`",
        ),
        (
            vec!["sim", "drift-sweep", "--set", "drift=-1"],
            "setting `drift`",
        ),
        (
            vec!["sim", "size-sweep", "--runs", "0"],
            "--runs must be at least 1",
        ),
    ] {
        let o = user.errand(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Issue 11, item 1: `errand demo` with its default, relative output folder
/// (the README's main command) joined that folder twice and failed.
#[test]
fn readme_main_command_demo_works_with_its_default_relative_out() {
    let user = Sandbox::new();
    let o = user.errand(&[
        "demo",
        "--honest",
        "2",
        "--sybil",
        "2",
        "--drifting",
        "1",
        "--runs",
        "1",
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("audited offline"), "{}", stdout(&o));
    let evidence = user.path("errand-demo").join("evidence");
    assert!(
        std::fs::read_dir(&evidence).is_ok_and(|mut d| d.next().is_some()),
        "no evidence under {}",
        evidence.display()
    );
}

/// Issue 10, item 1, from the CLI: evidence of a run with `size=16` does not
/// verify for an auditor who asked for `size=96`, and the failure names the
/// parameters. The signed request in the evidence is checked too.
#[test]
fn verify_with_other_params_than_the_run_had_exits_1_naming_them() {
    let env = Sandbox::new();
    let (_manifest, component) = env.tool_dir("imagegen");
    std::fs::write(env.path("prompt.txt"), "a lighthouse in a storm").unwrap();
    let o = env.errand(&[
        "run",
        p(&component),
        "--input",
        "prompt.txt",
        "-p",
        "size=16",
        "-p",
        "iterations=1",
        "-o",
        "out.png",
        "--evidence",
        "run.evidence",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // As asked: verified, with the signed request checked, and replayed.
    let o = env.errand(&[
        "verify",
        "run.evidence",
        "-p",
        "size=16",
        "-p",
        "iterations=1",
        "--replay",
        "--component",
        p(&component),
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("the receipt answers the request signed by"),
        "{}",
        stdout(&o)
    );
    // Asked for size=96: exit 1, naming the parameters.
    let o = env.errand(&[
        "verify",
        "run.evidence",
        "-p",
        "size=96",
        "-p",
        "iterations=1",
    ]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let text = stdout(&o);
    assert!(
        text.contains("check `request` failed")
            && text.contains("params")
            && text.contains("size=96"),
        "{text}"
    );
    // A bad --param is unusable input, not a failed check.
    let o = env.errand(&["verify", "run.evidence", "-p", "size"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

/// `errand pack` signs as the tool author; `errand inspect` shows the
/// author, the author signature and the package digest; one byte of the
/// manifest changed inside the package makes inspect and verify report the
/// author signature (issue 10, item 3).
#[test]
fn pack_signs_as_the_author_and_a_tampered_manifest_fails_the_author_signature() {
    let env = Sandbox::new();
    let author = errand::keystore::load(&env.path("key")).unwrap().peer_id();
    let (manifest, component) = env.tool_dir("text-stats");
    let pkg = env.path("ts.errand");
    let o = env.errand(&[
        "pack",
        p(&manifest),
        "--component",
        p(&component),
        "-o",
        p(&pkg),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("author     {author}")),
        "{}",
        stdout(&o)
    );

    let package: errand_core::package::Package =
        errand_core::signed::decode(&std::fs::read(&pkg).unwrap()).unwrap();
    let o = env.errand(&["inspect", p(&pkg)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("author        {author} (author signature valid)")),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains(&format!("package       sha256:{}", package.digest())));
    let o = env.errand(&["inspect", p(&pkg), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["author"], author.to_string());
    assert_eq!(v["author_signature_valid"], true);
    assert_eq!(v["package_digest"], package.digest().to_string());

    // Evidence of a run, to verify against the package.
    std::fs::write(env.path("in.txt"), "one two two").unwrap();
    let o = env.errand(&[
        "run",
        p(&pkg),
        "--input",
        "in.txt",
        "-o",
        "out.json",
        "--evidence",
        "run.evidence",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = env.errand(&["verify", "run.evidence", "--component", p(&pkg)]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("author           pass"),
        "{}",
        stdout(&o)
    );

    // One byte of the manifest, inside the package.
    let mut bytes = std::fs::read(&pkg).unwrap();
    let needle = b"description = \"";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
        + needle.len();
    bytes[at] = if bytes[at] == b'X' { b'Y' } else { b'X' };
    let tampered = env.path("tampered.errand");
    std::fs::write(&tampered, &bytes).unwrap();
    let o = env.errand(&["inspect", p(&tampered)]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stderr(&o).contains("author signature"), "{}", stderr(&o));
    let o = env.errand(&["verify", "run.evidence", "--component", p(&tampered)]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("author           FAIL"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("author signature"), "{}", stdout(&o));

    // A valid structure under a signature from someone else's key.
    let mut forged = package.clone();
    let body = forged.authorship.body().clone();
    let mut signed_bytes = errand_core::signed::encode(&body).unwrap();
    let other = errand_core::SecretKey::from_seed([77; 32]);
    signed_bytes.extend_from_slice(&other.sign(&signed_bytes).0);
    forged.authorship = errand_core::package::SignedAuthorship::decode(&signed_bytes).unwrap();
    let forged_path = env.path("forged.errand");
    std::fs::write(&forged_path, errand_core::signed::encode(&forged).unwrap()).unwrap();
    let o = env.errand(&["inspect", p(&forged_path)]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("AUTHOR SIGNATURE INVALID"),
        "{}",
        stdout(&o)
    );
    let o = env.errand(&["verify", "run.evidence", "--component", p(&forged_path)]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("author           FAIL"),
        "{}",
        stdout(&o)
    );
}

/// Review findings: a replay this machine cannot run (no component) is not
/// a failed check (exit 2, never 1), and a folder's symlinks cannot loop
/// the walk or count a file twice; `--json` says which files are bound.
#[test]
fn verify_reports_an_unreplayable_run_as_unusable_and_does_not_follow_folder_links() {
    let env = Sandbox::new();
    let (_manifest, component) = env.tool_dir("text-stats");
    std::fs::write(env.path("in.txt"), "one two two").unwrap();
    std::fs::create_dir_all(env.path("audit")).unwrap();
    let o = env.errand(&[
        "run",
        p(&component),
        "--input",
        "in.txt",
        "-o",
        "out.json",
        "--evidence",
        "audit/run.evidence",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = env.errand(&["verify", "audit/run.evidence", "--replay"]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(stdout(&o).contains("not replayed"), "{}", stdout(&o));
    // Given the component, the same replay runs and passes.
    let o = env.errand(&[
        "verify",
        "audit/run.evidence",
        "--replay",
        "--component",
        p(&component),
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    #[cfg(unix)]
    std::os::unix::fs::symlink("..", env.path("audit/loop")).unwrap();
    let o = env.errand(&["verify", "audit"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("1 files: 1 verified"), "{}", stdout(&o));
    let o = env.errand(&["verify", "audit", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v[0]["status"], "ok", "{v}");
    // Duplicate parameters are named as the user typed them.
    let o = env.errand(&["verify", "audit/run.evidence", "-p", "top=2", "-p", "top=3"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("-p top is given twice"),
        "{}",
        stderr(&o)
    );
}
