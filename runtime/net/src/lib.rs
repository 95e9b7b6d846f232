//! # errand-net
//!
//! Errand's connectivity plane: QUIC (quinn) with TLS 1.3 (rustls, ring)
//! where a peer's TLS identity is its ed25519 key ([`tls`]). Dialling a
//! [`PeerId`] fails unless the remote proves it holds that key; every
//! incoming connection carries the client's proven [`PeerId`].
//!
//! ## Framing
//!
//! Each exchange is one request and one response on a fresh bidirectional
//! stream. A message is one frame, `len: u32 big-endian ‖ payload`, after
//! which the sender finishes its side of the stream. The payload is an
//! encoded [`Request`] or [`Response`] (tagged, versioned, bounded: see
//! `errand_core::wire`). The length is checked against
//! [`NetConfig::max_frame_bytes`] first; a frame that is too large, does
//! not decode, or is followed by more bytes is a protocol violation: the
//! peer gets an error response and is disconnected, and the server carries
//! on with everyone else. A frame whose stream ends early is answered with
//! an error but costs only that stream (a requester that gives up on a
//! request resets its stream; see [`stream::CANCELLED`]).
//!
//! ## Memory
//!
//! The declared length of a frame is never trusted for allocation. A frame
//! is read in chunks as its bytes arrive; every byte that arrives is first
//! reserved from the endpoint's [`FrameBudget`], one budget for every
//! connection of every peer ([`NetConfig::frame_memory_bytes`], 256 MiB by
//! default), and the buffer holding them is at most twice that size (never
//! past the declared length). A request keeps its reservation until it has
//! been answered, so the budget also covers requests being decoded, queued
//! and handled, and an encoded response holds its size in the budget until
//! the peer has taken it (one that cannot get memory is dropped, its stream
//! reset). Below the frames, QUIC's own receive buffers are bounded per
//! connection (4 MiB), and the endpoint accepts at most
//! [`NetConfig::max_connections`] connections in all. A
//! frame that cannot get memory within [`NetConfig::frame_memory_wait`] is
//! refused with a `Busy` error (retryable; not a violation). So the
//! memory held by frames has a hard bound however many identities connect:
//! a peer that declares huge frames and never sends them holds nothing, and
//! one that sends slowly holds only what it sent, until
//! [`NetConfig::request_timeout`].
//!
//! ## Limits
//!
//! Before any handshake, a new connection must be admitted (see
//! [`admission`]): each source address (IPv4, or IPv6 /64) may open
//! [`NetConfig::handshakes_per_address`] a second
//! ([`NetConfig::handshake_burst_per_address`] at once), and addresses
//! that have not proven they receive our packets are admitted only within
//! [`NetConfig::unproven_handshakes`] a second node-wide, else asked to
//! prove it (a QUIC retry). Past its rate, a source's new connection is
//! refused at once, which the dialler sees as [`NetError::Refused`]
//! (retryable), and its further attempts in the next second are ignored;
//! connections already open are never touched.
//!
//! Per connection, at most [`NetConfig::max_streams_per_connection`]
//! concurrent requests (enforced by QUIC flow control: a further stream
//! waits for a free one); per peer, at most
//! [`NetConfig::max_connections_per_peer`] connections; in all, at most
//! [`NetConfig::max_connections`] (further handshakes are refused before
//! any work). A peer at its limit that connects again has the *new*
//! connection refused (closed with
//! [`close::REFUSED`], which the dialler sees as
//! [`NetError::Refused`], retryable): work in flight on its open
//! connections is never dropped to admit another.
//!
//! ## Timeouts
//!
//! Every wait that depends on the peer has a timeout: the handshake
//! ([`NetConfig::connect_timeout`]), reading a request
//! ([`NetConfig::request_timeout`]), writing a message until the peer has
//! acknowledged all of it ([`NetConfig::write_timeout`]: a peer that never
//! reads cannot pin a response in the send buffer), reading a response
//! ([`NetConfig::response_timeout`]), memory for a frame
//! ([`NetConfig::frame_memory_wait`]), and idleness
//! ([`NetConfig::idle_timeout`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), errand_net::NetError> {
//! use errand_core::{SecretKey, wire::{Request, Response}};
//! use errand_net::{Endpoint, NetConfig};
//!
//! let key = SecretKey::from_seed([1; 32]); // use a real key
//! let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), key, NetConfig::default())?;
//! let server: errand_core::PeerId = "errand1…".parse().unwrap();
//! let answer = endpoint.request("127.0.0.1:4433".parse().unwrap(), server, &Request::Ping).await?;
//! assert_eq!(answer, Response::Pong);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use errand_core::signed::{self, DecodeError};
use errand_core::wire::{ErrorCode, Request, Response, WireError};
use errand_core::{PeerId, SecretKey};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;

pub mod admission;
pub mod mux;
pub mod paths;
pub mod punch;
pub mod relay;
#[doc(hidden)]
pub mod testing;
pub mod tls;

use errand_core::reach::{CircuitEnd, PathKind, RelayLimits, RelayRefusal};

