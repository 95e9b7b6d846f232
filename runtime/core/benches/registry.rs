//! The registry index with 100,000 signed descriptors: query latency, and
//! ingest (decode + verify + index) against raw ed25519 verification.
//!
//! `cargo bench -p errand-core --bench registry`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::{Signer, SigningKey};
use errand_core::bounded::{BString, BVec};
use errand_core::descriptor::{Descriptor, SignedDescriptor};
use errand_core::discovery::{Index, Ranking, RegistryLimits};
use errand_core::signed;
use errand_core::testing;
use errand_core::wire::{PublishOutcome, Query};
use errand_core::{SecretKey, UnixMillis};

/// Capability kinds with the words their publishers use.
const KINDS: &[(&str, &str, &[&str])] = &[
    (
        "imagegen",
        "Generates images from text prompts",
        &["generate image", "text to image", "picture", "art"],
    ),
    (
        "thumbnail",
        "Resizes images to thumbnails",
        &["resize image", "thumbnail", "shrink picture"],
    ),
    (
        "publish",
        "Publishes content with a content address",
        &["publish", "share content", "post"],
    ),
    (
        "markdown",
        "Renders Markdown documents as HTML",
        &["markdown to html", "render document"],
    ),
    (
        "text-stats",
        "Counts words and lists frequent terms",
        &["word count", "text statistics"],
    ),
    (
        "translate",
        "Translates text between languages",
        &["translate text", "language translation"],
    ),
    (
        "transcribe",
        "Transcribes speech audio to text",
        &["speech to text", "transcription", "audio"],
    ),
    (
        "summarize",
        "Summarizes long documents",
        &["summary", "summarize text", "digest"],
    ),
    (
        "ocr",
        "Extracts text from scanned images",
        &["optical character recognition", "scan to text"],
    ),
    (
        "tts",
        "Speaks text aloud as audio",
        &["text to speech", "voice", "audio"],
    ),
    (
        "classify",
        "Classifies images into categories",
        &["image classification", "label picture"],
    ),
    (
        "sentiment",
        "Scores the sentiment of text",
        &["sentiment analysis", "opinion"],
    ),
    (
        "geocode",
        "Turns addresses into coordinates",
        &["geocoding", "address lookup", "map"],
    ),
    (
        "weather",
        "Forecasts local weather",
        &["weather forecast", "temperature"],
    ),
    (
        "calendar",
        "Schedules meetings in a calendar",
        &["schedule meeting", "calendar event"],
    ),
    (
        "compress",
        "Compresses files with zstd",
        &["compression", "zip", "archive"],
    ),
    (
        "pdf",
        "Converts documents to PDF",
        &["pdf conversion", "print document"],
    ),
    (
        "embed",
        "Computes text embeddings",
        &["vector embedding", "semantic search"],
    ),
    (
        "detect-objects",
        "Detects objects in photos",
        &["object detection", "bounding boxes"],
    ),
    (
        "price",
        "Looks up product prices",
        &["price lookup", "shopping"],
    ),
];

const FILLER: &[&str] = &[
    "fast",
    "accurate",
    "local",
    "private",
    "cheap",
    "robust",
    "batch",
    "streaming",
    "small",
    "large",
    "quality",
    "precise",
    "multilingual",
    "offline",
    "secure",
    "tiny",
    "edge",
    "mobile",
    "desktop",
    "server",
];

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn descriptor(key: &SecretKey, i: usize, now: UnixMillis, rng: &mut u64) -> Descriptor {
    // Popular kinds are more common (roughly Zipf).
    let k = {
        let r = (splitmix(rng) % 1000) as f64 / 1000.0;
        ((r * r * KINDS.len() as f64) as usize).min(KINDS.len() - 1)
    };
    let (kind, desc, intents) = KINDS[k];
    let f1 = FILLER[(splitmix(rng) % FILLER.len() as u64) as usize];
    let f2 = FILLER[(splitmix(rng) % FILLER.len() as u64) as usize];
    let mut d = testing::descriptor(key);
    d.name = BString::new(format!("{kind}-{i}")).unwrap();
    d.description = BString::new(format!("{desc}, {f1} and {f2}")).unwrap();
    d.intents = BVec::new(intents.iter().map(|t| BString::new(*t).unwrap()).collect()).unwrap();
    d.qos.latency_ms = 10 + (splitmix(rng) % 500) as u32;
    d.qos.cost = (splitmix(rng) % 50) as u32;
    d.seq = 1;
    d.issued_at = now;
    d.ttl_ms = 3_600_000;
    d
}

