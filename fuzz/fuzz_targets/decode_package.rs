//! Tool packages arrive from peers (action shipping, canary component fetch).
#![no_main]

use errand_core::package::Package;
use errand_core::signed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = signed::decode::<Package>(data) {
        assert_eq!(signed::encode(&p).expect("decoded package re-encodes"), data);
        let _ = p.descriptor.verify();
        let _ = p.verify();
        let _ = p.reference().check(&p);
    }
});