/// QUIC close codes Errand uses.
pub mod close {
    use quinn::VarInt;
    /// Normal close.
    pub const DONE: VarInt = VarInt::from_u32(0);
    /// The peer sent a malformed or oversized frame.
    pub const PROTOCOL_VIOLATION: VarInt = VarInt::from_u32(1);
    /// No longer sent: older nodes closed a peer's *oldest* connection with
    /// this code at its connection limit, work in flight included, so it
    /// says nothing about whether a request on it ran.
    pub const TOO_MANY_CONNECTIONS: VarInt = VarInt::from_u32(2);
    /// The node is shutting down.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(3);
    /// This new connection is refused at a limit (the peer's connections)
    /// before anything on it was read: nothing was done; retry later.
    pub const REFUSED: VarInt = VarInt::from_u32(4);
    /// The relay circuit under the connection ended (the reason follows).
    pub const CIRCUIT_ENDED: VarInt = VarInt::from_u32(5);
}

/// Stream reset and stop codes Errand uses.
pub mod stream {
    use quinn::VarInt;
    /// A wait on the peer timed out (reading a request, or the peer taking
    /// delivery of a response).
    pub const TIMED_OUT: VarInt = VarInt::from_u32(1);
    /// No frame memory was free: the request is refused (and answered with
    /// a `Busy` error).
    pub const NO_MEMORY: VarInt = VarInt::from_u32(2);
    /// The requester gave up on a request before sending all of it.
    pub const CANCELLED: VarInt = VarInt::from_u32(3);
}

/// What [`Connection::request`] reports when the stream could not even be
/// opened in time (the peer's streams were all busy): nothing was sent.
pub const OPENING_A_STREAM: &str = "opening a stream";

/// Connectivity settings.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// Memory for frames in flight, over every connection of every peer,
    /// in bytes (see the module docs). At least `max_frame_bytes`.
    pub frame_memory_bytes: usize,
    /// How long a frame may wait for memory before it is refused.
    pub frame_memory_wait: Duration,
    /// How long a TLS/QUIC handshake may take.
    pub connect_timeout: Duration,
    /// How long a peer may take to send a whole request.
    pub request_timeout: Duration,
    /// How long a peer may take to take delivery of a whole message we
    /// write (read it and acknowledge it).
    pub write_timeout: Duration,
    /// How long to wait for a response (includes the remote's work).
    pub response_timeout: Duration,
    /// Idle connections close after this.
    pub idle_timeout: Duration,
    /// Concurrent requests per connection.
    pub max_streams_per_connection: u32,
    /// Concurrent connections per peer.
    pub max_connections_per_peer: usize,
    /// Concurrent incoming connections in all, whoever the peers are.
    pub max_connections: usize,
    /// New connections a second from one source address (an IPv4 address
    /// or an IPv6 /64); more are refused before the handshake (see
    /// [`admission`]). Peers behind one NAT address share it.
    pub handshakes_per_address: u32,
    /// New connections one source address may open at once after a quiet
    /// spell; the upper half of it is open to addresses not yet proven.
    pub handshake_burst_per_address: u32,
    /// Handshakes a second, node-wide, with addresses not proven by a
    /// retry; past it, new clients prove theirs first (one more round
    /// trip). 0: every client proves its address.
    pub unproven_handshakes: u32,
    /// Relay for other peers, within these limits (see [`relay`]).
    pub relay: Option<RelayLimits>,
    /// A relay that misbehaves on purpose (tests and demos only).
    #[doc(hidden)]
    pub relay_tamper: Option<relay::Tamper>,
    /// Try to punch a hole to a peer reached through a relay, and move to
    /// the direct path when it works (see [`punch`]).
    pub punch: bool,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            max_frame_bytes: 96 << 20,
            frame_memory_bytes: 256 << 20,
            frame_memory_wait: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            max_streams_per_connection: 64,
            max_connections_per_peer: 16,
            max_connections: 1024,
            handshakes_per_address: 32,
            handshake_burst_per_address: 128,
            unproven_handshakes: 256,
            relay: None,
            relay_tamper: None,
            punch: true,
        }
    }
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS could not be configured.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The settings are inconsistent.
    #[error("network settings: {0}")]
    Config(String),
    /// The handshake failed: unreachable, or not the peer we dialled.
    #[error("cannot connect to {peer} at {addr}: {reason}")]
    Connect {
        /// The peer dialled.
        peer: PeerId,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The peer refused this connection at a limit before reading anything
    /// from it (or before the handshake: too many new connections from
    /// this address): nothing was done; retry later.
    #[error("refused by the peer, retry later: {0}")]
    Refused(String),
    /// A wait on the peer timed out.
    #[error("timed out {0}")]
    Timeout(&'static str),
    /// The connection or stream closed.
    #[error("connection closed: {0}")]
    Closed(String),
    /// A frame over the size limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Its declared size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ended before the frame did.
    #[error("frame truncated: the stream ended after {got} of {len} bytes")]
    Truncated {
        /// Bytes the frame (with its 4-byte header) should have.
        len: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// No frame memory was free in time (see [`FrameBudget`]).
    #[error(
        "no frame memory free: {wanted} more bytes wanted, {in_use} of {total} in use; retry later"
    )]
    NoMemory {
        /// Bytes asked for.
        wanted: usize,
        /// Bytes reserved by frames in flight.
        in_use: usize,
        /// The budget.
        total: usize,
    },
    /// Bytes after the frame.
    #[error("bytes after the end of the frame")]
    TrailingBytes,
    /// The frame does not decode.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// We could not encode a message.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// A relay refused a reservation or a circuit, naming why.
    #[error("relay {relay} refused: {refusal}")]
    RelayRefused {
        /// The relay.
        relay: PeerId,
        /// Why, naming the limit when it was one.
        refusal: RelayRefusal,
    },
    /// The relay circuit under a connection ended, naming why.
    #[error("the circuit through relay {relay} ended: {end}")]
    CircuitEnded {
        /// The relay.
        relay: PeerId,
        /// Why, naming the limit when it was one.
        end: CircuitEnd,
    },
    /// No path to the peer is known (it published none we can use).
    #[error("no known path to {0}")]
    NoPath(PeerId),
    /// Every path to the peer failed; each failure is listed.
    #[error("no path to {peer} worked: {}", .failures.join("; "))]
    AllPathsFailed {
        /// The peer.
        peer: PeerId,
        /// Each path and why it failed.
        failures: Vec<String>,
    },
    /// A hole punch ended without a direct connection.
    #[error("hole punch to {peer} failed: {reason}")]
    PunchFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

impl NetError {
    /// Whether the operation may be retried as it is: the failure happened
    /// before the peer acted on anything (refused at a limit, no stream
    /// free, no frame memory free).
    pub fn is_retryable(&self) -> bool {
        match self {
            NetError::Refused(_) | NetError::NoMemory { .. } => true,
            NetError::Timeout(what) => *what == OPENING_A_STREAM,
            _ => false,
        }
    }
}

/// The memory budget for frames in flight, shared by every stream of an
/// endpoint (see the module docs). Cheap to clone.
#[derive(Debug, Clone)]
pub struct FrameBudget {
    bytes: Arc<Semaphore>,
    total: usize,
    wait: Duration,
}

impl FrameBudget {
    /// A budget of `total` bytes; a reservation waits at most `wait`.
    pub fn new(total: usize, wait: Duration) -> FrameBudget {
        let total = total.min(Semaphore::MAX_PERMITS);
        FrameBudget {
            bytes: Arc::new(Semaphore::new(total)),
            total,
            wait,
        }
    }

    /// The budget, in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        self.total.saturating_sub(self.bytes.available_permits())
    }

    /// Adds `n` bytes to `held`, waiting at most the budget's wait.
    async fn grow(&self, held: &mut Reservation, n: usize) -> Result<(), NetError> {
        let no_memory = || NetError::NoMemory {
            wanted: n,
            in_use: self.in_use(),
            total: self.total,
        };
        let want = u32::try_from(n).map_err(|_| no_memory())?;
        if n > self.total {
            return Err(no_memory());
        }
        // Memory that is free is taken at once, even while a larger
        // reservation waits; only what is not free queues (in order).
        let permit = match self.bytes.clone().try_acquire_many_owned(want) {
            Ok(p) => p,
            Err(_) => match timeout(self.wait, self.bytes.clone().acquire_many_owned(want)).await {
                Ok(Ok(p)) => p,
                // Timed out, or the semaphore was closed (never happens).
                _ => return Err(no_memory()),
            },
        };
        match &mut held.0 {
            Some(h) => h.merge(permit),
            None => held.0 = Some(permit),
        }
        Ok(())
    }
}

