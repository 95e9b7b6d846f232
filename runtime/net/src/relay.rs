//! Relay circuits: reservations, circuits, and the relay service.
//!
//! The message flow is in `errand_core::reach`. In short: a peer B that
//! cannot be dialled keeps a connection to a relay R and reserves on it
//! ([`Endpoint::keep_reservation`]); a requester A asks R, on its own
//! connection to R, for a circuit to B ([`Endpoint::connect_relayed`]); R
//! opens a stream to B on B's connection, and once B accepts, R copies
//! packets between A's stream and B's. Each end routes the circuit through
//! its [`MuxSocket`] as a virtual address, and its one QUIC endpoint dials
//! (A) or accepts (B) a connection over it: the TLS handshake inside
//! authenticates A and B to each other, end to end. R sees the two peer
//! ids, the addresses and the sizes and timing of packets, never their
//! content, and cannot forge any: a changed packet fails QUIC's
//! authenticated encryption.
//!
//! On a circuit's streams every packet is a frame `len: u16 big-endian ‖
//! packet`, at most [`errand_core::reach::MAX_RELAYED_PACKET`] bytes
//! (split by `errand_core::reach::PacketFrames`, fuzzed by the
//! `decode_circuit` target). The relay holds each
//! circuit to its limits ([`RelayLimits`]): circuits per peer, per
//! requester address and target, and per minute are checked before a
//! circuit opens (a refusal names the limit, [`RelayRefusal`]; a refused
//! circuit counts against no rate); bytes, duration and idleness while it
//! runs (the relay then resets both streams with the limit's code, which
//! each end reports as [`NetError::CircuitEnded`] naming it).
//!
//! Circuits are closed when they are not used, so that no one can hold a
//! target's circuit slots with circuits that carry nothing: the relay and
//! both ends close a circuit when either direction has carried nothing for
//! [`RelayLimits::circuit_idle_ms`], or nothing yet within
//! [`RelayLimits::handshake_ms`] of opening ([`CircuitActivity`]); the
//! target also closes one on which no session started within twice its
//! connect timeout, and one whose session has closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use errand_core::PeerId;
use errand_core::bounded::BString;
use errand_core::reach::{
    CircuitActivity, CircuitBudget, CircuitEnd, Observation, PacketFrames, PathKind, PerMinute,
    RelayLimits, RelayRefusal, RelayServerStats, RelayState, frame_packet,
};
use errand_core::signed;
use errand_core::wire::{RelayRequest, RelayResponse, Request, Response};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{Notify, mpsc};
use tokio::time::timeout;

use crate::admission::Source;
use crate::mux::{CIRCUIT_QUEUE, MuxSocket};
use crate::{Connection, Endpoint, NetError, lock};

/// How a hostile relay misbehaves (tests and demos only).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// Flips a bit in every packet after the first few each way.
    FlipBits,
    /// Sends every packet twice, and the one before it again.
    Replay,
}

/// Packets each way a [`Tamper::FlipBits`] relay lets through untouched
/// (the handshake's first flight).
const UNTOUCHED: u32 = 2;

/// How long a relay waits for the target to take a circuit.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the target of a circuit looks for the session on it, until
/// one starts.
const SESSION_POLL: Duration = Duration::from_millis(100);

/// Frames the first message on a circuit stream: one frame, the stream left
/// open for packets.
async fn write_open_frame(send: &mut SendStream, payload: &[u8]) -> Result<(), NetError> {
    let len = u32::try_from(payload.len()).map_err(|_| NetError::FrameTooLarge {
        len: payload.len(),
        max: u32::MAX as usize,
    })?;
    let mut buf = Vec::with_capacity(4 + payload.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    send.write_all(&buf)
        .await
        .map_err(|e| NetError::Closed(e.to_string()))
}

/// Reads the first message of a circuit stream (a small control frame),
/// leaving the stream open.
async fn read_open_frame(recv: &mut RecvStream) -> Result<Vec<u8>, NetError> {
    /// Control messages are small; a larger one is not ours.
    const MAX_CONTROL: usize = 4096;
    let mut header = [0u8; 4];
    recv.read_exact(&mut header)
        .await
        .map_err(|e| NetError::Closed(e.to_string()))?;
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_CONTROL {
        return Err(NetError::FrameTooLarge {
            len,
            max: MAX_CONTROL,
        });
    }
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| NetError::Closed(e.to_string()))?;
    Ok(body)
}

