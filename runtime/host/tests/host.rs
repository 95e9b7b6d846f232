//! Integration tests for errand-host: real components, real limits, real
//! receipts and replays.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod nan;

use std::sync::Arc;
use std::time::Duration;

use errand_core::evidence::{self, Supplied};
use errand_core::manifest::Manifest;
use errand_core::receipt::{AbortReason, InvocationContext, Outcome, RequestId};
use errand_core::request::Seed;
use errand_core::{Digest, SecretKey, UnixMillis};
use errand_host::{
    Embed, Execution, Host, HostConfig, Invocation, Limits, LoadError, ReceiptInfo, WorldKind,
};

const T0: UnixMillis = UnixMillis(1_772_600_767_089);

fn host() -> Host {
    Host::new().unwrap()
}

fn ctx(params: &[(&str, &str)]) -> InvocationContext {
    InvocationContext::from_pairs(T0, params).unwrap()
}

/// Asserts the run was stopped for `reason`, with `needle` in the detail.
fn assert_aborted(e: &Execution, reason: AbortReason, needle: &str) {
    match &e.outcome {
        Outcome::Aborted { reason: r, detail } if *r == reason => {
            assert!(
                detail.contains(needle),
                "{reason:?} detail lacks {needle:?}: {detail}"
            )
        }
        o => panic!("expected {reason:?}, got {o:?}"),
    }
}

fn inv<'a>(input: &'a [u8], params: &[(&str, &str)], limits: Limits) -> Invocation<'a> {
    Invocation {
        input,
        request_id: RequestId([7; 16]),
        seed: Seed([6; 32]),
        context: ctx(params),
        limits,
        keep_trace: true,
    }
}

fn run(
    host: &Host,
    component: &[u8],
    input: &[u8],
    params: &[(&str, &str)],
    limits: Limits,
) -> Execution {
    let p = host.prepare(component).unwrap();
    host.run(&p, &inv(input, params, limits)).unwrap()
}

fn abort_reason(e: &Execution) -> Option<AbortReason> {
    abort_reason_of(&e.outcome)
}

fn abort_reason_of(outcome: &Outcome) -> Option<AbortReason> {
    match outcome {
        Outcome::Aborted { reason, .. } => Some(*reason),
        _ => None,
    }
}

fn tool(name: &str) -> &'static [u8] {
    errand_example_tools::get(name).unwrap().component
}

// ---------------------------------------------------------- example tools

#[test]
fn example_tools_match_their_native_implementations() {
    let h = host();
    let l = Limits::default();

    let text = "the cat saw the dog.\nThe dog ran";
    let e = run(&h, tool("text-stats"), text.as_bytes(), &[("top", "2")], l);
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    assert_eq!(
        e.output,
        serde_json::to_vec(&text_stats::stats(text, 2)).unwrap()
    );

    let e = run(
        &h,
        tool("imagegen"),
        b"a red fox at dawn",
        &[("size", "64"), ("iterations", "32")],
        l,
    );
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    assert_eq!(
        e.output,
        imagegen::encode_png(&imagegen::render("a red fox at dawn", 64, 32)).unwrap()
    );

    let md = "# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
    let e = run(&h, tool("markdown"), md.as_bytes(), &[], l);
    assert_eq!(String::from_utf8(e.output).unwrap(), markdown::to_html(md));

    let e = run(&h, tool("publish"), b"hello", &[("title", "Greeting")], l);
    let want = publish::record(b"hello", "Greeting", None, T0.0);
    assert_eq!(e.output, serde_json::to_vec(&want).unwrap());
    let json: serde_json::Value = serde_json::from_slice(&e.output).unwrap();
    assert_eq!(json["published_at"], "2026-03-04T05:06:07.089Z");

    let png = imagegen::encode_png(&imagegen::render("x", 100, 8)).unwrap();
    let e = run(&h, tool("thumbnail"), &png, &[("max", "25")], l);
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    assert_eq!(&e.output[..8], b"\x89PNG\r\n\x1a\n");
    assert!(e.output.len() < png.len());
}

#[test]
fn tool_errors_are_typed_and_distinct_from_traps() {
    let h = host();
    let e = run(
        &h,
        tool("text-stats"),
        &[0xff, 0xfe],
        &[],
        Limits::default(),
    );
    match &e.outcome {
        Outcome::InvalidInput { message } => assert!(message.contains("UTF-8"), "{message}"),
        o => panic!("expected invalid input, got {o:?}"),
    }
    assert!(e.output.is_empty());
    assert_eq!(e.output_digest, Digest::of(b""));
    let e = run(
        &h,
        tool("imagegen"),
        b"fox",
        &[("size", "99999")],
        Limits::default(),
    );
    assert!(
        matches!(e.outcome, Outcome::InvalidInput { .. }),
        "{:?}",
        e.outcome
    );
}

/// Every example in every manifest runs, and runs identically twice.
#[test]
fn every_manifest_example_runs_deterministically() {
    let h = host();
    for t in errand_example_tools::ALL {
        let manifest: Manifest = toml::from_str(t.manifest).unwrap();
        manifest.validate().unwrap();
        assert!(!manifest.examples.is_empty(), "{} has no examples", t.name);
        for ex in &manifest.examples {
            let input = ex.bytes().unwrap();
            let params: Vec<(&str, &str)> = ex
                .params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let a = run(&h, t.component, &input, &params, Limits::default());
            let b = run(&h, t.component, &input, &params, Limits::default());
            assert!(
                a.outcome.is_ok(),
                "{} example {}: {:?}",
                t.name,
                ex.name,
                a.outcome
            );
            assert_eq!(
                (
                    a.output_digest,
                    a.fuel_consumed,
                    a.trace_root,
                    a.trace_events
                ),
                (
                    b.output_digest,
                    b.fuel_consumed,
                    b.trace_root,
                    b.trace_events
                ),
                "{} example {} is not deterministic",
                t.name,
                ex.name
            );
            assert!(a.fuel_consumed > 0);
        }
    }
}

// ------------------------------------------------------ receipts and replay

fn sign(
    h: &Host,
    key: &SecretKey,
    component: &[u8],
    i: &Invocation<'_>,
    e: &Execution,
) -> errand_core::receipt::SignedReceipt {
    h.sign_receipt(
        &ReceiptInfo {
            executor: key,
            requester: SecretKey::from_seed([8; 32]).peer_id(),
            request_id: i.request_id,
            request: Digest::of(b"no signed request"),
            seed: i.seed,
            capability: None,
            component: Digest::of(component),
            context: i.context.clone(),
            limits: i.limits,
        },
        e,
    )
    .unwrap()
}

