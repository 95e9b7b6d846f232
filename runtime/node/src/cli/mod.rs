//! Subcommands.

pub mod keys;
pub mod network;
pub mod tools;
pub mod verify;
