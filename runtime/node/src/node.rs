//! The runtime node: hosts packages, serves invocations, publishes
//! descriptors, and optionally acts as a registry.
//!
//! ## What runs
//!
//! * **Serving** (see [`errand_net::serve`]): every request from every peer,
//!   concurrently; invocations are limited to
//!   `limits.max_concurrent_invocations` at once. Connections, streams,
//!   frame memory and timeouts are bounded by `[limits]` (see
//!   [`errand_net`]); a peer at a limit is refused new work, retryably,
//!   and never loses work in flight.
//! * **Package scanner**: every `publish.scan_ms`, the packages folder is
//!   compared with what is hosted. Added, updated and removed packages take
//!   effect at once and trigger a republish (removed ones as tombstones).
//! * **Publisher**: every `publish.refresh_ms`, and at once on any change,
//!   one freshly signed descriptor per hosted capability goes to every
//!   configured registry, with a new sequence number each time.
//! * **Drift**: the node measures each capability's latency (an EWMA over
//!   its runs) and republishes with the measured figure when it strays from
//!   the declared one by more than `publish.drift_ratio`.
//! * **Registry** (with `[registry]`): checks and indexes published
//!   descriptors, answers queries, and drops expired entries every second.
//! * **Relay** (with `[relay]`): carries circuits for peers behind NAT,
//!   within its per-peer limits (see `errand_net::relay`).
//! * **Reachability**: every 30 s the node asks its registries and relays
//!   which address they see it at, and classifies its NAT from their
//!   answers only (observers it chose; a relay that some peer's
//!   descriptor names never counts, see `errand_net::paths`). Unless it is
//!   public (`reachability`, see `docs/reachability.md`), it keeps a
//!   reservation with its relays (`relays`, or the registries that relay)
//!   and publishes them as paths; a change of paths is republished at once.
//!
//! An invocation's receipt is stored durably before the result is returned.
//! On SIGINT or SIGTERM the node withdraws its descriptors (best effort),
//! stops accepting, and exits.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use errand_core::bounded::{BBytes, BString, BVec};
use errand_core::descriptor::{Descriptor, Name, NetAddr, SignedDescriptor};
use errand_core::discovery::{Index, Ranking};
use errand_core::manifest::Manifest;
use errand_core::package::Package;
use errand_core::receipt::{CapabilityRef, InvocationContext, RequestId};
use errand_core::request::CapabilityTarget;
use errand_core::signed;
use errand_core::wire::{
    ErrorCode, HostedCapability, InvokeRequest, InvokeResponse, PublishOutcome, Request, Response,
    StatusReport, WireError,
};
use errand_core::{Digest, PeerId, SecretKey, UnixMillis};
use errand_host::{Host, HostConfig, Invocation, Limits, Prepared, ReceiptInfo};
use errand_net::relay::{Reservation, Tamper};
use errand_net::{Endpoint, Handler, NetConfig};