/// Why reading a circuit stream stopped.
#[derive(Debug)]
enum Stop {
    /// The stream was finished, or the connection went.
    Gone,
    /// The stream was reset with this code.
    Reset(u64),
}

/// Reads what has arrived on a circuit stream into `frames`.
async fn fill(recv: &mut RecvStream, frames: &mut PacketFrames) -> Result<(), Stop> {
    match recv.read_chunk(64 << 10, true).await {
        Ok(Some(chunk)) => {
            frames.push(&chunk.bytes);
            Ok(())
        }
        Ok(None) => Err(Stop::Gone),
        Err(quinn::ReadError::Reset(code)) => Err(Stop::Reset(code.into_inner())),
        Err(_) => Err(Stop::Gone),
    }
}

/// One end's side of a circuit: how it ended, once it has.
#[derive(Debug)]
pub struct Circuit {
    relay: PeerId,
    limits: RelayLimits,
    end: Mutex<Option<CircuitEnd>>,
    ended: Notify,
    close: Notify,
    /// Why this end closes it, when it does for a reason of its own.
    closing: Mutex<Option<CircuitEnd>>,
}

impl Circuit {
    /// How the circuit ended, if it has.
    pub fn end(&self) -> Option<CircuitEnd> {
        *lock(&self.end)
    }

    /// The relay it runs through.
    pub fn relay(&self) -> PeerId {
        self.relay
    }

    /// The relay's limits for it.
    pub fn limits(&self) -> RelayLimits {
        self.limits
    }

    fn finish(&self, end: CircuitEnd) {
        let mut e = lock(&self.end);
        if e.is_none() {
            *e = Some(end);
        }
        drop(e);
        self.ended.notify_waiters();
    }

    /// Waits until the circuit has ended, and says how.
    pub async fn ended(&self) -> CircuitEnd {
        loop {
            let wait = self.ended.notified();
            if let Some(e) = self.end() {
                return e;
            }
            wait.await;
        }
    }

    /// Closes it from this end.
    pub fn close(&self) {
        self.close.notify_one();
    }

    /// Closes it from this end for `why`, which the relay (and through it
    /// the other end) is told.
    fn close_because(&self, why: CircuitEnd) {
        *lock(&self.closing) = Some(why);
        self.close.notify_one();
    }
}

/// When the circuit's next idleness check is due, or how it ends now.
fn check_activity(activity: &Mutex<CircuitActivity>) -> Result<Instant, CircuitEnd> {
    lock(activity).check(Instant::now())
}

/// Waits until `activity` says the circuit has sat idle, and says how.
/// How much later than the relay an end of a circuit applies the relay's
/// idle and handshake limits itself.
const END_GRACE_MS: u64 = 1_000;

async fn idle(activity: &Mutex<CircuitActivity>) -> CircuitEnd {
    loop {
        match check_activity(activity) {
            Ok(next) => tokio::time::sleep_until(next.into()).await,
            Err(end) => return end,
        }
    }
}