#[test]
fn receipt_and_evidence_verify_offline_and_replay_matches_for_every_example_tool() {
    let h = host();
    let key = SecretKey::from_seed([3; 32]);
    for t in errand_example_tools::ALL {
        let manifest: Manifest = toml::from_str(t.manifest).unwrap();
        let ex = &manifest.examples[0];
        let input = ex.bytes().unwrap();
        let params: Vec<(&str, &str)> = ex
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let i = inv(&input, &params, Limits::default());
        let p = h.prepare(t.component).unwrap();
        let e = h.run(&p, &i).unwrap();
        let receipt = sign(&h, &key, t.component, &i, &e);
        let ev = errand_host::evidence(
            receipt.clone(),
            Embed {
                input: Some(&input),
                output: Some(&e.output),
                trace: e.trace.as_deref(),
                component: None,
            },
        );
        let report = evidence::verify(
            &ev,
            &Supplied {
                component: Some(t.component),
                executor: Some(key.peer_id()),
                ..Default::default()
            },
        );
        assert!(report.verified(), "{}: {report:#?}", t.name);
        let replay = errand_host::replay(
            &h,
            receipt.body(),
            None,
            t.component,
            &input,
            e.trace.as_deref(),
            None,
        )
        .unwrap();
        assert!(replay.matched(), "{}: {:#?}", t.name, replay.report);
    }
}

#[test]
fn replay_after_restart_uses_the_disk_cache_and_still_matches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let key = SecretKey::from_seed([3; 32]);
    let component = tool("imagegen");
    let input = b"a lighthouse in fog";
    let (receipt, digest) = {
        let h = Host::with_config(cfg.clone()).unwrap();
        let i = inv(input, &[("size", "48")], Limits::default());
        let p = h.prepare(component).unwrap();
        let e = h.run(&p, &i).unwrap();
        (sign(&h, &key, component, &i, &e), p.digest())
    };
    // A new host (a restart): the compiled component is found on disk by
    // digest alone, without the component's bytes.
    let h2 = Host::with_config(cfg.clone()).unwrap();
    assert!(
        h2.cached(&digest).is_some(),
        "compiled component not found on disk"
    );
    let replay =
        errand_host::replay(&h2, receipt.body(), None, component, input, None, None).unwrap();
    assert!(replay.matched(), "{:#?}", replay.report);

    // A corrupted cache entry is discarded and the component recompiled.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let h3 = Host::with_config(cfg).unwrap();
    assert!(h3.cached(&digest).is_none());
    let replay =
        errand_host::replay(&h3, receipt.body(), None, component, input, None, None).unwrap();
    assert!(replay.matched());
}

/// `errand pack` printed "(0 bytes)" for a component whose compiled code
/// came from the disk cache, and `errand inspect` compiled a component
/// again (half a minute for an interpreted tool) although it was cached.
#[test]
fn a_component_from_the_disk_cache_keeps_its_size_and_inspect_uses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let component = tool("text-stats");
    Host::with_config(cfg.clone())
        .unwrap()
        .prepare(component)
        .unwrap();
    // A restart: the compiled code is on disk.
    let h = Host::with_config(cfg.clone()).unwrap();
    let p = h.prepare(component).unwrap();
    assert_eq!(p.info().size, component.len());

    // Another restart: inspect takes the compiled code from the disk cache
    // (and keeps it in memory) instead of compiling.
    let h = Host::with_config(cfg).unwrap();
    let info = h.inspect(component).unwrap();
    assert_eq!(info.size, component.len());
    assert_eq!(info.digest, Digest::of(component));
    for e in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let p = h
        .cached(&Digest::of(component))
        .expect("inspect used the cache");
    assert_eq!(p.info().size, component.len());
}

/// A verifier whose engine gives runs less memory than the run had: a run
/// that stays under its cap replays as usual (growth past a limit always
/// ends a run, so the guest's path is the same); one its cap stops where
/// the original did not is not a verdict, never a failure of the executor.
#[test]
fn a_replay_on_a_host_with_a_smaller_memory_cap_is_not_a_verdict() {
    let h = host();
    let key = SecretKey::from_seed([3; 32]);
    let small = Host::with_config(HostConfig {
        max_memory_bytes: 4 << 20,
        ..HostConfig::default()
    })
    .unwrap();
    // Small: replays under the smaller cap.
    let component = tool("text-stats");
    let input = b"one two two three";
    let i = inv(input, &[], Limits::default());
    let e = h.run(&h.prepare(component).unwrap(), &i).unwrap();
    let receipt = sign(&h, &key, component, &i, &e);
    let r =
        errand_host::replay(&small, receipt.body(), None, component, input, None, None).unwrap();
    assert!(r.matched(), "{:#?}", r.report);
    // Grows to 8 MiB, then succeeds: the smaller cap stops it.
    let grower = wat::parse_str(errand_host::testing::command_wat(
        r#"(memory 1) (func (export "run") (result i32)
              (drop (memory.grow (i32.const 127))) i32.const 0)"#,
    ))
    .unwrap();
    let e = h.run(&h.prepare(&grower).unwrap(), &i).unwrap();
    assert_eq!(e.outcome, Outcome::Ok, "{:?}", e.outcome);
    let receipt = sign(&h, &key, &grower, &i, &e);
    let err =
        errand_host::replay(&small, receipt.body(), None, &grower, input, None, None).unwrap_err();
    assert!(
        matches!(err, errand_host::ReplayError::OverCap { cap, .. } if cap == 4 << 20),
        "{err}"
    );
}

/// A guest that names its own function like an operating-system error and
/// traps in it is still the guest's trap, signed and replayable: the
/// host's failure is decided by type and root cause, never by the text of
/// a backtrace made of the guest's names.
#[test]
fn a_guest_named_like_an_os_error_still_gets_its_trap_signed() {
    let h = host();
    let c = wat::parse_str(errand_host::testing::command_wat(
        r#"(func (export "run") (result i32) call $f i32.const 0)
           (func $f (@name "(os error 12)") unreachable)"#,
    ))
    .unwrap();
    let e = run(&h, &c, b"", &[], small());
    assert_eq!(abort_reason(&e), Some(AbortReason::Trap), "{:?}", e.outcome);
}