use crate::config::{Behaviour, NodeConfig};
use crate::packaging;
use crate::store::{Store, StoreError};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The key could not be loaded.
    #[error(transparent)]
    Key(#[from] crate::keystore::KeyError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The WebAssembly host could not start.
    #[error(transparent)]
    Host(#[from] errand_host::HostError),
    /// The network endpoint could not start.
    #[error(transparent)]
    Net(#[from] errand_net::NetError),
    /// The packages folder cannot be read.
    #[error("cannot read packages folder {path}: {source}")]
    Packages {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The current time, as data for the I/O-free core.
pub fn now() -> UnixMillis {
    UnixMillis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections here never leave state half-updated on panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A capability this node hosts.
struct Hosted {
    path: PathBuf,
    file_key: (SystemTime, u64),
    package: Package,
    manifest: Manifest,
    prepared: Arc<Prepared>,
    limits: Limits,
    template: Descriptor,
    declared_latency: AtomicU32,
    latency: Mutex<(f64, u32)>,
    seq: AtomicU64,
}

impl Hosted {
    fn name(&self) -> &Name {
        &self.template.name
    }
}

struct Inner {
    config: NodeConfig,
    key: SecretKey,
    endpoint: Endpoint,
    host: Host,
    store: Store,
    registry: Option<Mutex<Index>>,
    hosted: std::sync::RwLock<HashMap<Name, Arc<Hosted>>>,
    tombstones: Mutex<Vec<Descriptor>>,
    started: Instant,
    invocations: AtomicU64,
    invocation_slots: tokio::sync::Semaphore,
    in_flight: Mutex<HashSet<(PeerId, RequestId)>>,
    /// A `canary-aware` adversary's detector and the last request of each
    /// requester and capability (demos and tests only).
    aware: Mutex<Aware>,
    changed: tokio::sync::Notify,
    advertised: Vec<SocketAddr>,
    /// The component an adversary really runs (`different-component`).
    impostor: Option<Arc<Prepared>>,
    /// Publish messages and bytes received as a registry.
    publish_traffic: (AtomicU64, AtomicU64),
    /// The paths published now: direct addresses, then relays holding a
    /// reservation for this node.
    paths: Mutex<Vec<NetAddr>>,
}

/// A running node. Dropping it does not stop it: call [`Node::shutdown`].
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

impl Node {
    /// Starts a node from `config`: loads the key, opens the store, loads
    /// the packages, binds the endpoint and starts serving and publishing.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        Node::start_with_host(config, None).await
    }

    /// [`Node::start`], running tools on `host` when given (several nodes in
    /// one process, as `errand demo` runs them, share one engine and its
    /// compiled components) instead of an engine of its own.
    pub async fn start_with_host(
        config: NodeConfig,
        host: Option<Host>,
    ) -> Result<Node, NodeError> {
        let key_path = match &config.key {
            Some(k) => k.clone(),
            None => crate::keystore::default_key_path()?,
        };
        let key = crate::keystore::load(&key_path)?;
        let store = Store::open(&config.storage)?;
        let host = match host {
            Some(h) => h,
            None => Host::with_config(HostConfig {
                cache_dir: Some(config.storage.join("compiled")),
                max_concurrent: (config.limits.max_concurrent_invocations as u32)
                    .saturating_mul(2)
                    .max(4),
                ..HostConfig::default()
            })?,
        };
        let l = &config.limits;
        let endpoint = Endpoint::bind(
            config.listen,
            key.clone(),
            NetConfig {
                max_frame_bytes: l.max_frame_bytes,
                frame_memory_bytes: l.frame_memory_bytes,
                frame_memory_wait: Duration::from_millis(l.frame_memory_wait_ms),
                request_timeout: Duration::from_millis(l.request_timeout_ms),
                write_timeout: Duration::from_millis(l.write_timeout_ms),
                max_streams_per_connection: l.max_streams_per_connection,
                max_connections_per_peer: l.max_connections_per_peer,
                max_connections: l.max_connections,
                handshakes_per_address: l.handshakes_per_address,
                handshake_burst_per_address: l.handshake_burst_per_address,
                unproven_handshakes: l.unproven_handshakes,
                relay: config.relay.map(|r| r.limits()),
                relay_tamper: match config.adversary.as_ref().map(|a| a.behaviour) {
                    Some(Behaviour::RelayFlipBits) => Some(Tamper::FlipBits),
                    Some(Behaviour::RelayReplay) => Some(Tamper::Replay),
                    _ => None,
                },
                ..NetConfig::default()
            },
        )?;
        let bound = endpoint
            .local_addr()
            .map_err(|source| errand_net::NetError::Bind {
                addr: config.listen,
                source,
            })?;
        let registry = config.registry.map(|r| {
            let ranking = match r.ranking {
                crate::config::RankingChoice::Relevance => Ranking::Relevance,
                crate::config::RankingChoice::Sampled => Ranking::Sampled {
                    seed: random_seed(),
                },
            };
            Mutex::new(Index::keyed(r.limits(), ranking, random_seed()))
        });
        let impostor = match config.adversary.as_ref().and_then(|a| a.impostor.as_ref()) {
            Some(path) => {
                let tool = packaging::load_tool(path).map_err(|e| NodeError::Packages {
                    path: path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                Some(
                    host.prepare(&tool.component)
                        .map_err(|e| NodeError::Packages {
                            path: path.clone(),
                            source: std::io::Error::other(e.to_string()),
                        })?,
                )
            }
            None => None,
        };
        if let Some(a) = &config.adversary {
            tracing::warn!(behaviour = ?a.behaviour, "ADVERSARY MODE: this node cheats on purpose (demos and tests only)");
        }
        let advertised = config.advertised(bound);
        let inner = Arc::new(Inner {
            paths: Mutex::new(advertised.iter().map(|a| NetAddr::Quic(*a)).collect()),
            advertised,
            invocation_slots: tokio::sync::Semaphore::new(config.limits.max_concurrent_invocations),
            config,
            key,
            endpoint,
            host,
            store,
            registry,
            hosted: std::sync::RwLock::new(HashMap::new()),
            tombstones: Mutex::new(Vec::new()),
            started: Instant::now(),
            invocations: AtomicU64::new(0),
            in_flight: Mutex::new(HashSet::new()),
            aware: Mutex::new(Aware::default()),
            changed: tokio::sync::Notify::new(),
            impostor,
            publish_traffic: (AtomicU64::new(0), AtomicU64::new(0)),
        });
        let node = Node { inner };
        node.write_runtime_file();
        node.scan().await?;
        tokio::spawn(errand_net::serve(
            node.inner.endpoint.clone(),
            node.inner.clone(),
        ));
        tokio::spawn(publisher(node.inner.clone()));
        tokio::spawn(scanner(node.inner.clone()));
        tokio::spawn(reacher(node.inner.clone()));
        if node.inner.registry.is_some() {
            tokio::spawn(expirer(node.inner.clone()));
        }
        Ok(node)
    }

    /// Records where the node actually listens in `storage/node.json`, so
    /// local tools (`errand status --config`) find it even when the
    /// configured port is 0.
    fn write_runtime_file(&self) {
        let info = serde_json::json!({
            "peer": self.peer_id().to_string(),
            "addr": self.local_addr().to_string(),
            "advertised": self.inner.advertised.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "pid": std::process::id(),
        });
        let path = runtime_file(&self.inner.config.storage);
        if let Err(e) = crate::files::write_atomic(&path, info.to_string().as_bytes()) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the runtime file");
        }
    }

    /// The node's identity.
    pub fn peer_id(&self) -> PeerId {
        self.inner.key.peer_id()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner
            .endpoint
            .local_addr()
            .unwrap_or(self.inner.config.listen)
    }

    /// The addresses it advertises.
    pub fn advertised(&self) -> &[SocketAddr] {
        &self.inner.advertised
    }

    /// The paths it publishes now (direct addresses and relays).
    pub fn paths(&self) -> Vec<NetAddr> {
        lock(&self.inner.paths).clone()
    }

    /// The node's network endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.inner.endpoint
    }

    /// Names of the hosted capabilities.
    pub fn hosted(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.inner.hosted)
            .keys()
            .map(|n| n.to_string())
            .collect();
        v.sort();
        v
    }

    /// Publish messages and bytes this node has received as a registry.
    pub fn publish_traffic(&self) -> (u64, u64) {
        (
            self.inner.publish_traffic.0.load(Ordering::Relaxed),
            self.inner.publish_traffic.1.load(Ordering::Relaxed),
        )
    }

    /// The node's status.
    pub fn status(&self) -> StatusReport {
        self.inner.status()
    }

    /// Rescans the packages folder now (also runs periodically).
    pub async fn scan(&self) -> Result<bool, NodeError> {
        let inner = self.inner.clone();
        let changed = tokio::task::spawn_blocking(move || inner.scan_packages())
            .await
            .map_err(|e| NodeError::Packages {
                path: PathBuf::new(),
                source: std::io::Error::other(e.to_string()),
            })??;
        if changed {
            self.inner.changed.notify_one();
        }
        Ok(changed)
    }

    /// Withdraws every descriptor from the registries (best effort, bounded
    /// in time), then closes the endpoint.
    pub async fn shutdown(&self) {
        let withdrawn: Vec<Descriptor> = read(&self.inner.hosted)
            .values()
            .map(|h| h.template.clone())
            .collect();
        lock(&self.inner.tombstones).extend(withdrawn);
        let _ =
            tokio::time::timeout(Duration::from_secs(2), publish_once(&self.inner, false)).await;
        self.inner.endpoint.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.endpoint.wait_idle()).await;
    }
}

fn read<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn err(code: ErrorCode, msg: impl std::fmt::Display) -> Response {
    Response::Error(WireError::new(code, msg))
}

impl Inner {
    /// Compares the packages folder with what is hosted and applies the
    /// difference. Returns whether anything changed.
    fn scan_packages(&self) -> Result<bool, NodeError> {
        let Some(dir) = &self.config.packages else {
            return Ok(false);
        };
        let files = crate::packaging::package_files(dir).map_err(|source| NodeError::Packages {
            path: dir.clone(),
            source,
        })?;
        let current: HashMap<Name, Arc<Hosted>> = read(&self.hosted).clone();
        let by_path: HashMap<&Path, &Arc<Hosted>> =
            current.values().map(|h| (h.path.as_path(), h)).collect();
        let mut next: HashMap<Name, Arc<Hosted>> = HashMap::new();
        for path in files {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let file_key = (meta.modified().unwrap_or(UNIX_EPOCH), meta.len());
            let hosted = match by_path.get(path.as_path()) {
                Some(h) if h.file_key == file_key => (*h).clone(),
                _ => match self.load_package(&path, file_key) {
                    Ok(h) => Arc::new(h),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "skipping package");
                        continue;
                    }
                },
            };
            if let Some(other) = next.get(hosted.name()) {
                tracing::warn!(
                    name = %hosted.name(), kept = %other.path.display(), skipped = %path.display(),
                    "two packages with the same capability name"
                );
                continue;
            }
            next.insert(hosted.name().clone(), hosted);
        }
        let mut changed = false;
        for (name, old) in &current {
            match next.get(name) {
                None => {
                    tracing::info!(%name, "package removed; withdrawing");
                    lock(&self.tombstones).push(old.template.clone());
                    changed = true;
                }
                Some(new) if !Arc::ptr_eq(new, old) => {
                    tracing::info!(%name, version = %new.template.version, "package updated");
                    changed = true;
                }
                _ => {}
            }
        }
        for name in next.keys() {
            if !current.contains_key(name) {
                tracing::info!(%name, "hosting package");
                changed = true;
            }
        }
        *write(&self.hosted) = next;
        Ok(changed)
    }

    fn load_package(&self, path: &Path, file_key: (SystemTime, u64)) -> Result<Hosted, String> {
        let bytes = crate::files::read_bounded(path, 128 << 20).map_err(|e| e.to_string())?;
        let package = packaging::decode_package(path, &bytes).map_err(|e| e.to_string())?;
        package
            .descriptor
            .verify()
            .map_err(|e| format!("descriptor template signature: {e}"))?;
        package
            .verify_author()
            .map_err(|e| format!("author signature of {}: {e}", package.author()))?;
        let manifest =
            packaging::parse_manifest(path, &package.manifest).map_err(|e| e.to_string())?;
        // Without NaN canonicalisation only if the author-signed manifest
        // declares the tool never observes NaN bits.
        let prepared = self
            .host
            .prepare_with(
                &package.component,
                errand_host::NanMode::for_manifest(&manifest),
            )
            .map_err(|e| e.to_string())?;
        let limits = packaging::manifest_limits(&manifest);
        let mut template = package.descriptor.body().clone();
        // Descriptors name the package they run, so requesters fetch and
        // check exactly this one.
        template.package = Some(package.reference());
        Ok(Hosted {
            path: path.to_owned(),
            file_key,
            declared_latency: AtomicU32::new(template.qos.latency_ms),
            latency: Mutex::new((0.0, 0)),
            seq: AtomicU64::new(0),
            template,
            package,
            manifest,
            prepared,
            limits,
        })
    }

    fn status(&self) -> StatusReport {
        let capabilities: Vec<HostedCapability> = {
            let hosted = read(&self.hosted);
            let mut v: Vec<HostedCapability> = hosted
                .values()
                .map(|h| HostedCapability {
                    name: h.template.name.clone(),
                    version: h.template.version,
                    component: h.prepared.digest(),
                    seq: h.seq.load(Ordering::Relaxed),
                    measured_latency_ms: {
                        let (v, n) = *lock(&h.latency);
                        (n > 0).then_some(v.round() as u32)
                    },
                })
                .collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            v
        };
        // Other peers: the node's own key is whoever asks for this report.
        let me = self.key.peer_id();
        let mut peers = self.endpoint.connected_peers();
        peers.retain(|p| *p != me);
        peers.truncate(4096);
        StatusReport {
            peer: self.key.peer_id(),
            version: BString::truncate_from(errand_core::ERRAND_VERSION),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            peers: BVec::new(peers).unwrap_or_default(),
            capabilities: BVec::new(capabilities).unwrap_or_default(),
            registry_entries: self.registry.as_ref().map(|r| lock(r).len() as u64),
            receipts_stored: self.store.receipt_count().unwrap_or(0),
            invocations_served: self.invocations.load(Ordering::Relaxed),
        }
    }

    fn publish_to_index(&self, list: Vec<SignedDescriptor>) -> Response {
        let Some(index) = &self.registry else {
            return err(ErrorCode::Unsupported, "this node is not a registry");
        };
        self.publish_traffic.0.fetch_add(1, Ordering::Relaxed);
        let bytes: usize = list.iter().map(|d| d.encoded_len() + 2).sum();
        self.publish_traffic
            .1
            .fetch_add(bytes as u64 + 20, Ordering::Relaxed);
        // One batch verification for the common all-valid case.
        let refs: Vec<&SignedDescriptor> = list.iter().collect();
        let all_valid = signed::verify_batch(&refs).is_ok();
        let now = now();
        let mut index = lock(index);
        let outcomes: Vec<PublishOutcome> = list
            .into_iter()
            .map(|d| {
                if all_valid || d.verify().is_ok() {
                    index.insert_verified(Arc::new(d), now)
                } else {
                    PublishOutcome::BadSignature
                }
            })
            .collect();
        Response::Published(BVec::new(outcomes).unwrap_or_default())
    }

    fn query(&self, q: &errand_core::wire::Query) -> Response {
        let Some(index) = &self.registry else {
            return err(ErrorCode::Unsupported, "this node is not a registry");
        };
        let found = lock(index).query(q, now());
        let list: Vec<SignedDescriptor> =
            found.into_iter().map(|c| (*c.descriptor).clone()).collect();
        Response::Candidates(BVec::new(list).unwrap_or_default())
    }

    async fn invoke(&self, peer: PeerId, inv: InvokeRequest) -> Response {
        // The request must be signed by the peer on this connection and
        // addressed to us: nobody can replay another requester's signed
        // request, or redirect one meant for another executor.
        let asked = inv.request.body();
        if asked.requester != peer {
            return err(
                ErrorCode::BadRequest,
                format!(
                    "the request is signed for requester {}, but this connection is {peer}",
                    asked.requester
                ),
            );
        }
        if asked.executor != self.key.peer_id() {
            return err(
                ErrorCode::BadRequest,
                format!(
                    "the request is addressed to executor {}, not this node ({})",
                    asked.executor,
                    self.key.peer_id()
                ),
            );
        }
        if let Err(e) = inv.request.verify() {
            return err(
                ErrorCode::BadRequest,
                format!("the request's signature is invalid: {e}"),
            );
        }
        let id = asked.request_id;
        let _reserved = match self.reserve(peer, id) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        self.invoke_inner(peer, inv).await
    }

    /// Reserves `peer`'s request id `id` for one run, atomically: under the
    /// in-flight lock, refused if it is running or already has a receipt.
    /// The reservation is released (on drop) only after the run's receipt
    /// is durably stored, so a later reservation sees that receipt; and the
    /// store itself refuses to overwrite one.
    fn reserve(&self, peer: PeerId, id: RequestId) -> Result<InFlight<'_>, Response> {
        let mut running = lock(&self.in_flight);
        if running.contains(&(peer, id)) {
            return Err(err(
                ErrorCode::Replay,
                format!("request id {id} is already running"),
            ));
        }
        match self.store.has_receipt(&peer, &id) {
            Ok(false) => {}
            Ok(true) => {
                return Err(err(
                    ErrorCode::Replay,
                    format!("request id {id} was already used"),
                ));
            }
            Err(e) => return Err(err(ErrorCode::Internal, e)),
        }
        running.insert((peer, id));
        Ok(InFlight {
            set: &self.in_flight,
            key: (peer, id),
        })
    }

    async fn invoke_inner(&self, peer: PeerId, mut inv: InvokeRequest) -> Response {
        let behaviour = match self.config.adversary.as_ref() {
            Some(a) if a.behaviour == Behaviour::CanaryAware => Some(self.aware_guess(peer, &inv)),
            // Honest until it has earned some trust, then a liar.
            Some(a) if a.behaviour == Behaviour::BuildThenDefect => Some(
                if self.invocations.load(Ordering::Relaxed) >= a.defect_after {
                    Behaviour::WrongOutput
                } else {
                    Behaviour::BuildThenDefect
                },
            ),
            // The ring's lie is `wrong-output`'s, byte for byte.
            Some(a) if a.behaviour == Behaviour::WitnessLiar => Some(Behaviour::WrongOutput),
            a => a.map(|a| a.behaviour),
        };
        match (behaviour, &self.config.adversary) {
            (Some(Behaviour::Silent), _) => {
                // Never answer; the requester's timeout decides.
                tokio::time::sleep(Duration::from_secs(3_600)).await;
                return err(ErrorCode::Internal, "silent");
            }
            (Some(Behaviour::Drift), Some(a)) if (now().0 / a.drift_period_ms.max(1)) % 2 == 1 => {
                return err(
                    ErrorCode::NotFound,
                    "capability not available right now (drifted)",
                );
            }
            _ => {}
        }
        let asked = inv.request.body().clone();
        let (prepared, mut limits, capability, hosted, component) = match &asked.capability {
            Some(CapabilityTarget { name, version }) => {
                let Some(h) = read(&self.hosted).get(name).cloned() else {
                    return err(ErrorCode::NotFound, format!("no capability `{name}` here"));
                };
                if let Some(v) = version
                    && !(h.template.version.major == v.major && h.template.version >= *v)
                {
                    return err(
                        ErrorCode::NotFound,
                        format!(
                            "this node hosts {name} {}, not compatible with {v}",
                            h.template.version
                        ),
                    );
                }
                let digest = h.prepared.digest();
                if let Some(pinned) = asked.component
                    && pinned != digest
                {
                    return err(
                        ErrorCode::NotFound,
                        format!(
                            "this node runs {name} as component sha256:{digest}, the request pins sha256:{pinned}"
                        ),
                    );
                }
                let capability = CapabilityRef {
                    name: name.clone(),
                    version: h.template.version,
                    seq: h.seq.load(Ordering::Relaxed),
                };
                (
                    h.prepared.clone(),
                    h.limits,
                    Some(capability),
                    Some(h),
                    digest,
                )
            }
            None => {
                // Validation guarantees a shipped request names its digest.
                let Some(digest) = asked.component else {
                    return err(ErrorCode::BadRequest, "the request names nothing to run");
                };
                let p = &self.config.policy;
                if !p.action_shipping || !p.shipping_allow.contains(&peer) {
                    return err(
                        ErrorCode::Forbidden,
                        "this node does not run components shipped by this peer (see [policy] action_shipping)",
                    );
                }
                let prepared = match (self.host.cached(&digest), inv.component.take()) {
                    (Some(p), _) => p,
                    (None, None) => {
                        return err(
                            ErrorCode::NeedComponent,
                            format!("send component sha256:{digest}"),
                        );
                    }
                    (None, Some(b)) => {
                        // Compiling is CPU work: off the async threads, and
                        // only for an input this node would accept at all.
                        if inv.input.len() > Limits::default().max_input {
                            return err(
                                ErrorCode::TooLarge,
                                format!(
                                    "input is {} bytes, over this node's limit of {}",
                                    inv.input.len(),
                                    Limits::default().max_input
                                ),
                            );
                        }
                        let host = self.host.clone();
                        match tokio::task::spawn_blocking(move || host.prepare(&b)).await {
                            Ok(Ok(p)) => p,
                            Ok(Err(e)) => return err(ErrorCode::BadRequest, e),
                            Err(e) => {
                                return err(
                                    ErrorCode::Internal,
                                    format!("compile task failed: {e}"),
                                );
                            }
                        }
                    }
                };
                let limits = Limits {
                    fuel: p.shipping_max_fuel,
                    memory_bytes: p.shipping_max_memory,
                    ..Limits::default()
                };
                (prepared, limits, None, None, digest)
            }
        };
        let fuel_cap = match &hosted {
            None => limits.fuel,
            Some(_) => self.config.limits.max_fuel,
        };
        // This node's caps: what it would run unasked, bounded by what its
        // engine gives and what a reply can carry.
        limits.memory_bytes = limits.memory_bytes.min(self.host.config().max_memory_bytes);
        limits.max_output = limits.max_output.min(errand_core::evidence::MAX_BLOB_BYTES);
        // The run has exactly the fuel and limits the request signed, or it
        // does not happen: running with less would break the receipt's
        // binding, and more would lift this node's caps.
        if asked.fuel > fuel_cap {
            return err(
                ErrorCode::Forbidden,
                format!(
                    "the request asks for {} fuel; this node runs at most {fuel_cap}: ask for at most that",
                    asked.fuel
                ),
            );
        }
        limits.fuel = asked.fuel;
        if let Some(stated) = &asked.limits {
            if let Some((name, want, cap)) = over_cap(stated, &limits.run_limits()) {
                return err(
                    ErrorCode::Forbidden,
                    format!("the request states {name} = {want}; this node allows at most {cap}"),
                );
            }
            limits = Limits::for_replay(limits.fuel, stated, &limits);
        }
        if inv.input.len() > limits.max_input {
            return err(
                ErrorCode::TooLarge,
                format!(
                    "input is {} bytes, over this capability's limit of {}",
                    inv.input.len(),
                    limits.max_input
                ),
            );
        }
        let Ok(_permit) =
            tokio::time::timeout(Duration::from_secs(5), self.invocation_slots.acquire()).await
        else {
            return err(
                ErrorCode::Busy,
                "all invocation slots are busy; retry later",
            );
        };
        let host = self.host.clone();
        // A param-swap adversary runs cheaper parameters, and says so.
        let context = if behaviour == Some(Behaviour::ParamSwap) {
            cheaper(&asked.context)
        } else {
            asked.context.clone()
        };
        let want_trace = inv.want_trace;
        let request_id = asked.request_id;
        let seed = asked.seed;
        let input = inv.input;
        let prepared = match (behaviour, &self.impostor) {
            (Some(Behaviour::DifferentComponent), Some(imp)) => imp.clone(),
            _ => prepared,
        };
        let lazy = behaviour == Some(Behaviour::Lazy);
        let ran_context = context.clone();
        let run = tokio::task::spawn_blocking(move || {
            // A lazy adversary does half the work and claims all of it.
            let used: &[u8] = if lazy {
                &input[..input.len() / 2]
            } else {
                &input
            };
            let exec = host.run(
                &prepared,
                &Invocation {
                    input: used,
                    request_id,
                    seed,
                    context,
                    limits,
                    keep_trace: want_trace,
                },
            );
            (exec, input)
        })
        .await;
        let (mut exec, input) = match run {
            Ok((Ok(e), input)) => (e, input),
            // Only a full host is worth retrying (requesters retry `Busy`).
            // A host failure (memory the OS refused) is ours, not the
            // request's: the requester may retry, here later or elsewhere.
            Ok((
                Err(e @ (errand_host::RunError::Busy(_) | errand_host::RunError::HostFailure(_))),
                _,
            )) => {
                return err(ErrorCode::Busy, e);
            }
            Ok((Err(e @ errand_host::RunError::InputTooLarge { .. }), _)) => {
                return err(ErrorCode::TooLarge, e);
            }
            Ok((Err(e), _)) => return err(ErrorCode::Internal, e),
            Err(e) => return err(ErrorCode::Internal, format!("invocation task failed: {e}")),
        };
        match behaviour {
            Some(Behaviour::Lazy) => exec.input_digest = Digest::of(&input),
            Some(Behaviour::WrongOutput) if exec.outcome.is_ok() => {
                match exec.output.last_mut() {
                    Some(b) => *b ^= 0x5a,
                    None => exec.output.push(b'?'),
                }
                exec.output_digest = Digest::of(&exec.output);
            }
            _ => {}
        }
        drop(input);
        let forger;
        let signer = if behaviour == Some(Behaviour::ForgeReceipt) {
            let mut seed = [0u8; 32];
            let _ = getrandom::fill(&mut seed);
            forger = SecretKey::from_seed(seed);
            &forger
        } else {
            &self.key
        };
        let receipt = match self.host.sign_receipt(
            &ReceiptInfo {
                executor: signer,
                requester: peer,
                request_id,
                request: inv.request.digest(),
                seed,
                capability,
                component,
                context: ran_context,
                limits,
            },
            &exec,
        ) {
            Ok(r) => r,
            Err(e) => return err(ErrorCode::Internal, e),
        };
        match self.store.put_receipt(&receipt, Some(&inv.request)).await {
            Ok(()) => {}
            Err(e @ StoreError::ReceiptExists { .. }) => {
                // Only if the reservation failed: the first receipt stands.
                tracing::error!(error = %e, "refusing to overwrite a receipt; withholding the result");
                return err(
                    ErrorCode::Replay,
                    format!("request id {request_id} was already used"),
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot store receipt; withholding the result");
                return err(ErrorCode::Internal, "could not store the receipt durably");
            }
        }
        self.invocations.fetch_add(1, Ordering::Relaxed);
        if let Some(h) = hosted {
            self.observe_latency(&h, exec.elapsed);
        }
        let Ok(output) = BBytes::new(exec.output) else {
            return err(ErrorCode::Internal, "the output does not fit a reply");
        };
        Response::Invoked(Box::new(InvokeResponse {
            output,
            receipt,
            trace: exec.trace.and_then(|t| BVec::new(t).ok()),
        }))
    }

    /// A `canary-aware` adversary's choice for this request: lie
    /// (`WrongOutput`) on what its detector takes for real work, answer
    /// honestly (`CanaryAware`) otherwise.
    fn aware_guess(&self, peer: PeerId, inv: &InvokeRequest) -> Behaviour {
        let asked = inv.request.body();
        let cap = asked
            .capability
            .as_ref()
            .map(|c| c.name.to_string())
            .unwrap_or_default();
        let mut a = lock(&self.aware);
        let now = Instant::now();
        // Everything the request states besides its input, as the
        // detector compares it.
        let params = format!("{:?} {} {:?}", asked.context, asked.fuel, asked.limits).into_bytes();
        let key = (peer, cap.clone());
        let gap_ms = a
            .last
            .get(&key)
            .map(|(_, at, _)| now.duration_since(*at).as_millis() as u64)
            .unwrap_or(u64::MAX);
        let seen = errand_core::trust::detector::Seen {
            input: inv.input.to_vec(),
            params,
            gap_ms,
        };
        if a.detector.is_none() {
            let examples: Vec<(String, Vec<u8>)> = read(&self.hosted)
                .values()
                .flat_map(|h| {
                    let name = h.name().to_string();
                    h.manifest
                        .examples
                        .iter()
                        .filter_map(|e| e.bytes().ok())
                        .map(move |b| (name.clone(), b))
                        .collect::<Vec<_>>()
                })
                .collect();
            let refs: Vec<(&str, &[u8])> = examples
                .iter()
                .map(|(c, b)| (c.as_str(), b.as_slice()))
                .collect();
            a.detector = Some(errand_core::trust::detector::Detector::new(&refs));
        }
        // The second of a pair sent close together: guess which was the canary.
        let choice = match a.last.remove(&key) {
            Some((first, at, false)) if now.duration_since(at) < Duration::from_secs(2) => {
                let first_is_canary = a
                    .detector
                    .as_ref()
                    .is_some_and(|d| d.guess(&cap, &first, &seen));
                a.last.insert(key, (seen.clone(), now, true));
                if first_is_canary {
                    Behaviour::WrongOutput
                } else {
                    Behaviour::CanaryAware
                }
            }
            _ => {
                a.last.insert(key, (seen.clone(), now, false));
                Behaviour::CanaryAware
            }
        };
        // Bounded memory: forget requesters not heard from for a while.
        a.last
            .retain(|_, (_, at, _)| now.duration_since(*at) < Duration::from_secs(60));
        if let Some(d) = a.detector.as_mut() {
            d.remember(&cap, &seen.input);
        }
        choice
    }

    /// Updates the capability's latency EWMA and republishes on drift.
    fn observe_latency(&self, h: &Hosted, elapsed: Duration) {
        let sample = elapsed.as_secs_f64() * 1e3;
        let (ewma, n) = {
            let mut l = lock(&h.latency);
            l.0 = if l.1 == 0 {
                sample
            } else {
                0.8 * l.0 + 0.2 * sample
            };
            l.1 = l.1.saturating_add(1);
            *l
        };
        let declared = f64::from(h.declared_latency.load(Ordering::Relaxed));
        let drifted = (ewma - declared).abs() > self.config.publish.drift_ratio * declared.max(1.0)
            && (ewma - declared).abs() > 2.0;
        if n >= 5 && drifted {
            let measured = ewma.round().max(1.0) as u32;
            tracing::info!(name = %h.name(), declared, measured, "latency drifted; republishing");
            h.declared_latency.store(measured, Ordering::Relaxed);
            self.changed.notify_one();
        }
    }
}

