//! Discovery: the registry's index of soft-state descriptors, intent
//! matching, and merging answers from several registries.
//!
//! [`Index`] is the registry, minus the network. It holds only descriptors
//! that are fresh, newest per `(publisher, name)`, and within the
//! publisher's quotas; [`Index::expire`] drops what was not refreshed in
//! time. Its caller verifies signatures first (so it can batch them).
//!
//! ## Matching
//!
//! A [`Query`] gives intent text plus constraints. Constraints filter:
//! declared latency and cost at most the bounds, every required tier
//! supported, input and output media types equal (parameters ignored), the
//! exact name, a compatible version (same major, at least the one asked).
//! The intent is ranked with **BM25** over each descriptor's words: the
//! name counts three times, each intent tag twice, the description once.
//! Words are lower-cased, stop words dropped, and suffixes stripped so that
//! "generate", "generated" and "generation" meet. The final score folds in
//! the declared QoS, so among equally good matches faster and cheaper wins:
//!
//! ```text
//! score = bm25 × (0.5 + 0.5 × qos),   qos = 1 / ((1 + latency_ms/1000) × (1 + cost/100))
//! ```
//!
//! An empty intent matches everything that passes the constraints, ranked by
//! QoS alone. Equal scores are ordered by a stable per-entry key, a hash of
//! the publisher and the name, so answers are deterministic.
//!
//! ## Ranking under index poisoning
//!
//! Everything the score above weighs is declared by the publisher, so it is
//! gameable: a Sybil that repeats the popular words and claims 1 ms at no
//! cost outranks every honest provider, and enough Sybil identities fill
//! the whole answer, leaving requesters no honest candidate to fall back
//! to. [`Ranking::Sampled`], what Errand's registries run by default, ranks
//! by what cannot be inflated: the share of the intent's words (weighted by
//! rarity) that a descriptor contains at all, so repeating words gains
//! nothing; matches that cover the intent equally are ordered at random,
//! afresh for every query; declared QoS does not rank (queries filter on
//! it, and requesters weigh it against reputation). A flooded index then
//! shows each requester a fair sample of the relevant providers.
//! [`Ranking::Relevance`] is the BM25 order above.
//!
//! ## Hashing
//!
//! The index's hash maps are keyed by what publishers choose (peer ids,
//! capability names, words), so they hash with foldhash under a secret key
//! ([`Index::keyed`]): someone who has read this code but not the key
//! cannot pick inputs that collide. The key is passed in (this crate does
//! no I/O): a registry draws it from the operating system, a simulator from
//! its seed. Hashing never changes what a query returns.
//!
//! ## Complexity
//!
//! Inserting is `O(words + the publisher's names)`; a refresh whose words
//! did not change touches no postings and no expiry entry. A query costs
//! `O(Σ postings of its terms)`. Postings of replaced or expired entries
//! are dropped lazily and compacted once they outnumber the live ones.
//!
//! ## Memory
//!
//! Each thing is held once: a descriptor decoded, without its encoding
//! (see [`crate::signed::Signed`]); the term lists of entries with the
//! same words, shared; one expiry entry per slot, moved later only when
//! it comes up. [`Index::expire`] removes entries in the order of their
//! current expiry (then slot), whatever their refreshes.

use std::borrow::Borrow;
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::hash::BuildHasher as _;

use foldhash::fast::FixedState;
use std::sync::Arc;

use crate::descriptor::{Descriptor, Name, SignedDescriptor, Tiers, Version};
use crate::identity::PeerId;
use crate::time::UnixMillis;
use crate::wire::{PublishOutcome, Query};

/// Words too common to rank by.
fn is_stop_word(w: &str) -> bool {
    matches!(
        w,
        "a" | "an"
            | "and"
            | "are"
            | "as"
            | "at"
            | "be"
            | "by"
            | "for"
            | "from"
            | "in"
            | "into"
            | "is"
            | "it"
            | "its"
            | "me"
            | "my"
            | "of"
            | "on"
            | "or"
            | "please"
            | "some"
            | "that"
            | "the"
            | "this"
            | "to"
            | "with"
            | "i"
            | "want"
            | "need"
            | "can"
            | "you"
    )
}

/// A light suffix stripper (see the module docs). It errs on the side of
/// leaving words alone: stems shorter than four letters are not cut.
pub fn stem(word: &str) -> String {
    let (base, repl) = stem_parts(word);
    format!("{base}{repl}")
}

/// [`stem`] as the part of `w` it keeps and what it appends, so a caller
/// with a buffer need not allocate.
fn stem_parts(w: &str) -> (&str, &'static str) {
    fn cut<'a>(w: &'a str, suffix: &str, repl: &'static str) -> Option<(&'a str, &'static str)> {
        let base = w.strip_suffix(suffix)?;
        (base.len() >= 4 || (repl.is_empty() && base.len() >= 3)).then_some((base, repl))
    }
    if let Some(s) = cut(w, "ies", "y") {
        return s;
    }
    if let Some(s) = cut(w, "sses", "ss") {
        return s;
    }
    for (suffix, repl) in [
        ("ations", "at"),
        ("ation", "at"),
        ("ings", ""),
        ("ing", ""),
        ("ers", ""),
        ("er", ""),
        ("ed", ""),
        ("es", ""),
    ] {
        if let Some(s) = cut(w, suffix, repl) {
            return s;
        }
    }
    if w.ends_with('s')
        && !w.ends_with("ss")
        && !w.ends_with("us")
        && !w.ends_with("is")
        && let Some(s) = cut(w, "s", "")
    {
        return s;
    }
    if let Some(s) = cut(w, "e", "") {
        return s;
    }
    (w, "")
}

/// Splits text into matchable terms: lower-cased alphanumeric words, stop
/// words dropped, stemmed.
pub fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let (mut lower, mut stemmed) = (String::new(), String::new());
    for_each_term(text, &mut lower, &mut stemmed, |t| out.push(t.to_owned()));
    out.into_iter()
}

