//! Seed corpora for the fuzz targets (`fuzz/corpus/<target>/seed-*`).
//!
//! Without seeds, libFuzzer has to guess a type tag such as
//! `errand/descriptor` and then a whole canonical body before it reaches any
//! code past the header. These seeds are real objects built with the
//! workspace's own encoders: the golden objects, descriptors and packages of
//! the example tools, evidence packages, signed requests, authorships and
//! every wire message variant.
//!
//! The test below checks that the checked-in seeds are exactly what this
//! generator makes. After a format change, regenerate them with
//!
//! ```sh
//! ERRAND_BLESS=1 cargo test --workspace --test core fuzz_seed_corpora
//! ```
//!
//! (the same switch that re-blesses the golden snapshots). Only files named
//! `seed-*` are the generator's; anything else libFuzzer adds to a corpus
//! directory is ignored by git.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use errand_core::bounded::{BBytes, BString, BVec};
use errand_core::descriptor::*;
use errand_core::evidence::{Blob, Evidence, TraceBlob, TraceChain};
use errand_core::manifest::{Manifest, Publication};
use errand_core::package::{Package, SignedAuthorship};
use errand_core::reach;
use errand_core::receipt::*;
use errand_core::request::{CapabilityTarget, SignedRequest};
use errand_core::signed::{self, Object};
use errand_core::testing::{self, SAMPLE_TIME, key};
use errand_core::wire::{self, ErrorCode, PublishOutcome, WireError};
use errand_core::{Digest, SecretKey};

/// The example tools' manifests, as `errand pack` reads them.
const EXAMPLE_MANIFESTS: &[(&str, &str)] = &[
    (
        "text-stats",
        include_str!("../../../../examples/tools/text-stats/capability.toml"),
    ),
    (
        "imagegen",
        include_str!("../../../../examples/tools/imagegen/capability.toml"),
    ),
    (
        "thumbnail",
        include_str!("../../../../examples/tools/thumbnail/capability.toml"),
    ),
    (
        "markdown",
        include_str!("../../../../examples/tools/markdown/capability.toml"),
    ),
    (
        "publish",
        include_str!("../../../../examples/tools/publish/capability.toml"),
    ),
];

/// Named sample objects.
type Named<T> = Vec<(String, T)>;

/// Seeds by target, then by name (without the `seed-` prefix).
type Corpora = BTreeMap<&'static str, BTreeMap<String, Vec<u8>>>;

/// Adds a seed, unless the target already has one with the same bytes (the
/// golden objects are also the samples).
fn add(c: &mut Corpora, target: &'static str, name: impl Into<String>, bytes: Vec<u8>) {
    let name = name.into();
    let seeds = c.entry(target).or_default();
    if seeds.values().any(|b| *b == bytes) {
        return;
    }
    let old = seeds.insert(name.clone(), bytes);
    assert!(old.is_none(), "two {target} seeds are named {name}");
}

fn enc<T: Object>(v: &T) -> Vec<u8> {
    signed::encode(v).unwrap()
}

fn s<const N: usize>(v: &str) -> BString<N> {
    BString::new(v).unwrap()
}

fn golden(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    hex::decode(text.split_whitespace().collect::<String>()).unwrap()
}

/// A small stand-in for a WebAssembly component: decoders never look
/// inside, and real components would make the corpus megabytes.
fn component(name: &str) -> Vec<u8> {
    let mut c = b"\0asm\x0d\0\x01\0".to_vec();
    c.extend_from_slice(name.as_bytes());
    c
}

fn example_descriptor(name: &str, manifest: &str, publisher: &SecretKey) -> Descriptor {
    let m: Manifest = toml::from_str(manifest).unwrap();
    m.descriptor(&Publication {
        publisher: publisher.peer_id(),
        component: Some(Digest::of(&component(name))),
        addrs: vec![NetAddr::Quic("127.0.0.1:4433".parse().unwrap())],
        seq: 1,
        issued_at: SAMPLE_TIME,
        ttl_ms: DEFAULT_TTL_MS,
        latency_ms: None,
    })
    .unwrap()
}