#[test]
fn replay_names_what_differs() {
    let h = host();
    let key = SecretKey::from_seed([3; 32]);
    let component = tool("text-stats");
    let input = b"one two two three three three";
    let i = inv(input, &[], Limits::default());
    let p = h.prepare(component).unwrap();
    let e = h.run(&p, &i).unwrap();

    // A receipt claiming another output.
    let mut forged = sign(&h, &key, component, &i, &e).body().clone();
    forged.output = Digest::of(b"{\"words\":1}");
    let r = errand_host::replay(&h, &forged, None, component, input, None, None).unwrap();
    assert!(!r.matched());
    assert_eq!(r.report.first_failure().unwrap().name, "replay-output");

    // A receipt claiming less fuel.
    let mut forged = sign(&h, &key, component, &i, &e).body().clone();
    forged.fuel_consumed -= 1;
    let r = errand_host::replay(&h, &forged, None, component, input, None, None).unwrap();
    assert_eq!(r.report.first_failure().unwrap().name, "replay-fuel");

    // A receipt whose trace was tampered with: the first differing event is named.
    let mut trace = e.trace.clone().unwrap();
    trace[0].fuel += 1;
    let (root, n) = errand_core::evidence::TraceChain::of(&trace);
    let mut forged = sign(&h, &key, component, &i, &e).body().clone();
    (forged.trace_root, forged.trace_events) = (root, n);
    let r = errand_host::replay(&h, &forged, None, component, input, Some(&trace), None).unwrap();
    let fail = r.report.first_failure().unwrap();
    assert_eq!(fail.name, "replay-trace");
    assert!(
        format!("{:?}", fail.verdict).contains("first difference at event 0"),
        "{fail:?}"
    );

    // Replay refuses a different component or input outright.
    let other = tool("markdown");
    assert!(matches!(
        errand_host::replay(&h, &forged, None, other, input, None, None),
        Err(errand_host::ReplayError::WrongComponent { .. })
    ));
    assert!(matches!(
        errand_host::replay(&h, &forged, None, component, b"x", None, None),
        Err(errand_host::ReplayError::WrongInput { .. })
    ));
}

#[test]
fn trace_records_every_host_call_with_fuel() {
    let h = host();
    let e = run(
        &h,
        tool("imagegen"),
        b"a fox",
        &[("size", "16")],
        Limits::default(),
    );
    let trace = e.trace.unwrap();
    assert_eq!(trace.len() as u32, e.trace_events);
    let logs: Vec<_> = trace
        .iter()
        .filter(|t| t.call == "errand:capability/host#log")
        .collect();
    assert_eq!(logs.len(), 1, "imagegen logs once");
    assert_eq!(e.logs.len(), 1);
    assert_eq!(e.logs[0].message, "rendering");
    assert!(
        trace.windows(2).all(|w| w[0].fuel <= w[1].fuel),
        "fuel stamps must not decrease"
    );
    assert!(logs[0].fuel > 0 && logs[0].fuel <= e.fuel_consumed);
    assert_eq!(
        errand_core::evidence::TraceChain::of(&trace),
        (e.trace_root, e.trace_events)
    );
}

// ----------------------------------------------------------- WASI commands

#[test]
fn plain_wasi_command_reads_stdin_writes_stdout_and_reports_exit_status() {
    let h = host();
    let c = errand_test_guests::UPPER_COMMAND;
    let info = h.inspect(c).unwrap();
    assert!(
        matches!(info.world, WorldKind::Command { .. }),
        "{:?}",
        info.world
    );
    let e = run(&h, c, b"hello, errand", &[], Limits::default());
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    assert_eq!(e.output, b"HELLO, ERRAND");
    let e = run(&h, c, b"fail", &[], Limits::default());
    match &e.outcome {
        // WASI 0.2.0-0.2.11 `exit` carries only ok or err, so status 3
        // arrives as a failure (status 1) with the command's stderr.
        Outcome::Failed { message } => {
            assert!(
                message.contains("exited with status 1") && message.contains("asked to fail"),
                "{message}"
            )
        }
        o => panic!("{o:?}"),
    }
    assert!(e.output.is_empty());
    // Replay works for commands too.
    let key = SecretKey::from_seed([1; 32]);
    let i = inv(b"abc", &[], Limits::default());
    let p = h.prepare(c).unwrap();
    let e = h.run(&p, &i).unwrap();
    let receipt = sign(&h, &key, c, &i, &e);
    assert!(
        errand_host::replay(&h, receipt.body(), None, c, b"abc", None, None)
            .unwrap()
            .matched()
    );
}

#[test]
fn wat_command_runs() {
    let h = host();
    let c = wat::parse_str(errand_host::testing::ECHO_COMMAND_WAT).unwrap();
    let e = run(&h, &c, b"", &[], Limits::default());
    assert!(e.outcome.is_ok());
    let c = wat::parse_str(errand_host::testing::spin_command_wat(100_000)).unwrap();
    let e = run(&h, &c, b"", &[], Limits::default());
    assert!(e.outcome.is_ok());
    assert!(e.fuel_consumed > 100_000, "{}", e.fuel_consumed);
}

// ---------------------------------------------------------- loading errors

#[test]
fn components_that_are_not_tools_are_refused_with_a_clear_error() {
    let h = host();
    let no_exports = wat::parse_str("(component)").unwrap();
    let err = h.prepare(&no_exports).unwrap_err();
    assert!(matches!(err, LoadError::NotATool { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("errand:capability/tool") && msg.contains("wasi:cli/run"),
        "{msg}"
    );

    let core = wat::parse_str("(module)").unwrap();
    assert!(matches!(
        h.prepare(&core).unwrap_err(),
        LoadError::CoreModule
    ));
    assert!(matches!(
        h.prepare(b"hello world").unwrap_err(),
        LoadError::NotWasm
    ));
    let mut truncated = tool("markdown").to_vec();
    truncated.truncate(truncated.len() / 2);
    assert!(matches!(
        h.prepare(&truncated).unwrap_err(),
        LoadError::Invalid(_)
    ));

    let foreign = wat::parse_str(
        r#"(component
            (import "acme:evil/api" (instance (export "f" (func))))
            (core module $m (func (export "run") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $inst (export "run" (func $run)))
            (export "wasi:cli/run@0.2.6" (instance $inst)))"#,
    )
    .unwrap();
    let err = h.prepare(&foreign).unwrap_err();
    assert!(
        matches!(&err, LoadError::UnsupportedImport(i) if i == "acme:evil/api"),
        "{err}"
    );
}

/// A WASI command component that instantiates `n` core modules: the entry
/// point's and `n - 1` empty ones, as interpreted tools link their runtime
/// from many modules (libc, the interpreter, adapters, stubs).
fn command_with_core_instances(n: u32) -> Vec<u8> {
    let mut wat = String::from(
        "(component\n  (core module $m (func (export \"run\") (result i32) i32.const 0))\n  \
         (core module $empty)\n",
    );
    for _ in 1..n {
        wat.push_str("  (core instance (instantiate $empty))\n");
    }
    wat.push_str(
        "  (core instance $i (instantiate $m))\n  \
         (func $run (result (result)) (canon lift (core func $i \"run\")))\n  \
         (instance $inst (export \"run\" (func $run)))\n  \
         (export \"wasi:cli/run@0.2.6\" (instance $inst))\n)",
    );
    wat::parse_str(&wat).unwrap()
}

/// Issue 12: `componentize-py --stub-wasi` makes components of 38 core
/// instances, and the pooling allocator refused anything over 32 per
/// component (and 8 per concurrent run in all). Such a component now loads
/// and runs, even on a host sized for a single run at a time.
#[test]
fn components_with_as_many_core_instances_as_componentize_py_makes_load_and_run() {
    let h = Host::with_config(HostConfig {
        max_concurrent: 1,
        ..HostConfig::default()
    })
    .unwrap();
    let c = command_with_core_instances(38);
    let e = run(&h, &c, b"", &[], Limits::default());
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    // Up to the limit, exactly.
    let c = command_with_core_instances(errand_host::MAX_CORE_INSTANCES_PER_COMPONENT);
    let e = run(&h, &c, b"", &[], Limits::default());
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
}

/// Past the per-component bound, a component is refused when it is loaded,
/// with an error that names the bound.
#[test]
fn a_component_over_the_core_instance_limit_is_refused_naming_it() {
    let h = host();
    let c = command_with_core_instances(errand_host::MAX_CORE_INSTANCES_PER_COMPONENT + 1);
    let err = h.prepare(&c).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, LoadError::Invalid(_)), "{msg}");
    assert!(
        msg.contains(&format!(
            "{} core module instances",
            errand_host::MAX_CORE_INSTANCES_PER_COMPONENT + 1
        )) && msg.contains(&errand_host::MAX_CORE_INSTANCES_PER_COMPONENT.to_string()),
        "{msg}"
    );
}

