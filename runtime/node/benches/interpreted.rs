//! Interpreted tools (issue 12): Python components (componentize-py) and
//! JavaScript ones (jco with componentize-js) against Rust ones, side by
//! side in one run.
//!
//! 1. The same tool in the three languages: the `errand new` scaffold
//!    (upper-case the input, append a suffix), built from its template.
//!    Component size and build time; the first compile; the start after a
//!    restart (compiled code from the disk cache, then the first call); and
//!    the cost of one invocation (a fresh instance, the call, the trace),
//!    as a ratio to the Rust tool's, interleaved round by round.
//! 2. The example tools at work, csv-summary (Python) and json-check
//!    (JavaScript) on their manifests' first examples, against text-stats
//!    (Rust) on its own.
//!
//! It installs the pinned tool chains first (`tests/interop/setup`), and
//! needs cargo with the wasm32-wasip2 target.
//!
//! `cargo bench -p errand --bench interpreted`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use errand::build::{self, Lang, Toolchain};
use errand::scaffold::{self, GuestSdk, NewTool};
use errand_core::UnixMillis;
use errand_core::receipt::{InvocationContext, RequestId};
use errand_core::request::Seed;
use errand_host::{Host, HostConfig, Invocation, Limits, NanMode, Prepared};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `tests/interop/setup all`; returns (componentize-py, jco).
fn toolchains() -> (PathBuf, PathBuf) {
    let out = Command::new("bash")
        .arg(repo().join("tests/interop/setup"))
        .arg("all")
        .output()
        .unwrap();
    assert!(out.status.success(), "tests/interop/setup failed");
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(PathBuf::from)
            .unwrap()
    };
    let python = line("python=");
    (
        python.parent().unwrap().join("componentize-py"),
        line("node_modules=").join(".bin/jco"),
    )
}

fn toolchain(lang: Lang, dir: &Path, py: &Path, jco: &Path) -> Option<Toolchain> {
    let explicit = match lang {
        Lang::Python => Some(py),
        Lang::Js => Some(jco),
        Lang::Rust => None,
    };
    build::find_toolchain(lang, dir, explicit).unwrap()
}

/// A tool built for the benchmark.
struct Built {
    label: String,
    component: Vec<u8>,
    build_s: f64,
    input: Vec<u8>,
    params: Vec<(String, String)>,
}

fn build_in(dir: &Path, name: &str, lang: Lang, py: &Path, jco: &Path) -> (Vec<u8>, f64) {
    let t = toolchain(lang, dir, py, jco);
    let t0 = Instant::now();
    let built = build::build_tool(dir, name, lang, t.as_ref()).unwrap();
    let s = t0.elapsed().as_secs_f64();
    (std::fs::read(built.component).unwrap(), s)
}

fn invocation<'a>(input: &'a [u8], params: &[(String, String)]) -> Invocation<'a> {
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    Invocation {
        input,
        request_id: RequestId([7; 16]),
        seed: Seed([7; 32]),
        context: InvocationContext::from_pairs(UnixMillis(1_772_600_000_000), &pairs).unwrap(),
        limits: Limits::default(),
        keep_trace: false,
    }
}

fn call(host: &Host, p: &Prepared, b: &Built) -> u64 {
    let e = host.run(p, &invocation(&b.input, &b.params)).unwrap();
    assert!(e.outcome.is_ok(), "{}: {:?}", b.label, e.outcome);
    black_box(e.output);
    e.fuel_consumed
}

fn mib(n: usize) -> String {
    format!("{:.1} MiB", n as f64 / (1 << 20) as f64)
}