impl Handler for Inner {
    async fn handle(&self, peer: PeerId, req: Request) -> Response {
        match req {
            Request::Ping => Response::Pong,
            Request::Publish(list) => self.publish_to_index(list.into_vec()),
            Request::Query(q) => self.query(&q),
            Request::Invoke(inv) => self.invoke(peer, *inv).await,
            // Only the requester's own receipts: nonces and receipts are
            // per requester.
            Request::GetReceipt(id) => match self.store.get_receipt(&peer, &id) {
                Ok(r) => Response::Receipt(r.map(Box::new)),
                Err(e) => err(ErrorCode::Internal, e),
            },
            Request::FetchPackage(digest) => {
                let found = read(&self.hosted)
                    .values()
                    .find(|h| h.template.package.map(|p| p.digest) == Some(digest))
                    .map(|h| Box::new(h.package.clone()));
                let behaviour = self.config.adversary.as_ref().map(|a| a.behaviour);
                Response::Package(match behaviour {
                    Some(Behaviour::FrameTheHonest) => found.map(|p| Box::new(doctored(*p))),
                    // Withheld, so the requester has to cross-check.
                    Some(Behaviour::WitnessLiar) => None,
                    _ => found,
                })
            }
            Request::Status if peer == self.key.peer_id() => {
                Response::Status(Box::new(self.status()))
            }
            Request::Status => err(
                ErrorCode::Forbidden,
                "status is only for the node's own key",
            ),
            Request::Reachability if peer == self.key.peer_id() => {
                let paths = lock(&self.paths).clone();
                Response::Reachability(Box::new(self.endpoint.reachability(&paths)))
            }
            Request::Reachability => err(
                ErrorCode::Forbidden,
                "reachability is only for the node's own key",
            ),
            // The connectivity plane answers these before they get here.
            Request::Observe | Request::Relay(_) | Request::Punch(_) => {
                err(ErrorCode::Unsupported, "not handled by this node")
            }
        }
    }
}

