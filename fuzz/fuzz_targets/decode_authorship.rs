//! Tool authorships arrive from peers inside packages (canary and replay
//! material); decoded on their own by tools that check each part.
#![no_main]

use errand_core::package::SignedAuthorship;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = SignedAuthorship::decode(data) {
        assert_eq!(a.to_bytes(), data);
        // Re-derived from the body, not kept: same length, same digest.
        assert_eq!(a.encoded_len(), data.len());
        assert_eq!(a.digest(), errand_core::Digest::of(data));
        let _ = a.verify();
    }
});
