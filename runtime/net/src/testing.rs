//! Hostile peers, for tests and benchmarks (not a stable API).
//!
//! Each [`Attack`] is one way a peer can misbehave at the connectivity
//! level: many fresh identities, connection floods, frames declared and
//! never sent, slow senders, peers that never read their answers,
//! malformed, truncated and oversized frames, floods of connection
//! attempts that never wait, replayed requests. [`run`]
//! mounts one against a live endpoint for a while, so that a test (or a
//! bench) can keep an honest requester going at the same time and check
//! that it is still served.
//!
//! Identities are free: one UDP socket dials as any number of keys (the
//! client certificate is chosen per connection), so thousands of fresh
//! identities cost a handshake each and nothing more. Addresses are not
//! free, except on loopback: [`run_from`] spreads an attack over many
//! local source addresses, as an attacker with many machines, and
//! [`forge_initials`] plays a peer that forges its source address (it can
//! send as that address, never receive).
//!
//! A connection the target refuses before the handshake (see
//! [`crate::admission`]) is counted in [`Report::refused`]; attackers
//! that reconnect (bad frames) try again at once, as fast as the target
//! answers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use errand_core::signed;
use errand_core::wire::Response;
use errand_core::{Digest, PeerId, SecretKey};
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{RecvStream, SendStream};

use crate::{Connection, Endpoint, NetConfig, NetError, tls, write_frame};

/// `n` fresh identities, different in every call and every process.
pub fn identities(n: usize) -> Vec<SecretKey> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (0..n as u64)
        .map(|i| {
            let seed = Digest::of_parts(&[
                b"errand-net hostile identity",
                &now.to_le_bytes(),
                &std::process::id().to_le_bytes(),
                &call.to_le_bytes(),
                &i.to_le_bytes(),
            ]);
            SecretKey::from_seed(seed.0)
        })
        .collect()
}

/// Where an attack is aimed.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The server's identity.
    pub peer: PeerId,
}

/// Handshakes a [`Dialler`] runs at once: an attacker on one machine
/// gets more connections up by pacing its handshakes than by starting
/// thousands together and timing most of them out.
const DIALS_AT_ONCE: usize = 64;

/// A socket that dials as any identity.
#[derive(Debug, Clone)]
pub struct Dialler {
    endpoint: Endpoint,
    dials: Arc<tokio::sync::Semaphore>,
}

impl Dialler {
    /// A dialler on an ephemeral port of the unspecified address of the
    /// target's family (so the system picks the source address).
    pub fn new(target: Target) -> Result<Dialler, NetError> {
        let ip: IpAddr = if target.addr.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        Dialler::at(ip)
    }

    /// A dialler on an ephemeral port of `ip`, a local address: the source
    /// address of every connection it opens (on Linux, any address of
    /// 127.0.0.0/8 is loopback, so one machine can attack from many).
    pub fn at(ip: IpAddr) -> Result<Dialler, NetError> {
        let local = SocketAddr::new(ip, 0);
        let config = NetConfig {
            // Hostile peers hold many streams open.
            max_streams_per_connection: 1024,
            ..NetConfig::default()
        };
        Ok(Dialler {
            endpoint: Endpoint::bind(local, identities(1).remove(0), config)?,
            dials: Arc::new(tokio::sync::Semaphore::new(DIALS_AT_ONCE)),
        })
    }

