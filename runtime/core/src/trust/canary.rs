//! Tier 2: canary inputs drawn from the requester's own traffic.
//!
//! A canary is only worth something if the executor cannot tell it from
//! real work. Everything an executor sees of a request is the same for a
//! canary and a real request (signature, parameters, time, fuel cap,
//! limits, a fresh nonce and seed each), except the **input** and the
//! **order and timing** of the pair. The order and timing are randomised by
//! [`super::Delegation`] ([`super::Delegation::real_first`],
//! [`super::Delegation::delay_ms`]); this module makes the input.
//!
//! [`CanaryPool`] remembers a bounded sample of the real inputs the
//! requester sent for each capability and makes each canary from them and
//! from the current real input, never from the manifest's public examples
//! and never from a fixed word list:
//!
//! * UTF-8 text: the real input's skeleton (sentences, punctuation,
//!   capitalisation, whitespace, which words repeat) with each word the
//!   requester has used before consistently replaced by another word it has
//!   used, of about the same length, about as frequent in its long-run
//!   counts and seen in the same forms; its most common words (function
//!   words) and words new to it are kept, so neither input of the pair
//!   holds a word new to the executor that the other lacks. The length
//!   stays within a few percent (well inside ±10%);
//! * JSON: the real input's text with its leaf values varied in place, so
//!   keys, key order and layout are kept: a value the requester sent before
//!   is replaced by one it sent under the same key, a new string is kept, a
//!   new number gets fresh digits in the same format;
//! * PNG: a valid PNG with the real input's width, height, bit depth 8 and
//!   colour type, written with stored (uncompressed) deflate blocks; its
//!   pixels are tiles of the requester's own same-sized PNGs when those can
//!   be read (stored blocks), with fresh noise, else a random smooth image;
//! * other binary: the real input (or a past one of the same size and
//!   header) with its first 16 bytes kept and a few bytes past them
//!   changed. Such an input may be rejected by the tool; the canary then
//!   tests only that the executor rejects it as the requester's own run
//!   does.
//!
//! With no history yet (a capability's first request), the canary is a
//! variant of the real input itself: its words shuffled, its JSON strings
//! swapped and numbers redrawn, a new PNG of its size.
//!
//! What an executor can still see: that two requests from one requester
//! came close together (one of them is likely a canary, but which one is
//! random), that they share the words new to it, and, for PNG, stored
//! deflate blocks, which tell the canary apart from a requester whose real
//! PNGs are zlib-compressed (this writer has no compressor). Natural
//! language also carries word order a language model could check, which
//! the word substitution does not keep. [`super::detector`] is the
//! adversary the tests measure: about chance on the synthetic workload,
//! against 100% for the old example-and-word-list scheme (`BENCHMARKS.md`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::Entropy;

/// Real inputs kept per capability (the most recent ones).
pub const POOL_PER_CAPABILITY: usize = 32;
/// Capabilities remembered; the least recently recorded one is forgotten.
pub const POOL_CAPABILITIES: usize = 64;
/// Inputs larger than this are not kept (bytes).
pub const POOL_MAX_INPUT: usize = 256 * 1024;
/// Bytes kept in all, across capabilities; the oldest inputs go first.
pub const POOL_MAX_BYTES: usize = 8 * 1024 * 1024;
/// Distinct words counted per capability (long-run word frequencies of its
/// text inputs, so that a canary's words are as common as the real ones).
pub const POOL_WORDS: usize = 2048;

/// The eight bytes that open every PNG file.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Bytes of an unknown binary input treated as its header and never changed.
const BINARY_HEADER: usize = 16;

/// Largest PNG canary made (width × height × channels); larger real PNGs
/// get the binary treatment.
const PNG_MAX_RAW: usize = 16 * 1024 * 1024;

/// The requester's memory of its own real inputs, per capability, and the
/// canary maker built on it. Bounded: at most [`POOL_PER_CAPABILITY`]
/// inputs for each of at most [`POOL_CAPABILITIES`] capabilities, none
/// larger than [`POOL_MAX_INPUT`], [`POOL_MAX_BYTES`] in all, plus long-run
/// counts of at most [`POOL_WORDS`] distinct words per capability.
#[derive(Debug, Clone, Default)]
pub struct CanaryPool {
    /// Recent inputs per capability, oldest first.
    inputs: HashMap<String, VecDeque<Vec<u8>>>,
    /// Capabilities, least recently recorded first.
    order: VecDeque<String>,
    /// Bytes held.
    bytes: usize,
    /// Long-run word counts of the text inputs, per capability.
    words: HashMap<String, WordStats>,
}