// -------------------------------------------------------- hostile guests

fn hostile(h: &Host, attack: &str, limits: Limits) -> Execution {
    run(
        h,
        errand_test_guests::HOSTILE,
        attack.as_bytes(),
        &[],
        limits,
    )
}

fn small() -> Limits {
    Limits {
        fuel: 20_000_000,
        memory_bytes: 32 << 20,
        max_output: 1 << 20,
        max_trace_events: 1_000,
        max_stdio: 64 << 10,
        max_log_bytes: 64 << 10,
        ..Limits::default()
    }
}

/// `small()` with fuel for far longer than its 200 ms deadline: only the
/// deadline can end a run that never returns.
fn past_fuel_to_the_deadline() -> Limits {
    Limits {
        fuel: 20_000_000_000,
        deadline: Duration::from_millis(200),
        ..small()
    }
}

/// A host whose runs yield every `check` units of fuel (`u64::MAX`: never).
fn host_yielding_every(check: u64) -> Host {
    Host::with_config(HostConfig {
        deadline_check_fuel: check,
        ..HostConfig::default()
    })
    .unwrap()
}

/// Runs `f` on its own thread and waits at most 30 s for it, so that a
/// deadline check gone missing fails the test instead of hanging it (a
/// run's fuel here would last minutes, or hours of host calls).
fn within_30s(f: impl FnOnce() -> Execution + Send + 'static) -> Execution {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the run did not end within 30 s: nothing stopped it at its deadline")
}

/// Asserts the run was ended by its deadline, and soon after it.
fn assert_ended_at_deadline(e: &Execution, what: &str) {
    assert_eq!(
        abort_reason(e),
        Some(AbortReason::Deadline),
        "{what}: {:?}",
        e.outcome
    );
    assert!(
        e.elapsed < Duration::from_secs(5),
        "{what}: {:?}",
        e.elapsed
    );
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let e = hostile(&host(), "loop", small());
    assert_eq!(abort_reason(&e), Some(AbortReason::OutOfFuel));
    assert_eq!(e.fuel_consumed, e.fuel_limit);
}

#[test]
fn infinite_loop_with_unbounded_fuel_hits_the_deadline() {
    let l = Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(200),
        ..small()
    };
    let e = hostile(&host(), "loop", l);
    assert_eq!(abort_reason(&e), Some(AbortReason::Deadline));
    assert!(e.elapsed < Duration::from_secs(5), "{:?}", e.elapsed);
}

/// Issue 14, part 3: the deadline is checked each time a run yields (every
/// `HostConfig::deadline_check_fuel`), not by an epoch check at every loop
/// header. Instantiation yields too, so a start function that never returns
/// is cut off like any other loop.
#[test]
fn a_start_function_that_never_returns_hits_the_deadline() {
    let c = wat::parse_str(errand_host::testing::command_wat(
        r#"(func $spin (loop $l (br $l))) (start $spin)
           (func (export "run") (result i32) i32.const 0)"#,
    ))
    .unwrap();
    let e = within_30s(move || run(&host(), &c, b"", &[], past_fuel_to_the_deadline()));
    assert_ended_at_deadline(&e, "start function");
}

/// Issue 14, part 3: how often a run yields to check its deadline changes
/// nothing it computes. Output, trace and fuel are the same at every
/// interval, and so is the point where a short fuel limit stops it.
#[test]
fn fuel_and_outcome_do_not_depend_on_the_deadline_check_interval() {
    let input = b"The quick brown fox jumps over the lazy dog.\n".repeat(20);
    let text_stats = tool("text-stats");
    let reference_host = host();
    let at = |h: &Host, fuel: u64| {
        let e = run(h, text_stats, &input, &[], Limits { fuel, ..small() });
        (
            e.outcome,
            e.output,
            e.fuel_consumed,
            e.trace_root,
            e.trace_events,
        )
    };
    let reference = at(&reference_host, small().fuel);
    assert!(reference.0.is_ok(), "{:?}", reference.0);
    let used = reference.2;
    assert!(used > 10_000, "{used}");
    let short = [used / 2, used - 1];
    let reference_short = short.map(|f| at(&reference_host, f));
    assert_eq!(
        abort_reason_of(&reference_short[0].0),
        Some(AbortReason::OutOfFuel)
    );
    for check in [1, 7, 4096, u64::MAX] {
        let h = host_yielding_every(check);
        assert_eq!(at(&h, small().fuel), reference, "check every {check}");
        assert_eq!(
            short.map(|f| at(&h, f)),
            reference_short,
            "check every {check}"
        );
    }
}

/// Review of issue 14, part 3: one host call costs the guest a few units
/// of fuel but can cost the host much more, so yields alone would let a
/// loop of host calls run far past its deadline. The clock is also checked
/// each time the guest enters the host (not on the way back): with yields
/// switched off here, that check alone stops the loop.
#[test]
fn a_guest_calling_the_host_in_a_loop_hits_the_deadline_between_yields() {
    let h = host_yielding_every(u64::MAX);
    let p = h.prepare(errand_test_guests::HOSTILE).unwrap();
    let limits = Limits {
        max_trace_events: u32::MAX,
        ..past_fuel_to_the_deadline()
    };
    let e = within_30s(move || {
        let mut i = inv(b"clock-loop", &[], limits);
        i.keep_trace = false;
        h.run(&p, &i).unwrap()
    });
    assert_ended_at_deadline(&e, "host calls in a loop");
}

