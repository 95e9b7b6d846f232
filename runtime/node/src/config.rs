//! `node.toml`: what a node hosts, where it publishes, and its limits.
//!
//! ```toml
//! key = "node.key"                 # default: the default key location
//! listen = "0.0.0.0:4433"
//! packages = "packages"            # folder of .errand packages to host
//! storage = "data"                 # receipts, reputation, compiled cache
//! advertise = ["203.0.113.7:4433"] # addresses put in descriptors (default: the listen address, if specific);
//!                                  # no IPv6 link-local address, scope id (`%eth0`) or flow info
//! relays = ["errand1…@198.51.100.9:4433"] # relays to reserve a path with (default: the registries that relay)
//! reachability = "auto"            # auto | public | private (see docs/reachability.md)
//!
//! [[registries]]                   # where to publish, and whom `errand find` asks
//! peer = "errand1…"
//! addr = "198.51.100.2:4433"
//!
//! [publish]
//! ttl_ms = 15000                   # descriptor lifetime
//! refresh_ms = 5000                # re-sign and re-publish this often
//! scan_ms = 2000                   # look for package changes this often
//! drift_ratio = 0.5                # republish when measured latency strays this far from declared
//!
//! [limits]                       # see errand_net for what each bounds
//! max_connections_per_peer = 16    # more from one key are refused (retryable), never evicted
//! max_connections = 1024           # incoming connections in all; more are refused before the handshake
//! handshakes_per_address = 32      # new connections a second from one IPv4 address or IPv6 /64;
//!                                  # more are refused before the handshake (peers behind one NAT share it)
//! handshake_burst_per_address = 128 # ...at once after a quiet spell
//! unproven_handshakes = 256        # a second, node-wide, from addresses not proven by a QUIC retry;
//!                                  # past it, clients prove theirs first (one more round trip); 0: always
//! max_streams_per_connection = 64
//! max_concurrent_invocations = 8
//! max_fuel = 5000000000
//! max_frame_bytes = 100663296
//! frame_memory_bytes = 268435456   # memory for requests in flight, all peers together
//! frame_memory_wait_ms = 2000      # a request waits this long for memory, then gets Busy
//! request_timeout_ms = 30000       # a peer sending a request
//! write_timeout_ms = 30000         # a peer taking delivery of a response
//!
//! [policy]                         # action shipping: running components requesters send
//! action_shipping = false
//! shipping_allow = ["errand1…"]    # requesters allowed to ship, when enabled
//! shipping_max_fuel = 1000000000
//! shipping_max_memory = 67108864
//!
//! [trust]                          # as a requester (errand workflow run --config)
//! low = "t1"                       # tiers per risk level: none, t1, t2, t3 or t3:P
//! medium = "t3:0"                  # T1+T2 and receipts bound to the request, no replay
//! high = "t3"
//! replay = 1.0                     # replay probability for t3
//! fallbacks = 4                    # most fallbacks per step, per discovery round
//! widen = 2                        # wider discovery rounds when a round finds no one trustworthy
//! exploration = 0.1                # chance of trying a newcomer first
//!
//! [adversary]                      # FOR DEMOS AND TESTS ONLY: makes the node cheat
//! behaviour = "wrong-output"       # wrong-output | forge-receipt | lazy | different-component | silent | drift | relay-flip-bits | relay-replay
//! advertise_latency_ms = 1         # lie about QoS to attract requests
//! advertise_cost = 0
//! impostor = "other.wasm"          # for different-component: what really runs
//! drift_period_ms = 2000           # for drift: alternately serve and refuse
//!
//! [relay]                          # present: this node relays for peers behind NAT (limits per peer)
//! max_reservations = 1024
//! max_reservations_per_address = 8 # per IPv4 address / IPv6 /64
//! max_circuits_per_peer = 16       # a requester address gets a quarter of a target's
//! max_circuit_bytes = 1073741824
//! max_circuit_duration_ms = 3600000
//! circuit_idle_ms = 60000          # a circuit silent one way this long is closed
//! circuits_per_minute = 60         # a requester address gets a quarter of a target's
//!
//! [registry]                       # present: this node is also a registry
//! max_entries = 1000000
//! max_per_publisher = 256
//! publish_rate = 100.0
//! publish_burst = 1000.0
//! ranking = "sampled"              # or "relevance" (see errand_core::discovery)
//!
//! [card]                           # the A2A Agent Card (`errand card`; see crate::card)
//! name = "Acme image tools"        # default: "Errand node" and the peer id's start
//! description = "…"                # default: made from the hosted tools
//! version = "2.1.0"                # default: Errand's version
//! documentation_url = "https://acme.example/tools"
//! provider = { organization = "Acme", url = "https://acme.example" }
//! ```
//!
//! Relative paths are relative to the folder holding `node.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use errand_core::PeerId;
use errand_core::descriptor::{DEFAULT_REFRESH_MS, DEFAULT_TTL_MS, MAX_TTL_MS, MIN_TTL_MS};
use errand_core::discovery::RegistryLimits;
use errand_core::reach::{Reachability, RelayLimits};
use serde::{Deserialize, Serialize};