/// Runs this end of a circuit on `send`/`recv`: a route in `mux` whose
/// packets go out on `send`, and packets from `recv` handed to quinn.
/// `requester` is, at the target, the address the relay saw the requester
/// at. Returns the circuit's virtual address and its handle.
fn run_circuit(
    endpoint: &Endpoint,
    (mut send, mut recv): (SendStream, RecvStream),
    (relay, relay_addr): (PeerId, SocketAddr),
    limits: RelayLimits,
    requester: Option<SocketAddr>,
) -> (SocketAddr, Arc<Circuit>) {
    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(CIRCUIT_QUEUE);
    let mux: &Arc<MuxSocket> = &endpoint.shared.mux;
    let (addr, inbound) = mux.add_route(out_tx, relay_addr, requester);
    let circuit = Arc::new(Circuit {
        relay,
        limits,
        end: Mutex::new(None),
        ended: Notify::new(),
        close: Notify::new(),
        closing: Mutex::new(None),
    });
    // This end enforces the relay's limits only as a backstop (against a
    // relay that does not), [`END_GRACE_MS`] later than the relay: the relay
    // owns the limits and ends the circuit first, so both ends learn its
    // reason. Racing it, a loaded end would close first and the other end
    // would hear only "peer gone".
    let backstop = RelayLimits {
        circuit_idle_ms: limits.circuit_idle_ms.saturating_add(END_GRACE_MS),
        ..limits
    };
    let activity = Mutex::new(CircuitActivity::new(
        &backstop,
        Instant::now() + Duration::from_millis(END_GRACE_MS),
    ));
    let c = circuit.clone();
    let m = mux.clone();
    let ep = endpoint.clone();
    tokio::spawn(async move {
        let reading = async {
            let mut frames = PacketFrames::default();
            loop {
                match fill(&mut recv, &mut frames).await {
                    Ok(()) => {}
                    Err(Stop::Reset(code)) => {
                        return CircuitEnd::from_code(code, &limits)
                            .unwrap_or(CircuitEnd::PeerGone);
                    }
                    Err(Stop::Gone) => return CircuitEnd::PeerGone,
                }
                lock(&activity).carried(0, Instant::now());
                loop {
                    let p = match frames.next_packet() {
                        Ok(Some(p)) => p.to_vec(),
                        Ok(None) => break,
                        Err(end) => return end,
                    };
                    if !inbound.deliver(p).await {
                        return CircuitEnd::Shutdown;
                    }
                }
            }
        };
        let writing = async {
            let mut buf = Vec::with_capacity(16 << 10);
            while let Some(p) = out_rx.recv().await {
                buf.clear();
                frame_packet(&mut buf, &p);
                // Take whatever else is queued, in one write.
                while buf.len() < (64 << 10) {
                    match out_rx.try_recv() {
                        Ok(p) => {
                            frame_packet(&mut buf, &p);
                        }
                        Err(_) => break,
                    }
                }
                lock(&activity).carried(1, Instant::now());
                if send.write_all(&buf).await.is_err() {
                    break;
                }
            }
            CircuitEnd::PeerGone
        };
        // Whether this end closes it, and why.
        let (end, ours) = tokio::select! {
            e = reading => (e, false),
            e = writing => (e, false),
            e = idle(&activity) => (e, true),
            _ = c.close.notified() => {
                match lock(&c.closing).take() {
                    Some(why) => (why, true),
                    None => {
                        let _ = send.finish();
                        (CircuitEnd::PeerGone, false)
                    }
                }
            }
        };
        if ours {
            let _ = send.reset(VarInt::from_u32(end.code()));
        }
        m.remove_route(addr);
        let _ = recv.stop(VarInt::from_u32(0));
        tracing::debug!(relay = %c.relay, reason = %end, "circuit ended");
        c.finish(end);
        // The session on it ends with it, at once (rather than at its idle
        // timeout, holding a connection slot of the peer meanwhile).
        if let Some(conn) = ep.relayed_session(addr) {
            conn.close(crate::close::CIRCUIT_ENDED, end.to_string().as_bytes());
        }
    });
    (addr, circuit)
}