/// Signs the current descriptors (and pending tombstones) and sends them to
/// every registry. With `live = false`, only tombstones are sent.
async fn publish_once(inner: &Arc<Inner>, live: bool) {
    let now = now();
    let hosted: Vec<Arc<Hosted>> = if live {
        read(&inner.hosted).values().cloned().collect()
    } else {
        Vec::new()
    };
    let tombstones: Vec<Descriptor> = std::mem::take(&mut *lock(&inner.tombstones));
    let n = (hosted.len() + tombstones.len()) as u64;
    if n == 0 || inner.config.registries.is_empty() {
        return;
    }
    let seqs = match inner.store.reserve_seqs(n, now.0) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot reserve sequence numbers; not publishing");
            lock(&inner.tombstones).extend(tombstones);
            return;
        }
    };
    let addrs: Vec<NetAddr> = lock(&inner.paths).clone();
    let mut seq = seqs.start;
    let mut batch = Vec::new();
    let sign = |mut d: Descriptor, seq: u64, withdrawn: bool| {
        d.publisher = inner.key.peer_id();
        d.addrs = BVec::new(addrs.clone()).unwrap_or_default();
        d.seq = seq;
        d.issued_at = now;
        d.ttl_ms = inner.config.publish.ttl_ms;
        d.withdrawn = withdrawn;
        SignedDescriptor::sign(d, &inner.key)
    };
    for h in &hosted {
        let mut d = h.template.clone();
        d.qos.latency_ms = h.declared_latency.load(Ordering::Relaxed);
        if let Some(a) = &inner.config.adversary {
            if let Some(l) = a.advertise_latency_ms {
                d.qos.latency_ms = l;
            }
            if let Some(c) = a.advertise_cost {
                d.qos.cost = c;
            }
            for tag in &a.extra_intents {
                if let Ok(t) = BString::new(tag.as_str()) {
                    let _ = d.intents.push(t);
                }
            }
        }
        match sign(d, seq, false) {
            Ok(s) => {
                h.seq.store(seq, Ordering::Relaxed);
                batch.push(s);
            }
            Err(e) => tracing::error!(name = %h.name(), error = %e, "cannot sign descriptor"),
        }
        seq += 1;
    }
    for t in tombstones {
        if let Ok(s) = sign(t, seq, true) {
            batch.push(s);
        }
        seq += 1;
    }
    let Ok(list) = BVec::new(batch) else {
        tracing::error!("more capabilities than one publish message holds");
        return;
    };
    let req = Arc::new(Request::Publish(list));
    let mut sends = tokio::task::JoinSet::new();
    for r in inner.config.registries.clone() {
        let req = req.clone();
        let endpoint = inner.endpoint.clone();
        sends.spawn(async move {
            let res = tokio::time::timeout(Duration::from_secs(5), endpoint.request(r.addr, r.peer, &req)).await;
            match res {
                Ok(Ok(Response::Published(outcomes))) => {
                    for o in outcomes.iter() {
                        if !matches!(o, PublishOutcome::Accepted | PublishOutcome::Withdrawn) {
                            tracing::warn!(registry = %r, outcome = ?o, "registry refused a descriptor");
                        }
                    }
                    tracing::debug!(registry = %r, n = outcomes.len(), "published");
                }
                Ok(Ok(other)) => tracing::warn!(registry = %r, response = ?other, "unexpected answer to publish"),
                Ok(Err(e)) => tracing::warn!(registry = %r, error = %e, "cannot publish"),
                Err(_) => tracing::warn!(registry = %r, "publish timed out"),
            }
        });
    }
    while sends.join_next().await.is_some() {}
}

