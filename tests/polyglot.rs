//! Tools in Python and JavaScript, and a tool author's first five minutes
//! (issue 12, parts 3 and 4): the example tools built from source with the
//! official tool chains (componentize-py, jco with componentize-js, at the
//! pins in `tests/interop/`), packed, hosted, invoked over the network,
//! canaried and replayed; `errand new` then `errand build` in each
//! language, from an empty folder; and `errand pack` rebuilding stale Rust
//! components (issue 11).
//!
//! Building a 12–18 MB interpreted component takes 10–50 s and its first
//! compile 30–60 s in a debug build, so the example tools' components are
//! cached in the interop cache (outside the clone, where
//! `tests/interop/setup` installs the tool chains), keyed by a hash of
//! their sources, the WIT and the pins; and so is the compiled code of
//! those components, which every process of a run (nodes, requesters)
//! shares. The scaffolds are built afresh every time: that is what their
//! tests are about.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use errand_core::Digest;

use crate::support::{NodeProc, NodeSpec, Sandbox, code, eventually, interop, p, stderr, stdout};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The pinned tool chains: (componentize-py, jco).
fn toolchains() -> (PathBuf, PathBuf) {
    let i = interop();
    let py = i.python.parent().unwrap().join("componentize-py");
    let jco = i.node_modules.join(".bin/jco");
    assert!(py.is_file(), "no {}", py.display());
    assert!(jco.is_file(), "no {}", jco.display());
    (py, jco)
}

/// The interop cache: the folder `tests/interop/setup` installs into.
fn interop_cache() -> PathBuf {
    // PYTHON is CACHE/py-KEY/bin/python.
    interop().python.ancestors().nth(3).unwrap().to_path_buf()
}

/// Folders of build output and installed tool chains, never sources.
const BUILD_OUTPUT: &[&str] = &["target", "node_modules", "__pycache__", ".venv"];