/// Calls `f` with each term of `text`, as [`terms`] yields them, reusing
/// two buffers instead of allocating per word. Indexing and queries both
/// split words here, so a word is the same term on both sides (each
/// letter lower-cased on its own, and a final `ς` folded to `σ`, so
/// `ΟΔΟΣ`, `οδος` and `οδοσ` are one term).
fn for_each_term(text: &str, lower: &mut String, stemmed: &mut String, mut f: impl FnMut(&str)) {
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        lower.clear();
        if w.is_ascii() {
            lower.push_str(w);
            lower.make_ascii_lowercase();
        } else {
            // Final sigma folds to sigma, as Unicode case folding does.
            lower.extend(
                w.chars()
                    .flat_map(char::to_lowercase)
                    .map(|c| if c == 'ς' { 'σ' } else { c }),
            );
        }
        if is_stop_word(lower) {
            continue;
        }
        let (base, repl) = stem_parts(lower);
        stemmed.clear();
        stemmed.push_str(base);
        stemmed.push_str(repl);
        f(stemmed);
    }
}

/// The part of a media type before any parameters, lower-cased.
fn essence(media: &str) -> String {
    media
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn tiers_cover(have: &Tiers, need: &Tiers) -> bool {
    (!need.canary || have.canary)
        && (!need.receipts || have.receipts)
        && (!need.replay || have.replay)
}

fn version_compatible(have: Version, want: Version) -> bool {
    have.major == want.major && have >= want
}

impl Query {
    /// A query for `intent` with no constraints, asking for `limit` candidates.
    pub fn intent(intent: &str, limit: u16) -> Query {
        Query {
            intent: crate::bounded::BString::truncate_from(intent),
            limit,
            ..Query::default()
        }
    }

    /// Whether `d` satisfies every constraint (not the intent). Requesters
    /// re-check registry answers with this.
    pub fn admits(&self, d: &Descriptor) -> bool {
        !d.withdrawn
            && self.max_latency_ms.is_none_or(|m| d.qos.latency_ms <= m)
            && self.max_cost.is_none_or(|m| d.qos.cost <= m)
            && tiers_cover(&d.tiers, &self.tiers)
            && self
                .input
                .as_ref()
                .is_none_or(|m| essence(m) == essence(&d.input.media_type))
            && self
                .output
                .as_ref()
                .is_none_or(|m| essence(m) == essence(&d.output.media_type))
            && self.name.as_ref().is_none_or(|n| *n == d.name)
            && self
                .version
                .is_none_or(|v| version_compatible(d.version, v))
            && self.publisher.is_none_or(|p| p == d.publisher)
    }
}

/// The QoS factor of the ranking (see the module docs).
pub fn qos_factor(d: &Descriptor) -> f32 {
    1.0 / ((1.0 + d.qos.latency_ms as f32 / 1000.0) * (1.0 + d.qos.cost as f32 / 100.0))
}

/// Registry quotas and bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegistryLimits {
    /// Most live entries in the index.
    pub max_entries: usize,
    /// Most live capabilities per publisher.
    pub max_per_publisher: u32,
    /// Sustained descriptors per second per publisher.
    pub publish_rate: f64,
    /// Burst allowance per publisher.
    pub publish_burst: f64,
}

impl Default for RegistryLimits {
    /// One million entries; 256 capabilities per publisher, each refreshed
    /// every 5 s comfortably within 100 descriptors/s, with a burst of 1,000
    /// for a node that (re)starts.
    fn default() -> RegistryLimits {
        RegistryLimits {
            max_entries: 1_000_000,
            max_per_publisher: 256,
            publish_rate: 100.0,
            publish_burst: 1_000.0,
        }
    }
}

/// A held descriptor. Its sequence number and whether it is a tombstone
/// are read from the descriptor itself; its generation, length and expiry
/// from the slot's [`SlotMeta`], which copies what the query loops and
/// `expire` need so that they touch no descriptor.
#[derive(Debug)]
struct Entry {
    descriptor: Arc<SignedDescriptor>,
    /// Its weighted terms, sorted by term id: shared with every entry that
    /// indexes the same words (see [`Index::term_lists`]).
    terms: TermList,
    /// Where this slot sits in `by_name[name]`, for O(1) removal.
    name_pos: u32,
}

impl Entry {
    fn withdrawn(&self) -> bool {
        self.descriptor.body().withdrawn
    }
}

/// What the query loops need about a slot, packed densely so scoring and
/// filtering tens of thousands of candidates stays in cache.
#[derive(Debug, Clone, Copy, Default)]
struct SlotMeta {
    generation: u32,
    /// Present, not a tombstone.
    live: bool,
    tiers: u8,
    /// Weighted term count.
    len: u32,
    latency_ms: u32,
    cost: u32,
    expires: u64,
    qos: f32,
    /// Tie-break among equal scores: a hash of publisher and name.
    key: u64,
}

fn tie_key(publisher: &PeerId, name: &Name) -> u64 {
    let d = crate::digest::Digest::of_parts(&[&publisher.0, name.as_bytes()]);
    u64::from_be_bytes([
        d.0[0], d.0[1], d.0[2], d.0[3], d.0[4], d.0[5], d.0[6], d.0[7],
    ])
}

fn tier_bits(t: &Tiers) -> u8 {
    u8::from(t.canary) | (u8::from(t.receipts) << 1) | (u8::from(t.replay) << 2)
}

#[derive(Debug, Clone, Copy)]
struct Posting {
    slot: u32,
    generation: u32,
    tf: u16,
}

#[derive(Debug, Default)]
struct TermState {
    postings: Vec<Posting>,
    df: u32,
}

#[derive(Debug)]
struct Publisher {
    live: u32,
    tokens: f64,
    last: UnixMillis,
    /// Its slots (live entries and tombstones), one per name, each with
    /// 32 bits of its name's keyed hash, so a scan finds a name without
    /// touching other entries. Live ones are bounded by the per-publisher
    /// quota; tombstones only by the index's bound on all slots. Exactly
    /// sized: most publishers hold a handful.
    slots: Box<[(u32, u32)]>,
}

/// The index's hash maps: foldhash under the index's key.
type KeyedMap<K, V> = HashMap<K, V, FixedState>;

/// An entry's `(term id, weight)` pairs, sorted by term id.
type TermList = Arc<[(u32, u16)]>;