impl Endpoint {
    /// Dials `target` through the relay `relay` at `relay_addr`: a circuit,
    /// then a QUIC connection over it, authenticated end to end exactly as
    /// a direct one. Fails with [`NetError::RelayRefused`] naming the limit
    /// when the relay refuses.
    pub async fn connect_relayed(
        &self,
        relay: PeerId,
        relay_addr: SocketAddr,
        target: PeerId,
    ) -> Result<Connection, NetError> {
        let (send, recv, limits, relay_observed) =
            self.ask_circuit(relay, relay_addr, target).await?;
        let (addr, circuit) = run_circuit(self, (send, recv), (relay, relay_addr), limits, None);
        let dialled = tokio::select! {
            c = self.dial(addr, target, PathKind::Relayed) => c,
            end = circuit.ended() => Err(NetError::CircuitEnded { relay, end }),
        };
        let mut conn = match dialled {
            Ok(c) => c,
            Err(e) => {
                circuit.close();
                return Err(match e {
                    NetError::Connect { peer, reason, .. } => NetError::Connect {
                        peer,
                        addr: relay_addr,
                        reason: format!("through relay {relay}: {reason}"),
                    },
                    other => other,
                });
            }
        };
        conn.circuit = Some(circuit.clone());
        conn.relay_observed = Some(relay_observed);
        // The circuit lives as long as the session on it.
        let inner = conn.conn.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = inner.closed() => circuit.close(),
                end = circuit.ended() => {
                    // Fail what is in flight now rather than at the idle
                    // timeout.
                    inner.close(crate::close::CIRCUIT_ENDED, end.to_string().as_bytes());
                }
            }
        });
        Ok(conn)
    }

    /// Asks the relay `relay` at `relay_addr` for a circuit to `target`:
    /// the circuit's streams, the relay's limits and the address it sees us
    /// at.
    pub(crate) async fn ask_circuit(
        &self,
        relay: PeerId,
        relay_addr: SocketAddr,
        target: PeerId,
    ) -> Result<(SendStream, RecvStream, RelayLimits, SocketAddr), NetError> {
        let to_relay = self.connection(relay_addr, relay).await?;
        let (mut send, mut recv) =
            timeout(self.shared.config.request_timeout, to_relay.conn.open_bi())
                .await
                .map_err(|_| NetError::Timeout(crate::OPENING_A_STREAM))?
                .map_err(|e| NetError::Closed(e.to_string()))?;
        let ask = Request::Relay(RelayRequest::Connect { target });
        let payload = signed::encode(&ask).map_err(|e| NetError::Encode(e.to_string()))?;
        write_open_frame(&mut send, &payload).await?;
        let answer = timeout(
            self.shared.config.connect_timeout,
            read_open_frame(&mut recv),
        )
        .await
        .map_err(|_| NetError::Timeout("waiting for the relay to open a circuit"))??;
        match signed::decode::<Response>(&answer)? {
            Response::Relay(RelayResponse::Connected { observed, limits }) => {
                // What the relay sees is our mapping towards it: a
                // candidate for the hole punch over this circuit, and
                // nothing more. The relay is the one the peer's descriptor
                // names, not one we chose, so what it says never joins our
                // observations (it would change our NAT classification
                // and every later punch's candidates).
                Ok((send, recv, limits, crate::mux::canonical(observed)))
            }
            Response::Relay(RelayResponse::Refused(refusal)) => {
                Err(NetError::RelayRefused { relay, refusal })
            }
            Response::Error(e) => Err(NetError::RelayRefused {
                relay,
                refusal: RelayRefusal::Unreachable {
                    target,
                    reason: BString::truncate_from(&e.to_string()),
                },
            }),
            _ => Err(NetError::Closed("the relay answered out of turn".into())),
        }
    }

    /// Keeps a reservation with the relay `relay` at `addr` until the
    /// returned handle is dropped: connects, reserves, takes the circuits
    /// the relay opens, and reconnects (backing off up to 30 s) whenever
    /// the connection fails. The reservation's state is in
    /// [`Endpoint::relay_states`].
    pub fn keep_reservation(&self, relay: PeerId, addr: SocketAddr) -> Reservation {
        let endpoint = self.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            loop {
                let started = Instant::now();
                let why = endpoint.reserve_once(relay, addr).await;
                endpoint.set_relay_state(relay, addr, false, Some(&why));
                let permanent = matches!(
                    &why,
                    NetError::RelayRefused {
                        refusal: RelayRefusal::NotARelay,
                        ..
                    }
                );
                if permanent {
                    tracing::info!(%relay, "not a relay; not reserving there");
                    return;
                }
                tracing::debug!(%relay, error = %why, "relay reservation lost; retrying");
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(500);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        });
        Reservation {
            task,
            endpoint: self.clone(),
            relay,
        }
    }

    /// One reservation, from connecting until it is lost; returns why.
    async fn reserve_once(&self, relay: PeerId, addr: SocketAddr) -> NetError {
        let conn = match self.connect(addr, relay).await {
            Ok(c) => c,
            Err(e) => return e,
        };
        let (observed, limits) = match conn.request(&Request::Relay(RelayRequest::Reserve)).await {
            Ok(Response::Relay(RelayResponse::Reserved { observed, limits })) => (observed, limits),
            Ok(Response::Relay(RelayResponse::Refused(refusal))) => {
                return NetError::RelayRefused { relay, refusal };
            }
            Ok(Response::Error(e)) => {
                // An older node, or one that does not relay.
                return NetError::RelayRefused {
                    relay,
                    refusal: if e.code == errand_core::wire::ErrorCode::BadRequest {
                        RelayRefusal::NotARelay
                    } else {
                        RelayRefusal::Unreachable {
                            target: self.peer_id(),
                            reason: BString::truncate_from(&e.to_string()),
                        }
                    },
                };
            }
            Ok(_) => return NetError::Closed("the relay answered out of turn".into()),
            Err(e) => return e,
        };
        tracing::info!(%relay, %addr, %observed, "relay reservation held");
        self.observed(Observation {
            observer: relay,
            observer_addr: addr,
            seen: observed,
            local: self.local_toward(addr),
        });
        self.set_relay_state(relay, addr, true, None);
        loop {
            let (send, recv) = match conn.conn.accept_bi().await {
                Ok(s) => s,
                Err(e) => return NetError::Closed(e.to_string()),
            };
            let endpoint = self.clone();
            tokio::spawn(async move {
                if let Err(e) = endpoint
                    .take_circuit((relay, addr), limits, send, recv)
                    .await
                {
                    tracing::debug!(%relay, error = %e, "refused a circuit");
                }
            });
        }
    }

    /// A circuit the relay opened to us: accept it and route it.
    async fn take_circuit(
        &self,
        (relay, relay_addr): (PeerId, SocketAddr),
        limits: RelayLimits,
        mut send: SendStream,
        mut recv: RecvStream,
    ) -> Result<(), NetError> {
        let first = timeout(ACCEPT_TIMEOUT, read_open_frame(&mut recv))
            .await
            .map_err(|_| NetError::Timeout("reading a circuit's opening"))??;
        let (from, seen) = match signed::decode::<Request>(&first)? {
            Request::Relay(RelayRequest::Incoming { from, seen }) => (from, seen),
            _ => {
                let _ = send.reset(VarInt::from_u32(CircuitEnd::Malformed.code()));
                return Err(NetError::Closed(
                    "the relay sent something else than a circuit".into(),
                ));
            }
        };
        let ok = signed::encode(&Response::Relay(RelayResponse::Accepted))
            .map_err(|e| NetError::Encode(e.to_string()))?;
        write_open_frame(&mut send, &ok).await?;
        let (addr, circuit) = run_circuit(
            self,
            (send, recv),
            (relay, relay_addr),
            limits,
            Some(crate::mux::canonical(seen)),
        );
        tracing::debug!(%relay, %from, %seen, %addr, "circuit opened to us");
        // The session on it is accepted by `serve` like any other (and
        // admitted as coming from `seen` through the relay). The circuit
        // ends when the relay or the other end ends it, when no session
        // starts on it in time, or when its session closes: a circuit
        // nobody uses holds no slot of ours at the relay.
        let endpoint = self.clone();
        let window = self.shared.config.connect_timeout.saturating_mul(2);
        tokio::spawn(async move {
            let deadline = Instant::now() + window;
            let session = loop {
                if circuit.end().is_some() {
                    return;
                }
                if let Some(s) = endpoint.relayed_session(addr) {
                    break s;
                }
                if Instant::now() >= deadline {
                    let within_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
                    circuit.close_because(CircuitEnd::NoHandshake { within_ms });
                    return;
                }
                tokio::time::sleep(SESSION_POLL).await;
            };
            tokio::select! {
                _ = session.closed() => circuit.close(),
                _ = circuit.ended() => {}
            }
        });
        Ok(())
    }

    fn set_relay_state(
        &self,
        relay: PeerId,
        addr: SocketAddr,
        reserved: bool,
        error: Option<&NetError>,
    ) {
        lock(&self.shared.reach).relays.insert(
            relay,
            RelayState {
                relay,
                addr,
                reserved,
                error: error.map(|e| BString::truncate_from(&e.to_string())),
            },
        );
    }

    /// The relays this endpoint keeps reservations with, and their state.
    pub fn relay_states(&self) -> Vec<RelayState> {
        let mut v: Vec<RelayState> = lock(&self.shared.reach).relays.values().cloned().collect();
        v.sort_by_key(|r| r.relay);
        v
    }

    /// The relays holding a reservation for us now.
    pub fn reserved_relays(&self) -> Vec<(PeerId, SocketAddr)> {
        self.relay_states()
            .into_iter()
            .filter(|r| r.reserved)
            .map(|r| (r.relay, r.addr))
            .collect()
    }
}

