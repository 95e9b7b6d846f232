//! Integration tests for errand-core's formats: golden bytes, round trips,
//! tamper detection and strict decoding.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;

use errand_core::bounded::{BBytes, BString, BVec, FieldKind};
use errand_core::descriptor::*;
use errand_core::evidence::{
    self, Blob, Evidence, Supplied, TraceBlob, TraceChain, TraceEvent, Verdict,
};
use errand_core::package::{Authorship, Package, PackageMismatch, SignedAuthorship};
use errand_core::receipt::*;
use errand_core::request::{Request, Seed, SignedRequest};
use errand_core::signed::{self, DecodeError, Kind, OpenError};
use errand_core::testing::{self, SAMPLE_TIME, key};
use errand_core::{Digest, PeerId, UnixMillis};
use proptest::prelude::*;

mod fuzz_seeds;

// ---------------------------------------------------------------- golden bytes

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

/// Compares `bytes` with the checked-in hex snapshot `name`. Run with
/// `ERRAND_BLESS=1` to rewrite the snapshot after an intended format change
/// (and bump the object's format version).
fn assert_golden(name: &str, bytes: &[u8]) {
    let path = golden_path(name);
    let hex = hex::encode(bytes)
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    if std::env::var_os("ERRAND_BLESS").is_some() {
        std::fs::write(&path, &hex).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with ERRAND_BLESS=1 to create it",
            path.display()
        )
    });
    assert!(
        want == hex,
        "the encoding of {name} changed. If intended, bump its format version and re-bless with ERRAND_BLESS=1.\nwant:\n{want}\ngot:\n{hex}"
    );
}

#[test]
fn golden_descriptor_signed_bytes_and_encoding() {
    let d = SignedDescriptor::sign(testing::descriptor(&key(1)), &key(1)).unwrap();
    assert_golden("descriptor.signed.hex", &d.signed_bytes());
    assert_golden("descriptor.hex", &d.to_bytes());
    // The signed bytes start with the domain-separation header.
    assert_eq!(&d.signed_bytes()[..19], b"\x11errand/descriptor\x03");
    assert_eq!(d.version(), 3);
}

#[test]
fn golden_relayed_descriptor_signed_bytes_and_encoding() {
    let mut body = testing::descriptor(&key(1));
    body.addrs = BVec::new(vec![
        NetAddr::Quic("192.0.2.7:4433".parse().unwrap()),
        NetAddr::Relay {
            relay: key(5).peer_id(),
            addr: "198.51.100.9:4433".parse().unwrap(),
        },
    ])
    .unwrap();
    let d = SignedDescriptor::sign(body, &key(1)).unwrap();
    assert_golden("descriptor-relayed.signed.hex", &d.signed_bytes());
    assert_golden("descriptor-relayed.hex", &d.to_bytes());
    assert_eq!(
        d.body().addrs[1].to_string(),
        format!("relay://{}@198.51.100.9:4433", key(5).peer_id())
    );
}

/// Descriptors signed under format version 2 (before relay paths) still
/// open, verify, and keep their exact bytes and version, in binary and in
/// JSON; a version-2 header on a relay path is refused.
#[test]
fn version_2_descriptors_still_open_and_verify() {
    let hex: String = std::fs::read_to_string(golden_path("descriptor.v2.hex"))
        .unwrap()
        .split_whitespace()
        .collect();
    let v2 = hex::decode(hex).unwrap();
    let d = SignedDescriptor::from_bytes(&v2).unwrap();
    assert_eq!(d.version(), 2);
    assert_eq!(d.to_bytes(), v2);
    // Re-derived from the body under version 2, the signed bytes still verify.
    assert!(d.verify().is_ok());
    assert_eq!(d.encoded_len(), v2.len());
    assert_eq!(d.body(), &testing::descriptor(&key(1)));
    let json = d.to_json();
    assert_eq!(json["version"], 2);
    let back = SignedDescriptor::from_json(&json).unwrap();
    assert!(back.verify().is_ok());
    assert_eq!(back.to_bytes(), v2);

    // The same bytes with a relay path are not a version-2 descriptor.
    let mut body = testing::descriptor(&key(1));
    body.addrs = BVec::new(vec![NetAddr::Relay {
        relay: key(5).peer_id(),
        addr: "198.51.100.9:4433".parse().unwrap(),
    }])
    .unwrap();
    let mut bytes = SignedDescriptor::sign(body, &key(1)).unwrap().to_bytes();
    bytes[18] = 2;
    assert!(matches!(
        SignedDescriptor::decode(&bytes),
        Err(DecodeError::Invalid { invalid, .. }) if invalid.field == "addrs"
    ));
    bytes[18] = 1;
    assert!(matches!(
        SignedDescriptor::decode(&bytes),
        Err(DecodeError::UnsupportedVersion {
            found: 1,
            supported: 3,
            oldest: 2,
            ..
        })
    ));
}

#[test]
fn golden_authorship_signed_bytes_and_encoding() {
    let a = SignedAuthorship::sign(testing::authorship(&key(4)), &key(4)).unwrap();
    assert_golden("authorship.signed.hex", &a.signed_bytes());
    assert_golden("authorship.hex", &a.to_bytes());
    assert_eq!(&a.signed_bytes()[..19], b"\x11errand/authorship\x01");
}

#[test]
fn golden_receipt_signed_bytes_and_encoding() {
    let r = SignedReceipt::sign(testing::receipt(&key(2), &key(3)), &key(2)).unwrap();
    assert_golden("receipt.signed.hex", &r.signed_bytes());
    assert_golden("receipt.hex", &r.to_bytes());
    assert_eq!(&r.signed_bytes()[..16], b"\x0eerrand/receipt\x02");
}

#[test]
fn golden_signed_request_bytes_and_encoding() {
    let q = testing::signed_request(&key(2), &key(3));
    assert_golden("request.signed.hex", &q.signed_bytes());
    assert_golden("request.hex", &q.to_bytes());
    assert_eq!(&q.signed_bytes()[..23], b"\x15errand/signed-request\x01");
}

#[test]
fn golden_evidence_encoding() {
    let r = SignedReceipt::sign(testing::receipt(&key(2), &key(3)), &key(2)).unwrap();
    let e = Evidence {
        receipt: r,
        input: Some(Blob::embed(b"a red fox at dawn".to_vec()).unwrap()),
        output: Some(Blob::Digest(Digest::of(b"\x89PNG..."))),
        trace: Some(TraceBlob::Events(BVec::new(testing::trace()).unwrap())),
        component: None,
        request: Some(testing::signed_request(&key(2), &key(3))),
    };
    assert_golden("evidence.hex", &signed::encode(&e).unwrap());
}

#[test]
fn golden_trace_chain_root() {
    let (root, n) = TraceChain::of(&testing::trace());
    assert_eq!(n, 2);
    assert_golden("trace-root.hex", &root.0);
    assert_eq!(TraceChain::of(&[]).0, Digest::of(b"errand/trace/v1"));
}

/// Every reachability message round-trips, and none is read under wire
/// format version 2, which did not have them; version-2 messages that are
/// still version 3 are read.
#[test]
fn reachability_messages_round_trip_and_are_not_read_as_version_2() {
    use errand_core::reach::{PunchOffer, RelayLimits, RelayRefusal};
    use errand_core::wire::{self, RelayRequest, RelayResponse};
    let requests = [
        wire::Request::Observe,
        wire::Request::Relay(RelayRequest::Reserve),
        wire::Request::Relay(RelayRequest::Connect {
            target: key(1).peer_id(),
        }),
        wire::Request::Relay(RelayRequest::Incoming {
            from: key(2).peer_id(),
            seen: "203.0.113.7:40000".parse().unwrap(),
        }),
        wire::Request::Punch(PunchOffer::new(&["203.0.113.5:40000".parse().unwrap()])),
        wire::Request::Reachability,
    ];
    for r in requests {
        let mut bytes = signed::encode(&r).unwrap();
        assert_eq!(signed::decode::<wire::Request>(&bytes).unwrap(), r);
        assert_eq!(bytes[15], 3);
        bytes[15] = 2;
        assert!(matches!(
            signed::decode::<wire::Request>(&bytes),
            Err(DecodeError::Invalid { .. })
        ));
    }
    let mut ping = signed::encode(&wire::Request::Ping).unwrap();
    ping[15] = 2;
    assert_eq!(
        signed::decode::<wire::Request>(&ping).unwrap(),
        wire::Request::Ping
    );
    let responses = [
        wire::Response::Observed("[2001:db8::1]:4433".parse().unwrap()),
        wire::Response::Relay(RelayResponse::Reserved {
            observed: "203.0.113.5:40000".parse().unwrap(),
            limits: RelayLimits::default(),
        }),
        wire::Response::Relay(RelayResponse::Connected {
            observed: "203.0.113.6:4433".parse().unwrap(),
            limits: RelayLimits::default(),
        }),
        wire::Response::Relay(RelayResponse::Accepted),
        wire::Response::Relay(RelayResponse::Refused(RelayRefusal::Circuits {
            peer: key(3).peer_id(),
            max: 16,
        })),
        wire::Response::Punch(PunchOffer::new(&["10.0.0.2:4433".parse().unwrap()])),
        wire::Response::Reachability(Box::new(testing::reachability_report())),
    ];
    for r in responses {
        let mut bytes = signed::encode(&r).unwrap();
        assert_eq!(signed::decode::<wire::Response>(&bytes).unwrap(), r);
        assert_eq!(bytes[16], 3);
        bytes[16] = 2;
        assert!(matches!(
            signed::decode::<wire::Response>(&bytes),
            Err(DecodeError::Invalid { .. })
        ));
    }
}

// ----------------------------------------------------------------- strategies

fn bstring<const N: usize>(max: usize) -> impl Strategy<Value = BString<N>> {
    proptest::string::string_regex(&format!("[a-z0-9 ]{{1,{}}}", max.min(N)))
        .unwrap()
        .prop_filter("non-blank", |s| !s.trim().is_empty())
        .prop_map(|s| BString::new(s).unwrap())
}

fn name() -> impl Strategy<Value = Name> {
    "[a-z0-9][a-z0-9._/-]{0,63}".prop_map(|s| BString::new(s).unwrap())
}

fn digest() -> impl Strategy<Value = Digest> {
    any::<[u8; 32]>().prop_map(Digest)
}

fn version() -> impl Strategy<Value = Version> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| Version::new(a, b, c))
}