/// Long-run counts of the words of a capability's text inputs, and the
/// forms each was seen in; at most [`POOL_WORDS`] words (past that, all
/// counts are halved and the words left at zero forgotten).
#[derive(Debug, Clone, Default)]
struct WordStats {
    counts: HashMap<String, usize>,
    forms: HashMap<String, HashSet<(bool, String)>>,
}

impl WordStats {
    fn add(&mut self, text: &str) {
        for w in words(text) {
            let (core, suffix) = split_word(w);
            if core.is_empty() {
                continue;
            }
            *self.counts.entry(core.clone()).or_default() += 1;
            self.forms
                .entry(core)
                .or_default()
                .insert((is_capitalised(w), suffix.to_owned()));
        }
        while self.counts.len() > POOL_WORDS {
            self.counts.retain(|_, n| {
                *n /= 2;
                *n > 0
            });
            let counts = &self.counts;
            self.forms.retain(|c, _| counts.contains_key(c));
        }
    }
}

impl CanaryPool {
    /// An empty pool.
    pub fn new() -> CanaryPool {
        CanaryPool::default()
    }

    /// Remembers a real input sent for `capability` (call it for every real
    /// request, after making its canary).
    pub fn record(&mut self, capability: &str, input: &[u8]) {
        if input.len() > POOL_MAX_INPUT {
            return;
        }
        self.order.retain(|c| c != capability);
        self.order.push_back(capability.to_owned());
        while self.order.len() > POOL_CAPABILITIES {
            if let Some(old) = self.order.pop_front() {
                self.words.remove(&old);
                if let Some(q) = self.inputs.remove(&old) {
                    self.bytes -= q.iter().map(Vec::len).sum::<usize>();
                }
            }
        }
        if let Ok(text) = std::str::from_utf8(input)
            && serde_json::from_str::<serde_json::Value>(text).is_err()
        {
            self.words
                .entry(capability.to_owned())
                .or_default()
                .add(text);
        }
        let q = self.inputs.entry(capability.to_owned()).or_default();
        q.push_back(input.to_vec());
        self.bytes += input.len();
        if q.len() > POOL_PER_CAPABILITY
            && let Some(old) = q.pop_front()
        {
            self.bytes -= old.len();
        }
        // Over the byte budget: drop the oldest input of the least recently
        // recorded capabilities first.
        let mut i = 0;
        while self.bytes > POOL_MAX_BYTES && i < self.order.len() {
            let cap = &self.order[i];
            match self.inputs.get_mut(cap).and_then(VecDeque::pop_front) {
                Some(old) => self.bytes -= old.len(),
                None => i += 1,
            }
        }
    }

    /// The real inputs remembered for `capability`, oldest first.
    pub fn samples(&self, capability: &str) -> Vec<&[u8]> {
        self.inputs
            .get(capability)
            .map(|q| q.iter().map(Vec::as_slice).collect())
            .unwrap_or_default()
    }

    /// Bytes held in all.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// A canary input for `capability` shaped like `real_input` (same type,
    /// about the same size), made from the requester's own past inputs and
    /// `real_input`, never from public examples or a fixed word list.
    pub fn make(&self, capability: &str, real_input: &[u8], rng: &mut dyn Entropy) -> Vec<u8> {
        let past = self.samples(capability);
        make_canary(&past, self.words.get(capability), real_input, rng)
    }
}

/// A canary for `real_input` from the past inputs `past` (see
/// [`CanaryPool::make`]).
fn make_canary(
    past: &[&[u8]],
    stats: Option<&WordStats>,
    real_input: &[u8],
    rng: &mut dyn Entropy,
) -> Vec<u8> {
    if let Some(ihdr) = Ihdr::parse(real_input)
        && let Some(png) = png_canary(&ihdr, past, rng)
    {
        return png;
    }
    if let Ok(text) = std::str::from_utf8(real_input) {
        let trimmed = text.trim_start();
        if (trimmed.starts_with('{') || trimmed.starts_with('['))
            && serde_json::from_str::<serde_json::Value>(text).is_ok()
        {
            let past_json: Vec<&str> = past
                .iter()
                .filter_map(|p| std::str::from_utf8(p).ok())
                .filter(|p| serde_json::from_str::<serde_json::Value>(p).is_ok())
                .collect();
            if let Some(out) = json_canary(text, &past_json, rng) {
                return out.into_bytes();
            }
        }
        if !text.trim().is_empty() {
            let past_text: Vec<&str> = past
                .iter()
                .filter_map(|p| std::str::from_utf8(p).ok())
                .collect();
            return text_canary(text, &past_text, stats, rng).into_bytes();
        }
    }
    binary_canary(real_input, past, rng)
}