/// Memory reserved from a [`FrameBudget`]; given back when dropped.
#[derive(Debug, Default)]
pub struct Reservation(Option<OwnedSemaphorePermit>);

impl Reservation {
    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.0.as_ref().map_or(0, OwnedSemaphorePermit::num_permits)
    }
}

/// A frame's payload and the memory reserved for it.
#[derive(Debug)]
pub struct Frame {
    bytes: Vec<u8>,
    reservation: Reservation,
}

impl Frame {
    /// The payload and its reservation, to keep the memory accounted for
    /// while what was decoded from it lives.
    pub fn into_parts(self) -> (Vec<u8>, Reservation) {
        (self.bytes, self.reservation)
    }
}

impl std::ops::Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A connection with an authenticated peer.
#[derive(Clone, Debug)]
pub struct Connection {
    conn: quinn::Connection,
    peer: PeerId,
    config: Arc<NetConfig>,
    budget: FrameBudget,
    kind: PathKind,
    circuit: Option<Arc<relay::Circuit>>,
    relay_observed: Option<SocketAddr>,
}

fn peer_of(conn: &quinn::Connection) -> Option<PeerId> {
    let any = conn.peer_identity()?;
    let certs = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::peer_of_spki(certs.first()?.as_ref())
}

/// Writes one frame and finishes the stream. Returns once the frame is
/// buffered for sending; see [`write_frame_delivered`] to wait for the
/// peer's acknowledgement.
pub async fn write_frame(send: &mut SendStream, payload: &[u8]) -> Result<(), NetError> {
    let len = u32::try_from(payload.len()).map_err(|_| NetError::FrameTooLarge {
        len: payload.len(),
        max: u32::MAX as usize,
    })?;
    send.write_all(&len.to_be_bytes())
        .await
        .map_err(|e| NetError::Closed(e.to_string()))?;
    send.write_all(payload)
        .await
        .map_err(|e| NetError::Closed(e.to_string()))?;
    send.finish().map_err(|e| NetError::Closed(e.to_string()))
}

/// Writes one frame, finishes the stream and waits until the peer has
/// acknowledged every byte, for at most `limit`; on timeout the stream is
/// reset, which drops whatever is still buffered for the peer.
pub async fn write_frame_delivered(
    send: &mut SendStream,
    payload: &[u8],
    limit: Duration,
) -> Result<(), NetError> {
    let delivered = timeout(limit, async {
        write_frame(send, payload).await?;
        match send.stopped().await {
            Ok(None) => Ok(()),
            Ok(Some(code)) => Err(NetError::Closed(format!(
                "the peer stopped reading (code {code})"
            ))),
            Err(e) => Err(NetError::Closed(e.to_string())),
        }
    })
    .await;
    match delivered {
        Ok(r) => r,
        Err(_) => {
            let _ = send.reset(stream::TIMED_OUT);
            Err(NetError::Timeout("waiting for the peer to take a message"))
        }
    }
}