fn example_package(name: &str, manifest: &str, author: &SecretKey) -> Package {
    Package::sign(
        s(manifest),
        BBytes::new(component(name)).unwrap(),
        example_descriptor(name, manifest, author),
        author,
    )
    .unwrap()
}

fn descriptors() -> Named<SignedDescriptor> {
    let k = key(1);
    let sign = |d: Descriptor| SignedDescriptor::sign(d, &k).unwrap();
    let mut out = vec![("sample".to_owned(), sign(testing::descriptor(&k)))];

    let mut minimal = testing::descriptor(&k);
    minimal.description = BString::default();
    minimal.intents = BVec::empty();
    minimal.input = MediaSpec::new("text/plain").unwrap();
    minimal.output = MediaSpec::new("application/octet-stream").unwrap();
    minimal.component = None;
    minimal.package = None;
    minimal.tiers = Tiers::default();
    minimal.addrs = BVec::empty();
    minimal.ttl_ms = MIN_TTL_MS;
    out.push(("minimal".into(), sign(minimal)));

    let mut tombstone = testing::descriptor(&k);
    tombstone.withdrawn = true;
    tombstone.seq = 8;
    out.push(("tombstone".into(), sign(tombstone)));

    let mut addrs = testing::descriptor(&k);
    addrs.addrs = BVec::new(vec![
        NetAddr::Quic(SocketAddr::from((Ipv6Addr::LOCALHOST, 4433))),
        NetAddr::Quic("192.0.2.7:65535".parse().unwrap()),
        NetAddr::Quic("[2001:db8::1]:1".parse().unwrap()),
    ])
    .unwrap();
    addrs.ttl_ms = MAX_TTL_MS;
    out.push(("ipv6-addrs".into(), sign(addrs)));

    let mut relayed = testing::descriptor(&k);
    relayed.addrs = BVec::new(vec![
        NetAddr::Quic("10.0.1.2:4433".parse().unwrap()),
        NetAddr::Relay {
            relay: key(5).peer_id(),
            addr: "198.51.100.9:4433".parse().unwrap(),
        },
    ])
    .unwrap();
    out.push(("relay-path".into(), sign(relayed)));

    for (name, manifest) in EXAMPLE_MANIFESTS {
        out.push((
            format!("example-{name}"),
            sign(example_descriptor(name, manifest, &k)),
        ));
    }
    out
}

fn requests() -> Named<SignedRequest> {
    let (exec, req) = (key(2), key(3));
    let sign = |r| SignedRequest::sign(r, &req).unwrap();
    let mut out = vec![("sample".to_owned(), testing::signed_request(&exec, &req))];

    let mut shipped = testing::request(&exec, &req);
    shipped.capability = None;
    shipped.limits = None;
    shipped.context.params = BVec::empty();
    out.push(("shipped-component".into(), sign(shipped)));

    let mut by_name = testing::request(&exec, &req);
    by_name.capability = Some(CapabilityTarget {
        name: s("text-stats"),
        version: None,
    });
    by_name.component = None;
    by_name.context = InvocationContext::from_pairs(
        SAMPLE_TIME,
        &[("top", "3"), ("title", "A title"), ("lang", "en")],
    )
    .unwrap();
    out.push(("by-name".into(), sign(by_name)));
    out
}

fn receipts() -> Named<SignedReceipt> {
    let (exec, req) = (key(2), key(3));
    let sign = |r| SignedReceipt::sign(r, &exec).unwrap();
    let mut out = vec![("ok".to_owned(), sign(testing::receipt(&exec, &req)))];
    let no_output = |outcome: Outcome| {
        let mut r = testing::receipt(&exec, &req);
        r.outcome = outcome;
        r.output = Digest::of(b"");
        r
    };
    out.push((
        "invalid-input".into(),
        sign(no_output(Outcome::InvalidInput {
            message: s("not UTF-8"),
        })),
    ));
    out.push((
        "failed".into(),
        sign(no_output(Outcome::Failed {
            message: s("exit code 2"),
        })),
    ));
    for reason in [
        AbortReason::OutOfFuel,
        AbortReason::MemoryLimit,
        AbortReason::TableLimit,
        AbortReason::InstanceLimit,
        AbortReason::Deadline,
        AbortReason::OutputTooLarge,
        AbortReason::TraceLimit,
        AbortReason::StdioLimit,
        AbortReason::Trap,
        AbortReason::CapabilityDenied,
    ] {
        let name = format!("aborted-{}", reason.as_str().replace(' ', "-"));
        out.push((
            name,
            sign(no_output(Outcome::Aborted {
                reason,
                detail: s(reason.as_str()),
            })),
        ));
    }
    let mut shipped = testing::receipt(&exec, &req);
    shipped.capability = None;
    shipped.context = InvocationContext::default();
    out.push(("shipped-component".into(), sign(shipped)));
    out
}