/// A canary input made from `example` alone, with no history: text is
/// recombined from its own words, JSON keeps its keys with its own values
/// swapped, PNG becomes a new PNG of the same size, other binary keeps its
/// header with bytes past it changed. Prefer [`CanaryPool::make`], which
/// also draws on the requester's past inputs.
pub fn vary_canary(example: &[u8], rng: &mut dyn Entropy) -> Vec<u8> {
    make_canary(&[], None, example, rng)
}

// ---------------------------------------------------------------- text

/// Splits `text` into words, each with the whitespace that follows it.
fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else {
            if in_space && let Some(s) = start {
                out.push(&text[s..i]);
                start = None;
            }
            in_space = false;
            if start.is_none() {
                start = Some(i);
            }
        }
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

fn bare(w: &str) -> &str {
    w.trim_end()
}

/// `real`'s words shuffled, each position keeping its whitespace: the same
/// length, the same words.
fn shuffle_words(real: &str, real_words: &[&str], rng: &mut dyn Entropy) -> String {
    let mut bares: Vec<&str> = real_words.iter().map(|w| bare(w)).collect();
    for _ in 0..4 {
        for i in (1..bares.len()).rev() {
            bares.swap(i, rng.below(i + 1));
        }
        if bares.iter().zip(real_words).any(|(a, b)| *a != bare(b)) {
            break;
        }
    }
    let mut out = String::from(&real[..real.len() - real.trim_start().len()]);
    for (w, slot) in bares.iter().zip(real_words) {
        out.push_str(w);
        out.push_str(&slot[bare(slot).len()..]);
    }
    out
}

/// A word's core: its letters and digits before any punctuation suffix,
/// lower-cased, and the suffix.
fn split_word(w: &str) -> (String, &str) {
    let w = bare(w);
    let core = w.trim_end_matches(|c: char| !c.is_alphanumeric());
    (core.to_lowercase(), &w[core.len()..])
}

fn is_capitalised(w: &str) -> bool {
    w.chars().next().is_some_and(char::is_uppercase)
}

