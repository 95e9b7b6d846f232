//! Capability descriptors: what a peer offers, signed and soft-state.
//!
//! A publisher signs one [`Descriptor`] per capability and pushes it to
//! registries. It is *soft state*: valid from `issued_at` until
//! `issued_at + ttl`, after which every registry drops it unless the publisher
//! has refreshed it with a new signature. A higher `seq` for the same
//! `(publisher, name)` replaces a lower one, so a changed capability (new
//! version, drifted latency) wins over the old one at once.
//!
//! | field | bound |
//! |---|---|
//! | `name` | 1–64 bytes of `a-z 0-9 . _ - /`, starting with a letter or digit |
//! | `description` | 1024 bytes |
//! | `intents` | 32 tags of 1–48 bytes |
//! | `input`, `output` media type | 127 bytes, `type/subtype[; params]` |
//! | JSON Schema | 16 KiB, must parse as a JSON object |
//! | `addrs` | 8 paths, direct addresses and relays (format version 3); no port 0, no IPv6 scope id or flow info, nothing in 240.0.0.0/4, where relay circuits live ([`check_addr`]) |
//! | `ttl_ms` | 1 s to 24 h |
//!
//! **Default TTL: 15 s**, refreshed every 5 s (a third of the TTL, so two lost
//! refreshes in a row are tolerated). The seed paper found the staleness knee
//! near 15 s under high drift; a refresh costs one ~500-byte message per
//! capability per registry, about 100 B/s, and a node that dies drops out of
//! every index within 15 s. Changes are republished at once regardless, so the
//! TTL only bounds how long a *silent* failure stays visible.
//!
//! A publisher that stops offering a capability signs a *withdrawn*
//! descriptor (a tombstone) with a higher `seq`; registries drop the entry
//! at once instead of waiting for it to expire.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::bounded::{BString, BVec};
use crate::digest::Digest;
use crate::identity::PeerId;
use crate::signed::{Invalid, Kind, Object, Signable, Signed};
use crate::time::UnixMillis;

/// Default descriptor lifetime: 15 s (see the module docs).
pub const DEFAULT_TTL_MS: u32 = 15_000;
/// Default refresh interval: a third of the default TTL.
pub const DEFAULT_REFRESH_MS: u32 = DEFAULT_TTL_MS / 3;
/// Shortest TTL a descriptor may declare.
pub const MIN_TTL_MS: u32 = 1_000;
/// Longest TTL a descriptor may declare: one day.
pub const MAX_TTL_MS: u32 = 86_400_000;
/// How far in the future `issued_at` may be before a descriptor is refused,
/// to tolerate clock skew between publisher and registry.
pub const MAX_CLOCK_SKEW_MS: u64 = 30_000;

/// A capability name: `a-z 0-9 . _ - /`, 1–64 bytes, starting alphanumeric.
pub type Name = BString<64>;
/// An intent keyword or tag.
pub type Intent = BString<48>;
/// A media type such as `image/png` or `application/json; charset=utf-8`.
pub type MediaType = BString<127>;

/// A semantic version `major.minor.patch`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Version {
    /// Incompatible changes.
    pub major: u32,
    /// Compatible additions.
    pub minor: u32,
    /// Fixes.
    pub patch: u32,
}

