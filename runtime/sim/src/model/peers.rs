//! The peers: the catalogue of capability kinds, what each peer hosts,
//! the descriptors it publishes and its refreshes to its registry.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use errand_core::bounded::{BString, BVec};
use errand_core::descriptor::{
    Descriptor, Intent, MediaSpec, MediaType, Name, NetAddr, Qos, SignedDescriptor, Tiers, Version,
};
use errand_core::discovery::RegistryLimits;
use errand_core::wire::Query;
use errand_core::{Digest, PeerId};

use super::{Attack, Ev, World};

/// Kinds of capability in the catalogue, most popular first: the paper's two
/// steps (image generation, publishing), then others.
const CATALOGUE: &[(&str, &str, [&str; 2])] = &[
    (
        "imagegen",
        "Generates images from text prompts",
        ["generate image", "text to image"],
    ),
    (
        "publish",
        "Publishes content with a content address",
        ["publish content", "share"],
    ),
    (
        "thumbnail",
        "Resizes images to thumbnails",
        ["resize image", "thumbnail"],
    ),
    (
        "markdown",
        "Renders Markdown as HTML",
        ["render markdown", "html"],
    ),
    (
        "text-stats",
        "Counts words and terms",
        ["word count", "statistics"],
    ),
    (
        "translate",
        "Translates text",
        ["translate text", "language"],
    ),
    (
        "transcribe",
        "Transcribes speech",
        ["speech to text", "audio"],
    ),
    ("summarize", "Summarizes documents", ["summarize", "digest"]),
    ("ocr", "Reads text in images", ["ocr", "scan to text"]),
    ("classify", "Labels images", ["classify image", "labels"]),
    (
        "geocode",
        "Finds coordinates",
        ["geocode", "address lookup"],
    ),
    ("forecast", "Forecasts weather", ["weather", "forecast"]),
];

/// Kind `k`'s capability name.
pub fn kind_name(k: usize) -> String {
    match CATALOGUE.get(k) {
        Some(c) => c.0.to_owned(),
        None => format!("kind{k}"),
    }
}

/// The intent text a requester uses for kind `k`.
pub fn intent(k: usize) -> String {
    match CATALOGUE.get(k) {
        Some(c) => format!("{} {}", c.2[0], c.1.to_lowercase()),
        None => format!("kind{k} service"),
    }
}

/// The query a requester sends for kind `k`: its intent, constrained to the
/// kind's capability name.
pub fn query(k: usize, limit: u16) -> Query {
    let mut q = Query::intent(&intent(k), limit.clamp(1, 100));
    q.name = Some(BString::truncate_from(&kind_name(k)));
    q
}

#[derive(Debug, Clone)]
pub(super) struct Cap {
    pub(super) kind: u16,
    pub(super) version: u32,
    pub(super) seq: u64,
    pub(super) alive: bool,
    pub(super) slow: bool,
    pub(super) public: bool,
    /// The host's speed: processing time is scaled by this.
    pub(super) speed: f32,
    /// Bumped when the capability disappears or comes back, so that its
    /// old drift timers are ignored.
    pub(super) epoch: u32,
}

#[derive(Debug, Clone)]
pub(super) struct Peer {
    pub(super) id: PeerId,
    pub(super) generation: u32,
    pub(super) region: u16,
    /// The registry it publishes to.
    pub(super) registry: u16,
    pub(super) sybil: Option<Attack>,
    pub(super) served: u32,
    pub(super) caps: Vec<Cap>,
    /// Its refresh timer's generation: one timer per peer, republishing
    /// all its live capabilities in one message. A republish on a change
    /// starts a new generation, so the old timer is ignored; the timer
    /// lapses when no capability is left alive.
    pub(super) refresh_gen: u32,
    /// Stopped by [`World::stop_peer`]: no capability comes back on it.
    pub(super) stopped: bool,
}

