//! Execution-plane benchmarks, each side by side in one run:
//!
//! 1. Errand invocation (instantiate, invoke, trace, sign receipt) against
//!    bare wasmtime + wasmtime-wasi instantiate-and-call of the same
//!    component and input, with no fuel, trace or receipt: on a
//!    compute-heavy tool (imagegen) and a trivial one (text-stats).
//! 2. Fuel on against fuel off, on the compute-heavy tool.
//! 3. The first call after a restart with the compiled cache on disk,
//!    against the first compile.
//!
//! `cargo bench -p errand-host --bench execution`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use errand_core::receipt::{InvocationContext, RequestId};
use errand_core::{Digest, SecretKey, UnixMillis};
use errand_host::{Host, HostConfig, Invocation, Limits, ReceiptInfo};
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
    /// Errand's determinism and limit settings: NaN canonicalisation,
    /// deterministic relaxed SIMD, fuel and epoch interruption.
    Errand,
}

impl Bare {
    fn new(component: &[u8], settings: Settings) -> Bare {
        let mut config = Config::new();
        let (fuel, epoch) = match settings {
            Settings::Default | Settings::Nan => (false, false),
            Settings::Fuel => (true, false),
            Settings::Epoch => (false, true),
            Settings::Errand => (true, true),
        };
        config.consume_fuel(fuel).epoch_interruption(epoch);
        if let Settings::Nan | Settings::Errand = settings {
            config.cranelift_nan_canonicalization(true);
        }
        if let Settings::Errand = settings {
            config.relaxed_simd_deterministic(true);
        }
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
    fn new(component: &[u8]) -> Ours {
        let host = Host::new().unwrap();
        let prepared = host.prepare(component).unwrap();
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
    input: Vec<u8>,
    params: &'static [(&'static str, &'static str)],
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
            input: png,
            params: &[("max", "128")],
        },
        Workload {
            name: "markdown: 1 MB document",
            component: errand_example_tools::MARKDOWN,
            input: md.into_bytes(),
            params: &[],
        },
        Workload {
            name: "publish: SHA-256 of 8 MiB",
            component: errand_example_tools::PUBLISH,
            input: vec![7u8; 8 << 20],
            params: &[("title", "x")],
        },
        Workload {
            name: "text-stats: 1 MB text (byte-scanning loop)",
            component: errand_example_tools::TEXT_STATS,
            input: text.into_bytes(),
            params: &[],
        },
        Workload {
            name: "imagegen: 256 px, 1024 iterations (tight f64 loop)",
            component: errand_example_tools::IMAGEGEN,
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
        "| workload | bare p50 | errand p50 | errand / bare | engine settings / bare | errand / engine settings | fuel on / off |"
    );
    println!("|---|---|---|---|---|---|---|");
    for w in workloads() {
        let bare = Bare::new(w.component, Settings::Default);
        let engine = Bare::new(w.component, Settings::Errand);
        let fuel = Bare::new(w.component, Settings::Fuel);
        let ours = Ours::new(w.component);
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
            "| {} | {} | {} | **{:.2}** ({:.2}–{:.2}) | {:.2} | {:.2} | **{:.2}** ({:.2}–{:.2}) |",
            w.name,
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

    println!("\n## One engine setting at a time: the tight f64 loop (imagegen)\n");
    println!("| setting, alone on default wasmtime | ratio to defaults, median (p10–p90) |");
    println!("|---|---|");
    let w = workloads().pop().expect("imagegen is the last workload");
    let run = |e: &Bare| black_box(e.call(&w.input, w.params));
    let bare = Bare::new(w.component, Settings::Default);
    for (label, setting) in [
        ("fuel metering", Settings::Fuel),
        ("epoch interruption", Settings::Epoch),
        ("NaN canonicalisation", Settings::Nan),
    ] {
        let one = Bare::new(w.component, setting);
        let r = rounds(|| run(&bare), || run(&one));
        println!(
            "| {label} | {:.2} ({:.2}–{:.2}) |",
            r.ratio_median, r.ratio_p10, r.ratio_p90
        );
    }

    println!("\n## Trivial tool: text-stats on \"hi\"\n");
    let ours_t = Ours::new(errand_example_tools::TEXT_STATS);
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
    let mut cached = Vec::new();
    for round in 0..5 {
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
    cached.sort_by(f64::total_cmp);
    let (c, d) = (compile[2], cached[2]);
    println!("| step | median of 5 |\n|---|---|");
    println!(
        "| first compile of imagegen ({} KiB) | {:.1} ms |",
        imagegen.len() / 1024,
        c * 1e3
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
