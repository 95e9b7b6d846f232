//! Every frame a peer sends is decoded as a request or a response.
#![no_main]

use errand_core::signed;
use errand_core::wire::{Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = signed::decode::<Request>(data) {
        assert_eq!(signed::encode(&r).expect("decoded request re-encodes"), data);
    }
    if let Ok(r) = signed::decode::<Response>(data) {
        assert_eq!(signed::encode(&r).expect("decoded response re-encodes"), data);
    }
});
