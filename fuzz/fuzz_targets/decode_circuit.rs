//! What a relay reads from any peer's circuit stream, and what every node
//! reads from any datagram that might be a hole-punching probe
//! (`errand_core::reach`: `PacketFrames`, `parse_probe`).
//!
//! The first byte sets the size of the pieces the rest arrives in; however
//! it is cut, the packets must be the same as from the whole stream at
//! once, and re-framed they must be the stream's prefix up to the first bad
//! frame.
#![no_main]

use errand_core::reach::{self, CircuitEnd, PacketFrames};
use libfuzzer_sys::fuzz_target;

/// The packets of `pieces`, fed one after another, and how the stream
/// ended (`None`: still waiting for more).
fn split<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Vec<Vec<u8>>, Option<CircuitEnd>) {
    let mut frames = PacketFrames::default();
    let mut out = Vec::new();
    for piece in pieces {
        frames.push(piece);
        loop {
            match frames.next_packet() {
                Ok(Some(p)) => out.push(p.to_vec()),
                Ok(None) => break,
                Err(end) => return (out, Some(end)),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    if let Some(peer) = reach::parse_probe(data) {
        assert_eq!(&reach::probe(peer)[..], data);
    }
    let Some((&k, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(k).max(1);
    let whole = split(std::iter::once(stream));
    let cut = split(stream.chunks(piece));
    assert_eq!(whole, cut);
    let mut again = Vec::new();
    for p in &whole.0 {
        assert!(reach::frame_packet(&mut again, p));
    }
    assert_eq!(&stream[..again.len()], &again[..]);
});
