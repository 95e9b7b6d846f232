//! Receipt signing and verification against raw ed25519-dalek over the same
//! number of bytes, and batch verification of 10,000 receipts.
//!
//! `cargo bench -p errand-core --bench signing`

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use ed25519_dalek::{Signer, SigningKey};
use errand_core::receipt::{Expected, RequestId, SignedReceipt};
use errand_core::signed;
use errand_core::testing;

fn single(c: &mut Criterion) {
    let executor = testing::key(2);
    let body = testing::receipt(&executor, &testing::key(3));
    let signed = SignedReceipt::sign(body.clone(), &executor).unwrap();
    let bytes = signed.to_bytes();
    let msg = signed.signed_bytes();
    let n = msg.len();

    let raw_key = SigningKey::from_bytes(&[2; 32]);
    let raw_vk = raw_key.verifying_key();
    let raw_sig = raw_key.sign(&msg);

    let mut g = c.benchmark_group("receipt");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("raw_sign_{n}B"), |b| {
        b.iter(|| raw_key.sign(black_box(&msg)))
    });
    g.bench_function("receipt_sign", |b| {
        b.iter_batched(
            || body.clone(),
            |body| SignedReceipt::sign(body, &executor).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function(format!("raw_verify_{n}B"), |b| {
        b.iter(|| raw_vk.verify_strict(black_box(&msg), &raw_sig).unwrap())
    });
    g.bench_function("receipt_verify", |b| {
        b.iter(|| black_box(&signed).verify().unwrap())
    });
    g.bench_function("receipt_decode_and_verify", |b| {
        b.iter(|| SignedReceipt::from_bytes(black_box(&bytes)).unwrap())
    });
    g.finish();
}

fn batch(c: &mut Criterion) {
    const N: usize = 10_000;
    // 100 executors, as an auditor collecting receipts from a network would see.
    let keys: Vec<_> = (0..100u8)
        .map(|i| testing::key(i.wrapping_add(1)))
        .collect();
    let requester = testing::key(250);
    let receipts: Vec<SignedReceipt> = (0..N)
        .map(|i| {
            let k = &keys[i % keys.len()];
            let mut r = testing::receipt(k, &requester);
            r.request_id = RequestId((i as u128).to_le_bytes());
            SignedReceipt::sign(r, k).unwrap()
        })
        .collect();
    let refs: Vec<&SignedReceipt> = receipts.iter().collect();

    let mut g = c.benchmark_group("receipt_batch_10k");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("one_by_one", |b| {
        b.iter(|| {
            for r in &refs {
                r.verify().unwrap();
            }
        })
    });
    g.bench_function("batch", |b| {
        b.iter(|| signed::verify_batch(black_box(&refs)).unwrap())
    });
    g.finish();
}

/// Interleaved ratios: the figures BENCHMARKS.md records.
fn paired_ratios() {
    let executor = testing::key(2);
    let signed =
        SignedReceipt::sign(testing::receipt(&executor, &testing::key(3)), &executor).unwrap();
    let bytes = signed.to_bytes();
    let msg = signed.signed_bytes();
    let raw_key = SigningKey::from_bytes(&[2; 32]);
    let raw_vk = raw_key.verifying_key();
    let raw_sig = raw_key.sign(&msg);
    let body = signed.body().clone();

    println!(
        "\n## Receipt signing and verification ({} signed bytes)\n",
        msg.len()
    );
    println!("{}", benchkit::header());
    let sign = benchkit::paired(
        40,
        200,
        || {
            black_box(raw_key.sign(black_box(&msg)));
        },
        || {
            black_box(SignedReceipt::sign(body.clone(), &executor).unwrap());
        },
    );
    println!(
        "{}",
        sign.row("raw ed25519 sign", "receipt sign (encode + sign)")
    );
    let verify = benchkit::paired(
        40,
        200,
        || raw_vk.verify_strict(black_box(&msg), &raw_sig).unwrap(),
        || black_box(&signed).verify().unwrap(),
    );
    println!(
        "{}",
        verify.row("raw ed25519 verify_strict", "receipt verify")
    );
    let open = benchkit::paired(
        40,
        200,
        || raw_vk.verify_strict(black_box(&msg), &raw_sig).unwrap(),
        || {
            black_box(SignedReceipt::from_bytes(black_box(&bytes)).unwrap());
        },
    );
    println!(
        "{}",
        open.row("raw ed25519 verify_strict", "receipt decode + verify")
    );
    println!(
        "\nreceipt verify throughput: {:.1}% of raw; decode + verify: {:.1}% of raw (target >= 90%)",
        100.0 * verify.relative_throughput(),
        100.0 * open.relative_throughput()
    );

    // The requester's check of an answer. Before signed requests it was
    // the receipt's signature plus five field comparisons; now it also
    // checks the request's signature and every field the run depends on.
    let request = testing::signed_request(&executor, &testing::key(3));
    let output = b"\x89PNG...";
    let bind = benchkit::paired(
        40,
        200,
        || black_box(&signed).verify().unwrap(),
        || {
            black_box(&signed)
                .check_binding(&Expected {
                    request: &request,
                    output,
                })
                .unwrap()
        },
    );
    println!("\n## The requester's binding check\n");
    println!("{}", benchkit::header());
    println!(
        "{}",
        bind.row(
            "receipt verify (the v1 binding check's cost)",
            "check_binding: receipt + signed request, every field"
        )
    );
    println!(
        "\nrequester's binding check: {:.2}x the receipt signature check alone",
        bind.ratio_median
    );
    // The requester that signed the request itself (the client) skips
    // re-verifying its own signature; an auditor checks both.
    let expected = Expected {
        request: &request,
        output,
    };
    let answer = benchkit::paired(
        40,
        200,
        || black_box(&signed).check_binding(&expected).unwrap(),
        || black_box(&signed).check_answer(&expected).unwrap(),
    );
    println!(
        "{}",
        answer.row(
            "check_binding (an auditor's check)",
            "check_answer (the requester that signed the request)"
        )
    );

    const N: usize = 10_000;
    let keys: Vec<_> = (0..100u8)
        .map(|i| testing::key(i.wrapping_add(1)))
        .collect();
    let receipts: Vec<SignedReceipt> = (0..N)
        .map(|i| {
            let k = &keys[i % keys.len()];
            let mut r = testing::receipt(k, &testing::key(250));
            r.request_id = RequestId((i as u128).to_le_bytes());
            SignedReceipt::sign(r, k).unwrap()
        })
        .collect();
    let refs: Vec<&SignedReceipt> = receipts.iter().collect();
    let b = benchkit::paired(
        6,
        1,
        || {
            for r in &refs {
                r.verify().unwrap();
            }
        },
        || signed::verify_batch(black_box(&refs)).unwrap(),
    );
    println!("\n## Batch verification of {N} receipts from 100 executors\n");
    println!("{}", benchkit::header());
    println!("{}", b.row("one by one", "verify_batch"));
    println!("\nbatch speed-up: {:.2}x", 1.0 / b.ratio_median);
}

criterion_group!(benches, single, batch);

fn main() {
    benches();
    paired_ratios();
    Criterion::default().configure_from_args().final_summary();
}