/// A new text on `real`'s skeleton (its sentences, punctuation,
/// capitalisation, whitespace and word repetitions): each word the
/// requester's past inputs already hold is consistently replaced by another
/// past word of about the same length and about as frequent there; words
/// new to the past are kept where they are, so neither text of the pair
/// holds a new word the other lacks. The length stays within a few percent.
fn text_canary(
    real: &str,
    past: &[&str],
    stats: Option<&WordStats>,
    rng: &mut dyn Entropy,
) -> String {
    let lead = &real[..real.len() - real.trim_start().len()];
    let real_words = words(real);
    if real_words.is_empty() {
        return real.to_owned();
    }
    // Past word cores with their counts, and the forms (capitalised or
    // not, punctuation suffix) each was seen in: the long-run table if the
    // pool keeps one, else from the past inputs.
    let mut local = WordStats::default();
    let stats = match stats {
        Some(st) if !st.counts.is_empty() => st,
        _ => {
            for p in past {
                local.add(p);
            }
            &local
        }
    };
    let (counts, forms) = (&stats.counts, &stats.forms);
    // The forms each core of the real input takes that the past holds: its
    // replacement must have been seen in them too.
    let mut needed: HashMap<String, HashSet<(bool, String)>> = HashMap::new();
    // And those it takes that the past lacks: its replacement must lack
    // them too.
    let mut unseen: HashMap<String, HashSet<(bool, String)>> = HashMap::new();
    for w in &real_words {
        let (core, suffix) = split_word(w);
        let form = (is_capitalised(w), suffix.to_owned());
        let seen = forms.get(&core).is_some_and(|f| f.contains(&form));
        if seen {
            needed.entry(core).or_default().insert(form);
        } else {
            unseen.entry(core).or_default().insert(form);
        }
    }
    if counts.is_empty() {
        return shuffle_words(real, &real_words, rng);
    }
    let total: usize = counts.values().sum();
    let mut by_len: BTreeMap<usize, Vec<(&str, usize)>> = BTreeMap::new();
    for (core, n) in counts.iter().filter(|(_, n)| n.saturating_mul(100) < total) {
        by_len
            .entry(core.chars().count())
            .or_default()
            .push((core.as_str(), *n));
    }
    for v in by_len.values_mut() {
        v.sort_unstable();
    }
    let mut best: Option<String> = None;
    for _attempt in 0..4 {
        let mut map: HashMap<String, String> = HashMap::new();
        let mut delta: i64 = 0;
        let mut used: HashSet<String> = HashSet::new();
        let mut out = String::from(lead);
        for slot in &real_words {
            let word = bare(slot);
            let (core, suffix) = split_word(word);
            let replaced = match counts.get(&core) {
                // The requester's most common words (1% of its words or
                // more: function words, its recurring terms) stay.
                Some(&n) if !core.is_empty() && n.saturating_mul(100) < total => {
                    if !map.contains_key(&core) {
                        let len = core.chars().count();
                        let mut pick = None;
                        // Same length and frequency within ×2, widening.
                        let none = HashSet::new();
                        let need = needed.get(&core).unwrap_or(&none);
                        let lack = unseen.get(&core).unwrap_or(&none);
                        let has_forms = |c: &str| {
                            forms.get(c).is_some_and(|f| {
                                need.iter().all(|x| f.contains(x))
                                    && !lack.iter().any(|x| f.contains(x))
                            })
                        };
                        let balanced = |c: &str| {
                            let l = c.chars().count();
                            (delta <= 0 || l <= len) && (delta >= 0 || l >= len)
                        };
                        'widen: for (spread, f, strict) in [
                            (0usize, 2usize, true),
                            (1, 2, true),
                            (2, 2, true),
                            (0, 3, true),
                            (2, 3, true),
                            (4, 3, true),
                            (64, 3, true),
                            (64, 6, true),
                            (64, usize::MAX, true),
                            (1, 4, false),
                            (64, usize::MAX, false),
                        ] {
                            {
                                let fits: Vec<&str> = by_len
                                    .range(len.saturating_sub(spread)..=len + spread)
                                    .flat_map(|(_, v)| v.iter())
                                    .filter(|(c, m)| {
                                        *c != core
                                            && !used.contains(*c)
                                            && *m <= n.saturating_mul(f)
                                            && n <= m.saturating_mul(f)
                                            && (!strict || has_forms(c))
                                            && (!strict || balanced(c))
                                    })
                                    .map(|(c, _)| *c)
                                    .collect();
                                if !fits.is_empty() {
                                    pick = Some(fits[rng.below(fits.len())].to_owned());
                                    break 'widen;
                                }
                            }
                        }
                        let pick = pick.unwrap_or_else(|| core.clone());
                        delta += pick.chars().count() as i64 - len as i64;
                        used.insert(pick.clone());
                        map.insert(core.clone(), pick);
                    }
                    let to = map.get(&core).map_or(core.as_str(), String::as_str);
                    let upper = word.chars().next().is_some_and(char::is_uppercase);
                    let all_upper = word.chars().filter(|c| c.is_alphabetic()).count() > 1
                        && word
                            .chars()
                            .filter(|c| c.is_alphabetic())
                            .all(char::is_uppercase);
                    let mut w = if all_upper {
                        to.to_uppercase()
                    } else if upper {
                        let mut c = to.chars();
                        c.next()
                            .map(|f| f.to_uppercase().chain(c).collect())
                            .unwrap_or_default()
                    } else {
                        to.to_owned()
                    };
                    w.push_str(suffix);
                    w
                }
                _ => word.to_owned(),
            };
            out.push_str(&replaced);
            out.push_str(&slot[word.len()..]);
        }
        if out != real && !past.contains(&out.as_str()) {
            return out;
        }
        best = Some(out);
    }
    best.unwrap_or_else(|| real.to_owned())
}

// ---------------------------------------------------------------- JSON

/// The kind of a JSON leaf, to swap only like with like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Leaf {
    Str,
    Num,
    Bool,
    Null,
}

