//! Building a tool's component with cargo, for `errand pack`.
//!
//! When `errand pack` finds no component for a manifest whose folder holds
//! the tool's `Cargo.toml`, it builds the tool itself, exactly as its author
//! would: `cargo build --release --target wasm32-wasip2` in that folder.
//! Cargo's progress and diagnostics go to this process's stderr; its
//! machine-readable messages (`--message-format=json-render-diagnostics`)
//! name the component it built, wherever the target folder is
//! (`CARGO_TARGET_DIR`, a workspace's `target/`…).

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
