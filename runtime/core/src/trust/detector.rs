//! The detector adversary.
