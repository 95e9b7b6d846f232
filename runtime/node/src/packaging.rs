//! Packing tools, and loading packages or bare components.
//!
//! `errand pack` reads a `capability.toml`, inlines every example file,
//! checks that the component implements an accepted world and that every
//! example runs, and writes a [`Package`] signed by the tool author: the
//! author's key signs the component digest, the manifest digest, name and
//! version (see [`errand_core::package`]), and the descriptor template.

use std::path::{Path, PathBuf};

use errand_core::SecretKey;
use errand_core::descriptor::{DEFAULT_TTL_MS, SignedDescriptor};
use errand_core::evidence::MAX_BLOB_BYTES;
use errand_core::manifest::{Manifest, ManifestError, Publication};
use errand_core::package::{MAX_MANIFEST_BYTES, Package, SignedAuthorship};
use errand_core::receipt::{InvocationContext, Outcome, RequestId};
use errand_core::signed::{self, DecodeError, EncodeError, Kind};
use errand_core::{Digest, UnixMillis};
use errand_host::{ComponentInfo, Host, Limits, LoadError};

use crate::files::{self, LoadError as FileError};

/// Why packing or loading a tool failed.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A file could not be read.
    #[error(transparent)]
    File(#[from] FileError),
    /// The manifest is not valid TOML of the right shape.
    #[error("{path}: {reason}")]
    ManifestSyntax {
        /// The manifest.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// The manifest's content is invalid.
    #[error("{path}: {source}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// What is wrong.
        source: ManifestError,
    },
    /// No component was given and none was found.
    #[error(
        "no component for `{name}`: pass --component PATH (build it with \
         `cargo build --target wasm32-wasip2 --release`); looked in: {looked}"
    )]
    NoComponent {
        /// The capability.
        name: String,
        /// Where we looked.
        looked: String,
    },
    /// The component does not load.
    #[error("{path}: {source}")]
    Component {
        /// The component file.
        path: PathBuf,
        /// Why.
        source: LoadError,
    },
    /// An example failed to run.
    #[error("example `{example}` of {name} did not succeed: {outcome}")]
    Example {
        /// The capability.
        name: String,
        /// The example.
        example: String,
        /// How it ended.
        outcome: String,
    },
    /// The host could not run an example at all.
    #[error("cannot run example `{example}`: {reason}")]
    ExampleRun {
        /// The example.
        example: String,
        /// Why.
        reason: String,
    },
    /// Signing or encoding failed.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The file is not a package or component.
    #[error("{path} is neither a tool package nor a WebAssembly component: {reason}")]
    NotATool {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The package's component or manifest is not what its author signed.
    #[error("{path}: the author signature does not cover this package: {source}")]
    AuthorSignature {
        /// The file.
        path: PathBuf,
        /// Which signed digest does not match.
        source: DecodeError,
    },
    /// The package is corrupt.
    #[error("{path} is a corrupt tool package: {source}")]
    CorruptPackage {
        /// The file.
        path: PathBuf,
        /// What is broken.
        source: DecodeError,
    },
}

