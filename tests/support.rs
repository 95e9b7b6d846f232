//! Helpers: running the binary, and real node processes.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use errand::config::PeerAddr;
use errand_core::{PeerId, SecretKey};

pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally, not by a signal")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The `errand` binary: this build's, or the one `ERRAND_BIN` names (the
/// soak runs a copy, or a release build, while the tree is rebuilt).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("ERRAND_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_errand").to_owned())
    })
}

/// A folder with a key, for running commands as one user.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let s = Sandbox {
            dir: tempfile::tempdir().unwrap(),
        };
        let key = SecretKey::from_seed(rand_seed());
        errand::keystore::save(&key, &s.path("key"), false).unwrap();
        s
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes an example tool's manifest and component into a folder named
    /// after it, and returns their paths.
    pub fn tool_dir(&self, name: &str) -> (PathBuf, PathBuf) {
        let t = errand_example_tools::get(name).unwrap();
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("capability.toml");
        std::fs::write(&manifest, t.manifest).unwrap();
        let component = dir.join(format!("{}.wasm", name.replace('-', "_")));
        std::fs::write(&component, t.component).unwrap();
        (manifest, component)
    }

    /// Runs errand with this sandbox's key and compile cache: every call is
    /// a fresh process, so a second call is "after a restart".
    pub fn errand(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run errand")
    }

    /// The command [`Sandbox::errand`] runs, to adjust or to start
    /// several at once.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .current_dir(self.dir.path())
            .env("ERRAND_KEY", self.path("key"))
            .env("ERRAND_CACHE_DIR", self.path("cache"))
            .env("ERRAND_STATE", self.path("state"))
            .env_remove("ERRAND_REGISTRIES");
        c
    }
}

pub fn rand_seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).unwrap();
    s
}

/// Packs an example tool into `dir` with `key` (through the library).
pub fn pack_example(name: &str, dir: &Path, key: &SecretKey, version: Option<&str>) -> PathBuf {
    let tool = errand_example_tools::get(name).unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut manifest = tool.manifest.to_owned();
    if let Some(v) = version {
        manifest = manifest.replacen("version = \"1.0.0\"", &format!("version = \"{v}\""), 1);
    }
    let mpath = work.path().join("capability.toml");
    std::fs::write(&mpath, manifest).unwrap();
    let cpath = work.path().join("tool.wasm");
    std::fs::write(&cpath, tool.component).unwrap();
    let host = shared_host();
    let report =
        errand::packaging::pack(&host, &mpath, Some(&cpath), key, errand::node::now()).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(format!("{name}.errand"));
    // Write then rename, as an operator's deploy would, so the scanner never
    // reads half a file.
    errand::files::write_atomic(&out, &errand_core::signed::encode(&report.package).unwrap())
        .unwrap();
    out
}

/// How a test node is configured.
#[derive(Default, Clone)]
pub struct NodeSpec {
    pub registry: bool,
    pub registries: Vec<PeerAddr>,
    pub packages: bool,
    pub ttl_ms: Option<u32>,
    pub refresh_ms: Option<u32>,
    pub extra: String,
    /// Top-level settings, written before any section.
    pub top: String,
    pub listen: Option<String>,
    /// Arguments given to `errand` before `node` (`--log-format json`).
    pub args: Vec<String>,
}

/// A real `errand node` process.
pub struct NodeProc {
    pub dir: PathBuf,
    pub child: Option<Child>,
    pub peer: PeerId,
    pub addr: SocketAddr,
    args: Vec<String>,
    _tmp: Option<tempfile::TempDir>,
}

impl NodeProc {
    /// Writes a config for `spec` in a fresh folder and starts the node.
    pub fn start(spec: &NodeSpec) -> NodeProc {
        let mut n = NodeProc::prepare(spec);
        n.spawn();
        n
    }