/// Hashes the simulator's peer ids (digests it made itself, so not chosen
/// by an adversary) by their first bytes, not with SipHash.
#[derive(Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 = (self.0 ^ u64::from_le_bytes(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The simulator's peer ids (every identity of every peer, old ones
/// included) to the peer behind them.
///
/// The ids are SHA-256 digests the simulator made itself, so their first
/// 16 bytes tell them apart (two of a million share them with a
/// probability of about 2^-88): the map keys by those, in 20-byte
/// buckets rather than 36, which is 20 bytes less per peer at 100,000
/// peers and more.
#[derive(Debug, Clone, Default)]
pub(super) struct IdMap(HashMap<[u8; 16], u32, std::hash::BuildHasherDefault<IdHasher>>);

impl IdMap {
    fn key(id: &PeerId) -> [u8; 16] {
        let mut k = [0; 16];
        k.copy_from_slice(&id.0[..16]);
        k
    }

    /// Records that `id` is peer `index`'s.
    pub(super) fn insert(&mut self, id: PeerId, index: u32) {
        self.0.insert(Self::key(&id), index);
    }

    /// The peer behind `id`.
    pub(super) fn get(&self, id: &PeerId) -> Option<&u32> {
        self.0.get(&Self::key(id))
    }
}

impl FromIterator<(PeerId, u32)> for IdMap {
    fn from_iter<I: IntoIterator<Item = (PeerId, u32)>>(iter: I) -> IdMap {
        IdMap(
            iter.into_iter()
                .map(|(id, i)| (Self::key(&id), i))
                .collect(),
        )
    }
}

pub(super) fn peer_id(index: u32, generation: u32) -> PeerId {
    let d = Digest::of_parts(&[
        b"errand-sim/peer",
        &index.to_le_bytes(),
        &generation.to_le_bytes(),
    ]);
    PeerId(d.0)
}

/// Registry quotas for simulated registries: sized for the whole network,
/// with rate limits out of the way (publishers here are well behaved about
/// rates; the attack is in what they publish).
pub(super) fn sim_limits() -> RegistryLimits {
    RegistryLimits {
        max_entries: 4_000_000,
        max_per_publisher: 1_024,
        publish_rate: 1e9,
        publish_burst: 1e9,
    }
}

/// The words of kind `k`'s descriptors, built once per run: an honest
/// peer's, or an attractive Sybil's (stuffed with every word a requester
/// might use, twice).
#[derive(Debug, Clone)]
pub(super) struct Words {
    name: Name,
    description: BString<1024>,
    intents: BVec<Intent, 32>,
    media: MediaType,
    component: Digest,
}

impl Words {
    /// Kind `k`'s words, honest (`[0]`) and attractive (`[1]`).
    pub(super) fn of_kind(k: usize) -> [Words; 2] {
        let (desc, intents): (String, Vec<String>) = match CATALOGUE.get(k) {
            Some(e) => (
                e.1.to_owned(),
                e.2.iter().map(|s| (*s).to_owned()).collect(),
            ),
            None => (format!("Serves kind {k}"), vec![format!("kind{k} service")]),
        };
        // Keyword stuffing: every word a requester might use, twice.
        let stuffed = format!("{desc}. {}. {}", intents.join(". "), intent(k));
        let mut stuffed_intents = intents.clone();
        stuffed_intents.extend(intents.iter().cloned());
        stuffed_intents.push("fast".into());
        stuffed_intents.push("best quality".into());
        let words = |desc: &str, intents: &[String]| Words {
            name: BString::truncate_from(&kind_name(k)),
            description: BString::truncate_from(desc),
            intents: BVec::new(intents.iter().map(|s| BString::truncate_from(s)).collect())
                .unwrap_or_default(),
            media: BString::truncate_from("application/octet-stream"),
            component: Digest::of_parts(&[b"component", &(k as u64).to_le_bytes()]),
        };
        [words(&desc, &intents), words(&stuffed, &stuffed_intents)]
    }
}

impl World {
    pub(super) fn processing_ms(&self, cap: &Cap) -> f64 {
        let kind = f64::from(cap.kind % 4);
        self.p.processing_ms
            * (1.0 + kind * 0.5)
            * f64::from(cap.speed)
            * if cap.slow { 4.0 } else { 1.0 }
    }

