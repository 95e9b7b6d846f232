//! Test components for `errand-host`, embedded:
//!
//! - [`HOSTILE`]: a tool whose input names the attack it performs (see the
//!   `hostile-guest` crate);
//! - [`UPPER_COMMAND`]: a plain WASI command, built without the Errand SDK,
//!   that upper-cases stdin to stdout.

include!(concat!(env!("OUT_DIR"), "/components.rs"));
