//! Execution-plane benchmarks, each side by side in one run:
//!
//! 1. Errand invocation (instantiate, invoke, trace, sign receipt) against
//!    bare wasmtime + wasmtime-wasi instantiate-and-call of the same
//!    component and input, with no fuel, trace or receipt: on a
//!    compute-heavy tool (imagegen) and a trivial one (text-stats).
//!    Each tool runs in the NaN mode its `capability.toml` declares.
//! 2. Fuel on against fuel off, and each engine setting alone against
//!    wasmtime's defaults, on every compute-heavy tool; fuel with one unit
//!    per branch or call (coarser accounting) against the default table.
//! 3. The first call after a restart with the compiled cache on disk,
//!    against the first compile.
//!
//! `cargo bench -p errand-host --bench execution`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use errand_core::receipt::{InvocationContext, RequestId};
use errand_core::{Digest, SecretKey, UnixMillis};
use errand_host::{Host, HostConfig, Invocation, Limits, NanMode, ReceiptInfo};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod bare {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "errand:capability/capability",
    });
}

use bare::errand::capability::types::{Param as BareParam, RequestContext};

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bare::errand::capability::host::Host for BareState {
    fn log(
        &mut self,
        _: bare::errand::capability::host::Level,
        _: String,
        _: Vec<(String, String)>,
    ) {
    }
}

impl bare::errand::capability::types::Host for BareState {}

/// Bare wasmtime: an engine with default settings, wasmtime-wasi, and the
/// `host` interface as a no-op.
struct Bare {
    engine: Engine,
    pre: bare::CapabilityPre<BareState>,
    fuel: bool,
    epoch: bool,
}

/// Which of Errand's engine settings a bare engine gets.
#[derive(Clone, Copy)]
enum Settings {
    /// wasmtime's defaults.
    Default,
    /// Defaults plus fuel.
    Fuel,
    /// Defaults plus epoch interruption.
    Epoch,
    /// Defaults plus NaN canonicalisation.
    Nan,
    /// Defaults plus fuel charged one unit per branch or call only.
    CoarseFuel,
    /// Errand's determinism and limit settings in a NaN mode: NaN
    /// canonicalisation (in canonical mode), deterministic relaxed SIMD and
    /// fuel. (Errand's deadline check, a yield every
    /// `HostConfig::deadline_check_fuel`, needs async calls; it is counted
    /// in the host's share, with the fiber they run on.)
    Errand(NanMode),
}

/// Fuel charged only where control can go back or away: one unit per
/// branch, `if` or call, nothing for straight-line operators. Blocks that
/// cost nothing get no fuel update at all.
fn coarse_fuel() -> wasmtime::OperatorCost {
    const CHARGED: &[&str] = &[
        "Br",
        "BrIf",
        "BrTable",
        "If",
        "Call",
        "CallIndirect",
        "CallRef",
        "ReturnCall",
        "ReturnCallIndirect",
        "ReturnCallRef",
    ];
    let mut table = serde_json::to_value(wasmtime::OperatorCost::default()).unwrap();
    for (op, cost) in table.as_object_mut().unwrap() {
        if cost.is_u64() {
            *cost = u64::from(CHARGED.contains(&op.as_str())).into();
        }
    }
    serde_json::from_value(table).unwrap()
}

impl Bare {
    fn new(component: &[u8], settings: Settings) -> Bare {
        let mut config = Config::new();
        let (fuel, epoch) = match settings {
            Settings::Default | Settings::Nan => (false, false),
            Settings::Fuel | Settings::CoarseFuel => (true, false),
            Settings::Epoch => (false, true),
            Settings::Errand(_) => (true, false),
        };
        config.consume_fuel(fuel).epoch_interruption(epoch);
        if let Settings::Nan | Settings::Errand(NanMode::Canonical) = settings {
            config.cranelift_nan_canonicalization(true);
        }
        if let Settings::CoarseFuel = settings {
            config.operator_cost(coarse_fuel());
        }
        if let Settings::Errand(_) = settings {
            config.relaxed_simd_deterministic(true);
        }
        // The rewrite of `NanMode::Selective`, as `Host::prepare_with` does it.
        let rewritten;
        let component = match settings {
            Settings::Errand(NanMode::Selective) => {
                rewritten = errand_host::nan::canonicalise_where_observable(component)
                    .unwrap()
                    .bytes;
                &rewritten[..]
            }
            _ => component,
        };
        let engine = Engine::new(&config).unwrap();
        let mut linker: Linker<BareState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
        bare::Capability::add_to_linker::<_, HasSelf<BareState>>(&mut linker, |s| s).unwrap();
        let component = Component::new(&engine, component).unwrap();
        let pre = bare::CapabilityPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        Bare {
            engine,
            pre,
            fuel,
            epoch,
        }
    }