/// A peer and its address: `errand1…@host:port` in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerAddr {
    /// The peer.
    pub peer: PeerId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.peer, self.addr)
    }
}

/// A `PEERID@ADDR` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid peer address {0:?}: expected errand1…@host:port ({1})")]
pub struct ParsePeerAddrError(pub String, pub String);

impl FromStr for PeerAddr {
    type Err = ParsePeerAddrError;
    fn from_str(s: &str) -> Result<PeerAddr, ParsePeerAddrError> {
        let err = |why: String| ParsePeerAddrError(s.to_owned(), why);
        let (peer, addr) = s
            .trim()
            .split_once('@')
            .ok_or_else(|| err("missing `@`".into()))?;
        Ok(PeerAddr {
            peer: peer
                .parse()
                .map_err(|e: errand_core::identity::ParsePeerIdError| err(e.to_string()))?,
            addr: addr
                .parse()
                .map_err(|e: std::net::AddrParseError| err(format!("address: {e}")))?,
        })
    }
}

/// A list of peers, each `PEERID@ADDR` or `{ peer = …, addr = … }`.
fn peer_addrs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PeerAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Table(PeerAddr),
    }
    Vec::<Either>::deserialize(d)?
        .into_iter()
        .map(|e| match e {
            Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
            Either::Table(p) => Ok(p),
        })
        .collect()
}

/// Publishing settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishConfig {
    /// Descriptor lifetime, in milliseconds.
    pub ttl_ms: u32,
    /// Refresh interval, in milliseconds.
    pub refresh_ms: u32,
    /// Package folder scan interval, in milliseconds.
    pub scan_ms: u32,
    /// Relative drift of measured latency that triggers a republish.
    pub drift_ratio: f64,
}

impl Default for PublishConfig {
    fn default() -> PublishConfig {
        PublishConfig {
            ttl_ms: DEFAULT_TTL_MS,
            refresh_ms: DEFAULT_REFRESH_MS,
            scan_ms: 2_000,
            drift_ratio: 0.5,
        }
    }
}

/// Resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections per peer.
    pub max_connections_per_peer: usize,
    /// Incoming connections in all, whoever the peers are.
    pub max_connections: usize,
    /// New connections a second from one source address (IPv4, or IPv6
    /// /64); more are refused before the handshake.
    pub handshakes_per_address: u32,
    /// New connections one source address may open at once.
    pub handshake_burst_per_address: u32,
    /// Handshakes a second, node-wide, with addresses not proven by a QUIC
    /// retry; past it, clients prove theirs first. 0: always.
    pub unproven_handshakes: u32,
    /// Concurrent requests per connection.
    pub max_streams_per_connection: u32,
    /// Invocations running at once; more wait briefly, then get `Busy`.
    pub max_concurrent_invocations: usize,
    /// The most fuel any invocation may have.
    pub max_fuel: u64,
    /// Largest frame, in bytes.
    pub max_frame_bytes: usize,
    /// Memory for frames in flight, every peer together, in bytes; at
    /// least `max_frame_bytes`.
    pub frame_memory_bytes: usize,
    /// How long a request may wait for frame memory before it is refused
    /// as `Busy`.
    pub frame_memory_wait_ms: u64,
    /// How long a peer may take to send a request.
    pub request_timeout_ms: u64,
    /// How long a peer may take to take delivery of a response.
    pub write_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> LimitsConfig {
        LimitsConfig {
            max_connections_per_peer: 16,
            max_connections: 1024,
            handshakes_per_address: 32,
            handshake_burst_per_address: 128,
            unproven_handshakes: 256,
            max_streams_per_connection: 64,
            max_concurrent_invocations: 8,
            max_fuel: 5_000_000_000,
            max_frame_bytes: 96 << 20,
            frame_memory_bytes: 256 << 20,
            frame_memory_wait_ms: 2_000,
            request_timeout_ms: 30_000,
            write_timeout_ms: 30_000,
        }
    }
}

/// Action-shipping policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Whether to run components requesters send at all.
    pub action_shipping: bool,
    /// Requesters allowed to ship components.
    pub shipping_allow: Vec<PeerId>,
    /// Fuel cap for shipped components.
    pub shipping_max_fuel: u64,
    /// Memory cap for shipped components, in bytes.
    pub shipping_max_memory: usize,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig {
            action_shipping: false,
            shipping_allow: Vec::new(),
            shipping_max_fuel: 1_000_000_000,
            shipping_max_memory: 64 << 20,
        }
    }
}

/// The registry role.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Most live entries.
    pub max_entries: usize,
    /// Most live capabilities per publisher.
    pub max_per_publisher: u32,
    /// Sustained descriptors per second per publisher.
    pub publish_rate: f64,
    /// Burst per publisher.
    pub publish_burst: f64,
    /// How matches are ordered: `sampled` (the default, robust to index
    /// poisoning) or `relevance` (BM25 × declared QoS).
    pub ranking: RankingChoice,
}

/// `[registry] ranking`: see `errand_core::discovery::Ranking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RankingChoice {
    /// Coverage of the intent, then a random order per query.
    #[default]
    Sampled,
    /// BM25 × declared QoS, deterministic.
    Relevance,
}

impl Default for RegistryConfig {
    fn default() -> RegistryConfig {
        let d = RegistryLimits::default();
        RegistryConfig {
            max_entries: d.max_entries,
            max_per_publisher: d.max_per_publisher,
            publish_rate: d.publish_rate,
            publish_burst: d.publish_burst,
            ranking: RankingChoice::default(),
        }
    }
}

impl RegistryConfig {
    /// As index limits.
    pub fn limits(&self) -> RegistryLimits {
        RegistryLimits {
            max_entries: self.max_entries,
            max_per_publisher: self.max_per_publisher,
            publish_rate: self.publish_rate,
            publish_burst: self.publish_burst,
        }
    }
}