/// Second review of issue 14, part 3: calls between sibling component
/// instances go through wasmtime's adapters, which copy a string (here
/// 32 MiB) in one call out of compiled code, for one unit of fuel. That
/// call enters the host like a host function does, so the clock is checked
/// there too: the loop stops at its deadline with yields on or off.
#[test]
fn copying_strings_between_component_instances_in_a_loop_hits_the_deadline() {
    let c = wat::parse_str(
        r#"(component $root
  (core module $mem (memory (export "mem") 600))
  (core module $callee (memory (export "mem") 600)
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 0)
    (func (export "take") (param i32 i32)))
  (core module $caller (import "env" "mem" (memory 600))
    (import "env" "take" (func $take (param i32 i32)))
    (func (export "run") (result i32)
      (loop $l (call $take (i32.const 0) (i32.const 33554432)) (br $l)) i32.const 0))
  (component $B
    (alias outer $root $callee (core module $callee_m))
    (core instance $i (instantiate $callee_m))
    (func (export "take") (param "s" string)
      (canon lift (core func $i "take") (memory (core memory $i "mem")) (realloc (core func $i "realloc")))))
  (component $A
    (import "caller" (core module $caller_t (import "env" "mem" (memory 600))
      (import "env" "take" (func (param i32 i32))) (export "run" (func (result i32)))))
    (import "take" (func $take (param "s" string)))
    (alias outer $root $mem (core module $mem_m))
    (core instance $m (instantiate $mem_m))
    (core func $take_low (canon lower (func $take) (memory (core memory $m "mem"))))
    (core instance $env (export "mem" (memory $m "mem")) (export "take" (func $take_low)))
    (core instance $c (instantiate $caller_t (with "env" (instance $env))))
    (func $run (result (result)) (canon lift (core func $c "run")))
    (instance $inst (export "run" (func $run)))
    (export "wasi:cli/run@0.2.6" (instance $inst)))
  (instance $b (instantiate $B))
  (instance $a (instantiate $A (with "caller" (core module $caller)) (with "take" (func $b "take"))))
  (export "wasi:cli/run@0.2.6" (instance $a "wasi:cli/run@0.2.6")))"#,
    )
    .unwrap();
    for check in [HostConfig::default().deadline_check_fuel, u64::MAX] {
        let limits = Limits {
            memory_bytes: 64 << 20,
            ..past_fuel_to_the_deadline()
        };
        let c = c.clone();
        let e = within_30s(move || run(&host_yielding_every(check), &c, b"", &[], limits));
        assert_ended_at_deadline(&e, &format!("yielding every {check}"));
    }
}

/// Review of issue 14, part 3 (found in passing): the log limit counted
/// only the text of fields, so one call with tens of thousands of empty
/// fields kept megabytes of host memory within a 64 KiB limit.
#[test]
fn empty_log_fields_count_toward_the_log_limit() {
    let e = run(
        &host(),
        errand_test_guests::HOSTILE,
        b"log-fields",
        &[("fields", "20000")],
        Limits {
            fuel: 2_000_000_000,
            ..small()
        },
    );
    assert_aborted(&e, AbortReason::StdioLimit, "log");
    assert!(e.logs.is_empty(), "{} log lines kept", e.logs.len());
}

#[test]
fn a_deadline_check_interval_of_zero_is_refused() {
    let err = Host::with_config(HostConfig {
        deadline_check_fuel: 0,
        ..HostConfig::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("deadline_check_fuel"), "{err}");
}

#[test]
fn unbounded_memory_growth_hits_the_memory_limit() {
    let e = hostile(
        &host(),
        "alloc",
        Limits {
            fuel: 2_000_000_000,
            ..small()
        },
    );
    assert_eq!(
        abort_reason(&e),
        Some(AbortReason::MemoryLimit),
        "{:?}",
        e.outcome
    );
}

#[test]
fn deep_recursion_traps_as_stack_overflow() {
    let e = hostile(
        &host(),
        "recurse",
        Limits {
            fuel: 2_000_000_000,
            ..small()
        },
    );
    assert_aborted(&e, AbortReason::Trap, "stack overflow");
}

#[test]
fn huge_output_is_refused() {
    let e = hostile(
        &host(),
        "big-output",
        Limits {
            memory_bytes: 256 << 20,
            fuel: 2_000_000_000,
            ..small()
        },
    );
    assert_eq!(
        abort_reason(&e),
        Some(AbortReason::OutputTooLarge),
        "{:?}",
        e.outcome
    );
    assert!(e.output.is_empty());
}

#[test]
fn panic_is_a_trap_carrying_the_panic_message() {
    let e = hostile(&host(), "panic", small());
    match &e.outcome {
        Outcome::Aborted {
            reason: AbortReason::Trap,
            detail,
        } => {
            assert!(
                detail.contains("hostile guest panics on purpose"),
                "{detail}"
            )
        }
        o => panic!("{o:?}"),
    }
}

#[test]
fn log_flood_hits_the_trace_limit() {
    let e = hostile(&host(), "log-flood", small());
    assert_eq!(
        abort_reason(&e),
        Some(AbortReason::TraceLimit),
        "{:?}",
        e.outcome
    );
    assert_eq!(e.trace_events, small().max_trace_events);
}

#[test]
fn stdout_flood_hits_the_stdio_limit() {
    let e = hostile(
        &host(),
        "stdout-flood",
        Limits {
            max_trace_events: 1_000_000,
            ..small()
        },
    );
    assert_eq!(
        abort_reason(&e),
        Some(AbortReason::StdioLimit),
        "{:?}",
        e.outcome
    );
    assert!(e.stdout.len() <= small().max_stdio);
}

#[test]
fn reading_files_is_denied() {
    let e = hostile(&host(), "read-file", small());
    assert_aborted(&e, AbortReason::CapabilityDenied, "wasi:filesystem");
}

#[test]
fn network_is_denied() {
    let e = hostile(&host(), "net", small());
    assert_aborted(&e, AbortReason::CapabilityDenied, "wasi:sockets");
}

#[test]
fn environment_and_arguments_are_empty() {
    let e = hostile(&host(), "read-env", small());
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    assert_eq!(e.output, b"vars=[] args=[]");
}

#[test]
fn clocks_are_virtual_and_replay_exactly() {
    let h = host();
    let a = hostile(&h, "clock", small());
    let b = hostile(&h, "clock", small());
    assert!(a.outcome.is_ok(), "{:?}", a.outcome);
    let text = String::from_utf8(a.output.clone()).unwrap();
    let wall: u64 = text.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(
        wall, T0.0,
        "the wall clock reads the invocation time, not the real one"
    );
    let mono: u64 = text.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(mono > 0, "the monotonic clock advances with fuel");
    assert_eq!(a.output, b.output);
}

#[test]
fn randomness_is_seeded_from_the_request() {
    let h = host();
    let p = h.prepare(errand_test_guests::HOSTILE).unwrap();
    let mut i = inv(b"random", &[], small());
    let a = h.run(&p, &i).unwrap().output;
    let b = h.run(&p, &i).unwrap().output;
    // The seed is the request's own field, not derived from the nonce: the
    // same request sent to two executors (a cross-check) must agree.
    i.request_id = RequestId([8; 16]);
    let c = h.run(&p, &i).unwrap().output;
    i.seed = Seed([9; 32]);
    let d = h.run(&p, &i).unwrap().output;
    assert_eq!(a.len(), 16);
    assert_eq!(a, b, "same request, same randomness");
    assert_eq!(a, c, "another nonce, the same seed: the same randomness");
    assert_ne!(a, d, "another seed, other randomness");
}

#[test]
fn sleeping_passes_virtual_time_instantly() {
    let e = hostile(&host(), "sleep", small());
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    assert_eq!(e.output, b"slept");
    assert!(e.elapsed < Duration::from_secs(5));
}

#[test]
fn oversized_input_is_refused_before_running() {
    let h = host();
    let p = h.prepare(errand_test_guests::HOSTILE).unwrap();
    let big = vec![0u8; 2 << 20];
    let err = h
        .run(
            &p,
            &inv(
                &big,
                &[],
                Limits {
                    max_input: 1 << 20,
                    ..small()
                },
            ),
        )
        .unwrap_err();
    assert!(
        matches!(err, errand_host::RunError::InputTooLarge { .. }),
        "{err}"
    );
}

#[test]
fn wat_guests_cannot_escape_their_limits() {
    let h = host();
    // Memory growth in a loop.
    let grow = wat::parse_str(errand_host::testing::command_wat(
        r#"(memory 1) (func (export "run") (result i32)
              (loop $l (drop (memory.grow (i32.const 16))) (br $l)) i32.const 0)"#,
    ))
    .unwrap();
    let e = run(&h, &grow, b"", &[], small());
    assert_eq!(
        abort_reason(&e),
        Some(AbortReason::MemoryLimit),
        "{:?}",
        e.outcome
    );
    // An explicit trap.
    let trap = wat::parse_str(errand_host::testing::command_wat(
        r#"(func (export "run") (result i32) unreachable)"#,
    ))
    .unwrap();
    let e = run(&h, &trap, b"", &[], small());
    assert_eq!(abort_reason(&e), Some(AbortReason::Trap));
}