async fn publisher(inner: Arc<Inner>) {
    let refresh = Duration::from_millis(u64::from(inner.config.publish.refresh_ms));
    loop {
        publish_once(&inner, true).await;
        tokio::select! {
            _ = tokio::time::sleep(refresh) => {}
            _ = inner.changed.notified() => {}
        }
    }
}

async fn scanner(inner: Arc<Inner>) {
    let every = Duration::from_millis(u64::from(inner.config.publish.scan_ms));
    loop {
        tokio::time::sleep(every).await;
        let i = inner.clone();
        match tokio::task::spawn_blocking(move || i.scan_packages()).await {
            Ok(Ok(true)) => inner.changed.notify_one(),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "package scan failed"),
            Err(e) => tracing::warn!(error = %e, "package scan task failed"),
        }
    }
}

/// How often the node asks its observers which address they see it at.
const OBSERVE_EVERY: Duration = Duration::from_secs(30);

/// Keeps the node reachable (see the module docs): observes its address
/// (asking its configured registries and relays only: what they see
/// decides its NAT classification, so whether it reserves, and its punch
/// candidates), holds relay reservations when it is not public, and keeps
/// the published paths current.
async fn reacher(inner: Arc<Inner>) {
    use errand_core::reach::wants_relay;
    let mut reservations: HashMap<PeerId, Reservation> = HashMap::new();
    let mut last_observed: Option<Instant> = None;
    let config = &inner.config;
    let mut observers: Vec<crate::config::PeerAddr> = config.registries.clone();
    for r in &config.relays {
        if !observers.iter().any(|o| o.peer == r.peer) {
            observers.push(*r);
        }
    }
    observers.retain(|o| o.peer != inner.key.peer_id());
    let relays: Vec<crate::config::PeerAddr> = if config.relays.is_empty() {
        config.registries.clone()
    } else {
        config.relays.clone()
    };
    loop {
        if last_observed.is_none_or(|t| t.elapsed() >= OBSERVE_EVERY) && !observers.is_empty() {
            last_observed = Some(Instant::now());
            let mut asks = tokio::task::JoinSet::new();
            for o in observers.clone() {
                let endpoint = inner.endpoint.clone();
                asks.spawn(async move {
                    let r = tokio::time::timeout(
                        Duration::from_secs(5),
                        endpoint.observe(o.peer, o.addr),
                    )
                    .await;
                    (o, r)
                });
            }
            while let Some(Ok((o, r))) = asks.join_next().await {
                match r {
                    Ok(Ok(seen)) => tracing::debug!(observer = %o, seen = %seen.seen, "observed"),
                    Ok(Err(e)) => tracing::debug!(observer = %o, error = %e, "cannot observe"),
                    Err(_) => tracing::debug!(observer = %o, "observing timed out"),
                }
            }
            tracing::debug!(nat = %inner.endpoint.nat(), "NAT mapping");
        }
        if wants_relay(config.reachability, inner.endpoint.nat()) {
            for r in &relays {
                if r.peer != inner.key.peer_id() {
                    reservations
                        .entry(r.peer)
                        .or_insert_with(|| inner.endpoint.keep_reservation(r.peer, r.addr));
                }
            }
        } else {
            reservations.clear();
        }
        let mut paths: Vec<NetAddr> = inner.advertised.iter().map(|a| NetAddr::Quic(*a)).collect();
        for (relay, addr) in inner.endpoint.reserved_relays() {
            paths.push(NetAddr::Relay { relay, addr });
        }
        paths.truncate(8);
        let changed = {
            let mut held = lock(&inner.paths);
            let changed = *held != paths;
            *held = paths;
            changed
        };
        if changed {
            tracing::info!(paths = ?lock(&inner.paths).iter().map(|p| p.to_string()).collect::<Vec<_>>(), "paths changed; republishing");
            inner.changed.notify_one();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn expirer(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Some(index) = &inner.registry {
            let n = lock(index).expire(now());
            if n > 0 {
                tracing::debug!(expired = n, "registry entries expired");
            }
        }
    }
}

/// Digest of the hosted component named `name`, for tests and tools.
pub fn hosted_digest(node: &Node, name: &str) -> Option<Digest> {
    read(&node.inner.hosted)
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, h)| h.prepared.digest())
}

