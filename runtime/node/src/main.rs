//! The `errand` command-line tool: thin glue over the `errand` and
//! `errand-core` libraries.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Errand: hand work to other agents' devices, peer to peer, safely.
#[derive(Debug, Parser)]
#[command(name = "errand", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new peer identity (an ed25519 secret key).
    Keygen(cli::keys::KeygenArgs),
    /// Print the peer id of a key.
    Id(cli::keys::IdArgs),
    /// Verify tool receipts and evidence packages offline: one in detail,
    /// or many files and folders at once.
    ///
    /// Exit status: 0 verified, 1 verification failed, 2 unusable input.
    Verify(cli::verify::VerifyArgs),
    /// Package a tool: component, manifest and a signed descriptor template.
    Pack(cli::tools::PackArgs),
    /// Show what a tool package or component holds.
    Inspect(cli::tools::InspectArgs),
    /// Run a tool locally, sign a receipt and write the evidence.
    ///
    /// Exit status: 0 if the tool returned output, 1 otherwise.
    Run(cli::tools::RunArgs),
    /// Run a node: host packages, serve invocations, publish descriptors,
    /// and (with [registry]) act as a registry. Logs follow RUST_LOG.
    Node(cli::network::NodeArgs),
    /// Find capabilities by intent and constraints across registries.
    Find(cli::network::FindArgs),
    /// Invoke a capability on a peer, verify the receipt, write the evidence.
    ///
    /// Exit status: 0 if the tool returned output, 1 otherwise.
    Invoke(Box<cli::network::InvokeArgs>),
    /// Report on a running node (asks with the node's own key).
    Status(cli::network::StatusArgs),
    /// List or export the receipts a (stopped) node has signed, with the
    /// signed requests they answer, for an auditor.
    Receipts(cli::receipts::ReceiptsArgs),
    /// Workflows: multi-step delegation with tiered verification.
    #[command(subcommand)]
    Workflow(cli::trust::WorkflowCommand),
    /// Start a local network with honest, Sybil and drifting executors and
    /// compare verification policies on the two-step workflow.
    Demo(cli::trust::DemoArgs),
    /// Simulate a network with the real discovery and trust code: sweeps
    /// over Sybil fraction, size, TTL and drift, and the paper's report.
    Sim(cli::sim::SimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(a) => cli::keys::keygen(a),
        Command::Id(a) => cli::keys::id(a),
        Command::Verify(a) => cli::verify::run(a),
        Command::Pack(a) => cli::tools::pack(a),
        Command::Inspect(a) => cli::tools::inspect(a),
        Command::Run(a) => cli::tools::run(a),
        Command::Node(a) => cli::network::node(a),
        Command::Find(a) => cli::network::find(a),
        Command::Invoke(a) => cli::network::invoke(*a),
        Command::Status(a) => cli::network::status(a),
        Command::Receipts(a) => cli::receipts::receipts(a),
        Command::Workflow(c) => cli::trust::workflow(c),
        Command::Demo(a) => cli::trust::demo(a),
        Command::Sim(a) => cli::sim::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap checks argument names and the like only at run time; this makes
    /// a malformed command fail the build's tests instead of a user's run.
    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