/// Growth past a memory's declared maximum fails the same way on every
/// host: `memory.grow` returns -1 and the guest goes on (only growth the
/// limits allowed and the operating system refused is this host's failure,
/// `RunError::HostFailure`, and is never signed).
#[test]
fn a_guest_growing_past_its_memory_maximum_sees_minus_one_on_every_host() {
    let h = host();
    let bounded = wat::parse_str(errand_host::testing::command_wat(
        r#"(memory 1 2) (func (export "run") (result i32)
              (if (i32.ne (memory.grow (i32.const 1)) (i32.const 1)) (then (return (i32.const 1))))
              (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then (return (i32.const 2))))
              i32.const 0)"#,
    ))
    .unwrap();
    let e = run(&h, &bounded, b"", &[], small());
    assert_eq!(e.outcome, Outcome::Ok, "{:?}", e.outcome);
}

/// While hostile guests run on other threads, honest work is still served.
#[test]
fn the_host_keeps_serving_while_hostile_guests_run() {
    let h = Arc::new(host());
    let attackers: Vec<_> = ["loop", "alloc", "log-flood", "panic", "recurse"]
        .into_iter()
        .map(|attack| {
            let h = h.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let e = hostile(
                        &h,
                        attack,
                        Limits {
                            fuel: 200_000_000,
                            ..small()
                        },
                    );
                    assert!(!e.outcome.is_ok());
                }
            })
        })
        .collect();
    for _ in 0..20 {
        let e = hostile(&h, "echo", small());
        assert_eq!(e.output, b"echo");
    }
    for a in attackers {
        a.join().unwrap();
    }
}

// ------------------------------------------------------------ soak (RSS)

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Runs in its own process (see `hostile_guests_1000_times_each_keep_rss_flat`)
/// so other tests' allocations do not disturb the measurement.
#[test]
#[ignore = "run as a child process by hostile_guests_1000_times_each_keep_rss_flat"]
fn soak_child() {
    if std::env::var_os("ERRAND_SOAK_CHILD").is_none() {
        return;
    }
    let h = host();
    let attacks = [
        (
            "loop",
            Limits {
                fuel: 2_000_000,
                ..small()
            },
        ),
        (
            "alloc",
            Limits {
                fuel: 500_000_000,
                memory_bytes: 8 << 20,
                ..small()
            },
        ),
        (
            "recurse",
            Limits {
                fuel: 500_000_000,
                ..small()
            },
        ),
        (
            "big-output",
            Limits {
                max_output: 64 << 10,
                ..small()
            },
        ),
        ("panic", small()),
        (
            "log-flood",
            Limits {
                max_trace_events: 200,
                ..small()
            },
        ),
        (
            "stdout-flood",
            Limits {
                max_stdio: 16 << 10,
                ..small()
            },
        ),
        ("read-file", small()),
        ("net", small()),
        ("read-env", small()),
    ];
    let wat_loop = wat::parse_str(errand_host::testing::spin_command_wat(u32::MAX)).unwrap();
    let p = h.prepare(errand_test_guests::HOSTILE).unwrap();
    let pw = h.prepare(&wat_loop).unwrap();
    let mut samples = Vec::new();
    const ROUNDS: usize = 1_000;
    for round in 0..ROUNDS {
        for (attack, limits) in &attacks {
            let params: &[(&str, &str)] = if *attack == "big-output" {
                &[("bytes", "131072")]
            } else {
                &[]
            };
            let e = h.run(&p, &inv(attack.as_bytes(), params, *limits)).unwrap();
            if *attack != "read-env" {
                assert!(!e.outcome.is_ok(), "{attack} succeeded");
            }
        }
        let e = h
            .run(
                &pw,
                &inv(
                    b"",
                    &[],
                    Limits {
                        fuel: 1_000_000,
                        ..small()
                    },
                ),
            )
            .unwrap();
        assert_eq!(abort_reason(&e), Some(AbortReason::OutOfFuel));
        if round % 100 == 99 {
            samples.push(rss_bytes());
        }
    }
    // After warm-up (the first 300 rounds), resident memory must be flat.
    let base = samples[2];
    let last = *samples.last().unwrap();
    println!(
        "rss samples (MiB): {:?}",
        samples.iter().map(|s| s >> 20).collect::<Vec<_>>()
    );
    assert!(
        last <= base + (16 << 20),
        "RSS grew from {} MiB to {} MiB over {} rounds",
        base >> 20,
        last >> 20,
        ROUNDS
    );
}

