//! The adversary model for tier 2: an executor that knows the protocol and
//! tries to tell canaries from real requests.
//!
//! This is the adversary the tests measure canaries against, the model
//! behind the node's and the simulator's `canary-aware` adversary (its
//! measured accuracy is what a canary-aware Sybil's chance of spotting a
//! canary should be set to). It is deliberately strong:
//!
//! * it knows each delegation sends one candidate a canary and a real
//!   request close together, and is told which two requests form a pair;
//! * it keeps, per capability, everything it has seen: inputs, words, word
//!   pairs, byte n-grams, sizes, types, and the manifest's public examples
//!   (which the legacy scheme varied into canaries and today's canaries
//!   never use, so they are a tell only against the legacy scheme);
//! * it knows the old scheme's fixed word list ([`LEGACY_CANARY_WORDS`]);
//! * it is trained (logistic regression on the difference of the two
//!   requests' features) on traffic it generates itself by running the
//!   public protocol, then guesses on traffic it has not seen.
//!
//! Its features, for a request against its partner and its history, are
//! listed in [`FEATURE_NAMES`].

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use super::Entropy;

/// The fixed public word list the old canary scheme inserted into manifest
/// examples; kept only as a detector feature and for [`legacy_vary_canary`].
pub const LEGACY_CANARY_WORDS: [&str; 20] = [
    "river", "amber", "quiet", "north", "lantern", "meadow", "copper", "swift", "harbor", "violet",
    "morning", "stone", "echo", "garden", "silver", "forest", "ember", "ocean", "maple", "winter",
];

/// The old canary scheme, kept to measure the detector against it: a
/// manifest example with one to three words of [`LEGACY_CANARY_WORDS`]
/// inserted at random word boundaries; non-text examples unchanged.
pub fn legacy_vary_canary(example: &[u8], rng: &mut dyn Entropy) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(example) else {
        return example.to_vec();
    };
    let mut words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    for _ in 0..(1 + rng.below(3)) {
        let w = LEGACY_CANARY_WORDS[rng.below(LEGACY_CANARY_WORDS.len())];
        let at = rng.below(words.len() + 1);
        words.insert(at, w.to_owned());
    }
    words.join(" ").into_bytes()
}

/// One request as an executor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The input bytes.
    pub input: Vec<u8>,
    /// Everything else the request states (parameters, fuel, limits), as
    /// the executor would compare it.
    pub params: Vec<u8>,
    /// Milliseconds since the requester's previous request to this executor.
    pub gap_ms: u64,
}

/// How many features the detector uses.
pub const FEATURES: usize = 20;

/// What each feature measures, in order.
pub const FEATURE_NAMES: [&str; FEATURES] = [
    "first of the pair",
    "gap before it, if second (per 250 ms)",
    "equal to a manifest example",
    "word overlap with a manifest example",
    "share of words from the legacy list",
    "legacy-list words never seen from this requester",
    "parameters differ from the partner's",
    "input seen before",
    "size against the requester's median (|log ratio|)",
    "size against the partner's (log ratio)",
    "type differs from the requester's usual type",
    "type differs from the partner's",
    "share of words never seen before",
    "share of word pairs seen before",
    "share of its words in the partner",
    "share of its new words in the partner",
    "has new words",
    "share of byte 8-grams seen before",
    "share of byte 8-grams in the partner",
    "starts like a manifest example (bytes)",
];

/// The kind of an input, as an executor would classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Text,
    Json,
    Png,
    Binary,
}

fn kind(input: &[u8]) -> Kind {
    if input.starts_with(&super::PNG_SIGNATURE) {
        return Kind::Png;
    }
    match std::str::from_utf8(input) {
        Ok(t) if serde_json::from_str::<serde_json::Value>(t).is_ok() && !t.trim().is_empty() => {
            if t.trim_start().starts_with(['{', '[']) {
                Kind::Json
            } else {
                Kind::Text
            }
        }
        Ok(_) => Kind::Text,
        Err(_) => Kind::Binary,
    }
}

fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
    let mut h = DefaultHasher::new();
    t.hash(&mut h);
    h.finish()
}

/// Words of a text or JSON input (split on whitespace and JSON punctuation).
fn tokens(input: &[u8]) -> Vec<&str> {
    match std::str::from_utf8(input) {
        Ok(t) => t
            .split(|c: char| c.is_whitespace() || "\"{}[]:,".contains(c))
            .filter(|w| !w.is_empty())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Hashes of a content-defined sample of the input's 8-byte windows (about
/// one in eight), for binary inputs.
fn grams(input: &[u8]) -> HashSet<u64> {
    if kind(input) != Kind::Png && kind(input) != Kind::Binary {
        return HashSet::new();
    }
    input
        .windows(8)
        .map(|w| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for &b in w {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            h
        })
        .filter(|h| h % 8 == 0)
        .collect()
}

/// What the executor remembers of one capability's traffic.
#[derive(Debug, Clone, Default)]
struct History {
    inputs: HashSet<u64>,
    vocab: HashSet<u64>,
    pairs: HashSet<u64>,
    grams: HashSet<u64>,
    sizes: Vec<usize>,
    kinds: HashMap<Kind, usize>,
}

impl History {
    fn median_size(&self) -> Option<usize> {
        let mut s = self.sizes.clone();
        s.sort_unstable();
        s.get(s.len() / 2).copied()
    }

    fn usual_kind(&self) -> Option<Kind> {
        self.kinds.iter().max_by_key(|(_, n)| **n).map(|(k, _)| *k)
    }
}

/// The detector: an executor's memory of the traffic it served, the public
/// examples, and a learned weight per feature.
#[derive(Debug, Clone)]
pub struct Detector {
    examples: HashMap<String, Vec<Vec<u8>>>,
    history: HashMap<String, History>,
    weights: [f64; FEATURES],
    scale: [f64; FEATURES],
}

fn frac(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

impl Detector {
    /// A detector knowing the public manifest examples, as `(capability,
    /// example)` pairs, with untrained weights (it then guesses on the
    /// features' plain differences: canaries look like examples, use the
    /// legacy list, come first, repeat inputs).
    pub fn new(examples: &[(&str, &[u8])]) -> Detector {
        let mut ex: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        for (cap, e) in examples {
            ex.entry((*cap).to_owned()).or_default().push(e.to_vec());
        }
        let mut weights = [0.0; FEATURES];
        for i in [0, 2, 3, 4, 5, 7, 19] {
            weights[i] = 1.0;
        }
        Detector {
            examples: ex,
            history: HashMap::new(),
            weights,
            scale: [1.0; FEATURES],
        }
    }

    /// The features of `this` (first of its pair or not) against its
    /// `partner` and what the detector has seen of `capability`.
    pub fn features(
        &self,
        capability: &str,
        this: &Seen,
        this_first: bool,
        partner: &Seen,
    ) -> [f64; FEATURES] {
        let empty = History::default();
        let h = self.history.get(capability).unwrap_or(&empty);
        let x = &this.input;
        let toks = tokens(x);
        let other_toks: HashSet<&str> = tokens(&partner.input).into_iter().collect();
        let examples = self
            .examples
            .get(capability)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mine: HashSet<&str> = toks.iter().copied().collect();
        let example_overlap = examples
            .iter()
            .map(|e| {
                let et: HashSet<&str> = tokens(e).into_iter().collect();
                frac(mine.intersection(&et).count(), mine.union(&et).count())
            })
            .fold(0.0, f64::max);
        let example_prefix = examples
            .iter()
            .map(|e| {
                let common = e.iter().zip(x.iter()).take_while(|(a, b)| a == b).count();
                frac(common, x.len().max(e.len()))
            })
            .fold(0.0, f64::max);
        let legacy = toks
            .iter()
            .filter(|t| {
                LEGACY_CANARY_WORDS.contains(&t.trim_matches(|c: char| !c.is_alphanumeric()))
            })
            .collect::<Vec<_>>();
        let legacy_unseen = legacy
            .iter()
            .filter(|t| !h.vocab.contains(&hash_of(**t)))
            .count();
        let new_words: Vec<&str> = toks
            .iter()
            .copied()
            .filter(|t| !h.vocab.contains(&hash_of(*t)))
            .collect();
        let new_distinct: HashSet<&str> = new_words.iter().copied().collect();
        let pairs_seen = toks
            .windows(2)
            .filter(|p| h.pairs.contains(&hash_of(&(p[0], p[1]))))
            .count();
        let g = grams(x);
        let og = grams(&partner.input);
        let size_hist = h
            .median_size()
            .map(|m| ((x.len().max(1) as f64) / (m.max(1) as f64)).ln().abs())
            .unwrap_or(0.0);
        let k = kind(x);
        [
            f64::from(u8::from(this_first)),
            if this_first {
                0.0
            } else {
                this.gap_ms as f64 / 250.0
            },
            f64::from(u8::from(examples.iter().any(|e| e == x))),
            example_overlap,
            frac(legacy.len(), toks.len()),
            legacy_unseen.min(3) as f64 / 3.0,
            f64::from(u8::from(this.params != partner.params)),
            f64::from(u8::from(h.inputs.contains(&hash_of(x.as_slice())))),
            size_hist,
            ((x.len().max(1) as f64) / (partner.input.len().max(1) as f64)).ln(),
            f64::from(u8::from(h.usual_kind().is_some_and(|u| u != k))),
            f64::from(u8::from(kind(&partner.input) != k)),
            frac(new_words.len(), toks.len()),
            frac(pairs_seen, toks.len().saturating_sub(1)),
            frac(
                mine.iter().filter(|t| other_toks.contains(*t)).count(),
                mine.len(),
            ),
            frac(
                new_distinct
                    .iter()
                    .filter(|t| other_toks.contains(*t))
                    .count(),
                new_distinct.len(),
            ),
            f64::from(u8::from(!new_distinct.is_empty())),
            frac(g.iter().filter(|x| h.grams.contains(x)).count(), g.len()),
            frac(g.intersection(&og).count(), g.len()),
            example_prefix,
        ]
    }

    /// The feature differences (first minus second) of a pair.
    pub fn pair_features(&self, capability: &str, first: &Seen, second: &Seen) -> [f64; FEATURES] {
        let a = self.features(capability, first, true, second);
        let b = self.features(capability, second, false, first);
        let mut d = [0.0; FEATURES];
        for i in 0..FEATURES {
            d[i] = a[i] - b[i];
        }
        d
    }

    fn score(&self, d: &[f64; FEATURES]) -> f64 {
        (0..FEATURES)
            .map(|i| self.weights[i] * d[i] / self.scale[i])
            .sum()
    }

    /// Guesses whether the first request of a pair is the canary (true) or
    /// the second is.
    pub fn guess(&self, capability: &str, first: &Seen, second: &Seen) -> bool {
        self.score(&self.pair_features(capability, first, second)) > 0.0
    }

    /// Remembers an input served for `capability`.
    pub fn remember(&mut self, capability: &str, input: &[u8]) {
        let h = self.history.entry(capability.to_owned()).or_default();
        h.inputs.insert(hash_of(input));
        let toks = tokens(input);
        for t in &toks {
            h.vocab.insert(hash_of(*t));
        }
        for p in toks.windows(2) {
            h.pairs.insert(hash_of(&(p[0], p[1])));
        }
        h.grams.extend(grams(input));
        h.sizes.push(input.len());
        if h.sizes.len() > 256 {
            h.sizes.remove(0);
        }
        *h.kinds.entry(kind(input)).or_default() += 1;
    }

    /// Forgets all traffic (keeps the examples and the weights).
    pub fn forget(&mut self) {
        self.history.clear();
    }

    /// Learns the weights by logistic regression from labelled pair
    /// features (`true`: the first of the pair was the canary).
    pub fn train(&mut self, samples: &[([f64; FEATURES], bool)]) {
        if samples.is_empty() {
            return;
        }
        for i in 0..FEATURES {
            let m = samples.iter().map(|(d, _)| d[i].abs()).sum::<f64>() / samples.len() as f64;
            self.scale[i] = if m > 1e-9 { m } else { 1.0 };
        }
        let mut w = [0.0; FEATURES];
        let n = samples.len() as f64;
        for _ in 0..400 {
            let mut grad = [0.0; FEATURES];
            for (d, y) in samples {
                let z: f64 = (0..FEATURES).map(|i| w[i] * d[i] / self.scale[i]).sum();
                let p = 1.0 / (1.0 + (-z).exp());
                let err = p - f64::from(u8::from(*y));
                for i in 0..FEATURES {
                    grad[i] += err * d[i] / self.scale[i];
                }
            }
            for i in 0..FEATURES {
                w[i] -= 0.5 * (grad[i] / n + 1e-3 * w[i]);
            }
        }
        self.weights = w;
    }

    /// The learned weight of each feature (per unit of its mean size).
    pub fn weights(&self) -> [f64; FEATURES] {
        self.weights
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use crate::trust::{CanaryPool, Delegation, SplitMix, TierSet, encode_png};

    /// A requester's private vocabulary: `n` made-up words from a seed.
    fn vocabulary(seed: u64, n: usize) -> Vec<String> {
        let mut rng = SplitMix(seed);
        let cons = b"bcdfghjklmnprstvwz";
        let vows = b"aeiou";
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        while out.len() < n {
            let syl = 1 + rng.below(4);
            let mut w = String::new();
            for _ in 0..syl {
                w.push(char::from(cons[rng.below(cons.len())]));
                w.push(char::from(vows[rng.below(vows.len())]));
                if rng.below(4) == 0 {
                    w.push(char::from(cons[rng.below(cons.len())]));
                }
            }
            if seen.insert(w.clone()) {
                out.push(w);
            }
        }
        out
    }

    /// A synthetic requester: text prompts, JSON records and small PNGs.
    struct Workload {
        vocab: Vec<String>,
        cdf: Vec<f64>,
        rng: SplitMix,
    }

    const CAPS: [&str; 3] = ["summarise", "extract", "thumbnail"];

    impl Workload {
        fn new(seed: u64) -> Workload {
            let vocab = vocabulary(seed, 4000);
            let mut cdf = Vec::with_capacity(vocab.len());
            let mut total = 0.0;
            for r in 0..vocab.len() {
                total += 1.0 / (r as f64 + 1.0).powf(1.05);
                cdf.push(total);
            }
            for c in &mut cdf {
                *c /= total;
            }
            Workload {
                vocab,
                cdf,
                rng: SplitMix(seed ^ 0xabc),
            }
        }

        fn zipf(&mut self) -> &str {
            let u = self.rng.unit();
            let i = self
                .cdf
                .partition_point(|c| *c < u)
                .min(self.vocab.len() - 1);
            &self.vocab[i]
        }

        fn uniform(&mut self) -> String {
            self.vocab[self.rng.below(self.vocab.len())].clone()
        }

        fn capitalised(w: &str) -> String {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }

        fn text(&mut self) -> Vec<u8> {
            let span = if self.rng.below(4) == 0 { 160 } else { 40 };
            let n = 4 + self.rng.below(span);
            let names = [self.uniform(), self.uniform()];
            let mut out = String::new();
            let mut in_sentence = 0;
            let mut len = 5 + self.rng.below(10);
            for i in 0..n {
                let w = if self.rng.below(12) == 0 {
                    Self::capitalised(&names[self.rng.below(2)])
                } else {
                    self.zipf().to_owned()
                };
                let w = if in_sentence == 0 {
                    Self::capitalised(&w)
                } else {
                    w
                };
                out.push_str(&w);
                in_sentence += 1;
                if in_sentence >= len || i + 1 == n {
                    out.push(if self.rng.below(5) == 0 { '?' } else { '.' });
                    in_sentence = 0;
                    len = 5 + self.rng.below(10);
                }
                if i + 1 < n {
                    out.push(' ');
                }
            }
            out.into_bytes()
        }

        fn json(&mut self) -> Vec<u8> {
            let id = format!("{:08x}", self.rng.next_u64() as u32);
            let name = format!(
                "{} {}",
                Self::capitalised(&self.vocab[self.rng.below(300)]),
                Self::capitalised(&self.vocab[self.rng.below(600)])
            );
            let city = self.zipf().to_owned();
            let score = self.rng.unit() * 100.0;
            let tags: Vec<String> = (0..1 + self.rng.below(3))
                .map(|_| format!("\"{}\"", self.zipf()))
                .collect();
            let active = self.rng.below(2) == 0;
            format!(
                "{{\"id\":\"{id}\",\"name\":\"{name}\",\"city\":\"{city}\",\"score\":{score:.2},\"tags\":[{}],\"active\":{active}}}",
                tags.join(",")
            )
            .into_bytes()
        }

        fn png(&mut self) -> Vec<u8> {
            let side = [8u32, 12, 16][self.rng.below(3)];
            let mut px = Vec::new();
            let base: Vec<f64> = (0..3).map(|_| self.rng.unit() * 255.0).collect();
            let dx: Vec<f64> = (0..3).map(|_| (self.rng.unit() - 0.5) * 20.0).collect();
            for y in 0..side {
                for x in 0..side {
                    for c in 0..3 {
                        let v = base[c]
                            + dx[c] * f64::from(x)
                            + dx[(c + 1) % 3] * f64::from(y)
                            + self.rng.unit() * 12.0;
                        px.push(v.rem_euclid(256.0) as u8);
                    }
                }
            }
            encode_png(side, side, 2, &px).unwrap()
        }

        fn input(&mut self, cap: usize) -> Vec<u8> {
            match cap {
                0 => self.text(),
                1 => self.json(),
                _ => self.png(),
            }
        }
    }

    /// The public manifest examples of the three capabilities.
    fn manifest_examples() -> Vec<(&'static str, Vec<u8>)> {
        let mut w = Workload::new(999);
        vec![
            ("summarise", b"Summarise this paragraph in one sentence.".to_vec()),
            ("summarise", b"The quick brown fox jumps over the lazy dog.".to_vec()),
            ("extract", br#"{"id":"00000001","name":"Ada Lovelace","city":"London","score":99.5,"tags":["math"],"active":true}"#.to_vec()),
            ("thumbnail", w.png()),
        ]
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Scheme {
        /// `legacy_vary_canary` on manifest examples; canary first, then the
        /// real request at once.
        Legacy,
        /// [`CanaryPool`] on the requester's traffic; random order and gap
        /// from [`Delegation`].
        Pool,
    }

    /// One delegation's pair as the executor sees it: (capability, first,
    /// second, first is the canary).
    type Pair = (&'static str, Seen, Seen, bool);

    /// `n` pairs of a synthetic requester under `scheme`.
    fn traffic(scheme: Scheme, seed: u64, n: usize) -> Vec<Pair> {
        let mut work = Workload::new(seed);
        let examples = manifest_examples();
        let mut pool = CanaryPool::new();
        let mut rng = SplitMix(seed.wrapping_mul(31) ^ 7);
        let peer = testing::key(1).peer_id();
        let params = b"fuel=1000000;limits=default".to_vec();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let c = rng.below(CAPS.len());
            let cap = CAPS[c];
            let real = work.input(c);
            let exec_ms = 20 + rng.below(60) as u64;
            let think_ms = 500 + rng.below(5000) as u64;
            let (canary, real_first, delay) = match scheme {
                Scheme::Legacy => {
                    let ex: Vec<&Vec<u8>> = examples
                        .iter()
                        .filter(|e| e.0 == cap)
                        .map(|e| &e.1)
                        .collect();
                    let e = ex[rng.below(ex.len())];
                    (legacy_vary_canary(e, &mut rng), false, 0)
                }
                Scheme::Pool => {
                    let d = Delegation::new(TierSet::T2, vec![peer], vec![true], 0, &mut rng);
                    let canary = pool.make(cap, &real, &mut rng);
                    pool.record(cap, &real);
                    (canary, d.real_first(), d.delay_ms())
                }
            };
            let seen = |input: Vec<u8>, gap_ms| Seen {
                input,
                params: params.clone(),
                gap_ms,
            };
            let (a, b) = if real_first {
                (real, canary)
            } else {
                (canary, real)
            };
            out.push((
                cap,
                seen(a, think_ms),
                seen(b, exec_ms + delay),
                !real_first,
            ));
        }
        out
    }

    /// Trains a detector on one requester's traffic under `scheme` and
    /// returns its accuracy (share of requests labelled right) on another's.
    fn accuracy(scheme: Scheme, pairs: usize, train_seed: u64, test_seed: u64) -> f64 {
        let examples = manifest_examples();
        let refs: Vec<(&str, &[u8])> = examples.iter().map(|(c, e)| (*c, e.as_slice())).collect();
        let mut det = Detector::new(&refs);
        let mut samples = Vec::new();
        for (cap, a, b, first_is_canary) in traffic(scheme, train_seed, pairs) {
            samples.push((det.pair_features(cap, &a, &b), first_is_canary));
            det.remember(cap, &a.input);
            det.remember(cap, &b.input);
        }
        det.train(&samples);
        det.forget();
        let mut right = 0;
        let test = traffic(scheme, test_seed, pairs);
        for (cap, a, b, first_is_canary) in &test {
            if det.guess(cap, a, b) == *first_is_canary {
                right += 1;
            }
            det.remember(cap, &a.input);
            det.remember(cap, &b.input);
        }
        // Each pair is one canary and one real request: a right guess labels
        // both right, a wrong one both wrong.
        right as f64 / test.len() as f64
    }

    const PAIRS: usize = 1200;

    #[test]
    fn canaries_are_indistinguishable_to_a_detector_that_knows_the_protocol() {
        let new = accuracy(Scheme::Pool, PAIRS, 1, 2);
        let old = accuracy(Scheme::Legacy, PAIRS, 1, 2);
        println!(
            "detector accuracy over {PAIRS} canaries + {PAIRS} real requests: \
             new scheme {new:.3}, old scheme {old:.3}"
        );
        assert!(old > 0.9, "the detector must be strong: old scheme {old}");
        assert!(new <= 0.55, "canaries are recognisable: new scheme {new}");
    }

    /// Prints the figures for `BENCHMARKS.md`:
    /// `cargo test -p errand-core --lib canary_detector_figures -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn canary_detector_figures() {
        for pairs in [1200, 4000] {
            for scheme in [Scheme::Legacy, Scheme::Pool] {
                let runs: Vec<f64> = [(1, 2), (3, 4), (5, 6)]
                    .iter()
                    .map(|&(a, b)| accuracy(scheme, pairs, a, b))
                    .collect();
                println!(
                    "{scheme:?}: trained on {pairs} pairs, tested on {pairs} canaries + {pairs} real \
                     requests, 3 seed pairs: accuracy {:.3} {:.3} {:.3}",
                    runs[0], runs[1], runs[2]
                );
            }
        }
    }

    #[test]
    fn legacy_canaries_use_the_word_list() {
        let c = legacy_vary_canary(b"the quick brown fox", &mut SplitMix(9));
        let c = String::from_utf8(c).unwrap();
        assert!(c.split(' ').any(|w| LEGACY_CANARY_WORDS.contains(&w)));
        assert_eq!(legacy_vary_canary(&[0xff], &mut SplitMix(1)), vec![0xff]);
    }
}