fn media() -> impl Strategy<Value = MediaSpec> {
    (
        prop::sample::select(vec![
            "text/plain",
            "image/png",
            "application/json; charset=utf-8",
        ]),
        prop::option::of(Just(r#"{"type":"object"}"#)),
    )
        .prop_map(|(m, s)| MediaSpec {
            media_type: BString::new(m).unwrap(),
            schema: s.map(|s| BString::new(s).unwrap()),
        })
}

fn arb_descriptor() -> impl Strategy<Value = (u8, Descriptor)> {
    (
        1u8..=255,
        name(),
        version(),
        bstring::<1024>(200),
        prop::collection::vec(bstring::<48>(48), 0..8),
        media(),
        media(),
        (
            prop::option::of(digest()),
            prop::option::of((digest(), 1u8..=255)),
        ),
        (any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        prop::collection::vec(
            (
                // Anything but 240.0.0.0/4, where relay circuits live.
                (0u8..240, any::<[u8; 3]>()).prop_map(|(a, [b, c, d])| [a, b, c, d]),
                1u16..,
                prop::option::of(1u8..=255),
            ),
            0..8,
        ),
        (
            any::<u64>(),
            0u64..u64::MAX / 2,
            MIN_TTL_MS..=MAX_TTL_MS,
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                k,
                name,
                version,
                description,
                intents,
                input,
                output,
                (component, package),
                q,
                t,
                addrs,
                (seq, at, ttl, withdrawn),
            )| {
                let publisher = key(k).peer_id();
                let d = Descriptor {
                    publisher,
                    name,
                    version,
                    description,
                    intents: BVec::new(intents).unwrap(),
                    input,
                    output,
                    component,
                    package: package.map(|(digest, a)| PackageRef {
                        digest,
                        author: key(a).peer_id(),
                    }),
                    qos: Qos {
                        latency_ms: q.0,
                        cost: q.1,
                        fuel: q.2,
                        max_input_bytes: q.3,
                    },
                    tiers: Tiers {
                        canary: t.0,
                        receipts: t.1,
                        replay: t.2,
                    },
                    addrs: BVec::new(
                        addrs
                            .into_iter()
                            .map(|(ip, port, relay)| {
                                let addr = SocketAddr::from((ip, port));
                                match relay {
                                    // A relay other than the publisher.
                                    Some(r) if r != k => NetAddr::Relay {
                                        relay: key(r).peer_id(),
                                        addr,
                                    },
                                    _ => NetAddr::Quic(addr),
                                }
                            })
                            .collect(),
                    )
                    .unwrap(),
                    seq,
                    issued_at: UnixMillis(at),
                    ttl_ms: ttl,
                    withdrawn,
                };
                (k, d)
            },
        )
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Ok),
        bstring::<512>(100).prop_map(|message| Outcome::InvalidInput { message }),
        bstring::<512>(100).prop_map(|message| Outcome::Failed { message }),
        bstring::<512>(100).prop_map(|detail| Outcome::Aborted {
            reason: AbortReason::OutOfFuel,
            detail
        }),
    ]
}

fn arb_receipt() -> impl Strategy<Value = (u8, Receipt)> {
    (
        1u8..=255,
        1u8..=255,
        any::<[u8; 16]>(),
        prop::option::of((name(), version(), any::<u64>())),
        (digest(), digest(), digest(), digest()),
        (
            any::<u64>(),
            prop::collection::btree_map("[a-z]{1,8}", "[ -~]{0,40}", 0..4),
        ),
        outcome(),
        (any::<u64>(), any::<u64>()),
        any::<u32>(),
        (0u64..u64::MAX / 2, 0u64..1_000_000),
        (digest(), any::<[u8; 32]>()),
    )
        .prop_map(
            |(
                e,
                r,
                id,
                cap,
                (component, input, output, root),
                (time, params),
                outcome,
                (a, b),
                events,
                (start, dur),
                (request, seed),
            )| {
                let params = params
                    .into_iter()
                    .map(|(k, v)| Param {
                        key: BString::new(k).unwrap(),
                        value: BString::new(v).unwrap(),
                    })
                    .collect();
                let receipt = Receipt {
                    executor: key(e).peer_id(),
                    requester: key(r).peer_id(),
                    request_id: RequestId(id),
                    request,
                    seed: Seed(seed),
                    capability: cap.map(|(name, version, seq)| CapabilityRef {
                        name,
                        version,
                        seq,
                    }),
                    component,
                    input,
                    context: InvocationContext {
                        time: UnixMillis(time),
                        params: BVec::new(params).unwrap(),
                    },
                    output: if outcome.is_ok() {
                        output
                    } else {
                        Digest::of(b"")
                    },
                    outcome,
                    fuel_limit: a.max(b),
                    fuel_consumed: a.min(b),
                    limits: RunLimits {
                        memory_bytes: a,
                        max_trace_events: events,
                        ..RunLimits::default()
                    },
                    trace_root: root,
                    trace_events: events,
                    started_at: UnixMillis(start),
                    finished_at: UnixMillis(start + dur),
                    platform: Platform {
                        errand: BString::new("0.1.0").unwrap(),
                        wasmtime: BString::new("48.0.8").unwrap(),
                        engine: Digest::of(b"e"),
                    },
                };
                (e, receipt)
            },
        )
}

fn arb_trace() -> impl Strategy<Value = Vec<TraceEvent>> {
    prop::collection::vec(
        (any::<u64>(), "[a-z:/#-]{1,40}", digest(), digest()).prop_map(
            |(fuel, call, args, result)| TraceEvent {
                fuel,
                call: BString::new(call).unwrap(),
                args,
                result,
            },
        ),
        0..20,
    )
}

fn blob() -> impl Strategy<Value = Blob> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256)
            .prop_map(|b| Blob::Bytes(BBytes::new(b).unwrap())),
        digest().prop_map(Blob::Digest),
    ]
}

// ----------------------------------------------------------------- round trips

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn descriptor_round_trips((k, d) in arb_descriptor()) {
        let signed = SignedDescriptor::sign(d, &key(k)).unwrap();
        let bytes = signed.to_bytes();
        let back = SignedDescriptor::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &signed);
        prop_assert_eq!(back.to_bytes(), bytes);
        let json = signed.to_json();
        let from_json = SignedDescriptor::from_json(&json).unwrap();
        prop_assert!(from_json.verify().is_ok());
        prop_assert_eq!(from_json, signed);
    }

    #[test]
    fn authorship_round_trips(
        k in 1u8..=255,
        name in name(),
        version in version(),
        component in digest(),
        manifest in digest(),
    ) {
        let a = Authorship { author: key(k).peer_id(), name, version, component, manifest };
        let signed = SignedAuthorship::sign(a, &key(k)).unwrap();
        let bytes = signed.to_bytes();
        let back = SignedAuthorship::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &signed);
        prop_assert_eq!(back.to_bytes(), bytes);
        let from_json = SignedAuthorship::from_json(&signed.to_json()).unwrap();
        prop_assert!(from_json.verify().is_ok());
        prop_assert_eq!(from_json, signed);
    }

    #[test]
    fn receipt_round_trips((k, r) in arb_receipt()) {
        let signed = SignedReceipt::sign(r, &key(k)).unwrap();
        let bytes = signed.to_bytes();
        let back = SignedReceipt::from_bytes(&bytes).unwrap();
        prop_assert_eq!(&back, &signed);
        let from_json = SignedReceipt::from_json(&signed.to_json()).unwrap();
        prop_assert!(from_json.verify().is_ok());
        prop_assert_eq!(from_json, signed);
    }

    #[test]
    fn evidence_round_trips((k, r) in arb_receipt(), input in prop::option::of(blob()), output in prop::option::of(blob()),
                            component in prop::option::of(blob()), trace in prop::option::of(arb_trace())) {
        let e = Evidence {
            receipt: SignedReceipt::sign(r, &key(k)).unwrap(),
            input, output, component,
            trace: trace.map(|t| TraceBlob::Events(BVec::new(t).unwrap())),
            request: Some(testing::signed_request(&key(k), &key(k))),
        };
        let bytes = signed::encode(&e).unwrap();
        prop_assert_eq!(&signed::decode::<Evidence>(&bytes).unwrap(), &e);
        let json = signed::to_json(&e);
        prop_assert_eq!(signed::from_json::<Evidence>(&json).unwrap(), e);
    }

    #[test]
    fn trace_chain_detects_any_change(trace in arb_trace(), idx in any::<prop::sample::Index>(), fuel in any::<u64>()) {
        prop_assume!(!trace.is_empty());
        let (root, n) = TraceChain::of(&trace);
        let i = idx.index(trace.len());
        let mut changed = trace.clone();
        prop_assume!(changed[i].fuel != fuel);
        changed[i].fuel = fuel;
        prop_assert_ne!(TraceChain::of(&changed).0, root);
        let mut dropped = trace.clone();
        dropped.remove(i);
        prop_assert_ne!(TraceChain::of(&dropped), (root, n));
    }

    #[test]
    fn descriptor_past_expiry_is_rejected((k, d) in arb_descriptor(), late in 0u64..10_000_000) {
        let signed = SignedDescriptor::sign(d, &key(k)).unwrap();
        let d = signed.body();
        let expired_at = d.expires_at();
        let expired = matches!(d.check_fresh(expired_at.plus_ms(late)), Err(Freshness::Expired { .. }));
        prop_assert!(expired);
        prop_assert!(d.check_fresh(d.issued_at).is_ok());
        prop_assert!(d.check_fresh(expired_at.minus_ms(1)).is_ok());
    }

    #[test]
    fn signatures_do_not_cross_kinds((kd, d) in arb_descriptor(), (kr, r) in arb_receipt()) {
        let sd = SignedDescriptor::sign(d, &key(kd)).unwrap();
        let sr = SignedReceipt::sign(r, &key(kr)).unwrap();
        // A descriptor's bytes never open as a receipt, nor the other way round.
        let as_receipt = matches!(SignedReceipt::from_bytes(&sd.to_bytes()),
            Err(OpenError::Decode(DecodeError::WrongKind { expected: Kind::Receipt, found: Kind::Descriptor })));
        prop_assert!(as_receipt);
        let as_descriptor = matches!(SignedDescriptor::from_bytes(&sr.to_bytes()),
            Err(OpenError::Decode(DecodeError::WrongKind { expected: Kind::Descriptor, found: Kind::Receipt })));
        prop_assert!(as_descriptor);
        // A signature by the same key over a descriptor never verifies the
        // receipt's bytes, and the other way round.
        let same_key = SignedDescriptor::sign(Descriptor { publisher: key(kr).peer_id(), addrs: BVec::empty(), ..sd.body().clone() }, &key(kr)).unwrap();
        prop_assert!(key(kr).peer_id().verify(&sr.signed_bytes(), same_key.signature()).is_err());
        prop_assert!(key(kr).peer_id().verify(&same_key.signed_bytes(), sr.signature()).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn every_single_bit_flip_of_a_signed_receipt_fails((k, r) in arb_receipt()) {
        let bytes = SignedReceipt::sign(r, &key(k)).unwrap().to_bytes();
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(SignedReceipt::from_bytes(&flipped).is_err(), "flip of bit {} verified", bit);
        }
    }
}

#[test]
fn every_single_bit_flip_of_the_sample_receipt_fails() {
    let bytes = SignedReceipt::sign(testing::receipt(&key(2), &key(3)), &key(2))
        .unwrap()
        .to_bytes();
    let mut decode_errors = 0;
    let mut signature_errors = 0;
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        match SignedReceipt::from_bytes(&flipped) {
            Ok(_) => panic!("flip of bit {bit} still verifies"),
            Err(OpenError::Decode(_)) => decode_errors += 1,
            Err(OpenError::Signature { .. }) => signature_errors += 1,
        }
    }
    // Both layers do work: structure catches some flips, the signature the rest.
    assert!(
        decode_errors > 0 && signature_errors > 0,
        "{decode_errors} {signature_errors}"
    );
}

// ------------------------------------------------------------ strict decoding

fn sample_receipt_bytes() -> Vec<u8> {
    SignedReceipt::sign(testing::receipt(&key(2), &key(3)), &key(2))
        .unwrap()
        .to_bytes()
}