#[test]
fn hostile_guests_1000_times_each_keep_rss_flat() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "soak_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ERRAND_SOAK_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "soak failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rss samples"),
        "the soak did not run:\n{stdout}"
    );
}

/// Issue 10, item 1: replay re-ran with the values the executor wrote into
/// its own receipt. An executor asked for `size=96 iterations=48` that ran
/// `size=16 iterations=1` but wrote the asked parameters into its receipt
/// passed replay. Replay now runs the signed request.
#[test]
fn replay_runs_the_request_not_the_receipts_claims() {
    let h = Host::new().unwrap();
    let key = SecretKey::from_seed([3; 32]);
    let component = tool("imagegen");
    let input = b"a lighthouse in fog";
    let p = h.prepare(component).unwrap();
    let asked = inv(
        input,
        &[("size", "96"), ("iterations", "48")],
        Limits::default(),
    );
    let cheap = inv(
        input,
        &[("size", "16"), ("iterations", "1")],
        Limits::default(),
    );
    let ran = h.run(&p, &cheap).unwrap();
    // The receipt claims the asked parameters over the cheap run's output.
    let receipt = sign(&h, &key, component, &asked, &ran);
    let request = errand_core::request::Request {
        requester: receipt.body().requester,
        executor: key.peer_id(),
        request_id: asked.request_id,
        capability: None,
        component: Some(Digest::of(component)),
        input: Digest::of(input),
        context: asked.context.clone(),
        fuel: asked.limits.fuel,
        limits: None,
        seed: asked.seed,
    };
    let r = errand_host::replay(
        &h,
        receipt.body(),
        Some(&request),
        component,
        input,
        None,
        None,
    )
    .unwrap();
    assert!(!r.matched(), "{:#?}", r.report);
    let f = r.report.first_failure().unwrap();
    assert!(
        f.name == "replay-output" || f.name == "replay-fuel",
        "{f:?}"
    );
    // An honest run of the request matches.
    let honest = h.run(&p, &asked).unwrap();
    let receipt = sign(&h, &key, component, &asked, &honest);
    let r = errand_host::replay(
        &h,
        receipt.body(),
        Some(&request),
        component,
        input,
        None,
        None,
    )
    .unwrap();
    assert!(r.matched(), "{:#?}", r.report);
}

// ------------------------------------------------- NaN canonicalisation

/// A WASI command that computes 0/0 and fails when the NaN it gets has its
/// sign bit set: its outcome observes NaN bits. With canonicalisation the
/// NaN is the positive canonical one; without, it is whatever the CPU
/// makes (negative on x86-64).
fn nan_sign_command() -> Vec<u8> {
    wat::parse_str(errand_host::testing::command_wat(
        r#"(global $zero (mut f64) (f64.const 0))
      (func (export "run") (result i32)
        (i32.wrap_i64 (i64.shr_u
          (i64.reinterpret_f64 (f64.div (global.get $zero) (global.get $zero)))
          (i64.const 63))))"#,
    ))
    .unwrap()
}

fn manifest_with(sandbox: &str) -> Manifest {
    toml::from_str(&format!(
        "name = \"nan-sign\"\nversion = \"1.0.0\"\ndescription = \"d\"\n\
         [input]\nmedia_type = \"text/plain\"\n[output]\nmedia_type = \"text/plain\"\n{sandbox}"
    ))
    .unwrap()
}

#[test]
fn engine_fingerprint_differs_between_nan_modes() {
    use errand_host::NanMode;
    let h = host();
    let canonical = h.platform_for(NanMode::Canonical).engine;
    let native = h.platform_for(NanMode::Native).engine;
    let selective = h.platform_for(NanMode::Selective).engine;
    assert_ne!(canonical, native);
    assert_ne!(canonical, selective);
    assert_ne!(native, selective);
    // The canonical engine keeps the fingerprint it always had, so
    // receipts signed before the other modes existed still replay on it;
    // the default is now canonicalisation where observable.
    assert_eq!(h.platform().engine, selective);
    assert!(
        h.settings_for(NanMode::Canonical)
            .contains(";nan-canonicalization=1;")
    );
    assert!(
        h.settings()
            .contains(";nan-canonicalization=observable/v1;")
    );
    for (mode, value) in [
        (NanMode::Native, "0"),
        (NanMode::Selective, "observable/v1"),
    ] {
        assert_eq!(
            h.settings_for(mode).replace(
                &format!("nan-canonicalization={value};"),
                "nan-canonicalization=1;"
            ),
            h.settings_for(NanMode::Canonical)
        );
    }
    assert_eq!(h.nan_mode_of(&canonical), Some(NanMode::Canonical));
    assert_eq!(h.nan_mode_of(&native), Some(NanMode::Native));
    assert_eq!(h.nan_mode_of(&selective), Some(NanMode::Selective));
    assert_eq!(h.nan_mode_of(&Digest::of(b"another engine")), None);
    // A run and its receipt carry the engine of the mode it ran in.
    let c = nan_sign_command();
    let key = SecretKey::from_seed([1; 32]);
    for (mode, engine) in [
        (NanMode::Canonical, canonical),
        (NanMode::Native, native),
        (NanMode::Selective, selective),
    ] {
        let p = h.prepare_with(&c, mode).unwrap();
        assert_eq!(p.nan_mode(), mode);
        let i = inv(b"", &[], Limits::default());
        let e = h.run(&p, &i).unwrap();
        assert_eq!(e.engine, engine);
        assert_eq!(sign(&h, &key, &c, &i, &e).body().platform.engine, engine);
    }
    // The manifest decides: only an explicit `observes_nan_bits = false`
    // runs without canonicalisation.
    assert_eq!(
        NanMode::for_manifest(&manifest_with("")),
        NanMode::Selective
    );
    assert_eq!(
        NanMode::for_manifest(&manifest_with("[sandbox]\nobserves_nan_bits = true")),
        NanMode::Selective
    );
    assert_eq!(
        NanMode::for_manifest(&manifest_with("[sandbox]\nobserves_nan_bits = false")),
        NanMode::Native
    );
}

