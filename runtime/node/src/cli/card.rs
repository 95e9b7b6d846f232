//! `errand card`: the node's A2A Agent Card, signed with its key (see
//! [`errand::card`]); its public key as a JWK; and checking a card's
//! signature.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use errand::card;
use errand::config::NodeConfig;
use errand_core::PeerId;

/// Largest card file `--verify` reads.
const MAX_CARD_BYTES: u64 = 4 << 20;

const EXIT_FAILED: u8 = 1;
const EXIT_UNUSABLE: u8 = 2;

/// Arguments of `errand card`.
#[derive(Debug, Args)]
pub struct CardArgs {
    /// The node's configuration: its key, advertised addresses, packages,
    /// registry role and [card].
    #[arg(long, short, default_value = "node.toml")]
    config: PathBuf,
    /// Write to this file instead of stdout.
    #[arg(long, short, value_name = "FILE", conflicts_with = "verify")]
    out: Option<PathBuf>,
    /// Print the node's public key as a JWK (RFC 8037), the key a JOSE
    /// library or the a2a-sdk verifies the card's signature with.
    #[arg(long, conflicts_with = "verify")]
    jwk: bool,
    /// Check the signature of the card in FILE instead (needs no config).
    /// Exit status: 0 verified, 1 not verified, 2 unusable input.
    #[arg(long, value_name = "FILE")]
    verify: Option<PathBuf>,
    /// With --verify: the peer that must have signed the card [default:
    /// the peer its signature names].
    #[arg(long, value_name = "PEERID", requires = "verify")]
    peer: Option<PeerId>,
}

pub fn run(args: CardArgs) -> anyhow::Result<ExitCode> {
    if let Some(file) = &args.verify {
        return verify(file, args.peer);
    }
    let config = NodeConfig::load(&args.config)?;
    if args.jwk {
        let peer = card::node_key(&config)?.peer_id();
        let mut text = serde_json::to_string_pretty(&card::public_jwk(peer))?;
        text.push('\n');
        return output(args.out.as_deref(), &text, || {
            format!("the public key of {peer}")
        });
    }
    let made = card::from_config(&config)?;
    let mut text = serde_json::to_string_pretty(&made.card)?;
    text.push('\n');
    for s in &made.skipped {
        eprintln!("note: left off the card: {}", s.reason);
    }
    if card::loopback_only(&made.addrs) {
        eprintln!(
            "note: the card advertises only loopback addresses ({}): set `advertise` in {} \
             for agents on other machines",
            made.addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            args.config.display()
        );
    }
    output(args.out.as_deref(), &text, || {
        let skills: Vec<&str> = made.card.skills.iter().map(|s| s.id.as_str()).collect();
        format!(
            "the card of {} ({} skill{}: {})",
            made.peer,
            skills.len(),
            if skills.len() == 1 { "" } else { "s" },
            skills.join(", ")
        )
    })
}

/// Writes `text` to `out`, saying what it was on stderr, or to stdout.
fn output(
    out: Option<&std::path::Path>,
    text: &str,
    what: impl FnOnce() -> String,
) -> anyhow::Result<ExitCode> {
    match out {
        Some(path) => {
            errand::files::write_atomic(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {} to {}", what(), path.display());
        }
        None => super::write_stdout(text.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `errand card --verify FILE`.
fn verify(file: &std::path::Path, peer: Option<PeerId>) -> anyhow::Result<ExitCode> {
    let unusable = |msg: String| {
        eprintln!("error: {msg}");
        Ok(ExitCode::from(EXIT_UNUSABLE))
    };
    let bytes = match errand::files::read_bounded(file, MAX_CARD_BYTES) {
        Ok(b) => b,
        Err(e) => return unusable(e.to_string()),
    };
    let value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return unusable(format!("{} is not JSON: {e}", file.display())),
    };
    match card::verify(&value, peer) {
        Ok(v) => {
            outln!("verified: {} is signed by {}", file.display(), v.signer);
            outln!("  name:       {}", v.name);
            outln!("  skills:     {}", v.skills.join(", "));
            outln!("  interfaces: {}", v.interfaces.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Err(card::VerifyError::NotACard(why)) => unusable(format!("{}: {why}", file.display())),
        Err(e) => {
            eprintln!("NOT VERIFIED: {}: {e}", file.display());
            Ok(ExitCode::from(EXIT_FAILED))
        }
    }
}