/// Copies a folder, leaving out build output.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        let name = e.file_name();
        if ty.is_dir() && !BUILD_OUTPUT.iter().any(|b| name == *b) {
            copy_dir(&e.path(), &to.join(&name));
        } else if ty.is_file() && !name.to_string_lossy().ends_with(".errand") {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// Every file under `dir`, sorted, as (relative path, bytes).
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                if !BUILD_OUTPUT.iter().any(|b| e.file_name() == *b) {
                    stack.push(e.path());
                }
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// What a built component depends on: the tool's sources, the WIT, the
/// tool chain pins and the build's flags.
fn source_key(tool: &Path) -> String {
    let mut bytes = b"errand-build/v1;js-disabled=".to_vec();
    bytes.extend_from_slice(errand::build::JS_DISABLED_FEATURES.join(",").as_bytes());
    for dir in [tool.to_path_buf(), repo().join("wit")] {
        for (rel, data) in tree(&dir) {
            bytes.extend_from_slice(rel.as_bytes());
            bytes.extend_from_slice(&Digest::of(&data).0);
        }
    }
    for pin in [
        "requirements.txt",
        "constraints.txt",
        "package.json",
        "package-lock.json",
    ] {
        bytes.extend_from_slice(&std::fs::read(repo().join("tests/interop").join(pin)).unwrap());
    }
    Digest::of(&bytes).to_string()[..16].to_owned()
}

/// Runs `errand` as `user`, in `dir`, with no tool chain named by the
/// environment.
fn errand_in(user: &Sandbox, dir: &Path, args: &[&str]) -> Output {
    errand_cached(user, dir, args, None)
}

/// [`errand_in`], with the compiled-component cache in `cache` if given.
fn errand_cached(user: &Sandbox, dir: &Path, args: &[&str], cache: Option<&Path>) -> Output {
    let mut c = user.command(args);
    c.current_dir(dir)
        .env_remove("ERRAND_COMPONENTIZE_PY")
        .env_remove("ERRAND_JCO");
    if let Some(cache) = cache {
        c.env("ERRAND_CACHE_DIR", cache);
    }
    c.output().unwrap()
}

/// The package of the example tool `name`, packed by `user` into its
/// folder: built from source with `errand build` and the pinned tool chain,
/// unless the interop cache holds the component built from these very
/// sources, which is then packed with `errand pack --component`; compiled
/// code is kept in `cache`. Returns the package and the component's digest.
fn example_package(user: &Sandbox, name: &str, cache: &Path) -> (PathBuf, Digest) {
    let (py, jco) = toolchains();
    let src = repo().join("examples/tools").join(name);
    let work = user.path(&format!("src-{name}"));
    copy_dir(&src, &work);
    let built_dir = interop_cache().join("built");
    std::fs::create_dir_all(&built_dir).unwrap();
    let cached = built_dir.join(format!("{name}-{}.wasm", source_key(&src)));
    let pkg = user.path(&format!("{name}.errand"));
    let t0 = Instant::now();
    if cached.is_file() {
        let o = errand_cached(
            user,
            &work,
            &[
                "pack",
                "capability.toml",
                "--component",
                p(&cached),
                "-o",
                p(&pkg),
            ],
            Some(cache),
        );
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        eprintln!(
            "{name}: packed the cached component in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
    } else {
        let o = errand_cached(
            user,
            &work,
            &[
                "build",
                "--componentize-py",
                p(&py),
                "--jco",
                p(&jco),
                "-o",
                p(&pkg),
            ],
            Some(cache),
        );
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        eprintln!(
            "{name}: built and packed in {:.1} s\n{}",
            t0.elapsed().as_secs_f64(),
            stderr(&o)
        );
        let component = work
            .join("target/errand")
            .join(format!("{}.wasm", name.replace('-', "_")));
        // Older builds of this tool go; then write and rename, so that a
        // concurrent run never reads half a file.
        for e in std::fs::read_dir(&built_dir).unwrap() {
            let path = e.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            if file.starts_with(&format!("{name}-")) {
                let _ = std::fs::remove_file(&path);
            }
        }
        let tmp = built_dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::copy(&component, &tmp).unwrap();
        std::fs::rename(&tmp, &cached).unwrap();
    }
    let bytes = std::fs::read(&pkg).unwrap();
    let package = errand::packaging::decode_package(&pkg, &bytes).unwrap();
    (pkg, Digest::of(&package.component))
}

/// The folder whose `compiled/` every process of this test shares:
/// `ERRAND_CACHE_DIR` for the CLI, the nodes' `data/compiled` a link to
/// it.
fn shared_compile_cache() -> PathBuf {
    let dir = interop_cache().join("errand-cache");
    std::fs::create_dir_all(dir.join("compiled")).unwrap();
    dir
}

/// Removes from the shared cache the compiled code of components other
/// than `keep` (earlier builds of the example tools).
fn prune_compile_cache(cache: &Path, keep: &[Digest]) {
    for e in std::fs::read_dir(cache.join("compiled")).unwrap() {
        let path = e.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if !keep.iter().any(|d| file.starts_with(&d.to_string())) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Issue 12, part 3: the Python and JavaScript example tools, built from
/// source by the pinned official tool chains, are packed, hosted by a node,
/// found through a registry and invoked over the network at high risk
/// (canary, receipt, replay), and their evidence verifies offline and by
/// replay. Their output is the tools' real work, byte for byte.
#[test]
fn python_and_javascript_tools_are_invoked_over_the_network_canaried_and_replayed() {
    let user = Sandbox::new();
    let cache = shared_compile_cache();
    let (csv_pkg, csv_digest) = example_package(&user, "csv-summary", &cache);
    let (json_pkg, json_digest) = example_package(&user, "json-check", &cache);
    prune_compile_cache(&cache, &[csv_digest, json_digest]);

    // The JavaScript tool imports nothing from WASI (built with `-d stdio
    // random clocks http fetch-event`); the Python one only what the
    // sandbox serves deterministically, or denies.
    let o = user.errand(&["inspect", p(&json_pkg), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let imports: Vec<&str> = v["component"]["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap())
        .collect();
    assert!(
        imports.iter().all(|i| i.starts_with("errand:capability/")),
        "{imports:?}"
    );

    let reg = NodeProc::start(&NodeSpec {
        registry: true,
        ..NodeSpec::default()
    });
    let mut exec = NodeProc::prepare(&NodeSpec {
        packages: true,
        registries: vec![reg.peer_addr()],
        ..NodeSpec::default()
    });
    std::fs::create_dir_all(exec.dir.join("data")).unwrap();
    std::os::unix::fs::symlink(cache.join("compiled"), exec.dir.join("data/compiled")).unwrap();
    exec.spawn();
    for pkg in [&csv_pkg, &json_pkg] {
        let to = exec.packages().join(pkg.file_name().unwrap());
        errand::files::write_atomic(&to, &std::fs::read(pkg).unwrap()).unwrap();
    }
    let registry = reg.peer_addr().to_string();
    // By intent, and by name too: both tools match "validate json" (the
    // CSV tool's description says it answers in JSON), and the requester
    // orders a registry's matches by reputation, not by how well they
    // cover the intent.
    let invoke = |intent: &str, name: &str, input: &str, out: &str, evidence: &str| {
        let o = user
            .command(&[
                "invoke",
                "--intent",
                intent,
                "--capability",
                name,
                "--registry",
                &registry,
                "--input",
                input,
                "-o",
                out,
                "--evidence",
                evidence,
                "--trace",
                "--risk",
                "high",
            ])
            .env("ERRAND_CACHE_DIR", &cache)
            .output()
            .unwrap();
        (code(&o), stderr(&o))
    };

    std::fs::write(
        user.path("sales.csv"),
        "region,units,price,shipped\nnorth,12,9.5,yes\nsouth,7,11,no\nnorth,30,8.25,yes\n",
    )
    .unwrap();
    std::fs::write(
        user.path("check.json"),
        r#"{"schema": {"type": "object", "required": ["name", "tags"],
                       "properties": {"name": {"type": "string", "minLength": 3},
                                      "tags": {"type": "array", "uniqueItems": true}}},
            "data": {"name": "ok", "tags": ["a", "b", "a"]}}"#,
    )
    .unwrap();

    // Published once the node has loaded both packages (the first load
    // compiles them, unless the shared cache has them already).
    let mut last = String::new();
    let listed = eventually(Duration::from_secs(300), || {
        let o = user.errand(&["find", "validate json", "--registry", &registry]);
        let o2 = user.errand(&["find", "summarize csv", "--registry", &registry]);
        last = format!("{}{}{}", stdout(&o), stdout(&o2), exec.log());
        stdout(&o).contains("json-check") && stdout(&o2).contains("csv-summary")
    });
    assert!(listed.is_some(), "never published: {last}");
    eprintln!(
        "both tools published in {:.1} s",
        listed.unwrap().as_secs_f64()
    );

    for (intent, name, input, out, evidence, pkg) in [
        (
            "summarize csv",
            "csv-summary",
            "sales.csv",
            "summary.json",
            "csv.evidence",
            &csv_pkg,
        ),
        (
            "validate json",
            "json-check",
            "check.json",
            "report.json",
            "json.evidence",
            &json_pkg,
        ),
    ] {
        let t0 = Instant::now();
        let (status, err) = invoke(intent, name, input, out, evidence);
        assert_eq!(status, 0, "{intent}: {err}\n{}", exec.log());
        for check in ["canary ok", "receipt ok", "replay ok", "accepted"] {
            assert!(err.contains(check), "{intent}: {check}: {err}");
        }
        eprintln!(
            "{intent}: invoked at high risk in {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        // Verified offline, and by replay against the package.
        let o = user
            .command(&[
                "verify",
                evidence,
                "--executor",
                &exec.peer.to_string(),
                "--replay",
                "--component",
                p(pkg),
                "--input",
                input,
                "--output",
                out,
            ])
            .env("ERRAND_CACHE_DIR", &cache)
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        for check in [
            "replay-output    pass",
            "replay-trace     pass",
            "trace            pass",
        ] {
            assert!(stdout(&o).contains(check), "{check}: {}", stdout(&o));
        }
    }

    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(user.path("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["rows"], 3);
    let cols = summary["columns"].as_array().unwrap();
    assert_eq!(cols[0]["name"], "region");
    assert_eq!(cols[0]["type"], "text");
    assert_eq!(cols[0]["top"][0]["value"], "north");
    assert_eq!(cols[0]["top"][0]["count"], 2);
    assert_eq!(cols[1]["type"], "integer");
    assert_eq!(cols[1]["sum"], 49);
    assert_eq!(cols[1]["median"], 12);
    assert_eq!(cols[2]["type"], "number");
    assert_eq!(cols[2]["min"], 8.25);
    assert_eq!(cols[3]["type"], "boolean");
    assert_eq!(cols[3]["true"], 2);

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(user.path("report.json")).unwrap()).unwrap();
    assert_eq!(report["valid"], false);
    let errors: Vec<(String, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].as_str().unwrap().to_owned(),
                e["keyword"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        vec![
            ("/name".to_owned(), "minLength".to_owned()),
            ("/tags".to_owned(), "uniqueItems".to_owned()),
        ]
    );

    // A run the tool refuses is a tool error, not a trap: the tools turn
    // bad input into `invalid-input`, with a message an agent can act on.
    std::fs::write(user.path("bad.json"), "{\"schema\": {}}").unwrap();
    let o = user
        .command(&[
            "run",
            p(&json_pkg),
            "--input",
            "bad.json",
            "--evidence",
            "bad.evidence",
        ])
        .env("ERRAND_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("invalid input: input must be a JSON object"),
        "{}",
        stderr(&o)
    );
    std::fs::write(user.path("bad.csv"), "a,\"b\n").unwrap();
    let o = user
        .command(&[
            "run",
            p(&csv_pkg),
            "--input",
            "bad.csv",
            "--evidence",
            "bad.evidence",
        ])
        .env("ERRAND_CACHE_DIR", &cache)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("invalid input: malformed CSV"),
        "{}",
        stderr(&o)
    );
}

/// Builds `lang`'s scaffold: `errand new` in an empty folder, then
/// `errand build` in the tool's folder with `env` set (tool chains, cargo's
/// target folder) and no network, then runs the package and verifies the
/// run by replay.
fn new_build_run_replay(lang: &str, env: &[(&str, &Path)]) {
    let user = Sandbox::new();
    let empty = user.path("work");
    std::fs::create_dir_all(&empty).unwrap();
    let name = format!("hello-{lang}");
    let o = errand_in(&user, &empty, &["new", &name, "--lang", lang]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("errand build"), "{}", stdout(&o));
    let tool = empty.join(&name);
    let readme = std::fs::read_to_string(tool.join("README.md")).unwrap();
    assert!(readme.contains("errand build"), "{readme}");

    let t0 = Instant::now();
    let mut build = user.command(&["build"]);
    build
        .current_dir(&tool)
        .env_remove("ERRAND_COMPONENTIZE_PY")
        .env_remove("ERRAND_JCO");
    for (k, v) in env {
        build.env(k, v);
    }
    // Once the tool chains are installed, builds need no network: where
    // this machine allows it, the build runs with none at all.
    let o = without_network(&build).unwrap_or(build).output().unwrap();
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    eprintln!(
        "{name}: scaffold built and packed in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let pkg = tool.join(format!("{name}-0.1.0.errand"));
    assert!(
        stdout(&o).contains(&format!("packed {name} 0.1.0")),
        "{}",
        stdout(&o)
    );
    for example in ["hello", "with-suffix"] {
        assert!(stdout(&o).contains(example), "{}", stdout(&o));
    }

    std::fs::write(tool.join("in.txt"), "hello, errand").unwrap();
    let o = errand_in(
        &user,
        &tool,
        &[
            "run",
            p(&pkg),
            "--input",
            "in.txt",
            "-p",
            "suffix=?!",
            "--evidence",
            "run.evidence",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "HELLO, ERRAND?!");
    assert!(stderr(&o).contains("shouting"), "{}", stderr(&o));

    let o = errand_in(
        &user,
        &tool,
        &[
            "verify",
            "run.evidence",
            "--replay",
            "--component",
            p(&pkg),
            "--input",
            "in.txt",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    for check in [
        "author           pass",
        "replay-output    pass",
        "replay-fuel      pass",
    ] {
        assert!(stdout(&o).contains(check), "{check}: {}", stdout(&o));
    }

    // Bad input is the tool's own error, not a trap.
    std::fs::write(tool.join("bad.txt"), [0xff, 0xfe]).unwrap();
    let o = errand_in(
        &user,
        &tool,
        &[
            "run",
            p(&pkg),
            "--input",
            "bad.txt",
            "--evidence",
            "bad.evidence",
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("invalid input: input is not UTF-8 text"),
        "{}",
        stderr(&o)
    );
}

/// `cmd` run in a new network namespace with no interface but loopback
/// (`unshare -n`), when this machine allows it (root, or user namespaces).
fn without_network(cmd: &Command) -> Option<Command> {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let allowed = *ALLOWED.get_or_init(|| {
        Command::new("unshare")
            .args(["-n", "true"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !allowed {
        eprintln!("unshare -n is not allowed here: building with the network up");
        return None;
    }
    let mut u = Command::new("unshare");
    u.arg("-n").arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => u.env(k, v),
            None => u.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        u.current_dir(d);
    }
    Some(u)
}

/// Issue 12, part 4: `errand new NAME --lang python` then `errand build`,
/// from an empty folder, with componentize-py named by its variable.
#[test]
fn errand_new_then_build_makes_a_python_tool_that_runs_and_replays() {
    let (py, _) = toolchains();
    new_build_run_replay("python", &[("ERRAND_COMPONENTIZE_PY", &py)]);
}

/// Issue 12, part 4: `errand new NAME --lang js` then `errand build`, from
/// an empty folder, with jco named by its variable.
#[test]
fn errand_new_then_build_makes_a_javascript_tool_that_runs_and_replays() {
    let (_, jco) = toolchains();
    new_build_run_replay("js", &[("ERRAND_JCO", &jco)]);
}

/// Issue 12, part 4: `errand new NAME --lang rust` then `errand build`,
/// from an empty folder, offline: the scaffold depends on this checkout's
/// errand-guest and starts from errand's own Cargo.lock. Cargo's target
/// folder is kept between runs (the first build compiles wit-bindgen).
#[test]
fn errand_new_then_build_makes_a_rust_tool_that_runs_and_replays() {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("polyglot-rust-target");
    new_build_run_replay(
        "rust",
        &[
            ("CARGO_TARGET_DIR", &target),
            ("CARGO_NET_OFFLINE", Path::new("true")),
        ],
    );
}

/// `errand new` refuses names that cannot name a crate, a folder and a
/// tool, and never writes into a folder that holds something; `errand
/// build` says what it needs.
#[test]
fn errand_new_refuses_bad_names_and_busy_folders_and_build_says_what_it_needs() {
    let user = Sandbox::new();
    for bad in ["Hello", "hello_world", "../escape", "1st"] {
        let o = user.errand(&["new", bad, "--lang", "python"]);
        assert_eq!(code(&o), 1, "{bad}");
        assert!(stderr(&o).contains("cannot name a tool"), "{}", stderr(&o));
    }
    std::fs::create_dir_all(user.path("busy")).unwrap();
    std::fs::write(user.path("busy/notes.txt"), "mine").unwrap();
    let o = user.errand(&["new", "busy", "--lang", "js"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_dir(user.path("busy")).unwrap().count(),
        1,
        "new wrote into a busy folder"
    );

    // No manifest: not a tool's folder.
    let o = user.errand(&["build"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no capability.toml"), "{}", stderr(&o));

    // No tool chain anywhere: say exactly which and how to get it.
    let nowhere = user.path("nowhere");
    std::fs::create_dir_all(&nowhere).unwrap();
    for (lang, needles) in [
        (
            "python",
            &[
                "componentize-py 0.25.1",
                "pip install componentize-py==0.25.1",
                "tests/interop/setup python",
                "--componentize-py PATH",
            ][..],
        ),
        (
            "js",
            &[
                "jco 1.35.0",
                "componentize-js 0.23.0",
                "npm install",
                "--jco PATH",
            ][..],
        ),
    ] {
        let name = format!("bare-{lang}");
        let o = user.errand(&["new", &name, "--lang", lang]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let o = user
            .command(&["build"])
            .current_dir(user.path(&name))
            .env("PATH", &nowhere)
            .env("HOME", &nowhere)
            .env("ERRAND_INTEROP_CACHE", &nowhere)
            .env_remove("XDG_CACHE_HOME")
            .env_remove("ERRAND_COMPONENTIZE_PY")
            .env_remove("ERRAND_JCO")
            .output()
            .unwrap();
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        for n in needles {
            assert!(stderr(&o).contains(n), "{lang}: {n}: {}", stderr(&o));
        }
        // A tool chain named on purpose must exist.
        let o = user
            .command(&["build"])
            .current_dir(user.path(&name))
            .env("ERRAND_COMPONENTIZE_PY", nowhere.join("typo"))
            .env("ERRAND_JCO", nowhere.join("typo"))
            .output()
            .unwrap();
        assert_eq!(code(&o), 1);
        assert!(stderr(&o).contains("typo ($ERRAND_"), "{}", stderr(&o));
    }
}

/// Writes a Rust tool crate with no dependencies (a WASI command that
/// upper-cases its input), quick to build, into `dir`; its target folder is
/// cargo's default, `dir/target`, where `errand pack` also looks.
fn shout_crate(dir: &Path, transform: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"shout\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        format!(
            "use std::io::{{Read, Write}};\n\nfn main() {{\n    let mut s = String::new();\n    \
             std::io::stdin().read_to_string(&mut s).unwrap();\n    \
             std::io::stdout().write_all(s.{transform}().as_bytes()).unwrap();\n}}\n"
        ),
    )
    .unwrap();
    std::fs::copy(
        repo().join("rust-toolchain.toml"),
        dir.join("rust-toolchain.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.join("capability.toml"),
        "name = \"shout\"\nversion = \"0.1.0\"\ndescription = \"Shouts its input\"\n\
         intents = [\"shout text\"]\n\n[input]\nmedia_type = \"text/plain\"\n\n\
         [output]\nmedia_type = \"text/plain\"\n\n[[examples]]\nname = \"hello\"\n\
         input = \"hello\"\n",
    )
    .unwrap();
}

/// Issue 11: `errand pack` packed an existing build even when the sources
/// were newer, because it looked for a component before building. It now
/// builds whenever the manifest's folder holds a Cargo.toml (cargo does
/// nothing when the build is fresh), so the package always holds the
/// sources' component.
#[test]
fn pack_rebuilds_when_the_sources_are_newer_than_the_component() {
    let user = Sandbox::new();
    let dir = user.path("shout");
    shout_crate(&dir, "to_uppercase");
    std::fs::write(user.path("in.txt"), "Hello").unwrap();
    let pack_and_run = |out: &str| {
        let o = user
            .command(&["pack", "shout/capability.toml", "-o", out])
            .env_remove("CARGO_TARGET_DIR")
            .output()
            .unwrap();
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert!(
            stderr(&o).contains("building it with `cargo build --release --target wasm32-wasip2`"),
            "{}",
            stderr(&o)
        );
        let o = user.errand(&[
            "run",
            out,
            "--input",
            "in.txt",
            "--evidence",
            "run.evidence",
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(pack_and_run("first.errand"), "HELLO");
    assert!(
        dir.join("target/wasm32-wasip2/release/shout.wasm")
            .is_file()
    );
    // The sources change; the old component is still where pack looks.
    shout_crate(&dir, "to_lowercase");
    assert_eq!(pack_and_run("second.errand"), "hello");
}