/// First compile (median of 3) and start after a restart (median of 5),
/// interleaved across the tools; per-invocation cost against `tools[0]`.
fn measure(tools: &[Built]) {
    let cache = tempfile::tempdir().unwrap();
    let mut compile = vec![Vec::new(); tools.len()];
    for round in 0..3 {
        for (i, t) in tools.iter().enumerate() {
            let dir = cache.path().join(format!("r{round}-{i}"));
            let h = Host::with_config(HostConfig {
                cache_dir: Some(dir),
                ..HostConfig::default()
            })
            .unwrap();
            let t0 = Instant::now();
            black_box(h.prepare(&t.component).unwrap());
            compile[i].push(t0.elapsed().as_secs_f64());
        }
    }
    let restart = |dir: &Path, t: &Built| {
        let h = Host::with_config(HostConfig {
            cache_dir: Some(dir.to_path_buf()),
            ..HostConfig::default()
        })
        .unwrap();
        let t0 = Instant::now();
        let p = h.prepare(&t.component).unwrap();
        call(&h, &p, t);
        t0.elapsed().as_secs_f64()
    };
    // The disk cache's notes that a component's NaN rewrite fell back.
    let notes = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "fallback"))
            .collect()
    };
    let mut start = vec![Vec::new(); tools.len()];
    // For a component that falls back, the same restart without the note
    // (as before there was one): the analysis runs to its budget again
    // before the compiled code is loaded, and writes the note again.
    let mut unnoted = vec![Vec::new(); tools.len()];
    for _ in 0..5 {
        for (i, t) in tools.iter().enumerate() {
            let dir = cache.path().join(format!("r0-{i}"));
            start[i].push(restart(&dir, t));
            let noted = notes(&dir);
            if !noted.is_empty() {
                for n in noted {
                    std::fs::remove_file(n).unwrap();
                }
                unnoted[i].push(restart(&dir, t));
            }
        }
    }
    let host = Host::new().unwrap();
    let prepared: Vec<Arc<Prepared>> = tools
        .iter()
        .map(|t| host.prepare(&t.component).unwrap())
        .collect();
    let fuel: Vec<u64> = tools
        .iter()
        .zip(&prepared)
        .map(|(t, p)| call(&host, p, t))
        .collect();

    let base = &tools[0];
    let c0 = benchkit::median(&compile[0]);
    let s0 = benchkit::median(&start[0]);
    println!(
        "| tool | component | NaN checks | build | first compile | × {0} | start after restart | × {0} | one invocation, p50 | × {0}, median (p10–p90) | fuel per invocation |",
        base.label
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, t) in tools.iter().enumerate() {
        let c = benchkit::median(&compile[i]);
        let s = benchkit::median(&start[i]);
        let (p50, ratio) = if i == 0 {
            let (p50, _, _) = benchkit::single(20, 20, || {
                call(&host, &prepared[0], base);
            });
            (p50, "1".to_owned())
        } else {
            let r = benchkit::paired(
                20,
                5,
                || {
                    call(&host, &prepared[0], base);
                },
                || {
                    call(&host, &prepared[i], t);
                },
            );
            (
                r.ours_ns,
                format!(
                    "**{:.0}** ({:.0}–{:.0})",
                    r.ratio_median, r.ratio_p10, r.ratio_p90
                ),
            )
        };
        let build = match t.build_s.is_nan() {
            true => "prebuilt".to_owned(),
            false => format!("{:.1} s", t.build_s),
        };
        let checks = match prepared[i].nan_mode() {
            NanMode::Selective => "rewritten",
            NanMode::Canonical => "engine's (fallback)",
            NanMode::Native => "none",
        };
        println!(
            "| {} | {} | {} | {} | {:.2} s | {:.0} | {:.1} ms | {:.0} | {} | {} | {} |",
            t.label,
            mib(t.component.len()),
            checks,
            build,
            c,
            c / c0,
            s * 1e3,
            s / s0,
            benchkit::fmt_ns(p50),
            ratio,
            fuel[i],
        );
    }
    for (i, t) in tools.iter().enumerate() {
        if !unnoted[i].is_empty() {
            let with = benchkit::median(&start[i]);
            let without = benchkit::median(&unnoted[i]);
            println!(
                "\n{}: its NaN rewrite falls back. Start after restart {:.1} ms with the disk \
                 cache's note of the fallback, {:.1} ms without it (the analysis again): {:.1}x.",
                t.label,
                with * 1e3,
                without * 1e3,
                without / with
            );
        }
    }
}

fn main() {
    let (py, jco) = toolchains();
    let work = tempfile::tempdir().unwrap();

    println!("## The same tool in Rust, Python and JavaScript (`errand new`)\n");
    let mut same = Vec::new();
    for (lang, label) in [
        (Lang::Rust, "Rust"),
        (Lang::Python, "Python"),
        (Lang::Js, "JavaScript"),
    ] {
        let name = format!("shout-{}", label.to_lowercase());
        let dir = work.path().join(&name);
        scaffold::create(&NewTool {
            name: name.clone(),
            lang,
            dir: dir.clone(),
            guest_sdk: GuestSdk::default_for_this_build(),
        })
        .unwrap();
        let (component, build_s) = build_in(&dir, &name, lang, &py, &jco);
        same.push(Built {
            label: label.into(),
            component,
            build_s,
            input: b"hello, world".to_vec(),
            params: vec![("suffix".into(), "!".into())],
        });
    }
    measure(&same);

    println!("\n## The example tools at work\n");
    let mut examples = vec![Built {
        label: "text-stats (Rust)".into(),
        component: errand_example_tools::TEXT_STATS.to_vec(),
        build_s: f64::NAN,
        input: Vec::new(),
        params: Vec::new(),
    }];
    for (name, label, lang) in [
        ("csv-summary", "csv-summary (Python)", Lang::Python),
        ("json-check", "json-check (JavaScript)", Lang::Js),
    ] {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["capability.toml", lang.entry()] {
            std::fs::copy(
                repo().join("examples/tools").join(name).join(f),
                dir.join(f),
            )
            .unwrap();
        }
        let (component, build_s) = build_in(&dir, name, lang, &py, &jco);
        examples.push(Built {
            label: label.into(),
            component,
            build_s,
            input: Vec::new(),
            params: Vec::new(),
        });
    }
    // Each on its manifest's first example.
    for (b, manifest) in examples.iter_mut().zip([
        errand_example_tools::get("text-stats")
            .unwrap()
            .manifest
            .to_owned(),
        std::fs::read_to_string(repo().join("examples/tools/csv-summary/capability.toml")).unwrap(),
        std::fs::read_to_string(repo().join("examples/tools/json-check/capability.toml")).unwrap(),
    ]) {
        let m: errand_core::manifest::Manifest = toml::from_str(&manifest).unwrap();
        let ex = &m.examples[0];
        b.input = ex.bytes().unwrap();
        b.params = ex.params.clone().into_iter().collect();
    }
    measure(&examples);
}
