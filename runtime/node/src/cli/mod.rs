//! Subcommands.

pub mod keys;
pub mod tools;
pub mod verify;
