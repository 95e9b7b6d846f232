//! Tool authorships arrive from peers inside packages (canary and replay
//! material); decoded on their own by tools that check each part.
#![no_main]

use errand_core::package::SignedAuthorship;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = SignedAuthorship::decode(data) {
        assert_eq!(a.to_bytes(), data);
        let _ = a.verify();
    }
});
