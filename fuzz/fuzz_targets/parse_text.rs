//! Text forms typed or pasted by people: peer ids, digests, key files.
#![no_main]

use errand_core::{Digest, PeerId, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = s.parse::<PeerId>() {
            assert_eq!(id.to_string().parse::<PeerId>().expect("round trip"), id);
        }
        let _ = s.parse::<Digest>();
        let _ = SecretKey::from_key_file(s);
        let _ = s.parse::<errand_core::descriptor::Version>();
    }
});