/// Evidence whose every check passes (see core.rs's `sample_evidence`),
/// then variants that leave material out.
fn evidence() -> Named<Evidence> {
    let (exec, req) = (key(2), key(3));
    let component = component("imagegen");
    let input = b"a red fox at dawn".to_vec();
    let output = b"\x89PNG fox".to_vec();
    let trace = testing::trace();
    let (root, n) = TraceChain::of(&trace);
    let mut q = testing::request(&exec, &req);
    q.component = Some(Digest::of(&component));
    q.input = Digest::of(&input);
    let q = SignedRequest::sign(q, &req).unwrap();
    let mut r = testing::receipt(&exec, &req);
    r.component = Digest::of(&component);
    r.input = Digest::of(&input);
    r.output = Digest::of(&output);
    r.trace_root = root;
    r.trace_events = n;
    r.request = q.digest();
    let r = SignedReceipt::sign(r, &exec).unwrap();
    let full = Evidence {
        receipt: r.clone(),
        input: Some(Blob::embed(input.clone()).unwrap()),
        output: Some(Blob::embed(output.clone()).unwrap()),
        trace: Some(TraceBlob::Events(BVec::new(trace).unwrap())),
        component: Some(Blob::embed(component.clone()).unwrap()),
        request: Some(q.clone()),
    };
    let digests = Evidence {
        receipt: r.clone(),
        input: Some(Blob::Digest(Digest::of(&input))),
        output: Some(Blob::Digest(Digest::of(&output))),
        trace: Some(TraceBlob::Root(root)),
        component: Some(Blob::Digest(Digest::of(&component))),
        request: Some(q),
    };
    vec![
        ("complete".into(), full),
        ("digests-only".into(), digests),
        ("receipt-only".into(), Evidence::of_receipt(r)),
    ]
}