#[test]
fn replay_of_a_run_without_nan_canonicalisation_is_exact() {
    use errand_host::NanMode;
    let key = SecretKey::from_seed([1; 32]);
    let declares = manifest_with("[sandbox]\nobserves_nan_bits = false");
    // A tool that indeed never observes NaN bits, as its manifest declares.
    let imagegen = tool("imagegen");
    let manifest: Manifest = toml::from_str(include_str!(
        "../../../examples/tools/imagegen/capability.toml"
    ))
    .unwrap();
    assert_eq!(NanMode::for_manifest(&manifest), NanMode::Native);
    let h = host();
    let p = h.prepare_with(imagegen, NanMode::Native).unwrap();
    let params = [("size", "64"), ("iterations", "64")];
    let i = inv(b"a red fox at dawn", &params, Limits::default());
    let e = h.run(&p, &i).unwrap();
    assert!(e.outcome.is_ok(), "{:?}", e.outcome);
    // Same picture as with canonicalisation: its output has no NaN bits.
    let canonical = run(
        &h,
        imagegen,
        b"a red fox at dawn",
        &params,
        Limits::default(),
    );
    assert_eq!(e.output, canonical.output);
    let receipt = sign(&h, &key, imagegen, &i, &e);
    // Replayed on another host, from the receipt alone: same engine
    // settings, output, fuel and trace.
    let h2 = host();
    let r = errand_host::replay(
        &h2,
        receipt.body(),
        None,
        imagegen,
        b"a red fox at dawn",
        e.trace.as_deref(),
        Some(&manifest),
    )
    .unwrap();
    assert!(r.matched(), "{:#?}", r.report);
    assert_eq!(r.execution.engine, h2.platform_for(NanMode::Native).engine);
    for check in [
        "nan-canonicalisation",
        "replay-platform",
        "replay-fuel",
        "replay-trace",
    ] {
        assert!(
            r.report
                .checks
                .iter()
                .any(|c| c.name == check && matches!(c.verdict, evidence::Verdict::Pass(_))),
            "{check}: {:#?}",
            r.report
        );
    }

    // A tool that does observe NaN bits: the replay must run in the
    // recorded mode to agree. On x86-64 the two modes end differently.
    let c = nan_sign_command();
    for mode in [NanMode::Canonical, NanMode::Native, NanMode::Selective] {
        let p = h.prepare_with(&c, mode).unwrap();
        let i = inv(b"", &[], Limits::default());
        let e = h.run(&p, &i).unwrap();
        if mode != NanMode::Native || !cfg!(target_arch = "x86_64") {
            assert!(e.outcome.is_ok(), "{mode:?}: {:?}", e.outcome);
        } else {
            assert!(
                matches!(e.outcome, Outcome::Failed { .. }),
                "{:?}",
                e.outcome
            );
        }
        let receipt = sign(&h, &key, &c, &i, &e);
        let r =
            errand_host::replay(&h2, receipt.body(), None, &c, b"", None, Some(&declares)).unwrap();
        assert!(r.matched(), "{mode:?}: {:#?}", r.report);
    }
}

#[test]
fn receipt_claiming_no_nan_canonicalisation_for_a_tool_whose_manifest_does_not_declare_it_is_refused()
 {
    use errand_host::NanMode;
    let key = SecretKey::from_seed([1; 32]);
    let h = host();
    let c = nan_sign_command();
    // The executor runs the tool without canonicalisation although the
    // author's manifest does not allow it, and signs what it did.
    let p = h.prepare_with(&c, NanMode::Native).unwrap();
    let i = inv(b"", &[], Limits::default());
    let e = h.run(&p, &i).unwrap();
    let receipt = sign(&h, &key, &c, &i, &e);
    assert_eq!(
        h.nan_mode_of(&receipt.body().platform.engine),
        Some(NanMode::Native)
    );
    for undeclared in ["", "[sandbox]\nobserves_nan_bits = true"] {
        let manifest = manifest_with(undeclared);
        let r =
            errand_host::replay(&h, receipt.body(), None, &c, b"", None, Some(&manifest)).unwrap();
        assert!(!r.matched(), "{:#?}", r.report);
        let fail = r.report.first_failure().unwrap();
        assert_eq!(fail.name, "nan-canonicalisation", "{:#?}", r.report);
        // The replay itself runs as the manifest requires.
        assert_eq!(
            r.execution.engine,
            h.platform_for(NanMode::for_manifest(&manifest)).engine
        );
    }
    // Without the manifest the verifier cannot judge: skipped, not passed.
    let r = errand_host::replay(&h, receipt.body(), None, &c, b"", None, None).unwrap();
    assert!(
        r.report
            .checks
            .iter()
            .any(|c| c.name == "nan-canonicalisation"
                && matches!(c.verdict, evidence::Verdict::Skip(_))),
        "{:#?}",
        r.report
    );

    // Lying about it does not help: a receipt that claims the canonical
    // engine is replayed canonicalised, and where the NaN's bits decide
    // the outcome (x86-64), the replay disagrees.
    if cfg!(target_arch = "x86_64") {
        let mut forged = receipt.body().clone();
        forged.platform.engine = h.platform().engine;
        let r = errand_host::replay(&h, &forged, None, &c, b"", None, Some(&manifest_with("")))
            .unwrap();
        assert!(!r.matched(), "{:#?}", r.report);
        assert_eq!(r.report.first_failure().unwrap().name, "replay-outcome");
    }
}

/// wasmtime 48 charges `memory.fill` and `memory.copy` one unit of fuel
/// per byte (on top of the operator), so fuel bounds bulk memory work too;
/// the deadline stays as the bound on wall-clock time, which fuel does not
/// measure (cache misses, fresh pages).
#[test]
fn fuel_charges_bulk_memory_operations_per_byte() {
    let h = host();
    let fill = |bytes: u32| {
        let c = wat::parse_str(errand_host::testing::command_wat(&format!(
            r#"(memory 32)
      (func (export "run") (result i32)
        (memory.fill (i32.const 0) (i32.const 7) (i32.const {bytes}))
        (memory.copy (i32.const {bytes}) (i32.const 0) (i32.const {bytes}))
        (i32.const 0))"#
        )))
        .unwrap();
        let e = run(&h, &c, b"", &[], Limits::default());
        assert!(e.outcome.is_ok(), "{:?}", e.outcome);
        e.fuel_consumed
    };
    let (small, large) = (fill(1024), fill(1 << 20));
    assert!(
        large - small >= 2 * ((1 << 20) - 1024),
        "1 KiB: {small} fuel, 1 MiB: {large} fuel"
    );
}