    /// Writes a config for `spec` in a fresh folder, without starting it.
    pub fn prepare(spec: &NodeSpec) -> NodeProc {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let key = SecretKey::from_seed(rand_seed());
        errand::keystore::save(&key, &dir.join("key"), false).unwrap();
        let mut cfg = format!(
            "key = \"key\"\nlisten = \"{}\"\nstorage = \"data\"\n",
            spec.listen.as_deref().unwrap_or("127.0.0.1:0")
        );
        cfg.push_str(&spec.top);
        if spec.packages {
            std::fs::create_dir_all(dir.join("packages")).unwrap();
            cfg.push_str("packages = \"packages\"\n");
        }
        for r in &spec.registries {
            cfg.push_str(&format!(
                "[[registries]]\npeer = \"{}\"\naddr = \"{}\"\n",
                r.peer, r.addr
            ));
        }
        cfg.push_str(&format!(
            "[publish]\nttl_ms = {}\nrefresh_ms = {}\nscan_ms = 200\n",
            spec.ttl_ms.unwrap_or(15_000),
            spec.refresh_ms.unwrap_or(5_000)
        ));
        cfg.push_str(&spec.extra);
        if spec.registry {
            cfg.push_str("[registry]\n");
        }
        std::fs::write(dir.join("node.toml"), cfg).unwrap();
        NodeProc {
            dir,
            child: None,
            peer: key.peer_id(),
            addr: "127.0.0.1:0".parse().unwrap(),
            args: spec.args.clone(),
            _tmp: Some(tmp),
        }
    }

    /// (Re)starts the process with the existing folder.
    pub fn spawn(&mut self) {
        self.spawn_with(None);
    }

    /// Starts the process, optionally under `ip netns exec NS`.
    pub fn spawn_with(&mut self, netns: Option<&str>) {
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        let mut child = cmd
            .args(&self.args)
            .args(["node", "--config", "node.toml"])
            .current_dir(&self.dir)
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(self.dir.join("node.log")).unwrap())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("errand node "),
            "node did not start: {line:?}\n{}",
            std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
        );
        let (peer, addr) = errand::node::parse_ready_line(&line).unwrap();
        assert_eq!(peer, self.peer);
        self.addr = addr;
        self.child = Some(child);
    }

    pub fn peer_addr(&self) -> PeerAddr {
        PeerAddr {
            peer: self.peer,
            addr: self.addr,
        }
    }

    pub fn packages(&self) -> PathBuf {
        self.dir.join("packages")
    }

    pub fn key(&self) -> SecretKey {
        errand::keystore::load(&self.dir.join("key")).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().unwrap()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` until it is true or `within` passes; returns how long it took.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < within {
        if f() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// One runtime for the whole test process: clients' QUIC endpoints and
/// in-process nodes live on it, so it must outlive every call.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// One WebAssembly engine for every in-process node, runner and packer of
/// the test binary: tests run in parallel, and an engine per node would
/// reserve more memory mappings than the kernel allows.
pub fn shared_host() -> errand_host::Host {
    static HOST: std::sync::OnceLock<errand_host::Host> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        errand_host::Host::with_config(errand_host::HostConfig {
            max_concurrent: 64,
            ..errand_host::HostConfig::default()
        })
        .unwrap()
    })
    .clone()
}

/// The other sides' official tool chains, installed by `tests/interop/setup`
/// from the package registries with the exact pins in `tests/interop/`, into
/// a cache outside the clone (issue 12: never a hand-written imitation).
pub struct Interop {
    /// The virtual environment's interpreter: `mcp`, `a2a-sdk` and
    /// `componentize-py` are importable from it.
    pub python: PathBuf,
    /// The `node_modules` folder holding `jco` and `componentize-js`.
    #[allow(dead_code)] // until a test builds a JavaScript tool
    pub node_modules: PathBuf,
}

/// Runs the set-up once per test process and returns the tool chains. A
/// failed install fails the calling test, with the set-up's own output: an
/// interop test never passes by skipping.
pub fn interop() -> &'static Interop {
    static INTEROP: std::sync::OnceLock<Result<Interop, String>> = std::sync::OnceLock::new();
    let got = INTEROP.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/setup");
        let out = Command::new("bash")
            .arg(&script)
            .arg("all")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                out.status,
                text,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let find = |k: &str| {
            text.lines()
                .rev()
                .find_map(|l| l.strip_prefix(k))
                .map(PathBuf::from)
                .ok_or_else(|| format!("{} printed no `{k}` line:\n{text}", script.display()))
        };
        Ok(Interop {
            python: find("python=")?,
            node_modules: find("node_modules=")?,
        })
    });
    match got {
        Ok(i) => i,
        Err(e) => panic!("interop set-up: {e}"),
    }
}