/// The manifest of a hosted capability.
pub fn hosted_manifest(node: &Node, name: &str) -> Option<Manifest> {
    read(&node.inner.hosted)
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, h)| h.manifest.clone())
}

/// Where a node records its bound address: `storage/node.json`.
pub fn runtime_file(storage: &Path) -> PathBuf {
    storage.join("node.json")
}

/// The address a node with this storage folder last bound, if recorded.
pub fn recorded_addr(storage: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(runtime_file(storage)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("addr")?.as_str()?.parse().ok()
}

/// The line `errand node` prints on stdout once it is serving:
/// `errand node PEERID listening on ADDR (hosting: …; registry: yes|no)`.
/// Scripts and tests read the peer and address from it with
/// [`parse_ready_line`].
pub fn ready_line(node: &Node) -> String {
    let status = node.status();
    format!(
        "errand node {} listening on {} (hosting: {}; registry: {})",
        node.peer_id(),
        node.local_addr(),
        if status.capabilities.is_empty() {
            "nothing".to_owned()
        } else {
            node.hosted().join(", ")
        },
        if status.registry_entries.is_some() {
            "yes"
        } else {
            "no"
        },
    )
}

/// The peer and address in a [`ready_line`].
pub fn parse_ready_line(line: &str) -> Option<(PeerId, SocketAddr)> {
    let rest = line.trim().strip_prefix("errand node ")?;
    let (peer, rest) = rest.split_once(" listening on ")?;
    let addr = rest.split(' ').next()?;
    Some((peer.parse().ok()?, addr.parse().ok()?))
}

/// A seed for the registry's per-query orders, from the operating system
/// (the clock if that fails: the orders need to be unpredictable to
/// publishers, not secret).
fn random_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    })
}

