//! Building a tool's component from its sources: Rust with cargo, Python
//! with componentize-py, JavaScript with jco (componentize-js).
//!
//! `errand pack` builds a Rust tool whenever the manifest's folder holds
//! its `Cargo.toml`, exactly as its author would: `cargo build --release
//! --target wasm32-wasip2` in that folder (a no-op when the build is
//! fresh, so an older component is never packed by mistake). Cargo's
//! progress and diagnostics go to this process's stderr; its
//! machine-readable messages (`--message-format=json-render-diagnostics`)
//! name the component it built, wherever the target folder is
//! (`CARGO_TARGET_DIR`, a workspace's `target/`…).
//!
//! `errand build` does the same for all three languages ([`Lang::detect`]
//! tells them apart by their entry file), then packs. Python and
//! JavaScript tools are built against the `errand:capability` WIT package
//! this binary embeds ([`WIT`]), or the tool folder's own `wit/` when it
//! has one, by tool chains found by [`find_toolchain`] and pinned to the
//! versions Errand is tested with ([`COMPONENTIZE_PY_VERSION`],
//! [`JCO_VERSION`] with [`COMPONENTIZE_JS_VERSION`]). Their components go
//! to `target/errand/` in the tool's folder.

use std::io::{self, BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The target tools are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why a tool's component could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `cargo` could not be started: Rust is not installed, or not on `PATH`.
    #[error(
        "found no component, and cannot run `cargo` to build one ({source}): install Rust \
         with rustup (https://rustup.rs) and `rustup target add {TARGET}`, or build the \
         component yourself and pass --component PATH"
    )]
    NoCargo {
        /// Why it could not be started.
        source: io::Error,
    },
    /// The Rust toolchain that would build the tool lacks the wasm32-wasip2 target.
    #[error(
        "found no component, and the Rust toolchain for {dir} cannot build one: the \
         {TARGET} target is not installed. Install it with `rustup target add {TARGET}`, \
         then pack again"
    )]
    NoTarget {
        /// The tool's crate.
        dir: PathBuf,
    },
    /// Reading cargo's messages failed.
    #[error("reading cargo's output while building {dir}: {source}")]
    Io {
        /// The tool's crate.
        dir: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Cargo ran and failed.
    #[error(
        "`cargo build --release --target {TARGET}` failed in {dir} ({status}); cargo's \
         messages are above"
    )]
    Failed {
        /// The tool's crate.
        dir: PathBuf,
        /// How cargo ended.
        status: ExitStatus,
    },
    /// Cargo succeeded but built no WebAssembly file for the crate.
    #[error(
        "cargo built no WebAssembly component in {dir}: a tool's crate is a `cdylib` \
         (an errand tool) or a binary (a WASI command)"
    )]
    NoArtifact {
        /// The tool's crate.
        dir: PathBuf,
    },
    /// Cargo built several components, none named after the tool.
    #[error(
        "cargo built several components in {dir} and none is named after `{name}`: {found}; \
         pass the one to pack with --component PATH"
    )]
    Ambiguous {
        /// The tool's crate.
        dir: PathBuf,
        /// The tool's name, from its manifest.
        name: String,
        /// The components built.
        found: String,
    },
    /// The folder holds no entry file errand knows how to build.
    #[error(
        "{dir} holds no tool sources errand can build: a tool's folder has its \
         capability.toml and a Cargo.toml (Rust), an app.py (Python) or an app.js \
         (JavaScript); `errand new NAME --lang rust|python|js` makes one"
    )]
    NoSources {
        /// The tool's folder.
        dir: PathBuf,
    },
    /// The folder holds the entry files of several languages.
    #[error("{dir} holds sources in several languages ({found}): pass --lang")]
    SeveralLanguages {
        /// The tool's folder.
        dir: PathBuf,
        /// The entry files found.
        found: String,
    },
    /// componentize-py was not found.
    #[error(
        "building a Python tool needs componentize-py {COMPONENTIZE_PY_VERSION}, and none \
         was found (looked at: {tried}). Install it in a virtual environment in the tool's \
         folder: `python3 -m venv .venv && .venv/bin/pip install \
         componentize-py=={COMPONENTIZE_PY_VERSION}`, or from an Errand checkout run \
         `tests/interop/setup python`, which installs the pinned version under \
         ~/.cache/errand/interop; or name one with --componentize-py PATH or \
         ERRAND_COMPONENTIZE_PY"
    )]
    NoComponentizePy {
        /// Where it was looked for.
        tried: String,
    },
    /// jco was not found.
    #[error(
        "building a JavaScript tool needs jco {JCO_VERSION} with componentize-js \
         {COMPONENTIZE_JS_VERSION}, and none was found (looked at: {tried}). Run `npm \
         install` in the tool's folder (its package.json, made by `errand new`, pins \
         them), or from an Errand checkout run `tests/interop/setup node`, which installs \
         them under ~/.cache/errand/interop; or name one with --jco PATH or ERRAND_JCO"
    )]
    NoJco {
        /// Where it was looked for.
        tried: String,
    },
    /// jco was found but Node.js, which runs it, was not.
    #[error(
        "cannot run {jco}: jco is a Node.js program and `node` is not on PATH; install \
         Node.js 18 or later"
    )]
    NoNode {
        /// The jco found.
        jco: PathBuf,
    },
    /// A tool chain program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A tool chain ran and failed.
    #[error("`{tool}` failed in {dir} ({status}); its messages are above")]
    ToolchainFailed {
        /// The tool chain (componentize-py, jco).
        tool: &'static str,
        /// The tool's folder.
        dir: PathBuf,
        /// How it ended.
        status: ExitStatus,
    },
    /// A tool chain succeeded but wrote no component.
    #[error("`{tool}` reported success but wrote no component at {path}")]
    NoOutput {
        /// The tool chain.
        tool: &'static str,
        /// Where the component should be.
        path: PathBuf,
    },
    /// A file or folder for the build could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// The componentize-py version Python tools are built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// The jco version JavaScript tools are built and tested with.