    pub(super) fn descriptor(&self, peer: usize, cap: usize) -> Descriptor {
        let p = &self.peers[peer];
        let c = &p.caps[cap];
        let k = c.kind as usize;
        let attractive = p.sybil.is_some() && self.p.sybil_attractive;
        let words = &self.words[k][usize::from(attractive)];
        let declared = self.processing_ms(c);
        Descriptor {
            publisher: p.id,
            name: words.name.clone(),
            version: Version::new(c.version, 0, 0),
            description: words.description.clone(),
            intents: words.intents.clone(),
            input: MediaSpec {
                media_type: words.media.clone(),
                schema: None,
            },
            output: MediaSpec {
                media_type: words.media.clone(),
                schema: None,
            },
            component: c.public.then_some(words.component),
            package: None,
            qos: Qos {
                latency_ms: if attractive { 1 } else { declared as u32 },
                cost: if attractive { 0 } else { 1 + (k % 5) as u32 },
                fuel: 0,
                max_input_bytes: 1 << 20,
            },
            tiers: Tiers {
                canary: true,
                receipts: true,
                replay: c.public,
            },
            addrs: BVec::new(vec![NetAddr::Quic(SocketAddr::from((
                Ipv4Addr::from(0x0a00_0000 + peer as u32),
                4433,
            )))])
            .unwrap_or_default(),
            seq: c.seq,
            issued_at: self.wall(self.now),
            ttl_ms: self.p.ttl_ms,
            withdrawn: false,
        }
    }

    /// Signs capability `cap`'s next descriptor (its seq bumped).
    fn next_descriptor(&mut self, peer: usize, cap: usize) -> Option<Arc<SignedDescriptor>> {
        self.peers[peer].caps[cap].seq += 1;
        SignedDescriptor::with_placeholder_signature(self.descriptor(peer, cap))
            .ok()
            .map(Arc::new)
    }

    /// Publishes every live capability of `peer` in one message, as a
    /// node's refresh does. Returns whether it has any live capability.
    pub(super) fn publish_alive(&mut self, peer: usize) -> bool {
        let mut descs = Vec::with_capacity(self.peers[peer].caps.len());
        let mut any = false;
        for cap in 0..self.peers[peer].caps.len() {
            if self.peers[peer].caps[cap].alive {
                any = true;
                if let Some(d) = self.next_descriptor(peer, cap) {
                    descs.push(d);
                }
            }
        }
        self.send_publish(peer, descs);
        any
    }

    /// What a node does when one of its capabilities changes (or comes
    /// back, or it takes a new identity): it republishes all of them at
    /// once, in one message, and restarts its refresh timer from there.
    pub(super) fn republish(&mut self, peer: usize) {
        self.peers[peer].refresh_gen = self.peers[peer].refresh_gen.wrapping_add(1);
        if self.publish_alive(peer) {
            let refresh_gen = self.peers[peer].refresh_gen;
            let t = self.now + super::us(f64::from(self.p.refresh_ms));
            self.at(
                t,
                Ev::Refresh {
                    peer: peer as u32,
                    refresh_gen,
                },
            );
        }
    }

    /// One `Publish` message to the peer's registry and its acknowledgement,
    /// whatever the number of descriptors in it.
    fn send_publish(&mut self, peer: usize, descs: Vec<Arc<SignedDescriptor>>) {
        if descs.is_empty() {
            return;
        }
        // Descriptors with their signatures, framing; then a small
        // acknowledgement.
        let bytes = descs.iter().map(|d| d.encoded_len() as u64).sum::<u64>() + 16;
        self.metrics.publish_messages += 2;
        self.metrics.publish_bytes += bytes + 16;
        let region = self.peers[peer].region;
        let r = self.peers[peer].registry;
        let lat = self.latency(region, self.registries[r as usize].0);
        self.at(self.now + lat, Ev::Arrive { registry: r, descs });
    }
}
