//! `text-stats`: counts words, lines and characters in UTF-8 text and lists
//! the most frequent terms, as JSON.
//!
//! Parameters: `top` (default 10, at most 100), how many terms to list.

use std::collections::BTreeMap;

use errand_guest::{Context, ToolError};
use serde::Serialize;

/// The tool's output.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Whitespace-separated words.
    pub words: usize,
    /// Lines (a final line without a newline counts).
    pub lines: usize,
    /// Unicode scalar values.
    pub chars: usize,
    /// Bytes.
    pub bytes: usize,
    /// Most frequent terms, lowercase, most frequent first, ties alphabetical.
    pub top_terms: Vec<Term>,
}

/// A term and how often it occurs.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Term {
    /// The term, lowercase.
    pub term: String,
    /// Occurrences.
    pub count: usize,
}

/// Computes the statistics of `text`, listing `top` terms.
pub fn stats(text: &str, top: usize) -> Stats {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for word in text.split(|c: char| !c.is_alphanumeric() && c != '\'') {
        let w = word.trim_matches('\'');
        if w.is_empty() {
            continue;
        }
        *counts.entry(w.to_lowercase()).or_default() += 1;
    }
    let mut terms: Vec<Term> = counts
        .into_iter()
        .map(|(term, count)| Term { term, count })
        .collect();
    // Stable sort over alphabetical order: ties stay alphabetical.
    terms.sort_by_key(|t| std::cmp::Reverse(t.count));
    terms.truncate(top);
    Stats {
        words: text.split_whitespace().count(),
        lines: text.lines().count(),
        chars: text.chars().count(),
        bytes: text.len(),
        top_terms: terms,
    }
}

fn invoke(input: &[u8], ctx: &Context) -> Result<Vec<u8>, ToolError> {
    let text = std::str::from_utf8(input)
        .map_err(|e| ToolError::InvalidInput(format!("input is not UTF-8 text: {e}")))?;
    let top = match ctx.param("top") {
        None => 10,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 100)
            .ok_or_else(|| {
                ToolError::InvalidInput(format!("parameter top={t:?} must be 0..=100"))
            })?,
    };
    errand_guest::log::debug("counting", &[("bytes", &input.len().to_string())]);
    serde_json::to_vec(&stats(text, top)).map_err(|e| ToolError::Failed(e.to_string()))
}

errand_guest::export_tool!(invoke);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_ranks() {
        let s = stats("the cat saw the dog.\nThe dog ran", 2);
        assert_eq!((s.words, s.lines, s.chars), (8, 2, 32));
        assert_eq!(
            s.top_terms,
            vec![
                Term {
                    term: "the".into(),
                    count: 3
                },
                Term {
                    term: "dog".into(),
                    count: 2
                }
            ]
        );
    }

    #[test]
    fn empty_text() {
        let s = stats("", 10);
        assert_eq!((s.words, s.lines, s.chars, s.bytes), (0, 0, 0, 0));
        assert!(s.top_terms.is_empty());
    }
}