/// One leaf value of a JSON text: its byte span, kind and key.
#[derive(Debug, Clone)]
struct LeafSpan {
    start: usize,
    end: usize,
    kind: Leaf,
    key: String,
}

/// The leaf values of a (valid) JSON text, with the key each sits under
/// (`"[]"` appended for array elements).
fn leaves(text: &str) -> Vec<LeafSpan> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    // Stack of containers: (is_object, key of the container).
    let mut stack: Vec<(bool, String)> = Vec::new();
    let mut key = String::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'{' | b'[' => {
                let k = if stack.last().is_some_and(|s| !s.0) {
                    format!("{}[]", stack.last().map(|s| s.1.as_str()).unwrap_or(""))
                } else {
                    key.clone()
                };
                stack.push((c == b'{', k));
                expect_key = c == b'{';
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
                i += 1;
            }
            b',' => {
                expect_key = stack.last().is_some_and(|s| s.0);
                i += 1;
            }
            b':' => {
                expect_key = false;
                i += 1;
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let end = (j + 1).min(b.len());
                if expect_key {
                    key = text[i + 1..end.saturating_sub(1).max(i + 1)].to_owned();
                } else {
                    out.push(LeafSpan {
                        start: i,
                        end,
                        kind: Leaf::Str,
                        key: leaf_key(&stack, &key),
                    });
                }
                i = end;
            }
            c if c.is_ascii_whitespace() => i += 1,
            _ => {
                let mut j = i;
                while j < b.len() && !b",]} \t\r\n".contains(&b[j]) {
                    j += 1;
                }
                let kind = match c {
                    b't' | b'f' => Leaf::Bool,
                    b'n' => Leaf::Null,
                    _ => Leaf::Num,
                };
                out.push(LeafSpan {
                    start: i,
                    end: j.max(i + 1),
                    kind,
                    key: leaf_key(&stack, &key),
                });
                i = j.max(i + 1);
            }
        }
    }
    out
}

fn leaf_key(stack: &[(bool, String)], key: &str) -> String {
    match stack.last() {
        Some((false, k)) => format!("{k}[]"),
        _ => key.to_owned(),
    }
}

/// The real JSON text with its leaves varied, keeping keys, key order and
/// layout: a leaf the past already holds (a string, number, bool or null
/// seen before) is replaced by a past value of the same kind under the same
/// key; a string new to the past is kept (so neither input of the pair has
/// a value new to the executor that the other lacks); a number new to the
/// past gets fresh digits in the same format. With no history, strings are
/// swapped among the input's own strings. `None` if the result would not
/// parse.
fn json_canary(real: &str, past: &[&str], rng: &mut dyn Entropy) -> Option<String> {
    let mine = leaves(real);
    let mut by_key: BTreeMap<(String, Leaf), Vec<&str>> = BTreeMap::new();
    let mut by_kind: BTreeMap<Leaf, Vec<&str>> = BTreeMap::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for text in past.iter().copied() {
        for l in leaves(text) {
            let v = &text[l.start..l.end];
            by_key.entry((l.key.clone(), l.kind)).or_default().push(v);
            by_kind.entry(l.kind).or_default().push(v);
            seen.insert(v);
        }
    }
    let own_strings: Vec<&str> = mine
        .iter()
        .filter(|l| l.kind == Leaf::Str)
        .map(|l| &real[l.start..l.end])
        .collect();
    let mut out = String::with_capacity(real.len());
    let mut at = 0;
    for l in &mine {
        out.push_str(&real[at..l.start]);
        let own = &real[l.start..l.end];
        let from_past = || {
            by_key
                .get(&(l.key.clone(), l.kind))
                .or_else(|| by_kind.get(&l.kind))
                .filter(|v| !v.is_empty())
        };
        let value: String = if past.is_empty() {
            match l.kind {
                Leaf::Str => own_strings[rng.below(own_strings.len())].to_owned(),
                Leaf::Num => fresh_digits(own, rng),
                _ => own.to_owned(),
            }
        } else if !seen.contains(own) {
            match l.kind {
                Leaf::Num => fresh_digits(own, rng),
                _ => own.to_owned(),
            }
        } else {
            match from_past() {
                Some(v) => v[rng.below(v.len())].to_owned(),
                None => own.to_owned(),
            }
        };
        out.push_str(&value);
        at = l.end;
    }
    out.push_str(&real[at..]);
    serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .map(|_| out)
}