/// Bytes QUIC buffers per connection, below the frame budget.
const CONNECTION_RECEIVE_WINDOW: u32 = 4 << 20;

/// Reads one frame of at most `max` bytes, then requires the stream to end.
/// The buffer grows with the bytes that arrive, with memory reserved from
/// `budget` (see the module docs); the declared length only caps it.
pub async fn read_frame(
    recv: &mut RecvStream,
    max: usize,
    budget: &FrameBudget,
) -> Result<Frame, NetError> {
    let frame = read_frame_open(recv, max, budget).await?;
    expect_end(recv).await?;
    Ok(frame)
}

/// Requires the stream to end here.
async fn expect_end(recv: &mut RecvStream) -> Result<(), NetError> {
    let mut extra = [0u8; 1];
    match recv.read(&mut extra).await {
        Ok(None) | Ok(Some(0)) => Ok(()),
        Ok(Some(_)) => Err(NetError::TrailingBytes),
        Err(e) => Err(NetError::Closed(e.to_string())),
    }
}

/// Reads one frame as [`read_frame`] does, leaving the rest of the stream.
async fn read_frame_open(
    recv: &mut RecvStream,
    max: usize,
    budget: &FrameBudget,
) -> Result<Frame, NetError> {
    let closed = |e: quinn::ReadError| NetError::Closed(e.to_string());
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match recv.read(&mut header[got..]).await.map_err(closed)? {
            Some(n) => got += n,
            None => return Err(NetError::Truncated { len: 4, got }),
        }
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(NetError::FrameTooLarge { len, max });
    }
    let mut frame = Frame {
        bytes: Vec::new(),
        reservation: Reservation::default(),
    };
    while frame.bytes.len() < len {
        let have = frame.bytes.len();
        let Some(chunk) = recv.read_chunk(len - have, true).await.map_err(closed)? else {
            return Err(NetError::Truncated {
                len: len + 4,
                got: have + 4,
            });
        };
        let need = have + chunk.bytes.len();
        // The budget counts bytes that arrived, never what was declared: a
        // peer holds only what it sent.
        let reserved = frame.reservation.bytes();
        if need > reserved {
            budget.grow(&mut frame.reservation, need - reserved).await?;
        }
        if need > frame.bytes.capacity() {
            // Double, to keep copying linear, never past the declared
            // length: the allocation is at most twice what arrived.
            let target = need.max(frame.bytes.capacity() * 2).min(len);
            frame.bytes.reserve_exact(target - have);
        }
        frame.bytes.extend_from_slice(&chunk.bytes);
    }
    Ok(frame)
}

/// How a connection ended, when that explains a failure better than the
/// stream error does (a refusal at the peer's connection limit).
fn refined(conn: &quinn::Connection, e: NetError) -> NetError {
    match (&e, conn.close_reason()) {
        (NetError::Closed(_), Some(quinn::ConnectionError::ApplicationClosed(c)))
            if c.error_code == close::REFUSED =>
        {
            NetError::Refused(String::from_utf8_lossy(&c.reason).into_owned())
        }
        _ => e,
    }
}

