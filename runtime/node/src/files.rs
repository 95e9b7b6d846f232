//! Reading Errand objects from files, with size limits and clear errors.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use errand_core::evidence::Evidence;
use errand_core::receipt::SignedReceipt;
use errand_core::signed::{self, DecodeError, Kind};

/// Largest evidence file read: the package bound (three 64 MiB blobs plus a
/// trace) with room to spare.
pub const MAX_EVIDENCE_FILE: u64 = 256 << 20;

/// Why a file could not be read as evidence.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is larger than any valid object.
    #[error("{path} is {len} bytes, larger than any evidence package ({max} bytes)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The file is not an Errand object at all, or of an unreadable version.
    #[error("{path} is not usable evidence: {source}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// Why.
        source: DecodeError,
    },
    /// The file is an Errand object of another kind.
    #[error("{path} is a {found}, not an evidence package or a tool receipt")]
    WrongKind {
        /// The file.
        path: PathBuf,
        /// What it is.
        found: Kind,
    },
    /// The file claims to be evidence but its structure is broken.
    #[error("{path} is a corrupt {kind}: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it claims to be.
        kind: Kind,
        /// What is broken.
        source: DecodeError,
    },
    /// A JSON rendering that does not parse back.
    #[error("{path} is not valid evidence JSON: {reason}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl LoadError {
    /// True when the file was recognisably evidence but failed its format
    /// check (a verification failure rather than unusable input).
    pub fn is_corrupt_evidence(&self) -> bool {
        matches!(self, LoadError::Corrupt { .. })
    }
}

/// Reads a whole file, refusing files over `max` bytes before reading them.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, LoadError> {
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let f = fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len > max {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            len,
            max,
        });
    }
    let mut buf = Vec::with_capacity(len as usize);
    f.take(max + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max {
        return Err(LoadError::TooLarge {
            path: path.to_owned(),
            len: buf.len() as u64,
            max,
        });
    }
    Ok(buf)
}

/// Parses evidence from bytes: an evidence package or a bare signed receipt,
/// in binary or in the JSON rendering.
pub fn parse_evidence(path: &Path, bytes: &[u8]) -> Result<Evidence, LoadError> {
    if bytes.first() == Some(&b'{') {
        return parse_json(path, bytes);
    }
    let (kind, _) = signed::sniff(bytes).map_err(|source| LoadError::Unusable {
        path: path.to_owned(),
        source,
    })?;
    let classify = |source: DecodeError| match source {
        DecodeError::UnsupportedVersion { .. } | DecodeError::NotErrand | DecodeError::Empty => {
            LoadError::Unusable {
                path: path.to_owned(),
                source,
            }
        }
        source => LoadError::Corrupt {
            path: path.to_owned(),
            kind,
            source,
        },
    };
    match kind {
        Kind::Evidence => signed::decode::<Evidence>(bytes).map_err(classify),
        Kind::Receipt => SignedReceipt::decode(bytes)
            .map(Evidence::of_receipt)
            .map_err(classify),
        found => Err(LoadError::WrongKind {
            path: path.to_owned(),
            found,
        }),
    }
}

fn parse_json(path: &Path, bytes: &[u8]) -> Result<Evidence, LoadError> {
    let json_err = |reason: String| LoadError::Json {
        path: path.to_owned(),
        reason,
    };
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| json_err(e.to_string()))?;
    match v.get("kind").and_then(|k| k.as_str()) {
        Some(k) if k == Kind::Evidence.tag() => {
            signed::from_json::<Evidence>(&v).map_err(|e| json_err(e.to_string()))
        }
        Some(k) if k == Kind::Receipt.tag() => SignedReceipt::from_json(&v)
            .map(Evidence::of_receipt)
            .map_err(|e| json_err(e.to_string())),
        Some(k) => Err(json_err(format!("kind `{k}` is not evidence or a receipt"))),
        None => Err(json_err("no `kind` field".into())),
    }
}

/// Reads and parses an evidence file (see [`parse_evidence`]).
pub fn load_evidence(path: &Path) -> Result<Evidence, LoadError> {
    let bytes = read_bounded(path, MAX_EVIDENCE_FILE)?;
    parse_evidence(path, &bytes)
}

/// Writes `bytes` to a new file at `path`, never replacing a file that
/// exists there (the error is then `AlreadyExists`). The bytes go to a
/// temporary file first (`create_new`), which is hard-linked into place, so
/// readers never see a partial file and two writers never share one; where
/// the file system has no hard links, `path` itself is created with
/// `create_new` and written.
pub fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let write = |p: &Path| -> io::Result<()> {
        let result = (|| {
            let mut f = fs::File::create_new(p)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = result {
            // Only remove what this call created.
            if e.kind() != io::ErrorKind::AlreadyExists {
                let _ = fs::remove_file(p);
            }
            return Err(e);
        }
        Ok(())
    };
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    write(&tmp)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => write(path),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file renamed into place,
/// so readers never see a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