/// The relay role: limits per peer (see `errand_net::relay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// Peers holding a reservation, in all.
    pub max_reservations: u32,
    /// Reservations held from one address (IPv4 address or IPv6 /64).
    pub max_reservations_per_address: u32,
    /// Circuits open at once with a given peer at either end.
    pub max_circuits_per_peer: u32,
    /// Bytes one circuit carries, both ways together.
    pub max_circuit_bytes: u64,
    /// How long one circuit lasts, in milliseconds.
    pub max_circuit_duration_ms: u64,
    /// How long either direction of a circuit may carry nothing, in
    /// milliseconds.
    pub circuit_idle_ms: u64,
    /// New circuits a given peer may open or receive per minute.
    pub circuits_per_minute: u32,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        let d = RelayLimits::default();
        RelayConfig {
            max_reservations: d.max_reservations,
            max_reservations_per_address: d.max_reservations_per_address,
            max_circuits_per_peer: d.max_circuits_per_peer,
            max_circuit_bytes: d.max_circuit_bytes,
            max_circuit_duration_ms: d.max_circuit_duration_ms,
            circuit_idle_ms: d.circuit_idle_ms,
            circuits_per_minute: d.circuits_per_minute,
        }
    }
}

impl RelayConfig {
    /// As relay limits.
    pub fn limits(&self) -> RelayLimits {
        RelayLimits {
            max_reservations: self.max_reservations,
            max_reservations_per_address: self.max_reservations_per_address,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_bytes: self.max_circuit_bytes,
            max_circuit_duration_ms: self.max_circuit_duration_ms,
            circuit_idle_ms: self.circuit_idle_ms,
            circuits_per_minute: self.circuits_per_minute,
        }
    }
}

/// Requester-side trust settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Tiers for low-risk steps.
    pub low: String,
    /// Tiers for medium-risk steps.
    pub medium: String,
    /// Tiers for high-risk steps.
    pub high: String,
    /// Replay probability for `t3`.
    pub replay: f64,
    /// Most fallbacks per step, per discovery round.
    pub fallbacks: usize,
    /// Wider discovery rounds after a round with no trustworthy executor
    /// (each asks for 4 times more candidates, leaving out those tried).
    pub widen: u8,
    /// Chance of trying a newcomer first.
    pub exploration: f64,
}

impl Default for TrustConfig {
    fn default() -> TrustConfig {
        TrustConfig {
            low: "t1".into(),
            medium: "t3:0".into(),
            high: "t3".into(),
            replay: 1.0,
            fallbacks: 4,
            widen: 2,
            exploration: 0.1,
        }
    }
}

impl TrustConfig {
    /// The risk policy this describes.
    pub fn risk_policy(&self) -> Result<errand_core::trust::RiskPolicy, String> {
        use errand_core::trust::{Policy, RiskPolicy};
        let tiers = |field: &str, v: &str| match Policy::parse(
            v,
            RiskPolicy::default(),
            self.replay,
        ) {
            Some(Policy::Fixed(t)) => Ok(t),
            _ => Err(format!(
                "trust.{field} = {v:?}: use none, t1, t2, t3 or t3:P (replay probability P, 0 to 1)"
            )),
        };
        let p = RiskPolicy {
            low: tiers("low", &self.low)?,
            medium: tiers("medium", &self.medium)?,
            high: tiers("high", &self.high)?,
        };
        Ok(p)
    }
}

