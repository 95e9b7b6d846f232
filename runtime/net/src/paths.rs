//! Paths to peers: dialling by peer id, address discovery, and the record
//! of how every connection was made.
//!
//! **Dialling by peer id.** A peer publishes its paths (direct addresses
//! and relays, `errand_core::descriptor::NetAddr`) in its signed
//! descriptors; a requester hands them to [`Endpoint::learn_paths`]. Then
//! [`Endpoint::connect_peer`] tries every path at once and takes the first
//! that completes, preferring direct: a relayed connection is used at once
//! (a direct path, when there is one, usually completes first anyway: it
//! takes fewer round trips), and a direct one that completes later takes
//! the peer's new requests. A relayed connection is followed by a hole
//! punch (see [`crate::punch`]); a punched connection that completes
//! likewise takes the new requests, while those in flight finish on the
//! relayed one.
//!
//! **Address discovery.** `Observe` is answered with the address the
//! request came from ([`Endpoint::observe`] asks it). What the observers
//! the node chose see (the registries and relays it asks with
//! [`Endpoint::observe`], the relays it reserves with) is kept per observer,
//! at most [`MAX_OBSERVERS`] of them for at most [`OBSERVATION_TTL`], and
//! classified by `errand_core::reach::classify`. A relay named in another
//! peer's descriptor also says what it sees when it opens a circuit, but
//! nobody chose it: its word is a candidate for the punch over that one
//! circuit ([`Connection::relay_observed`]) and is never kept here.
//!
//! **Accounting.** Every connection, in either direction, is counted as
//! direct, punched or relayed, and listed while open
//! ([`Endpoint::reachability`]). An incoming connection is relayed when it
//! comes from a circuit, punched when it comes from a peer we answered a
//! punch for in the last [`PUNCHED_WINDOW`], direct otherwise.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use errand_core::PeerId;
use errand_core::bounded::BVec;
use errand_core::descriptor::NetAddr;
use errand_core::reach::{
    self, NatMapping, Observation, OpenPath, PathCounts, PathKind, PunchCounts, ReachabilityReport,
    RelayState,
};
use errand_core::wire::{ErrorCode, Request, Response, WireError};

use crate::{Connection, Endpoint, NetError, lock, mux};

/// How long after answering a punch an incoming connection from that peer
/// counts as punched.
pub const PUNCHED_WINDOW: Duration = Duration::from_secs(15);

/// Most observers whose observations are kept (the oldest goes first).
pub const MAX_OBSERVERS: usize = 16;

/// How long an observation counts (observers are asked again every 30 s).
pub const OBSERVATION_TTL: Duration = Duration::from_secs(600);

/// What an endpoint knows of its reachability.
#[derive(Debug, Default)]
pub(crate) struct ReachState {
    /// Latest observation per observer address, and when it was made;
    /// only from observers the node chose (see the module docs).
    pub(crate) observed: HashMap<SocketAddr, (Observation, Instant)>,
    /// Relays we keep reservations with.
    pub(crate) relays: HashMap<PeerId, RelayState>,
    /// Connections made, by how.
    pub(crate) made: PathCounts,
    /// Open connections, by quinn's stable id.
    pub(crate) open: HashMap<usize, OpenPath>,
    /// Punches we started.
    pub(crate) punches: PunchCounts,
    /// Peers we answered a punch for, and when.
    pub(crate) punched_for: HashMap<PeerId, Instant>,
    /// Sessions over relay circuits, by the circuit's virtual address.
    pub(crate) relayed: HashMap<SocketAddr, quinn::Connection>,
    /// Punches we are answering, by peer.
    pub(crate) answering: HashMap<PeerId, tokio::task::AbortHandle>,
    /// Peers whose punch offer we answered, and when (kept for
    /// `punch::OFFER_EVERY`).
    pub(crate) offers: HashMap<PeerId, Instant>,
}