#[test]
fn decoding_rejects_trailing_bytes() {
    let mut bytes = sample_receipt_bytes();
    bytes.push(0);
    assert_eq!(
        SignedReceipt::decode(&bytes).unwrap_err(),
        DecodeError::TrailingBytes {
            kind: Kind::Receipt,
            count: 1
        }
    );
    let e = signed::encode(&Evidence::of_receipt(
        SignedReceipt::decode(&sample_receipt_bytes()).unwrap(),
    ))
    .unwrap();
    let mut e2 = e.clone();
    e2.extend_from_slice(b"xyz");
    assert_eq!(
        signed::decode::<Evidence>(&e2).unwrap_err(),
        DecodeError::TrailingBytes {
            kind: Kind::Evidence,
            count: 3
        }
    );
}

#[test]
fn decoding_rejects_unknown_versions() {
    let mut bytes = sample_receipt_bytes();
    bytes[15] = 3;
    assert_eq!(
        SignedReceipt::decode(&bytes).unwrap_err(),
        DecodeError::UnsupportedVersion {
            kind: Kind::Receipt,
            found: 3,
            supported: 2,
            oldest: 2,
        }
    );
    // A version-1 receipt (which bound no request) is refused too.
    bytes[15] = 1;
    assert!(matches!(
        SignedReceipt::decode(&bytes).unwrap_err(),
        DecodeError::UnsupportedVersion { found: 1, .. }
    ));
}

#[test]
fn decoding_rejects_truncation_at_every_length() {
    let bytes = sample_receipt_bytes();
    for len in 0..bytes.len() {
        assert!(
            SignedReceipt::decode(&bytes[..len]).is_err(),
            "truncated to {len} decoded"
        );
    }
}