impl Version {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A version that is not `major.minor.patch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid version {0:?}: expected major.minor.patch, e.g. 1.4.0")]
pub struct ParseVersionError(pub String);

impl FromStr for Version {
    type Err = ParseVersionError;
    fn from_str(s: &str) -> Result<Version, ParseVersionError> {
        let err = || ParseVersionError(s.to_owned());
        let mut it = s.trim().split('.');
        let mut num = || -> Result<u32, ParseVersionError> {
            let p = it.next().ok_or_else(err)?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            p.parse().map_err(|_| err())
        };
        let v = Version::new(num()?, num()?, num()?);
        if it.next().is_some() {
            return Err(err());
        }
        Ok(v)
    }
}

/// A media type plus an optional JSON Schema for its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MediaSpec {
    /// The media type.
    pub media_type: MediaType,
    /// A JSON Schema, as JSON text, when the content is JSON.
    pub schema: Option<BString<16384>>,
}

impl MediaSpec {
    /// A media type without a schema.
    pub fn new(media_type: &str) -> Result<MediaSpec, crate::bounded::BoundViolation> {
        Ok(MediaSpec {
            media_type: BString::new(media_type)?,
            schema: None,
        })
    }
}

/// The quality of service a publisher declares.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Qos {
    /// Expected end-to-end latency of one invocation, in milliseconds.
    pub latency_ms: u32,
    /// Price of one invocation, in abstract cost units.
    pub cost: u32,
    /// Expected fuel of one invocation.
    pub fuel: u64,
    /// Largest input accepted, in bytes.
    pub max_input_bytes: u64,
}

/// Which verification tiers a capability supports.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Tiers {
    /// Tier 2: it can be checked with canary inputs whose answers are known.
    pub canary: bool,
    /// Tier 3: the executor signs tool receipts.
    pub receipts: bool,
    /// Tier 3: runs are deterministic and can be checked by replay.
    pub replay: bool,
}

/// A path by which a publisher can be reached (see
/// `docs/reachability.md`). Whatever the path, the session is QUIC with
/// TLS bound to the publisher's key, end to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetAddr {
    /// QUIC over UDP, directly to this address.
    Quic(SocketAddr),
    /// QUIC through a relay that holds a reservation for the publisher: the
    /// relay's key and address. The relay forwards the publisher's
    /// ciphertext and never holds a key of the session. (Format version 3.)
    Relay {
        /// The relay's identity, which the requester's connection to the
        /// relay authenticates.
        relay: PeerId,
        /// The relay's address.
        addr: SocketAddr,
    },
}

impl NetAddr {
    /// The address packets are sent to: the publisher's own, or its
    /// relay's.
    pub fn socket_addr(&self) -> SocketAddr {
        match self {
            NetAddr::Quic(a) | NetAddr::Relay { addr: a, .. } => *a,
        }
    }

    /// Whether this path goes through a relay.
    pub fn is_relayed(&self) -> bool {
        matches!(self, NetAddr::Relay { .. })
    }
}

/// Why an address cannot go in a descriptor.
///
/// The encoding of an IPv6 socket address keeps the address and the port
/// only: a scope id or flow info would be lost on the way, so that the
/// descriptor a publisher signed would differ from the one every reader
/// decodes. Neither means anything on another machine anyway (a scope id
/// names one of the publisher's own interfaces). And 240.0.0.0/4 is where
/// a node keeps its relay circuits: a requester must never dial into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// Port 0 reaches nothing.
    #[error("{addr} with port 0")]
    PortZero {
        /// The address.
        addr: SocketAddr,
    },
    /// An IPv6 scope id: an interface of the publisher's machine.
    #[error(
        "{addr} with an IPv6 scope id ({scope_id}), which names an interface of one machine and which descriptors do not carry"
    )]
    ScopeId {
        /// The address.
        addr: SocketAddr,
        /// Its scope id.
        scope_id: u32,
    },
    /// IPv6 flow info, which belongs to one flow and which descriptors do
    /// not carry.
    #[error("{addr} with IPv6 flow info ({flowinfo:#x}), which descriptors do not carry")]
    FlowInfo {
        /// The address.
        addr: SocketAddr,
        /// Its flow info.
        flowinfo: u32,
    },
    /// An address in 240.0.0.0/4 (or its IPv4-mapped IPv6 form): Errand
    /// names relay circuits with these, so a dial to one would go into
    /// another session's circuit rather than to a peer.
    #[error(
        "{addr}, in 240.0.0.0/4, which Errand uses for relay circuits and at which no peer can be reached"
    )]
    Circuit {
        /// The address.
        addr: SocketAddr,
    },
}

/// Checks that `addr` can be published in a descriptor and reads back the
/// same (see [`AddrError`]).
pub fn check_addr(addr: &SocketAddr) -> Result<(), AddrError> {
    let addr = *addr;
    if let SocketAddr::V6(v6) = addr {
        if v6.scope_id() != 0 {
            return Err(AddrError::ScopeId {
                addr,
                scope_id: v6.scope_id(),
            });
        }
        if v6.flowinfo() != 0 {
            return Err(AddrError::FlowInfo {
                addr,
                flowinfo: v6.flowinfo(),
            });
        }
    }
    if addr.port() == 0 {
        return Err(AddrError::PortZero { addr });
    }
    let v4 = match addr.ip() {
        std::net::IpAddr::V4(ip) => Some(ip),
        std::net::IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    };
    if v4.is_some_and(|ip| ip.octets()[0] >= 240) {
        return Err(AddrError::Circuit { addr });
    }
    Ok(())
}

impl fmt::Display for NetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetAddr::Quic(a) => write!(f, "quic://{a}"),
            NetAddr::Relay { relay, addr } => write!(f, "relay://{relay}@{addr}"),
        }
    }
}

/// Which tool package a descriptor runs: its package digest (see
/// [`crate::package::Package::digest`]) and its author. Both must match a
/// fetched package before a requester uses it.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PackageRef {
    /// The package digest, committing to component, manifest, name,
    /// version and author.
    pub digest: Digest,
    /// The tool author, whose key signed the package.
    pub author: PeerId,
}

/// A signed, soft-state capability descriptor (see the module docs).
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The publishing peer, which signs the descriptor.
    pub publisher: PeerId,
    /// The capability's name.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::name))]
    pub name: Name,
    /// The capability's version.
    pub version: Version,
    /// What it does, in words a matcher can use.
    pub description: BString<1024>,
    /// Intent keywords and tags: what it is for.
    pub intents: BVec<Intent, 32>,
    /// What it takes.
    pub input: MediaSpec,
    /// What it returns.
    pub output: MediaSpec,
    /// The SHA-256 of its WebAssembly component, when it is one.
    pub component: Option<Digest>,
    /// The tool package it runs, named by package digest and author, when
    /// it is one: requesters fetch this exact package (from anyone) to make
    /// canaries and replay, and accept it only if the author signed it.
    pub package: Option<PackageRef>,
    /// Declared quality of service.
    pub qos: Qos,
    /// Supported verification tiers.
    pub tiers: Tiers,
    /// Where the publisher can be reached.
    pub addrs: BVec<NetAddr, 8>,
    /// Monotonic per `(publisher, name)`: higher replaces lower.
    pub seq: u64,
    /// When it was signed.
    pub issued_at: UnixMillis,
    /// How long it stays valid after `issued_at`.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::ttl_ms))]
    pub ttl_ms: u32,
    /// A tombstone: the publisher no longer offers this capability. It
    /// replaces older descriptors like any higher `seq`, and is never
    /// returned by queries.
    pub withdrawn: bool,
}

/// A signed descriptor.
pub type SignedDescriptor = Signed<Descriptor>;

/// Why a descriptor is not live at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Freshness {
    /// `issued_at + ttl` has passed.
    #[error("descriptor expired at {expired_at} (now {now})")]
    Expired {
        /// When it stopped being valid.
        expired_at: UnixMillis,
        /// The time it was checked at.
        now: UnixMillis,
    },
    /// `issued_at` is further in the future than clock skew explains.
    #[error("descriptor is issued at {issued_at}, in the future (now {now})")]
    FromTheFuture {
        /// Its claimed signing time.
        issued_at: UnixMillis,
        /// The time it was checked at.
        now: UnixMillis,
    },
}

impl Descriptor {
    /// When it stops being valid.
    pub fn expires_at(&self) -> UnixMillis {
        self.issued_at.plus_ms(u64::from(self.ttl_ms))
    }

    /// Whether it is valid at `now`.
    pub fn check_fresh(&self, now: UnixMillis) -> Result<(), Freshness> {
        if self.issued_at.0 > now.0.saturating_add(MAX_CLOCK_SKEW_MS) {
            return Err(Freshness::FromTheFuture {
                issued_at: self.issued_at,
                now,
            });
        }
        if now >= self.expires_at() {
            return Err(Freshness::Expired {
                expired_at: self.expires_at(),
                now,
            });
        }
        Ok(())
    }

    /// All the words a matcher may use: name, description and intents.
    pub fn text(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str())
            .chain(std::iter::once(self.description.as_str()))
            .chain(self.intents.iter().map(|i| i.as_str()))
    }
}

/// Checks a capability name.
pub fn validate_name(name: &str) -> Result<(), String> {
    let first_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !first_ok {
        return Err("must start with a lowercase letter or digit".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(*c)))
    {
        return Err(format!(
            "contains {c:?}: only a-z, 0-9, '.', '_', '-' and '/' are allowed"
        ));
    }
    Ok(())
}

fn validate_media(field: &'static str, m: &MediaSpec) -> Result<(), Invalid> {
    let essence = m.media_type.split(';').next().unwrap_or("").trim();
    let ok = essence.split_once('/').is_some_and(|(t, s)| {
        let tok = |x: &str| {
            !x.is_empty()
                && x.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(
                            b,
                            b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                        )
                })
        };
        tok(t) && tok(s)
    });
    if !ok || m.media_type.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            format!(
                "{:?} is not a media type like `image/png`",
                m.media_type.as_str()
            ),
        ));
    }
    if let Some(schema) = &m.schema {
        match serde_json::from_str::<serde_json::Value>(schema) {
            Ok(serde_json::Value::Object(_)) => {}
            _ => {
                return Err(Invalid::new(
                    field,
                    "has a schema that is not a JSON object",
                ));
            }
        }
    }
    Ok(())
}

impl Object for Descriptor {
    const KIND: Kind = Kind::Descriptor;
    /// 3: relay paths (`NetAddr::Relay`). Version 2 is still read: it is
    /// version 3 without them.
    const VERSION: u8 = 3;
    const MIN_VERSION: u8 = 2;

    fn check_version(&self, version: u8) -> Result<(), Invalid> {
        if version < 3 && self.addrs.iter().any(NetAddr::is_relayed) {
            return Err(Invalid::new(
                "addrs",
                format!("has a relay path, which format version {version} does not have"),
            ));
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), Invalid> {
        validate_name(&self.name).map_err(|p| Invalid::new("name", p))?;
        if self
            .description
            .chars()
            .any(|c| c.is_control() && c != '\n')
        {
            return Err(Invalid::new("description", "contains control characters"));
        }
        for tag in &self.intents {
            if tag.trim().is_empty() || tag.chars().any(char::is_control) {
                return Err(Invalid::new(
                    "intents",
                    format!("has an empty or unprintable tag {:?}", tag.as_str()),
                ));
            }
        }
        validate_media("input", &self.input)?;
        validate_media("output", &self.output)?;
        for addr in &self.addrs {
            let a = addr.socket_addr();
            check_addr(&a).map_err(|e| Invalid::new("addrs", format!("has {e}")))?;
            if let NetAddr::Relay { relay, .. } = addr
                && *relay == self.publisher
            {
                return Err(Invalid::new(
                    "addrs",
                    "names the publisher as its own relay",
                ));
            }
        }
        if !(MIN_TTL_MS..=MAX_TTL_MS).contains(&self.ttl_ms) {
            return Err(Invalid::new(
                "ttl_ms",
                format!("is {} ms, outside {MIN_TTL_MS}..={MAX_TTL_MS}", self.ttl_ms),
            ));
        }
        Ok(())
    }
}

impl Signable for Descriptor {
    fn signer(&self) -> PeerId {
        self.publisher
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_parses_and_prints() {
        let v: Version = "1.20.3".parse().unwrap();
        assert_eq!(v, Version::new(1, 20, 3));
        assert_eq!(v.to_string(), "1.20.3");
        for bad in ["1.2", "1.2.3.4", "a.b.c", "1..2", "-1.0.0", "1.0.0-beta"] {
            assert!(bad.parse::<Version>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("image/gen-v2.png_x").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("Image").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
    }
}