fn wire_messages(
    descriptors: &Named<SignedDescriptor>,
    receipt: &SignedReceipt,
) -> (Named<wire::Request>, Named<wire::Response>) {
    use wire::{Request as Q, Response as A};
    let (exec, req) = (key(2), key(3));
    let all: Vec<SignedDescriptor> = descriptors.iter().map(|(_, d)| d.clone()).collect();
    let input = b"a red fox at dawn".to_vec();
    let invoke = |component: Option<Vec<u8>>| {
        let mut r = testing::request(&exec, &req);
        r.input = Digest::of(&input);
        r.component = component.as_ref().map(|c| Digest::of(c)).or(r.component);
        wire::InvokeRequest {
            request: SignedRequest::sign(r, &req).unwrap(),
            input: BBytes::new(input.clone()).unwrap(),
            component: component.map(|c| BBytes::new(c).unwrap()),
            want_trace: true,
        }
    };
    let requests = vec![
        ("ping".into(), Q::Ping),
        (
            "publish".into(),
            Q::Publish(BVec::new(all.clone()).unwrap()),
        ),
        (
            "query-intent".into(),
            Q::Query(wire::Query::intent("generate an image", 10)),
        ),
        (
            "query-constrained".into(),
            Q::Query(wire::Query {
                intent: s("count the words"),
                max_latency_ms: Some(100),
                max_cost: Some(5),
                tiers: Tiers {
                    canary: true,
                    receipts: true,
                    replay: true,
                },
                input: Some(s("text/plain")),
                output: Some(s("application/json")),
                name: Some(s("text-stats")),
                version: Some(Version::new(1, 0, 0)),
                publisher: Some(key(1).peer_id()),
                limit: wire::MAX_CANDIDATES as u16,
            }),
        ),
        ("invoke".into(), Q::Invoke(Box::new(invoke(None)))),
        (
            "invoke-shipped".into(),
            Q::Invoke(Box::new(invoke(Some(component("shipped"))))),
        ),
        ("get-receipt".into(), Q::GetReceipt(RequestId([0x5a; 16]))),
        (
            "fetch-package".into(),
            Q::FetchPackage(Digest::of(b"imagegen package")),
        ),
        ("status".into(), Q::Status),
        ("observe".into(), Q::Observe),
        (
            "relay-reserve".into(),
            Q::Relay(wire::RelayRequest::Reserve),
        ),
        (
            "relay-connect".into(),
            Q::Relay(wire::RelayRequest::Connect {
                target: key(1).peer_id(),
            }),
        ),
        (
            "relay-incoming".into(),
            Q::Relay(wire::RelayRequest::Incoming {
                from: key(3).peer_id(),
                seen: "203.0.113.7:40000".parse().unwrap(),
            }),
        ),
        (
            "punch".into(),
            Q::Punch(reach::PunchOffer::new(&[
                "203.0.113.5:40000".parse().unwrap(),
                "10.0.1.2:4433".parse().unwrap(),
                "[2001:db8::1]:4433".parse().unwrap(),
            ])),
        ),
        ("reachability".into(), Q::Reachability),
    ];
    let (name, manifest) = EXAMPLE_MANIFESTS[0];
    let package = example_package(name, manifest, &key(9));
    let mut responses = vec![
        ("pong".into(), A::Pong),
        (
            "published".into(),
            A::Published(
                BVec::new(vec![
                    PublishOutcome::Accepted,
                    PublishOutcome::Withdrawn,
                    PublishOutcome::Stale { held: 7 },
                    PublishOutcome::Expired,
                    PublishOutcome::BadSignature,
                    PublishOutcome::OverQuota(s("publishing faster than 100 descriptors/s")),
                    PublishOutcome::Full,
                ])
                .unwrap(),
            ),
        ),
        ("candidates".into(), A::Candidates(BVec::new(all).unwrap())),
        (
            "invoked".into(),
            A::Invoked(Box::new(wire::InvokeResponse {
                output: BBytes::new(b"\x89PNG...".to_vec()).unwrap(),
                receipt: receipt.clone(),
                trace: Some(BVec::new(testing::trace()).unwrap()),
            })),
        ),
        (
            "receipt".into(),
            A::Receipt(Some(Box::new(receipt.clone()))),
        ),
        ("receipt-none".into(), A::Receipt(None)),
        ("package".into(), A::Package(Some(Box::new(package)))),
        ("package-none".into(), A::Package(None)),
        (
            "status".into(),
            A::Status(Box::new(wire::StatusReport {
                peer: exec.peer_id(),
                version: s(errand_core::ERRAND_VERSION),
                uptime_ms: 86_400_000,
                peers: BVec::new(vec![req.peer_id(), key(1).peer_id()]).unwrap(),
                capabilities: BVec::new(vec![wire::HostedCapability {
                    name: s("text-stats"),
                    version: Version::new(1, 0, 0),
                    component: Digest::of(&component("text-stats")),
                    seq: 3,
                    measured_latency_ms: Some(14),
                }])
                .unwrap(),
                registry_entries: Some(42),
                receipts_stored: 17,
                invocations_served: 19,
            })),
        ),
    ];
    let limits = reach::RelayLimits::default();
    responses.extend([
        (
            "observed".into(),
            A::Observed("203.0.113.5:40000".parse().unwrap()),
        ),
        (
            "relay-reserved".into(),
            A::Relay(wire::RelayResponse::Reserved {
                observed: "203.0.113.5:40000".parse().unwrap(),
                limits,
            }),
        ),
        (
            "relay-connected".into(),
            A::Relay(wire::RelayResponse::Connected {
                observed: "203.0.113.6:4433".parse().unwrap(),
                limits,
            }),
        ),
        (
            "relay-accepted".into(),
            A::Relay(wire::RelayResponse::Accepted),
        ),
        (
            "punch".into(),
            A::Punch(reach::PunchOffer::new(&["198.51.100.77:4433"
                .parse()
                .unwrap()])),
        ),
        (
            "reachability".into(),
            A::Reachability(Box::new(testing::reachability_report())),
        ),
    ]);
    for (name, refusal) in [
        ("not-a-relay", reach::RelayRefusal::NotARelay),
        (
            "no-reservation",
            reach::RelayRefusal::NoReservation {
                target: key(1).peer_id(),
            },
        ),
        (
            "reservations",
            reach::RelayRefusal::Reservations { max: 1024 },
        ),
        (
            "circuits",
            reach::RelayRefusal::Circuits {
                peer: key(3).peer_id(),
                max: 16,
            },
        ),
        (
            "rate",
            reach::RelayRefusal::Rate {
                peer: key(3).peer_id(),
                per_minute: 60,
            },
        ),
        ("to-self", reach::RelayRefusal::ToSelf),
        (
            "unreachable",
            reach::RelayRefusal::Unreachable {
                target: key(1).peer_id(),
                reason: s("timed out"),
            },
        ),
    ] {
        responses.push((
            format!("relay-refused-{name}"),
            A::Relay(wire::RelayResponse::Refused(refusal)),
        ));
    }
    for code in [
        ErrorCode::BadRequest,
        ErrorCode::TooLarge,
        ErrorCode::NotFound,
        ErrorCode::NeedComponent,
        ErrorCode::Forbidden,
        ErrorCode::Busy,
        ErrorCode::Unsupported,
        ErrorCode::Replay,
        ErrorCode::Internal,
    ] {
        responses.push((
            format!("error-{code:?}").to_lowercase(),
            A::Error(WireError::new(code, format!("{code:?} for the fuzzer"))),
        ));
    }
    (requests, responses)
}