fn main() {
    const N: usize = 100_000;
    const PUBLISHERS: usize = 1_000;
    let now = UnixMillis(1_772_600_800_000);
    let keys: Vec<SecretKey> = (0..PUBLISHERS)
        .map(|i| {
            SecretKey::from_seed(*errand_core::Digest::of(&(i as u64).to_le_bytes()).as_bytes())
        })
        .collect();
    let mut rng = 42u64;
    let t = Instant::now();
    let descriptors: Vec<SignedDescriptor> = (0..N)
        .map(|i| {
            let k = &keys[i % PUBLISHERS];
            SignedDescriptor::sign(descriptor(k, i, now, &mut rng), k).unwrap()
        })
        .collect();
    eprintln!(
        "signed {N} descriptors in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // A signed descriptor keeps no encoding: sending, hashing or verifying
    // it re-derives its bytes from the body. What that costs, per
    // descriptor:
    let t = Instant::now();
    let encoded: Vec<Vec<u8>> = descriptors.iter().map(|d| d.to_bytes()).collect();
    println!(
        "re-deriving a descriptor's encoding (to_bytes): {:.2} µs per descriptor",
        t.elapsed().as_secs_f64() * 1e6 / N as f64
    );
    let limits = RegistryLimits {
        publish_burst: 1e9,
        publish_rate: 1e9,
        ..RegistryLimits::default()
    };

    // ---- query latency with 100,000 descriptors, under both rankings
    let arcs: Vec<Arc<SignedDescriptor>> =
        descriptors.iter().map(|d| Arc::new(d.clone())).collect();
    let t = Instant::now();
    for b in &encoded {
        black_box(SignedDescriptor::decode(b).unwrap());
    }
    let decode_ns = t.elapsed().as_nanos() as f64 / N as f64;
    let t = Instant::now();
    for d in &descriptors[..20_000] {
        d.verify().unwrap();
    }
    let verify_ns = t.elapsed().as_nanos() as f64 / 20_000.0;
    let intents = [
        "generate an image from text",
        "resize this picture to a thumbnail",
        "translate my text to French",
        "count the words in a document",
        "speech to text transcription of audio",
        "summarize this long report",
        "schedule a meeting next week",
        "fast private image classification",
        "detect objects and bounding boxes",
        "render markdown as html",
    ];
    let queries: Vec<Query> = intents
        .iter()
        .flat_map(|i| {
            let mut constrained = Query::intent(i, 10);
            constrained.max_latency_ms = Some(200);
            constrained.max_cost = Some(20);
            [Query::intent(i, 10), constrained]
        })
        .collect();
    for (label, ranking) in [
        ("relevance", Ranking::Relevance),
        ("sampled (the node's default)", Ranking::Sampled { seed: 7 }),
    ] {
        let mut index = Index::with_ranking(limits, ranking);
        let t = Instant::now();
        for d in &arcs {
            assert_eq!(
                index.insert_verified(d.clone(), now),
                PublishOutcome::Accepted
            );
        }
        let insert_ns = t.elapsed().as_nanos() as f64 / N as f64;
        eprintln!(
            "{label}: per descriptor: decode {}, verify {}, index insert {}",
            benchkit::fmt_ns(decode_ns),
            benchkit::fmt_ns(verify_ns),
            benchkit::fmt_ns(insert_ns)
        );
        assert_eq!(index.len(), N);
        let mut lat = Vec::new();
        let mut hits = 0;
        for round in 0..50 {
            for q in &queries {
                let t = Instant::now();
                let r = index.query(black_box(q), now);
                lat.push(t.elapsed().as_nanos() as f64);
                if round == 0 {
                    hits += r.len();
                }
            }
        }
        let (p50, p95, p99) = (
            benchkit::quantile(&lat, 0.5),
            benchkit::quantile(&lat, 0.95),
            benchkit::quantile(&lat, 0.99),
        );
        println!(
            "\n## Registry query with {N} descriptors, {label} ranking ({} queries, {} candidates per query on average)\n",
            lat.len(),
            hits / queries.len()
        );
        println!("| p50 | p95 | p99 | insert |\n|---|---|---|---|");
        println!(
            "| {} | {} | {} | {} |",
            benchkit::fmt_ns(p50),
            benchkit::fmt_ns(p95),
            benchkit::fmt_ns(p99),
            benchkit::fmt_ns(insert_ns)
        );
        println!("\nquery p50 {} (target <= 1 ms)", benchkit::fmt_ns(p50));
    }

    // ---- ingest: decode + verify + index, against raw verify of the same bytes
    let raw_key = SigningKey::from_bytes(&[3; 32]);
    let raw_vk = raw_key.verifying_key();
    let msg = descriptors[0].signed_bytes();
    let raw_sig = raw_key.sign(&msg);
    let mut fresh = Index::new(limits);
    let mut i = 0usize;
    let single = benchkit::paired(
        30,
        300,
        || raw_vk.verify_strict(black_box(&msg), &raw_sig).unwrap(),
        || {
            let bytes = &encoded[i % N];
            i += 1;
            let d = SignedDescriptor::decode(bytes).unwrap();
            if i > N {
                // A refresh of an entry already held: bump its seq.
                return;
            }
            black_box(fresh.publish(d, now));
        },
    );
    // Batched: 100 descriptors per Publish message, batch-verified.
    let mut batched = Index::new(limits);
    let mut j = 0usize;
    let batch = benchkit::paired(
        30,
        3,
        || {
            for _ in 0..100 {
                raw_vk.verify_strict(black_box(&msg), &raw_sig).unwrap();
            }
        },
        || {
            let list: Vec<SignedDescriptor> = (0..100)
                .map(|k| SignedDescriptor::decode(&encoded[(j * 100 + k) % N]).unwrap())
                .collect();
            j += 1;
            let refs: Vec<&SignedDescriptor> = list.iter().collect();
            signed::verify_batch(&refs).unwrap();
            for d in list {
                black_box(batched.insert_verified(Arc::new(d), now));
            }
        },
    );
    println!(
        "\n## Registry ingest of signed descriptors ({} signed bytes each)\n",
        msg.len()
    );
    println!("{}", benchkit::header());
    println!(
        "{}",
        single.row(
            "raw ed25519 verify_strict",
            "ingest one (decode + verify + index)"
        )
    );
    println!(
        "{}",
        batch.row(
            "100 raw ed25519 verify_strict",
            "ingest a publish of 100 (decode + batch verify + index)"
        )
    );
    println!(
        "\ningest rate, one per message: {:.0}/s = {:.1}% of raw verify; batched: {:.0}/s = {:.1}% of raw verify (target >= 80%)",
        1e9 / single.ours_ns,
        100.0 / single.ratio_median,
        100e9 / batch.ours_ns,
        100.0 / batch.ratio_median,
    );
}