/// Makes room for one more item in a list that grows with the index (a
/// term's postings): by a quarter rather than doubling, so a list of a
/// hundred thousand postings keeps about an eighth spare on average rather
/// than a quarter to a half, at the cost of more (still amortised O(1))
/// copying as it grows.
fn grow_by_a_quarter<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 4 + 4);
    }
}

/// A candidate with its score.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The descriptor.
    pub descriptor: Arc<SignedDescriptor>,
    /// Its ranking score (higher is better).
    pub score: f32,
}

/// How a registry orders its matches (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// BM25 over the descriptor's words, times declared QoS; ties by a
    /// stable key. Deterministic, and gameable by what publishers declare.
    Relevance,
    /// Share of the intent covered (word presence, weighted by rarity),
    /// then a fresh random order per query drawn from `seed`.
    Sampled {
        /// Seeds the per-query orders; a registry service draws it from
        /// the operating system, a simulator from its own seed.
        seed: u64,
    },
}

/// Coverage that lands in the top bucket under `Sampled` (32 buckets).
const FULL_COVERAGE: f32 = 1.0 - 0.5 / 32.0;

/// A stride in `1..n` coprime with `n`, derived from `x`.
fn coprime_stride(x: u64, n: u64) -> u64 {
    fn gcd(mut a: u64, mut b: u64) -> u64 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    let mut s = 1 + x % (n - 1).max(1);
    // At most a few dozen steps: coprimes are dense.
    while gcd(s, n) != 1 {
        s = if s + 1 >= n { 1 } else { s + 1 };
    }
    s
}

fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The registry's index (see the module docs).
#[derive(Debug)]
pub struct Index {
    limits: RegistryLimits,
    ranking: Ranking,
    /// Queries answered, for fresh per-query orders under `Sampled`.
    queries: std::cell::Cell<u64>,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    meta: Vec<SlotMeta>,
    by_name: KeyedMap<Name, Vec<u32>>,
    term_ids: KeyedMap<Box<str>, u32>,
    term_state: Vec<TermState>,
    live: u32,
    total_len: u64,
    /// Exactly one entry per live slot generation, at or before the slot's
    /// expiry: a refresh moves the expiry later in place, and
    /// [`Index::expire`] pushes an entry found early back at the slot's
    /// current expiry. Entries of past generations are dropped when they
    /// come up: at most one per removal or reindexing, which the publish
    /// rate bounds.
    expiry: BinaryHeap<Reverse<(UnixMillis, u32, u32)>>,
    publishers: KeyedMap<PeerId, Publisher>,
    /// Every entry's term list, once: many publishers publish the same
    /// tool, with the same words, and every refresh of an unchanged one
    /// keeps its list. A list leaves when its last entry does.
    term_lists: HashSet<TermList, FixedState>,
    /// The empty term list every tombstone holds.
    no_terms: TermList,
}

/// Whether two descriptors index the same words (so a refresh can keep
/// its postings).
fn same_words(a: &Descriptor, b: &Descriptor) -> bool {
    a.name == b.name && a.description == b.description && a.intents == b.intents
}

impl Index {
    /// An empty index ranking by [`Ranking::Relevance`].
    pub fn new(limits: RegistryLimits) -> Index {
        Index::with_ranking(limits, Ranking::Relevance)
    }

    /// An empty index ranking by `ranking`, hashing under a fixed key
    /// (for tests and tools; a registry facing the network uses
    /// [`Index::keyed`]).
    pub fn with_ranking(limits: RegistryLimits, ranking: Ranking) -> Index {
        Index::keyed(limits, ranking, 0)
    }

    /// An empty index ranking by `ranking`, whose hash maps hash under
    /// `hash_key` (see the module docs): a registry passes a secret random
    /// key, a simulator one drawn from its seed.
    pub fn keyed(limits: RegistryLimits, ranking: Ranking, hash_key: u64) -> Index {
        let hasher = FixedState::with_seed(hash_key);
        Index {
            limits,
            ranking,
            queries: std::cell::Cell::new(0),
            slots: Vec::new(),
            free: Vec::new(),
            meta: Vec::new(),
            by_name: HashMap::with_hasher(hasher.clone()),
            term_ids: HashMap::with_hasher(hasher.clone()),
            term_state: Vec::new(),
            live: 0,
            total_len: 0,
            expiry: BinaryHeap::new(),
            publishers: HashMap::with_hasher(hasher.clone()),
            term_lists: HashSet::with_hasher(hasher),
            no_terms: Arc::new([]),
        }
    }

    /// Live (indexed, not withdrawn) entries.
    pub fn len(&self) -> usize {
        self.live as usize
    }

    /// Whether there are no live entries.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The held descriptor for `(publisher, name)`, tombstones included.
    pub fn get(&self, publisher: &PeerId, name: &Name) -> Option<&Arc<SignedDescriptor>> {
        let slot = self.slot_of(publisher, name)?;
        self.slots[slot as usize].as_ref().map(|e| &e.descriptor)
    }

    /// The slot held for `(publisher, name)`, tombstones included.
    fn slot_of(&self, publisher: &PeerId, name: &Name) -> Option<u32> {
        let p = self.publishers.get(publisher)?;
        let h = self.name_hash(name);
        p.slots
            .iter()
            .filter(|(nh, _)| *nh == h)
            .map(|(_, s)| *s)
            .find(|s| {
                self.slots[*s as usize]
                    .as_ref()
                    .is_some_and(|e| e.descriptor.body().name == *name)
            })
    }

    fn name_hash(&self, name: &Name) -> u32 {
        // The low half: a filter before comparing names, not an identity.
        self.publishers.hasher().hash_one(name.as_str()) as u32
    }

    /// Verifies the signature, then [`Index::insert_verified`].
    pub fn publish(&mut self, d: SignedDescriptor, now: UnixMillis) -> PublishOutcome {
        if d.verify().is_err() {
            return PublishOutcome::BadSignature;
        }
        self.insert_verified(Arc::new(d), now)
    }

