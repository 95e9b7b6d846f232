//! The socket under an endpoint's QUIC: one UDP socket, plus relay circuits
//! that look like addresses.
//!
//! quinn runs over any [`AsyncUdpSocket`]. [`MuxSocket`] wraps the node's UDP
//! socket and adds *virtual* addresses, one per relay circuit, taken from
//! 240.0.0.0/4 (reserved, never routed, so never a real peer's address). A
//! packet quinn sends to a virtual address goes into that circuit (see
//! [`crate::relay`]); a packet that arrives on a circuit is handed to quinn
//! as if it came from the circuit's virtual address. So one QUIC endpoint
//! dials and serves direct and relayed peers alike, with one TLS identity,
//! one set of limits and one handler, and a relayed session is end to end
//! between the two peers: the relay carries its packets and nothing else.
//!
//! The same UDP socket sends and receives hole-punching probes (see
//! [`crate::punch`]): small datagrams that start with [`PROBE_MAGIC`] and
//! name the sender's peer id. They are taken out before quinn sees the
//! batch, and reported to the punch waiting for that peer, if any.

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};

use errand_core::PeerId;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use tokio::sync::mpsc;

use crate::admission::{Origin, Source};

pub use errand_core::reach::{PROBE_LEN, PROBE_MAGIC, parse_probe, probe};

/// Packets waiting for quinn to read, from every circuit together.
const RELAYED_QUEUE: usize = 4096;

/// Packets waiting to go into one circuit; more are dropped, as a full
/// socket buffer drops them (QUIC recovers and slows down).
pub const CIRCUIT_QUEUE: usize = 1024;

/// Whether `addr` is a circuit's virtual address (240.0.0.0/4, also as an
/// IPv4-mapped IPv6 address).
pub fn is_virtual(addr: SocketAddr) -> bool {
    match canonical(addr).ip() {
        IpAddr::V4(ip) => ip.octets()[0] >= 240 && !ip.is_broadcast(),
        IpAddr::V6(_) => false,
    }
}

/// An IPv4-mapped IPv6 address as IPv4; anything else as it is.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// A circuit's route.
#[derive(Debug)]
struct Route {
    /// Where its packets go.
    out: mpsc::Sender<Vec<u8>>,
    /// The relay's address.
    relay: SocketAddr,
    /// At its target, the address the relay saw the requester at.
    requester: Option<SocketAddr>,
}