#[test]
fn decoding_rejects_oversized_fields_before_allocating() {
    // Hand-build a descriptor body whose name claims 65 bytes (bound 64).
    let d = testing::descriptor(&key(1));
    let mut bytes = b"\x11errand/descriptor\x02".to_vec();
    bytes.extend_from_slice(&d.publisher.0);
    bytes.push(65);
    bytes.extend(std::iter::repeat_n(b'a', 65));
    match SignedDescriptor::decode(&bytes).unwrap_err() {
        DecodeError::OverBound {
            kind: Kind::Descriptor,
            violation,
        } => {
            assert_eq!(
                (violation.kind, violation.len, violation.max),
                (FieldKind::String, 65, 64)
            );
        }
        e => panic!("unexpected {e:?}"),
    }
    // A list claiming four billion intents with nothing behind it.
    let mut bytes = b"\x11errand/descriptor\x02".to_vec();
    bytes.extend_from_slice(&d.publisher.0);
    bytes.extend_from_slice(&[1, b'x', 1, 2, 3, 1, b'y', 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert!(SignedDescriptor::decode(&bytes).is_err());
}

#[test]
fn decoding_rejects_non_canonical_varints() {
    // The sample descriptor's seq (7) is one byte; spell it as an overlong
    // two-byte varint and re-sign, so only canonicality is wrong.
    let k = key(1);
    let d = testing::descriptor(&k);
    let canonical = signed::encode(&d).unwrap();
    let body = postcard::to_allocvec(&d).unwrap();
    let tail = postcard::to_allocvec(&(d.seq, d.issued_at, d.ttl_ms, d.withdrawn)).unwrap();
    assert_eq!(tail[0], 7);
    let at = canonical.len() - tail.len();
    let mut overlong = canonical[..at].to_vec();
    overlong.extend_from_slice(&[0x87, 0x00]);
    overlong.extend_from_slice(&tail[1..]);
    let sig = k.sign(&overlong);
    overlong.extend_from_slice(&sig.0);
    assert_eq!(body.len() + 19, canonical.len());
    assert_eq!(
        SignedDescriptor::decode(&overlong).unwrap_err(),
        DecodeError::NonCanonical {
            kind: Kind::Descriptor
        }
    );
}

#[test]
fn decoding_rejects_semantically_invalid_objects_even_when_signed() {
    let k = key(1);
    let mut d = testing::descriptor(&k);
    d.ttl_ms = 100;
    // Signing refuses it...
    assert!(SignedDescriptor::sign(d.clone(), &k).is_err());
    // ...and so does decoding, when someone signs it by hand.
    let mut bytes = b"\x11errand/descriptor\x02".to_vec();
    bytes.extend(postcard::to_allocvec(&d).unwrap());
    let sig = k.sign(&bytes);
    bytes.extend_from_slice(&sig.0);
    assert!(matches!(
        SignedDescriptor::decode(&bytes).unwrap_err(),
        DecodeError::Invalid { kind: Kind::Descriptor, invalid } if invalid.field == "ttl_ms"
    ));
}

/// Regression (issue 11): the encoding keeps an IPv6 address and port
/// only, so a descriptor address with a scope id (or flow info) was signed
/// in memory as one thing and decoded by every reader as another. Such an
/// address is refused, with an error naming it.
#[test]
fn a_descriptor_address_with_an_ipv6_scope_id_is_refused() {
    use std::net::{Ipv6Addr, SocketAddrV6};
    let k = key(1);
    let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
    let scoped = SocketAddr::V6(SocketAddrV6::new(link_local, 4433, 0, 3));
    let flowing = SocketAddr::V6(SocketAddrV6::new(
        "2001:db8::7".parse().unwrap(),
        4433,
        0x12345,
        0,
    ));
    assert_eq!(
        check_addr(&scoped),
        Err(AddrError::ScopeId {
            addr: scoped,
            scope_id: 3
        })
    );
    assert_eq!(
        check_addr(&flowing),
        Err(AddrError::FlowInfo {
            addr: flowing,
            flowinfo: 0x12345
        })
    );
    assert_eq!(check_addr(&"[2001:db8::7]:4433".parse().unwrap()), Ok(()));
    for bad in [scoped, flowing] {
        let mut d = testing::descriptor(&k);
        d.addrs = BVec::new(vec![NetAddr::Quic(bad)]).unwrap();
        // What the encoding would have made of it: another address.
        let lossy: SocketAddr =
            postcard::from_bytes(&postcard::to_allocvec(&bad).unwrap()).unwrap();
        assert_ne!(lossy, bad);
        match SignedDescriptor::sign(d, &k).unwrap_err() {
            signed::EncodeError::Invalid { kind, invalid } => {
                assert_eq!(kind, Kind::Descriptor);
                assert_eq!(invalid.field, "addrs");
                assert!(invalid.problem.contains(&bad.to_string()), "{invalid}");
            }
            e => panic!("{e:?}"),
        }
    }
}

/// Regression (issue 13 review): a descriptor could name an address in
/// 240.0.0.0/4, where relay circuits live, and a requester that dialled it
/// sent its QUIC Initial into an unrelated live circuit. Such an address
/// is refused when signing and when reading, in either IP form, with an
/// error naming it; an address next to the range is still fine.
#[test]
fn descriptors_cannot_name_circuit_addresses() {
    let k = key(1);
    let circuit: SocketAddr = "240.0.0.1:1".parse().unwrap();
    let mapped: SocketAddr = "[::ffff:240.0.0.7]:4433".parse().unwrap();
    let top: SocketAddr = "255.255.255.254:4433".parse().unwrap();
    for bad in [circuit, mapped, top] {
        assert_eq!(check_addr(&bad), Err(AddrError::Circuit { addr: bad }));
        assert!(
            check_addr(&bad)
                .unwrap_err()
                .to_string()
                .contains("240.0.0.0/4"),
            "{bad}"
        );
        for path in [
            NetAddr::Quic(bad),
            NetAddr::Relay {
                relay: key(2).peer_id(),
                addr: bad,
            },
        ] {
            let mut d = testing::descriptor(&k);
            d.addrs = BVec::new(vec![path]).unwrap();
            match SignedDescriptor::sign(d, &k).unwrap_err() {
                signed::EncodeError::Invalid { invalid, .. } => {
                    assert_eq!(invalid.field, "addrs");
                    assert!(invalid.problem.contains(&bad.to_string()), "{invalid}");
                }
                e => panic!("{e:?}"),
            }
        }
    }
    assert_eq!(check_addr(&"239.255.255.255:4433".parse().unwrap()), Ok(()));
    // A reader refuses one too: a descriptor signed with an address that
    // is then changed to a circuit address (as an older publisher could
    // have signed it) does not decode.
    let mut d = testing::descriptor(&k);
    d.addrs = BVec::new(vec![NetAddr::Quic("198.51.100.77:4433".parse().unwrap())]).unwrap();
    let mut bytes = SignedDescriptor::sign(d, &k).unwrap().to_bytes();
    let at = bytes
        .windows(4)
        .position(|w| w == [198, 51, 100, 77])
        .unwrap();
    bytes[at..at + 4].copy_from_slice(&[240, 0, 0, 1]);
    match SignedDescriptor::decode(&bytes).unwrap_err() {
        DecodeError::Invalid { invalid, .. } => {
            assert_eq!(invalid.field, "addrs");
            assert!(invalid.problem.contains("240.0.0.1:4433"), "{invalid}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn sniff_names_the_kind_of_a_file() {
    assert_eq!(
        signed::sniff(&sample_receipt_bytes()).unwrap(),
        (Kind::Receipt, 2)
    );
    assert_eq!(signed::sniff(b"").unwrap_err(), DecodeError::Empty);
    assert_eq!(
        signed::sniff(b"\x89PNG\r\n").unwrap_err(),
        DecodeError::NotErrand
    );
}

#[test]
fn signing_with_the_wrong_key_is_refused() {
    let d = testing::descriptor(&key(1));
    assert!(matches!(
        SignedDescriptor::sign(d, &key(2)).unwrap_err(),
        signed::EncodeError::WrongSigner { .. }
    ));
}

// ---------------------------------------------------------------- evidence

fn sample_evidence() -> (Evidence, Vec<u8>, Vec<u8>, Vec<u8>) {
    let component = b"\0asm fake component".to_vec();
    let input = b"a red fox at dawn".to_vec();
    let output = b"\x89PNG fox".to_vec();
    let trace = testing::trace();
    let (root, n) = TraceChain::of(&trace);
    let mut r = testing::receipt(&key(2), &key(3));
    r.component = Digest::of(&component);
    r.input = Digest::of(&input);
    r.output = Digest::of(&output);
    r.trace_root = root;
    r.trace_events = n;
    let mut q = testing::request(&key(2), &key(3));
    q.component = Some(r.component);
    q.input = r.input;
    let q = SignedRequest::sign(q, &key(3)).unwrap();
    r.request = q.digest();
    let e = Evidence {
        receipt: SignedReceipt::sign(r, &key(2)).unwrap(),
        input: Some(Blob::embed(input.clone()).unwrap()),
        output: None,
        trace: Some(TraceBlob::Events(BVec::new(trace).unwrap())),
        component: None,
        request: Some(q),
    };
    (e, component, input, output)
}

#[test]
fn verify_passes_every_check_with_matching_material() {
    let (e, component, _input, output) = sample_evidence();
    let report = evidence::verify(
        &e,
        &Supplied {
            component: Some(&component),
            output: Some(&output),
            executor: Some(key(2).peer_id()),
            ..Default::default()
        },
    );
    assert!(report.verified(), "{report:#?}");
    let names: Vec<_> = report.checks.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        [
            "format",
            "signature",
            "executor",
            "request",
            "component",
            "input",
            "output",
            "trace"
        ]
    );
    assert!(
        report
            .checks
            .iter()
            .all(|c| matches!(c.verdict, Verdict::Pass(_)))
    );
}

#[test]
fn verify_names_the_failing_check() {
    let (e, component, _input, output) = sample_evidence();
    let wrong_exec: PeerId = key(9).peer_id();
    let cases: Vec<(&str, Supplied<'_>)> = vec![
        (
            "executor",
            Supplied {
                executor: Some(wrong_exec),
                ..Default::default()
            },
        ),
        (
            "component",
            Supplied {
                component: Some(b"other"),
                ..Default::default()
            },
        ),
        (
            "output",
            Supplied {
                output: Some(&component),
                ..Default::default()
            },
        ),
        (
            "input",
            Supplied {
                input: Some(&output),
                ..Default::default()
            },
        ),
    ];
    for (name, supplied) in cases {
        let report = evidence::verify(&e, &supplied);
        assert!(!report.verified());
        assert_eq!(report.first_failure().unwrap().name, name);
    }
    // A trace with one event altered.
    let mut e2 = e.clone();
    if let Some(TraceBlob::Events(ev)) = &mut e2.trace {
        let mut v = ev.clone().into_vec();
        v[0].fuel += 1;
        *ev = BVec::new(v).unwrap();
    }
    assert_eq!(
        evidence::verify(&e2, &Supplied::default())
            .first_failure()
            .unwrap()
            .name,
        "trace"
    );
}

#[test]
fn batch_verification_accepts_good_batches_and_names_a_bad_item() {
    let receipts: Vec<SignedReceipt> = (0..50u8)
        .map(|i| {
            let mut r = testing::receipt(&key(i % 5 + 1), &key(200));
            r.request_id = RequestId([i; 16]);
            SignedReceipt::sign(r, &key(i % 5 + 1)).unwrap()
        })
        .collect();
    let refs: Vec<&SignedReceipt> = receipts.iter().collect();
    signed::verify_batch(&refs).unwrap();
    // Forge item 17: same body, another executor's signature.
    let mut bytes = receipts[17].to_bytes();
    let n = bytes.len();
    bytes[n - 64..].copy_from_slice(&receipts[18].signature().0);
    let forged = SignedReceipt::decode(&bytes).unwrap();
    let mut refs = refs;
    refs[17] = &forged;
    assert_eq!(signed::verify_batch(&refs).unwrap_err().index, 17);
    assert!(signed::verify_batch::<Receipt>(&[]).is_ok());
}

#[test]
fn json_rendering_uses_text_forms() {
    let r = SignedReceipt::sign(testing::receipt(&key(2), &key(3)), &key(2)).unwrap();
    let json = r.to_json();
    assert_eq!(json["kind"], "errand/receipt");
    assert_eq!(json["body"]["executor"], key(2).peer_id().to_string());
    assert_eq!(
        json["body"]["input"],
        Digest::of(b"a red fox at dawn").to_string()
    );
    assert_eq!(json["body"]["outcome"], "ok");
    assert_eq!(json["signature"].as_str().unwrap().len(), 128);
    assert_eq!(json["body"]["context"]["time"], SAMPLE_TIME.0);
}

#[test]
fn json_of_another_kind_is_refused() {
    let d = SignedDescriptor::sign(testing::descriptor(&key(1)), &key(1)).unwrap();
    assert!(matches!(
        SignedReceipt::from_json(&d.to_json()),
        Err(signed::JsonError::WrongKind { .. } | signed::JsonError::Syntax(_))
    ));
}

#[test]
fn receipt_with_an_off_curve_requester_round_trips_through_json() {
    // Found by fuzzing decode_receipt: binary decoding accepts any 32 bytes
    // as a peer id, so text parsing must too, or the JSON rendering of a
    // decodable receipt would not parse back.
    let mut r = testing::receipt(&key(2), &key(3));
    r.requester = "errand1syuhwr4g05t4744r23nvxnqqqqqqqqqqqxpn0gja7c84hr7fkw2qds3rxs"
        .parse()
        .unwrap();
    assert!(r.requester.verifying_key().is_err());
    let s = SignedReceipt::sign(r, &key(2)).unwrap();
    let back = SignedReceipt::from_json(&s.to_json()).unwrap();
    assert_eq!(back.to_bytes(), s.to_bytes());
}

// ---------------------------------------------------------------- discovery

mod discovery {
    use super::*;
    use errand_core::discovery::{Index, Ranking, RegistryLimits, merge};
    use errand_core::wire::{PublishOutcome, Query};
    use std::sync::Arc;

    const NOW: UnixMillis = SAMPLE_TIME;

    fn desc(k: u8, name: &str, description: &str, intents: &[&str], seq: u64) -> SignedDescriptor {
        let mut d = testing::descriptor(&key(k));
        d.name = BString::new(name).unwrap();
        d.description = BString::new(description).unwrap();
        d.intents = BVec::new(intents.iter().map(|i| BString::new(*i).unwrap()).collect()).unwrap();
        d.seq = seq;
        d.issued_at = NOW;
        SignedDescriptor::sign(d, &key(k)).unwrap()
    }

    fn names(c: &[errand_core::discovery::Candidate]) -> Vec<String> {
        c.iter()
            .map(|c| c.descriptor.body().name.to_string())
            .collect()
    }

    fn index() -> Index {
        Index::new(RegistryLimits::default())
    }

    #[test]
    fn ranks_by_relevance_not_substring() {
        let mut ix = index();
        ix.publish(
            desc(
                1,
                "imagegen",
                "Generates a PNG picture from a text prompt",
                &["text to image", "generate image"],
                1,
            ),
            NOW,
        );
        ix.publish(
            desc(
                2,
                "thumbnail",
                "Resizes an image to a thumbnail",
                &["resize image"],
                1,
            ),
            NOW,
        );
        ix.publish(
            desc(
                3,
                "markdown",
                "Converts Markdown to HTML",
                &["render markdown"],
                1,
            ),
            NOW,
        );
        ix.publish(
            desc(4, "text-stats", "Counts words in text", &["word count"], 1),
            NOW,
        );
        let r = ix.query(&Query::intent("generate an image from my prompt", 10), NOW);
        assert_eq!(names(&r)[0], "imagegen");
        assert!(
            names(&r).contains(&"thumbnail".to_string()),
            "image also matches thumbnail"
        );
        assert!(!names(&r).contains(&"markdown".to_string()));
        // Word forms meet through stemming.
        let r = ix.query(&Query::intent("image generation", 10), NOW);
        assert_eq!(names(&r)[0], "imagegen");
        // Substrings do not: "age" is not "image".
        assert!(ix.query(&Query::intent("age", 10), NOW).is_empty());
        assert_eq!(
            names(&ix.query(&Query::intent("resizing pictures", 10), NOW))[0],
            "thumbnail"
        );
    }

    #[test]
    fn qos_breaks_ties_among_equal_matches() {
        let mut ix = index();
        let mut fast = testing::descriptor(&key(1));
        fast.qos.latency_ms = 10;
        let mut slow = testing::descriptor(&key(2));
        slow.qos.latency_ms = 2_000;
        ix.publish(SignedDescriptor::sign(slow, &key(2)).unwrap(), NOW);
        ix.publish(SignedDescriptor::sign(fast, &key(1)).unwrap(), NOW);
        let r = ix.query(&Query::intent("generate image", 10), NOW);
        assert_eq!(r[0].descriptor.body().publisher, key(1).peer_id());
        assert!(r[0].score > r[1].score);
    }

    #[test]
    fn constraints_filter() {
        let mut ix = index();
        let mut d = testing::descriptor(&key(1));
        d.qos.latency_ms = 500;
        d.qos.cost = 9;
        d.tiers.replay = false;
        ix.publish(SignedDescriptor::sign(d, &key(1)).unwrap(), NOW);
        let q = |f: &dyn Fn(&mut Query)| {
            let mut q = Query::intent("generate image", 10);
            f(&mut q);
            ix.query(&q, NOW).len()
        };
        assert_eq!(q(&|_| {}), 1);
        assert_eq!(q(&|q| q.max_latency_ms = Some(100)), 0);
        assert_eq!(q(&|q| q.max_cost = Some(5)), 0);
        assert_eq!(q(&|q| q.tiers.replay = true), 0);
        assert_eq!(q(&|q| q.tiers.canary = true), 1);
        assert_eq!(
            q(&|q| q.output = Some(BString::new("image/png").unwrap())),
            1
        );
        assert_eq!(
            q(&|q| q.output = Some(BString::new("text/html").unwrap())),
            0
        );
        assert_eq!(
            q(&|q| q.input = Some(BString::new("TEXT/PLAIN").unwrap())),
            1,
            "media types ignore case and parameters"
        );
        assert_eq!(q(&|q| q.version = Some(Version::new(1, 0, 0))), 1);
        assert_eq!(q(&|q| q.version = Some(Version::new(1, 3, 0))), 0);
        assert_eq!(q(&|q| q.version = Some(Version::new(2, 0, 0))), 0);
        // Name only, no intent words.
        let mut by_name = Query::intent("", 10);
        by_name.name = Some(BString::new("imagegen").unwrap());
        assert_eq!(ix.query(&by_name, NOW).len(), 1);
    }

    #[test]
    fn sequence_numbers_replace_and_stale_ones_are_refused() {
        let mut ix = index();
        assert_eq!(
            ix.publish(desc(1, "t", "old words", &[], 5), NOW),
            PublishOutcome::Accepted
        );
        assert_eq!(
            ix.publish(desc(1, "t", "older", &[], 4), NOW),
            PublishOutcome::Stale { held: 5 }
        );
        assert_eq!(
            ix.publish(desc(1, "t", "same seq", &[], 5), NOW),
            PublishOutcome::Stale { held: 5 }
        );
        assert_eq!(
            ix.publish(desc(1, "t", "fresh words", &[], 6), NOW),
            PublishOutcome::Accepted
        );
        assert!(
            ix.query(&Query::intent("old", 10), NOW).is_empty(),
            "replaced text is unindexed"
        );
        assert_eq!(ix.query(&Query::intent("fresh", 10), NOW).len(), 1);
        assert_eq!(ix.len(), 1);
    }

    #[test]
    fn forged_and_expired_descriptors_are_refused() {
        let mut ix = index();
        let good = desc(1, "t", "x", &[], 1);
        let mut bytes = good.to_bytes();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        let forged = SignedDescriptor::decode(&bytes).unwrap();
        assert_eq!(ix.publish(forged, NOW), PublishOutcome::BadSignature);
        let late = NOW.plus_ms(u64::from(DEFAULT_TTL_MS));
        assert_eq!(ix.publish(good, late), PublishOutcome::Expired);
        assert!(ix.is_empty());
    }

    #[test]
    fn unrefreshed_entries_expire_after_their_ttl() {
        let mut ix = index();
        ix.publish(desc(1, "a", "alpha tool", &[], 1), NOW);
        ix.publish(desc(2, "b", "alpha tool", &[], 1), NOW);
        // b is refreshed half-way through its TTL.
        let mut b2 = testing::descriptor(&key(2));
        (b2.name, b2.description, b2.intents, b2.seq) = (
            BString::new("b").unwrap(),
            BString::new("alpha tool").unwrap(),
            BVec::empty(),
            2,
        );
        b2.issued_at = NOW.plus_ms(7_000);
        let b2 = SignedDescriptor::sign(b2, &key(2)).unwrap();
        assert_eq!(ix.publish(b2, NOW.plus_ms(7_000)), PublishOutcome::Accepted);
        let t = NOW.plus_ms(u64::from(DEFAULT_TTL_MS));
        // Even before expire() runs, queries never return expired entries.
        assert_eq!(names(&ix.query(&Query::intent("alpha", 10), t)), vec!["b"]);
        assert_eq!(ix.expire(t), 1);
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.expire(t.plus_ms(7_000)), 1);
        assert!(ix.is_empty());
    }

    /// A refresh normally moves an entry's expiry later, which the index
    /// applies in place; one that moves it earlier (a shorter TTL) must
    /// still expire at the earlier time.
    #[test]
    fn a_refresh_with_a_shorter_ttl_expires_at_the_shorter_time() {
        let mut ix = index();
        ix.publish(desc(1, "a", "alpha tool", &[], 1), NOW);
        let mut a2 = testing::descriptor(&key(1));
        (a2.name, a2.description, a2.intents, a2.seq, a2.ttl_ms) = (
            BString::new("a").unwrap(),
            BString::new("alpha tool").unwrap(),
            BVec::empty(),
            2,
            2_000,
        );
        a2.issued_at = NOW.plus_ms(1_000);
        let a2 = SignedDescriptor::sign(a2, &key(1)).unwrap();
        assert_eq!(ix.publish(a2, NOW.plus_ms(1_000)), PublishOutcome::Accepted);
        assert_eq!(ix.expire(NOW.plus_ms(2_999)), 0);
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.expire(NOW.plus_ms(3_000)), 1);
        assert!(ix.is_empty());
    }

    /// Many refreshes of one entry, then its expiry: it goes exactly when
    /// its last refresh's TTL ends, not at an earlier refresh's.
    #[test]
    fn an_entry_refreshed_many_times_expires_with_its_last_refresh() {
        let mut ix = index();
        ix.publish(desc(1, "a", "alpha tool", &[], 1), NOW);
        let ttl = u64::from(DEFAULT_TTL_MS);
        for seq in 2..=20u64 {
            let mut d = testing::descriptor(&key(1));
            (d.name, d.description, d.intents, d.seq) = (
                BString::new("a").unwrap(),
                BString::new("alpha tool").unwrap(),
                BVec::empty(),
                seq,
            );
            let at = NOW.plus_ms((seq - 1) * 1_000);
            d.issued_at = at;
            let d = SignedDescriptor::sign(d, &key(1)).unwrap();
            assert_eq!(ix.publish(d, at), PublishOutcome::Accepted);
            assert_eq!(ix.expire(at), 0, "seq {seq}");
        }
        let last = NOW.plus_ms(19_000 + ttl);
        assert_eq!(ix.expire(NOW.plus_ms(ttl)), 0);
        assert_eq!(ix.expire(UnixMillis(last.0 - 1)), 0);
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.expire(last), 1);
        assert!(ix.is_empty());
    }

    #[test]
    fn withdrawal_removes_at_once_and_blocks_older_copies() {
        let mut ix = index();
        ix.publish(desc(1, "t", "withdrawable tool", &[], 1), NOW);
        let mut w = testing::descriptor(&key(1));
        (w.name, w.seq, w.withdrawn) = (BString::new("t").unwrap(), 2, true);
        assert_eq!(
            ix.publish(SignedDescriptor::sign(w, &key(1)).unwrap(), NOW),
            PublishOutcome::Withdrawn
        );
        assert!(ix.query(&Query::intent("withdrawable", 10), NOW).is_empty());
        assert_eq!(ix.len(), 0);
        assert_eq!(
            ix.publish(desc(1, "t", "withdrawable tool", &[], 1), NOW),
            PublishOutcome::Stale { held: 2 }
        );
    }

    #[test]
    fn quotas_limit_count_and_rate_per_publisher() {
        let mut ix = Index::new(RegistryLimits {
            max_per_publisher: 3,
            publish_rate: 1.0,
            publish_burst: 5.0,
            ..RegistryLimits::default()
        });
        for i in 0..3 {
            assert_eq!(
                ix.publish(desc(1, &format!("t{i}"), "x", &[], 1), NOW),
                PublishOutcome::Accepted
            );
        }
        assert!(matches!(
            ix.publish(desc(1, "t3", "x", &[], 1), NOW),
            PublishOutcome::OverQuota(_)
        ));
        // Another publisher is unaffected.
        assert_eq!(
            ix.publish(desc(2, "t3", "x", &[], 1), NOW),
            PublishOutcome::Accepted
        );
        // Rate: publisher 1 has used 4 of its 5-token burst.
        assert_eq!(
            ix.publish(desc(1, "t0", "x", &[], 2), NOW),
            PublishOutcome::Accepted
        );
        assert!(matches!(
            ix.publish(desc(1, "t0", "x", &[], 3), NOW),
            PublishOutcome::OverQuota(_)
        ));
        assert_eq!(
            ix.publish(desc(1, "t0", "x", &[], 3), NOW.plus_ms(1_000)),
            PublishOutcome::Accepted
        );
    }

    #[test]
    fn merge_dedupes_by_publisher_and_name_keeping_the_highest_seq() {
        let a = vec![desc(1, "x", "d", &[], 3), desc(2, "y", "d", &[], 1)];
        let b = vec![
            desc(2, "y", "d", &[], 9),
            desc(1, "x", "d", &[], 2),
            desc(3, "z", "d", &[], 1),
        ];
        let m = merge(vec![a, b]);
        let got: Vec<(String, u64)> = m
            .iter()
            .map(|d| (d.body().name.to_string(), d.body().seq))
            .collect();
        assert_eq!(got, vec![("x".into(), 3), ("y".into(), 9), ("z".into(), 1)]);
    }

    #[test]
    fn merge_dedupes_a_single_registrys_repeated_entries() {
        // A misbehaving registry repeats a candidate; the requester must not
        // try the same executor twice as if it were a fallback.
        let one = vec![
            desc(1, "x", "d", &[], 1),
            desc(1, "x", "d", &[], 4),
            desc(2, "y", "d", &[], 1),
        ];
        let got: Vec<(String, u64)> = merge(vec![one])
            .iter()
            .map(|d| (d.body().name.to_string(), d.body().seq))
            .collect();
        assert_eq!(got, vec![("x".into(), 4), ("y".into(), 1)]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Publish {
            k: u8,
            name: u8,
            words: Vec<u8>,
            withdrawn: bool,
        },
        Advance(u64),
        Expire,
    }

    const WORDS: [&str; 8] = [
        "image",
        "text",
        "audio",
        "resize",
        "count",
        "render",
        "publish",
        "translate",
    ];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1u8..5, 0u8..4, prop::collection::vec(0u8..8, 1..4), prop::bool::weighted(0.1))
                .prop_map(|(k, name, words, withdrawn)| Op::Publish { k, name, words, withdrawn }),
            2 => (0u64..8_000).prop_map(Op::Advance),
            1 => Just(Op::Expire),
        ]
    }

    /// The obvious merge, kept as the model the real one must agree with.
    fn merge_model(answers: &[Vec<SignedDescriptor>]) -> Vec<(u8, String, u64)> {
        let mut out: Vec<&SignedDescriptor> = Vec::new();
        let longest = answers.iter().map(Vec::len).max().unwrap_or(0);
        for rank in 0..longest {
            for d in answers.iter().filter_map(|l| l.get(rank)) {
                let b = d.body();
                match out
                    .iter()
                    .position(|o| o.body().publisher == b.publisher && o.body().name == b.name)
                {
                    Some(i) if b.seq > out[i].body().seq => out[i] = d,
                    Some(_) => {}
                    None => out.push(d),
                }
            }
        }
        out.iter().map(|d| summary(d)).collect()
    }

    fn summary(d: &SignedDescriptor) -> (u8, String, u64) {
        let k = (0..4u8)
            .find(|k| key(*k).peer_id() == d.body().publisher)
            .unwrap_or(u8::MAX);
        (k, d.body().name.to_string(), d.body().seq)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Merging several registries' answers agrees with the obvious
        /// model: first-seen order by rank, one per (publisher, name), the
        /// highest seq winning and the earliest winning a tie.
        #[test]
        fn merge_matches_the_model(
            answers in prop::collection::vec(
                prop::collection::vec((0..4u8, 0..3u8, 0..4u64), 0..10),
                0..4,
            )
        ) {
            let answers: Vec<Vec<SignedDescriptor>> = answers
                .iter()
                .map(|l| {
                    l.iter()
                        .map(|(k, n, seq)| desc(*k, &format!("n{n}"), "d", &[], *seq))
                        .collect()
                })
                .collect();
            let want = merge_model(&answers);
            let got: Vec<_> = merge(answers).iter().map(summary).collect();
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// The index agrees with a brute-force model: after any sequence of
        /// publications, refreshes, withdrawals and expiries, a query for a
        /// word returns exactly the live, newest, non-withdrawn descriptors
        /// containing it, and with a name constraint exactly those of that
        /// name; under either ranking.
        #[test]
        fn index_matches_a_brute_force_model(ops in prop::collection::vec(op(), 1..60), sampled in any::<bool>()) {
            let ranking = if sampled { Ranking::Sampled { seed: 7 } } else { Ranking::Relevance };
            let mut ix = Index::with_ranking(RegistryLimits::default(), ranking);
            // (publisher, name) -> (seq, words, withdrawn, expires)
            type Model = std::collections::HashMap<(u8, u8), (u64, Vec<u8>, bool, UnixMillis)>;
            let mut model = Model::default();
            let mut now = NOW;
            let mut seq = 0u64;
            for o in ops {
                match o {
                    Op::Publish { k, name, words, withdrawn } => {
                        seq += 1;
                        let mut d = testing::descriptor(&key(k));
                        d.name = BString::new(format!("tool{name}")).unwrap();
                        d.description = BString::new(words.iter().map(|w| WORDS[*w as usize]).collect::<Vec<_>>().join(" ")).unwrap();
                        d.intents = BVec::empty();
                        d.seq = seq;
                        d.issued_at = now;
                        d.withdrawn = withdrawn;
                        let expires = d.expires_at();
                        let out = ix.publish(SignedDescriptor::sign(d, &key(k)).unwrap(), now);
                        prop_assert!(matches!(out, PublishOutcome::Accepted | PublishOutcome::Withdrawn), "{:?}", out);
                        model.insert((k, name), (seq, words, withdrawn, expires));
                    }
                    Op::Advance(ms) => now = now.plus_ms(ms),
                    Op::Expire => { ix.expire(now); }
                }
                for (w, word) in WORDS.iter().enumerate() {
                    let got: std::collections::BTreeSet<(PeerId, String)> = ix
                        .query(&Query::intent(word, 100), now)
                        .iter()
                        .map(|c| (c.descriptor.body().publisher, c.descriptor.body().name.to_string()))
                        .collect();
                    let want: std::collections::BTreeSet<(PeerId, String)> = model
                        .iter()
                        .filter(|(_, (_, words, withdrawn, exp))| !withdrawn && *exp > now && words.contains(&(w as u8)))
                        .map(|((k, name), _)| (key(*k).peer_id(), format!("tool{name}")))
                        .collect();
                    for name in 0u8..4 {
                        let mut q = Query::intent(word, 100);
                        q.name = Some(BString::new(format!("tool{name}")).unwrap());
                        let named: std::collections::BTreeSet<(PeerId, String)> = ix
                            .query(&q, now)
                            .iter()
                            .map(|c| (c.descriptor.body().publisher, c.descriptor.body().name.to_string()))
                            .collect();
                        let want_named: std::collections::BTreeSet<(PeerId, String)> =
                            want.iter().filter(|(_, n)| *n == format!("tool{name}")).cloned().collect();
                        prop_assert_eq!(named, want_named, "word {} name {} at {}", word, name, now.0);
                    }
                    prop_assert_eq!(got, want, "word {} at {}", word, now.0);
                }
            }
        }
    }

    /// One honest provider and twenty Sybils whose descriptors repeat the
    /// popular words and claim 1 ms at no cost.
    fn poisoned(ranking: Ranking) -> Index {
        let mut ix = Index::with_ranking(RegistryLimits::default(), ranking);
        let mut honest = testing::descriptor(&key(1));
        honest.qos.latency_ms = 300;
        honest.qos.cost = 5;
        ix.publish(SignedDescriptor::sign(honest, &key(1)).unwrap(), NOW);
        for k in 2..22u8 {
            let mut d = testing::descriptor(&key(k));
            d.description =
                BString::new("generate image generate image generate image fast best").unwrap();
            d.intents = BVec::new(vec![BString::new("generate image").unwrap(); 4]).unwrap();
            d.qos.latency_ms = 1;
            d.qos.cost = 0;
            ix.publish(SignedDescriptor::sign(d, &key(k)).unwrap(), NOW);
        }
        ix
    }

    #[test]
    fn sampled_ranking_gives_stuffed_descriptors_no_edge() {
        let honest = key(1).peer_id();
        let q = Query::intent("generate image", 5);
        let seen = |ix: &Index| {
            (0..400)
                .filter(|_| {
                    ix.query(&q, NOW)
                        .iter()
                        .any(|c| c.descriptor.body().publisher == honest)
                })
                .count()
        };
        // Ranked by declared relevance and QoS, the Sybils fill every answer.
        assert_eq!(seen(&poisoned(Ranking::Relevance)), 0);
        // Constrained to the name too (a walk over that name's entries that
        // stops early under `Sampled`).
        let mut named = q.clone();
        named.name = Some(BString::new("imagegen").unwrap());
        let ix = poisoned(Ranking::Sampled { seed: 5 });
        let n = (0..400)
            .filter(|_| {
                ix.query(&named, NOW)
                    .iter()
                    .any(|c| c.descriptor.body().publisher == honest)
            })
            .count();
        assert!(
            (60..=135).contains(&n),
            "named: honest provider in {n} of 400 answers"
        );
        // Sampled, the honest provider is in a fair share of answers: 5 of
        // 21 places, so about 95 of 400.
        let n = seen(&poisoned(Ranking::Sampled { seed: 42 }));
        assert!(
            (60..=135).contains(&n),
            "honest provider in {n} of 400 answers"
        );
        // And first in about 1 in 21.
        let ix = poisoned(Ranking::Sampled { seed: 9 });
        let first = (0..2_100)
            .filter(|_| ix.query(&q, NOW)[0].descriptor.body().publisher == honest)
            .count();
        assert!(
            (50..=160).contains(&first),
            "honest provider first in {first} of 2100"
        );
    }

    #[test]
    fn sampled_ranking_still_puts_better_matches_first() {
        let mut ix = Index::with_ranking(RegistryLimits::default(), Ranking::Sampled { seed: 1 });
        ix.publish(
            desc(
                1,
                "thumbnail",
                "Resizes an image to a thumbnail",
                &["resize image"],
                1,
            ),
            NOW,
        );
        ix.publish(
            desc(
                2,
                "imagegen",
                "Generates a picture from a text prompt",
                &["generate image"],
                1,
            ),
            NOW,
        );
        for _ in 0..50 {
            let r = ix.query(&Query::intent("generate an image", 10), NOW);
            assert_eq!(names(&r), vec!["imagegen", "thumbnail"]);
        }
    }

    #[test]
    fn sampled_named_queries_stop_early_only_on_full_matches() {
        let mut ix = Index::with_ranking(RegistryLimits::default(), Ranking::Sampled { seed: 11 });
        for k in 1..=30u8 {
            let text = if k <= 10 { "generate image" } else { "image" };
            ix.publish(desc(k, "x", text, &[], 1), NOW);
        }
        let mut q = Query::intent("generate image", 5);
        q.name = Some(BString::new("x").unwrap());
        let full = |c: &errand_core::discovery::Candidate| {
            c.descriptor.body().description.as_str() == "generate image"
        };
        for _ in 0..50 {
            let r = ix.query(&q, NOW);
            assert_eq!(r.len(), 5);
            assert!(r.iter().all(full));
        }
        // Asking for more than there are full matches: all ten, then the rest.
        q.limit = 15;
        for _ in 0..20 {
            let r = ix.query(&q, NOW);
            assert_eq!(r.len(), 15);
            assert!(r[..10].iter().all(full) && !r[10..].iter().any(full));
        }
        // Every full match turns up first now and then.
        q.limit = 1;
        let firsts: std::collections::HashSet<PeerId> = (0..400)
            .map(|_| ix.query(&q, NOW)[0].descriptor.body().publisher)
            .collect();
        assert_eq!(firsts.len(), 10);
    }

    #[test]
    fn sampled_orders_are_deterministic_given_the_seed() {
        let q = Query::intent("generate image", 5);
        let run = |seed| {
            let ix = poisoned(Ranking::Sampled { seed });
            (0..20)
                .map(|_| {
                    ix.query(&q, NOW)
                        .iter()
                        .map(|c| c.descriptor.body().publisher)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn query_results_are_shared_not_copied() {
        let mut ix = index();
        ix.publish(desc(1, "t", "shared", &[], 1), NOW);
        let a = ix.query(&Query::intent("shared", 1), NOW);
        let b = ix.query(&Query::intent("shared", 1), NOW);
        assert!(Arc::ptr_eq(&a[0].descriptor, &b[0].descriptor));
    }
}

#[test]
fn wire_messages_round_trip() {
    use errand_core::wire::{Request, Response};
    let b = signed::encode(&Response::Pong).unwrap();
    assert_eq!(signed::decode::<Response>(&b).unwrap(), Response::Pong);
    let b = signed::encode(&Request::Ping).unwrap();
    assert_eq!(signed::decode::<Request>(&b).unwrap(), Request::Ping);
}

#[test]
fn placeholder_signatures_never_verify() {
    let d = SignedDescriptor::with_placeholder_signature(testing::descriptor(&key(1))).unwrap();
    assert!(d.verify().is_err());
    assert!(SignedDescriptor::from_bytes(&d.to_bytes()).is_err());
    let mut ix = errand_core::discovery::Index::new(Default::default());
    assert_eq!(
        ix.publish(d, SAMPLE_TIME),
        errand_core::wire::PublishOutcome::BadSignature
    );
}

// ------------------------------------------------- requests bind receipts

/// A receipt for `q` signed by `exec`, as an honest executor would sign it.
fn answer(q: &SignedRequest, exec: &errand_core::SecretKey, output: &[u8]) -> Receipt {
    let asked = q.body();
    let mut r = testing::receipt(exec, &key(3));
    r.requester = asked.requester;
    r.request_id = asked.request_id;
    r.request = q.digest();
    r.component = asked.component.unwrap_or(r.component);
    r.input = asked.input;
    r.context = asked.context.clone();
    r.seed = asked.seed;
    r.fuel_limit = asked.fuel;
    r.fuel_consumed = asked.fuel / 2;
    r.limits = asked.limits.unwrap_or_default();
    r.output = Digest::of(output);
    r
}

fn bind(
    q: &SignedRequest,
    r: Receipt,
    exec: &errand_core::SecretKey,
    output: &[u8],
) -> Result<(), BindingError> {
    let signed = SignedReceipt::sign(r, exec).unwrap();
    let e = Expected { request: q, output };
    let full = signed.check_binding(&e);
    // The requester's own check (it signed `q` itself) decides alike on
    // every receipt for a well-signed request: it skips only re-verifying
    // `q`'s signature.
    if q.verify().is_ok() {
        assert_eq!(
            format!("{:?}", signed.check_answer(&e)),
            format!("{full:?}")
        );
    }
    full
}

/// `check_answer` trusts only the request's signature (the requester's
/// own); the receipt's signature, its executor and every bound field are
/// still checked, so an executor gains nothing from it.
#[test]
fn check_answer_skips_only_the_requesters_own_signature() {
    let (exec, me) = (key(2), key(3));
    let q = SignedRequest::sign(testing::request(&exec, &me), &me).unwrap();
    let out = b"output";
    let honest = SignedReceipt::sign(answer(&q, &exec, out), &exec).unwrap();
    let e = Expected {
        request: &q,
        output: out,
    };
    honest.check_answer(&e).unwrap();
    // A receipt from anyone else than the executor asked.
    let other = SignedReceipt::sign(answer(&q, &key(9), out), &key(9)).unwrap();
    assert!(matches!(
        other.check_answer(&e),
        Err(BindingError::Field {
            field: "executor",
            ..
        })
    ));
    // Another output than the one returned.
    let e_other = Expected {
        request: &q,
        output: b"other",
    };
    assert!(matches!(
        honest.check_answer(&e_other),
        Err(BindingError::Output { .. })
    ));
}

/// Issue 10, item 1: tier 3 did not bind what was asked. An executor asked
/// for `size=96 iterations=48` ran `size=16 iterations=1`, signed that
/// honestly, and its receipt bound.
#[test]
fn tier3_param_swap_is_caught_by_the_request_binding() {
    let (exec, me) = (key(2), key(3));
    let mut asked = testing::request(&exec, &me);
    asked.context =
        InvocationContext::from_pairs(SAMPLE_TIME, &[("size", "96"), ("iterations", "48")])
            .unwrap();
    let q = SignedRequest::sign(asked, &me).unwrap();
    let out = b"cheap image";
    // The honest answer binds.
    bind(&q, answer(&q, &exec, out), &exec, out).unwrap();
    // Cheaper work, honestly signed: the receipt names what it ran.
    let mut swapped = answer(&q, &exec, out);
    swapped.context =
        InvocationContext::from_pairs(SAMPLE_TIME, &[("size", "16"), ("iterations", "1")]).unwrap();
    let e = bind(&q, swapped, &exec, out).unwrap_err();
    assert!(
        matches!(
            e,
            BindingError::Field {
                field: "params",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("size=96") && e.to_string().contains("size=16"),
        "{e}"
    );
    // Every other field the run depends on is bound too, and named.
    type Mutate = fn(&mut Receipt);
    let cases: Vec<(&str, Mutate)> = vec![
        ("time", |r| r.context.time = r.context.time.plus_ms(1)),
        ("seed", |r| r.seed = Seed([9; 32])),
        ("fuel", |r| r.fuel_limit += 1),
        ("limits", |r| r.limits.memory_bytes /= 2),
        ("input", |r| r.input = Digest::of(b"other")),
        ("component", |r| r.component = Digest::of(b"other")),
        ("request id", |r| r.request_id = RequestId([1; 16])),
        ("capability", |r| {
            r.capability.as_mut().unwrap().name = BString::new("other").unwrap()
        }),
        ("request", |r| r.request = Digest::of(b"another request")),
    ];
    for (field, mutate) in cases {
        let mut r = answer(&q, &exec, out);
        mutate(&mut r);
        match bind(&q, r, &exec, out) {
            Err(BindingError::Field { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // Less fuel than asked is refused too: an executor could stop early,
    // report running out of fuel, and have a replay agree.
    let mut r = answer(&q, &exec, out);
    r.fuel_limit -= 1;
    r.fuel_consumed = r.fuel_consumed.min(r.fuel_limit);
    assert!(matches!(
        bind(&q, r, &exec, out).unwrap_err(),
        BindingError::Field { field: "fuel", .. }
    ));
    // A request signed by someone else than its requester is refused.
    let forged = SignedRequest::decode(&{
        let mut b = q.to_bytes();
        let n = b.len();
        b[n - 1] ^= 1;
        b
    })
    .unwrap();
    assert!(matches!(
        bind(&forged, answer(&forged, &exec, out), &exec, out).unwrap_err(),
        BindingError::RequestSignature(_)
    ));
}

#[test]
fn a_request_must_name_what_to_run() {
    let mut q = testing::request(&key(2), &key(3));
    q.capability = None;
    q.component = None;
    assert!(SignedRequest::sign(q, &key(3)).is_err());
}

/// Issue 10, item 10: `check_blob` ignored an embedded component
/// `Blob::Digest` that contradicts the receipt; 32 of 749 bit flips of a
/// real evidence file (every one in that digest) still verified.
#[test]
fn evidence_digest_that_contradicts_the_receipt_fails_verification() {
    let (mut e, ..) = sample_evidence();
    e.component = Some(Blob::Digest(Digest::of(b"not the component")));
    let report = evidence::verify(&e, &Supplied::default());
    assert_eq!(
        report.first_failure().map(|c| c.name),
        Some("component"),
        "{report:#?}"
    );
    e.component = Some(Blob::Digest(e.receipt.body().component));
    assert!(evidence::verify(&e, &Supplied::default()).verified());
}

/// Every field of an evidence package is checked or refused: no single bit
/// of a real evidence file changes without failing decoding or verification.
#[test]
fn no_single_bit_flip_of_an_evidence_file_still_verifies() {
    let (mut e, component, ..) = sample_evidence();
    e.component = Some(Blob::Digest(Digest::of(&component)));
    e.output = Some(Blob::Digest(e.receipt.body().output));
    let bytes = signed::encode(&e).unwrap();
    assert!(evidence::verify(&e, &Supplied::default()).verified());
    let mut survived = Vec::new();
    for i in 0..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[i / 8] ^= 1 << (i % 8);
        if let Ok(flipped) = signed::decode::<Evidence>(&b)
            && evidence::verify(&flipped, &Supplied::default()).verified()
        {
            survived.push(i);
        }
    }
    assert!(
        survived.is_empty(),
        "{} of {} flips still verify: bits {:?}",
        survived.len(),
        bytes.len() * 8,
        &survived[..survived.len().min(20)]
    );
}

#[test]
fn the_request_check_names_params_an_auditor_states_differently() {
    let (e, ..) = sample_evidence();
    // The package's own signed request matches.
    let report = evidence::verify(&e, &Supplied::default());
    assert!(matches!(
        report
            .checks
            .iter()
            .find(|c| c.name == "request")
            .unwrap()
            .verdict,
        Verdict::Pass(_)
    ));
    // Without it, nothing says what was asked: skipped, not passed.
    let mut bare = e.clone();
    bare.request = None;
    let report = evidence::verify(&bare, &Supplied::default());
    assert!(matches!(
        report
            .checks
            .iter()
            .find(|c| c.name == "request")
            .unwrap()
            .verdict,
        Verdict::Skip(_)
    ));
    // An auditor who asked for other parameters sees them named.
    let asked = InvocationContext::from_pairs(SAMPLE_TIME, &[("title", "Wolf")]).unwrap();
    for ev in [&e, &bare] {
        let report = evidence::verify(
            ev,
            &Supplied {
                params: Some(&asked),
                ..Default::default()
            },
        );
        let f = report.first_failure().unwrap();
        assert_eq!(f.name, "request");
        assert!(
            matches!(&f.verdict, Verdict::Fail(m) if m.contains("title=Wolf") && m.contains("title=Fox")),
            "{f:?}"
        );
        let report = evidence::verify(
            ev,
            &Supplied {
                time: Some(SAMPLE_TIME.plus_ms(5)),
                ..Default::default()
            },
        );
        assert_eq!(report.first_failure().unwrap().name, "request");
    }
    // A request the receipt does not answer, or signed by someone else.
    let mut other = e.clone();
    let mut q = other.request.clone().unwrap().body().clone();
    q.seed = Seed([1; 32]);
    other.request = Some(SignedRequest::sign(q, &key(3)).unwrap());
    let f = evidence::verify(&other, &Supplied::default())
        .first_failure()
        .cloned()
        .unwrap();
    assert!(
        f.name == "request" && matches!(&f.verdict, Verdict::Fail(m) if m.contains("seed")),
        "{f:?}"
    );
}

proptest! {
    #[test]
    fn signed_request_round_trips(time in any::<u64>(), fuel in any::<u64>(), seed in any::<[u8; 32]>(), id in any::<[u8; 16]>(),
                                  title in "[ -~]{0,40}", pin in any::<bool>()) {
        let mut q: Request = testing::request(&key(2), &key(3));
        q.context = InvocationContext::from_pairs(UnixMillis(time), &[("title", title.as_str())]).unwrap();
        q.fuel = fuel;
        q.seed = Seed(seed);
        q.request_id = RequestId(id);
        if !pin { q.component = None; q.limits = None; }
        let signed = SignedRequest::sign(q, &key(3)).unwrap();
        let back = SignedRequest::from_bytes(&signed.to_bytes()).unwrap();
        prop_assert_eq!(&back, &signed);
        let from_json = SignedRequest::from_json(&signed.to_json()).unwrap();
        prop_assert!(from_json.verify().is_ok());
        prop_assert_eq!(from_json, signed);
    }
}

// ------------------------------------------------- batch vs single verification

/// `signed::verify_batch_raw` against `PeerId::verify` (ed25519-dalek's
/// `verify_strict`) on the ed25519-speccheck vectors (see
/// `tests/fixtures/ed25519-speccheck/README.md`) and on random mixes of
/// valid, corrupted and edge-case signatures.
mod batch_verification {
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
    use curve25519_dalek::scalar::Scalar;
    use curve25519_dalek::traits::IsIdentity;
    use errand_core::PeerId;
    use errand_core::identity::{Signature, SignatureError};
    use errand_core::signed::{BATCH_MIN, BatchError, verify_batch_raw};
    use errand_core::testing::key;
    use proptest::prelude::*;
    use sha2::{Digest as _, Sha512};

    /// An owned `(signer, message, signature)` triple.
    #[derive(Debug, Clone)]
    struct Item {
        peer: PeerId,
        msg: Vec<u8>,
        sig: Signature,
    }

    impl Item {
        fn single(&self) -> Result<(), SignatureError> {
            self.peer.verify(&self.msg, &self.sig)
        }
    }

    fn bytes<const N: usize>(hex_str: &str) -> [u8; N] {
        hex::decode(hex_str).unwrap().try_into().unwrap()
    }

    fn speccheck() -> Vec<Item> {
        let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/ed25519-speccheck/cases.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        cases
            .iter()
            .map(|c| Item {
                peer: PeerId(bytes(c["pub_key"].as_str().unwrap())),
                msg: hex::decode(c["message"].as_str().unwrap()).unwrap(),
                sig: Signature(bytes(c["signature"].as_str().unwrap())),
            })
            .collect()
    }

    fn valid(n: usize) -> Item {
        let k = key((n % 7) as u8 + 1);
        let msg = format!("message {n}").into_bytes();
        Item {
            peer: k.peer_id(),
            sig: k.sign(&msg),
            msg,
        }
    }

    /// The verdict the batch must give: the first single failure.
    fn expected(items: &[Item]) -> Result<(), BatchError> {
        for (index, item) in items.iter().enumerate() {
            item.single().map_err(|error| BatchError { index, error })?;
        }
        Ok(())
    }

    fn batch(items: &[Item]) -> Result<(), BatchError> {
        let raw: Vec<(&PeerId, &[u8], &Signature)> =
            items.iter().map(|i| (&i.peer, &*i.msg, &i.sig)).collect();
        verify_batch_raw(&raw)
    }

    /// A point of order 8 (speccheck's small-order key).
    fn order_8() -> EdwardsPoint {
        let p = CompressedEdwardsY(bytes(
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
        ))
        .decompress()
        .unwrap();
        assert!(p.is_small_order() && !(p + p + p + p).is_identity());
        p
    }

    /// A signature whose equation holds up to a small-order point added to
    /// `R`, with `S` computed for the altered `R`: `verify_strict` rejects
    /// it, a cofactored check accepts it, and a cofactorless batch accepts
    /// it whenever the torsion term's coefficient vanishes.
    fn torsioned_r(seed: u8, torsion: u8) -> Item {
        let a = Scalar::from_bytes_mod_order([seed.wrapping_add(11); 32]);
        let r = Scalar::from_bytes_mod_order([seed.wrapping_add(97); 32]);
        let big_a = (ED25519_BASEPOINT_POINT * a).compress();
        let mut t = EdwardsPoint::default();
        for _ in 0..(torsion % 7 + 1) {
            t += order_8();
        }
        let big_r = (ED25519_BASEPOINT_POINT * r + t).compress();
        let msg = vec![seed, torsion];
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(big_a.as_bytes())
                .chain_update(&msg),
        );
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        Item {
            peer: PeerId(*big_a.as_bytes()),
            msg,
            sig: Signature(sig),
        }
    }

    #[test]
    fn torsioned_r_is_rejected_alone() {
        for seed in 0..4 {
            assert_eq!(
                torsioned_r(seed, seed).single(),
                Err(SignatureError::Mismatch)
            );
        }
    }

    /// Issue 10, item 7: speccheck case 3 passes `verify_strict` and failed
    /// the batch; every case must get the same verdict both ways, alone and
    /// among valid signatures, at the start, middle and end of the batch.
    #[test]
    fn batch_and_single_verification_accept_the_same_signatures() {
        let cases = speccheck();
        assert_eq!(cases.len(), 12);
        let filler: Vec<Item> = (0..BATCH_MIN + 8).map(valid).collect();
        for (n, case) in cases.iter().enumerate() {
            let alone = std::slice::from_ref(case);
            assert_eq!(batch(alone), expected(alone), "case {n} alone");
            for at in [0, filler.len() / 2, filler.len()] {
                let mut items = filler.clone();
                items.insert(at, case.clone());
                assert_eq!(batch(&items), expected(&items), "case {n} at {at}");
            }
        }
        // All cases in one batch, spread among valid signatures.
        let mut items = filler.clone();
        for (n, case) in cases.iter().enumerate() {
            items.insert(n * 20 + 3, case.clone());
        }
        assert_eq!(batch(&items), expected(&items), "all cases");
        // Only the cases verify_strict accepts: the batch must accept.
        let mut items = filler;
        items.extend(cases.iter().filter(|c| c.single().is_ok()).cloned());
        assert!(
            items.len() > BATCH_MIN + 8,
            "some case passes verify_strict"
        );
        assert_eq!(batch(&items), Ok(()));
    }

    #[derive(Debug, Clone)]
    enum ItemKind {
        Valid,
        /// A valid signature with one bit flipped.
        FlippedBit(usize),
        /// A valid signature over another message.
        OtherMessage,
        /// A speccheck case.
        Case(usize),
        /// See [`torsioned_r`].
        TorsionedR(u8),
    }

    fn kind() -> impl Strategy<Value = ItemKind> {
        prop_oneof![
            20 => Just(ItemKind::Valid),
            1 => (0..512usize).prop_map(ItemKind::FlippedBit),
            1 => Just(ItemKind::OtherMessage),
            2 => (0..12usize).prop_map(ItemKind::Case),
            2 => any::<u8>().prop_map(ItemKind::TorsionedR),
        ]
    }

    fn build(kinds: &[ItemKind], cases: &[Item]) -> Vec<Item> {
        kinds
            .iter()
            .enumerate()
            .map(|(n, k)| {
                let mut item = valid(n);
                match k {
                    ItemKind::Valid => {}
                    ItemKind::FlippedBit(bit) => item.sig.0[bit / 8] ^= 1 << (bit % 8),
                    ItemKind::OtherMessage => item.msg.push(b'!'),
                    ItemKind::Case(c) => item = cases[*c].clone(),
                    ItemKind::TorsionedR(t) => item = torsioned_r(n as u8, *t),
                }
                item
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random mixes, mostly valid so the batch path runs, often with
        /// a single bad item, sometimes several: the batch verdict is
        /// always the first single failure.
        #[test]
        fn batch_verdict_is_the_first_single_failure(
            kinds in prop::collection::vec(kind(), (BATCH_MIN - 8)..(BATCH_MIN + 24)),
            only_valid_but in prop::option::of((any::<prop::sample::Index>(), kind())),
        ) {
            let cases = speccheck();
            let kinds = match only_valid_but {
                Some((at, k)) => {
                    let mut all = vec![ItemKind::Valid; kinds.len()];
                    all[at.index(kinds.len())] = k;
                    all
                }
                None => kinds,
            };
            let items = build(&kinds, &cases);
            prop_assert_eq!(batch(&items), expected(&items));
        }
    }
}

// ------------------------------------------------------------- tool packages

/// A package of a (fake) component with `manifest`, by `author`.
fn sample_package(manifest: &str, author: &errand_core::SecretKey) -> Package {
    let mut template = testing::descriptor(author);
    template.package = None;
    Package::sign(
        BString::new(manifest).unwrap(),
        BBytes::new(b"\0asm the same component".to_vec()).unwrap(),
        template,
        author,
    )
    .unwrap()
}

const HONEST_MANIFEST: &str = "name = \"imagegen\"\n[limits]\nfuel = 100000000\n[[examples]]\nname = \"fox\"\ninput_hex = \"666f78\"\n";
const DOCTORED_MANIFEST: &str = "name = \"imagegen\"\n[limits]\nfuel = 1\n";

#[test]
fn a_package_is_signed_by_its_author_and_names_itself_in_its_template() {
    let author = key(20);
    let p = sample_package(HONEST_MANIFEST, &author);
    let bytes = signed::encode(&p).unwrap();
    let back = Package::open(&bytes).unwrap();
    assert_eq!(back.author(), author.peer_id());
    assert_eq!(back.descriptor.body().package, Some(back.reference()));
    assert_eq!(
        back.authorship.body().manifest,
        Digest::of(HONEST_MANIFEST.as_bytes())
    );
    assert_eq!(back.digest(), Digest::of(&back.authorship.signed_bytes()));
    back.reference().check(&back).unwrap();
}

/// Issue 10, item 3: the canary material must not come from the adversary.
/// The same component with a doctored manifest (no examples, tiny limits)
/// is refused, whether the adversary keeps the honest authorship (the
/// digests no longer match the bytes), re-signs it with the honest author's
/// name (the signature fails), or signs it as itself (another package
/// digest and another author than the descriptor names).
#[test]
fn a_doctored_manifest_for_the_same_component_is_refused() {
    let author = key(21);
    let honest = sample_package(HONEST_MANIFEST, &author);
    let wanted = honest.reference();
    wanted.check(&honest).unwrap();

    // 1. Honest authorship, doctored manifest: the package does not decode,
    //    and a requester refuses it even when it arrived nested in a wire
    //    response (decoded structurally only).
    let mut doctored = honest.clone();
    doctored.manifest = BString::new(DOCTORED_MANIFEST).unwrap();
    assert!(signed::encode(&doctored).is_err());
    assert_eq!(doctored.digest(), wanted.digest);
    match wanted.check(&doctored) {
        Err(PackageMismatch::Decode(DecodeError::Invalid { invalid, .. })) => {
            assert_eq!(invalid.field, "authorship.manifest")
        }
        other => panic!("{other:?}"),
    }
    let mut bytes = signed::encode(&honest).unwrap();
    let at = bytes
        .windows(b"fuel = 100000000".len())
        .position(|w| w == b"fuel = 100000000")
        .unwrap();
    bytes[at + 7] = b'9'; // fuel = 900000000
    match wanted.open(&bytes) {
        Err(PackageMismatch::Decode(DecodeError::Invalid { invalid, .. })) => {
            assert_eq!(invalid.field, "authorship.manifest")
        }
        other => panic!("{other:?}"),
    }

    // 2. Authorship naming the honest author over the doctored manifest,
    //    signed by someone else: not the named digest, and a bad signature.
    let adversary = key(22);
    let forged = {
        let mut a = honest.authorship.body().clone();
        a.manifest = Digest::of(DOCTORED_MANIFEST.as_bytes());
        let mut b = signed::encode(&a).unwrap();
        b.extend_from_slice(&adversary.sign(&b).0);
        SignedAuthorship::decode(&b).unwrap()
    };
    let mut p = honest.clone();
    p.manifest = BString::new(DOCTORED_MANIFEST).unwrap();
    p.authorship = forged;
    let mut template = honest.descriptor.body().clone();
    template.package = None;
    p.descriptor = SignedDescriptor::with_placeholder_signature(template).unwrap();
    let bytes = signed::encode(&p).unwrap();
    assert!(matches!(
        wanted.open(&bytes),
        Err(PackageMismatch::Digest { .. })
    ));
    let same_digest = errand_core::descriptor::PackageRef {
        digest: p.digest(),
        author: author.peer_id(),
    };
    assert!(matches!(
        same_digest.open(&bytes),
        Err(PackageMismatch::AuthorSignature { .. })
    ));
    assert!(matches!(
        Package::open(&bytes),
        Err(PackageMismatch::AuthorSignature { .. })
    ));

    // 3. The adversary signs the doctored package as its own author.
    let own = sample_package(DOCTORED_MANIFEST, &adversary);
    assert_eq!(own.component_digest(), honest.component_digest());
    own.reference().check(&own).unwrap();
    assert!(matches!(
        wanted.check(&own),
        Err(PackageMismatch::Digest { .. })
    ));
    let author_only = errand_core::descriptor::PackageRef {
        digest: own.digest(),
        author: author.peer_id(),
    };
    assert!(matches!(
        author_only.check(&own),
        Err(PackageMismatch::Author { .. })
    ));
}

#[test]
fn a_package_whose_template_disagrees_with_its_authorship_does_not_decode() {
    let author = key(23);
    let honest = sample_package(HONEST_MANIFEST, &author);
    let mut d = honest.descriptor.body().clone();
    d.version = Version::new(9, 9, 9);
    d.package = None;
    let mut p = honest.clone();
    p.descriptor = SignedDescriptor::sign(d, &author).unwrap();
    match signed::encode(&p) {
        Err(signed::EncodeError::Invalid { invalid, .. }) => {
            assert_eq!(invalid.field, "descriptor.name")
        }
        other => panic!("{other:?}"),
    }
}

/// Review finding: the JSON rendering accepted uppercase hex, so flipping
/// bit 0x20 of a hex letter still verified. Every spelling is now canonical.
#[test]
fn json_evidence_refuses_uppercase_hex() {
    let (e, ..) = sample_evidence();
    let json = signed::to_json(&e).to_string();
    assert!(signed::from_json::<Evidence>(&serde_json::from_str(&json).unwrap()).is_ok());
    // The seed (0x3c bytes) and a digest, each with one letter upper-cased.
    for (from, to) in [("\"3c3c", "\"3C3c"), ("\"seed\":\"3c", "\"seed\":\"3C")] {
        assert!(json.contains(from), "{from}");
        let changed = json.replacen(from, to, 1);
        let v: serde_json::Value = serde_json::from_str(&changed).unwrap();
        assert!(signed::from_json::<Evidence>(&v).is_err(), "{to} accepted");
    }
}

/// Regression (issue 13 review): a punch offer's addresses were probed and
/// dialled whatever they were (only port 0 and the unspecified address
/// were dropped), so a peer could point another's probes at loopback,
/// multicast, broadcast or link-local addresses, and a forged probe could
/// add any address as a candidate. Now only addresses a punch can mean
/// are kept: private ones stay (peers on one network punch through them),
/// loopback only for a session over loopback, and a candidate learnt from
/// a probe only at an IP address the offer listed.
#[test]
fn punch_candidates_exclude_loopback_multicast_broadcast() {
    use errand_core::reach::{PunchConfig, PunchPlan, candidates, punchable};
    let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let public = a("198.51.100.7:4433");
    let private = a("10.0.1.2:4433");
    let shared = a("100.64.0.9:4433");
    let ula = a("[fd00::2]:4433");
    let never = [
        a("127.0.0.1:4433"),
        a("[::1]:4433"),
        a("224.0.0.251:5353"),
        a("239.1.2.3:4433"),
        a("[ff02::1]:4433"),
        a("255.255.255.255:4433"),
        a("240.0.0.1:1"),
        a("0.0.0.0:4433"),
        a("0.1.2.3:4433"),
        a("[::]:4433"),
        a("169.254.1.1:4433"),
        a("[fe80::1]:4433"),
        a("[::ffff:127.0.0.1]:4433"),
        a("[::ffff:224.0.0.1]:4433"),
        a("198.51.100.7:0"),
    ];
    let mut offered = never.to_vec();
    offered.extend([public, private, shared, ula, public]);
    assert_eq!(
        candidates(&offered, false),
        vec![public, private, shared, ula]
    );
    for n in never {
        assert!(!punchable(n, false), "{n}");
    }
    // Over loopback (tests, one machine), loopback is in scope; nothing
    // else changes.
    let looped = candidates(&offered, true);
    assert_eq!(
        looped,
        vec![
            a("127.0.0.1:4433"),
            a("[::1]:4433"),
            public,
            private,
            shared,
            ula
        ]
    );
    // Probes: a new port at an offered address is learnt; anything else,
    // or anything out of scope, is not.
    let t0 = std::time::Instant::now();
    let mut plan = PunchPlan::new(PunchConfig::default(), &offered, false, true, t0);
    assert_eq!(plan.candidates(), &[public, private, shared, ula]);
    assert!(plan.learn(a("198.51.100.7:5555")));
    assert!(plan.learn(a("[::ffff:10.0.1.2]:6000")));
    assert!(!plan.learn(a("203.0.113.9:4433")), "a third party");
    assert!(!plan.learn(a("127.0.0.1:4433")));
    assert!(!plan.learn(a("224.0.0.1:4433")));
    assert_eq!(plan.candidates().len(), 6);
}