/// How an adversarial node cheats (demos and tests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Behaviour {
    /// Runs the tool, then corrupts the output and signs a receipt for the
    /// corrupted output (a consistent lie: only canaries and replay see it).
    WrongOutput,
    /// Runs the tool correctly but returns a receipt signed by another key.
    ForgeReceipt,
    /// Saves work: runs with cheaper parameters but claims the requested
    /// ones in the receipt (only canaries and replay see it).
    Lazy,
    /// Runs `impostor` instead of the advertised component, and claims the
    /// advertised component's digest in its receipts.
    DifferentComponent,
    /// Accepts requests and never answers.
    Silent,
    /// Capability drift: alternately serves and refuses (`NotFound`) every
    /// `drift_period_ms`, while its descriptors stay published.
    Drift,
    /// Does cheaper work than asked: every numeric parameter is cut to a
    /// sixth (at least 1), and the receipt honestly names the parameters
    /// it ran with. Only a receipt bound to the signed request exposes it.
    ParamSwap,
    /// Serves honestly for its first `defect_after` invocations, building
    /// reputation, then lies like `wrong-output`.
    BuildThenDefect,
    /// Tells canaries from real work as well as it can: it pairs requests
    /// that one requester sends it for one capability close together and
    /// asks `errand_core::trust::detector` which of the two is the canary.
    /// It answers what it takes for a canary honestly, and lies (like
    /// `wrong-output`) on what it takes for real work; a request it cannot
    /// pair yet is answered honestly.
    CanaryAware,
    /// Runs requests honestly but serves a doctored manifest (no examples,
    /// limits no run meets) for the package it advertises, so that a
    /// requester who used it would fail its own canaries and replays and
    /// blame honest executors. Author-signed packages refuse it.
    FrameTheHonest,
    /// As a relay: flips a bit in every packet it relays after the first
    /// few each way (the sessions' encryption makes the peers drop them).
    RelayFlipBits,
    /// As a relay: sends every packet twice, and the one before it again.
    RelayReplay,
    /// One of a colluding ring: lies like `wrong-output` (every member
    /// corrupts alike, so members agree with each other when one witnesses
    /// another's cross-check) and refuses to serve the package it
    /// advertises, so that a requester cannot run the component itself and
    /// must fall back to a cross-check the ring hopes to win.
    WitnessLiar,
}

/// Adversarial behaviour (demos and tests only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdversaryConfig {
    /// How it cheats.
    pub behaviour: Behaviour,
    /// Latency to advertise instead of the true one.
    #[serde(default)]
    pub advertise_latency_ms: Option<u32>,
    /// Cost to advertise instead of the true one.
    #[serde(default)]
    pub advertise_cost: Option<u32>,
    /// Extra intent tags to advertise, to match more queries.
    #[serde(default)]
    pub extra_intents: Vec<String>,
    /// The component that really runs, for `different-component`.
    #[serde(default)]
    pub impostor: Option<PathBuf>,
    /// Half-period of `drift`, in milliseconds.
    #[serde(default = "default_drift_period")]
    pub drift_period_ms: u64,
    /// Honest invocations before `build-then-defect` defects.
    #[serde(default = "default_defect_after")]
    pub defect_after: u64,
}

fn default_defect_after() -> u64 {
    5
}

fn default_drift_period() -> u64 {
    2_000
}

/// A node's configuration (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The key file.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// UDP listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Folder of packages to host.
    #[serde(default)]
    pub packages: Option<PathBuf>,
    /// Storage folder.
    #[serde(default = "default_storage")]
    pub storage: PathBuf,
    /// Addresses to advertise.
    #[serde(default)]
    pub advertise: Vec<SocketAddr>,
    /// Registries to publish to.
    #[serde(default)]
    pub registries: Vec<PeerAddr>,
    /// Publishing.
    #[serde(default)]
    pub publish: PublishConfig,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Action-shipping policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// The registry role, if enabled.
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
    /// The relay role, if enabled.
    #[serde(default)]
    pub relay: Option<RelayConfig>,
    /// Relays to keep a reservation with when unreachable (default: the
    /// registries, those of them that relay), as `PEERID@ADDR`.
    #[serde(default, deserialize_with = "peer_addrs")]
    pub relays: Vec<PeerAddr>,
    /// Whether the node may be dialled at its own addresses.
    #[serde(default)]
    pub reachability: Reachability,
    /// Requester-side trust settings.
    #[serde(default)]
    pub trust: TrustConfig,
    /// Adversarial behaviour, for demos and tests only.
    #[serde(default)]
    pub adversary: Option<AdversaryConfig>,
    /// How `errand card` presents the node.
    #[serde(default)]
    pub card: crate::card::CardConfig,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 4433))
}