/// A reservation kept by [`Endpoint::keep_reservation`]; dropping it
/// gives the reservation up.
#[derive(Debug)]
pub struct Reservation {
    task: tokio::task::JoinHandle<()>,
    endpoint: Endpoint,
    relay: PeerId,
}

impl Reservation {
    /// The relay.
    pub fn relay(&self) -> PeerId {
        self.relay
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.task.abort();
        lock(&self.endpoint.shared.reach).relays.remove(&self.relay);
    }
}

/// The relay service of an endpoint with [`crate::NetConfig::relay`] set.
#[derive(Debug)]
pub(crate) struct RelayService {
    limits: RelayLimits,
    tamper: Option<Tamper>,
    state: Mutex<ServiceState>,
}

/// A requester's address (as [`Source`]) and the target it asks for.
type Pair = (Source, PeerId);

#[derive(Debug, Default)]
struct ServiceState {
    /// Each reserved peer's connection, and the source it reserved from.
    reservations: HashMap<PeerId, (quinn::Connection, Source)>,
    /// Circuits open, by peer at either end.
    circuits: HashMap<PeerId, u32>,
    /// Circuits open, by requester address and target.
    pairs: HashMap<Pair, u32>,
    rates: HashMap<PeerId, PerMinute>,
    pair_rates: HashMap<Pair, PerMinute>,
    stats: RelayServerStats,
}