    /// Connects to `target` as `key`.
    pub async fn connect(&self, key: &SecretKey, target: Target) -> Result<Connection, NetError> {
        let err = |reason: String| NetError::Connect {
            peer: target.peer,
            addr: target.addr,
            reason,
        };
        let tls = tls::client_config(key, target.peer).map_err(|e| NetError::Tls(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(
            QuicClientConfig::try_from(tls).map_err(|e| NetError::Tls(e.to_string()))?,
        ));
        client.transport_config(self.endpoint.shared.transport.clone());
        let shared = &self.endpoint.shared;
        let _turn = self.dials.acquire().await;
        let connecting = self
            .endpoint
            .quic
            .connect_with(client, target.addr, "errand.invalid")
            .map_err(|e| err(e.to_string()))?;
        let conn = tokio::time::timeout(shared.config.connect_timeout, connecting)
            .await
            .map_err(|_| err("handshake timed out".into()))?
            .map_err(|e| crate::handshake_error(e, err))?;
        Ok(Connection {
            conn,
            peer: target.peer,
            config: shared.config.clone(),
            budget: shared.budget.clone(),
            kind: errand_core::reach::PathKind::Direct,
            circuit: None,
            relay_observed: None,
        })
    }

    /// Closes every connection the dialler opened.
    pub fn close(&self) {
        self.endpoint.close();
    }
}

/// A stream a hostile peer holds open; dropping it abandons the stream.
#[derive(Debug)]
pub struct Held {
    /// Our sending side.
    pub send: SendStream,
    /// Our receiving side.
    pub recv: RecvStream,
}

impl Connection {
    /// Opens a bidirectional stream for raw use (hostile peers, tests).
    pub async fn open_raw(&self) -> Result<Held, NetError> {
        let (send, recv) = self.open().await?;
        Ok(Held { send, recv })
    }
}

/// Asks the relay `relay` at `relay_addr` for a circuit to `target` from
/// `endpoint`, and holds it open without ever sending a packet on it: a
/// requester that only wants to take the target's circuit slots.
pub async fn hold_circuit(
    endpoint: &Endpoint,
    relay: PeerId,
    relay_addr: SocketAddr,
    target: PeerId,
) -> Result<Held, NetError> {
    let (send, recv, _, _) = endpoint.ask_circuit(relay, relay_addr, target).await?;
    Ok(Held { send, recv })
}

/// Writes a frame header declaring `declared` bytes, then the first `sent`
/// bytes of such a frame (zeros), and keeps the stream open.
pub async fn declare_frame(
    conn: &Connection,
    declared: u32,
    sent: usize,
) -> Result<Held, NetError> {
    let mut h = conn.open_raw().await?;
    let closed = |e: quinn::WriteError| NetError::Closed(e.to_string());
    h.send
        .write_all(&declared.to_be_bytes())
        .await
        .map_err(closed)?;
    let zeros = vec![0u8; 16 << 10];
    let mut left = sent.min(declared as usize);
    while left > 0 {
        let n = left.min(zeros.len());
        h.send.write_all(&zeros[..n]).await.map_err(closed)?;
        left -= n;
    }
    Ok(h)
}

/// Sends `payload` as a whole request and never reads the answer.
pub async fn send_and_never_read(conn: &Connection, payload: &[u8]) -> Result<Held, NetError> {
    let mut h = conn.open_raw().await?;
    write_frame(&mut h.send, payload).await?;
    Ok(h)
}

/// Sends `bytes` as they are (no framing added), finishes the stream and
/// returns the answer, if one comes within `wait`.
pub async fn send_raw(
    conn: &Connection,
    bytes: &[u8],
    wait: Duration,
) -> Result<Response, NetError> {
    let mut h = conn.open_raw().await?;
    let closed = |e: String| NetError::Closed(e);
    h.send
        .write_all(bytes)
        .await
        .map_err(|e| closed(e.to_string()))?;
    h.send.finish().map_err(|e| closed(e.to_string()))?;
    let frame = tokio::time::timeout(
        wait,
        crate::read_frame(&mut h.recv, conn.config.max_frame_bytes, &conn.budget),
    )
    .await
    .map_err(|_| NetError::Timeout("waiting for the response"))??;
    Ok(signed::decode::<Response>(&frame)?)
}

/// Sends the frame of `payload` `chunk` bytes at a time, one chunk every
/// `every`, and returns the answer.
pub async fn send_slowly(
    conn: &Connection,
    payload: &[u8],
    chunk: usize,
    every: Duration,
) -> Result<Response, NetError> {
    let mut h = conn.open_raw().await?;
    let closed = |e: quinn::WriteError| NetError::Closed(e.to_string());
    let mut framed = u32::try_from(payload.len())
        .map_err(|_| NetError::FrameTooLarge {
            len: payload.len(),
            max: u32::MAX as usize,
        })?
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(payload);
    for part in framed.chunks(chunk.max(1)) {
        h.send.write_all(part).await.map_err(closed)?;
        tokio::time::sleep(every).await;
    }
    h.send
        .finish()
        .map_err(|e| NetError::Closed(e.to_string()))?;
    let frame = crate::read_frame(&mut h.recv, conn.config.max_frame_bytes, &conn.budget).await?;
    Ok(signed::decode::<Response>(&frame)?)
}

/// What [`forge_initials`] saw come back to the forged address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forged {
    /// Datagrams forwarded to the target as if from the forged address.
    pub sent: u64,
    /// QUIC Retry packets the target sent to the forged address: asked to
    /// prove it, which a forger cannot.
    pub retries: u64,
    /// Other datagrams the target sent there (a handshake started, or a
    /// refusal).
    pub other: u64,
}