impl Endpoint {
    /// Records a new connection and lists it until it closes.
    pub(crate) fn opened(
        &self,
        conn: &quinn::Connection,
        peer: PeerId,
        kind: PathKind,
        incoming: bool,
    ) {
        let id = conn.stable_id();
        let via = mux::canonical(conn.remote_address());
        let circuit = mux::is_virtual(via);
        {
            let mut r = lock(&self.shared.reach);
            r.made.add(kind);
            if circuit {
                r.relayed.insert(via, conn.clone());
            }
            // A relayed connection's address is its circuit's: show the
            // relay's.
            let remote = mux::canonical(conn.remote_address());
            let remote = self.shared.mux.relay_of(remote).unwrap_or(remote);
            r.open.insert(
                id,
                OpenPath {
                    peer,
                    kind,
                    incoming,
                    remote,
                },
            );
        }
        tracing::debug!(%peer, %kind, incoming, "connection made");
        let endpoint = self.clone();
        let conn = conn.clone();
        tokio::spawn(async move {
            conn.closed().await;
            let mut r = lock(&endpoint.shared.reach);
            r.open.remove(&id);
            if circuit && r.relayed.get(&via).is_some_and(|c| c.stable_id() == id) {
                r.relayed.remove(&via);
            }
        });
    }

    /// The session over the circuit at virtual address `via`, if any.
    pub(crate) fn relayed_session(&self, via: SocketAddr) -> Option<quinn::Connection> {
        lock(&self.shared.reach)
            .relayed
            .get(&mux::canonical(via))
            .cloned()
    }

    /// How an incoming connection from `peer` at `remote` was made.
    pub(crate) fn incoming_kind(&self, peer: PeerId, remote: SocketAddr) -> PathKind {
        if mux::is_virtual(remote) {
            return PathKind::Relayed;
        }
        let mut r = lock(&self.shared.reach);
        r.punched_for.retain(|_, at| at.elapsed() < PUNCHED_WINDOW);
        if r.punched_for.contains_key(&peer) {
            PathKind::Punched
        } else {
            PathKind::Direct
        }
    }

    /// The answer to `Observe` on `conn`.
    pub(crate) fn answer_observe(&self, conn: &quinn::Connection) -> Response {
        let seen = mux::canonical(conn.remote_address());
        if mux::is_virtual(seen) {
            return Response::Error(WireError::new(
                ErrorCode::Unsupported,
                "reached through a relay: there is no address to observe",
            ));
        }
        Response::Observed(seen)
    }

    /// Asks `peer` at `addr` which address it sees us at, and records the
    /// answer: from then on it feeds the NAT classification and the punch
    /// candidates, so ask only observers the node chose (its registries and
    /// relays), never one a descriptor named.
    pub async fn observe(&self, peer: PeerId, addr: SocketAddr) -> Result<Observation, NetError> {
        match self
            .connection(addr, peer)
            .await?
            .request(&Request::Observe)
            .await?
        {
            Response::Observed(seen) => {
                let o = Observation {
                    observer: peer,
                    observer_addr: addr,
                    seen,
                    local: self.local_toward(addr),
                };
                self.observed(o);
                Ok(o)
            }
            Response::Error(e) => Err(NetError::Closed(format!("{peer} would not observe: {e}"))),
            _ => Err(NetError::Closed(format!("{peer} answered out of turn"))),
        }
    }