fn default_storage() -> PathBuf {
    PathBuf::from("data")
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("{path}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        reason: String,
    },
    /// A value is out of range.
    #[error("{path}: `{field}` {problem}")]
    Value {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl NodeConfig {
    /// Reads and checks `path`, resolving relative paths against its folder.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut c: NodeConfig = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(k) = c.key.as_mut() {
            resolve(k);
        }
        if let Some(p) = c.packages.as_mut() {
            resolve(p);
        }
        if let Some(i) = c.adversary.as_mut().and_then(|a| a.impostor.as_mut()) {
            resolve(i);
        }
        resolve(&mut c.storage);
        c.check(path)?;
        Ok(c)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let bad = |field: &'static str, problem: String| ConfigError::Value {
            path: path.to_owned(),
            field,
            problem,
        };
        // What goes in descriptors must read back the same everywhere.
        for a in &self.advertise {
            if let Some(why) = unadvertisable(a) {
                return Err(bad("advertise", format!("holds {why}")));
            }
        }
        if self.advertise.is_empty() && !self.listen.ip().is_unspecified() {
            // The listen address is advertised as it is bound: its port
            // may be 0 here, chosen when it is bound.
            let why = match errand_core::descriptor::check_addr(&self.listen) {
                Ok(()) | Err(errand_core::descriptor::AddrError::PortZero { .. }) => {
                    link_local(&self.listen)
                }
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = why {
                return Err(bad(
                    "listen",
                    format!(
                        "is advertised when `advertise` is empty, but cannot be: {why}; set `advertise` to addresses other machines can reach"
                    ),
                ));
            }
        }
        let p = &self.publish;
        if !(MIN_TTL_MS..=MAX_TTL_MS).contains(&p.ttl_ms) {
            return Err(bad(
                "publish.ttl_ms",
                format!("must be {MIN_TTL_MS}..={MAX_TTL_MS}"),
            ));
        }
        if p.refresh_ms == 0 || p.refresh_ms >= p.ttl_ms {
            return Err(bad(
                "publish.refresh_ms",
                format!(
                    "must be above 0 and below ttl_ms ({}), or descriptors expire between refreshes",
                    p.ttl_ms
                ),
            ));
        }
        if p.scan_ms == 0 {
            return Err(bad("publish.scan_ms", "must be above 0".into()));
        }
        // Written to reject NaN as well as values at or below zero.
        if !p.drift_ratio.is_finite() || p.drift_ratio <= 0.0 {
            return Err(bad("publish.drift_ratio", "must be above 0".into()));
        }
        let l = &self.limits;
        for (field, v) in [
            (
                "limits.max_connections_per_peer",
                l.max_connections_per_peer,
            ),
            ("limits.max_connections", l.max_connections),
            (
                "limits.max_concurrent_invocations",
                l.max_concurrent_invocations,
            ),
            ("limits.max_frame_bytes", l.max_frame_bytes),
        ] {
            if v == 0 {
                return Err(bad(field, "must be above 0".into()));
            }
        }
        for (field, v) in [
            ("limits.handshakes_per_address", l.handshakes_per_address),
            (
                "limits.handshake_burst_per_address",
                l.handshake_burst_per_address,
            ),
        ] {
            if v == 0 {
                return Err(bad(
                    field,
                    "must be above 0, or no one could connect".into(),
                ));
            }
        }
        if l.max_streams_per_connection == 0 {
            return Err(bad(
                "limits.max_streams_per_connection",
                "must be above 0".into(),
            ));
        }
        if l.frame_memory_bytes < l.max_frame_bytes {
            return Err(bad(
                "limits.frame_memory_bytes",
                format!(
                    "must be at least max_frame_bytes ({}), or the largest request could never be received",
                    l.max_frame_bytes
                ),
            ));
        }
        for (field, v) in [
            ("limits.request_timeout_ms", l.request_timeout_ms),
            ("limits.write_timeout_ms", l.write_timeout_ms),
        ] {
            if v == 0 {
                return Err(bad(field, "must be above 0".into()));
            }
        }
        self.trust.risk_policy().map_err(|e| bad("trust", e))?;
        if !(0.0..=1.0).contains(&self.trust.replay)
            || !(0.0..=1.0).contains(&self.trust.exploration)
        {
            return Err(bad(
                "trust",
                "replay and exploration are probabilities, 0 to 1".into(),
            ));
        }
        if let Some(a) = &self.adversary
            && a.behaviour == Behaviour::DifferentComponent
            && a.impostor.is_none()
        {
            return Err(bad(
                "adversary.impostor",
                "is required for behaviour different-component".into(),
            ));
        }
        if let Some(r) = &self.relay {
            for (field, zero) in [
                ("relay.max_reservations", r.max_reservations == 0),
                (
                    "relay.max_reservations_per_address",
                    r.max_reservations_per_address == 0,
                ),
                ("relay.max_circuits_per_peer", r.max_circuits_per_peer == 0),
                ("relay.circuit_idle_ms", r.circuit_idle_ms == 0),
                ("relay.max_circuit_bytes", r.max_circuit_bytes == 0),
                (
                    "relay.max_circuit_duration_ms",
                    r.max_circuit_duration_ms == 0,
                ),
                ("relay.circuits_per_minute", r.circuits_per_minute == 0),
            ] {
                if zero {
                    return Err(bad(field, "must be above 0".into()));
                }
            }
        }
        if let Some(a) = &self.adversary
            && matches!(
                a.behaviour,
                Behaviour::RelayFlipBits | Behaviour::RelayReplay
            )
            && self.relay.is_none()
        {
            return Err(bad(
                "adversary.behaviour",
                "relay-flip-bits and relay-replay need a [relay] section".into(),
            ));
        }
        if let Some(r) = &self.registry
            && (r.max_entries == 0
                || r.max_per_publisher == 0
                || !r.publish_rate.is_finite()
                || r.publish_rate <= 0.0)
        {
            return Err(bad("registry", "limits must be above 0".into()));
        }
        Ok(())
    }

    /// The addresses to put in descriptors (with
    /// `reachability = "private"`, only those `advertise` lists). One that
    /// no descriptor can carry (see [`unadvertisable`]; [`NodeConfig::load`]
    /// refuses them) is left out, with a warning.
    pub fn advertised(&self, bound: SocketAddr) -> Vec<SocketAddr> {
        let mut addrs = self.advertised_unchecked(bound);
        addrs.retain(|a| match unadvertisable(a) {
            Some(why) => {
                tracing::warn!(addr = %a, "not advertising {why}");
                false
            }
            None => true,
        });
        addrs
    }

    fn advertised_unchecked(&self, bound: SocketAddr) -> Vec<SocketAddr> {
        if !self.advertise.is_empty() {
            return self.advertise.clone();
        }
        if self.reachability == Reachability::Private {
            return Vec::new();
        }
        if bound.ip().is_unspecified() {
            // Listening on every interface: advertise loopback, the one
            // address sure to reach us; set `advertise` for anything else.
            let ip = match bound {
                SocketAddr::V4(_) => std::net::IpAddr::from([127, 0, 0, 1]),
                SocketAddr::V6(_) => std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            };
            return vec![SocketAddr::new(ip, bound.port())];
        }
        vec![bound]
    }
}