/// Takes one from a count, forgetting it at 0.
fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(key);
        }
    }
}

/// A circuit's place in the counts, given back when dropped.
struct Slot<'a> {
    service: &'a RelayService,
    ends: [PeerId; 2],
    pair: Pair,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.service.state);
        for p in self.ends {
            decrement(&mut s.circuits, &p);
        }
        decrement(&mut s.pairs, &self.pair);
        s.stats.circuits_open = s.stats.circuits_open.saturating_sub(1);
    }
}

async fn respond_open(send: &mut SendStream, resp: &Response) {
    if let Ok(bytes) = signed::encode(resp) {
        let _ = write_open_frame(send, &bytes).await;
    }
}

impl RelayService {
    pub(crate) fn new(limits: RelayLimits, tamper: Option<Tamper>) -> RelayService {
        RelayService {
            limits,
            tamper,
            state: Mutex::new(ServiceState::default()),
        }
    }

    pub(crate) fn stats(&self) -> RelayServerStats {
        let s = lock(&self.state);
        RelayServerStats {
            reservations: s.reservations.len() as u64,
            ..s.stats
        }
    }

    /// Answers a reservation on `conn`.
    pub(crate) fn reserve(&self, conn: &quinn::Connection, peer: PeerId) -> Response {
        let remote = crate::mux::canonical(conn.remote_address());
        let mut s = lock(&self.state);
        let refuse = |s: &mut ServiceState, r: RelayRefusal| {
            s.stats.refused += 1;
            Response::Relay(RelayResponse::Refused(r))
        };
        if crate::mux::is_virtual(remote) {
            return refuse(&mut s, RelayRefusal::OverACircuit);
        }
        let source = Source::of(remote);
        s.reservations
            .retain(|_, (c, _)| c.close_reason().is_none());
        // A peer reserving again replaces its reservation.
        let others = s.reservations.iter().filter(|(p, _)| **p != peer);
        let (all, same_source) = others.fold((0usize, 0usize), |(all, same), (_, (_, src))| {
            (all + 1, same + usize::from(*src == source))
        });
        if all >= self.limits.max_reservations as usize {
            let max = self.limits.max_reservations;
            return refuse(&mut s, RelayRefusal::Reservations { max });
        }
        if same_source >= self.limits.max_reservations_per_address as usize {
            let max = self.limits.max_reservations_per_address;
            return refuse(&mut s, RelayRefusal::AddressReservations { max });
        }
        s.reservations.insert(peer, (conn.clone(), source));
        tracing::debug!(%peer, addr = %conn.remote_address(), "relay reservation");
        Response::Relay(RelayResponse::Reserved {
            observed: crate::mux::canonical(conn.remote_address()),
            limits: self.limits,
        })
    }