pub const JCO_VERSION: &str = "1.35.0";
/// The componentize-js version jco builds with (one copy: see
/// `tests/interop/package.json`).
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";
/// The preview2-shim version jco runs its own tools on: 0.26.1 gives them
/// no folders by default, and `jco componentize` then cannot read the WIT.
pub const PREVIEW2_SHIM_VERSION: &str = "0.26.0";
/// The WASI features a JavaScript tool is built without
/// (`jco componentize -d …`): none of them is imported, so the component
/// imports nothing from WASI. `console.log` goes nowhere, `Date.now()`
/// traps (read the invocation time from the request context), and
/// `Math.random` is seeded when the component is built (the same numbers on
/// every request).
pub const JS_DISABLED_FEATURES: &[&str] = &["stdio", "random", "clocks", "http", "fetch-event"];

/// The `errand:capability` WIT package Python and JavaScript tools are
/// built against: each file's path under a `wit/` folder, and its text.
/// These are the repository's `wit/` files, built into the binary.
pub const WIT: &[(&str, &str)] = &[
    (
        "capability.wit",
        include_str!("../../../wit/capability.wit"),
    ),
    ("deps/cli.wit", include_str!("../../../wit/deps/cli.wit")),
    (
        "deps/clocks.wit",
        include_str!("../../../wit/deps/clocks.wit"),
    ),
    (
        "deps/filesystem.wit",
        include_str!("../../../wit/deps/filesystem.wit"),
    ),
    ("deps/io.wit", include_str!("../../../wit/deps/io.wit")),
    (
        "deps/random.wit",
        include_str!("../../../wit/deps/random.wit"),
    ),
    (
        "deps/sockets.wit",
        include_str!("../../../wit/deps/sockets.wit"),
    ),
];

/// The world tools implement.
pub const WORLD: &str = "capability";

/// Writes [`WIT`] into the folder `wit`.
pub fn write_wit(wit: &Path) -> Result<(), BuildError> {
    for (rel, text) in WIT {
        let path = wit.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| BuildError::Write {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| BuildError::Write { path, source })?;
    }
    Ok(())
}

/// The languages tools are built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Rust, with the `errand-guest` crate: `Cargo.toml`.
    Rust,
    /// Python, with componentize-py: `app.py`.
    Python,
    /// JavaScript, with jco and componentize-js: `app.js`.
    Js,
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lang::Rust => "Rust",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        })
    }
}

