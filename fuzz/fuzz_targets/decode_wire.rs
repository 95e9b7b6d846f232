//! Every frame a peer sends is decoded as a request or a response.
#![no_main]

use errand_core::signed::{self, Object};
use errand_core::wire::{Request, Response};
use libfuzzer_sys::fuzz_target;

/// `again`, the re-encoding of `data`, is `data` itself, but for the header's
/// version byte when `data` was an older version this build still reads
/// (it re-encodes under the current one).
fn same_but_version<T: Object>(data: &[u8], again: &[u8]) {
    let at = 1 + usize::from(data[0]);
    assert_eq!(again[at], T::VERSION);
    assert!((T::MIN_VERSION..=T::VERSION).contains(&data[at]));
    assert_eq!(again[..at], data[..at]);
    assert_eq!(again[at + 1..], data[at + 1..]);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = signed::decode::<Request>(data) {
        let again = signed::encode(&r).expect("decoded request re-encodes");
        same_but_version::<Request>(data, &again);
    }
    if let Ok(r) = signed::decode::<Response>(data) {
        let again = signed::encode(&r).expect("decoded response re-encodes");
        same_but_version::<Response>(data, &again);
    }
});
