//! # errand-core
//!
//! The I/O-free heart of Errand, the runtime personal AI agents use to hand
//! work to each other peer to peer. Everything here is pure data and logic: no
//! sockets, no files, no clocks, no randomness. Time and random bytes are
//! passed in, so the live node and the discrete-event simulator run exactly
//! the same code.
//!
//! | module | plane | what |
//! |---|---|---|
//! | [`identity`] | connectivity & identity | ed25519 peer ids and secret keys |
//! | [`signed`] | all | tagged, versioned, canonical encodings and signatures |
//! | [`descriptor`] | discovery | signed soft-state capability descriptors |
//! | [`request`] | execution / trust | signed invocation requests: what was asked |
//! | [`receipt`] | execution / trust | signed tool receipts |
//! | [`evidence`] | trust | evidence packages, traces, offline verification |
//! | [`manifest`], [`package`] | execution | capability manifests and tool packages |
//! | [`discovery`] | discovery | the registry index, intent matching, merging answers |
//! | [`wire`] | connectivity | request and response messages and their flows |
//! | [`reach`] | connectivity | relays, address discovery, NAT classification, hole punching |
//! | [`trust`] | trust | reputation, canaries, evidence checks, risk policy, the delegation state machine |
//!
//! ## Signing and checking a descriptor
//!
//! ```
//! use errand_core::descriptor::*;
//! use errand_core::{SecretKey, UnixMillis, bounded::{BString, BVec}};
//!
//! let key = SecretKey::from_seed([7; 32]); // use 32 bytes from a CSPRNG
//! let now = UnixMillis(1_772_600_000_000);
//! let descriptor = Descriptor {
//!     publisher: key.peer_id(),
//!     name: BString::new("text-stats")?,
//!     version: "1.0.0".parse()?,
//!     description: BString::new("Counts words, lines and characters")?,
//!     intents: BVec::new(vec![BString::new("count words")?])?,
//!     input: MediaSpec::new("text/plain")?,
//!     output: MediaSpec::new("application/json")?,
//!     component: None,
//!     package: None,
//!     qos: Qos { latency_ms: 20, cost: 1, fuel: 5_000_000, max_input_bytes: 1 << 20 },
//!     tiers: Tiers { canary: true, receipts: true, replay: true },
//!     addrs: BVec::empty(),
//!     seq: 1,
//!     issued_at: now,
//!     ttl_ms: DEFAULT_TTL_MS,
//!     withdrawn: false,
//! };
//! let signed = SignedDescriptor::sign(descriptor, &key)?;
//! let bytes = signed.to_bytes();
//!
//! // Anyone can open it: decoding checks structure, bounds and the signature.
//! let opened = SignedDescriptor::from_bytes(&bytes)?;
//! assert!(opened.body().check_fresh(now.plus_ms(1_000)).is_ok());
//! // Soft state: without a refresh it expires.
//! assert!(opened.body().check_fresh(now.plus_ms(15_000)).is_err());
//! // A descriptor's bytes are not a receipt, whatever the signature.
//! assert!(errand_core::receipt::SignedReceipt::from_bytes(&bytes).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Verifying evidence offline
//!
//! ```
//! use errand_core::evidence::{verify, Evidence, Supplied};
//! # fn demo(evidence_bytes: &[u8], input: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let evidence: Evidence = errand_core::signed::decode(evidence_bytes)?;
//! let report = verify(&evidence, &Supplied { input: Some(input), ..Default::default() });
//! for check in &report.checks {
//!     println!("{:10} {:?}", check.name, check.verdict);
//! }
//! assert!(report.verified());
//! # Ok(()) }
//! ```

pub mod bounded;
pub mod descriptor;
pub mod digest;
pub mod discovery;
pub mod evidence;
#[cfg(feature = "arbitrary")]
mod fuzzing;
pub mod identity;
pub mod manifest;
pub mod package;
pub mod reach;
pub mod receipt;
pub mod request;
pub mod signed;
pub mod testing;
pub mod time;
pub mod trust;
pub mod wire;

pub use digest::Digest;
pub use identity::{PeerId, SecretKey, Signature};
pub use signed::{DecodeError, Kind, Signed};
pub use time::UnixMillis;

/// This crate's version, as recorded in receipts' platform claims.
pub const ERRAND_VERSION: &str = env!("CARGO_PKG_VERSION");