impl Connection {
    /// The authenticated peer.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        self.conn.remote_address()
    }

    /// Whether the connection has closed.
    pub fn is_closed(&self) -> bool {
        self.conn.close_reason().is_some()
    }

    /// How it was made: direct, punched or relayed.
    pub fn kind(&self) -> PathKind {
        self.kind
    }

    /// The relay circuit it runs on, if relayed.
    pub fn circuit(&self) -> Option<&Arc<relay::Circuit>> {
        self.circuit.as_ref()
    }

    /// For a relayed connection we dialled, the address the relay said it
    /// saw us at: a punch candidate for this session only (the relay was
    /// named by the peer's descriptor, not chosen by us, so its word never
    /// joins [`Endpoint::observations`]).
    pub fn relay_observed(&self) -> Option<SocketAddr> {
        self.relay_observed
    }

    /// The circuit's end, which explains a failure better than the
    /// connection's when the circuit under it ended.
    fn explained(&self, e: NetError) -> NetError {
        let Some(c) = &self.circuit else {
            return e;
        };
        match (e, c.end()) {
            (
                NetError::Closed(_) | NetError::Timeout(_) | NetError::Truncated { .. },
                Some(end),
            ) if end != CircuitEnd::PeerGone => NetError::CircuitEnded {
                relay: c.relay(),
                end,
            },
            // A session through a relay that fails: say which relay.
            (NetError::Closed(why), _) => {
                NetError::Closed(format!("{why} (through relay {})", c.relay()))
            }
            (e, _) => e,
        }
    }

    /// Closes the connection.
    pub fn close(&self, code: VarInt, reason: &str) {
        self.conn.close(code, reason.as_bytes());
    }

    /// Sends `req` on a new stream and waits for the response.
    pub async fn request(&self, req: &Request) -> Result<Response, NetError> {
        let payload = signed::encode(req).map_err(|e| NetError::Encode(e.to_string()))?;
        self.request_raw(&payload)
            .await
            .map_err(|e| self.explained(e))
    }

    /// Sends raw frame bytes as a request (for tests of misbehaviour) and
    /// waits for the response.
    pub async fn request_raw(&self, payload: &[u8]) -> Result<Response, NetError> {
        let (send, mut recv) = self.open().await?;
        let mut sending = Sending {
            send,
            complete: false,
        };
        let sent = timeout(
            self.config.write_timeout,
            write_frame(&mut sending.send, payload),
        )
        .await
        .map_err(|_| NetError::Timeout("sending a request"))?;
        sending.complete = sent.is_ok();
        if let Err(e) = sent {
            // The peer may have refused the request part-way, and said why.
            return match timeout(Duration::from_secs(1), self.read_response(&mut recv)).await {
                Ok(Ok(answer)) => Ok(answer),
                _ => Err(refined(&self.conn, e)),
            };
        }
        timeout(self.config.response_timeout, self.read_response(&mut recv))
            .await
            .map_err(|_| NetError::Timeout("waiting for the response"))?
            .map_err(|e| refined(&self.conn, e))
    }

    /// Opens a stream, waiting at most the request timeout for a free one.
    async fn open(&self) -> Result<(SendStream, RecvStream), NetError> {
        timeout(self.config.request_timeout, self.conn.open_bi())
            .await
            .map_err(|_| NetError::Timeout(OPENING_A_STREAM))?
            .map_err(|e| refined(&self.conn, NetError::Closed(e.to_string())))
    }

    async fn read_response(&self, recv: &mut RecvStream) -> Result<Response, NetError> {
        let frame = match read_frame(recv, self.config.max_frame_bytes, &self.budget).await {
            Ok(f) => f,
            // The peer acted on the request: dropping its answer for want
            // of memory here is not a refusal to retry blindly.
            Err(e @ NetError::NoMemory { .. }) => {
                return Err(NetError::Closed(format!("response dropped: {e}")));
            }
            Err(e) => return Err(e),
        };
        Ok(signed::decode::<Response>(&frame)?)
    }
}

/// A request's sending side. Dropped before the whole frame is written
/// (the request was cancelled, or its write failed or timed out), it resets
/// the stream: quinn would otherwise finish it, and the peer would see a
/// truncated frame.
struct Sending {
    send: SendStream,
    complete: bool,
}

impl Drop for Sending {
    fn drop(&mut self) {
        if !self.complete {
            let _ = self.send.reset(stream::CANCELLED);
        }
    }
}

/// Handles requests for [`serve`].
pub trait Handler: Send + Sync + 'static {
    /// Answers one request from an authenticated peer.
    fn handle(&self, peer: PeerId, req: Request) -> impl Future<Output = Response> + Send;
}

struct Shared {
    key: SecretKey,
    config: Arc<NetConfig>,
    transport: Arc<quinn::TransportConfig>,
    budget: FrameBudget,
    /// Which new connections get a handshake.
    admission: admission::Admission,
    /// The socket under QUIC: UDP and relay circuits.
    mux: Arc<mux::MuxSocket>,
    /// The relay service, if this endpoint relays.
    relay: Option<relay::RelayService>,
    /// What the endpoint knows of its reachability.
    reach: Mutex<paths::ReachState>,
    /// Known paths per peer, and the pooled connection per peer.
    paths: Mutex<HashMap<PeerId, Vec<errand_core::descriptor::NetAddr>>>,
    peers: Mutex<HashMap<PeerId, PoolSlot>>,
    /// Open incoming connections per peer.
    incoming: Mutex<HashMap<PeerId, Vec<quinn::Connection>>>,
    /// Outgoing connections we reuse, one slot per peer and address: a
    /// dial holds only its own slot, so a peer that never answers stalls
    /// nobody else's dials.
    pool: Mutex<HashMap<(PeerId, SocketAddr), PoolSlot>>,
}

/// One pooled outgoing connection, or none yet.
type PoolSlot = Arc<tokio::sync::Mutex<Option<Connection>>>;

