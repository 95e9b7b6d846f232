//! End-to-end tests of the `errand` binary: single commands, and real nodes
//! talking QUIC on loopback (and across network namespaces when allowed).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod card;
mod cli;
mod hardening;
mod mcp;
mod nan;
mod network;
mod polyglot;
mod reach;
mod soak;
mod support;
mod trust;