    fn take_token(&mut self, publisher: PeerId, now: UnixMillis) -> bool {
        let l = self.limits;
        let p = self.publishers.entry(publisher).or_insert(Publisher {
            live: 0,
            tokens: l.publish_burst,
            last: now,
            slots: Box::default(),
        });
        let elapsed = now.since(p.last) as f64 / 1000.0;
        p.tokens = (p.tokens + elapsed * l.publish_rate).min(l.publish_burst);
        p.last = p.last.max(now);
        if p.tokens < 1.0 {
            return false;
        }
        p.tokens -= 1.0;
        true
    }

    /// Indexes a descriptor whose signature the caller has verified.
    pub fn insert_verified(&mut self, d: Arc<SignedDescriptor>, now: UnixMillis) -> PublishOutcome {
        let body = d.body();
        if body.check_fresh(now).is_err() {
            return PublishOutcome::Expired;
        }
        let existing = self.slot_of(&body.publisher, &body.name);
        if let Some(slot) = existing
            && let Some(e) = &self.slots[slot as usize]
            && e.descriptor.body().seq >= body.seq
        {
            return PublishOutcome::Stale {
                held: e.descriptor.body().seq,
            };
        }
        if !self.take_token(body.publisher, now) {
            return PublishOutcome::OverQuota(crate::bounded::BString::truncate_from(&format!(
                "publishing faster than {} descriptors/s",
                self.limits.publish_rate
            )));
        }
        let was_live = existing
            .and_then(|s| self.slots[s as usize].as_ref())
            .is_some_and(|e| !e.withdrawn());
        if !body.withdrawn && !was_live {
            let p = self.publishers.get(&body.publisher).map_or(0, |p| p.live);
            if p >= self.limits.max_per_publisher {
                return PublishOutcome::OverQuota(crate::bounded::BString::truncate_from(
                    &format!(
                        "publisher already has {p} live capabilities (limit {})",
                        self.limits.max_per_publisher
                    ),
                ));
            }
            if self.live as usize >= self.limits.max_entries {
                return PublishOutcome::Full;
            }
        }
        // Tombstones are not live but still take memory: bound all slots.
        if existing.is_none() && self.slots.len() - self.free.len() >= 2 * self.limits.max_entries {
            return PublishOutcome::Full;
        }

        // A refresh whose words are unchanged, and whose expiry is no
        // earlier, keeps its postings and its slot's one expiry entry,
        // which `expire` moves later when it comes up. One that expires
        // earlier (a shorter TTL) is reindexed below like new words: its
        // slot's new generation gets its own expiry entry, and the old one
        // is dropped when it comes up, so a publisher alternating TTLs
        // cannot pile up entries for one slot.
        if let Some(slot) = existing
            && !body.withdrawn
            && let Some(e) = self.slots[slot as usize].as_mut()
            && !e.withdrawn()
            && same_words(e.descriptor.body(), body)
            && body.expires_at().0 >= self.meta[slot as usize].expires
        {
            e.descriptor = d.clone();
            let m = &mut self.meta[slot as usize];
            m.expires = body.expires_at().0;
            m.latency_ms = body.qos.latency_ms;
            m.cost = body.qos.cost;
            m.tiers = tier_bits(&body.tiers);
            m.qos = qos_factor(body);
            return PublishOutcome::Accepted;
        }

        if let Some(slot) = existing {
            self.remove_slot(slot);
        }
        let slot = self.alloc_slot();
        let generation = self.meta[slot as usize].generation;
        let expires = body.expires_at();
        let mut entry = Entry {
            descriptor: d.clone(),
            terms: self.no_terms.clone(),
            name_pos: 0,
        };
        let mut len = 0u32;
        if !body.withdrawn {
            let mut terms = self.weighted_terms(body);
            for &(id, n) in &terms {
                let st = &mut self.term_state[id as usize];
                grow_by_a_quarter(&mut st.postings);
                st.postings.push(Posting {
                    slot,
                    generation,
                    tf: n,
                });
                st.df += 1;
                len += u32::from(n);
            }
            // Sorted by term, so queries merge-join against their own.
            terms.sort_unstable_by_key(|(id, _)| *id);
            entry.terms = match self.term_lists.get(terms.as_slice()) {
                Some(shared) => shared.clone(),
                None => {
                    let list: TermList = terms.into();
                    self.term_lists.insert(list.clone());
                    list
                }
            };
            self.total_len += u64::from(len);
            self.live += 1;
            if let Some(p) = self.publishers.get_mut(&body.publisher) {
                p.live += 1;
            }
        }
        self.meta[slot as usize] = SlotMeta {
            generation,
            live: !body.withdrawn,
            tiers: tier_bits(&body.tiers),
            len,
            latency_ms: body.qos.latency_ms,
            cost: body.qos.cost,
            expires: expires.0,
            qos: qos_factor(body),
            key: tie_key(&body.publisher, &body.name),
        };
        let same_name = self.by_name.entry(body.name.clone()).or_default();
        entry.name_pos = same_name.len() as u32;
        same_name.push(slot);
        let h = self.name_hash(&body.name);
        if let Some(p) = self.publishers.get_mut(&body.publisher) {
            let mut slots = std::mem::take(&mut p.slots).into_vec();
            slots.reserve_exact(1);
            slots.push((h, slot));
            p.slots = slots.into_boxed_slice();
        }
        self.slots[slot as usize] = Some(entry);
        self.expiry.push(Reverse((expires, slot, generation)));
        if body.withdrawn {
            PublishOutcome::Withdrawn
        } else {
            PublishOutcome::Accepted
        }
    }

    fn term_id(&mut self, t: &str) -> u32 {
        if let Some(id) = self.term_ids.get(t) {
            return *id;
        }
        let id = self.term_state.len() as u32;
        self.term_ids.insert(t.into(), id);
        self.term_state.push(TermState::default());
        id
    }

