//! The engine, the compile cache and the run loop.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use errand_core::bounded::BString;
use errand_core::receipt::{Outcome, Platform, RunLimits};
use errand_core::{Digest, UnixMillis};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    Component, ComponentExportIndex, HasSelf, InstancePre, Linker, ResourceType,
};
use wasmtime::{
    CallHook, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};

use crate::bindings::{Sandbox, SandboxPre};
use crate::run::{
    Abort, Execution, Invocation, Limiter, Limits, RunError, WorldKind, classify, host_failure,
};
use crate::sandbox::{GuestState, NS_PER_FUEL, SandboxLimits};

/// The wasmtime version this crate is pinned to (see the workspace manifest).
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Stack a run's fiber has beyond twice [`HostConfig::max_wasm_stack`]
/// (see `engine_config`), for the host functions and wasmtime's own frames
/// (wasmtime's default leaves 1.5 MiB beside its 512 KiB guest stack).
const HOST_STACK_HEADROOM: usize = 3 << 19;

/// Largest component accepted: 64 MiB.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// Most core instances one component may create, checked when it is
/// compiled. Interpreted tools link their runtime from many core modules:
/// a componentize-py tool instantiates 38 (libc, libpython, the WASI adapter
/// and its stubs…), so the bound leaves room for them and matches the
/// per-run [`Limits::instances`] default. It costs nothing up front: the
/// pooling allocator reserves memories and tables, not core instances,
/// whose few bytes of context are allocated as they are created.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;

/// Interfaces the sandbox implements, without versions. Imports of these
/// are served by [`crate::sandbox`]; other `wasi:` imports are denied at
/// call time; anything else is refused at load time.
const IMPLEMENTED: &[&str] = &[
    "errand:capability/host",
    "errand:capability/types",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// How a run treats the bits of NaN values. Part of the engine
/// fingerprint, so a receipt records which one its run had and a replay
/// uses the same.
///
/// WebAssembly leaves the sign and payload of a NaN that an arithmetic
/// operation produces to the CPU. With canonicalisation, every such NaN
/// whose bits can be observed is replaced by the one canonical NaN, so a
/// tool computes the same bits on every architecture. A tool whose
/// author-signed manifest declares `observes_nan_bits = false` may run
/// without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum NanMode {
    /// NaN results are canonicalised by the engine after every float
    /// operation (a check each time: up to 2.6x on a tight f64 loop). What
    /// [`NanMode::Selective`] falls back to for a component it cannot
    /// rewrite, and the mode of receipts made before it existed.
    Canonical,
    /// NaN results keep the bits the CPU gives them. Exact replay still
    /// holds on the same architecture; across architectures only for a
    /// tool that indeed never observes NaN bits.
    Native,
    /// The default: the component is rewritten to canonicalise exactly the
    /// NaN results whose bits can be observed (see [`crate::nan`]), and
    /// compiled without the engine's canonicalisation. Outputs are those of
    /// [`NanMode::Canonical`] on every architecture; what the inserted
    /// checks cost differs (fuel, and stack frames). A component the
    /// rewrite refuses (vector float arithmetic, say) runs as
    /// [`NanMode::Canonical`] instead ([`Prepared::nan_mode`] says which).
    #[default]
    Selective,
}

impl NanMode {
    /// The mode a tool runs in: [`NanMode::Native`] only when its manifest
    /// declares it never observes NaN bits, [`NanMode::Selective`]
    /// otherwise.
    pub fn for_manifest(manifest: &errand_core::manifest::Manifest) -> NanMode {
        if manifest.observes_nan_bits() {
            NanMode::Selective
        } else {
            NanMode::Native
        }
    }

    fn index(self) -> usize {
        match self {
            NanMode::Canonical => 0,
            NanMode::Native => 1,
            NanMode::Selective => 2,
        }
    }

    /// Which engine runs it: [`NanMode::Native`] and
    /// [`NanMode::Selective`] share the one without the engine's
    /// canonicalisation (what they compile differs, not how).
    fn engine(self) -> usize {
        match self {
            NanMode::Canonical => 0,
            NanMode::Native | NanMode::Selective => 1,
        }
    }

    const ALL: [NanMode; 3] = [NanMode::Canonical, NanMode::Native, NanMode::Selective];
}

/// How to build a [`Host`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Where compiled components are kept across restarts; `None` keeps them
    /// in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Most runs at once; sizes the pooling allocator.
    pub max_concurrent: u32,
    /// Largest linear memory any run may get; per-run [`Limits`] may only
    /// lower it.
    pub max_memory_bytes: usize,
    /// Compiled components kept in memory.
    pub memory_cache_entries: usize,
    /// Fuel between two checks of the wall-clock deadline. A run yields to
    /// the host each time it has used this much; the host then checks the
    /// clock (see [`Limits::deadline`]). The clock is also checked each time
    /// the guest enters the host: a host function, or wasmtime's own calls
    /// out of compiled code (string copies between component instances,
    /// memory growth). Smaller checks sooner and costs more; it never
    /// changes what a run computes or the fuel it uses. A run whose fuel is
    /// at most this never yields: fuel and its host calls bound it.
    pub deadline_check_fuel: u64,
    /// Maximum WebAssembly stack. Part of the engine fingerprint, because it
    /// decides where deep recursion traps.
    pub max_wasm_stack: usize,
}

