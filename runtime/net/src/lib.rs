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
//! [`NetConfig::max_frame_bytes`] before anything is allocated; a frame that
//! is too large, does not decode, or is followed by more bytes is a protocol
//! violation: the peer gets an error response and is disconnected, and the
//! server carries on with everyone else.
//!
//! ## Limits
//!
//! Per connection, at most [`NetConfig::max_streams_per_connection`]
//! concurrent requests (enforced by QUIC flow control); per peer, at most
//! [`NetConfig::max_connections_per_peer`] connections: a peer at its limit
//! that connects again replaces its own oldest connection (a crashed client
//! is not locked out until its old connections time out). Every wait that
//! depends on the peer has a timeout: the handshake, reading a request,
//! reading a response, and idleness.
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
use tokio::time::timeout;

pub mod tls;

/// QUIC close codes Errand uses.
pub mod close {
    use quinn::VarInt;
    /// Normal close.
    pub const DONE: VarInt = VarInt::from_u32(0);
    /// The peer sent a malformed or oversized frame.
    pub const PROTOCOL_VIOLATION: VarInt = VarInt::from_u32(1);
    /// The peer has too many connections open.
    pub const TOO_MANY_CONNECTIONS: VarInt = VarInt::from_u32(2);
    /// The node is shutting down.
    pub const SHUTDOWN: VarInt = VarInt::from_u32(3);
}

/// Connectivity settings.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Largest frame accepted, in bytes.
    pub max_frame_bytes: usize,
    /// How long a TLS/QUIC handshake may take.
    pub connect_timeout: Duration,
    /// How long a peer may take to send a whole request.
    pub request_timeout: Duration,
    /// How long to wait for a response (includes the remote's work).
    pub response_timeout: Duration,
    /// Idle connections close after this.
    pub idle_timeout: Duration,
    /// Concurrent requests per connection.
    pub max_streams_per_connection: u32,
    /// Concurrent connections per peer.
    pub max_connections_per_peer: usize,
}

