//! Integration tests for errand-net on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use errand_core::wire::{ErrorCode, Request, Response};
use errand_core::{PeerId, SecretKey};
use errand_net::{Endpoint, Handler, NetConfig, NetError, serve};

struct Echo {
    seen: AtomicUsize,
}

impl Handler for Echo {
    async fn handle(&self, peer: PeerId, req: Request) -> Response {
        self.seen.fetch_add(1, Ordering::Relaxed);
        match req {
            Request::Ping => Response::Pong,
            Request::GetReceipt(_) => {
                // Report who asked, through the error channel.
                Response::Error(errand_core::wire::WireError::new(ErrorCode::NotFound, peer))
            }
            _ => Response::Error(errand_core::wire::WireError::new(
                ErrorCode::Unsupported,
                "test",
            )),
        }
    }
}

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

fn config() -> NetConfig {
    NetConfig {
        max_frame_bytes: 64 << 10,
        request_timeout: Duration::from_secs(2),
        ..NetConfig::default()
    }
}

async fn server(cfg: NetConfig) -> (Endpoint, Arc<Echo>) {
    let ep = Endpoint::bind("127.0.0.1:0".parse().unwrap(), key(1), cfg).unwrap();
    let h = Arc::new(Echo {
        seen: AtomicUsize::new(0),
    });
    tokio::spawn(serve(ep.clone(), h.clone()));
    (ep, h)
}

fn client(n: u8) -> Endpoint {
    Endpoint::bind("127.0.0.1:0".parse().unwrap(), key(n), config()).unwrap()
}

#[tokio::test]
async fn both_sides_authenticate_with_their_keys() {
    let (srv, _) = server(config()).await;
    let addr = srv.local_addr().unwrap();
    let c = client(2);
    assert_eq!(
        c.request(addr, key(1).peer_id(), &Request::Ping)
            .await
            .unwrap(),
        Response::Pong
    );
    // The server saw the client's key.
    match c
        .request(
            addr,
            key(1).peer_id(),
            &Request::GetReceipt(Default::default()),
        )
        .await
        .unwrap()
    {
        Response::Error(e) => assert_eq!(e.message.as_str(), key(2).peer_id().to_string()),
        r => panic!("{r:?}"),
    }
    assert_eq!(srv.connected_peers(), vec![key(2).peer_id()]);
}

#[tokio::test]
async fn dialling_a_peer_that_presents_another_key_fails() {
    let (srv, h) = server(config()).await;
    let addr = srv.local_addr().unwrap();
    let c = client(2);
    let err = c
        .request(addr, key(9).peer_id(), &Request::Ping)
        .await
        .unwrap_err();
    match &err {
        NetError::Connect { reason, .. } => assert!(reason.contains("expected"), "{reason}"),
        e => panic!("{e}"),
    }
    assert_eq!(
        h.seen.load(Ordering::Relaxed),
        0,
        "no request reached the impostor"
    );
}

#[tokio::test]
async fn malformed_and_oversized_frames_cut_off_only_that_peer() {
    let (srv, _) = server(config()).await;
    let addr = srv.local_addr().unwrap();
    let honest = client(3);
    let bad = client(4);

    // Garbage payload: an error answer, then disconnection.
    let conn = bad.connect(addr, key(1).peer_id()).await.unwrap();
    match conn
        .request_raw(b"\x0eerrand/request\x01\xff\xff")
        .await
        .unwrap()
    {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::BadRequest, "{e}"),
        r => panic!("{r:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(conn.is_closed(), "the misbehaving peer is disconnected");

    // Oversized frame: refused before it is read.
    let conn = bad.connect(addr, key(1).peer_id()).await.unwrap();
    let huge = vec![0u8; 100 << 10];
    match conn.request_raw(&huge).await.unwrap() {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::TooLarge, "{e}"),
        r => panic!("{r:?}"),
    }

    // The honest peer is served throughout.
    for _ in 0..5 {
        assert_eq!(
            honest
                .request(addr, key(1).peer_id(), &Request::Ping)
                .await
                .unwrap(),
            Response::Pong
        );
    }
}

#[tokio::test]
async fn connections_per_peer_are_limited_and_the_oldest_is_replaced() {
    let (srv, _) = server(NetConfig {
        max_connections_per_peer: 2,
        ..config()
    })
    .await;
    let addr = srv.local_addr().unwrap();
    let c = client(5);
    let a = c.connect(addr, key(1).peer_id()).await.unwrap();
    let b = c.connect(addr, key(1).peer_id()).await.unwrap();
    assert_eq!(a.request(&Request::Ping).await.unwrap(), Response::Pong);
    assert_eq!(b.request(&Request::Ping).await.unwrap(), Response::Pong);
    // A third connection from the same peer is served, and its oldest one closed.
    let third = c.connect(addr, key(1).peer_id()).await.unwrap();
    assert_eq!(third.request(&Request::Ping).await.unwrap(), Response::Pong);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        a.request(&Request::Ping).await.is_err(),
        "the oldest connection was closed"
    );
    assert_eq!(b.request(&Request::Ping).await.unwrap(), Response::Pong);
    // Never more than two at once from this peer.
    assert_eq!(srv.connected_peers(), vec![key(5).peer_id()]);
    // Another peer is unaffected.
    assert_eq!(
        client(6)
            .request(addr, key(1).peer_id(), &Request::Ping)
            .await
            .unwrap(),
        Response::Pong
    );
}

#[tokio::test]
async fn a_silent_peer_times_out_without_blocking_others() {
    let (srv, _) = server(NetConfig {
        request_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let addr = srv.local_addr().unwrap();
    let c = client(7);
    let conn = c.connect(addr, key(1).peer_id()).await.unwrap();
    // Open streams and send nothing.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(conn.request_raw(&[]));
    }
    let other = client(8);
    assert_eq!(
        other
            .request(addr, key(1).peer_id(), &Request::Ping)
            .await
            .unwrap(),
        Response::Pong
    );
}

#[tokio::test]
async fn unreachable_peer_fails_within_the_connect_timeout() {
    let c = Endpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        key(2),
        NetConfig {
            connect_timeout: Duration::from_millis(300),
            ..config()
        },
    )
    .unwrap();
    // Nothing listens on this port.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let t = std::time::Instant::now();
    assert!(
        c.request(dead, key(1).peer_id(), &Request::Ping)
            .await
            .is_err()
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}