impl Default for HostConfig {
    fn default() -> HostConfig {
        HostConfig {
            cache_dir: None,
            max_concurrent: 16,
            max_memory_bytes: Limits::default().memory_bytes,
            memory_cache_entries: 64,
            // About 0.1 ms of typical compute, and a yield costs well
            // under a microsecond. What a unit of fuel can cost is bounded
            // by what fuel does not price: a page fault per few units
            // makes a slice tens of milliseconds.
            deadline_check_fuel: 100_000,
            max_wasm_stack: 512 << 10,
        }
    }
}

/// Why a host could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A [`HostConfig`] field is out of range; the message names it.
    #[error("invalid host configuration: {0}")]
    Config(String),
    /// wasmtime refused the configuration.
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The cache directory cannot be created.
    #[error("cannot use cache directory {path}: {source}")]
    CacheDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The engine for the component's [`NanMode`] cannot be built.
    #[error("cannot configure the WebAssembly engine ({mode:?} NaN mode): {reason}")]
    Engine {
        /// The mode asked for.
        mode: NanMode,
        /// What wasmtime said.
        reason: String,
    },
    /// Larger than [`MAX_COMPONENT_BYTES`].
    #[error("component is {len} bytes, over the limit of {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A core WebAssembly module rather than a component.
    #[error(
        "this is a core WebAssembly module, not a component: build for the wasm32-wasip2 target \
         (cargo build --target wasm32-wasip2) or wrap it with `wasm-tools component new`"
    )]
    CoreModule,
    /// Not WebAssembly at all.
    #[error("not a WebAssembly component (bad magic number)")]
    NotWasm,
    /// WebAssembly that does not validate or compile.
    #[error("invalid component: {0}")]
    Invalid(String),
    /// Exports neither accepted world.
    #[error(
        "component implements neither accepted world: it lacks the export `errand:capability/tool@0.1.x` \
         (an errand tool, see the errand-guest crate) and the export `wasi:cli/run@0.2.x` (a WASI command); \
         it exports: {exports}"
    )]
    NotATool {
        /// What it does export.
        exports: String,
    },
    /// Exports the world but with the wrong types.
    #[error("component exports {export} with the wrong signature: {reason}")]
    BadExport {
        /// The export.
        export: String,
        /// What wasmtime said.
        reason: String,
    },
    /// Imports something the sandbox does not provide.
    #[error(
        "component imports `{0}`, which errand does not provide (tools may import errand:capability/host and WASI)"
    )]
    UnsupportedImport(String),
    /// [`NanMode::Selective`] could not rewrite it; [`Host::prepare_with`]
    /// then compiles it for [`NanMode::Canonical`] instead.
    #[error("cannot canonicalise NaNs where observable: {0}")]
    NotRewritten(crate::nan::NanRewriteError),
    /// Imports a provided interface at an incompatible version.
    #[error("cannot link component: {0}")]
    Link(String),
}

/// What a component is, as found by [`Host::inspect`].
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    /// SHA-256 of the component.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: usize,
    /// Which world it implements.
    pub world: WorldKind,
    /// Everything it imports.
    pub imports: Vec<String>,
    /// The imports that will be denied if called.
    pub denied: Vec<String>,
    /// Everything it exports.
    pub exports: Vec<String>,
}

/// A component compiled, linked and ready to instantiate.
pub struct Prepared {
    info: ComponentInfo,
    nan: NanMode,
    engine: Engine,
    fingerprint: Digest,
    pre: InstancePre<GuestState>,
    sandbox: Option<SandboxPre<GuestState>>,
    run_export: Option<ComponentExportIndex>,
    last_used: AtomicU64,
}

impl Prepared {
    /// What the component is.
    pub fn info(&self) -> &ComponentInfo {
        &self.info
    }

    /// SHA-256 of the component.
    pub fn digest(&self) -> Digest {
        self.info.digest
    }

    /// How its runs treat NaN bits.
    pub fn nan_mode(&self) -> NanMode {
        self.nan
    }

    /// The fingerprint of the engine it was compiled for, which receipts
    /// of its runs carry.
    pub fn fingerprint(&self) -> Digest {
        self.fingerprint
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("info", &self.info)
            .field("nan", &self.nan)
            .finish()
    }
}

/// One engine and its linker: one per engine configuration (see
/// [`NanMode::engine`]).
struct Flavour {
    engine: Engine,
    linker: Linker<GuestState>,
}

struct Inner {
    /// Per [`NanMode::engine`]; the default mode's is built with the host,
    /// the canonical one on first use.
    flavours: [OnceLock<Result<Flavour, String>>; 2],
    /// Per [`NanMode::index`].
    fingerprints: [Digest; 3],
    config: HostConfig,
    cache: Mutex<HashMap<(Digest, NanMode), Arc<Prepared>>>,
    clock: AtomicU64,
}

/// The execution host: compiles components once per digest and runs them
/// deterministically under limits. Cheap to clone; clones share the engine
/// and caches.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("fingerprints", &self.inner.fingerprints)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// The engine settings that decide what a run computes, as text. Their
/// digest is the engine fingerprint in receipts.
///
/// `errand-sandbox/v2`: runs are async calls on a fiber, where wasm that
/// the host calls back into (a guest's `cabi_realloc` while a host call's
/// results are lowered) gets a fresh `max-wasm-stack` rather than what was
/// left of the caller's, so where such a call overflows differs from v1;
/// and each log field counts 48 bytes toward `max_log_bytes`, checked
/// before the call is traced (an over-limit `log` is no trace event).
fn settings(config: &HostConfig, nan: NanMode) -> String {
    settings_on(config, nan, std::env::consts::ARCH)
}