/// The cheaper parameters a `param-swap` adversary runs with: every numeric
/// value cut to a sixth, at least 1.
fn cheaper(context: &InvocationContext) -> InvocationContext {
    let mut c = context.clone();
    let params: Vec<_> = c
        .params
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if let Ok(n) = p.value.parse::<u64>() {
                p.value = BString::truncate_from(&(n / 6).max(1).to_string());
            }
            p
        })
        .collect();
    c.params = BVec::new(params).unwrap_or_default();
    c
}

/// What a `frame-the-honest` adversary serves for a package: the author's
/// component and signature with a manifest whose limits no run can meet
/// and with no examples, so that a requester who trusted it would fail its
/// own canary runs and replays and blame the honest executors.
fn doctored(mut p: Package) -> Package {
    let text = format!(
        "{}\n# doctored\n",
        p.manifest
            .lines()
            .filter(|l| !l.trim_start().starts_with("input") && !l.contains("fuel"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    p.manifest = BString::truncate_from(&text);
    p
}

/// The first limit in `stated` above this node's `cap`: its name, the
/// stated value and the cap.
fn over_cap(
    stated: &errand_core::receipt::RunLimits,
    cap: &errand_core::receipt::RunLimits,
) -> Option<(&'static str, u64, u64)> {
    [
        ("memory_bytes", stated.memory_bytes, cap.memory_bytes),
        ("table_elements", stated.table_elements, cap.table_elements),
        ("instances", stated.instances.into(), cap.instances.into()),
        ("tables", stated.tables.into(), cap.tables.into()),
        ("memories", stated.memories.into(), cap.memories.into()),
        ("max_output", stated.max_output, cap.max_output),
        (
            "max_trace_events",
            stated.max_trace_events.into(),
            cap.max_trace_events.into(),
        ),
        ("max_stdio", stated.max_stdio, cap.max_stdio),
        ("max_log_bytes", stated.max_log_bytes, cap.max_log_bytes),
    ]
    .into_iter()
    .find(|(_, want, cap)| want > cap)
}

/// A request id reserved by [`Inner::reserve`]; released when dropped.
struct InFlight<'a> {
    set: &'a Mutex<HashSet<(PeerId, RequestId)>>,
    key: (PeerId, RequestId),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        lock(self.set).remove(&self.key);
    }
}

/// What a `canary-aware` adversary remembers: its detector, built on first
/// use from the hosted manifests' public examples, and per (requester,
/// capability) the last request, when it came, and whether it was paired.
#[derive(Default)]
struct Aware {
    detector: Option<errand_core::trust::detector::Detector>,
    last: HashMap<(PeerId, String), (errand_core::trust::detector::Seen, Instant, bool)>,
}
