//! NaN modes end to end (issue 14): a tool whose author-signed manifest
//! declares `observes_nan_bits = false` runs without NaN canonicalisation,
//! its receipt says so through the engine fingerprint, and `errand verify
//! --replay` replays it in that mode; a receipt that ran so for a tool whose
//! manifest does not declare it is refused.

use crate::support::{Sandbox, code, p, shared_host, stderr, stdout};

fn pack(env: &Sandbox, tool: &str) -> std::path::PathBuf {
    let (manifest, component) = env.tool_dir(tool);
    let pkg = env.path(&format!("{tool}.errand"));
    let o = env.errand(&[
        "pack",
        p(&manifest),
        "--component",
        p(&component),
        "-o",
        p(&pkg),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    pkg
}

/// The line of check `name` in a text report.
fn check_line(report: &str, name: &str) -> String {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} check in:\n{report}"))
        .to_owned()
}

#[test]
fn errand_run_of_a_tool_declaring_no_nan_bits_records_it_and_replays_exactly() {
    let env = Sandbox::new();
    let pkg = pack(&env, "imagegen");
    std::fs::write(env.path("prompt.txt"), "a lighthouse in a storm").unwrap();
    let o = env.errand(&[
        "run",
        p(&pkg),
        "--input",
        "prompt.txt",
        "--param",
        "size=48",
        "--param",
        "iterations=64",
        "-o",
        "out.png",
        "--evidence",
        "run.evidence",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ev: errand_core::evidence::Evidence =
        errand_core::signed::decode(&std::fs::read(env.path("run.evidence")).unwrap()).unwrap();
    // The receipt names the engine without NaN canonicalisation.
    let host = shared_host();
    assert_eq!(
        host.nan_mode_of(&ev.receipt.body().platform.engine),
        Some(errand_host::NanMode::Native)
    );
    let o = env.errand(&[
        "verify",
        "run.evidence",
        "--replay",
        "--component",
        p(&pkg),
        "--input",
        "prompt.txt",
    ]);
    let report = stdout(&o);
    assert_eq!(code(&o), 0, "{report}{}", stderr(&o));
    for check in [
        "nan-canonicalisation",
        "replay-platform",
        "replay-output",
        "replay-fuel",
        "replay-trace",
    ] {
        assert!(
            check_line(&report, check).contains("pass"),
            "{check}: {report}"
        );
    }
}

#[test]
fn executor_running_without_nan_canonicalisation_a_tool_whose_manifest_does_not_declare_it_is_refused()
 {
    let env = Sandbox::new();
    // text-stats' manifest says nothing about NaN bits: canonicalised.
    let pkg = pack(&env, "text-stats");
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
    let bytes = std::fs::read(env.path("run.evidence")).unwrap();
    let mut ev: errand_core::evidence::Evidence = errand_core::signed::decode(&bytes).unwrap();
    let host = shared_host();
    assert_eq!(ev.receipt.body().platform, host.platform());

    // The executor runs it on the engine without canonicalisation (for this
    // integer-only tool, every result is the same) and signs what it did.
    let key = errand::keystore::load(&env.path("key")).unwrap();
    let mut body = ev.receipt.body().clone();
    body.platform = host.platform_for(errand_host::NanMode::Native);
    ev.receipt = errand_core::receipt::SignedReceipt::sign(body, &key).unwrap();
    std::fs::write(
        env.path("native.evidence"),
        errand_core::signed::encode(&ev).unwrap(),
    )
    .unwrap();

    // With the author's package, the verifier sees the manifest does not
    // allow it, and refuses the receipt though the replay agrees.
    let o = env.errand(&[
        "verify",
        "native.evidence",
        "--replay",
        "--component",
        p(&pkg),
        "--input",
        "in.txt",
    ]);
    let report = stdout(&o);
    assert_eq!(code(&o), 1, "{report}{}", stderr(&o));
    let line = check_line(&report, "nan-canonicalisation");
    assert!(
        line.contains("FAIL") && line.contains("observes_nan_bits = false"),
        "{report}"
    );
    assert!(
        check_line(&report, "replay-output").contains("pass"),
        "{report}"
    );

    // The untouched evidence still verifies.
    let o = env.errand(&[
        "verify",
        "run.evidence",
        "--replay",
        "--component",
        p(&pkg),
        "--input",
        "in.txt",
    ]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
}
