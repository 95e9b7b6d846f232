//! Descriptors arrive from any peer that publishes to a registry.
#![no_main]

use errand_core::descriptor::SignedDescriptor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = SignedDescriptor::decode(data) {
        // Whatever decodes must re-encode to exactly the same bytes.
        assert_eq!(d.to_bytes(), data);
        // Re-derived from the body, not kept: same length, same digest.
        assert_eq!(d.encoded_len(), data.len());
        assert_eq!(d.digest(), errand_core::Digest::of(data));
        let _ = d.verify();
        let _ = d.body().check_fresh(errand_core::UnixMillis(0));
        // Its JSON rendering keeps its format version, so its signed bytes.
        let json = SignedDescriptor::from_json(&d.to_json()).expect("rendered JSON reads back");
        assert_eq!(json.signed_bytes(), d.signed_bytes());
    }
});