    fn call(&self, input: &[u8], params: &[(&str, &str)]) -> Vec<u8> {
        let mut store = Store::new(
            &self.engine,
            BareState {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        if self.fuel {
            store.set_fuel(u64::MAX / 2).unwrap();
        }
        if self.epoch {
            store.set_epoch_deadline(1 << 40);
        }
        let inst = self.pre.instantiate(&mut store).unwrap();
        let ctx = RequestContext {
            request_id: vec![7; 16],
            time_ms: 1_772_600_000_000,
            params: params
                .iter()
                .map(|(k, v)| BareParam {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
        };
        inst.errand_capability_tool()
            .call_invoke(&mut store, input, &ctx)
            .unwrap()
            .unwrap()
    }
}

struct Ours {
    host: Host,
    prepared: std::sync::Arc<errand_host::Prepared>,
    key: SecretKey,
    component: Digest,
}

impl Ours {
    fn new(component: &[u8], nan: NanMode) -> Ours {
        let host = Host::new().unwrap();
        let prepared = host.prepare_with(component, nan).unwrap();
        Ours {
            host,
            prepared,
            key: SecretKey::from_seed([1; 32]),
            component: Digest::of(component),
        }
    }

    /// Instantiate, invoke, trace and sign the receipt.
    fn call(&self, input: &[u8], params: &[(&str, &str)]) -> Vec<u8> {
        let context = InvocationContext::from_pairs(UnixMillis(1_772_600_000_000), params).unwrap();
        let inv = Invocation {
            input,
            request_id: RequestId([7; 16]),
            seed: errand_core::request::Seed([7; 32]),
            context,
            limits: Limits {
                fuel: u64::MAX / 2,
                ..Limits::default()
            },
            keep_trace: false,
        };
        let exec = self.host.run(&self.prepared, &inv).unwrap();
        assert!(exec.outcome.is_ok(), "{:?}", exec.outcome);
        let receipt = self
            .host
            .sign_receipt(
                &ReceiptInfo {
                    executor: &self.key,
                    requester: self.key.peer_id(),
                    request_id: inv.request_id,
                    request: errand_core::Digest::of(b"bench"),
                    seed: inv.seed,
                    capability: None,
                    component: self.component,
                    context: inv.context.clone(),
                    limits: inv.limits,
                },
                &exec,
            )
            .unwrap();
        black_box(receipt);
        exec.output
    }
}

struct Workload {
    name: &'static str,
    component: &'static [u8],
    /// What its `capability.toml` declares.
    nan: NanMode,
    input: Vec<u8>,
    params: &'static [(&'static str, &'static str)],
}

/// The NaN mode a tool's manifest gives it.
fn declared(manifest: &str) -> NanMode {
    NanMode::for_manifest(&toml::from_str(manifest).unwrap())
}

fn short(nan: NanMode) -> &'static str {
    match nan {
        NanMode::Canonical => "canonical",
        NanMode::Native => "off (declared)",
        NanMode::Selective => "where observable",
    }
}

fn workloads() -> Vec<Workload> {
    let png = imagegen::encode_png(&imagegen::render("big", 768, 16)).unwrap();
    let text =
        "the quick brown fox jumps over the lazy dog, and then some more words follow here.\n"
            .repeat(12_000);
    let md = "# Heading\n\nSome *emphasis* and **strong** text with a [link](http://x.y) and `code`.\n\n\
              - item one\n- item two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        .repeat(6_000);
    vec![
        Workload {
            name: "thumbnail: 768x768 PNG to 128 px",
            component: errand_example_tools::THUMBNAIL,
            nan: declared(include_str!(
                "../../../examples/tools/thumbnail/capability.toml"
            )),
            input: png,
            params: &[("max", "128")],
        },
        Workload {
            name: "markdown: 1 MB document",
            component: errand_example_tools::MARKDOWN,
            nan: declared(include_str!(
                "../../../examples/tools/markdown/capability.toml"
            )),
            input: md.into_bytes(),
            params: &[],
        },
        Workload {
            name: "publish: SHA-256 of 8 MiB",
            component: errand_example_tools::PUBLISH,
            nan: declared(include_str!(
                "../../../examples/tools/publish/capability.toml"
            )),
            input: vec![7u8; 8 << 20],
            params: &[("title", "x")],
        },
        Workload {
            name: "text-stats: 1 MB text (byte-scanning loop)",
            component: errand_example_tools::TEXT_STATS,
            nan: declared(include_str!(
                "../../../examples/tools/text-stats/capability.toml"
            )),
            input: text.into_bytes(),
            params: &[],
        },
        Workload {
            name: "imagegen: 256 px, 1024 iterations (tight f64 loop)",
            component: errand_example_tools::IMAGEGEN,
            nan: declared(include_str!(
                "../../../examples/tools/imagegen/capability.toml"
            )),
            input: b"a lighthouse on a cliff in a storm".to_vec(),
            params: &[("size", "256"), ("iterations", "1024")],
        },
    ]
}

/// Eight interleaved rounds of one call each: `base` against `ours`.
fn rounds<A, B>(mut base: impl FnMut() -> A, mut ours: impl FnMut() -> B) -> benchkit::Paired {
    benchkit::paired(
        8,
        1,
        || {
            base();
        },
        || {
            ours();
        },
    )
}

fn main() {
    println!("## Errand invocation vs bare wasmtime, compute-heavy tools\n");
    println!(
        "Each row: bare wasmtime + wasmtime-wasi with default settings (no fuel, trace or receipt)"
    );
    println!(
        "against Errand's full invocation (instantiate, invoke, trace, sign receipt), and the"
    );
    println!(
        "split of that overhead into engine settings (determinism and limits) and Errand's host.\n"
    );
    println!(
        "| workload | NaN canonicalisation | bare p50 | errand p50 | errand / bare | engine settings / bare | errand / engine settings | fuel on / off |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for w in workloads() {
        let bare = Bare::new(w.component, Settings::Default);
        let engine = Bare::new(w.component, Settings::Errand(w.nan));
        let fuel = Bare::new(w.component, Settings::Fuel);
        let ours = Ours::new(w.component, w.nan);
        assert_eq!(
            ours.call(&w.input, w.params),
            bare.call(&w.input, w.params),
            "both sides must compute the same output"
        );
        let run = |e: &Bare| black_box(e.call(&w.input, w.params));
        let ours_run = || black_box(ours.call(&w.input, w.params));
        let total = rounds(|| run(&bare), ours_run);
        let settings = rounds(|| run(&bare), || run(&engine));
        let host = rounds(|| run(&engine), ours_run);
        let fuel_r = rounds(|| run(&bare), || run(&fuel));
        println!(
            "| {} | {} | {} | {} | **{:.2}** ({:.2}–{:.2}) | {:.2} | {:.2} | **{:.2}** ({:.2}–{:.2}) |",
            w.name,
            short(w.nan),
            benchkit::fmt_ns(total.base_ns),
            benchkit::fmt_ns(total.ours_ns),
            total.ratio_median,
            total.ratio_p10,
            total.ratio_p90,
            settings.ratio_median,
            host.ratio_median,
            fuel_r.ratio_median,
            fuel_r.ratio_p10,
            fuel_r.ratio_p90,
        );
    }

    println!("\n## One engine setting at a time\n");
    println!(
        "Each setting alone on default wasmtime, against the defaults; the last column is all of"
    );
    println!(
        "Errand's settings with NaN canonicalisation, against the same without: by the engine after"
    );
    println!(
        "every float operation, then by the rewrite where a NaN's bits can be observed (with the"
    );
    println!("rewrite's count of float operations, and of those it canonicalises).\n");
    println!(
        "| workload | fuel | coarse fuel (per branch/call) | epoch interruption (not used since issue 14) | NaN canonicalisation | relaxed-SIMD determinism + fuel (no NaN canonicalisation) | adding NaN canonicalisation to all the rest | adding it where observable | float operations canonicalised |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for w in workloads() {
        let run = |e: &Bare| black_box(e.call(&w.input, w.params));
        let bare = Bare::new(w.component, Settings::Default);
        let mut cells = Vec::new();
        for setting in [
            Settings::Fuel,
            Settings::CoarseFuel,
            Settings::Epoch,
            Settings::Nan,
            Settings::Errand(NanMode::Native),
        ] {
            let one = Bare::new(w.component, setting);
            let r = rounds(|| run(&bare), || run(&one));
            cells.push(format!(
                "{:.2} ({:.2}–{:.2})",
                r.ratio_median, r.ratio_p10, r.ratio_p90
            ));
        }
        let native = Bare::new(w.component, Settings::Errand(NanMode::Native));
        let canonical = Bare::new(w.component, Settings::Errand(NanMode::Canonical));
        let selective = Bare::new(w.component, Settings::Errand(NanMode::Selective));
        assert_eq!(
            run(&selective),
            run(&canonical),
            "canonicalising where observable must compute what canonicalising everywhere does"
        );
        for other in [&canonical, &selective] {
            let r = rounds(|| run(&native), || run(other));
            cells.push(format!(
                "{:.2} ({:.2}–{:.2})",
                r.ratio_median, r.ratio_p10, r.ratio_p90
            ));
        }
        let counts = errand_host::nan::canonicalise_where_observable(w.component).unwrap();
        cells.push(format!(
            "{} of {}, + {} at a store or reinterpretation",
            counts.after_arithmetic, counts.arithmetic, counts.at_observation
        ));
        println!("| {} | {} |", w.name, cells.join(" | "));
    }

    println!("\n## Trivial tool: text-stats on \"hi\"\n");
    let ours_t = Ours::new(errand_example_tools::TEXT_STATS, NanMode::default());
    let bare_t = Bare::new(errand_example_tools::TEXT_STATS, Settings::Default);
    let trivial = benchkit::paired(
        40,
        50,
        || {
            black_box(bare_t.call(b"hi", &[]));
        },
        || {
            black_box(ours_t.call(b"hi", &[]));
        },
    );
    let (p50, p10, p90) = benchkit::single(40, 50, || {
        black_box(ours_t.call(b"hi", &[]));
    });
    println!("{}", benchkit::header());
    println!(
        "{}",
        trivial.row("bare wasmtime", "errand invoke + receipt")
    );
    println!(
        "\nerrand p50 {} (p10 {}, p90 {}) per invocation, receipt signed",
        benchkit::fmt_ns(p50),
        benchkit::fmt_ns(p10),
        benchkit::fmt_ns(p90)
    );

    println!("\n## First call after a restart: compiled cache on disk vs first compile\n");
    let imagegen = errand_example_tools::IMAGEGEN;
    let dir = tempfile::tempdir().unwrap();
    let mut compile = Vec::new();
    let mut compile_canonical = Vec::new();
    let mut cached = Vec::new();
    for round in 0..5 {
        // The same compile with the engine's canonicalisation instead of
        // the rewrite: what the rewrite adds to a first compile.
        let h = Host::new().unwrap();
        let t = Instant::now();
        black_box(h.prepare_with(imagegen, NanMode::Canonical).unwrap());
        compile_canonical.push(t.elapsed().as_secs_f64());
        let sub = dir.path().join(format!("r{round}"));
        let cfg = HostConfig {
            cache_dir: Some(sub),
            ..HostConfig::default()
        };
        // First start: empty cache, compiles and writes the artifact.
        let h = Host::with_config(cfg.clone()).unwrap();
        let t = Instant::now();
        let p = h.prepare(imagegen).unwrap();
        compile.push(t.elapsed().as_secs_f64());
        drop((p, h));
        // Restart: a new host finds the artifact on disk.
        let h = Host::with_config(cfg).unwrap();
        let t = Instant::now();
        let p = h.prepare(imagegen).unwrap();
        cached.push(t.elapsed().as_secs_f64());
        black_box(p);
    }
    compile.sort_by(f64::total_cmp);
    compile_canonical.sort_by(f64::total_cmp);
    cached.sort_by(f64::total_cmp);
    let (c, d) = (compile[2], cached[2]);
    println!("| step | median of 5 |\n|---|---|");
    println!(
        "| first compile of imagegen ({} KiB) | {:.1} ms |",
        imagegen.len() / 1024,
        c * 1e3
    );
    println!(
        "| first compile, canonicalised by the engine instead of the rewrite | {:.1} ms |",
        compile_canonical[2] * 1e3
    );
    println!(
        "| first call after restart (disk cache) | {:.1} ms |",
        d * 1e3
    );
    println!(
        "\nrestart speed-up: {:.1}x (cached/compile ratio {:.3})",
        c / d,
        d / c
    );
}