/// A number in the same format as `n` (sign, digit count, point, exponent)
/// with fresh digits; a leading digit stays non-zero.
fn fresh_digits(n: &str, rng: &mut dyn Entropy) -> String {
    let mut out = String::with_capacity(n.len());
    let mut leading = true;
    let mut in_exponent = false;
    let b = n.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c.is_ascii_digit() && !in_exponent {
            let multi = leading && b.get(i + 1).is_some_and(u8::is_ascii_digit);
            let d = if multi {
                1 + rng.below(9)
            } else {
                rng.below(10)
            };
            out.push(char::from(b'0' + d as u8));
            leading = false;
        } else {
            if c == b'e' || c == b'E' {
                in_exponent = true;
            }
            if c == b'.' {
                leading = false;
            }
            out.push(char::from(c));
        }
    }
    out
}

// ---------------------------------------------------------------- PNG

/// A PNG's header chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ihdr {
    width: u32,
    height: u32,
    bit_depth: u8,
    colour: u8,
}

impl Ihdr {
    /// The header of `png`, if it opens like a PNG.
    fn parse(png: &[u8]) -> Option<Ihdr> {
        if png.len() < 33 || png[..8] != PNG_SIGNATURE || &png[12..16] != b"IHDR" {
            return None;
        }
        let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
        Some(Ihdr {
            width: be(16),
            height: be(20),
            bit_depth: png[24],
            colour: png[25],
        })
    }

    /// Bytes per pixel, for the 8-bit colour types this writer supports.
    fn channels(&self) -> Option<usize> {
        if self.bit_depth != 8 {
            return None;
        }
        match self.colour {
            0 => Some(1),
            2 => Some(3),
            4 => Some(2),
            6 => Some(4),
            _ => None,
        }
    }
}

/// The pixel rows (filter bytes removed) of a PNG whose image data uses
/// stored deflate blocks and filter 0 only, as written by [`write_png`];
/// `None` otherwise.
fn read_stored_png(png: &[u8], h: &Ihdr) -> Option<Vec<u8>> {
    let ch = h.channels()?;
    let mut idat = Vec::new();
    let mut i = 8;
    while i + 8 <= png.len() {
        let len = u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]) as usize;
        let kind = &png[i + 4..i + 8];
        let body = png.get(i + 8..i + 8 + len)?;
        if kind == b"IDAT" {
            idat.extend_from_slice(body);
        }
        i += 12 + len;
    }
    let mut raw = Vec::new();
    let mut j = 2;
    loop {
        let head = *idat.get(j)?;
        if head & 0b110 != 0 {
            return None;
        }
        let len = u16::from_le_bytes([*idat.get(j + 1)?, *idat.get(j + 2)?]) as usize;
        raw.extend_from_slice(idat.get(j + 5..j + 5 + len)?);
        j += 5 + len;
        if head & 1 == 1 {
            break;
        }
    }
    let stride = h.width as usize * ch;
    let mut px = Vec::with_capacity(stride * h.height as usize);
    for row in raw.chunks(stride + 1) {
        if row.len() != stride + 1 || row[0] != 0 {
            return None;
        }
        px.extend_from_slice(&row[1..]);
    }
    (px.len() == stride * h.height as usize).then_some(px)
}

/// A PNG canary with `h`'s size and colour type (bit depth 8 only).
fn png_canary(h: &Ihdr, past: &[&[u8]], rng: &mut dyn Entropy) -> Option<Vec<u8>> {
    let ch = h.channels()?;
    let (w, ht) = (h.width as usize, h.height as usize);
    let raw = w.checked_mul(ht)?.checked_mul(ch)?;
    if w == 0 || ht == 0 || raw > PNG_MAX_RAW {
        return None;
    }
    let sources: Vec<Vec<u8>> = past
        .iter()
        .filter(|p| Ihdr::parse(p) == Some(*h))
        .filter_map(|p| read_stored_png(p, h))
        .collect();
    let mut px = vec![0u8; raw];
    if sources.is_empty() {
        // A random smooth image: a gradient per channel plus mild noise.
        let mut base = [0f64; 4];
        let mut dx = [0f64; 4];
        let mut dy = [0f64; 4];
        for c in 0..ch {
            base[c] = rng.unit() * 255.0;
            dx[c] = (rng.unit() - 0.5) * 512.0 / w as f64;
            dy[c] = (rng.unit() - 0.5) * 512.0 / ht as f64;
        }
        for y in 0..ht {
            for x in 0..w {
                for c in 0..ch {
                    let v = base[c] + dx[c] * x as f64 + dy[c] * y as f64 + rng.unit() * 24.0;
                    px[(y * w + x) * ch + c] = v.rem_euclid(256.0) as u8;
                }
            }
        }
    } else {
        // Tiles of the requester's own images, each with fresh noise.
        let tile = 8usize;
        for ty in (0..ht).step_by(tile) {
            for tx in (0..w).step_by(tile) {
                let src = &sources[rng.below(sources.len())];
                for y in ty..(ty + tile).min(ht) {
                    for x in tx..(tx + tile).min(w) {
                        for c in 0..ch {
                            let i = (y * w + x) * ch + c;
                            let n = rng.below(7) as i16 - 3;
                            px[i] = (src[i] as i16 + n).clamp(0, 255) as u8;
                        }
                    }
                }
            }
        }
    }
    Some(write_png(h, &px))
}