    /// Checks a circuit from `from`, seen at `seen`, to `target` against
    /// the limits and takes its place in the counts. A refused circuit
    /// counts against nothing.
    ///
    /// The target's limits are shared by everyone who asks for it, so one
    /// requester address holds at most a share of them
    /// ([`RelayLimits::circuits_per_address_to_target`],
    /// [`RelayLimits::rate_per_address_to_target`]): keyed by address, not
    /// identity, since identities are free.
    fn admit(
        &self,
        (from, seen): (PeerId, SocketAddr),
        target: PeerId,
    ) -> Result<(quinn::Connection, Slot<'_>), RelayRefusal> {
        if from == target {
            return Err(RelayRefusal::ToSelf);
        }
        let seen = crate::mux::canonical(seen);
        let now = Instant::now();
        let mut s = lock(&self.state);
        let refuse = |s: &mut ServiceState, r: RelayRefusal| {
            s.stats.refused += 1;
            Err(r)
        };
        if crate::mux::is_virtual(seen) {
            return refuse(&mut s, RelayRefusal::OverACircuit);
        }
        let pair = (Source::of(seen), target);
        let target_conn = match s.reservations.get(&target) {
            Some((c, _)) if c.close_reason().is_none() => c.clone(),
            _ => return refuse(&mut s, RelayRefusal::NoReservation { target }),
        };
        let limits = &self.limits;
        for peer in [from, target] {
            if s.circuits.get(&peer).copied().unwrap_or(0) >= limits.max_circuits_per_peer {
                let max = limits.max_circuits_per_peer;
                return refuse(&mut s, RelayRefusal::Circuits { peer, max });
            }
        }
        let max = limits.circuits_per_address_to_target();
        if s.pairs.get(&pair).copied().unwrap_or(0) >= max {
            return refuse(&mut s, RelayRefusal::AddressCircuits { target, max });
        }
        for peer in [from, target] {
            let per_minute = limits.circuits_per_minute;
            if !s
                .rates
                .get_mut(&peer)
                .map_or(per_minute > 0, |r| r.would_allow(now, per_minute))
            {
                return refuse(&mut s, RelayRefusal::Rate { peer, per_minute });
            }
        }
        let per_minute = limits.rate_per_address_to_target();
        if !s
            .pair_rates
            .get_mut(&pair)
            .map_or(per_minute > 0, |r| r.would_allow(now, per_minute))
        {
            return refuse(&mut s, RelayRefusal::AddressRate { target, per_minute });
        }
        for peer in [from, target] {
            s.rates.entry(peer).or_default().record(now);
            *s.circuits.entry(peer).or_default() += 1;
        }
        s.pair_rates.entry(pair).or_default().record(now);
        *s.pairs.entry(pair).or_default() += 1;
        s.rates.retain(|_, r| !r.idle(now));
        s.pair_rates.retain(|_, r| !r.idle(now));
        s.stats.circuits_open += 1;
        s.stats.circuits_total += 1;
        Ok((
            target_conn,
            Slot {
                service: self,
                ends: [from, target],
                pair,
            },
        ))
    }

    /// A circuit from `from` (on `send`/`recv`) to `target`: opens it, then
    /// copies packets both ways until it ends.
    pub(crate) async fn circuit(
        &self,
        (from, seen): (PeerId, SocketAddr),
        target: PeerId,
        mut send: SendStream,
        recv: RecvStream,
    ) {
        let (target_conn, slot) = match self.admit((from, seen), target) {
            Ok(x) => x,
            Err(refusal) => {
                tracing::debug!(%from, %target, %refusal, "circuit refused");
                respond_open(&mut send, &Response::Relay(RelayResponse::Refused(refusal))).await;
                let _ = send.finish();
                return;
            }
        };
        let opened = async {
            let (mut tsend, mut trecv) = target_conn.open_bi().await.map_err(|e| e.to_string())?;
            let hello = signed::encode(&Request::Relay(RelayRequest::Incoming {
                from,
                seen: crate::mux::canonical(seen),
            }))
            .map_err(|e| e.to_string())?;
            write_open_frame(&mut tsend, &hello)
                .await
                .map_err(|e| e.to_string())?;
            let answer = read_open_frame(&mut trecv)
                .await
                .map_err(|e| e.to_string())?;
            match signed::decode::<Response>(&answer) {
                Ok(Response::Relay(RelayResponse::Accepted)) => Ok((tsend, trecv)),
                Ok(other) => Err(format!("answered {other:?}")),
                Err(e) => Err(e.to_string()),
            }
        };
        let (tsend, trecv) = match timeout(ACCEPT_TIMEOUT, opened).await {
            Ok(Ok(s)) => s,
            other => {
                let reason = match other {
                    Ok(Err(why)) => why,
                    _ => "timed out".to_owned(),
                };
                let refusal = RelayRefusal::Unreachable {
                    target,
                    reason: BString::truncate_from(&reason),
                };
                respond_open(&mut send, &Response::Relay(RelayResponse::Refused(refusal))).await;
                let _ = send.finish();
                return;
            }
        };
        respond_open(
            &mut send,
            &Response::Relay(RelayResponse::Connected {
                observed: crate::mux::canonical(seen),
                limits: self.limits,
            }),
        )
        .await;
        tracing::debug!(%from, %target, "circuit open");
        let end = self.pump([send, tsend], [recv, trecv]).await;
        tracing::debug!(%from, %target, reason = %end, "circuit closed");
        drop(slot);
    }