/// The architectures wasmtime compiles for, whose fingerprints a replay
/// recognises (see [`Host::nan_mode_on_any_arch`]).
const ARCHES: [&str; 4] = ["x86_64", "aarch64", "riscv64", "s390x"];

/// [`settings`] on `arch`.
fn settings_on(config: &HostConfig, nan: NanMode, arch: &str) -> String {
    format!(
        "errand-engine/v1;wasmtime={WASMTIME_VERSION};arch={};nan-canonicalization={};\
         relaxed-simd-deterministic=1;threads=0;shared-memory=0;fuel=1;\
         max-wasm-stack={};ns-per-fuel={NS_PER_FUEL};sandbox=errand-sandbox/v2",
        arch,
        match nan {
            NanMode::Canonical => "1",
            NanMode::Native => "0",
            // The rewrite decides what a run computes (its fuel): a change
            // to `crate::nan` that moves a single check needs a new version.
            NanMode::Selective => "observable/v1",
        },
        config.max_wasm_stack,
    )
}

/// Writes a file of the disk cache whole or not at all (a temporary file,
/// then a rename), so a concurrent reader never sees half of it. Failure
/// only costs a later compile: it is logged, not returned.
fn write_cache_file(path: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    // Unique to this write, in this process and among processes: two
    // threads preparing one component never share a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::warn!(path = %path.display(), error = %e, "cannot write to the compiled-component cache");
    }
}

fn engine_config(config: &HostConfig, nan: NanMode) -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true)
        .consume_fuel(true)
        // No epoch interruption: it would add a second check at every loop
        // header beside fuel's. The deadline is checked at fuel yields and
        // host calls instead (see `Host::execute`).
        .cranelift_nan_canonicalization(nan == NanMode::Canonical)
        // Stated, not defaulted: with custom page sizes, wasmtime refuses
        // some growth before asking the limiter, which `Limiter`'s
        // host-failure test assumes it never does.
        .wasm_custom_page_sizes(false)
        .wasm_relaxed_simd(true)
        .relaxed_simd_deterministic(true)
        // Threads are not compiled into this wasmtime build at all (no
        // `threads` feature), so there is no shared state to race on.
        .shared_memory(false)
        .max_wasm_stack(config.max_wasm_stack)
        // Runs are async calls on a fiber of this size. On a fiber, wasm
        // the host calls back into (the guest's `cabi_realloc` while a host
        // call's results are lowered) gets a fresh `max_wasm_stack` from
        // where it is: room for two, plus the host's own frames.
        .async_stack_size(
            config
                .max_wasm_stack
                .saturating_mul(2)
                .saturating_add(HOST_STACK_HEADROOM),
        )
        .parallel_compilation(true);
    let n = config.max_concurrent.max(1);
    let mut pool = PoolingAllocationConfig::new();
    // Core instances are a count, not a reservation (see
    // MAX_CORE_INSTANCES_PER_COMPONENT): allow every slot a large component.
    pool.total_component_instances(n)
        .total_core_instances(n * MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_stacks(n)
        .total_memories(n * 2)
        .total_tables(n * 8)
        .max_memories_per_component(4)
        .max_tables_per_component(8)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        .table_elements(100_000)
        .max_memory_size(config.max_memory_bytes);
    c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    c
}

