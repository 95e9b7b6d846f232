//! Deterministic sample objects, for tests, benchmarks, fuzzing seeds and
//! documentation. Keys here come from fixed seeds: never use them for real.

use std::net::{Ipv4Addr, SocketAddr};

use crate::bounded::{BString, BVec};
use crate::descriptor::{
    DEFAULT_TTL_MS, Descriptor, MediaSpec, NetAddr, PackageRef, Qos, Tiers, Version,
};
use crate::digest::Digest;
use crate::evidence::TraceChain;
use crate::identity::SecretKey;
use crate::receipt::{
    CapabilityRef, InvocationContext, Outcome, Param, Platform, Receipt, RequestId, RunLimits,
};
use crate::request::{CapabilityTarget, Request, Seed, SignedRequest};
use crate::time::UnixMillis;

/// The fixed instant samples are issued at: 2026-03-04T05:06:40Z.
pub const SAMPLE_TIME: UnixMillis = UnixMillis(1_772_600_800_000);

/// A key from a fixed seed `n`.
pub fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

fn s<const N: usize>(v: &str) -> BString<N> {
    BString::truncate_from(v)
}

/// A fully populated descriptor published by `key`.
pub fn descriptor(key: &SecretKey) -> Descriptor {
    Descriptor {
        publisher: key.peer_id(),
        name: s("imagegen"),
        version: Version::new(1, 2, 0),
        description: s("Renders a deterministic procedural PNG image from a text prompt"),
        intents: BVec::new(vec![s("generate image"), s("text to image"), s("png")])
            .unwrap_or_default(),
        input: MediaSpec {
            media_type: s("text/plain; charset=utf-8"),
            schema: None,
        },
        output: MediaSpec {
            media_type: s("image/png"),
            schema: Some(s(r#"{"type":"string","contentEncoding":"binary"}"#)),
        },
        component: Some(Digest::of(b"imagegen component")),
        package: Some(PackageRef {
            digest: Digest::of(b"imagegen package"),
            author: SecretKey::from_seed([9; 32]).peer_id(),
        }),
        qos: Qos {
            latency_ms: 40,
            cost: 3,
            fuel: 120_000_000,
            max_input_bytes: 4096,
        },
        tiers: Tiers {
            canary: true,
            receipts: true,
            replay: true,
        },
        addrs: BVec::new(vec![NetAddr::Quic(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            4433,
        )))])
        .unwrap_or_default(),
        seq: 7,
        issued_at: SAMPLE_TIME,
        ttl_ms: DEFAULT_TTL_MS,
        withdrawn: false,
    }
}

/// A fully populated request from `requester` to `executor`, the one
/// [`receipt`] answers.
pub fn request(executor: &SecretKey, requester: &SecretKey) -> Request {
    Request {
        requester: requester.peer_id(),
        executor: executor.peer_id(),
        request_id: RequestId([0x5a; 16]),
        capability: Some(CapabilityTarget {
            name: s("imagegen"),
            version: Some(Version::new(1, 0, 0)),
        }),
        component: Some(Digest::of(b"imagegen component")),
        input: Digest::of(b"a red fox at dawn"),
        context: InvocationContext {
            time: SAMPLE_TIME,
            params: BVec::new(vec![Param {
                key: s("title"),
                value: s("Fox"),
            }])
            .unwrap_or_default(),
        },
        fuel: 500_000_000,
        limits: Some(sample_limits()),
        seed: Seed([0x3c; 32]),
    }
}

/// [`request`], signed by `requester`.
pub fn signed_request(executor: &SecretKey, requester: &SecretKey) -> SignedRequest {
    match SignedRequest::sign(request(executor, requester), requester) {
        Ok(r) => r,
        // The sample is well formed and signed by its own requester.
        Err(e) => unreachable!("sample request does not sign: {e}"),
    }
}

fn sample_limits() -> RunLimits {
    RunLimits {
        memory_bytes: 256 << 20,
        table_elements: 100_000,
        instances: 64,
        tables: 64,
        memories: 16,
        max_output: 16 << 20,
        max_trace_events: 65_536,
        max_stdio: 1 << 20,
        max_log_bytes: 1 << 20,
    }
}