/// Why `addr` cannot be put in a descriptor, if it cannot: what
/// [`errand_core::descriptor::check_addr`] refuses (port 0, an IPv6 scope
/// id or flow info, 240.0.0.0/4), and IPv6 link-local addresses, which reach the node
/// only through an interface that no descriptor can name.
pub fn unadvertisable(addr: &SocketAddr) -> Option<String> {
    if let Err(e) = errand_core::descriptor::check_addr(addr) {
        return Some(e.to_string());
    }
    link_local(addr)
}

/// Why `addr` cannot be advertised if it is IPv6 link-local.
fn link_local(addr: &SocketAddr) -> Option<String> {
    match addr {
        SocketAddr::V6(a) if a.ip().is_unicast_link_local() => Some(format!(
            "{addr}, an IPv6 link-local address, reachable only through an interface that descriptors cannot name"
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addr_parses_and_prints() {
        let id = errand_core::SecretKey::from_seed([1; 32]).peer_id();
        let s = format!("{id}@127.0.0.1:4433");
        let pa: PeerAddr = s.parse().unwrap();
        assert_eq!(pa.to_string(), s);
        assert!("nope".parse::<PeerAddr>().is_err());
        assert!(format!("{id}@nowhere").parse::<PeerAddr>().is_err());
    }

    #[test]
    fn minimal_config_gets_defaults_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, "listen = \"127.0.0.1:0\"\n").unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.publish.ttl_ms, DEFAULT_TTL_MS);
        assert_eq!(c.storage, dir.path().join("data"));
        assert!(c.registry.is_none());
        std::fs::write(&p, "[publish]\nttl_ms = 5000\nrefresh_ms = 6000\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("publish.refresh_ms"), "{e}");
        std::fs::write(&p, "colour = \"blue\"\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn registry_ranking_defaults_to_sampled_and_a_typo_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, "[registry]\n").unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.registry.unwrap().ranking, RankingChoice::Sampled);
        std::fs::write(&p, "[registry]\nranking = \"relevance\"\n").unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.registry.unwrap().ranking, RankingChoice::Relevance);
        std::fs::write(&p, "[registry]\nranking = \"relevant\"\n").unwrap();
        let e = format!("{:#}", NodeConfig::load(&p).unwrap_err());
        assert!(e.contains("relevant") && e.contains("sampled"), "{e}");
    }

    #[test]
    fn relay_settings_default_and_zero_limits_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, "").unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert!(c.relay.is_none() && c.relays.is_empty());
        assert_eq!(c.reachability, Reachability::Auto);
        let id = errand_core::SecretKey::from_seed([1; 32]).peer_id();
        std::fs::write(
            &p,
            format!(
                "reachability = \"private\"\nrelays = [\"{id}@127.0.0.1:4433\"]\n[relay]\ncircuits_per_minute = 5\n"
            ),
        )
        .unwrap();
        let c = NodeConfig::load(&p).unwrap();
        assert_eq!(c.relay.unwrap().limits().circuits_per_minute, 5);
        assert_eq!(c.relays[0].peer, id);
        // Private: no direct address unless one is listed.
        assert!(c.advertised("127.0.0.1:4433".parse().unwrap()).is_empty());
        std::fs::write(&p, "[relay]\nmax_circuit_bytes = 0\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("relay.max_circuit_bytes"), "{e}");
        std::fs::write(&p, "reachability = \"hidden\"\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("hidden") && e.contains("private"), "{e}");
    }

    #[test]
    fn frame_memory_and_write_timeout_are_configurable_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("node.toml");
        std::fs::write(&p, "").unwrap();
        let l = NodeConfig::load(&p).unwrap().limits;
        assert_eq!(l.frame_memory_bytes, 256 << 20);
        assert!(l.frame_memory_bytes >= l.max_frame_bytes);
        std::fs::write(
            &p,
            "[limits]\nframe_memory_bytes = 33554432\nmax_frame_bytes = 16777216\nwrite_timeout_ms = 500\n",
        )
        .unwrap();
        let l = NodeConfig::load(&p).unwrap().limits;
        assert_eq!((l.frame_memory_bytes, l.write_timeout_ms), (32 << 20, 500));
        // A budget that cannot hold the largest frame is refused, by name.
        std::fs::write(&p, "[limits]\nframe_memory_bytes = 1048576\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("limits.frame_memory_bytes"), "{e}");
        std::fs::write(&p, "[limits]\nwrite_timeout_ms = 0\n").unwrap();
        let e = NodeConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("limits.write_timeout_ms"), "{e}");
    }
}