impl Lang {
    /// The file that marks a tool's folder as this language's.
    pub fn entry(self) -> &'static str {
        match self {
            Lang::Rust => "Cargo.toml",
            Lang::Python => "app.py",
            Lang::Js => "app.js",
        }
    }

    /// The language of the tool in `dir`, from its entry file.
    pub fn detect(dir: &Path) -> Result<Lang, BuildError> {
        let found: Vec<Lang> = [Lang::Rust, Lang::Python, Lang::Js]
            .into_iter()
            .filter(|l| dir.join(l.entry()).is_file())
            .collect();
        match found[..] {
            [one] => Ok(one),
            [] => Err(BuildError::NoSources {
                dir: dir.to_owned(),
            }),
            _ => Err(BuildError::SeveralLanguages {
                dir: dir.to_owned(),
                found: found
                    .iter()
                    .map(|l| l.entry())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// A tool chain program: componentize-py, or jco.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// Which one.
    pub tool: &'static str,
    /// The program.
    pub program: PathBuf,
    /// How it was found (a flag, an environment variable, PATH…).
    pub found_by: String,
    /// The version it reports, if it reports one.
    pub version: Option<String>,
    /// The version Errand is tested with.
    pub pinned: &'static str,
}

impl Toolchain {
    /// True when it reports a version other than the pinned one.
    pub fn is_other_version(&self) -> bool {
        self.version.as_deref().is_some_and(|v| v != self.pinned)
    }
}

/// Where tool chains are looked for besides the tool's folder and `PATH`:
/// the cache `tests/interop/setup` installs into,
/// `$ERRAND_INTEROP_CACHE`, else `$XDG_CACHE_HOME/errand/interop`, else
/// `~/.cache/errand/interop`.
pub fn interop_cache() -> Option<PathBuf> {
    let set = |v: &str| {
        std::env::var_os(v)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
    };
    set("ERRAND_INTEROP_CACHE")
        .or_else(|| set("XDG_CACHE_HOME").map(|x| x.join("errand/interop")))
        .or_else(|| set("HOME").map(|h| h.join(".cache/errand/interop")))
}

/// Finds the tool chain that builds `lang` tools in `dir` (none for Rust:
/// cargo is run from `PATH`). In order: `explicit` (a flag), the
/// environment variable (`ERRAND_COMPONENTIZE_PY`, `ERRAND_JCO`), the tool's
/// folder (`.venv/bin/componentize-py`, `node_modules/.bin/jco`), `PATH`,
/// then the cache of `tests/interop/setup` ([`interop_cache`]). A program
/// named by the flag or the variable must exist: a typo is no reason to
/// fall back on another one.
pub fn find_toolchain(
    lang: Lang,
    dir: &Path,
    explicit: Option<&Path>,
) -> Result<Option<Toolchain>, BuildError> {
    let (tool, env_var, local, cache_prefix, cache_rel, pinned) = match lang {
        Lang::Rust => return Ok(None),
        Lang::Python => (
            "componentize-py",
            "ERRAND_COMPONENTIZE_PY",
            ".venv/bin/componentize-py",
            "py-",
            "bin/componentize-py",
            COMPONENTIZE_PY_VERSION,
        ),
        Lang::Js => (
            "jco",
            "ERRAND_JCO",
            "node_modules/.bin/jco",
            "node-",
            "node_modules/.bin/jco",
            JCO_VERSION,
        ),
    };
    let missing = |tried: String| match lang {
        Lang::Js => BuildError::NoJco { tried },
        _ => BuildError::NoComponentizePy { tried },
    };
    // Absolute, because the build runs in the tool's folder: a program
    // found relative to the current folder (`errand build shout` finding
    // `shout/.venv/bin/componentize-py`, a relative flag or `PATH` entry)
    // would be looked up from there.
    let found = |program: PathBuf, found_by: String| {
        let program = std::path::absolute(&program).unwrap_or(program);
        Toolchain {
            tool,
            version: version_of(&program),
            program,
            found_by,
            pinned,
        }
    };
    let given = explicit
        .map(|p| (p.to_owned(), format!("--{tool}")))
        .or_else(|| {
            std::env::var_os(env_var)
                .filter(|p| !p.is_empty())
                .map(|p| (PathBuf::from(p), format!("${env_var}")))
        });
    if let Some((program, by)) = given {
        return if program.is_file() {
            Ok(Some(found(program, by)))
        } else {
            Err(missing(format!("{} ({by})", program.display())))
        };
    }
    let mut candidates = vec![(dir.join(local), "the tool's folder".to_owned())];
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            candidates.push((d.join(tool), "PATH".into()));
        }
    }
    let cache = interop_cache();
    if let Some(cache) = &cache {
        // Each install is ready once `tests/interop/setup` has finished it.
        let mut installs: Vec<PathBuf> = std::fs::read_dir(cache)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(cache_prefix))
            .map(|e| e.path())
            .filter(|p| p.join(".ready").is_file())
            .collect();
        installs.sort();
        for i in installs {
            candidates.push((i.join(cache_rel), "tests/interop/setup's cache".into()));
        }
    }
    if let Some((program, by)) = candidates.into_iter().find(|(p, _)| p.is_file()) {
        return Ok(Some(found(program, by)));
    }
    let mut tried = format!("${env_var}, {}, {tool} on PATH", dir.join(local).display());
    if let Some(cache) = cache {
        tried.push_str(&format!(
            ", {}/{cache_prefix}*/{cache_rel}",
            cache.display()
        ));
    }
    Err(missing(tried))
}

