//! The event queue: a calendar queue that orders events exactly as a
//! binary heap keyed by (time, scheduling order) would.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Ev;

/// The event queue, a calendar queue: events wait in a slab; their keys
/// (time, scheduling order, slot) sit in one-millisecond buckets covering
/// the next 16 seconds, with later ones in a heap. Buckets are sorted when
/// reached, so events run in time order and simultaneous events in the
/// order they were scheduled, exactly as a heap would order them, but a
/// push or pop costs O(1) instead of O(log n) cache misses among hundreds
/// of thousands of pending timers.
pub(super) struct Queue {
    pub(super) slab: Vec<Option<Ev>>,
    pub(super) free: Vec<u32>,
    pub(super) seq: u64,
    /// `ring[b % RING]` holds bucket `b`, for `cursor <= b < cursor + RING`.
    pub(super) ring: Vec<Vec<(u64, u64, u32)>>,
    /// Keys in the ring.
    pub(super) in_ring: usize,
    /// Bit `b % RING` set: that bucket holds keys.
    pub(super) occupied: Vec<u64>,
    /// The bucket being drained.
    pub(super) cursor: u64,
    /// Whether the cursor's bucket is sorted (descending, so the next key
    /// is at the end).
    pub(super) sorted: bool,
    /// Keys beyond the ring.
    pub(super) far: BinaryHeap<Reverse<(u64, u64, u32)>>,
}

const BUCKET_US: u64 = 1_000;
const RING: u64 = 16_384;

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            slab: Vec::new(),
            free: Vec::new(),
            seq: 0,
            ring: (0..RING).map(|_| Vec::new()).collect(),
            in_ring: 0,
            occupied: vec![0; (RING / 64) as usize],
            cursor: 0,
            sorted: false,
            far: BinaryHeap::new(),
        }
    }
}

impl Queue {
    pub(super) fn push(&mut self, t: u64, ev: Ev) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(ev);
                s
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        self.seq += 1;
        self.insert((t, self.seq, slot));
    }

    pub(super) fn insert(&mut self, key: (u64, u64, u32)) {
        let b = (key.0 / BUCKET_US).max(self.cursor);
        if b >= self.cursor + RING {
            self.far.push(Reverse(key));
            return;
        }
        let i = (b % RING) as usize;
        self.occupied[i / 64] |= 1 << (i % 64);
        let bucket = &mut self.ring[i];
        if b == self.cursor && self.sorted {
            // Keep the bucket being drained in (descending) order.
            let at = bucket.partition_point(|k| *k > key);
            bucket.insert(at, key);
        } else {
            bucket.push(key);
        }
        self.in_ring += 1;
    }

    /// The next key, moving the cursor as far as needed.
    pub(super) fn next_key(&mut self) -> Option<(u64, u64, u32)> {
        loop {
            let i = (self.cursor % RING) as usize;
            if !self.ring[i].is_empty() {
                if !self.sorted {
                    self.ring[i].sort_unstable_by(|a, b| b.cmp(a));
                    self.sorted = true;
                }
                return self.ring[i].last().copied();
            }
            if self.in_ring == 0 {
                // Jump straight to the earliest far event.
                let Reverse(k) = *self.far.peek()?;
                self.cursor = k.0 / BUCKET_US;
            } else {
                // Skip to the next occupied bucket. Every far key lies
                // beyond every ring key, so none is skipped.
                self.cursor += self.distance_to_next_occupied();
            }
            self.sorted = false;
            while let Some(Reverse(k)) = self.far.peek().copied() {
                if k.0 / BUCKET_US >= self.cursor + RING {
                    break;
                }
                self.far.pop();
                self.insert(k);
            }
        }
    }

    /// Buckets from the cursor to the next occupied one (the ring holds
    /// at least one key, in another bucket).
    pub(super) fn distance_to_next_occupied(&self) -> u64 {
        let start = (self.cursor % RING) as usize;
        let words = self.occupied.len();
        for step in 0..=words {
            let w = (start / 64 + step) % words;
            let mut bits = self.occupied[w];
            if step == 0 {
                // Only buckets after the cursor's.
                bits &= u64::MAX.checked_shl((start % 64) as u32 + 1).unwrap_or(0);
            }
            if bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                return ((i + RING as usize - start) % RING as usize) as u64;
            }
        }
        1
    }

    pub(super) fn peek_time(&mut self) -> Option<u64> {
        self.next_key().map(|k| k.0)
    }

    pub(super) fn pop(&mut self) -> Option<(u64, Ev)> {
        let (t, _, slot) = self.next_key()?;
        let i = (self.cursor % RING) as usize;
        self.ring[i].pop();
        if self.ring[i].is_empty() {
            self.occupied[i / 64] &= !(1 << (i % 64));
        }
        self.in_ring -= 1;
        let ev = self.slab[slot as usize].take()?;
        self.free.push(slot);
        Some((t, ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use errand_core::trust::{Entropy, SplitMix};

    /// The calendar queue pops exactly what a binary heap keyed by (time,
    /// scheduling order) would, including events scheduled for the bucket
    /// being drained, far-future events and long idle gaps.
    #[test]
    fn calendar_queue_orders_like_a_heap() {
        let mut rng = SplitMix(3);
        let mut q = Queue::default();
        let mut reference: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
        let id = |ev: Ev| match ev {
            Ev::Start { req } => u64::from(req),
            _ => u64::MAX,
        };
        let mut seq = 0u64;
        let mut now = 0u64;
        for round in 0..200_000u32 {
            if rng.below(3) > 0 || reference.is_empty() {
                let delay = match rng.below(6) {
                    0 => 0,
                    1 => rng.below(1_000) as u64,
                    2 => rng.below(50_000) as u64,
                    3 => rng.below(40_000_000) as u64,
                    4 => 20_000_000 + rng.below(100_000) as u64,
                    _ => rng.below(3_000) as u64 * 1_000,
                };
                seq += 1;
                q.push(now + delay, Ev::Start { req: seq as u32 });
                reference.push(Reverse((now + delay, seq)));
            } else {
                let Reverse((t, s)) = reference.pop().unwrap();
                assert_eq!(q.peek_time(), Some(t), "round {round}");
                let (got, ev) = q.pop().unwrap();
                assert_eq!((got, id(ev)), (t, s), "round {round}");
                now = t;
            }
        }
        while let Some(Reverse((t, s))) = reference.pop() {
            assert_eq!(q.pop().map(|(t, ev)| (t, id(ev))), Some((t, s)));
        }
        assert!(q.pop().is_none());
    }
}
