//! # errand
//!
//! The Errand node and its command-line tool. This library holds the parts of
//! the node that touch the outside world — key files, evidence files, and
//! (in later modules) the runtime node, the registry service and workflows —
//! on top of the I/O-free [`errand_core`].
//!
//! ```no_run
//! use std::path::Path;
//! use errand_core::evidence::{verify, Supplied};
//!
//! let key = errand::keystore::load(Path::new("/home/me/.config/errand/key"))?;
//! println!("I am {}", key.peer_id());
//! let evidence = errand::files::load_evidence(Path::new("run.evidence"))?;
//! let report = verify(&evidence, &Supplied { executor: Some(key.peer_id()), ..Default::default() });
//! assert!(report.verified());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod build;
pub mod card;
pub mod client;
pub mod config;
pub mod demo;
pub mod files;
pub mod keystore;
pub mod mcp;
pub mod node;
pub mod packaging;
pub mod scaffold;
pub mod store;
pub mod workflow;