    /// A descriptor's terms and weights: the name counts three times, each
    /// intent twice, the description once.
    fn weighted_terms(&mut self, d: &Descriptor) -> Vec<(u32, u16)> {
        let mut tf: Vec<(u32, u16)> = Vec::with_capacity(24);
        let (mut lower, mut stemmed) = (String::new(), String::new());
        let mut add = |ix: &mut Index, text: &str, weight: u16| {
            for_each_term(text, &mut lower, &mut stemmed, |t| {
                let id = ix.term_id(t);
                match tf.iter_mut().find(|(i, _)| *i == id) {
                    Some((_, n)) => *n = n.saturating_add(weight),
                    None => tf.push((id, weight)),
                }
            });
        };
        add(self, &d.name, 3);
        for i in &d.intents {
            add(self, i, 2);
        }
        add(self, &d.description, 1);
        tf
    }

    fn alloc_slot(&mut self) -> u32 {
        match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.meta.push(SlotMeta::default());
                (self.slots.len() - 1) as u32
            }
        }
    }

    fn remove_slot(&mut self, slot: u32) {
        let Some(e) = self.slots[slot as usize].take() else {
            return;
        };
        let m = &mut self.meta[slot as usize];
        let len = m.len;
        m.generation = m.generation.wrapping_add(1);
        m.live = false;
        self.free.push(slot);
        let body = e.descriptor.body();
        if let Some(p) = self.publishers.get_mut(&body.publisher)
            && let Some(at) = p.slots.iter().position(|(_, s)| *s == slot)
        {
            let mut slots = std::mem::take(&mut p.slots).into_vec();
            slots.swap_remove(at);
            p.slots = slots.into_boxed_slice();
        }
        if let Some(v) = self.by_name.get_mut(&body.name) {
            let pos = e.name_pos as usize;
            if v.get(pos) == Some(&slot) {
                v.swap_remove(pos);
                if let Some(&moved) = v.get(pos)
                    && let Some(m) = self.slots[moved as usize].as_mut()
                {
                    m.name_pos = pos as u32;
                }
            }
            if v.is_empty() {
                self.by_name.remove(&body.name);
            }
        }
        if !e.withdrawn() {
            self.live -= 1;
            self.total_len -= u64::from(len);
            if let Some(p) = self.publishers.get_mut(&body.publisher) {
                p.live = p.live.saturating_sub(1);
            }
            // The index's set and this entry held the last references.
            if Arc::strong_count(&e.terms) == 2 {
                self.term_lists.remove(&*e.terms);
            }
            for &(t, _) in e.terms.iter() {
                let st = &mut self.term_state[t as usize];
                st.df -= 1;
                // Postings are dropped lazily; compact once the dead ones
                // outnumber the live ones.
                if st.postings.len() > 2 * st.df as usize + 8 {
                    let meta = &self.meta;
                    st.postings.retain(|p| {
                        meta[p.slot as usize].generation == p.generation
                            && meta[p.slot as usize].live
                    });
                }
            }
        }
    }

    /// Drops every entry whose TTL has passed. Returns how many.
    pub fn expire(&mut self, now: UnixMillis) -> usize {
        let mut n = 0;
        while let Some(Reverse((at, slot, generation))) = self.expiry.peek().copied() {
            if at > now {
                break;
            }
            self.expiry.pop();
            let m = &self.meta[slot as usize];
            if m.generation != generation || self.slots[slot as usize].is_none() {
                continue; // the slot was emptied or reused since
            }
            let expires = UnixMillis(m.expires);
            if expires > at {
                // Refreshed since this entry was pushed: it comes up again
                // at the slot's current expiry, in the order that expiry
                // gives it among the others.
                self.expiry.push(Reverse((expires, slot, generation)));
                continue;
            }
            self.remove_slot(slot);
            n += 1;
        }
        n
    }

    /// The best live candidates for `q` at `now`, best first.
    pub fn query(&self, q: &Query, now: UnixMillis) -> Vec<Candidate> {
        let limit = usize::from(q.limit.max(1));
        let need_tiers = tier_bits(&q.tiers);
        // Constraints the packed metadata answers; the rest need the
        // descriptor, so they are checked only for would-be winners.
        let cheap = |m: &SlotMeta| {
            m.live
                && m.expires > now.0
                && q.max_latency_ms.is_none_or(|l| m.latency_ms <= l)
                && q.max_cost.is_none_or(|c| m.cost <= c)
                && m.tiers & need_tiers == need_tiers
        };
        // Name-constrained queries walk only that name's entries, so the
        // name needs no second check.
        let needs_descriptor =
            q.input.is_some() || q.output.is_some() || q.version.is_some() || q.publisher.is_some();
        let salt = match self.ranking {
            Ranking::Relevance => None,
            Ranking::Sampled { seed } => {
                let n = self.queries.get();
                self.queries.set(n.wrapping_add(1));
                Some(mix64(seed ^ mix64(n)))
            }
        };
        let mut top: BinaryHeap<Reverse<Rank>> = BinaryHeap::with_capacity(limit + 1);
        // `relevance` is BM25 under `Relevance` and the covered share of
        // the intent under `Sampled`.
        // Returns whether the slot passed the constraints.
        let mut offer = |slot: u32, relevance: f32| -> bool {
            let m = &self.meta[slot as usize];
            if !cheap(m) {
                return false;
            }
            let rank = match salt {
                None => Rank {
                    score: relevance * (0.5 + 0.5 * m.qos),
                    key: m.key,
                    slot,
                },
                Some(salt) => Rank {
                    // Coarse buckets, so rounding never splits a tie.
                    score: f32::from((relevance.clamp(0.0, 1.0) * 32.0 + 0.5) as u8),
                    key: mix64(m.key ^ salt),
                    slot,
                },
            };
            if top.len() == limit
                && let Some(Reverse(worst)) = top.peek()
                && rank <= *worst
            {
                // Not among the best; whether it is admissible no longer
                // matters.
                return !needs_descriptor;
            }
            if needs_descriptor {
                let Some(e) = &self.slots[slot as usize] else {
                    return false;
                };
                if !q.admits(e.descriptor.body()) {
                    return false;
                }
            }
            top.push(Reverse(rank));
            if top.len() > limit {
                top.pop();
            }
            true
        };

        let mut has_words = false;
        let mut qterms: Vec<u32> = Vec::new();
        let (mut lower, mut stemmed) = (String::new(), String::new());
        for_each_term(&q.intent, &mut lower, &mut stemmed, |t| {
            has_words = true;
            if let Some(id) = self.term_ids.get(t) {
                qterms.push(*id);
            }
        });
        qterms.sort_unstable();
        qterms.dedup();
        let n = self.live.max(1) as f32;
        // The query's known terms with their rarity.
        let weights: Vec<(u32, f32)> = qterms
            .iter()
            .filter_map(|t| {
                let df = self.term_state[*t as usize].df as f32;
                (df > 0.0).then(|| (*t, (1.0 + (n - df + 0.5) / (df + 0.5)).ln()))
            })
            .collect();
        let total_idf: f32 = weights.iter().map(|(_, w)| w).sum();
        let avg = (self.total_len as f32 / n).max(1.0);
        let (k1, b) = (1.2f32, 0.75f32);
        // What one term adds to a slot's relevance.
        let gain = |idf: f32, tf: u16, len: u32| {
            if salt.is_some() {
                // Presence only: repeating a word gains nothing.
                idf / total_idf.max(f32::MIN_POSITIVE)
            } else {
                let tf = f32::from(tf);
                idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * len as f32 / avg))
            }
        };

        match q.name.as_ref() {
            // A name narrows the candidates to the entries of that name:
            // score those directly rather than walking every posting of
            // the query's words.
            Some(name) => {
                let list: &[u32] = self.by_name.get(name).map_or(&[], Vec::as_slice);
                // Under `Sampled`, the entries are visited in a per-query
                // pseudo-random order (a random start and a random stride
                // coprime with their number), and the walk stops once
                // `limit` admissible entries cover the whole intent: those
                // are a random sample of the best bucket, which is what
                // ranking every entry would give, at the cost of a few
                // visits rather than all of them.
                let n = list.len() as u64;
                let (mut pos, stride) = match salt {
                    Some(salt) if n > 1 => (salt % n, coprime_stride(mix64(salt), n)),
                    _ => (0, 1),
                };
                let mut full = 0usize;
                for _ in 0..n {
                    let slot = list[pos as usize];
                    pos = (pos + stride) % n.max(1);
                    if !has_words {
                        if offer(slot, 1.0) && salt.is_some() {
                            full += 1;
                            if full >= limit {
                                break;
                            }
                        }
                        continue;
                    }
                    let (Some(e), m) = (&self.slots[slot as usize], &self.meta[slot as usize])
                    else {
                        continue;
                    };
                    // Both lists are sorted by term: merge them.
                    let mut r = 0f32;
                    let mut have = e.terms.iter().peekable();
                    for &(t, idf) in &weights {
                        while have.next_if(|(id, _)| *id < t).is_some() {}
                        if let Some(&&(_, tf)) = have.peek().filter(|(id, _)| *id == t) {
                            r += gain(idf, tf, m.len);
                        }
                    }
                    if r > 0.0 && offer(slot, r) && salt.is_some() && r >= FULL_COVERAGE {
                        full += 1;
                        if full >= limit {
                            break;
                        }
                    }
                }
            }
            None if !has_words => {
                for slot in 0..self.slots.len() as u32 {
                    offer(slot, 1.0);
                }
            }
            None => {
                let mut acc = vec![0f32; self.slots.len()];
                let mut touched = Vec::new();
                for &(t, idf) in &weights {
                    for p in &self.term_state[t as usize].postings {
                        let m = &self.meta[p.slot as usize];
                        if m.generation != p.generation || !m.live {
                            continue;
                        }
                        let a = &mut acc[p.slot as usize];
                        if *a == 0.0 {
                            touched.push(p.slot);
                        }
                        *a += gain(idf, p.tf, m.len);
                    }
                }
                for slot in touched {
                    offer(slot, acc[slot as usize]);
                }
            }
        }
        let mut ranked: Vec<Rank> = top.into_iter().map(|Reverse(r)| r).collect();
        ranked.sort_by(|a, b| b.cmp(a));
        ranked
            .into_iter()
            .filter_map(|r| {
                self.slots[r.slot as usize].as_ref().map(|e| Candidate {
                    descriptor: e.descriptor.clone(),
                    score: r.score,
                })
            })
            .collect()
    }
}

