//! Structure-aware: whole wire messages built from fuzzer bytes (errand-core's
//! `arbitrary` feature), rather than bytes hoping to be one.
//!
//! Every message that encodes must decode to the same value and re-encode to
//! the same bytes, and be refused by the decoder of the other direction. The
//! session is then played through the registry's pure request handling
//! (`discovery::Index`: `Publish` and `Query`), the requester's merge of
//! candidate lists, and the receipt checks an `Invoked` answer goes through;
//! none of it may panic, and what a query returns must satisfy the query.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use errand_core::discovery::{self, Index, Ranking, RegistryLimits};
use errand_core::receipt::Expected;
use errand_core::signed::{self, Object};
use errand_core::wire::{Request, Response};
use errand_core::{Signed, UnixMillis};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Session {
    requests: Vec<Request>,
    responses: Vec<Response>,
    /// Milliseconds after the first published descriptor's issue time at
    /// which the registry handles everything (so descriptors are live).
    clock_offset: u16,
    /// `None` ranks by relevance, `Some(seed)` samples.
    sampled: Option<u64>,
}

/// Encodes `m`; if it encodes, it must decode to itself, re-encode to the
/// same bytes, and not decode as `Other`.
fn round_trip<T: Object + PartialEq + std::fmt::Debug, Other: Object>(m: &T) {
    let Ok(bytes) = signed::encode(m) else {
        return;
    };
    let back: T = match signed::decode(&bytes) {
        Ok(back) => back,
        Err(e) => panic!("an encoded message does not decode: {e}\n{m:?}"),
    };
    assert_eq!(&back, m, "decoding changed the message");
    assert_eq!(
        signed::encode(&back).expect("a decoded message re-encodes"),
        bytes
    );
    assert!(signed::decode::<Other>(&bytes).is_err());
}

fuzz_target!(|s: Session| {
    for r in &s.requests {
        round_trip::<Request, Response>(r);
    }
    for r in &s.responses {
        round_trip::<Response, Request>(r);
    }

    // The registry: every Publish, then every Query, at one instant.
    let now = s
        .requests
        .iter()
        .find_map(|r| match r {
            Request::Publish(ds) => ds.first().map(|d| d.body().issued_at),
            _ => None,
        })
        .unwrap_or(UnixMillis(0))
        .plus_ms(u64::from(s.clock_offset));
    let limits = RegistryLimits {
        max_entries: 64,
        max_per_publisher: 8,
        ..RegistryLimits::default()
    };
    let mut index = match s.sampled {
        None => Index::new(limits),
        Some(seed) => Index::with_ranking(limits, Ranking::Sampled { seed }),
    };
    for r in &s.requests {
        if let Request::Publish(ds) = r {
            for d in ds {
                // Fuzzed signatures do not verify; index them as if they had.
                let _ = index.insert_verified(Arc::new(d.clone()), now);
            }
        }
    }
    for r in &s.requests {
        if let Request::Query(q) = r {
            let found = index.query(q, now);
            assert!(found.len() <= usize::from(q.limit.max(1)));
            for c in &found {
                let d = c.descriptor.body();
                assert!(q.admits(d), "the registry returned {d:?} for {q:?}");
                assert!(d.check_fresh(now).is_ok());
            }
        }
    }
    index.expire(now.plus_ms(u64::from(u32::MAX)));
    assert!(index.is_empty(), "entries outlive their TTL");

    // The requester: merge candidate lists, check receipts of invocations.
    let answers: Vec<Vec<Signed<_>>> = s
        .responses
        .iter()
        .filter_map(|r| match r {
            Response::Candidates(c) => Some(c.to_vec()),
            _ => None,
        })
        .collect();
    let total: usize = answers.iter().map(Vec::len).sum();
    assert!(discovery::merge(answers).len() <= total);
    let asked = s.requests.iter().find_map(|r| match r {
        Request::Invoke(i) => Some(&i.request),
        _ => None,
    });
    for r in &s.responses {
        if let Response::Invoked(inv) = r
            && let Some(request) = asked
        {
            let _ = inv.receipt.check_binding(&Expected {
                request,
                output: &inv.output,
            });
            let _ = request
                .body()
                .check_receipt(request.digest(), inv.receipt.body());
        }
        if let Response::Package(Some(p)) = r {
            p.verify().expect("an arbitrary package is signed for real");
            p.reference()
                .check(p)
                .expect("a package matches its own reference");
        }
    }
});