fn unix_now() -> UnixMillis {
    UnixMillis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

fn base_name(import: &str) -> &str {
    import.split('@').next().unwrap_or(import)
}

impl Host {
    /// A host with default settings and no disk cache.
    pub fn new() -> Result<Host, HostError> {
        Host::with_config(HostConfig::default())
    }

    /// A host with `config`.
    pub fn with_config(config: HostConfig) -> Result<Host, HostError> {
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir).map_err(|source| HostError::CacheDir {
                path: dir.clone(),
                source,
            })?;
        }
        if config.deadline_check_fuel == 0 {
            return Err(HostError::Config(
                "deadline_check_fuel must be at least 1".into(),
            ));
        }
        let default = Flavour::new(&config, NanMode::default()).map_err(HostError::Engine)?;
        let flavours = [OnceLock::new(), OnceLock::new()];
        let _ = flavours[NanMode::default().engine()].set(Ok(default));
        let fingerprints = NanMode::ALL.map(|m| Digest::of(settings(&config, m).as_bytes()));
        Ok(Host {
            inner: Arc::new(Inner {
                flavours,
                fingerprints,
                config,
                cache: Mutex::new(HashMap::new()),
                clock: AtomicU64::new(0),
            }),
        })
    }

    /// The platform claim receipts of runs in the default mode
    /// ([`NanMode::Selective`]) carry.
    pub fn platform(&self) -> Platform {
        self.platform_for(NanMode::default())
    }

    /// The platform claim receipts of runs in `nan` mode carry.
    pub fn platform_for(&self, nan: NanMode) -> Platform {
        Platform {
            errand: BString::truncate_from(errand_core::ERRAND_VERSION),
            wasmtime: BString::truncate_from(WASMTIME_VERSION),
            engine: self.inner.fingerprints[nan.index()],
        }
    }

    /// Which of this host's engines has fingerprint `engine`, if any: how a
    /// replay finds the settings a receipt's run had.
    pub fn nan_mode_of(&self, engine: &Digest) -> Option<NanMode> {
        NanMode::ALL
            .into_iter()
            .find(|m| self.inner.fingerprints[m.index()] == *engine)
    }

    /// The NaN mode of engine `engine` if it is this host's settings on
    /// any architecture wasmtime compiles for: how a replay of a receipt
    /// from another architecture knows which mode the run had.
    pub fn nan_mode_on_any_arch(&self, engine: &Digest) -> Option<NanMode> {
        self.nan_mode_of(engine).or_else(|| {
            ARCHES.iter().find_map(|arch| {
                NanMode::ALL.into_iter().find(|m| {
                    Digest::of(settings_on(&self.inner.config, *m, arch).as_bytes()) == *engine
                })
            })
        })
    }

    /// The engine settings behind the default mode's fingerprint, for
    /// people.
    pub fn settings(&self) -> String {
        self.settings_for(NanMode::default())
    }

    /// The engine settings behind the fingerprint of `nan` mode.
    pub fn settings_for(&self, nan: NanMode) -> String {
        settings(&self.inner.config, nan)
    }

    /// The engine for `nan` mode, built on first use.
    fn flavour(&self, nan: NanMode) -> Result<&Flavour, LoadError> {
        self.inner.flavours[nan.engine()]
            .get_or_init(|| Flavour::new(&self.inner.config, nan))
            .as_ref()
            .map_err(|reason| LoadError::Engine {
                mode: nan,
                reason: reason.clone(),
            })
    }

    /// The configuration.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    fn cache_path(&self, digest: &Digest, nan: NanMode) -> Option<PathBuf> {
        let dir = self.inner.config.cache_dir.as_ref()?;
        Some(dir.join(format!(
            "{digest}-{}.cwasm",
            self.inner.fingerprints[nan.index()].short()
        )))
    }

    /// The disk cache's note that `digest` could not be rewritten for
    /// [`NanMode::Selective`] (it holds why, for people; deleting it only
    /// costs the analysis again). Named after what decides that: the
    /// rewrite's engine settings and [`crate::nan::verdicts`].
    fn fallback_path(&self, digest: &Digest) -> Option<PathBuf> {
        let dir = self.inner.config.cache_dir.as_ref()?;
        let verdict = format!(
            "{};{}",
            self.inner.fingerprints[NanMode::Selective.index()],
            crate::nan::verdicts()
        );
        Some(dir.join(format!(
            "{digest}-{}.fallback",
            Digest::of(verdict.as_bytes()).short()
        )))
    }

    /// Whether the disk cache notes that `digest`'s rewrite fell back.
    fn fell_back(&self, digest: &Digest) -> bool {
        let noted = self.fallback_path(digest).filter(|p| p.is_file());
        if let Some(path) = &noted {
            tracing::debug!(%digest, note = %path.display(), "the rewrite fell back before: running with the engine's NaN canonicalisation");
        }
        noted.is_some()
    }

    /// A component already compiled for runs in the default mode, from
    /// memory or the disk cache. One loaded from disk reports a size of 0
    /// (the cache keeps no bytes).
    pub fn cached(&self, digest: &Digest) -> Option<Arc<Prepared>> {
        self.cached_with(digest, NanMode::default())
    }

    /// A component already compiled for `nan` mode, from memory or the disk
    /// cache; never compiled here. For [`NanMode::Selective`], a component
    /// whose rewrite fell back is the one compiled for
    /// [`NanMode::Canonical`]: [`Prepared::nan_mode`] and
    /// [`Prepared::fingerprint`] say which ran.
    pub fn cached_with(&self, digest: &Digest, nan: NanMode) -> Option<Arc<Prepared>> {
        self.cached_sized(digest, 0, nan)
    }

    /// [`Host::cached_with`], for a component of `size` bytes.
    fn cached_sized(&self, digest: &Digest, size: usize, nan: NanMode) -> Option<Arc<Prepared>> {
        if let Some(p) = self.lock_cache().get(&(*digest, nan)) {
            p.last_used.store(self.tick(), Ordering::Relaxed);
            return Some(p.clone());
        }
        let loaded = self
            .cache_path(digest, nan)
            .and_then(|path| self.load_cached(&path, nan));
        match loaded {
            Some(component) => {
                let prepared = self.link(*digest, component, size, nan).ok()?;
                Some(self.remember(prepared))
            }
            // A rewrite that fell back before, in this process or another:
            // the engine's canonicalisation, without trying it again.
            None if nan == NanMode::Selective && self.fell_back(digest) => {
                let p = self.cached_sized(digest, size, NanMode::Canonical)?;
                Some(self.remember_as((*digest, nan), p))
            }
            None => None,
        }
    }

    fn tick(&self) -> u64 {
        self.inner.clock.fetch_add(1, Ordering::Relaxed)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<(Digest, NanMode), Arc<Prepared>>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation is a single insert or remove), so recover.
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn remember(&self, prepared: Prepared) -> Arc<Prepared> {
        prepared.last_used.store(self.tick(), Ordering::Relaxed);
        let prepared = Arc::new(prepared);
        let key = (prepared.info.digest, prepared.nan);
        self.remember_as(key, prepared)
    }

    /// Keeps `prepared` in memory under `key`, evicting the least recently
    /// used entries beyond [`HostConfig::memory_cache_entries`].
    fn remember_as(&self, key: (Digest, NanMode), prepared: Arc<Prepared>) -> Arc<Prepared> {
        let mut cache = self.lock_cache();
        while cache.len() >= self.inner.config.memory_cache_entries.max(1) {
            let oldest = cache
                .iter()
                .min_by_key(|(_, p)| p.last_used.load(Ordering::Relaxed))
                .map(|(d, _)| *d);
            match oldest {
                Some(d) => cache.remove(&d),
                None => break,
            };
        }
        cache.insert(key, prepared.clone());
        prepared
    }

    /// Reads a serialized component from the disk cache. The file starts
    /// with the SHA-256 of the rest; a mismatch (a torn write, a corrupted
    /// disk) discards the file and the component is compiled again.
    fn load_cached(&self, path: &Path, nan: NanMode) -> Option<Component> {
        let engine = &self.flavour(nan).ok()?.engine;
        let bytes = std::fs::read(path).ok()?;
        if bytes.len() < 32 || Digest::of(&bytes[32..]).0 != bytes[..32] {
            tracing::warn!(path = %path.display(), "discarding corrupt compiled-component cache entry");
            let _ = std::fs::remove_file(path);
            return None;
        }
        // SAFETY: `deserialize` trusts its input to be a component this
        // engine serialized. The file lives in our own cache directory, is
        // named after this engine's fingerprint, and its integrity digest
        // has just been checked over exactly these bytes, which we hold in
        // memory (no window for the file to change underneath us).
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, &bytes[32..]) };
        match component {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding incompatible cache entry");
                let _ = std::fs::remove_file(path);
                None
            }
        }
    }

    fn store_cached(&self, digest: &Digest, component: &Component, nan: NanMode) {
        let Some(path) = self.cache_path(digest, nan) else {
            return;
        };
        let Ok(serialized) = component.serialize() else {
            return;
        };
        let mut bytes = Digest::of(&serialized).0.to_vec();
        bytes.extend_from_slice(&serialized);
        write_cache_file(&path, &bytes);
    }

    /// Notes in the disk cache that `digest` could not be rewritten, and
    /// why: a later process goes straight to the engine's canonicalisation
    /// instead of repeating an analysis that may take seconds. Only the
    /// analysis's own verdicts, which the next try would repeat.
    fn note_fallback(&self, digest: &Digest, reason: &crate::nan::NanRewriteError) {
        if !reason.is_the_analysis_verdict() {
            return;
        }
        if let Some(path) = self.fallback_path(digest) {
            write_cache_file(&path, format!("{reason}\n").as_bytes());
        }
    }

    /// Compiles (or fetches from cache) and links a component for runs in
    /// the default mode ([`NanMode::Selective`]). Compilation is paid once
    /// per digest: in memory, and across restarts through the disk cache.
    pub fn prepare(&self, component: &[u8]) -> Result<Arc<Prepared>, LoadError> {
        self.prepare_with(component, NanMode::default())
    }

    /// [`Host::prepare`] for runs in `nan` mode: [`NanMode::for_manifest`]
    /// of the tool's author-signed manifest.
    pub fn prepare_with(&self, component: &[u8], nan: NanMode) -> Result<Arc<Prepared>, LoadError> {
        let digest = Digest::of(component);
        if let Some(p) = self.cached_sized(&digest, component.len(), nan) {
            return Ok(p);
        }
        if nan == NanMode::Selective && self.fell_back(&digest) {
            // Its compiled code was evicted from the disk cache, the note
            // of its fallback was not.
            let p = self.prepare_with(component, NanMode::Canonical)?;
            return Ok(self.remember_as((digest, nan), p));
        }
        let compiled = match self.compile(component, nan) {
            Err(LoadError::NotRewritten(reason)) => {
                // Runs under the engine's canonicalisation, which computes
                // the same outputs. Remembered under the mode asked for, in
                // memory and on disk, so the rewrite is not tried again for
                // every run, nor in every process.
                tracing::debug!(%digest, %reason, "running with the engine's NaN canonicalisation");
                let p = self.prepare_with(component, NanMode::Canonical)?;
                self.note_fallback(&digest, &reason);
                return Ok(self.remember_as((digest, nan), p));
            }
            compiled => compiled?,
        };
        self.store_cached(&digest, &compiled, nan);
        let prepared = self.link(digest, compiled, component.len(), nan)?;
        Ok(self.remember(prepared))
    }

    /// Checks a component without keeping it: what world it implements and
    /// what it imports and exports. A component compiled before (in memory
    /// or the disk cache) is not compiled again.
    pub fn inspect(&self, component: &[u8]) -> Result<ComponentInfo, LoadError> {
        // Compiled for runs (the default mode, in memory or on disk) or
        // else compiled here as it is, with no rewrite to inspect it.
        if let Some(p) =
            self.cached_sized(&Digest::of(component), component.len(), NanMode::default())
        {
            return Ok(p.info.clone());
        }
        // The default mode's engine, which exists already; what a component
        // is does not depend on how NaNs are treated.
        let compiled = self.compile(component, NanMode::Native)?;
        Ok(self
            .link(
                Digest::of(component),
                compiled,
                component.len(),
                NanMode::Native,
            )?
            .info)
    }

    fn compile(&self, bytes: &[u8], nan: NanMode) -> Result<Component, LoadError> {
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(LoadError::TooLarge {
                len: bytes.len(),
                max: MAX_COMPONENT_BYTES,
            });
        }
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => return Err(LoadError::CoreModule),
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => return Err(LoadError::NotWasm),
        }
        let engine = &self.flavour(nan)?.engine;
        if nan == NanMode::Selective {
            let rewritten = crate::nan::canonicalise_where_observable(bytes)
                .map_err(LoadError::NotRewritten)?;
            // A rewrite wasmtime refuses (one local too many) falls back
            // too: the original then reports its own errors, if any.
            return Component::new(engine, &rewritten.bytes).map_err(|e| {
                LoadError::NotRewritten(crate::nan::NanRewriteError::Compile(format!("{e:#}")))
            });
        }
        Component::new(engine, bytes).map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }

    fn link(
        &self,
        digest: Digest,
        component: Component,
        size: usize,
        nan: NanMode,
    ) -> Result<Prepared, LoadError> {
        let flavour = self.flavour(nan)?;
        let engine = &flavour.engine;
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
        let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_owned()).collect();
        let world = if let Some(e) = exports
            .iter()
            .find(|e| e.starts_with("errand:capability/tool@0.1."))
        {
            WorldKind::Errand { export: e.clone() }
        } else if let Some(e) = exports.iter().find(|e| e.starts_with("wasi:cli/run@0.2.")) {
            WorldKind::Command { export: e.clone() }
        } else {
            return Err(LoadError::NotATool {
                exports: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                },
            });
        };

        // Every import the sandbox does not implement: refused outright, or
        // (for WASI) linked to stubs that end the run as "denied".
        let mut linker = flavour.linker.clone();
        let mut denied = Vec::new();
        // Resources of implemented interfaces, as this component sees them,
        // paired with the sandbox's types: a denied interface that re-uses
        // one (`wasi:filesystem/types` uses `wasi:io/streams.input-stream`)
        // must link it to the real type.
        let mut shared = Vec::new();
        for (name, item) in ty.imports(engine) {
            if let ComponentItem::ComponentInstance(inst) = &item.ty {
                for (rname, ritem) in inst.exports(engine) {
                    if let (ComponentItem::Resource(abstract_ty), Some(host_ty)) =
                        (&ritem.ty, sandbox_resource(base_name(name), rname))
                    {
                        shared.push((*abstract_ty, host_ty));
                    }
                }
            }
        }
        for (name, item) in ty.imports(engine) {
            if IMPLEMENTED.contains(&base_name(name)) {
                continue;
            }
            if !name.starts_with("wasi:") {
                return Err(LoadError::UnsupportedImport(name.to_owned()));
            }
            denied.push(name.to_owned());
            stub_denied(&mut linker, engine, name, item.ty, &shared)
                .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        }

        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let (sandbox, run_export) = match &world {
            WorldKind::Errand { export } => {
                let s = SandboxPre::new(pre.clone()).map_err(|e| LoadError::BadExport {
                    export: export.clone(),
                    reason: format!("{e:#}"),
                })?;
                (Some(s), None)
            }
            WorldKind::Command { export } => {
                let bad = |reason: String| LoadError::BadExport {
                    export: export.clone(),
                    reason,
                };
                let inst = component
                    .get_export_index(None, export)
                    .ok_or_else(|| bad("missing".into()))?;
                let run = component
                    .get_export_index(Some(&inst), "run")
                    .ok_or_else(|| bad("it has no `run` function".into()))?;
                (None, Some(run))
            }
        };
        Ok(Prepared {
            info: ComponentInfo {
                digest,
                size,
                world,
                imports,
                denied,
                exports,
            },
            nan,
            engine: engine.clone(),
            fingerprint: self.inner.fingerprints[nan.index()],
            pre,
            sandbox,
            run_export,
            last_used: AtomicU64::new(0),
        })
    }

    /// Runs a prepared component (see [`Invocation`] and [`Execution`]) on
    /// the calling thread, which it holds until the run ends: callers in an
    /// async runtime hand it to a blocking thread. (A run does yield every
    /// [`HostConfig::deadline_check_fuel`], but not inside host calls, so a
    /// guest busy in the host would hold an async worker until its deadline.)
    pub fn run(&self, prepared: &Prepared, inv: &Invocation<'_>) -> Result<Execution, RunError> {
        let run = std::pin::pin!(self.execute(prepared, inv));
        block_on(run)
    }

    /// The body of [`Host::run`], as the future [`block_on`] polls.
    async fn execute(
        &self,
        prepared: &Prepared,
        inv: &Invocation<'_>,
    ) -> Result<Execution, RunError> {
        let limits = inv.limits;
        if inv.input.len() > limits.max_input {
            return Err(RunError::InputTooLarge {
                len: inv.input.len(),
                max: limits.max_input,
            });
        }
        let is_command = matches!(prepared.info.world, WorldKind::Command { .. });
        let input_digest = Digest::of(inv.input);
        let state = GuestState::new(
            SandboxLimits {
                max_stdout: if is_command {
                    limits.max_output
                } else {
                    limits.max_stdio
                },
                max_stderr: limits.max_stdio,
                max_trace_events: limits.max_trace_events,
                max_log_bytes: limits.max_log_bytes,
                stdout_is_output: is_command,
            },
            Limiter::new(&Limits {
                memory_bytes: limits.memory_bytes.min(self.inner.config.max_memory_bytes),
                ..limits
            }),
            if is_command {
                inv.input.to_vec()
            } else {
                Vec::new()
            },
            inv.context.time,
            inv.seed.0,
            limits.fuel,
            inv.keep_trace,
        );
        let mut store = Store::new(&prepared.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(limits.fuel)
            .map_err(|e| RunError::Host(format!("{e:#}")))?;
        store
            .fuel_async_yield_interval(Some(self.inner.config.deadline_check_fuel))
            .map_err(|e| RunError::Host(format!("{e:#}")))?;
        // The wall clock is checked at each yield (a yield enters the host
        // too, and is checked again below) and each time the
        // guest enters the host: a host function, or one of wasmtime's own
        // calls out of compiled code (string transcoding between component
        // instances, memory growth), where a few units of fuel can buy much
        // work. Not on the way back: a host function's own error (a limit,
        // a host failure) must reach the run's outcome as it is.
        let deadline = Instant::now().checked_add(limits.deadline);
        store.call_hook(move |mut ctx, hook| {
            if let CallHook::CallingHost = hook {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(wasmtime::Trap::Interrupt.into());
                }
                let remaining = ctx.get_fuel()?;
                let s = ctx.data_mut();
                s.fuel_at_call = s.fuel_limit.saturating_sub(remaining);
            }
            Ok(())
        });

        let entry = match (&prepared.sandbox, prepared.run_export) {
            (Some(pre), _) => Entry::Sandbox(pre),
            (None, Some(run)) => Entry::Run(run),
            (None, None) => {
                return Err(RunError::Host(
                    "prepared component has no entry point".into(),
                ));
            }
        };
        let started_at = unix_now();
        let t0 = Instant::now();
        let call = async {
            match entry {
                Entry::Sandbox(pre) => {
                    let ctx = crate::bindings::errand::capability::types::RequestContext {
                        request_id: inv.request_id.0.to_vec(),
                        time_ms: inv.context.time.0,
                        params: inv
                            .context
                            .params
                            .iter()
                            .map(|p| crate::bindings::errand::capability::types::Param {
                                key: p.key.to_string(),
                                value: p.value.to_string(),
                            })
                            .collect(),
                    };
                    match pre.instantiate_async(&mut store).await {
                        Err(e) => Err(e),
                        Ok(sandbox) => sandbox
                            .errand_capability_tool()
                            .call_invoke(&mut store, inv.input, &ctx)
                            .await
                            .map(|r| {
                                use crate::bindings::errand::capability::types::ToolError;
                                r.map_err(|e| match e {
                                    ToolError::InvalidInput(m) => Outcome::InvalidInput {
                                        message: BString::truncate_from(&m),
                                    },
                                    ToolError::Failed(m) => Outcome::Failed {
                                        message: BString::truncate_from(&m),
                                    },
                                })
                            }),
                    }
                }
                Entry::Run(run) => match prepared.pre.instantiate_async(&mut store).await {
                    Err(e) => Err(e),
                    Ok(instance) => {
                        match instance.get_typed_func::<(), (Result<(), ()>,)>(&mut store, run) {
                            Err(e) => Err(e),
                            Ok(f) => f.call_async(&mut store, ()).await.map(|(r,)| match r {
                                Ok(()) => Ok(Vec::new()),
                                Err(()) => Err(Outcome::Failed {
                                    message: BString::truncate_from("exited with status 1"),
                                }),
                            }),
                        }
                    }
                },
            }
        };
        // The run yields every `deadline_check_fuel`: the deadline is
        // checked then. Past it, the run is dropped at the end of this
        // block, which unwinds the guest off its fiber and leaves the store
        // safe to read and drop.
        let result: Result<Result<Vec<u8>, Outcome>, wasmtime::Error> = {
            let mut call = std::pin::pin!(call);
            std::future::poll_fn(|cx| match call.as_mut().poll(cx) {
                std::task::Poll::Ready(out) => std::task::Poll::Ready(out),
                std::task::Poll::Pending if deadline.is_some_and(|d| Instant::now() >= d) => {
                    std::task::Poll::Ready(Err(wasmtime::Trap::Interrupt.into()))
                }
                std::task::Poll::Pending => std::task::Poll::Pending,
            })
            .await
        };
        let elapsed = t0.elapsed();
        let finished_at = unix_now();

        if let Err(e) = &result {
            if e.is::<wasmtime::PoolConcurrencyLimitError>() {
                return Err(RunError::Busy(e.to_string()));
            }
            // Never signed: another host would not see it, so a receipt
            // saying so could not be replayed.
            if let Some(m) = host_failure(e) {
                tracing::error!(error = %m, "this host failed under a run; nothing signed");
                return Err(RunError::HostFailure(m));
            }
        }
        let fuel_consumed = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.into_data();
        let (outcome, mut output) = match result {
            Ok(Ok(out)) => (Outcome::Ok, out),
            Ok(Err(outcome)) => (outcome, Vec::new()),
            Err(e) => (classify(&e, &state.stderr), Vec::new()),
        };
        let (mut stdout, stderr) = (state.stdout, state.stderr);
        let outcome = match outcome {
            Outcome::Ok if is_command => {
                output = std::mem::take(&mut stdout);
                Outcome::Ok
            }
            Outcome::Ok if output.len() > limits.max_output => {
                output.clear();
                classify(&Abort::OutputTooLarge(limits.max_output).into(), &[])
            }
            other => other,
        };
        if !outcome.is_ok() {
            output.clear();
        }
        Ok(Execution {
            engine: prepared.fingerprint,
            output_digest: Digest::of(&output),
            outcome,
            output,
            input_digest,
            fuel_limit: limits.fuel,
            fuel_consumed,
            trace_root: state.chain.root(),
            trace_events: state.chain.count(),
            trace: state.events,
            stdout,
            stderr,
            logs: state.logs,
            started_at,
            finished_at,
            elapsed,
        })
    }
}

