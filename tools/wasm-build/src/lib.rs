//! Build-script helper: compiles workspace crates to `wasm32-wasip2`
//! components and writes a Rust file that embeds them.
//!
//! Used from `build.rs` of the crates that bundle components (the example
//! tools, the hostile test guests), so that `cargo test` and `cargo run`
//! build everything they need with no extra step. The nested cargo runs
//! with its own target directory (no lock contention with the outer build),
//! without the outer build's wrappers and flags (which target the host), and
//! with the `wasm` profile from the workspace manifest.
//!
//! ```no_run
//! // build.rs
//! errand_wasm_build::bundle(&[("text-stats", "TEXT_STATS")], &["examples/tools", "guest-sdk", "wit"]);
//! ```

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Environment variables that describe the *outer* build and must not leak
/// into the nested one.
const SCRUB: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_PRIMARY_PACKAGE",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "__CARGO_FIX_PLZ",
    "CARGO_LLVM_COV",
    "LLVM_PROFILE_FILE",
];

fn fail(msg: &str) -> ! {
    // A build script reports errors by failing; the message is what the
    // user sees, so make it say what to do.
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// The workspace root: the nearest ancestor of `CARGO_MANIFEST_DIR` whose
/// `Cargo.toml` has a `[workspace]` table.
pub fn workspace_root() -> PathBuf {
    let start =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| fail("not run by cargo")));
    let mut dir = start.as_path();
    loop {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|t| t.contains("[workspace]")) {
            return dir.to_path_buf();
        }
        dir = dir
            .parent()
            .unwrap_or_else(|| fail("no workspace root above the manifest"));
    }
}

fn check_target_installed(rustc: &str) {
    let out = Command::new(rustc).args(["--print", "sysroot"]).output();
    let sysroot = match out {
        Ok(o) if o.status.success() => PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()),
        _ => return, // let cargo report it
    };
    if !sysroot.join("lib/rustlib/wasm32-wasip2").exists() {
        fail(
            "the wasm32-wasip2 target is not installed, and Errand's tools are built for it. \
             Install it with `rustup target add wasm32-wasip2` (the README's commands do this).",
        );
    }
}

/// Builds `packages` (package name, Rust constant name) for wasm32-wasip2
/// and writes `$OUT_DIR/components.rs` with one
/// `pub const NAME: &[u8] = include_bytes!(…)` per package. `watch` lists
/// workspace-relative paths whose changes trigger a rebuild.
pub fn bundle(packages: &[(&str, &str)], watch: &[&str]) {
    let root = workspace_root();
    for w in watch {
        println!("cargo:rerun-if-changed={}", root.join(w).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    // The `wasm` profile lives in the workspace manifest.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    check_target_installed(&rustc);
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR not set")));
    let target_dir = root.join("target").join("wasm-components");

    let mut cmd = Command::new(&cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "wasm",
            "--target-dir",
        ])
        .arg(&target_dir);
    for (pkg, _) in packages {
        cmd.args(["-p", pkg]);
    }
    for var in SCRUB {
        cmd.env_remove(var);
    }
    // Nothing the nested build runs (rustc's `-` probes read stdin) may see
    // whatever the outer build's stdin carries; and the nested cargo runs
    // its own jobserver rather than sharing the outer one's descriptors.
    cmd.stdin(std::process::Stdio::null());
    for var in ["CARGO_MAKEFLAGS", "MAKEFLAGS", "MFLAGS"] {
        cmd.env_remove(var);
    }
    let mut status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {cargo}: {e}")));
    if !status.success() {
        // A CI run saw the nested cargo's first rustc probe fail on input it
        // never gave it, while the outer build ran many jobs; once more,
        // alone, before giving up.
        println!(
            "cargo:warning=building the WebAssembly components failed; retrying once with -j1"
        );
        status = cmd
            .arg("-j1")
            .status()
            .unwrap_or_else(|e| fail(&format!("cannot run {cargo}: {e}")));
    }
    if !status.success() {
        fail("building the WebAssembly components failed (see the cargo output above)");
    }

    let mut rs = String::from("// Generated by errand-wasm-build. Do not edit.\n");
    for (pkg, konst) in packages {
        // Libraries (cdylib) are named with underscores, binaries as is.
        let file = format!("{}.wasm", pkg.replace('-', "_"));
        let dir = target_dir.join("wasm32-wasip2/wasm");
        let built = [dir.join(&file), dir.join(format!("{pkg}.wasm"))]
            .into_iter()
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                fail(&format!(
                    "cargo built no component for {pkg} in {}",
                    dir.display()
                ))
            });
        let dest = out_dir.join(&file);
        copy(&built, &dest);
        let _ = writeln!(
            rs,
            "/// The `{pkg}` component, built for wasm32-wasip2.\npub const {konst}: &[u8] = include_bytes!({:?});",
            dest.display().to_string()
        );
    }
    std::fs::write(out_dir.join("components.rs"), rs)
        .unwrap_or_else(|e| fail(&format!("cannot write components.rs: {e}")));
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| fail(&format!("cannot copy {}: {e}", from.display())));
}
