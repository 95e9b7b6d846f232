//! Tests of the `errand` binary in one process at a time: keys, offline
//! verification, packing, running and replay, and the simulator.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{NodeProc, NodeSpec, Sandbox, code, p, stderr, stdout};

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

/// Issue 14: `errand sim` prints, for each run, the events it processed and
/// its events per second, so that anyone can check the simulator's rate
/// with the CLI alone.
#[test]
fn sim_prints_each_runs_events_and_events_per_second() {
    let user = Sandbox::new();
    let o = user.errand(&[
        "sim",
        "sybil-sweep",
        "--runs",
        "2",
        "--set",
        "workflows=20",
        "--set",
        "alpha=0,0.2",
        "--set",
        "policies=none",
        "--out",
        "out",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // 2 points × 2 runs: one line each, with a positive count and rate.
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("run ")).collect();
    assert_eq!(lines.len(), 4, "{err}");
    for (line, (alpha, run)) in lines
        .iter()
        .zip([("0", 1), ("0", 2), ("0.2", 1), ("0.2", 2)])
    {
        assert!(
            line.starts_with(&format!(
                "run sybil-sweep none Sybil fraction α={alpha} #{run}: "
            )),
            "{line}"
        );
        let events: u64 = line
            .split(": ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let rate: f64 = line
            .rsplit(", ")
            .next()
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        assert!(events > 0 && rate > 0.0, "{line}");
        assert!(line.ends_with(" M events/s"), "{line}");
    }
    assert!(err.contains("simulated "), "{err}");
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

// ------------------------------------------------------------- issue 11

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Writes a tool crate with no dependencies into `dir` (a WASI command that
/// shouts its input, quick to build from scratch) and its manifest, and
/// returns the manifest's path.
fn shout_crate(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"shout\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         # Not a member of any workspace above it.\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        "use std::io::{Read, Write};\n\nfn main() {\n    let mut s = String::new();\n    \
         std::io::stdin().read_to_string(&mut s).unwrap();\n    \
         std::io::stdout().write_all(s.to_uppercase().as_bytes()).unwrap();\n}\n",
    )
    .unwrap();
    // The toolchain these tests were built with, which has the target.
    std::fs::copy(
        repo().join("rust-toolchain.toml"),
        dir.join("rust-toolchain.toml"),
    )
    .unwrap();
    let manifest = dir.join("capability.toml");
    std::fs::write(
        &manifest,
        "name = \"shout\"\nversion = \"0.1.0\"\ndescription = \"Shouts its input\"\n\
         intents = [\"shout text\"]\n\n[input]\nmedia_type = \"text/plain\"\n\n\
         [output]\nmedia_type = \"text/plain\"\n\n[[examples]]\nname = \"hello\"\n\
         input = \"hello\"\n",
    )
    .unwrap();
    manifest
}

/// Issue 11, item 2: the README's walkthrough failed at `errand pack` until
/// the tool was built by hand. Pack now builds it with cargo, showing
/// cargo's output, and takes the component from cargo's own messages, so
/// it is found wherever cargo's target folder is.
#[test]
fn pack_builds_the_tool_when_no_component_is_found() {
    let user = Sandbox::new();
    let manifest = shout_crate(&user.path("shout"));
    let target = user.path("cargo-target");
    let o = user
        .command(&["pack", p(&manifest), "-o", "shout.errand"])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 0, "{}{err}", stdout(&o));
    assert!(
        err.contains("building it with `cargo build --release --target wasm32-wasip2`"),
        "{err}"
    );
    // Cargo's own progress is shown.
    assert!(err.contains("Compiling shout v0.1.0"), "{err}");
    let built = target.join("wasm32-wasip2/release/shout.wasm");
    assert!(stdout(&o).contains("packed shout 0.1.0"), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!("component  {}", built.display())),
        "{}",
        stdout(&o)
    );
    // The package runs.
    std::fs::write(user.path("in.txt"), "hello").unwrap();
    let o = user.errand(&["run", "shout.errand", "--input", "in.txt"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "HELLO");
}

/// Issue 11, item 2: when pack cannot build, it says what is missing and
/// how to get it: cargo itself, or the wasm32-wasip2 target.
#[test]
fn pack_says_how_to_get_cargo_or_the_target_when_it_cannot_build() {
    let user = Sandbox::new();
    let manifest = shout_crate(&user.path("shout"));

    let nothing = user.path("empty-bin");
    std::fs::create_dir_all(&nothing).unwrap();
    let o = user
        .command(&["pack", p(&manifest)])
        .env("PATH", &nothing)
        .env_remove("RUSTC")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(err.contains("cannot run `cargo`"), "{err}");
    assert!(err.contains("rustup"), "{err}");

    // A toolchain whose sysroot lacks the target.
    let fake = user.path("fake-bin");
    let sysroot = user.path("sysroot");
    std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu")).unwrap();
    std::fs::create_dir_all(&fake).unwrap();
    let rustc = fake.join("rustc");
    std::fs::write(&rustc, format!("#!/bin/sh\necho '{}'\n", sysroot.display())).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = user
        .command(&["pack", p(&manifest)])
        .env("PATH", &fake)
        .env_remove("RUSTC")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(err.contains("target is not installed"), "{err}");
    assert!(err.contains("rustup target add wasm32-wasip2"), "{err}");
}

/// Issue 11, item 6: `errand verify --json FILE | head` panicked with
/// "failed printing to stdout: Broken pipe". Every command that prints now
/// stops quietly when its reader has gone, with the status of a program
/// killed by SIGPIPE (128 + 13), never a panic's 101.
#[test]
fn verify_json_into_a_closed_pipe_exits_quietly_without_panicking() {
    let user = Sandbox::new();
    let (evidence, _, _) = write_evidence(user.dir.path(), &user.path("key"));
    let (manifest, component) = user.tool_dir("text-stats");
    let o = user.errand(&[
        "pack",
        p(&manifest),
        "--component",
        p(&component),
        "-o",
        "ts.errand",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    std::fs::write(user.path("in.txt"), "a few words").unwrap();
    let folder = user.dir.path().to_str().unwrap();
    for args in [
        vec!["verify", "--json", p(&evidence)],
        vec!["verify", p(&evidence)],
        vec!["verify", folder],
        vec!["id"],
        vec!["inspect", "ts.errand"],
        vec!["inspect", "--json", "ts.errand"],
        vec!["run", "ts.errand", "--input", "in.txt"],
    ] {
        // A pipe whose reader is gone before the command starts.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = user.command(&args).stdout(writer).output().unwrap();
        let err = stderr(&o);
        assert!(
            !err.contains("panicked") && !err.contains("failed printing"),
            "{args:?}: {err}"
        );
        assert_eq!(o.status.code(), Some(141), "{args:?}: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

/// Issue 11, item 7: a node's logs sent to a file were full of ANSI colour
/// codes. Colour now needs stderr to be a terminal.
#[test]
fn node_logs_written_to_a_file_have_no_colour_codes() {
    let mut n = NodeProc::start(&NodeSpec {
        registry: true,
        ..NodeSpec::default()
    });
    assert!(n.terminate().success());
    let log = n.log();
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

/// Found with issue 11: `errand node` printed its ready line before it
/// listened for signals, so a SIGTERM sent as soon as the line was read
/// (a supervisor, a test, `kill` in the README) killed it outright instead
/// of stopping it cleanly.
#[test]
fn a_node_sent_sigterm_as_soon_as_it_is_ready_stops_cleanly() {
    for _ in 0..5 {
        let mut n = NodeProc::start(&NodeSpec {
            registry: true,
            ..NodeSpec::default()
        });
        let status = n.terminate();
        assert!(status.success(), "{status:?}\n{}", n.log());
    }
}

/// Issue 11, item 7: `--log-format json` (a global flag) writes one JSON
/// object per log event, for log collectors.
#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let mut n = NodeProc::start(&NodeSpec {
        registry: true,
        args: vec!["--log-format".into(), "json".into()],
        ..NodeSpec::default()
    });
    assert!(n.terminate().success());
    let log = n.log();
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(!events.is_empty(), "no logs");
    for e in &events {
        assert!(e["level"].is_string(), "{e}");
        assert!(e["fields"]["message"].is_string(), "{e}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "shutting down: withdrawing descriptors"),
        "{log}"
    );
}

// The README's and the guides' commands, run as written.

/// The user guides, each a self-contained walk through from the repository
/// root: every ```` ```sh ```` block of each runs, in order, in a fresh
/// folder of its own.
const GUIDES: &[&str] = &[
    "docs/node-operators.md",
    "docs/agent-developers.md",
    "docs/auditors.md",
    "docs/tool-authors.md",
    "docs/mcp.md",
    "docs/a2a.md",
    "docs/evaluating.md",
    "docs/reachability.md",
];

/// A ```` ```sh ```` block of README.md or a guide: where it starts, the
/// HTML comment right above it (if any), and its text.
struct ShellBlock {
    line: usize,
    marker: Option<String>,
    text: String,
}

/// Marks a block the README test does not run; the comment says why.
const NOT_RUN: &str = "<!-- not-run-by-readme-test:";

fn readme_shell_blocks() -> Vec<ShellBlock> {
    shell_blocks("README.md")
}

/// The shell blocks of `file`, a path from the repository root.
fn shell_blocks(file: &str) -> Vec<ShellBlock> {
    let readme =
        std::fs::read_to_string(repo().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let lines: Vec<&str> = readme.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim_end() == "```sh" {
            let marker = lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim())
                .find(|l| !l.is_empty())
                .filter(|l| l.starts_with("<!--"))
                .map(str::to_owned);
            let start = i + 1;
            let len = lines[start..]
                .iter()
                .position(|l| l.trim_end() == "```")
                .unwrap_or_else(|| panic!("{file} line {i}: unclosed block"));
            blocks.push(ShellBlock {
                line: start + 1,
                marker,
                text: lines[start..start + len].join("\n"),
            });
            i = start + len;
        }
        i += 1;
    }
    blocks
}

/// A README block as this test runs it. The mapping, and nothing more:
///
/// - `rustup target add wasm32-wasip2 && ` is dropped: the target is
///   installed, or these tests would not have been built;
/// - `cargo run --release -p errand -- ` is `errand `: the binary under
///   test, first on `PATH`;
/// - each port in a `127.0.0.1:PORT` address is a free port chosen here,
///   the same one wherever the README repeats it, so that runs on one
///   machine (other checkouts' tests) cannot collide.
///
/// `.ci/run` runs the quick start's and test command's blocks themselves
/// verbatim, from a clean clone.
fn as_run_by_the_test(script: &str, ports: &mut FreePorts) -> String {
    let script = script
        .replace("rustup target add wasm32-wasip2 && ", "")
        .replace("cargo run --release -p errand -- ", "errand ");
    let mut out = String::new();
    let mut rest = script.as_str();
    const HOST: &str = "127.0.0.1:";
    while let Some(at) = rest.find(HOST) {
        let (head, tail) = rest.split_at(at + HOST.len());
        out.push_str(head);
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        let port = &tail[..digits];
        if !port.is_empty() && port != "0" {
            out.push_str(&ports.instead_of(port).to_string());
        } else {
            out.push_str(port);
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// Free ports standing in for the README's, each held (bound) until the
/// script starts so that no two are the same.
#[derive(Default)]
struct FreePorts {
    chosen: std::collections::HashMap<String, u16>,
    held: Vec<std::net::UdpSocket>,
}

impl FreePorts {
    fn instead_of(&mut self, port: &str) -> u16 {
        let held = &mut self.held;
        *self.chosen.entry(port.to_owned()).or_insert_with(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let free = s.local_addr().unwrap().port();
            held.push(s);
            free
        })
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        if ty.is_dir() && e.file_name() != "target" {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else if ty.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A fresh folder laid out like this repository for the README's commands:
/// the workspace's sources (`errand pack` builds a Rust tool with cargo
/// whenever its Cargo.toml is there; see [`README_CARGO_TARGET`]), the
/// example tools already built where
/// `cargo build --release --target wasm32-wasip2` puts them (the components
/// this test binary embeds: the tools are built once, by the build script),
/// `errand` on `PATH` and a home folder of its own (key, cache, state).
fn readme_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in ["examples", "guest-sdk", "runtime", "tests", "tools", "wit"] {
        copy_dir(&repo().join(d), &dir.path().join(d));
    }
    for f in ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml"] {
        std::fs::copy(repo().join(f), dir.path().join(f)).unwrap();
    }
    let built = dir.path().join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&built).unwrap();
    for t in errand_example_tools::ALL {
        let file = format!("{}.wasm", t.name.replace('-', "_"));
        std::fs::write(built.join(file), t.component).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_errand"), dir.path().join("bin/errand"))
        .unwrap();
    std::fs::create_dir_all(dir.path().join("home")).unwrap();
    dir
}

/// Cargo's target folder for the README's commands: kept between runs, so
/// that only the first builds the example tools (issue 11: `errand pack`
/// always runs cargo for a Rust tool).
const README_CARGO_TARGET: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/readme-cargo");

/// Where this user's cargo or rustup lives: `$var`, else `~/default`.
fn rust_home(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(default)
    })
}

/// Runs `script` with `bash -euxo pipefail` in `dir` (see [`readme_folder`])
/// and returns its exit status (None if it ran past `within`), stdout and
/// stderr. Whatever it left running in the background is killed.
fn run_readme_script(dir: &Path, script: &str, within: Duration) -> (Option<i32>, String, String) {
    use std::os::unix::process::CommandExt as _;
    std::fs::write(dir.join("readme.sh"), script).unwrap();
    let path = format!(
        "{}:{}",
        dir.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euxo", "pipefail", "readme.sh"])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir.join("home"))
        .env("CARGO_TARGET_DIR", README_CARGO_TARGET)
        // The user's own Rust installation, whatever HOME says.
        .env("CARGO_HOME", rust_home("CARGO_HOME", ".cargo"))
        .env("RUSTUP_HOME", rust_home("RUSTUP_HOME", ".rustup"))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(dir.join("readme.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("readme.err")).unwrap())
        .process_group(0);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("ERRAND_") || k.starts_with("XDG_") {
            cmd.env_remove(&*k);
        }
    }
    let mut child = cmd.spawn().unwrap();
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if t0.elapsed() > within {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The whole process group: the script, and any node it left running.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(std::process::Stdio::null())
        .status();
    let _ = child.wait();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    (status, read("readme.out"), read("readme.err"))
}

/// The README's quick start, as written (with the mapping of
/// [`as_run_by_the_test`]): `errand demo` with its defaults.
#[test]
fn readme_quick_start_runs_as_written() {
    let blocks = readme_shell_blocks();
    let quick: Vec<&ShellBlock> = blocks
        .iter()
        .filter(|b| b.marker.as_deref() == Some("<!-- main-command -->"))
        .collect();
    assert_eq!(quick.len(), 1, "README.md needs one <!-- main-command -->");
    let script = as_run_by_the_test(&quick[0].text, &mut FreePorts::default());
    let dir = readme_folder();
    let (status, out, err) = run_readme_script(dir.path(), &script, Duration::from_secs(300));
    assert_eq!(
        status,
        Some(0),
        "README.md line {}:\n{script}\n--- stdout\n{out}\n--- stderr\n{err}",
        quick[0].line
    );
    assert!(out.contains("T1+T2+T3"), "{out}");
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every other shell block of the README, then each guide's (the CLI
/// walkthroughs: node, find, invoke, workflow, verify, MCP, cards), each
/// file in order as one script, one after the other in one fresh folder, exactly as
/// written (with the mapping of [`as_run_by_the_test`]): a guide that
/// drifts from the program fails here. Not run: the README's two commands
/// (the quick start has its own test; the test command is this suite) and
/// blocks marked `<!-- not-run-by-readme-test: WHY -->`.
#[test]
fn guides_commands_run_as_written() {
    let mut scripts = Vec::new();
    let mut all = String::new();
    for file in std::iter::once("README.md").chain(GUIDES.iter().copied()) {
        let mut ports = FreePorts::default();
        let mut script = String::new();
        for b in shell_blocks(file) {
            match b.marker.as_deref() {
                Some("<!-- main-command -->" | "<!-- test-command -->") => continue,
                Some(m) if m.starts_with(NOT_RUN) => continue,
                _ => {}
            }
            script.push_str(&format!("# {file} line {}\n", b.line));
            script.push_str(&as_run_by_the_test(&b.text, &mut ports));
            script.push('\n');
        }
        drop(ports);
        all.push_str(&script);
        if !script.is_empty() {
            scripts.push((file, script));
        }
    }
    for needed in [
        "errand pack",
        "errand node",
        "errand find",
        "errand invoke",
        "errand workflow run",
        "errand verify",
        "errand receipts",
    ] {
        assert!(
            all.contains(needed),
            "no `{needed}` in the guides' shell blocks"
        );
    }
    // One folder, as a new user who follows the README and then every
    // guide from the same repository root: the guides must not trip over
    // each other's files. Each runs as a script of its own (its `cd`s and
    // variables end with it), on ports of its own.
    let dir = readme_folder();
    // A bound for a hang, not a performance claim: on a fresh clone the
    // walkthrough's `errand pack`s build three tools with cargo (a few
    // minutes on two busy cores); later runs find cargo's target folder
    // warm (README_CARGO_TARGET).
    for (file, script) in &scripts {
        let (status, out, err) = run_readme_script(dir.path(), script, Duration::from_secs(900));
        // The tails last, stderr's at the very end: a log that keeps only a
        // failure's first and last lines still shows the failing command
        // and what it said.
        assert_eq!(
            status,
            Some(0),
            "{file}:\n{script}\n--- stdout\n{out}\n--- stderr (`+` lines are the commands)\n{err}\n\
             --- the last lines of stdout, then of stderr\n{}\n--\n{}",
            tail(&out, 8),
            tail(&err, 12),
        );
    }
}