    /// Records what an observer the node chose saw (see the module docs):
    /// at most [`MAX_OBSERVERS`], the oldest going first.
    pub(crate) fn observed(&self, o: Observation) {
        let now = Instant::now();
        let mut r = lock(&self.shared.reach);
        r.observed
            .retain(|_, (_, at)| now.saturating_duration_since(*at) < OBSERVATION_TTL);
        if !r.observed.contains_key(&o.observer_addr)
            && r.observed.len() >= MAX_OBSERVERS
            && let Some(oldest) = r
                .observed
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| *k)
        {
            r.observed.remove(&oldest);
        }
        r.observed.insert(o.observer_addr, (o, now));
    }

    /// What the observers the node chose saw in the last
    /// [`OBSERVATION_TTL`], latest per observer.
    pub fn observations(&self) -> Vec<Observation> {
        let mut v: Vec<Observation> = lock(&self.shared.reach)
            .observed
            .values()
            .filter(|(_, at)| at.elapsed() < OBSERVATION_TTL)
            .map(|(o, _)| *o)
            .collect();
        v.sort_by_key(|o| o.observer_addr);
        v
    }

    /// The NAT mapping, as the observations classify it.
    pub fn nat(&self) -> NatMapping {
        reach::classify(&self.observations())
    }

    /// Our address towards `to`: the interface the route to it leaves from,
    /// with our port. No packet is sent.
    pub fn local_toward(&self, to: SocketAddr) -> Option<SocketAddr> {
        let bound = mux::canonical(self.local_addr().ok()?);
        if !bound.ip().is_unspecified() {
            return Some(bound);
        }
        let any: SocketAddr = if to.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let probe = std::net::UdpSocket::bind(any).ok()?;
        probe.connect(to).ok()?;
        Some(SocketAddr::new(probe.local_addr().ok()?.ip(), bound.port()))
    }

    /// The connections made and open now, and what is known of our NAT;
    /// `paths` are the paths published (the caller knows them).
    pub fn reachability(&self, paths: &[NetAddr]) -> ReachabilityReport {
        let observed = self.observations();
        let nat = reach::classify(&observed);
        let r = lock(&self.shared.reach);
        let mut open: Vec<OpenPath> = r.open.values().copied().collect();
        open.sort_by_key(|o| (o.peer, o.kind));
        open.truncate(4096);
        let mut relays: Vec<RelayState> = r.relays.values().cloned().collect();
        relays.sort_by_key(|x| x.relay);
        relays.truncate(8);
        let mut observed = observed;
        observed.truncate(16);
        ReachabilityReport {
            nat,
            observed: BVec::new(observed).unwrap_or_default(),
            relays: BVec::new(relays).unwrap_or_default(),
            paths: BVec::new(paths.iter().take(8).copied().collect()).unwrap_or_default(),
            made: r.made,
            open: BVec::new(open).unwrap_or_default(),
            punches: r.punches,
            relay: self.shared.relay.as_ref().map(|s| s.stats()),
        }
    }

    /// Connections made since start, by how.
    pub fn path_counts(&self) -> PathCounts {
        lock(&self.shared.reach).made
    }

    /// Sets the paths known for `peer` (from its freshest descriptor),
    /// for dialling it by peer id.
    pub fn learn_paths(&self, peer: PeerId, paths: &[NetAddr]) {
        let ordered = reach::order_paths(paths);
        let mut book = lock(&self.shared.paths);
        if ordered.is_empty() {
            book.remove(&peer);
        } else {
            book.insert(peer, ordered);
        }
    }

    /// Whether paths are known for `peer`.
    pub fn knows_paths(&self, peer: PeerId) -> bool {
        lock(&self.shared.paths).contains_key(&peer)
    }

    /// The paths known for `peer`, direct first.
    pub fn paths_of(&self, peer: PeerId) -> Vec<NetAddr> {
        lock(&self.shared.paths)
            .get(&peer)
            .cloned()
            .unwrap_or_default()
    }

    /// Sends `req` to `peer` over its pooled connection, dialling it by
    /// peer id if there is none (`hint`, an address the caller has, is
    /// tried too unless it is one of the peer's relays).
    pub async fn request_peer(
        &self,
        peer: PeerId,
        hint: Option<SocketAddr>,
        req: &Request,
    ) -> Result<Response, NetError> {
        let conn = self.peer_connection(peer, hint).await?;
        match conn.request(req).await {
            Err(NetError::Closed(_) | NetError::CircuitEnded { .. })
                if !matches!(req, Request::Invoke(_)) =>
            {
                // Idempotent requests may be retried on a fresh connection.
                self.forget_connection(peer, &conn);
                self.peer_connection(peer, hint).await?.request(req).await
            }
            other => other,
        }
    }

    fn forget_connection(&self, peer: PeerId, conn: &Connection) {
        if let Some(slot) = lock(&self.shared.peers).get(&peer).cloned()
            && let Ok(mut held) = slot.try_lock()
            && held.as_ref().map(|c| c.conn.stable_id()) == Some(conn.conn.stable_id())
        {
            *held = None;
        }
    }

    /// The pooled connection to `peer`, dialled by peer id on first use
    /// (see the module docs).
    pub async fn peer_connection(
        &self,
        peer: PeerId,
        hint: Option<SocketAddr>,
    ) -> Result<Connection, NetError> {
        let slot = lock(&self.shared.peers).entry(peer).or_default().clone();
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let c = self.connect_peer(peer, hint).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Replaces the pooled connection to `peer` with `better`, if it is
    /// better (direct or punched over relayed): new requests use it, those
    /// in flight finish where they are.
    pub(crate) fn upgrade(&self, peer: PeerId, better: Connection) {
        let slot = lock(&self.shared.peers).entry(peer).or_default().clone();
        let endpoint = self.clone();
        tokio::spawn(async move {
            let mut held = slot.lock().await;
            let replace = match held.as_ref() {
                Some(c) if !c.is_closed() => better.kind.better_than(c.kind),
                _ => true,
            };
            if replace {
                tracing::info!(%peer, kind = %better.kind, "moved to a direct path");
                *held = Some(better);
            }
            drop(held);
            drop(endpoint);
        });
    }

    /// Dials `peer` on every known path at once (see the module docs).
    pub async fn connect_peer(
        &self,
        peer: PeerId,
        hint: Option<SocketAddr>,
    ) -> Result<Connection, NetError> {
        let mut paths = self.paths_of(peer);
        if let Some(h) = hint
            && !paths.iter().any(|p| p.socket_addr() == h)
        {
            paths.insert(0, NetAddr::Quic(h));
        }
        if paths.is_empty() {
            return Err(NetError::NoPath(peer));
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for path in paths {
            let endpoint = self.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let got = match path {
                    NetAddr::Quic(a) => endpoint.connect(a, peer).await,
                    NetAddr::Relay { relay, addr } => {
                        endpoint.connect_relayed(relay, addr, peer).await
                    }
                };
                let _ = tx.send((path, got));
            });
        }
        drop(tx);
        let mut failures = Vec::new();
        let mut relayed: Option<Connection> = None;
        while let Some((path, got)) = rx.recv().await {
            match got {
                Ok(c) if c.kind == PathKind::Relayed => {
                    relayed = Some(c);
                    break;
                }
                Ok(c) => {
                    // Direct: take it; relayed attempts still running are
                    // dropped when they complete.
                    self.keep_upgrading(peer, rx);
                    return Ok(c);
                }
                Err(e) => {
                    tracing::debug!(%peer, %path, error = %e, "path failed");
                    failures.push((path, e));
                }
            }
        }
        match relayed {
            Some(c) => {
                // Direct attempts still running may complete later, and a
                // punch may open one.
                self.keep_upgrading(peer, rx);
                if self.shared.config.punch {
                    let endpoint = self.clone();
                    let via = c.clone();
                    tokio::spawn(async move {
                        match endpoint.punch(&via).await {
                            Ok(direct) => endpoint.upgrade(peer, direct),
                            Err(e) => tracing::debug!(%peer, error = %e, "staying relayed"),
                        }
                    });
                }
                Ok(c)
            }
            // One path: its own error, unchanged.
            None if failures.len() == 1 => Err(failures.remove(0).1),
            None => Err(NetError::AllPathsFailed {
                peer,
                failures: failures
                    .into_iter()
                    .map(|(path, e)| format!("{path}: {e}"))
                    .collect(),
            }),
        }
    }

    /// Direct attempts that complete after the dial returned still take
    /// the peer's new requests.
    fn keep_upgrading(
        &self,
        peer: PeerId,
        mut rx: tokio::sync::mpsc::UnboundedReceiver<(NetAddr, Result<Connection, NetError>)>,
    ) {
        let endpoint = self.clone();
        tokio::spawn(async move {
            while let Some((_, got)) = rx.recv().await {
                if let Ok(c) = got
                    && c.kind != PathKind::Relayed
                {
                    endpoint.upgrade(peer, c);
                }
            }
        });
    }
}