/// Parses `capability.toml` text.
pub fn parse_manifest(path: &Path, text: &str) -> Result<Manifest, PackError> {
    let m: Manifest = toml::from_str(text).map_err(|e| PackError::ManifestSyntax {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(m)
}

/// Replaces every example's `input_file` with `input_hex` of its contents.
fn inline_examples(path: &Path, m: &mut Manifest) -> Result<(), PackError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    for ex in &mut m.examples {
        if let Some(f) = ex.input_file.take() {
            let bytes = files::read_bounded(&dir.join(&f), MAX_MANIFEST_BYTES as u64 / 2)?;
            ex.input_hex = Some(hex::encode(bytes));
        }
    }
    m.validate().map_err(|source| PackError::Manifest {
        path: path.to_owned(),
        source,
    })
}

/// Finds the component for the tool `manifest_path` describes, as
/// [`pack`] does when it is given none: next to the manifest, or built
/// under a `target/wasm32-wasip2/` folder at or above it.
/// [`PackError::NoComponent`] names the tool and where it looked.
pub fn locate_component(manifest_path: &Path) -> Result<PathBuf, PackError> {
    let manifest = read_manifest(manifest_path)?;
    find_component(manifest_path, &manifest.name)
}

/// The folder of the Rust crate that builds the tool `manifest_path`
/// describes: the manifest's folder, when it holds a `Cargo.toml`.
pub fn tool_crate(manifest_path: &Path) -> Option<PathBuf> {
    let dir = manifest_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join("Cargo.toml").is_file().then(|| dir.to_owned())
}

/// Reads and parses `capability.toml`, without checking it.
pub fn read_manifest(manifest_path: &Path) -> Result<Manifest, PackError> {
    let text = String::from_utf8(files::read_bounded(
        manifest_path,
        MAX_MANIFEST_BYTES as u64,
    )?)
    .map_err(|_| PackError::ManifestSyntax {
        path: manifest_path.to_owned(),
        reason: "not UTF-8 text".into(),
    })?;
    parse_manifest(manifest_path, &text)
}

/// Finds the component for `name` near `manifest` when none was given.
fn find_component(manifest: &Path, name: &str) -> Result<PathBuf, PackError> {
    let file = format!("{}.wasm", name.replace('-', "_"));
    let dir = manifest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut candidates = vec![dir.join(&file), dir.join(format!("{name}.wasm"))];
    let mut up = Some(dir);
    while let Some(d) = up {
        for profile in ["release", "wasm"] {
            candidates.push(d.join("target/wasm32-wasip2").join(profile).join(&file));
        }
        up = d.parent();
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| PackError::NoComponent {
            name: name.to_owned(),
            looked: candidates
                .iter()
                .take(4)
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The limits a manifest asks for, on top of the host defaults.
pub fn manifest_limits(m: &Manifest) -> Limits {
    let d = Limits::default();
    let to = |v: Option<u64>, dflt: usize| v.and_then(|v| usize::try_from(v).ok()).unwrap_or(dflt);
    Limits {
        fuel: m.limits.fuel.unwrap_or(d.fuel),
        memory_bytes: to(m.limits.memory_bytes, d.memory_bytes),
        max_input: to(m.limits.max_input_bytes, d.max_input),
        max_output: to(m.limits.max_output_bytes, d.max_output),
        deadline: m
            .limits
            .deadline_ms
            .map(std::time::Duration::from_millis)
            .unwrap_or(d.deadline),
        ..d
    }
}

/// One example's trial run during packing.
#[derive(Debug, Clone)]
pub struct ExampleRun {
    /// The example's name.
    pub name: String,
    /// Fuel it used.
    pub fuel: u64,
    /// Its output size.
    pub output_bytes: usize,
}

/// What `pack` did.
#[derive(Debug)]
pub struct PackReport {
    /// The package.
    pub package: Package,
    /// The component's shape.
    pub info: ComponentInfo,
    /// The component file used.
    pub component_path: PathBuf,
    /// Each example's trial run.
    pub examples: Vec<ExampleRun>,
}

/// Packs the tool described by `manifest_path` (see the module docs),
/// signed by the tool author's `key` (keep it apart from any node's key).
pub fn pack(
    host: &Host,
    manifest_path: &Path,
    component_path: Option<&Path>,
    key: &SecretKey,
    now: UnixMillis,
) -> Result<PackReport, PackError> {
    let mut manifest = read_manifest(manifest_path)?;
    manifest.validate().or_else(|e| match e {
        // Files are inlined next; anything else is a real error.
        ManifestError::Field {
            field: "examples.input_file",
            ..
        } => Ok(()),
        source => Err(PackError::Manifest {
            path: manifest_path.to_owned(),
            source,
        }),
    })?;
    inline_examples(manifest_path, &mut manifest)?;
    let component_path = match component_path {
        Some(p) => p.to_owned(),
        None => find_component(manifest_path, &manifest.name)?,
    };
    let component = files::read_bounded(&component_path, MAX_BLOB_BYTES as u64)?;
    let comp_err = |source| PackError::Component {
        path: component_path.clone(),
        source,
    };
    let prepared = host
        .prepare_with(&component, errand_host::NanMode::for_manifest(&manifest))
        .map_err(comp_err)?;
    let info = prepared.info().clone();

    let limits = manifest_limits(&manifest);
    let mut examples = Vec::new();
    for (i, ex) in manifest.examples.iter().enumerate() {
        let input = ex.bytes().map_err(|source| PackError::Manifest {
            path: manifest_path.to_owned(),
            source,
        })?;
        let inv = errand_host::Invocation {
            input: &input,
            request_id: RequestId([i as u8; 16]),
            seed: errand_core::receipt::local_seed(
                &RequestId([i as u8; 16]),
                &errand_core::Digest::of(&input),
            ),
            context: InvocationContext {
                time: now,
                params: errand_core::bounded::BVec::new(ex.params()).unwrap_or_default(),
            },
            limits,
            keep_trace: false,
        };
        let exec = host
            .run(&prepared, &inv)
            .map_err(|e| PackError::ExampleRun {
                example: ex.name.clone(),
                reason: e.to_string(),
            })?;
        if exec.outcome != Outcome::Ok {
            return Err(PackError::Example {
                name: manifest.name.clone(),
                example: ex.name.clone(),
                outcome: exec.outcome.to_string(),
            });
        }
        examples.push(ExampleRun {
            name: ex.name.clone(),
            fuel: exec.fuel_consumed,
            output_bytes: exec.output.len(),
        });
    }

    let descriptor = manifest
        .descriptor(&Publication {
            publisher: key.peer_id(),
            component: Some(Digest::of(&component)),
            addrs: vec![],
            seq: 0,
            issued_at: now,
            ttl_ms: DEFAULT_TTL_MS,
            latency_ms: None,
        })
        .map_err(|source| PackError::Manifest {
            path: manifest_path.to_owned(),
            source,
        })?;
    let manifest_text = toml::to_string(&manifest).map_err(|e| PackError::ManifestSyntax {
        path: manifest_path.to_owned(),
        reason: e.to_string(),
    })?;
    let package = Package::sign(
        errand_core::bounded::BString::new(manifest_text).map_err(|e| {
            PackError::ManifestSyntax {
                path: manifest_path.to_owned(),
                reason: e.to_string(),
            }
        })?,
        errand_core::bounded::BBytes::new(component).map_err(|e| PackError::ManifestSyntax {
            path: component_path.clone(),
            reason: e.to_string(),
        })?,
        descriptor,
        key,
    )?;
    Ok(PackReport {
        package,
        info,
        component_path,
        examples,
    })
}

/// A tool ready to run: from a package, or a bare component.
#[derive(Debug, Clone)]
pub struct LoadedTool {
    /// The component bytes.
    pub component: Vec<u8>,
    /// The manifest, for packages.
    pub manifest: Option<Manifest>,
    /// The signed descriptor template, for packages.
    pub descriptor: Option<SignedDescriptor>,
    /// The author's signature, for packages (not yet checked: see
    /// [`Package::verify_author`]).
    pub authorship: Option<SignedAuthorship>,
}

/// Reads a package or a bare component from `path`.
pub fn load_tool(path: &Path) -> Result<LoadedTool, PackError> {
    let bytes = files::read_bounded(path, (MAX_BLOB_BYTES + MAX_MANIFEST_BYTES + 4096) as u64)?;
    if bytes.starts_with(b"\0asm") {
        return Ok(LoadedTool {
            component: bytes,
            manifest: None,
            descriptor: None,
            authorship: None,
        });
    }
    let pkg = decode_package(path, &bytes)?;
    let manifest = parse_manifest(path, &pkg.manifest)?;
    Ok(LoadedTool {
        component: pkg.component.into_vec(),
        manifest: Some(manifest),
        descriptor: Some(pkg.descriptor),
        authorship: Some(pkg.authorship),
    })
}

/// Decodes a package, classifying errors for people.
pub fn decode_package(path: &Path, bytes: &[u8]) -> Result<Package, PackError> {
    match signed::sniff(bytes) {
        Ok((Kind::Package, _)) => {
            signed::decode::<Package>(bytes).map_err(|source| match &source {
                DecodeError::Invalid { invalid, .. }
                    if invalid.field.starts_with("authorship.") =>
                {
                    PackError::AuthorSignature {
                        path: path.to_owned(),
                        source,
                    }
                }
                _ => PackError::CorruptPackage {
                    path: path.to_owned(),
                    source,
                },
            })
        }
        Ok((kind, _)) => Err(PackError::NotATool {
            path: path.to_owned(),
            reason: format!("it is a {kind}"),
        }),
        Err(e) => Err(PackError::NotATool {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// A per-user folder: `$override_var` if set, else `$xdg_var/errand`, else
/// `~/home_rel/errand`.
pub fn user_dir(override_var: &str, xdg_var: &str, home_rel: &str) -> Option<PathBuf> {
    let set = |v: &str| std::env::var_os(v).filter(|p| !p.is_empty());
    if let Some(p) = set(override_var) {
        return Some(PathBuf::from(p));
    }
    if let Some(x) = set(xdg_var) {
        return Some(PathBuf::from(x).join("errand"));
    }
    set("HOME").map(|h| PathBuf::from(h).join(home_rel).join("errand"))
}

/// Errand's cache directory: `$ERRAND_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/errand`, else `~/.cache/errand`.
pub fn cache_dir() -> Option<PathBuf> {
    user_dir("ERRAND_CACHE_DIR", "XDG_CACHE_HOME", ".cache")
}

/// A host with the compiled-component cache in [`cache_dir`] (if any).
pub fn default_host() -> Result<Host, errand_host::HostError> {
    Host::with_config(errand_host::HostConfig {
        cache_dir: cache_dir().map(|d| d.join("compiled")),
        ..errand_host::HostConfig::default()
    })
}

/// The `.errand` packages in `dir`, in name order: the order in which the
/// node hosts them and a card lists them (the first package per capability
/// name wins).
pub fn package_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "errand"))
        .collect();
    files.sort();
    Ok(files)
}