/// A QUIC endpoint that both dials and (when serving) accepts.
#[derive(Clone)]
pub struct Endpoint {
    quic: quinn::Endpoint,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("peer", &self.shared.key.peer_id())
            .field("local", &self.quic.local_addr().ok())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single map update: a panic cannot leave
    // the map half-changed.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Endpoint {
    /// Binds `addr` (UDP) as `key`, ready to dial and to [`serve`].
    pub fn bind(addr: SocketAddr, key: SecretKey, config: NetConfig) -> Result<Endpoint, NetError> {
        if config.max_frame_bytes > config.frame_memory_bytes {
            return Err(NetError::Config(format!(
                "the frame memory ({} bytes) must hold at least one frame of the largest size ({} bytes)",
                config.frame_memory_bytes, config.max_frame_bytes
            )));
        }
        if config.handshakes_per_address == 0 || config.handshake_burst_per_address == 0 {
            return Err(NetError::Config(
                "new connections per address (rate and burst) must be above 0, or no one could connect"
                    .into(),
            ));
        }
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(VarInt::from_u32(config.max_streams_per_connection))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            // What QUIC buffers for a connection before frames take it.
            .receive_window(VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
            .keep_alive_interval(Some(config.idle_timeout / 3))
            .max_idle_timeout(Some(
                quinn::IdleTimeout::try_from(config.idle_timeout)
                    .map_err(|e| NetError::Tls(e.to_string()))?,
            ));
        let transport = Arc::new(transport);
        let server_tls = tls::server_config(&key).map_err(|e| NetError::Tls(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(
            QuicServerConfig::try_from(server_tls).map_err(|e| NetError::Tls(e.to_string()))?,
        ));
        server.transport_config(transport.clone());
        let bind_err = |source| NetError::Bind { addr, source };
        let runtime = quinn::default_runtime()
            .ok_or_else(|| bind_err(std::io::Error::other("no async runtime")))?;
        let udp = std::net::UdpSocket::bind(addr).map_err(bind_err)?;
        let mux = Arc::new(
            mux::MuxSocket::new(runtime.wrap_udp_socket(udp).map_err(bind_err)?)
                .map_err(bind_err)?,
        );
        let quic = quinn::Endpoint::new_with_abstract_socket(
            quinn::EndpointConfig::default(),
            Some(server),
            mux.clone(),
            runtime,
        )
        .map_err(bind_err)?;
        Ok(Endpoint {
            quic,
            shared: Arc::new(Shared {
                key,
                budget: FrameBudget::new(config.frame_memory_bytes, config.frame_memory_wait),
                admission: admission::Admission::new(&config),
                relay: config
                    .relay
                    .map(|limits| relay::RelayService::new(limits, config.relay_tamper)),
                config: Arc::new(config),
                transport,
                mux,
                reach: Mutex::new(paths::ReachState::default()),
                paths: Mutex::new(HashMap::new()),
                peers: Mutex::new(HashMap::new()),
                incoming: Mutex::new(HashMap::new()),
                pool: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// This endpoint's identity.
    pub fn peer_id(&self) -> PeerId {
        self.shared.key.peer_id()
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.quic.local_addr()
    }

    /// The settings.
    pub fn config(&self) -> &NetConfig {
        &self.shared.config
    }

    /// The memory budget for frames in flight, shared by every connection.
    pub fn frame_budget(&self) -> &FrameBudget {
        &self.shared.budget
    }

    /// What admission control has decided so far (see [`admission`]).
    pub fn admission_stats(&self) -> admission::AdmissionStats {
        self.shared.admission.stats()
    }

    /// Peers with an open incoming connection.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = lock(&self.shared.incoming).keys().copied().collect();
        v.sort();
        v
    }

    /// Opens a new connection to `peer` at `addr`; fails unless the remote
    /// proves it holds `peer`'s key. An address in 240.0.0.0/4 is refused:
    /// that is where this node's relay circuits live, and a dial there
    /// would go into another session's circuit.
    pub async fn connect(&self, addr: SocketAddr, peer: PeerId) -> Result<Connection, NetError> {
        if mux::is_virtual(addr) {
            return Err(NetError::Connect {
                peer,
                addr,
                reason: "an address in 240.0.0.0/4, where relay circuits live, not a peer's".into(),
            });
        }
        self.dial(addr, peer, PathKind::Direct).await
    }

    /// [`Endpoint::connect`], recording the connection as made `kind` way.
    async fn dial(
        &self,
        addr: SocketAddr,
        peer: PeerId,
        kind: PathKind,
    ) -> Result<Connection, NetError> {
        let err = |reason: String| NetError::Connect { peer, addr, reason };
        let tls =
            tls::client_config(&self.shared.key, peer).map_err(|e| NetError::Tls(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(
            QuicClientConfig::try_from(tls).map_err(|e| NetError::Tls(e.to_string()))?,
        ));
        client.transport_config(self.shared.transport.clone());
        let connecting = self
            .quic
            .connect_with(client, addr, "errand.invalid")
            .map_err(|e| err(e.to_string()))?;
        let conn = timeout(self.shared.config.connect_timeout, connecting)
            .await
            .map_err(|_| err("handshake timed out".into()))?
            .map_err(|e| handshake_error(e, err))?;
        self.opened(&conn, peer, kind, false);
        Ok(Connection {
            conn,
            peer,
            config: self.shared.config.clone(),
            budget: self.shared.budget.clone(),
            kind,
            circuit: None,
            relay_observed: None,
        })
    }

    /// A pooled connection to `peer` at `addr`, opened on first use.
    pub async fn connection(&self, addr: SocketAddr, peer: PeerId) -> Result<Connection, NetError> {
        let slot = lock(&self.shared.pool)
            .entry((peer, addr))
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let c = self.connect(addr, peer).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Sends `req` to `peer` over a pooled connection, reconnecting once if
    /// the pooled connection turns out to be dead.
    pub async fn request(
        &self,
        addr: SocketAddr,
        peer: PeerId,
        req: &Request,
    ) -> Result<Response, NetError> {
        if self.knows_paths(peer) {
            // Dial by peer id: every known path, preferring direct.
            return self.request_peer(peer, Some(addr), req).await;
        }
        let conn = self.connection(addr, peer).await?;
        match conn.request(req).await {
            Err(NetError::Closed(_)) if !matches!(req, Request::Invoke(_)) => {
                // Idempotent requests may be retried on a fresh connection.
                lock(&self.shared.pool).remove(&(peer, addr));
                self.connection(addr, peer).await?.request(req).await
            }
            other => other,
        }
    }

    /// Closes the endpoint and every connection.
    pub fn close(&self) {
        self.quic.close(close::SHUTDOWN, b"shutting down");
    }

    /// Waits until every connection has closed after [`Endpoint::close`].
    pub async fn wait_idle(&self) {
        self.quic.wait_idle().await;
    }
}

/// What the dialler makes of a failed handshake: a refusal before it
/// began (QUIC `CONNECTION_REFUSED`, see [`admission`]) is
/// [`NetError::Refused`], retryable; anything else is `other`'s.
pub(crate) fn handshake_error(
    e: quinn::ConnectionError,
    other: impl FnOnce(String) -> NetError,
) -> NetError {
    match &e {
        quinn::ConnectionError::ConnectionClosed(c)
            if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            NetError::Refused(
                "the node refused the handshake before it began (too many new connections from this address, or it is at its connection limit)"
                    .into(),
            )
        }
        _ => other(e.to_string()),
    }
}

/// Admits, asks to prove its address, or refuses a new connection, before
/// any handshake work (see [`admission`]). Returns it when admitted.
fn admit(endpoint: &Endpoint, incoming: quinn::Incoming) -> Option<quinn::Incoming> {
    let shared = &endpoint.shared;
    let from = incoming.remote_address();
    let open: usize = lock(&shared.incoming).values().map(Vec::len).sum();
    if open >= shared.config.max_connections {
        tracing::debug!(open, %from, "at the connection limit; refusing a handshake");
        shared.admission.count_full();
        incoming.refuse();
        return None;
    }
    let proven = incoming.remote_address_validated();
    match shared.admission.decide(
        shared.mux.origin_of(from),
        proven,
        std::time::Instant::now(),
    ) {
        admission::Decision::Admit => Some(incoming),
        admission::Decision::Retry => {
            if let Err(e) = incoming.retry() {
                // Only an Initial that already echoed a retry token cannot
                // be retried, and that one is proven: never here.
                e.into_incoming().refuse();
            }
            None
        }
        admission::Decision::Refuse(why) => {
            tracing::debug!(%from, ?why, "refusing a handshake");
            incoming.refuse();
            None
        }
        admission::Decision::Ignore => {
            incoming.ignore();
            None
        }
    }
}

/// Accepts connections on `endpoint` and answers every request with
/// `handler`, until the endpoint closes. New connections are admitted
/// before any handshake work (see [`admission`]); misbehaving peers are
/// disconnected; everyone else is unaffected.
pub async fn serve<H: Handler>(endpoint: Endpoint, handler: Arc<H>) {
    while let Some(incoming) = endpoint.quic.accept().await {
        let Some(incoming) = admit(&endpoint, incoming) else {
            continue;
        };
        let endpoint = endpoint.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            let connecting = match incoming.accept() {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "refused incoming connection");
                    return;
                }
            };
            let conn = match timeout(endpoint.shared.config.connect_timeout, connecting).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("handshake timed out");
                    return;
                }
            };
            let Some(peer) = peer_of(&conn) else {
                conn.close(close::PROTOCOL_VIOLATION, b"no peer key");
                return;
            };
            // At its limit, the peer's new connection is refused; what runs
            // on its open ones is never cut off to make room.
            let refused = {
                let mut incoming = lock(&endpoint.shared.incoming);
                let open = incoming.get(&peer).map_or(0, Vec::len);
                let total: usize = incoming.values().map(Vec::len).sum();
                let config = &endpoint.shared.config;
                if open >= config.max_connections_per_peer {
                    Some(format!(
                        "too many connections from this peer (at most {})",
                        config.max_connections_per_peer
                    ))
                } else if total >= config.max_connections {
                    Some(format!(
                        "the node is at its connection limit ({})",
                        config.max_connections
                    ))
                } else {
                    incoming.entry(peer).or_default().push(conn.clone());
                    None
                }
            };
            if let Some(why) = refused {
                tracing::debug!(%peer, reason = %why, "refusing a new connection");
                conn.close(close::REFUSED, why.as_bytes());
                return;
            }
            let kind = endpoint.incoming_kind(peer, conn.remote_address());
            if kind == PathKind::Punched {
                endpoint.punch_answered(peer);
            }
            endpoint.opened(&conn, peer, kind, true);
            serve_connection(&endpoint, conn.clone(), peer, handler).await;
            let mut incoming = lock(&endpoint.shared.incoming);
            if let Some(open) = incoming.get_mut(&peer) {
                open.retain(|c| c.stable_id() != conn.stable_id());
                if open.is_empty() {
                    incoming.remove(&peer);
                }
            }
        });
    }
}

async fn serve_connection<H: Handler>(
    endpoint: &Endpoint,
    conn: quinn::Connection,
    peer: PeerId,
    handler: Arc<H>,
) {
    tracing::debug!(%peer, addr = %conn.remote_address(), "peer connected");
    loop {
        let (send, recv) = match conn.accept_bi().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, reason = %e, "peer disconnected");
                return;
            }
        };
        let conn = conn.clone();
        let handler = handler.clone();
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            serve_stream(&endpoint, conn, peer, send, recv, handler).await;
        });
    }
}