/// True when `program` is a file in a `PATH` folder.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// What `program --version` reports: its last word.
fn version_of(program: &Path) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text.split_whitespace().last()?;
    (out.status.success() && !word.is_empty()).then(|| word.trim_start_matches('v').to_owned())
}

/// A tool's component, built.
#[derive(Debug, Clone)]
pub struct Built {
    /// The component file.
    pub component: PathBuf,
}

/// Builds the tool `name` in `dir` from its `lang` sources (see the module
/// docs), with `toolchain` for Python and JavaScript ([`find_toolchain`]).
pub fn build_tool(
    dir: &Path,
    name: &str,
    lang: Lang,
    toolchain: Option<&Toolchain>,
) -> Result<Built, BuildError> {
    let (lang, toolchain) = match (lang, toolchain) {
        (Lang::Rust, _) => {
            return Ok(Built {
                component: build_component(dir, name)?,
            });
        }
        (lang, Some(t)) => (lang, t),
        (Lang::Python, None) => {
            return Err(BuildError::NoComponentizePy {
                tried: "nothing".into(),
            });
        }
        (Lang::Js, None) => {
            return Err(BuildError::NoJco {
                tried: "nothing".into(),
            });
        }
    };
    let out_dir = dir.join("target/errand");
    std::fs::create_dir_all(&out_dir).map_err(|source| BuildError::Write {
        path: out_dir.clone(),
        source,
    })?;
    // The tool's own WIT when it has one (`errand new` vendors it), else
    // the one built into errand.
    let wit = if dir.join("wit").join("capability.wit").is_file() {
        dir.join("wit")
    } else {
        let wit = out_dir.join("wit");
        write_wit(&wit)?;
        wit
    };
    let wit = wit.canonicalize().unwrap_or(wit);
    let out = out_dir.join(format!("{}.wasm", name.replace('-', "_")));
    // Never leave an older component to be packed if this build fails.
    match std::fs::remove_file(&out) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(BuildError::Write {
                path: out,
                source: e,
            });
        }
        _ => {}
    }
    let out = std::path::absolute(&out).unwrap_or(out);
    // jco is a Node.js script: without `node`, `env` would say only that
    // it found no `node`.
    if lang == Lang::Js && !on_path("node") {
        return Err(BuildError::NoNode {
            jco: toolchain.program.clone(),
        });
    }
    let mut cmd = Command::new(&toolchain.program);
    match lang {
        Lang::Python => {
            // The app module is `app` (app.py), found on the python path,
            // which is the tool's folder.
            cmd.arg("-d")
                .arg(&wit)
                .args(["-w", WORLD, "componentize", "app", "-o"])
                .arg(&out);
        }
        _ => {
            cmd.args(["componentize", "app.js", "--wit"])
                .arg(&wit)
                .args(["--world-name", WORLD, "--out"])
                .arg(&out)
                .arg("--disable")
                .args(JS_DISABLED_FEATURES);
        }
    }
    // The tool chain's progress goes to stderr, like cargo's: stdout is
    // errand's report.
    let status = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(|source| BuildError::Spawn {
            program: toolchain.program.clone(),
            source,
        })?;
    if !status.success() {
        return Err(BuildError::ToolchainFailed {
            tool: toolchain.tool,
            dir: dir.to_owned(),
            status,
        });
    }
    if !out.is_file() {
        return Err(BuildError::NoOutput {
            tool: toolchain.tool,
            path: out,
        });
    }
    Ok(Built { component: out })
}