    /// Copies packets between the two ends until a limit or an end.
    async fn pump(&self, sends: [SendStream; 2], recvs: [RecvStream; 2]) -> CircuitEnd {
        let [mut a_send, mut b_send] = sends;
        let [mut a_recv, mut b_recv] = recvs;
        let now = Instant::now();
        let budget = Mutex::new(CircuitBudget::new(self.limits, now));
        let activity = Mutex::new(CircuitActivity::new(&self.limits, now));
        let deadline = lock(&budget).deadline();
        let end = {
            let ab = self.copy((&mut a_recv, &mut b_send), 0, &budget, &activity);
            let ba = self.copy((&mut b_recv, &mut a_send), 1, &budget, &activity);
            tokio::select! {
                e = ab => e,
                e = ba => e,
                e = idle(&activity) => e,
                _ = tokio::time::sleep_until(deadline.into()) => CircuitEnd::Duration {
                    max_ms: self.limits.max_circuit_duration_ms,
                },
            }
        };
        let code = VarInt::from_u32(end.code());
        for s in [&mut a_send, &mut b_send] {
            let _ = s.reset(code);
        }
        for r in [&mut a_recv, &mut b_recv] {
            let _ = r.stop(code);
        }
        end
    }

    /// Copies packets from `recv` to `send`, direction `way` of the
    /// circuit, within `budget`, noting them in `activity`.
    async fn copy(
        &self,
        (recv, send): (&mut RecvStream, &mut SendStream),
        way: usize,
        budget: &Mutex<CircuitBudget>,
        activity: &Mutex<CircuitActivity>,
    ) -> CircuitEnd {
        let mut frames = PacketFrames::default();
        let mut previous: Option<Vec<u8>> = None;
        let mut seen: u32 = 0;
        let mut out = Vec::with_capacity(64 << 10);
        loop {
            if fill(recv, &mut frames).await.is_err() {
                return CircuitEnd::PeerGone;
            }
            out.clear();
            let mut carried = 0u64;
            {
                // Everything that has arrived, forwarded in one write.
                let mut budget = lock(budget);
                let now = Instant::now();
                loop {
                    let mut packet = match frames.next_packet() {
                        Ok(Some(p)) => p.to_vec(),
                        Ok(None) => break,
                        Err(end) => return end,
                    };
                    if let Err(end) = budget.carry(packet.len() + 2, now) {
                        return end;
                    }
                    carried += packet.len() as u64 + 2;
                    seen = seen.saturating_add(1);
                    match self.tamper {
                        None => {
                            frame_packet(&mut out, &packet);
                        }
                        Some(Tamper::FlipBits) => {
                            if seen > UNTOUCHED {
                                let at = packet.len() / 2;
                                packet[at] ^= 0x01;
                            }
                            frame_packet(&mut out, &packet);
                        }
                        Some(Tamper::Replay) => {
                            frame_packet(&mut out, &packet);
                            frame_packet(&mut out, &packet);
                            if let Some(p) = &previous {
                                frame_packet(&mut out, p);
                            }
                            previous = Some(packet);
                        }
                    }
                }
            }
            if carried > 0 {
                lock(activity).carried(way, Instant::now());
            }
            lock(&self.state).stats.bytes_relayed += carried;
            if !out.is_empty() && send.write_all(&out).await.is_err() {
                return CircuitEnd::PeerGone;
            }
        }
    }
}