/// Sends `resp` and waits until the peer has taken all of it, for at most
/// `limit`.
async fn respond(send: &mut SendStream, resp: &Response, limit: Duration) {
    match signed::encode(resp) {
        Ok(bytes) => {
            if let Err(e) = write_frame_delivered(send, &bytes, limit).await {
                tracing::debug!(error = %e, "could not deliver the response");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not encode response"),
    }
}

async fn serve_stream<H: Handler>(
    endpoint: &Endpoint,
    conn: quinn::Connection,
    peer: PeerId,
    mut send: SendStream,
    mut recv: RecvStream,
    handler: Arc<H>,
) {
    let config = endpoint.shared.config.clone();
    let budget = endpoint.shared.budget.clone();
    // A relay circuit's first frame is followed by packets: the end of the
    // stream is checked after decoding (see below).
    let frame = match timeout(
        config.request_timeout,
        read_frame_open(&mut recv, config.max_frame_bytes, &budget),
    )
    .await
    {
        Err(_) => {
            let _ = recv.stop(stream::TIMED_OUT);
            let _ = send.reset(stream::TIMED_OUT);
            return;
        }
        Ok(f) => f,
    };
    let violation =
        |code: ErrorCode, why: String| (Response::Error(WireError::new(code, &why)), why);
    let request = match frame {
        Ok(frame) => {
            // The reservation stays until the request has been answered:
            // the decoded request takes as much memory as its frame.
            let (bytes, reservation) = frame.into_parts();
            let decoded = signed::decode::<Request>(&bytes)
                .map_err(|e| violation(ErrorCode::BadRequest, format!("malformed request: {e}")));
            drop(bytes);
            match decoded {
                Ok(Request::Relay(errand_core::wire::RelayRequest::Connect { target })) => {
                    drop(reservation);
                    match &endpoint.shared.relay {
                        Some(service) => {
                            service
                                .circuit((peer, conn.remote_address()), target, send, recv)
                                .await
                        }
                        None => {
                            let no = Response::Relay(errand_core::wire::RelayResponse::Refused(
                                RelayRefusal::NotARelay,
                            ));
                            respond(&mut send, &no, config.write_timeout).await;
                        }
                    }
                    return;
                }
                Ok(req) => match timeout(config.request_timeout, expect_end(&mut recv)).await {
                    Ok(Ok(())) => Ok((req, reservation)),
                    Ok(Err(NetError::TrailingBytes)) => Err(violation(
                        ErrorCode::BadRequest,
                        "bytes after the frame".into(),
                    )),
                    Ok(Err(_)) => return,
                    Err(_) => {
                        let _ = recv.stop(stream::TIMED_OUT);
                        let _ = send.reset(stream::TIMED_OUT);
                        return;
                    }
                },
                Err(e) => Err(e),
            }
        }
        Err(e @ NetError::NoMemory { .. }) => {
            // Not the peer's fault: refuse this request, keep the connection.
            tracing::debug!(%peer, error = %e, "refusing a request: no frame memory free");
            let _ = recv.stop(stream::NO_MEMORY);
            let busy = Response::Error(WireError::new(ErrorCode::Busy, &e));
            respond(&mut send, &busy, config.write_timeout).await;
            return;
        }
        Err(NetError::FrameTooLarge { len, max }) => Err(violation(
            ErrorCode::TooLarge,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        )),
        Err(NetError::TrailingBytes) => Err(violation(
            ErrorCode::BadRequest,
            "bytes after the frame".into(),
        )),
        Err(e @ NetError::Truncated { .. }) => {
            // A request abandoned part-way by a client that finished its
            // stream: answered, but not a reason to cut off the requests the
            // peer has in flight on this connection.
            tracing::debug!(%peer, error = %e, "truncated request");
            let bad = Response::Error(WireError::new(ErrorCode::BadRequest, &e));
            respond(&mut send, &bad, config.write_timeout).await;
            return;
        }
        Err(_) => return, // the peer went away mid-request
    };
    match request {
        Ok((req, reservation)) => {
            let resp = match req {
                // The connectivity plane answers these itself.
                Request::Observe => endpoint.answer_observe(&conn),
                Request::Relay(errand_core::wire::RelayRequest::Reserve) => {
                    match &endpoint.shared.relay {
                        Some(service) => service.reserve(&conn, peer),
                        None => Response::Relay(errand_core::wire::RelayResponse::Refused(
                            RelayRefusal::NotARelay,
                        )),
                    }
                }
                Request::Relay(_) => Response::Error(WireError::new(
                    ErrorCode::BadRequest,
                    "only a relay opens circuits to a peer",
                )),
                Request::Punch(offer) => endpoint.answer_punch(&conn, peer, &offer),
                req => handler.handle(peer, req).await,
            };
            drop(reservation);
            // The encoded response counts against the same budget until the
            // peer has taken it, so answers held for peers that never read
            // are bounded too.
            let bytes = match signed::encode(&resp) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "could not encode response");
                    let _ = send.reset(stream::NO_MEMORY);
                    return;
                }
            };
            drop(resp);
            let mut held = Reservation::default();
            if let Err(e) = budget.grow(&mut held, bytes.len()).await {
                tracing::debug!(%peer, error = %e, "dropping a response: no frame memory free");
                let _ = send.reset(stream::NO_MEMORY);
                return;
            }
            if let Err(e) = write_frame_delivered(&mut send, &bytes, config.write_timeout).await {
                tracing::debug!(error = %e, "could not deliver the response");
            }
            drop(held);
        }
        Err((resp, why)) => {
            tracing::warn!(%peer, reason = %why, "protocol violation; disconnecting peer");
            // Give the error a moment to reach the peer, then cut it off.
            respond(
                &mut send,
                &resp,
                config.write_timeout.min(Duration::from_millis(500)),
            )
            .await;
            conn.close(close::PROTOCOL_VIOLATION, why.as_bytes());
        }
    }
}