/// Builds the component of the tool `name` whose crate is `dir` (see the
/// module docs) and returns its path.
pub fn build_component(dir: &Path, name: &str) -> Result<PathBuf, BuildError> {
    if target_missing(dir) {
        return Err(BuildError::NoTarget {
            dir: dir.to_owned(),
        });
    }
    let mut child = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| BuildError::NoCargo { source })?;
    let io_err = |source| BuildError::Io {
        dir: dir.to_owned(),
        source,
    };
    // The crate's own manifest, as cargo names it in its messages.
    let own = dir
        .join("Cargo.toml")
        .canonicalize()
        .unwrap_or_else(|_| dir.join("Cargo.toml"));
    let mut built: Vec<PathBuf> = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.map_err(io_err)?;
            for wasm in wasm_artifacts(&line, &own) {
                if !built.contains(&wasm) {
                    built.push(wasm);
                }
            }
        }
    }
    let status = child.wait().map_err(io_err)?;
    if !status.success() {
        return Err(BuildError::Failed {
            dir: dir.to_owned(),
            status,
        });
    }
    choose(dir, name, built)
}

/// The `.wasm` files a cargo JSON message says were built for the crate
/// whose manifest is `own`.
fn wasm_artifacts(line: &str, own: &Path) -> Vec<PathBuf> {
    let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
        return Vec::new();
    };
    let is_ours = msg.get("reason").and_then(|r| r.as_str()) == Some("compiler-artifact")
        && msg
            .get("manifest_path")
            .and_then(|m| m.as_str())
            .is_some_and(|m| {
                let m = Path::new(m);
                m == own || m.canonicalize().is_ok_and(|c| c == own)
            });
    if !is_ours {
        return Vec::new();
    }
    msg.get("filenames")
        .and_then(|f| f.as_array())
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str())
        .map(PathBuf::from)
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect()
}

