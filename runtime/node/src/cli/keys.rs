//! `errand keygen` and `errand id`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use errand::keystore;
use errand_core::SecretKey;

/// Arguments of `errand keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key [default: $ERRAND_KEY, else $XDG_CONFIG_HOME/errand/key, else ~/.config/errand/key].
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Replace an existing key file (the old identity is lost).
    #[arg(long)]
    force: bool,
}

/// Arguments of `errand id`.
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The key file [default: as for keygen].
    #[arg(long, short)]
    key: Option<PathBuf>,
}

/// Resolves `--key`, falling back to the default location.
pub fn key_path(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match arg {
        Some(p) => Ok(p),
        None => Ok(keystore::default_key_path()?),
    }
}

/// Loads the key named by `--key` or the default.
pub fn load_key(arg: Option<PathBuf>) -> anyhow::Result<SecretKey> {
    let path = key_path(arg)?;
    Ok(keystore::load(&path)?)
}

/// The default key, or, when there is none, a fresh identity used for this
/// command only: searching needs no lasting identity. A key that exists but
/// cannot be used is still an error, and so is a missing key that
/// `$ERRAND_KEY` names.
pub fn load_default_or_ephemeral() -> anyhow::Result<SecretKey> {
    // A key named explicitly in the environment must exist: a typo in
    // `ERRAND_KEY` should not silently become a throwaway identity.
    if std::env::var_os("ERRAND_KEY").is_some_and(|v| !v.is_empty()) {
        let path = keystore::default_key_path()?;
        return Ok(keystore::load(&path)?);
    }
    let missing = match keystore::default_key_path() {
        Ok(path) => match keystore::load(&path) {
            Ok(key) => return Ok(key),
            Err(keystore::KeyError::Missing { path }) => path.display().to_string(),
            Err(e) => return Err(e.into()),
        },
        Err(keystore::KeyError::NoHome) => "the default location".to_owned(),
        Err(e) => return Err(e.into()),
    };
    let key = fresh_key()?;
    eprintln!("note: no key at {missing}; searching with a one-off identity");
    Ok(key)
}

/// A new random secret key.
fn fresh_key() -> anyhow::Result<SecretKey> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut())
        .map_err(|e| anyhow::anyhow!("reading the system random number generator: {e}"))?;
    Ok(SecretKey::from_seed(*seed))
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let path = key_path(args.out)?;
    let key = fresh_key()?;
    keystore::save(&key, &path, args.force)?;
    eprintln!("wrote a new secret key to {} (mode 0600)", path.display());
    outln!("{}", key.peer_id());
    Ok(ExitCode::SUCCESS)
}

pub fn id(args: IdArgs) -> anyhow::Result<ExitCode> {
    let key = load_key(args.key)?;
    outln!("{}", key.peer_id());
    Ok(ExitCode::SUCCESS)
}