/// The first packets of `n` real connection attempts on `target`: QUIC
/// Initials holding a TLS ClientHello each (with connection ids of their
/// own), caught on their way, never delivered. Each copy sent to `target`
/// is a new connection attempt.
pub async fn capture_initials(target: Target, n: usize) -> Result<Vec<Vec<u8>>, NetError> {
    use tokio::net::UdpSocket;
    let loopback: IpAddr = if target.addr.is_ipv4() {
        Ipv4Addr::LOCALHOST.into()
    } else {
        std::net::Ipv6Addr::LOCALHOST.into()
    };
    let io = |e: std::io::Error| NetError::Bind {
        addr: SocketAddr::new(loopback, 0),
        source: e,
    };
    let catcher = UdpSocket::bind(SocketAddr::new(loopback, 0))
        .await
        .map_err(io)?;
    let caught = Target {
        addr: catcher.local_addr().map_err(io)?,
        peer: target.peer,
    };
    let mut dialler = Dialler::new(caught)?;
    // All at once: none of them will ever finish.
    dialler.dials = Arc::new(tokio::sync::Semaphore::new(n.max(1)));
    let mut dials = tokio::task::JoinSet::new();
    for key in identities(n) {
        let d = dialler.clone();
        dials.spawn(async move { d.connect(&key, caught).await });
    }
    let mut initials = Vec::with_capacity(n);
    let mut buf = vec![0u8; 65536];
    while initials.len() < n {
        let got = tokio::time::timeout(Duration::from_secs(5), catcher.recv(&mut buf))
            .await
            .map_err(|_| NetError::Timeout("capturing Initial packets"))?
            .map_err(io)?;
        initials.push(buf[..got].to_vec());
    }
    dials.abort_all();
    dialler.close();
    Ok(initials)
}

