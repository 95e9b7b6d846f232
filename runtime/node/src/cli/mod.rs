//! Subcommands.

pub mod keys;
pub mod network;
pub mod receipts;
pub mod sim;
pub mod tools;
pub mod trust;
pub mod verify;

/// The async runtime network commands run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