/// Text forms people type or paste.
fn texts() -> Named<Vec<u8>> {
    let k = key(5);
    let d = Digest::of(b"abc");
    vec![
        ("peer-id".into(), k.peer_id().to_string().into_bytes()),
        ("peer-id-typo".into(), {
            let mut t = k.peer_id().to_string().into_bytes();
            let last = t.len() - 1;
            t[last] = if t[last] == b'q' { b'p' } else { b'q' };
            t
        }),
        ("digest".into(), d.to_string().into_bytes()),
        ("digest-prefixed".into(), format!("sha256:{d}").into_bytes()),
        ("key-file".into(), k.to_key_file().as_bytes().to_vec()),
        ("version".into(), b"1.20.3".to_vec()),
        ("version-bad".into(), b"1.0.0-beta".to_vec()),
    ]
}

/// Every seed of every target.
fn corpora() -> Corpora {
    let mut c = Corpora::new();

    let descriptors = descriptors();
    add(
        &mut c,
        "decode_descriptor",
        "golden",
        golden("descriptor.hex"),
    );
    for (name, d) in &descriptors {
        add(&mut c, "decode_descriptor", name.clone(), d.to_bytes());
    }

    add(&mut c, "decode_request", "golden", golden("request.hex"));
    for (name, r) in requests() {
        add(&mut c, "decode_request", name, r.to_bytes());
    }

    let receipts = receipts();
    add(&mut c, "decode_receipt", "golden", golden("receipt.hex"));
    for (name, r) in &receipts {
        add(&mut c, "decode_receipt", name.clone(), r.to_bytes());
    }

    add(&mut c, "decode_evidence", "golden", golden("evidence.hex"));
    for (name, e) in evidence() {
        add(&mut c, "decode_evidence", name, enc(&e));
    }

    add(
        &mut c,
        "decode_authorship",
        "golden",
        golden("authorship.hex"),
    );
    for (name, manifest) in EXAMPLE_MANIFESTS {
        let p = example_package(name, manifest, &key(9));
        add(
            &mut c,
            "decode_authorship",
            format!("example-{name}"),
            p.authorship.to_bytes(),
        );
        add(&mut c, "decode_package", format!("example-{name}"), enc(&p));
    }
    let mut template = testing::descriptor(&key(9));
    template.package = None;
    let sample = Package::sign(
        s("name = \"imagegen\"\n[limits]\nfuel = 100000000\n[[examples]]\nname = \"fox\"\ninput_hex = \"666f78\"\n"),
        BBytes::new(component("imagegen")).unwrap(),
        template,
        &key(9),
    )
    .unwrap();
    add(&mut c, "decode_package", "sample", enc(&sample));

    let (requests, responses) = wire_messages(&descriptors, &receipts[0].1);
    for (name, m) in requests {
        add(&mut c, "decode_wire", format!("request-{name}"), enc(&m));
    }
    for (name, m) in responses {
        add(&mut c, "decode_wire", format!("response-{name}"), enc(&m));
    }

    for (name, t) in texts() {
        add(&mut c, "parse_text", name, t);
    }

    // Circuit streams (after a first byte that sets the piece size) and
    // probes.
    let mut stream = vec![7u8];
    for p in [vec![0xc3u8; 1200], vec![0x41; 48], vec![0x5a; 1452]] {
        reach::frame_packet(&mut stream, &p);
    }
    add(&mut c, "decode_circuit", "packets", stream.clone());
    stream.extend_from_slice(&[0x08, 0x01, 0xff]);
    add(&mut c, "decode_circuit", "packets-then-oversized", stream);
    add(
        &mut c,
        "decode_circuit",
        "probe",
        reach::probe(key(1).peer_id()).to_vec(),
    );

    // The structure-aware target reads any bytes; a few lengths of plain
    // patterns give it room to build messages from the start.
    for (name, bytes) in [
        ("zeros-4k", vec![0u8; 4096]),
        ("ones-4k", vec![0xffu8; 4096]),
        ("ramp-1k", (0..1024u32).map(|i| i as u8).collect()),
    ] {
        add(&mut c, "wire_roundtrip", name, bytes);
    }
    c
}

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The `seed-*` files in `dir`, by name without the prefix.
fn seeds_on_disk(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.strip_prefix("seed-")?.to_owned();
            Some((name, std::fs::read(&p).unwrap()))
        })
        .collect()
}