impl Default for NetConfig {
    fn default() -> NetConfig {
        NetConfig {
            max_frame_bytes: 96 << 20,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            max_streams_per_connection: 64,
            max_connections_per_peer: 4,
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
    /// Bytes after the frame.
    #[error("bytes after the end of the frame")]
    TrailingBytes,
    /// The frame does not decode.
    #[error("malformed message: {0}")]
    Decode(#[from] DecodeError),
    /// We could not encode a message.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// A connection with an authenticated peer.
#[derive(Clone, Debug)]
pub struct Connection {
    conn: quinn::Connection,
    peer: PeerId,
    config: Arc<NetConfig>,
}

fn peer_of(conn: &quinn::Connection) -> Option<PeerId> {
    let any = conn.peer_identity()?;
    let certs = any
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::peer_of_spki(certs.first()?.as_ref())
}

/// Writes one frame and finishes the stream.
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

/// Reads one frame of at most `max` bytes, then requires the stream to end.
pub async fn read_frame(recv: &mut RecvStream, max: usize) -> Result<Vec<u8>, NetError> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len)
        .await
        .map_err(|e| NetError::Closed(e.to_string()))?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(NetError::FrameTooLarge { len, max });
    }
    let mut buf = vec![0u8; len];
    recv.read_exact(&mut buf)
        .await
        .map_err(|e| NetError::Closed(e.to_string()))?;
    let mut extra = [0u8; 1];
    match recv.read(&mut extra).await {
        Ok(None) => Ok(buf),
        Ok(Some(0)) => Ok(buf),
        Ok(Some(_)) => Err(NetError::TrailingBytes),
        Err(e) => Err(NetError::Closed(e.to_string())),
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

    /// Closes the connection.
    pub fn close(&self, code: VarInt, reason: &str) {
        self.conn.close(code, reason.as_bytes());
    }

    /// Sends `req` on a new stream and waits for the response.
    pub async fn request(&self, req: &Request) -> Result<Response, NetError> {
        let payload = signed::encode(req).map_err(|e| NetError::Encode(e.to_string()))?;
        self.request_raw(&payload).await
    }

    /// Sends raw frame bytes as a request (for tests of misbehaviour) and
    /// waits for the response.
    pub async fn request_raw(&self, payload: &[u8]) -> Result<Response, NetError> {
        let (mut send, mut recv) = timeout(self.config.request_timeout, self.conn.open_bi())
            .await
            .map_err(|_| NetError::Timeout("opening a stream"))?
            .map_err(|e| NetError::Closed(e.to_string()))?;
        timeout(self.config.request_timeout, write_frame(&mut send, payload))
            .await
            .map_err(|_| NetError::Timeout("sending a request"))??;
        let bytes = timeout(
            self.config.response_timeout,
            read_frame(&mut recv, self.config.max_frame_bytes),
        )
        .await
        .map_err(|_| NetError::Timeout("waiting for the response"))??;
        Ok(signed::decode::<Response>(&bytes)?)
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
    /// Open incoming connections per peer, oldest first.
    incoming: Mutex<HashMap<PeerId, std::collections::VecDeque<quinn::Connection>>>,
    /// Outgoing connections we reuse.
    pool: tokio::sync::Mutex<HashMap<(PeerId, SocketAddr), Connection>>,
}

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
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_concurrent_bidi_streams(VarInt::from_u32(config.max_streams_per_connection))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
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
        let quic = quinn::Endpoint::server(server, addr)
            .map_err(|source| NetError::Bind { addr, source })?;
        Ok(Endpoint {
            quic,
            shared: Arc::new(Shared {
                key,
                config: Arc::new(config),
                transport,
                incoming: Mutex::new(HashMap::new()),
                pool: tokio::sync::Mutex::new(HashMap::new()),
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

    /// Peers with an open incoming connection.
    pub fn connected_peers(&self) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = lock(&self.shared.incoming).keys().copied().collect();
        v.sort();
        v
    }

    /// Opens a new connection to `peer` at `addr`; fails unless the remote
    /// proves it holds `peer`'s key.
    pub async fn connect(&self, addr: SocketAddr, peer: PeerId) -> Result<Connection, NetError> {
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
            .map_err(|e| err(e.to_string()))?;
        Ok(Connection {
            conn,
            peer,
            config: self.shared.config.clone(),
        })
    }

    /// A pooled connection to `peer` at `addr`, opened on first use.
    pub async fn connection(&self, addr: SocketAddr, peer: PeerId) -> Result<Connection, NetError> {
        let mut pool = self.shared.pool.lock().await;
        if let Some(c) = pool.get(&(peer, addr))
            && !c.is_closed()
        {
            return Ok(c.clone());
        }
        let c = self.connect(addr, peer).await?;
        pool.insert((peer, addr), c.clone());
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
        let conn = self.connection(addr, peer).await?;
        match conn.request(req).await {
            Err(NetError::Closed(_)) if !matches!(req, Request::Invoke(_)) => {
                // Idempotent requests may be retried on a fresh connection.
                self.shared.pool.lock().await.remove(&(peer, addr));
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

/// Accepts connections on `endpoint` and answers every request with
/// `handler`, until the endpoint closes. Misbehaving peers are disconnected;
/// everyone else is unaffected.
pub async fn serve<H: Handler>(endpoint: Endpoint, handler: Arc<H>) {
    while let Some(incoming) = endpoint.quic.accept().await {
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
            let evicted = {
                let mut incoming = lock(&endpoint.shared.incoming);
                let open = incoming.entry(peer).or_default();
                let evicted = (open.len() >= endpoint.shared.config.max_connections_per_peer)
                    .then(|| open.pop_front())
                    .flatten();
                open.push_back(conn.clone());
                evicted
            };
            if let Some(old) = evicted {
                tracing::debug!(%peer, "peer at its connection limit; closing its oldest connection");
                old.close(
                    close::TOO_MANY_CONNECTIONS,
                    b"replaced by a newer connection",
                );
            }
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
        let config = endpoint.shared.config.clone();
        tokio::spawn(async move {
            serve_stream(conn, peer, send, recv, handler, config).await;
        });
    }
}

async fn respond(send: &mut SendStream, resp: &Response) {
    match signed::encode(resp) {
        Ok(bytes) => {
            if let Err(e) = write_frame(send, &bytes).await {
                tracing::debug!(error = %e, "could not send response");
            }
        }
        Err(e) => tracing::error!(error = %e, "could not encode response"),
    }
}

async fn serve_stream<H: Handler>(
    conn: quinn::Connection,
    peer: PeerId,
    mut send: SendStream,
    mut recv: RecvStream,
    handler: Arc<H>,
    config: Arc<NetConfig>,
) {
    let frame = match timeout(
        config.request_timeout,
        read_frame(&mut recv, config.max_frame_bytes),
    )
    .await
    {
        Err(_) => {
            let _ = send.reset(VarInt::from_u32(1));
            return;
        }
        Ok(f) => f,
    };
    let violation =
        |code: ErrorCode, why: String| (Response::Error(WireError::new(code, &why)), why);
    let request = match frame {
        Ok(bytes) => signed::decode::<Request>(&bytes)
            .map_err(|e| violation(ErrorCode::BadRequest, format!("malformed request: {e}"))),
        Err(NetError::FrameTooLarge { len, max }) => Err(violation(
            ErrorCode::TooLarge,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        )),
        Err(NetError::TrailingBytes) => Err(violation(
            ErrorCode::BadRequest,
            "bytes after the frame".into(),
        )),
        Err(_) => return, // the peer went away mid-request
    };
    match request {
        Ok(req) => {
            let resp = handler.handle(peer, req).await;
            respond(&mut send, &resp).await;
        }
        Err((resp, why)) => {
            tracing::warn!(%peer, reason = %why, "protocol violation; disconnecting peer");
            respond(&mut send, &resp).await;
            // Give the error a moment to reach the peer, then cut it off.
            let _ = timeout(Duration::from_millis(200), send.stopped()).await;
            conn.close(close::PROTOCOL_VIOLATION, why.as_bytes());
        }
    }
}