/// A PNG of `h`'s size and colour type holding `px` (rows without filter
/// bytes), as zlib stored blocks.
fn write_png(h: &Ihdr, px: &[u8]) -> Vec<u8> {
    let stride = px.len() / h.height.max(1) as usize;
    let mut raw = Vec::with_capacity(px.len() + h.height as usize);
    for row in px.chunks(stride.max(1)) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = vec![0x78, 0x01];
    let mut blocks = raw.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        z.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(b) = blocks.next() {
        z.push(u8::from(blocks.peek().is_none()));
        let len = b.len() as u16;
        z.extend_from_slice(&len.to_le_bytes());
        z.extend_from_slice(&(!len).to_le_bytes());
        z.extend_from_slice(b);
    }
    z.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&h.width.to_be_bytes());
    ihdr.extend_from_slice(&h.height.to_be_bytes());
    ihdr.extend_from_slice(&[h.bit_depth, h.colour, 0, 0, 0]);
    let mut out = PNG_SIGNATURE.to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A valid 8-bit PNG of `width` × `height` with colour type `colour` (0
/// grey, 2 RGB, 4 grey+alpha, 6 RGBA) holding `px`, row-major without
/// filter bytes; `None` for another colour type or a `px` of the wrong
/// length. Written with stored deflate blocks (no compression).
pub fn encode_png(width: u32, height: u32, colour: u8, px: &[u8]) -> Option<Vec<u8>> {
    let h = Ihdr {
        width,
        height,
        bit_depth: 8,
        colour,
    };
    let n = (width as usize)
        .checked_mul(height as usize)?
        .checked_mul(h.channels()?)?;
    (n == px.len() && n > 0).then(|| write_png(&h, px))
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// CRC-32 (ISO-HDLC, as PNG uses).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Adler-32, as zlib uses.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    (b << 16) | a
}

// ---------------------------------------------------------------- binary

/// The real input, or a past input of the same size and header, with its
/// header kept and a few bytes past it changed.
fn binary_canary(real: &[u8], past: &[&[u8]], rng: &mut dyn Entropy) -> Vec<u8> {
    let head = BINARY_HEADER.min(real.len());
    let alike: Vec<&[u8]> = past
        .iter()
        .copied()
        .filter(|p| p.len() == real.len() && p[..head] == real[..head])
        .collect();
    let mut out = if alike.is_empty() {
        real.to_vec()
    } else {
        alike[rng.below(alike.len())].to_vec()
    };
    let body = out.len() - head;
    if body == 0 {
        return out;
    }
    for _ in 0..(1 + body / 64).min(64) {
        let i = head + rng.below(body);
        let j = head + rng.below(body);
        out.swap(i, j);
        out[i] = out[i].wrapping_add(1 + rng.below(255) as u8);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::SplitMix;

    #[test]
    fn canary_variants_differ_from_the_example_and_each_other() {
        let ex = b"the quick brown fox jumps over the lazy dog. it was not amused.";
        let mut rng = SplitMix(9);
        let a = vary_canary(ex, &mut rng);
        let b = vary_canary(ex, &mut rng);
        assert_ne!(a, ex.to_vec());
        assert_ne!(a, b);
        let a = std::str::from_utf8(&a).unwrap();
        let own: HashSet<&str> = ex
            .split(|c: &u8| *c == b' ')
            .map(|w| std::str::from_utf8(w).unwrap())
            .collect();
        for w in a.split(' ') {
            assert!(own.contains(w), "{w} is not one of the example's words");
        }
        assert!(a.len() * 10 >= ex.len() * 9 && a.len() * 10 <= ex.len() * 11 + 10);
    }

    #[test]
    fn text_canaries_use_only_the_requesters_words() {
        let past = [
            "Please summarise the quarterly report for the board.",
            "Translate the letter to the landlord into French, politely.",
            "Draft a short reply to the plumber about Tuesday.",
        ];
        let mut pool = CanaryPool::new();
        for p in past {
            pool.record("text", p.as_bytes());
        }
        let real = "Summarise the minutes of the meeting with the plumber.";
        let mut vocab: HashSet<&str> = HashSet::new();
        for t in past.iter().chain([&real]) {
            vocab.extend(t.split_whitespace());
        }
        let mut rng = SplitMix(3);
        for _ in 0..50 {
            let c = pool.make("text", real.as_bytes(), &mut rng);
            let c = String::from_utf8(c).unwrap();
            assert!(c.split_whitespace().all(|w| vocab.contains(w)), "{c}");
            let (lo, hi) = (real.len() * 9 / 10, real.len() * 11 / 10 + 1);
            assert!(
                c.len() >= lo && c.len() <= hi,
                "{} vs {}",
                c.len(),
                real.len()
            );
        }
    }

    #[test]
    fn json_canaries_keep_keys_and_order() {
        let mut pool = CanaryPool::new();
        pool.record(
            "j",
            br#"{"name":"Ada","age":36,"tags":["x","y"],"ok":true}"#,
        );
        pool.record("j", br#"{"name":"Bob","age":41,"tags":["z"],"ok":false}"#);
        let real = br#"{"name":"Cy","age":29,"tags":["w","v"],"ok":true}"#;
        let mut rng = SplitMix(5);
        let mut differs = false;
        for _ in 0..20 {
            let c = pool.make("j", real, &mut rng);
            let s = std::str::from_utf8(&c).unwrap();
            let v: serde_json::Value = serde_json::from_str(s).unwrap();
            assert!(s.starts_with(r#"{"name":""#), "{s}");
            assert!(v["age"].is_number() && v["ok"].is_boolean() && v["tags"].is_array());
            differs |= c != real.to_vec();
        }
        assert!(differs);
    }

    #[test]
    fn png_canaries_are_valid_pngs_of_the_same_size() {
        let px: Vec<u8> = (0..(5 * 3 * 3)).map(|i| i as u8).collect();
        let real = encode_png(5, 3, 2, &px).unwrap();
        let mut pool = CanaryPool::new();
        let mut rng = SplitMix(7);
        for _ in 0..2 {
            let c = pool.make("png", &real, &mut rng);
            let h = Ihdr::parse(&c).unwrap();
            assert_eq!((h.width, h.height, h.colour, h.bit_depth), (5, 3, 2, 8));
            assert_eq!(c.len(), real.len());
            assert_ne!(c, real);
            let back = read_stored_png(&c, &h).unwrap();
            assert_eq!(back.len(), px.len());
            pool.record("png", &real);
        }
        // Chunk CRCs and the zlib checksum are right.
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(
            read_stored_png(&real, &Ihdr::parse(&real).unwrap()).unwrap(),
            px
        );
    }

    #[test]
    fn binary_canaries_keep_the_header() {
        let real: Vec<u8> = (0..100u8).map(|i| i | 0x80).collect();
        let c = vary_canary(&real, &mut SplitMix(1));
        assert_eq!(c.len(), real.len());
        assert_eq!(c[..BINARY_HEADER], real[..BINARY_HEADER]);
        assert_ne!(c, real);
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut pool = CanaryPool::new();
        for i in 0..100 {
            pool.record(&format!("cap{}", i % 80), &[i as u8; 1000]);
        }
        assert!(pool.inputs.len() <= POOL_CAPABILITIES);
        for _ in 0..40 {
            pool.record("big", &vec![1u8; POOL_MAX_INPUT]);
        }
        assert!(pool.bytes() <= POOL_MAX_BYTES);
        assert!(pool.samples("big").len() <= POOL_PER_CAPABILITY);
        assert_eq!(
            pool.bytes(),
            pool.inputs.values().flatten().map(Vec::len).sum::<usize>()
        );
    }
}