/// Makes `n` connection attempts on `target` whose packets reach it from
/// the local address `from` while its answers never reach the dialler:
/// what a peer forging the source address `from` can do. The dialler's
/// packets go through a relay that sends them on from a socket on `from`
/// and keeps what comes back to that socket (counted, never passed on).
/// Each attempt gives up after `wait`.
pub async fn forge_initials(
    target: Target,
    from: IpAddr,
    n: usize,
    wait: Duration,
) -> Result<Forged, NetError> {
    use tokio::net::UdpSocket;
    let io = |e: std::io::Error| NetError::Bind {
        addr: SocketAddr::new(from, 0),
        source: e,
    };
    let forged = Arc::new(
        UdpSocket::bind(SocketAddr::new(from, 0))
            .await
            .map_err(io)?,
    );
    let loopback: IpAddr = if target.addr.is_ipv4() {
        Ipv4Addr::LOCALHOST.into()
    } else {
        std::net::Ipv6Addr::LOCALHOST.into()
    };
    let front = UdpSocket::bind(SocketAddr::new(loopback, 0))
        .await
        .map_err(io)?;
    let front_addr = front.local_addr().map_err(io)?;
    let sent = Arc::new(AtomicU64::new(0));
    let relay = {
        let (forged, sent) = (forged.clone(), sent.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((len, _)) = front.recv_from(&mut buf).await {
                if forged.send_to(&buf[..len], target.addr).await.is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let back = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let drain = {
        let (forged, back) = (forged.clone(), back.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(len) = forged.recv(&mut buf).await {
                // A long header (0x80) of type 3 is a Retry (RFC 9000
                // 17.2.5); the type bits are not header-protected.
                let retry = len > 0 && buf[0] & 0x80 != 0 && (buf[0] >> 4) & 0x03 == 3;
                let counter = if retry { &back.0 } else { &back.1 };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let dialler = Dialler::new(Target {
        addr: front_addr,
        peer: target.peer,
    })?;
    let keys = identities(n);
    let mut tries = tokio::task::JoinSet::new();
    for key in keys {
        let d = dialler.clone();
        tries.spawn(async move {
            let t = Target {
                addr: front_addr,
                peer: target.peer,
            };
            let _ = tokio::time::timeout(wait, d.connect(&key, t)).await;
        });
    }
    while tries.join_next().await.is_some() {}
    // Let the last answers arrive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    dialler.close();
    relay.abort();
    drain.abort();
    Ok(Forged {
        sent: sent.load(Ordering::Relaxed),
        retries: back.0.load(Ordering::Relaxed),
        other: back.1.load(Ordering::Relaxed),
    })
}

/// One way to misbehave (see the module docs).
#[derive(Debug, Clone)]
pub enum Attack {
    /// `identities` fresh identities each open `per_identity` connections
    /// and hold them, idle.
    ConnectionFlood {
        /// Fresh identities.
        identities: usize,
        /// Connections each.
        per_identity: usize,
    },
    /// Fresh identities each open `streams` streams declaring frames of
    /// `declared` bytes, send `sent` bytes of each, and hold them.
    DeclaredNotSent {
        /// Fresh identities.
        identities: usize,
        /// Streams each.
        streams: usize,
        /// The declared length.
        declared: u32,
        /// Bytes actually sent.
        sent: usize,
    },
    /// Fresh identities each send `streams` requests of `payload` a few
    /// bytes at a time.
    SlowSenders {
        /// Fresh identities.
        identities: usize,
        /// Streams each.
        streams: usize,
        /// The request sent.
        payload: Vec<u8>,
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes.
        every: Duration,
    },
    /// Fresh identities each send `streams` copies of `payload` and never
    /// read the answers.
    NeverRead {
        /// Fresh identities.
        identities: usize,
        /// Streams each.
        streams: usize,
        /// The request sent (one that gets a large answer hurts most).
        payload: Vec<u8>,
    },
    /// Fresh identities each send `rounds` frames that do not decode, are
    /// cut short, or declare more than the limit, reconnecting after each
    /// disconnection.
    BadFrames {
        /// Fresh identities.
        identities: usize,
        /// Frames each.
        rounds: usize,
        /// A length over the server's frame limit.
        oversized: u32,
    },
    /// Connection attempts that never wait for an answer: one real QUIC
    /// Initial packet, captured once, sent again and again, `per_second`
    /// times a second from each source address. Every copy is a new
    /// connection attempt to the target (a handshake it must decide on),
    /// and costs the attacker one `send`: what an attacker that has read
    /// the admission code can still make a node do once its address is
    /// over its rate.
    InitialFlood {
        /// Initials a second, per source address.
        per_second: u32,
    },
    /// One identity sends every payload `copies` times at once, on
    /// `connections` connections.
    Replay {
        /// The identity the payloads are signed by.
        key: SecretKey,
        /// Request payloads (encoded requests).
        payloads: Vec<Vec<u8>>,
        /// Copies of each, all sent concurrently.
        copies: usize,
        /// Connections to spread them over.
        connections: usize,
    },
}

/// What an attack did and what it got back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Connections established.
    pub connections: u64,
    /// Connections or streams refused at a limit (retryable refusals).
    pub refused: u64,
    /// Streams opened.
    pub streams: u64,
    /// Answers received, by kind (`Pong`, `Invoked`, `Error(Busy)`, …).
    pub answers: BTreeMap<String, u64>,
    /// Other failures (timeouts, closed connections, handshakes).
    pub failures: u64,
    /// The first few failures' messages.
    pub errors: Vec<String>,
    /// The answers to [`Attack::Replay`], in order: payload index and the
    /// response.
    pub replies: Vec<(usize, Response)>,
}

impl Report {
    fn answer(&mut self, r: &Response) {
        let kind = match r {
            Response::Pong => "Pong".to_owned(),
            Response::Published(_) => "Published".to_owned(),
            Response::Candidates(_) => "Candidates".to_owned(),
            Response::Invoked(_) => "Invoked".to_owned(),
            Response::Receipt(_) => "Receipt".to_owned(),
            Response::Package(_) => "Package".to_owned(),
            Response::Status(_) => "Status".to_owned(),
            Response::Error(e) => format!("Error({:?})", e.code),
            Response::Observed(_) => "Observed".to_owned(),
            Response::Relay(_) => "Relay".to_owned(),
            Response::Punch(_) => "Punch".to_owned(),
            Response::Reachability(_) => "Reachability".to_owned(),
        };
        *self.answers.entry(kind).or_default() += 1;
    }

    fn failed(&mut self, e: &NetError) {
        if e.is_retryable() {
            self.refused += 1;
        } else {
            self.failures += 1;
        }
        if self.errors.len() < 8 {
            self.errors.push(e.to_string());
        }
    }

    fn merge(&mut self, o: Report) {
        self.connections += o.connections;
        self.refused += o.refused;
        self.streams += o.streams;
        self.failures += o.failures;
        let room = 8usize.saturating_sub(self.errors.len());
        self.errors.extend(o.errors.into_iter().take(room));
        for (k, v) in o.answers {
            *self.answers.entry(k).or_default() += v;
        }
        self.replies.extend(o.replies);
    }

    /// How many answers of `kind` came back.
    pub fn count(&self, kind: &str) -> u64 {
        self.answers.get(kind).copied().unwrap_or(0)
    }
}

/// Mounts `attack` on `target`, holds whatever it opened for `hold`, then
/// lets go of everything and reports. Runs its identities concurrently,
/// all from one source address.
pub async fn run(attack: &Attack, target: Target, hold: Duration) -> Result<Report, NetError> {
    run_from(attack, target, hold, &[]).await
}

/// [`run`] from many source addresses, as an attacker with many machines:
/// the identities (and [`Attack::Replay`]'s connections) take the local
/// addresses `sources` in turn. With no sources, the system picks one.
pub async fn run_from(
    attack: &Attack,
    target: Target,
    hold: Duration,
    sources: &[IpAddr],
) -> Result<Report, NetError> {
    let mut diallers: Vec<Dialler> = if sources.is_empty() {
        vec![Dialler::new(target)?]
    } else {
        sources
            .iter()
            .map(|ip| Dialler::at(*ip))
            .collect::<Result<_, _>>()?
    };
    // One pace for the whole attack, whatever the number of addresses.
    let dials = Arc::new(tokio::sync::Semaphore::new(DIALS_AT_ONCE));
    for d in &mut diallers {
        d.dials = dials.clone();
    }
    let mut turn = 0usize;
    let mut next = || {
        turn += 1;
        diallers[(turn - 1) % diallers.len()].clone()
    };
    let mut tasks = tokio::task::JoinSet::new();
    let deadline = tokio::time::Instant::now() + hold;
    match attack.clone() {
        Attack::ConnectionFlood {
            identities: n,
            per_identity,
        } => {
            for key in identities(n) {
                let d = next();
                tasks.spawn(async move {
                    let mut r = Report::default();
                    let mut held = Vec::new();
                    for _ in 0..per_identity {
                        match d.connect(&key, target).await {
                            Ok(c) => {
                                r.connections += 1;
                                held.push(c);
                            }
                            Err(e) => r.failed(&e),
                        }
                    }
                    tokio::time::sleep_until(deadline).await;
                    // A refused connection only shows once it is used.
                    for c in &held {
                        if let Some(quinn::ConnectionError::ApplicationClosed(a)) =
                            c.conn.close_reason()
                            && a.error_code == crate::close::REFUSED
                        {
                            r.refused += 1;
                        }
                    }
                    r
                });
            }
        }
        Attack::DeclaredNotSent {
            identities: n,
            streams,
            declared,
            sent,
        } => {
            for key in identities(n) {
                let d = next();
                tasks.spawn(async move {
                    let mut r = Report::default();
                    let conn = match d.connect(&key, target).await {
                        Ok(c) => c,
                        Err(e) => {
                            r.failed(&e);
                            return r;
                        }
                    };
                    r.connections += 1;
                    let mut held = Vec::new();
                    for _ in 0..streams {
                        match declare_frame(&conn, declared, sent).await {
                            Ok(h) => {
                                r.streams += 1;
                                held.push(h);
                            }
                            Err(e) => r.failed(&e),
                        }
                    }
                    tokio::time::sleep_until(deadline).await;
                    r
                });
            }
        }
        Attack::SlowSenders {
            identities: n,
            streams,
            payload,
            chunk,
            every,
        } => {
            let payload = Arc::new(payload);
            for key in identities(n) {
                let d = next();
                let payload = payload.clone();
                tasks.spawn(async move {
                    let mut r = Report::default();
                    let conn = match d.connect(&key, target).await {
                        Ok(c) => c,
                        Err(e) => {
                            r.failed(&e);
                            return r;
                        }
                    };
                    r.connections += 1;
                    let mut sends = tokio::task::JoinSet::new();
                    for _ in 0..streams {
                        let (conn, payload) = (conn.clone(), payload.clone());
                        sends.spawn(async move {
                            tokio::time::timeout_at(
                                deadline,
                                send_slowly(&conn, &payload, chunk, every),
                            )
                            .await
                        });
                    }
                    while let Some(done) = sends.join_next().await {
                        r.streams += 1;
                        match done {
                            Ok(Ok(Ok(resp))) => r.answer(&resp),
                            Ok(Ok(Err(e))) => r.failed(&e),
                            // Still sending when the attack ended.
                            Ok(Err(_)) | Err(_) => {}
                        }
                    }
                    r
                });
            }
        }
        Attack::NeverRead {
            identities: n,
            streams,
            payload,
        } => {
            let payload = Arc::new(payload);
            for key in identities(n) {
                let d = next();
                let payload = payload.clone();
                tasks.spawn(async move {
                    let mut r = Report::default();
                    let conn = match d.connect(&key, target).await {
                        Ok(c) => c,
                        Err(e) => {
                            r.failed(&e);
                            return r;
                        }
                    };
                    r.connections += 1;
                    let mut held = Vec::new();
                    for _ in 0..streams {
                        match tokio::time::timeout_at(
                            deadline,
                            send_and_never_read(&conn, &payload),
                        )
                        .await
                        {
                            Ok(Ok(h)) => {
                                r.streams += 1;
                                held.push(h);
                            }
                            Ok(Err(e)) => r.failed(&e),
                            Err(_) => break,
                        }
                    }
                    tokio::time::sleep_until(deadline).await;
                    r
                });
            }
        }
        Attack::BadFrames {
            identities: n,
            rounds,
            oversized,
        } => {
            for key in identities(n) {
                let d = next();
                tasks.spawn(async move {
                    let mut r = Report::default();
                    for round in 0..rounds {
                        if tokio::time::Instant::now() >= deadline {
                            break;
                        }
                        // Each bad frame costs the connection: dial afresh.
                        let conn = match d.connect(&key, target).await {
                            Ok(c) => c,
                            Err(e) => {
                                r.failed(&e);
                                continue;
                            }
                        };
                        r.connections += 1;
                        let bytes: Vec<u8> = match round % 3 {
                            // Frames that do not decode.
                            0 => [&11u32.to_be_bytes()[..], b"not errand!"].concat(),
                            // Declares 1000 bytes, sends 10, finishes.
                            1 => [&1000u32.to_be_bytes()[..], &[7u8; 10][..]].concat(),
                            // Over the limit.
                            _ => [&oversized.to_be_bytes()[..], &[0u8; 1024][..]].concat(),
                        };
                        r.streams += 1;
                        match send_raw(&conn, &bytes, Duration::from_secs(5)).await {
                            Ok(resp) => r.answer(&resp),
                            Err(e) => r.failed(&e),
                        }
                    }
                    r
                });
            }
        }
        Attack::InitialFlood { per_second } => {
            // Many connection ids: a copy whose id belongs to an attempt
            // the target admitted, or is still deciding, is only a
            // duplicate packet of that attempt.
            let initials = Arc::new(capture_initials(target, 1024).await?);
            let deadline = tokio::time::Instant::now() + hold;
            let ips: Vec<IpAddr> = if sources.is_empty() {
                vec![if target.addr.is_ipv4() {
                    Ipv4Addr::UNSPECIFIED.into()
                } else {
                    std::net::Ipv6Addr::UNSPECIFIED.into()
                }]
            } else {
                sources.to_vec()
            };
            for ip in ips {
                let initials = initials.clone();
                tasks.spawn(async move {
                    let mut r = Report::default();
                    let sock = match tokio::net::UdpSocket::bind(SocketAddr::new(ip, 0)).await {
                        Ok(s) => s,
                        Err(e) => {
                            r.failed(&NetError::Closed(e.to_string()));
                            return r;
                        }
                    };
                    // In steps of 5 ms, as many as are due.
                    let step = Duration::from_millis(5);
                    let t0 = tokio::time::Instant::now();
                    let mut sent = 0u64;
                    let mut buf = vec![0u8; 2048];
                    while tokio::time::Instant::now() < deadline {
                        let due = (t0.elapsed().as_secs_f64() * f64::from(per_second)) as u64;
                        while sent < due {
                            let initial = &initials[sent as usize % initials.len()];
                            if sock.send_to(initial, target.addr).await.is_err() {
                                r.failures += 1;
                            }
                            sent += 1;
                        }
                        // Answers (refusals, retries) are counted, never read further.
                        while let Ok(n) = sock.try_recv(&mut buf) {
                            let retry = n > 0 && buf[0] & 0x80 != 0 && (buf[0] >> 4) & 0x03 == 3;
                            let kind = if retry {
                                "Retry packet"
                            } else {
                                "other packet"
                            };
                            *r.answers.entry(kind.to_owned()).or_default() += 1;
                        }
                        tokio::time::sleep(step).await;
                    }
                    r.connections = sent;
                    r
                });
            }
        }
        Attack::Replay {
            key,
            payloads,
            copies,
            connections,
        } => {
            let mut conns = Vec::new();
            let mut r = Report::default();
            for _ in 0..connections.max(1) {
                match next().connect(&key, target).await {
                    Ok(c) => {
                        r.connections += 1;
                        conns.push(c);
                    }
                    Err(e) => r.failed(&e),
                }
            }
            if conns.is_empty() {
                return Ok(r);
            }
            let payloads = Arc::new(payloads);
            let mut n = 0usize;
            for i in 0..payloads.len() {
                for _ in 0..copies {
                    let conn = conns[n % conns.len()].clone();
                    n += 1;
                    let payloads = payloads.clone();
                    tasks.spawn(async move {
                        let mut r = Report {
                            streams: 1,
                            ..Report::default()
                        };
                        match conn.request_raw(&payloads[i]).await {
                            Ok(resp) => {
                                r.answer(&resp);
                                r.replies.push((i, resp));
                            }
                            Err(e) => r.failed(&e),
                        }
                        r
                    });
                }
            }
            tasks.spawn(async move { r });
        }
    }
    let mut report = Report::default();
    while let Some(r) = tasks.join_next().await {
        if let Ok(r) = r {
            report.merge(r);
        }
    }
    for d in &diallers {
        d.close();
    }
    Ok(report)
}
