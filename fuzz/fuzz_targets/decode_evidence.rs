//! Evidence packages are handed to auditors by anyone.
#![no_main]

use errand_core::evidence::{self, Evidence, Supplied};
use errand_core::signed;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = signed::sniff(data);
    if let Ok(e) = signed::decode::<Evidence>(data) {
        assert_eq!(signed::encode(&e).expect("decoded evidence re-encodes"), data);
        let _ = evidence::verify(&e, &Supplied::default());
    }
});
