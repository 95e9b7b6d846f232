//! `errand new`: a working tool to start from, in Rust, Python or
//! JavaScript.
//!
//! Each scaffold is a complete tool that builds, packs, runs and replays as
//! it is (it upper-cases text and appends a `suffix` parameter): its source,
//! a `capability.toml` with examples, a `.gitignore`, and a README with the
//! build instructions and the sandbox's rules for that language. Python and
//! JavaScript scaffolds carry the `errand:capability` WIT package in `wit/`;
//! the JavaScript one pins its tool chain in `package.json`. Rust scaffolds
//! depend on the `errand-guest` crate and start from the `Cargo.lock`
//! Errand itself is tested with, so that they build offline once the
//! crates are in cargo's cache.
//!
//! The templates are in `runtime/node/templates/`, built into the binary.

use std::path::{Path, PathBuf};

use crate::build::{self, Lang};

/// Why a tool could not be scaffolded.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The name cannot name a tool, a folder and a package at once.
    #[error(
        "cannot name a tool {name:?}: {problem} (a name is 1 to 64 of a-z, 0-9 and '-', \
         starting with a letter, such as `word-count`)"
    )]
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The folder exists and is not empty.
    #[error("{dir} already exists and is not empty: choose another name or folder")]
    NotEmpty {
        /// The folder.
        dir: PathBuf,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The WIT package could not be written.
    #[error(transparent)]
    Wit(#[from] build::BuildError),
}

/// Where a Rust scaffold gets the `errand-guest` crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestSdk {
    /// A local checkout's `guest-sdk` folder.
    Path(PathBuf),
    /// Errand's git repository.
    Git(String),
}

impl GuestSdk {
    /// The crate in the checkout this binary was built from, if that
    /// checkout is still there; else Errand's git repository.
    pub fn default_for_this_build() -> GuestSdk {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest-sdk");
        match here.join("Cargo.toml").is_file() {
            true => GuestSdk::Path(here.canonicalize().unwrap_or(here)),
            false => GuestSdk::Git(env!("CARGO_PKG_REPOSITORY").to_owned()),
        }
    }

    /// The dependency, as the value of `errand-guest = …` in Cargo.toml.
    fn dependency(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        match self {
            GuestSdk::Path(p) => format!("{{ path = {} }}", quote(&p.display().to_string())),
            GuestSdk::Git(url) => format!("{{ git = {} }}", quote(url)),
        }
    }
}

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct NewTool {
    /// The tool's name: also its folder's and its package's.
    pub name: String,
    /// Its language.
    pub lang: Lang,
    /// The folder to create (must be absent or empty).
    pub dir: PathBuf,
    /// For Rust: where `errand-guest` comes from.
    pub guest_sdk: GuestSdk,
}

/// A file of a scaffold: its path in the tool's folder, and its template.
type Template = (&'static str, &'static str);

const MANIFEST: &str = include_str!("../templates/capability.toml");

const RUST: &[Template] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("README.md", include_str!("../templates/rust/README.md")),
    (".gitignore", include_str!("../templates/rust/gitignore")),
    // The versions Errand is tested with; cargo trims it to the tool's
    // dependencies on the first build.
    ("Cargo.lock", include_str!("../../../Cargo.lock")),
];

const PYTHON: &[Template] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    ("README.md", include_str!("../templates/python/README.md")),
    (".gitignore", include_str!("../templates/python/gitignore")),
];

const JS: &[Template] = &[
    ("app.js", include_str!("../templates/js/app.js")),
    ("package.json", include_str!("../templates/js/package.json")),
    ("README.md", include_str!("../templates/js/README.md")),
    (".gitignore", include_str!("../templates/js/gitignore")),
];

/// Checks that `name` can name a tool, its folder and its package (a Rust
/// crate, a Python module's tool, an npm package).
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |problem: &str| {
        Err(ScaffoldError::BadName {
            name: name.to_owned(),
            problem: problem.to_owned(),
        })
    };
    if name.is_empty() || name.len() > 64 {
        return bad("it must be 1 to 64 characters long");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lowercase letter");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return bad(&format!("it contains {c:?}"));
    }
    if name.ends_with('-') || name.contains("--") {
        return bad("its dashes must separate words");
    }
    if RESERVED.contains(&name) {
        return bad(
            "it is a Rust keyword or a standard crate's name, which cargo cannot build as a library",
        );
    }
    Ok(())
}

/// Names a Rust tool's crate cannot have (keywords, reserved words and the
/// standard crates), refused in every language so that a name works in all.
const RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc-macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// The value each `{{key}}` of the templates stands for.
fn values(t: &NewTool) -> Vec<(&'static str, String)> {
    // Interpreted tools start a whole interpreter per request: more fuel,
    // memory and time than a compiled Rust tool.
    let (fuel, memory, latency) = match t.lang {
        Lang::Rust => ("10_000_000", "16_777_216", "5"),
        Lang::Python | Lang::Js => ("200_000_000", "67_108_864", "50"),
    };
    vec![
        ("name", t.name.clone()),
        ("module", t.name.replace('-', "_")),
        ("errand_guest", t.guest_sdk.dependency()),
        ("fuel", fuel.into()),
        ("memory_bytes", memory.into()),
        ("latency_ms", latency.into()),
        (
            "componentize_py_version",
            build::COMPONENTIZE_PY_VERSION.into(),
        ),
        ("jco_version", build::JCO_VERSION.into()),
        (
            "componentize_js_version",
            build::COMPONENTIZE_JS_VERSION.into(),
        ),
        ("preview2_shim_version", build::PREVIEW2_SHIM_VERSION.into()),
    ]
}