/// A fully populated receipt executed by `executor` for `requester`,
/// answering [`signed_request`].
pub fn receipt(executor: &SecretKey, requester: &SecretKey) -> Receipt {
    let asked = request(executor, requester);
    let mut chain = TraceChain::new();
    for e in trace() {
        chain.push(&e);
    }
    Receipt {
        executor: executor.peer_id(),
        requester: requester.peer_id(),
        request_id: RequestId([0x5a; 16]),
        request: signed_request(executor, requester).digest(),
        capability: Some(CapabilityRef {
            name: s("imagegen"),
            version: Version::new(1, 2, 0),
            seq: 7,
        }),
        component: asked.component.unwrap_or_default(),
        input: asked.input,
        context: asked.context,
        seed: asked.seed,
        outcome: Outcome::Ok,
        output: Digest::of(b"\x89PNG..."),
        fuel_limit: 500_000_000,
        fuel_consumed: 96_123_456,
        limits: sample_limits(),
        trace_root: chain.root(),
        trace_events: chain.count(),
        started_at: SAMPLE_TIME.plus_ms(12),
        finished_at: SAMPLE_TIME.plus_ms(51),
        platform: Platform {
            errand: s("0.1.0"),
            wasmtime: s("48.0.8"),
            engine: Digest::of(b"engine settings"),
        },
    }
}

/// A short sample trace.
pub fn trace() -> Vec<crate::evidence::TraceEvent> {
    use crate::evidence::TraceEvent;
    vec![
        TraceEvent {
            fuel: 1_024,
            call: s("wasi:clocks/wall-clock#now"),
            args: Digest::of(b""),
            result: Digest::of(&SAMPLE_TIME.0.to_le_bytes()),
        },
        TraceEvent {
            fuel: 88_000,
            call: s("errand:capability/host#log"),
            args: Digest::of(b"info rendering"),
            result: Digest::of(b""),
        },
    ]
}

/// A sample authorship by `author`, for the imagegen sample descriptor.
pub fn authorship(author: &SecretKey) -> crate::package::Authorship {
    crate::package::Authorship {
        author: author.peer_id(),
        name: s("imagegen"),
        version: Version::new(1, 2, 0),
        component: Digest::of(b"imagegen component"),
        manifest: Digest::of(b"imagegen manifest"),
    }
}

/// A fully populated reachability report of a node behind an
/// endpoint-independent NAT that also relays.
pub fn reachability_report() -> crate::reach::ReachabilityReport {
    use crate::reach::*;
    let relay = key(5).peer_id();
    let relay_addr = SocketAddr::from(([198, 51, 100, 9], 4433));
    let seen = SocketAddr::from(([203, 0, 113, 5], 40_000));
    let local = SocketAddr::from(([10, 0, 1, 2], 4433));
    let observed = vec![
        Observation {
            observer: relay,
            observer_addr: relay_addr,
            seen,
            local: Some(local),
        },
        Observation {
            observer: key(6).peer_id(),
            observer_addr: SocketAddr::from(([198, 51, 100, 2], 4433)),
            seen,
            local: Some(local),
        },
    ];
    ReachabilityReport {
        nat: classify(&observed),
        observed: BVec::new(observed).unwrap_or_default(),
        relays: BVec::new(vec![RelayState {
            relay,
            addr: relay_addr,
            reserved: true,
            error: None,
        }])
        .unwrap_or_default(),
        paths: BVec::new(vec![
            NetAddr::Quic(local),
            NetAddr::Relay {
                relay,
                addr: relay_addr,
            },
        ])
        .unwrap_or_default(),
        made: PathCounts {
            direct: 3,
            punched: 2,
            relayed: 4,
        },
        open: BVec::new(vec![OpenPath {
            peer: key(3).peer_id(),
            kind: PathKind::Punched,
            incoming: false,
            remote: SocketAddr::from(([203, 0, 113, 77], 4433)),
        }])
        .unwrap_or_default(),
        punches: PunchCounts {
            attempted: 3,
            succeeded: 2,
        },
        relay: Some(RelayServerStats {
            reservations: 1,
            circuits_open: 1,
            circuits_total: 5,
            bytes_relayed: 123_456,
            refused: 1,
        }),
    }
}
