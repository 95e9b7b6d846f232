//! `errand new` and `errand build`: a tool author's first five minutes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use errand::build::{self, Lang};
use errand::packaging;
use errand::scaffold::{self, GuestSdk, NewTool};

use super::keys;

/// The languages tools are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    /// Rust, with the errand-guest crate (cargo, wasm32-wasip2).
    Rust,
    /// Python, with componentize-py.
    Python,
    /// JavaScript, with jco and componentize-js.
    Js,
}

impl From<LangArg> for Lang {
    fn from(l: LangArg) -> Lang {
        match l {
            LangArg::Rust => Lang::Rust,
            LangArg::Python => Lang::Python,
            LangArg::Js => Lang::Js,
        }
    }
}

/// Arguments of `errand new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The tool's name (a-z, 0-9 and '-', starting with a letter); also the
    /// name of the folder created for it.
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum, default_value_t = LangArg::Rust)]
    lang: LangArg,
    /// The folder to create [default: ./NAME]; it must be absent or empty.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// For Rust: the errand-guest crate's folder [default: the checkout
    /// errand was built from, else Errand's git repository].
    #[arg(long, value_name = "PATH")]
    guest_sdk: Option<PathBuf>,
}

pub fn new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let lang = Lang::from(args.lang);
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let guest_sdk = match args.guest_sdk {
        Some(p) => {
            if !p.join("Cargo.toml").is_file() {
                bail!(
                    "--guest-sdk {}: no Cargo.toml there (it names the guest-sdk folder of an \
                     Errand checkout)",
                    p.display()
                );
            }
            GuestSdk::Path(std::path::absolute(&p).unwrap_or(p))
        }
        None => GuestSdk::default_for_this_build(),
    };
    let tool = NewTool {
        name: args.name.clone(),
        lang,
        dir: dir.clone(),
        guest_sdk: guest_sdk.clone(),
    };
    let files = scaffold::create(&tool)?;
    outln!("created {} ({lang} tool) in {}", args.name, dir.display());
    for f in files.iter().filter(|f| !f.starts_with("wit")) {
        outln!("  {}", f.display());
    }
    if lang != Lang::Rust {
        outln!("  wit/  (the errand:capability interface)");
    }
    if let (Lang::Rust, GuestSdk::Path(p)) = (lang, &guest_sdk) {
        outln!("  errand-guest from {}", p.display());
    }
    outln!();
    outln!("next:");
    outln!("  cd {}", dir.display());
    match lang {
        Lang::Rust => outln!("  rustup target add {}   # once", build::TARGET),
        Lang::Python => outln!(
            "  python3 -m venv .venv && .venv/bin/pip install componentize-py=={}   # once",
            build::COMPONENTIZE_PY_VERSION
        ),
        Lang::Js => outln!("  npm install   # once: jco {}, pinned", build::JCO_VERSION),
    }
    outln!("  errand build");
    outln!("  echo hello > in.txt");
    outln!(
        "  errand run {0}-0.1.0.errand --input in.txt --evidence {0}.evidence",
        args.name
    );
    outln!(
        "  errand verify {0}.evidence --replay --component {0}-0.1.0.errand --input in.txt",
        args.name
    );
    outln!("(the README in the folder says more)");
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `errand build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The tool's folder, which holds its capability.toml and its sources
    /// (Cargo.toml, app.py or app.js).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// The tool's language [default: told by its sources].
    #[arg(long, value_enum)]
    lang: Option<LangArg>,
    /// The tool author's key, which signs the package; keep it apart from
    /// your node's key.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Where to write the package [default: NAME-VERSION.errand].
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// The componentize-py to build Python tools with [default:
    /// $ERRAND_COMPONENTIZE_PY, else .venv/bin/componentize-py in the
    /// tool's folder, else PATH, else tests/interop/setup's cache].
    #[arg(long, value_name = "PATH")]
    componentize_py: Option<PathBuf>,
    /// The jco to build JavaScript tools with [default: $ERRAND_JCO, else
    /// node_modules/.bin/jco in the tool's folder, else PATH, else
    /// tests/interop/setup's cache].
    #[arg(long, value_name = "PATH")]
    jco: Option<PathBuf>,
}

pub fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    let manifest = dir.join("capability.toml");
    if !manifest.is_file() {
        bail!(
            "no capability.toml in {}: a tool's folder holds its manifest and its sources \
             (`errand new NAME --lang rust|python|js` makes one)",
            dir.display()
        );
    }
    let name = packaging::read_manifest(&manifest)?.name;
    let lang = match args.lang {
        Some(l) => l.into(),
        None => Lang::detect(dir)?,
    };
    // The key first: no point building for a package that cannot be signed.
    let key = keys::load_key(args.key)?;
    let explicit = match lang {
        Lang::Python => args.componentize_py.as_deref(),
        Lang::Js => args.jco.as_deref(),
        Lang::Rust => None,
    };
    let toolchain = build::find_toolchain(lang, dir, explicit)?;
    announce(&name, lang, dir, toolchain.as_ref());
    let t0 = Instant::now();
    let built = build::build_tool(dir, &name, lang, toolchain.as_ref())
        .with_context(|| format!("building {name}"))?;
    let size = std::fs::metadata(&built.component)
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "built {} ({size} bytes) in {:.1} s",
        built.component.display(),
        t0.elapsed().as_secs_f64()
    );
    if size > 4 << 20 {
        eprintln!(
            "packing runs the examples: the first compile of a component this size takes a \
             while, later runs load it from the cache"
        );
    }
    let t1 = Instant::now();
    super::tools::pack_and_write(&manifest, &built.component, &key, args.out)?;
    eprintln!("packed in {:.1} s", t1.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// Says what is about to build the tool, and warns of an unpinned tool chain.
fn announce(name: &str, lang: Lang, dir: &Path, toolchain: Option<&build::Toolchain>) {
    match toolchain {
        None => eprintln!(
            "building {name} ({lang}) with `cargo build --release --target {}` in {}",
            build::TARGET,
            dir.display()
        ),
        Some(t) => {
            eprintln!(
                "building {name} ({lang}) with {} {} ({}, from {}) in {}",
                t.tool,
                t.version.as_deref().unwrap_or("(version unknown)"),
                t.program.display(),
                t.found_by,
                dir.display()
            );
            if t.is_other_version() {
                eprintln!(
                    "warning: errand is tested with {} {}; other versions may build \
                     components that behave differently",
                    t.tool, t.pinned
                );
            }
        }
    }
}