/// See the module docs.
#[derive(Debug)]
pub struct MuxSocket {
    udp: std::sync::Arc<dyn AsyncUdpSocket>,
    ipv6: bool,
    relayed_tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
    relayed_rx: Mutex<mpsc::Receiver<(SocketAddr, Vec<u8>)>>,
    /// Each circuit's virtual address: where its packets go, and the
    /// relay's address.
    routes: Mutex<HashMap<SocketAddr, Route>>,
    next_virtual: AtomicU32,
    /// Punches under way: probes from the peer go to its channel.
    punches: Mutex<HashMap<PeerId, mpsc::UnboundedSender<SocketAddr>>>,
    /// Which source `poll_recv` tries first, alternately, so neither
    /// starves the other.
    relayed_first: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single map or queue operation.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MuxSocket {
    /// Wraps `udp`.
    pub fn new(udp: std::sync::Arc<dyn AsyncUdpSocket>) -> io::Result<MuxSocket> {
        let ipv6 = udp.local_addr()?.is_ipv6();
        let (relayed_tx, relayed_rx) = mpsc::channel(RELAYED_QUEUE);
        Ok(MuxSocket {
            udp,
            ipv6,
            relayed_tx,
            relayed_rx: Mutex::new(relayed_rx),
            routes: Mutex::new(HashMap::new()),
            next_virtual: AtomicU32::new(1),
            punches: Mutex::new(HashMap::new()),
            relayed_first: AtomicBool::new(false),
        })
    }

    /// The address as quinn uses it on this socket (IPv4-mapped on an IPv6
    /// socket).
    fn as_quinn(&self, addr: SocketAddr) -> SocketAddr {
        match addr {
            SocketAddr::V4(v4) if self.ipv6 => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => addr,
        }
    }

    /// A new circuit through the relay at `relay`: a fresh virtual address
    /// whose packets go to `out`. `requester` is, at the circuit's target,
    /// the address the relay saw the requester at. Returns the address (as
    /// quinn sees it) and the sender that delivers the circuit's incoming
    /// packets to quinn.
    pub fn add_route(
        &self,
        out: mpsc::Sender<Vec<u8>>,
        relay: SocketAddr,
        requester: Option<SocketAddr>,
    ) -> (SocketAddr, Inbound) {
        let route = Route {
            out,
            relay,
            requester,
        };
        let mut routes = lock(&self.routes);
        // The counter wraps after 2^28 circuits: skip the addresses still
        // in use (there are far fewer of them than addresses).
        let addr = loop {
            let n = self.next_virtual.fetch_add(1, Ordering::Relaxed) & 0x0fff_ffff;
            let ip = Ipv4Addr::from(0xf000_0000 | n.max(1));
            let addr = SocketAddr::new(IpAddr::V4(ip), 1);
            if !routes.contains_key(&addr) {
                break addr;
            }
        };
        routes.insert(addr, route);
        drop(routes);
        (
            self.as_quinn(addr),
            Inbound {
                from: self.as_quinn(addr),
                tx: self.relayed_tx.clone(),
            },
        )
    }

    /// Ends a circuit's route: packets to it are dropped from now on.
    pub fn remove_route(&self, addr: SocketAddr) {
        lock(&self.routes).remove(&canonical(addr));
    }

    /// Circuits routed now.
    pub fn routes(&self) -> usize {
        lock(&self.routes).len()
    }

    /// The relay a virtual address goes through, if it is a circuit's.
    pub fn relay_of(&self, addr: SocketAddr) -> Option<SocketAddr> {
        lock(&self.routes).get(&canonical(addr)).map(|r| r.relay)
    }

    /// What admission control counts a new connection from `addr` against
    /// (see [`Origin`]): its source, or for a circuit's virtual address the
    /// relay's source and the requester's as the relay saw it (the relay's
    /// alone if it did not say). A virtual address with no route left is
    /// its own source.
    pub fn origin_of(&self, addr: SocketAddr) -> Origin {
        let addr = canonical(addr);
        if is_virtual(addr)
            && let Some(r) = lock(&self.routes).get(&addr)
        {
            let relay = Source::of(r.relay);
            return Origin::Relayed {
                relay,
                requester: r.requester.map_or(relay, Source::of),
            };
        }
        Origin::Direct(Source::of(addr))
    }

    /// Sends one probe from `me` to `to`, best effort.
    pub fn send_probe(&self, me: PeerId, to: SocketAddr) {
        let p = probe(me);
        let t = Transmit {
            destination: self.as_quinn(to),
            ecn: None,
            contents: &p,
            segment_size: None,
            src_ip: None,
        };
        if let Err(e) = self.udp.try_send(&t) {
            tracing::trace!(%to, error = %e, "probe not sent");
        }
    }

    /// Reports probes from `peer` to `tx` until [`MuxSocket::unwatch`].
    pub fn watch(&self, peer: PeerId, tx: mpsc::UnboundedSender<SocketAddr>) {
        lock(&self.punches).insert(peer, tx);
    }

    /// Stops reporting probes from `peer`.
    pub fn unwatch(&self, peer: PeerId) {
        lock(&self.punches).remove(&peer);
    }

    fn take_probe(&self, datagram: &[u8], from: SocketAddr) -> bool {
        let Some(peer) = parse_probe(datagram) else {
            return false;
        };
        if let Some(tx) = lock(&self.punches).get(&peer) {
            let _ = tx.send(canonical(from));
        }
        tracing::trace!(%peer, from = %canonical(from), "hole-punching probe");
        true
    }

    fn poll_relayed(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<usize> {
        let mut rx = lock(&self.relayed_rx);
        let mut n = 0;
        while n < bufs.len().min(meta.len()) {
            let next = if n == 0 {
                match rx.poll_recv(cx) {
                    Poll::Ready(Some(p)) => p,
                    // We hold a sender ourselves: the channel never closes.
                    Poll::Ready(None) | Poll::Pending => return Poll::Pending,
                }
            } else {
                match rx.try_recv() {
                    Ok(p) => p,
                    Err(_) => break,
                }
            };
            let (from, packet) = next;
            if packet.len() > bufs[n].len() {
                continue; // cannot be a QUIC packet of ours
            }
            bufs[n][..packet.len()].copy_from_slice(&packet);
            meta[n] = RecvMeta {
                addr: from,
                len: packet.len(),
                stride: packet.len(),
                ecn: None,
                dst_ip: None,
            };
            n += 1;
        }
        if n == 0 {
            // Every packet was dropped; nothing registered a wake-up, so
            // ask to be polled again.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(n)
    }

    fn poll_udp(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let n = match self.udp.poll_recv(cx, bufs, meta) {
            Poll::Ready(Ok(n)) => n,
            other => return other,
        };
        for (m, b) in meta.iter_mut().zip(bufs.iter()).take(n) {
            if m.len == m.stride && m.len == PROBE_LEN && self.take_probe(&b[..m.len], m.addr) {
                // quinn skips an empty datagram.
                m.len = 0;
            }
        }
        Poll::Ready(Ok(n))
    }
}

/// Where a circuit's incoming packets go: to quinn, as from the circuit's
/// virtual address.
#[derive(Debug, Clone)]
pub struct Inbound {
    from: SocketAddr,
    tx: mpsc::Sender<(SocketAddr, Vec<u8>)>,
}

impl Inbound {
    /// Hands a packet to quinn; waits while quinn's queue is full.
    pub async fn deliver(&self, packet: Vec<u8>) -> bool {
        self.tx.send((self.from, packet)).await.is_ok()
    }
}

impl AsyncUdpSocket for MuxSocket {
    fn create_io_poller(self: std::sync::Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        self.udp.clone().create_io_poller()
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let to = canonical(transmit.destination);
        if !is_virtual(to) {
            return self.udp.try_send(transmit);
        }
        if let Some(route) = lock(&self.routes).get(&to) {
            // One datagram per transmit: see `max_transmit_segments`.
            if route.out.try_send(transmit.contents.to_vec()).is_err() {
                tracing::trace!(%to, "circuit queue full; packet dropped");
            }
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let relayed_first = !self.relayed_first.fetch_xor(true, Ordering::Relaxed);
        if relayed_first {
            if let Poll::Ready(n) = self.poll_relayed(cx, bufs, meta) {
                return Poll::Ready(Ok(n));
            }
            self.poll_udp(cx, bufs, meta)
        } else {
            if let Poll::Ready(r) = self.poll_udp(cx, bufs, meta) {
                return Poll::Ready(r);
            }
            self.poll_relayed(cx, bufs, meta).map(Ok)
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// One datagram per transmit, so that a transmit to a circuit is one
    /// packet (this gives up GSO on the UDP socket).
    fn max_transmit_segments(&self) -> usize {
        1
    }

    fn max_receive_segments(&self) -> usize {
        self.udp.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.udp.may_fragment()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mux() -> MuxSocket {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let runtime = quinn::default_runtime().unwrap();
        MuxSocket::new(runtime.wrap_udp_socket(udp).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn next_virtual_wrapping_skips_addresses_in_use() {
        let m = mux();
        let relay: SocketAddr = "192.0.2.9:4433".parse().unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let (live, _) = m.add_route(tx.clone(), relay, None);
        // 2^28 circuits later the counter comes back to the live one's.
        m.next_virtual.fetch_add(0x0fff_ffff, Ordering::Relaxed);
        let (next, _) = m.add_route(tx, relay, None);
        assert_ne!(next, live);
        assert_eq!(m.routes(), 2);
    }

    #[tokio::test]
    async fn a_circuit_counts_against_its_relay_and_requester() {
        let m = mux();
        let relay: SocketAddr = "192.0.2.9:4433".parse().unwrap();
        let requester: SocketAddr = "198.51.100.7:5000".parse().unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let (a, _) = m.add_route(tx.clone(), relay, Some(requester));
        let (b, _) = m.add_route(tx.clone(), relay, Some(requester));
        let (c, _) = m.add_route(tx, relay, None);
        let expected = Origin::Relayed {
            relay: Source::of(relay),
            requester: Source::of(requester),
        };
        assert_eq!(m.origin_of(a), expected);
        assert_eq!(m.origin_of(b), expected);
        assert_eq!(
            m.origin_of(c),
            Origin::Relayed {
                relay: Source::of(relay),
                requester: Source::of(relay),
            }
        );
        assert_eq!(
            m.origin_of(requester),
            Origin::Direct(Source::of(requester))
        );
    }

    #[test]
    fn virtual_addresses_are_class_e_only() {
        assert!(is_virtual("240.0.0.1:1".parse().unwrap()));
        assert!(is_virtual("[::ffff:240.0.0.9]:1".parse().unwrap()));
        assert!(!is_virtual("255.255.255.255:1".parse().unwrap()));
        assert!(!is_virtual("10.0.0.1:4433".parse().unwrap()));
        assert!(!is_virtual("[2001:db8::1]:4433".parse().unwrap()));
    }
}
