//! Signed requests arrive from requesters with every invocation, and sit in
//! evidence packages that auditors open.
#![no_main]

use errand_core::request::SignedRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = SignedRequest::decode(data) {
        assert_eq!(r.to_bytes(), data);
        // Re-derived from the body, not kept: same length, same digest.
        assert_eq!(r.encoded_len(), data.len());
        assert_eq!(r.digest(), errand_core::Digest::of(data));
        let _ = r.verify();
        let back = SignedRequest::from_json(&r.to_json()).expect("own JSON parses");
        assert_eq!(back.to_bytes(), data);
    }
});