/// The one component to pack: the only one built, else the one named
/// after the tool (libraries are named with underscores, binaries as is).
fn choose(dir: &Path, name: &str, built: Vec<PathBuf>) -> Result<PathBuf, BuildError> {
    if built.len() <= 1 {
        return built
            .into_iter()
            .next()
            .ok_or_else(|| BuildError::NoArtifact {
                dir: dir.to_owned(),
            });
    }
    let stems = [name.to_owned(), name.replace('-', "_")];
    let mut named = built.iter().filter(|p| {
        p.file_stem()
            .is_some_and(|s| stems.iter().any(|n| s == n.as_str()))
    });
    match (named.next(), named.next()) {
        (Some(p), None) => Ok(p.clone()),
        _ => Err(BuildError::Ambiguous {
            dir: dir.to_owned(),
            name: name.to_owned(),
            found: built
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// True when the toolchain that builds in `dir` (rustup reads
/// `rust-toolchain.toml` there) certainly lacks the target. When `rustc`
/// cannot say, cargo is left to report.
fn target_missing(dir: &Path) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || sysroot.is_empty() {
        return false;
    }
    !Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_crates_own_wasm_files_are_taken() {
        let own = Path::new("/src/tool/Cargo.toml");
        let ours = r#"{"reason":"compiler-artifact","manifest_path":"/src/tool/Cargo.toml","filenames":["/t/wasm32-wasip2/release/tool.wasm","/t/wasm32-wasip2/release/libtool.rlib"]}"#;
        let dep = r#"{"reason":"compiler-artifact","manifest_path":"/reg/serde/Cargo.toml","filenames":["/t/x.wasm"]}"#;
        assert_eq!(
            wasm_artifacts(ours, own),
            vec![PathBuf::from("/t/wasm32-wasip2/release/tool.wasm")]
        );
        assert!(wasm_artifacts(dep, own).is_empty());
        assert!(wasm_artifacts("not json", own).is_empty());
        assert!(wasm_artifacts(r#"{"reason":"build-finished","success":true}"#, own).is_empty());
    }

    /// One copy of the pins: the tool chains errand builds with are the
    /// ones the tests install (tests/interop).
    #[test]
    fn the_pinned_tool_chains_are_the_ones_the_tests_install() {
        let interop = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop");
        let requirements = std::fs::read_to_string(interop.join("requirements.txt")).unwrap();
        assert!(
            requirements
                .lines()
                .any(|l| l.trim() == format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
            "{requirements}"
        );
        let pkg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(interop.join("package.json")).unwrap())
                .unwrap();
        let deps = &pkg["dependencies"];
        assert_eq!(deps["@bytecodealliance/jco"], JCO_VERSION);
        assert_eq!(
            deps["@bytecodealliance/componentize-js"],
            COMPONENTIZE_JS_VERSION
        );
        assert_eq!(
            deps["@bytecodealliance/preview2-shim"],
            PREVIEW2_SHIM_VERSION
        );
    }

    /// The WIT built into errand is the whole of the repository's `wit/`.
    #[test]
    fn the_embedded_wit_is_every_file_of_the_wit_folder() {
        let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
        let mut on_disk = Vec::new();
        for sub in ["", "deps"] {
            for e in std::fs::read_dir(wit.join(sub)).unwrap() {
                let e = e.unwrap();
                if e.file_type().unwrap().is_file() {
                    on_disk.push(format!(
                        "{sub}{}{}",
                        if sub.is_empty() { "" } else { "/" },
                        e.file_name().to_string_lossy()
                    ));
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = WIT.iter().map(|(p, _)| (*p).to_owned()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn a_tools_language_is_told_by_its_entry_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Lang::detect(dir.path()),
            Err(BuildError::NoSources { .. })
        ));
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let d = tempfile::tempdir().unwrap();
            std::fs::write(d.path().join(lang.entry()), "").unwrap();
            assert_eq!(Lang::detect(d.path()).unwrap(), lang);
        }
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        std::fs::write(dir.path().join("app.js"), "").unwrap();
        let err = Lang::detect(dir.path()).unwrap_err();
        assert!(err.to_string().contains("app.py, app.js"), "{err}");
        assert!(err.to_string().contains("--lang"), "{err}");
    }

    #[test]
    fn a_tool_chain_named_on_purpose_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-componentize-py");
        let err = find_toolchain(Lang::Python, dir.path(), Some(&missing)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no-such-componentize-py (--componentize-py)"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
            "{msg}"
        );
        let err = find_toolchain(Lang::Js, dir.path(), Some(&missing)).unwrap_err();
        assert!(err.to_string().contains(JCO_VERSION), "{err}");
        assert!(err.to_string().contains("npm install"), "{err}");
        // Rust needs none (cargo comes from PATH).
        assert_eq!(find_toolchain(Lang::Rust, dir.path(), None).unwrap(), None);
        // A program in the tool's own folder is found.
        let local = dir.path().join("node_modules/.bin");
        std::fs::create_dir_all(&local).unwrap();
        std::fs::write(local.join("jco"), "").unwrap();
        let found = find_toolchain(Lang::Js, dir.path(), Some(&local.join("jco")))
            .unwrap()
            .unwrap();
        assert_eq!(found.program, local.join("jco"));
        assert_eq!(found.found_by, "--jco");
    }

    /// Regression (review): `errand build shout` with the tool chain
    /// installed in `shout/` (the guide's flow) found
    /// `shout/.venv/bin/componentize-py`, then ran it from inside `shout/`,
    /// where that relative path names nothing.
    #[cfg(unix)]
    #[test]
    fn build_of_a_relative_folder_runs_the_tool_chain_installed_in_it() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new()
            .prefix("relative-build-")
            .tempdir_in(".")
            .unwrap();
        let rel = PathBuf::from(dir.path().file_name().unwrap());
        let bin = rel.join(".venv/bin");
        std::fs::create_dir_all(&bin).unwrap();
        let program = bin.join("componentize-py");
        std::fs::write(&program, "#!/bin/sh\necho componentize-py 0.0.1\n").unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        let found = find_toolchain(Lang::Python, &rel, None).unwrap().unwrap();
        assert_eq!(found.found_by, "the tool's folder");
        // What `build_tool` does: run it from the tool's folder.
        let status = Command::new(&found.program)
            .current_dir(&rel)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|e| panic!("{}: {e}", found.program.display()));
        assert!(status.success());
        assert_eq!(found.version.as_deref(), Some("0.0.1"));
    }

    #[test]
    fn the_component_named_after_the_tool_is_chosen_among_several() {
        let dir = Path::new("/src/tool");
        let built = vec![
            PathBuf::from("/t/helper.wasm"),
            PathBuf::from("/t/text_stats.wasm"),
        ];
        assert_eq!(
            choose(dir, "text-stats", built.clone()).unwrap(),
            PathBuf::from("/t/text_stats.wasm")
        );
        assert!(matches!(
            choose(dir, "other", built),
            Err(BuildError::Ambiguous { .. })
        ));
        assert!(matches!(
            choose(dir, "x", Vec::new()),
            Err(BuildError::NoArtifact { .. })
        ));
    }
}