/// A candidate's place in the ranking; greater is better.
#[derive(Debug, Clone, Copy)]
struct Rank {
    score: f32,
    key: u64,
    slot: u32,
}

impl PartialEq for Rank {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Rank {}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rank {
    /// Higher score first; among equal scores, the smaller key.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.key.cmp(&self.key))
            .then_with(|| other.slot.cmp(&self.slot))
    }
}

/// Merges answers from several registries: interleaves them by rank, and
/// keeps one descriptor per `(publisher, name)`, the one with the highest
/// sequence number, at the best position any registry gave it. Works on
/// owned descriptors and on shared ones (`Arc<SignedDescriptor>`) alike.
pub fn merge<D: Borrow<SignedDescriptor> + Clone>(answers: Vec<Vec<D>>) -> Vec<D> {
    // Even a single answer goes through: a registry may repeat an entry.
    // Interleave by rank: the order in which keys are first seen.
    let longest = answers.iter().map(Vec::len).max().unwrap_or(0);
    let mut flat: Vec<&D> = Vec::with_capacity(answers.iter().map(Vec::len).sum());
    for rank in 0..longest {
        flat.extend(answers.iter().filter_map(|list| list.get(rank)));
    }
    // Group equal keys by sorting positions (stable, so each group stays in
    // first-seen order). Answers are short and bounded by the query limit,
    // so sorting beats hashing 32-byte keys with a keyed hasher, and a
    // registry cannot pick inputs that make it slow.
    let key = |i: usize| {
        let b = flat[i].borrow().body();
        (&b.publisher, &b.name)
    };
    // The publisher's first 8 bytes decide most comparisons without
    // touching the descriptors; the full key, then the position, decide
    // the rest, so the order is exactly the stable sort by key.
    let prefix: Vec<u64> = flat
        .iter()
        .map(|d| {
            let d: &SignedDescriptor = (*d).borrow();
            let p = &d.body().publisher.0;
            u64::from_be_bytes([p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]])
        })
        .collect();
    let mut order: Vec<usize> = (0..flat.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        prefix[a]
            .cmp(&prefix[b])
            .then_with(|| key(a).cmp(&key(b)))
            .then(a.cmp(&b))
    });
    // Per group: the first-seen position, and the highest seq (the earliest
    // such on a tie).
    let mut winners: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let first = order[i];
        let mut best = first;
        let mut j = i + 1;
        while j < order.len() && key(order[j]) == key(first) {
            if flat[order[j]].borrow().body().seq > flat[best].borrow().body().seq {
                best = order[j];
            }
            j += 1;
        }
        winners.push((first, best));
        i = j;
    }
    winners.sort_unstable_by_key(|w| w.0);
    winners
        .into_iter()
        .map(|(_, best)| flat[best].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stemming_joins_word_forms() {
        let s = |w: &str| stem(w);
        assert_eq!(s("generate"), s("generated"));
        assert_eq!(s("generate"), s("generation"));
        assert_eq!(s("generate"), s("generating"));
        assert_eq!(s("image"), s("images"));
        assert_eq!(s("thumbnail"), s("thumbnails"));
        assert_eq!(s("resize"), s("resizing"));
        assert_eq!(s("publish"), s("publishing"));
        assert_eq!(s("word"), s("words"));
        assert_eq!(s("png"), "png");
        assert_eq!(s("status"), "status");
    }

    /// Hash flooding: the index's maps hash publisher-chosen keys under the
    /// key passed in, so someone who knows the code but not the key cannot
    /// precompute colliding peer ids, names or words. Different keys hash
    /// differently, and hashing changes no answer.
    #[test]
    fn index_hashing_is_keyed_by_the_injected_key() {
        let limits = RegistryLimits::default();
        let a = Index::keyed(limits, Ranking::Relevance, 1);
        let b = Index::keyed(limits, Ranking::Relevance, 2);
        let a_again = Index::keyed(limits, Ranking::Relevance, 1);
        let differ = (0u8..64)
            .filter(|i| {
                let id = PeerId([*i; 32]);
                let (ha, hb) = (
                    a.publishers.hasher().hash_one(id),
                    b.publishers.hasher().hash_one(id),
                );
                assert_eq!(ha, a_again.publishers.hasher().hash_one(id));
                ha != hb
            })
            .count();
        assert_eq!(
            differ, 64,
            "every peer id hashes differently under another key"
        );
        let name = Name::truncate_from("imagegen");
        assert_ne!(a.name_hash(&name), b.name_hash(&name));
        assert_ne!(
            a.term_ids.hasher().hash_one("imag"),
            b.term_ids.hasher().hash_one("imag")
        );
    }

    /// `str::to_lowercase` spells a word-final capital sigma `ς`,
    /// `char::to_lowercase` `σ`: the query side once used the first and the
    /// index the second, so such a word never found itself.
    #[test]
    fn a_word_ending_in_capital_sigma_is_found_by_the_same_word() {
        let key = crate::testing::key(1);
        let mut d = crate::testing::descriptor(&key);
        d.description = crate::bounded::BString::truncate_from("ΧΆΡΤΗΣ ΟΔΟΣ renderer");
        d.issued_at = UnixMillis(1_000);
        let mut ix = Index::new(RegistryLimits::default());
        let signed = SignedDescriptor::with_placeholder_signature(d).unwrap();
        assert_eq!(
            ix.insert_verified(Arc::new(signed), UnixMillis(1_000)),
            PublishOutcome::Accepted
        );
        for intent in ["ΟΔΟΣ", "οδος", "οδοσ", "χάρτης", "ΧΆΡΤΗΣ"] {
            let hits = ix.query(&Query::intent(intent, 5), UnixMillis(2_000));
            assert_eq!(hits.len(), 1, "{intent}");
        }
    }

    /// Memory: a refreshed entry keeps one expiry entry, however often it
    /// is refreshed (each refresh once pushed another, which lingered in the
    /// heap until its own time came).
    #[test]
    fn refreshes_keep_one_expiry_entry_per_slot() {
        let key = crate::testing::key(1);
        let mut ix = Index::new(RegistryLimits::default());
        for seq in 1..=50u64 {
            let mut d = crate::testing::descriptor(&key);
            d.seq = seq;
            d.issued_at = UnixMillis(1_000 * seq);
            let signed = SignedDescriptor::with_placeholder_signature(d).unwrap();
            assert_eq!(
                ix.insert_verified(Arc::new(signed), UnixMillis(1_000 * seq)),
                PublishOutcome::Accepted
            );
            ix.expire(UnixMillis(1_000 * seq));
        }
        assert_eq!(ix.len(), 1);
        assert_eq!(ix.expiry.len(), 1);
    }

    /// Memory: entries indexing the same words share one term list, and
    /// the list goes with the last of them; different words get their own.
    #[test]
    fn entries_with_the_same_words_share_one_term_list() {
        let mut ix = Index::new(RegistryLimits::default());
        let ttl = crate::descriptor::DEFAULT_TTL_MS;
        for k in 1..=3 {
            accept(&mut ix, k, "resize images", 1, 1_000, ttl);
        }
        accept(&mut ix, 4, "count words", 1, 1_000, ttl);
        assert_eq!(ix.term_lists.len(), 2);
        let held: Vec<&Entry> = ix.slots.iter().flatten().collect();
        assert!(Arc::ptr_eq(&held[0].terms, &held[1].terms));
        assert!(!Arc::ptr_eq(&held[0].terms, &held[3].terms));
        // New words for one publisher: a list of its own, the old one
        // still shared by the other two.
        accept(&mut ix, 1, "blur images", 2, 2_000, ttl);
        assert_eq!(ix.term_lists.len(), 3);
        // Everything expires: no list is left behind.
        ix.expire(UnixMillis(1_000_000));
        assert!(ix.is_empty());
        assert!(ix.term_lists.is_empty());
    }

    fn placeholder(
        k: u8,
        description: &str,
        seq: u64,
        at: u64,
        ttl_ms: u32,
    ) -> Arc<SignedDescriptor> {
        let mut d = crate::testing::descriptor(&crate::testing::key(k));
        d.description = crate::bounded::BString::truncate_from(description);
        d.seq = seq;
        d.issued_at = UnixMillis(at);
        d.ttl_ms = ttl_ms;
        Arc::new(SignedDescriptor::with_placeholder_signature(d).unwrap())
    }

    /// Publishes publisher `k`'s descriptor with `seq`, issued at `at`
    /// (and received then) with `ttl_ms`, and expects it accepted.
    fn accept(ix: &mut Index, k: u8, description: &str, seq: u64, at: u64, ttl_ms: u32) {
        let d = placeholder(k, description, seq, at, ttl_ms);
        assert_eq!(
            ix.insert_verified(d, UnixMillis(at)),
            PublishOutcome::Accepted
        );
    }

    /// Entries expiring in one call go in the order of their current
    /// expiry, whatever refreshes moved it: A's first expiry (16 s) comes
    /// before B's (20 s), but A was refreshed to 25 s, so B goes first and
    /// its slot is freed first. (The index once removed A first, at its
    /// stale 16 s entry, when one call covered both.)
    #[test]
    fn expire_removes_entries_in_the_order_of_their_current_expiry() {
        let mut ix = Index::new(RegistryLimits::default());
        accept(&mut ix, 1, "alpha tool", 1, 1_000, 15_000);
        accept(&mut ix, 2, "alpha tool", 1, 5_000, 15_000);
        accept(&mut ix, 1, "alpha tool", 2, 10_000, 15_000);
        let (a, b) = (0u32, 1u32);
        assert_eq!(ix.expire(UnixMillis(30_000)), 2);
        assert_eq!(ix.free, vec![b, a]);
        assert!(ix.is_empty());
    }

    /// A refresh to an earlier expiry, then one back to a later expiry: the
    /// entry lives until the last one's, and the slot keeps one expiry
    /// entry (a review found two, and a publisher alternating TTLs adding
    /// one per pair of publishes for as long as the slot lived).
    #[test]
    fn a_shorter_then_a_longer_refresh_expires_with_the_longer() {
        let mut ix = Index::new(RegistryLimits::default());
        accept(&mut ix, 1, "alpha tool", 1, 1_000, 15_000);
        accept(&mut ix, 1, "alpha tool", 2, 2_000, 2_000);
        accept(&mut ix, 1, "alpha tool", 3, 3_000, 20_000);
        assert_eq!(ix.expire(UnixMillis(22_999)), 0);
        assert_eq!(ix.len(), 1);
        // The first generation's entry was dropped, not moved.
        assert_eq!(ix.expiry.len(), 1);
        assert_eq!(ix.expire(UnixMillis(23_000)), 1);
        assert!(ix.is_empty());
        assert_eq!(ix.expire(UnixMillis(100_000)), 0);
    }

    /// The attacker from the review: one publisher alternating a long and a
    /// short TTL on every refresh. Entries of past generations go when they
    /// come up, so the heap holds about a TTL's worth of them, however long
    /// it keeps going (it once kept one more per pair of publishes).
    #[test]
    fn a_publisher_alternating_ttls_cannot_pile_up_expiry_entries() {
        let mut ix = Index::new(RegistryLimits::default());
        for seq in 1..=400u64 {
            let at = 1_000 * seq;
            let ttl = if seq % 2 == 0 { 10_000 } else { 15_000 };
            accept(&mut ix, 1, "alpha tool", seq, at, ttl);
            assert_eq!(ix.expire(UnixMillis(at)), 0);
        }
        assert_eq!(ix.len(), 1);
        assert!(ix.expiry.len() <= 16, "{} expiry entries", ix.expiry.len());
    }

    /// A refresh with new words replaces the slot: the old words' list goes
    /// (no other entry shares it), the old slot's expiry entry is skipped,
    /// and the new entry expires on its own time. A tombstone holds no list.
    #[test]
    fn a_refresh_with_new_words_drops_the_old_list_and_expiry() {
        let mut ix = Index::new(RegistryLimits::default());
        accept(&mut ix, 1, "alpha tool", 1, 1_000, 15_000);
        accept(&mut ix, 1, "beta tool", 2, 10_000, 15_000);
        assert_eq!(ix.term_lists.len(), 1);
        assert_eq!(ix.expire(UnixMillis(16_000)), 0);
        assert_eq!(ix.len(), 1);
        let at = UnixMillis(16_000);
        assert_eq!(ix.query(&Query::intent("beta", 5), at).len(), 1);
        assert!(ix.query(&Query::intent("alpha", 5), at).is_empty());
        let mut gone = crate::testing::descriptor(&crate::testing::key(1));
        (gone.seq, gone.issued_at, gone.withdrawn) = (3, UnixMillis(20_000), true);
        let gone = Arc::new(SignedDescriptor::with_placeholder_signature(gone).unwrap());
        assert_eq!(
            ix.insert_verified(gone, UnixMillis(20_000)),
            PublishOutcome::Withdrawn
        );
        assert!(ix.is_empty());
        assert!(ix.term_lists.is_empty());
        assert_eq!(ix.expire(UnixMillis(100_000)), 1);
        assert!(ix.slots.iter().all(Option::is_none));
    }

    #[test]
    fn terms_split_stem_and_skip_stop_words_as_indexing_does() {
        for text in [
            "Generate an IMAGE of the sea, please!",
            "resizing thumbnails; generation of images",
            "ΟΔΟΣ Straße naïve CAFÉS",
            "",
            "the a an",
        ] {
            let mut by_index = Vec::new();
            let (mut l, mut s) = (String::new(), String::new());
            for_each_term(text, &mut l, &mut s, |t| by_index.push(t.to_owned()));
            assert_eq!(terms(text).collect::<Vec<_>>(), by_index, "{text}");
        }
        let t: Vec<String> = terms("resizing thumbnails, the generation").collect();
        assert_eq!(t, vec!["resiz", "thumbnail", "generat"]);
    }

    #[test]
    fn terms_drop_stop_words_and_case() {
        let t: Vec<String> = terms("Generate an IMAGE of the sea, please!").collect();
        assert_eq!(t, vec![stem("generate"), stem("image"), stem("sea")]);
    }
}