/// Fills a template's `{{key}}`s.
fn render(template: &str, values: &[(&'static str, String)]) -> String {
    let mut out = template.to_owned();
    for (k, v) in values {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// The files of the scaffold `t` describes: paths relative to its folder,
/// and contents.
pub fn files(t: &NewTool) -> Vec<(PathBuf, String)> {
    let values = values(t);
    let templates = match t.lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    let mut out: Vec<(PathBuf, String)> = std::iter::once(("capability.toml", MANIFEST))
        .chain(templates.iter().copied())
        .map(|(path, text)| {
            // The lock file is data, not a template.
            let text = match path {
                "Cargo.lock" => text.to_owned(),
                _ => render(text, &values),
            };
            (PathBuf::from(path), text)
        })
        .collect();
    if t.lang != Lang::Rust {
        for (rel, text) in build::WIT {
            out.push((Path::new("wit").join(rel), (*text).to_owned()));
        }
    }
    out
}

/// Writes the scaffold `t` describes into its folder, which must be absent
/// or empty, and returns the files written (relative to the folder).
pub fn create(t: &NewTool) -> Result<Vec<PathBuf>, ScaffoldError> {
    check_name(&t.name)?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| ScaffoldError::Write { path, source }
    };
    if let Ok(mut entries) = std::fs::read_dir(&t.dir)
        && entries.next().is_some()
    {
        return Err(ScaffoldError::NotEmpty { dir: t.dir.clone() });
    }
    let files = files(t);
    for (rel, text) in &files {
        let path = t.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        std::fs::write(&path, text).map_err(write_err(&path))?;
    }
    Ok(files.into_iter().map(|(rel, _)| rel).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(lang: Lang) -> NewTool {
        NewTool {
            name: "word-shout".into(),
            lang,
            dir: PathBuf::from("/nowhere"),
            guest_sdk: GuestSdk::Git("https://example.org/errand".into()),
        }
    }

    /// Regression (review): `errand new self --lang rust` wrote a crate
    /// named `self`, which cargo refuses to build.
    #[test]
    fn rust_keywords_are_refused_as_tool_names() {
        for name in ["self", "test", "std", "core", "fn", "proc-macro"] {
            let e = check_name(name).unwrap_err().to_string();
            assert!(e.contains("Rust keyword"), "{name}: {e}");
        }
        for name in ["selfie", "test-tool", "std-dev"] {
            check_name(name).unwrap();
        }
    }

    #[test]
    fn names_that_cannot_name_a_crate_a_folder_and_a_tool_are_refused() {
        for ok in ["a", "word-count", "v2", "x1-y2"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Word",
            "1up",
            "word_count",
            "a/b",
            "-x",
            "x-",
            "a--b",
            "dot.ted",
            &"x".repeat(65),
        ] {
            let err = check_name(bad).unwrap_err().to_string();
            assert!(err.contains("cannot name a tool"), "{bad}: {err}");
        }
    }

    #[test]
    fn every_placeholder_is_filled_and_every_manifest_parses() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            let t = tool(lang);
            let files = files(&t);
            for (path, text) in &files {
                assert!(!text.contains("{{"), "{lang} {}: {text}", path.display());
            }
            let manifest = &files
                .iter()
                .find(|(p, _)| p == Path::new("capability.toml"))
                .unwrap()
                .1;
            let m: errand_core::manifest::Manifest = toml::from_str(manifest).unwrap();
            assert_eq!(m.name, "word-shout");
            m.validate().unwrap();
            assert!(m.examples.len() >= 2);
            let entry = files.iter().any(|(p, _)| p == Path::new(lang.entry()));
            assert!(entry, "{lang} scaffold lacks {}", lang.entry());
        }
    }

    #[test]
    fn the_rust_scaffold_names_the_guest_sdk_it_was_given() {
        let mut t = tool(Lang::Rust);
        t.guest_sdk = GuestSdk::Path(PathBuf::from("/src/errand/guest-sdk"));
        let files = files(&t);
        let cargo = &files
            .iter()
            .find(|(p, _)| p == Path::new("Cargo.toml"))
            .unwrap()
            .1;
        let v: toml::Value = toml::from_str(cargo).unwrap();
        assert_eq!(
            v["dependencies"]["errand-guest"]["path"].as_str(),
            Some("/src/errand/guest-sdk")
        );
        assert_eq!(v["package"]["name"].as_str(), Some("word-shout"));
    }

    #[test]
    fn the_javascript_scaffold_pins_the_tool_chain_errand_is_tested_with() {
        let files = files(&tool(Lang::Js));
        let pkg = &files
            .iter()
            .find(|(p, _)| p == Path::new("package.json"))
            .unwrap()
            .1;
        let v: serde_json::Value = serde_json::from_str(pkg).unwrap();
        let dev = &v["devDependencies"];
        assert_eq!(dev["@bytecodealliance/jco"], build::JCO_VERSION);
        assert_eq!(
            dev["@bytecodealliance/componentize-js"],
            build::COMPONENTIZE_JS_VERSION
        );
        assert_eq!(
            dev["@bytecodealliance/preview2-shim"],
            build::PREVIEW2_SHIM_VERSION
        );
        assert!(
            files
                .iter()
                .any(|(p, _)| p == Path::new("wit/capability.wit"))
        );
    }
}
