//! Secret-key files on disk.
//!
//! The key lives in a file only its owner can read (mode 0600), in the text
//! form documented in [`errand_core::identity`]. Loading refuses a file that
//! others can read and says how to fix it; writing refuses to replace an
//! existing key unless asked to, and replaces atomically when asked.
//!
//! The default location is `$ERRAND_KEY` if set, else
//! `$XDG_CONFIG_HOME/errand/key`, else `~/.config/errand/key`.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use errand_core::SecretKey;
use errand_core::identity::KeyFileError;
use zeroize::Zeroizing;

/// Largest key file we read: the real one is about 100 bytes.
const MAX_KEY_FILE: u64 = 4096;

/// Why a key could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// There is no key file at the path.
    #[error("no key at {path}: create one with `errand keygen --out {path}`")]
    Missing {
        /// Where we looked.
        path: PathBuf,
    },
    /// The key file can be read by other users.
    #[error(
        "key file {path} is readable by other users (mode {mode:04o}); \
         restrict it with `chmod 600 {path}`"
    )]
    TooOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file already exists where a new key would go.
    #[error("{path} already exists; pass --force to replace it (the old key is lost)")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a key file.
    #[error("{path}: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: KeyFileError,
    },
    /// The file is far too large to be a key file.
    #[error("{path} is {len} bytes, too large to be an errand key file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        len: u64,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// No home directory to put the default key in.
    #[error("cannot find a default key location: set $ERRAND_KEY or $HOME, or pass --key")]
    NoHome,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The default key path (see the module docs).
pub fn default_key_path() -> Result<PathBuf, KeyError> {
    if let Some(p) = std::env::var_os("ERRAND_KEY").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    Ok(config_dir()?.join("key"))
}

/// Errand's configuration directory: `$XDG_CONFIG_HOME/errand` or
/// `~/.config/errand`.
pub fn config_dir() -> Result<PathBuf, KeyError> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(x).join("errand"));
    }
    let home = std::env::var_os("HOME")
        .filter(|p| !p.is_empty())
        .ok_or(KeyError::NoHome)?;
    Ok(PathBuf::from(home).join(".config").join("errand"))
}

/// Loads the key at `path`, refusing files that others can read.
pub fn load(path: &Path) -> Result<SecretKey, KeyError> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(KeyError::Missing {
                path: path.to_owned(),
            });
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    let meta = file.metadata().map_err(io_err(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyError::TooLarge {
            path: path.to_owned(),
            len: meta.len(),
        });
    }
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(io_err(path))?;
    SecretKey::from_key_file(&text).map_err(|source| KeyError::Format {
        path: path.to_owned(),
        source,
    })
}

/// Writes `key` to `path` with mode 0600, creating parent directories with
/// mode 0700. Refuses to replace an existing file unless `force`; when
/// replacing, writes a temporary file and renames it over the old one, so a
/// crash never leaves a half-written key.
pub fn save(key: &SecretKey, path: &Path, force: bool) -> Result<(), KeyError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let text = key.to_key_file();
    if !force {
        let mut f = private_file(path, true).map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                KeyError::Exists {
                    path: path.to_owned(),
                }
            } else {
                io_err(path)(e)
            }
        })?;
        f.write_all(text.as_bytes()).map_err(io_err(path))?;
        return f.sync_all().map_err(io_err(path));
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = private_file(&tmp, false)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(path))
}

fn private_file(path: &Path, create_new: bool) -> io::Result<fs::File> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if create_new {
        opts.create_new(true);
    } else {
        opts.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load_round_trips_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key");
        let k = SecretKey::from_seed([4; 32]);
        save(&k, &path, false).unwrap();
        assert_eq!(load(&path).unwrap().peer_id(), k.peer_id());
        let k2 = SecretKey::from_seed([5; 32]);
        assert!(matches!(
            save(&k2, &path, false),
            Err(KeyError::Exists { .. })
        ));
        assert_eq!(load(&path).unwrap().peer_id(), k.peer_id());
        save(&k2, &path, true).unwrap();
        assert_eq!(load(&path).unwrap().peer_id(), k2.peer_id());
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_key_is_refused_with_a_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        save(&SecretKey::from_seed([4; 32]), &path, false).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