/// Where a run enters its component.
enum Entry<'a> {
    /// An Errand tool: the sandbox world's `invoke`.
    Sandbox(&'a SandboxPre<GuestState>),
    /// A WASI command: its `run`.
    Run(ComponentExportIndex),
}

/// Polls `run` to completion on this thread. Nothing but a fuel yield
/// makes a run pending (host functions are synchronous, and a yield wakes
/// its waker before returning), so the waker is never needed.
fn block_on<F: Future>(mut run: std::pin::Pin<&mut F>) -> F::Output {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = run.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

impl Limits {
    /// The part of the limits a receipt records (all but the input size
    /// and the deadline).
    pub fn run_limits(&self) -> RunLimits {
        RunLimits {
            memory_bytes: self.memory_bytes as u64,
            table_elements: self.table_elements as u64,
            instances: self.instances as u32,
            tables: self.tables as u32,
            memories: self.memories as u32,
            max_output: self.max_output as u64,
            max_trace_events: self.max_trace_events,
            max_stdio: self.max_stdio as u64,
            max_log_bytes: self.max_log_bytes as u64,
        }
    }

    /// Limits that reproduce a receipt's run: its fuel and recorded limits,
    /// with `base`'s input size and deadline.
    pub fn for_replay(fuel: u64, r: &RunLimits, base: &Limits) -> Limits {
        let to = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Limits {
            fuel,
            memory_bytes: to(r.memory_bytes),
            table_elements: to(r.table_elements),
            instances: r.instances as usize,
            tables: r.tables as usize,
            memories: r.memories as usize,
            max_output: to(r.max_output),
            max_trace_events: r.max_trace_events,
            max_stdio: to(r.max_stdio),
            max_log_bytes: to(r.max_log_bytes),
            ..*base
        }
    }
}

/// Resource type of every resource in a denied interface.
struct DeniedResource;

/// The sandbox's own type for a resource of an implemented interface.
fn sandbox_resource(interface: &str, name: &str) -> Option<ResourceType> {
    use crate::sandbox::{InputStream, IoError, OutputStream, Pollable, Terminal};
    Some(match (interface, name) {
        ("wasi:io/streams", "input-stream") => ResourceType::host::<InputStream>(),
        ("wasi:io/streams", "output-stream") => ResourceType::host::<OutputStream>(),
        ("wasi:io/poll", "pollable") => ResourceType::host::<Pollable>(),
        ("wasi:io/error", "error") => ResourceType::host::<IoError>(),
        ("wasi:cli/terminal-input", "terminal-input")
        | ("wasi:cli/terminal-output", "terminal-output") => ResourceType::host::<Terminal>(),
        _ => return None,
    })
}

/// Links every function of an ungranted import to a stub that ends the run
/// with [`Abort::Denied`] naming the call.
fn stub_denied(
    linker: &mut Linker<GuestState>,
    engine: &Engine,
    name: &str,
    item: ComponentItem,
    shared: &[(ResourceType, ResourceType)],
) -> wasmtime::Result<()> {
    let resource_for = |abstract_ty: &ResourceType| {
        shared
            .iter()
            .find(|(a, _)| a == abstract_ty)
            .map(|(_, host)| *host)
            .unwrap_or_else(ResourceType::host::<DeniedResource>)
    };
    match item {
        ComponentItem::ComponentInstance(inst) => {
            let mut li = linker.instance(name)?;
            for (fname, fitem) in inst.exports(engine) {
                let call = format!("{name}#{fname}");
                match fitem.ty {
                    ComponentItem::ComponentFunc(_) => {
                        li.func_new(fname, move |_, _, _, _| {
                            Err(Abort::Denied(call.clone()).into())
                        })?;
                    }
                    ComponentItem::Resource(r) => {
                        li.resource(fname, resource_for(&r), |_, _| Ok(()))?;
                    }
                    _ => {}
                }
            }
        }
        ComponentItem::ComponentFunc(_) => {
            let call = name.to_owned();
            linker.root().func_new(name, move |_, _, _, _| {
                Err(Abort::Denied(call.clone()).into())
            })?;
        }
        ComponentItem::Resource(r) => {
            linker
                .root()
                .resource(name, resource_for(&r), |_, _| Ok(()))?;
        }
        _ => {}
    }
    Ok(())
}

impl Flavour {
    /// The engine and linker for `nan` mode.
    fn new(config: &HostConfig, nan: NanMode) -> Result<Flavour, String> {
        let engine = Engine::new(&engine_config(config, nan)).map_err(|e| format!("{e:#}"))?;
        let mut linker = Linker::new(&engine);
        Sandbox::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(|e| format!("{e:#}"))?;
        Ok(Flavour { engine, linker })
    }
}
