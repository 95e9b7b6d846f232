//! Tier 2: canary inputs, derived from a manifest's examples and varied per
//! request so that an executor cannot recognise them.

use super::Entropy;

/// Words used to vary text canaries.
const CANARY_WORDS: &[&str] = &[
    "river", "amber", "quiet", "north", "lantern", "meadow", "copper", "swift", "harbor", "violet",
    "morning", "stone", "echo", "garden", "silver", "forest", "ember", "ocean", "maple", "winter",
];

/// A canary input derived from a manifest example: for UTF-8 text, a copy
/// with a few words inserted at random word boundaries, so every canary is
/// new to the executor yet shaped like real work; other inputs are used as
/// they are. The requester computes the right answer itself.
pub fn vary_canary(example: &[u8], rng: &mut dyn Entropy) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(example) else {
        return example.to_vec();
    };
    let mut words: Vec<String> = text.split(' ').map(str::to_owned).collect();
    for _ in 0..(1 + rng.below(3)) {
        let w = CANARY_WORDS[rng.below(CANARY_WORDS.len())];
        let at = rng.below(words.len() + 1);
        words.insert(at, w.to_owned());
    }
    words.join(" ").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::SplitMix;

    #[test]
    fn canary_variants_differ_from_the_example_and_each_other() {
        let ex = b"the quick brown fox";
        let mut rng = SplitMix(9);
        let a = vary_canary(ex, &mut rng);
        let b = vary_canary(ex, &mut rng);
        assert_ne!(a, ex.to_vec());
        assert_ne!(a, b);
        assert!(std::str::from_utf8(&a).unwrap().contains("quick"));
        assert_eq!(vary_canary(&[0xff, 0x00], &mut rng), vec![0xff, 0x00]);
    }
}