#[test]
fn fuzz_seed_corpora_are_current() {
    let corpora = corpora();

    // Each seed of a decoding target is a valid object of its kind.
    for (target, seeds) in &corpora {
        for (name, bytes) in seeds {
            let ok = match *target {
                "decode_descriptor" => SignedDescriptor::from_bytes(bytes).is_ok(),
                "decode_request" => SignedRequest::from_bytes(bytes).is_ok(),
                "decode_receipt" => SignedReceipt::from_bytes(bytes).is_ok(),
                "decode_authorship" => SignedAuthorship::from_bytes(bytes).is_ok(),
                "decode_evidence" => signed::decode::<Evidence>(bytes).is_ok(),
                "decode_package" => Package::open(bytes).is_ok(),
                "decode_wire" => {
                    signed::decode::<wire::Request>(bytes).is_ok()
                        || signed::decode::<wire::Response>(bytes).is_ok()
                }
                _ => true,
            };
            assert!(ok, "seed {target}/{name} does not decode");
        }
    }
    let total: usize = corpora
        .values()
        .flat_map(|s| s.values())
        .map(Vec::len)
        .sum();
    assert!(total < 256 << 10, "the seed corpora grew to {total} bytes");

    let root = fuzz_dir().join("corpus");
    if std::env::var_os("ERRAND_BLESS").is_some() {
        for (target, seeds) in &corpora {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            for name in seeds_on_disk(&dir).keys() {
                std::fs::remove_file(dir.join(format!("seed-{name}"))).unwrap();
            }
            for (name, bytes) in seeds {
                std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
            }
        }
        return;
    }
    for (target, seeds) in &corpora {
        assert!(
            &seeds_on_disk(&root.join(target)) == seeds,
            "fuzz/corpus/{target} is not what the seed generator makes (after a format \
             change?): regenerate it with \
             `ERRAND_BLESS=1 cargo test --workspace --test core fuzz_seed_corpora`"
        );
    }
}

#[test]
fn every_fuzz_target_has_seeds() {
    let targets: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            p.file_stem().unwrap().to_str().unwrap().to_owned()
        })
        .collect();
    let corpora = corpora();
    for t in &targets {
        assert!(
            corpora.contains_key(t.as_str()),
            "fuzz target {t} has no seeds"
        );
    }
    assert_eq!(
        corpora.len(),
        targets.len(),
        "seeds for a fuzz target that is gone"
    );
}
