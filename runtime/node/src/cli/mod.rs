//! Subcommands.

pub mod keys;
pub mod verify;
