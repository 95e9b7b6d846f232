//! The `errand` command-line tool: thin glue over the `errand` and
//! `errand-core` libraries.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Errand: hand work to other agents' devices, peer to peer, safely.
#[derive(Debug, Parser)]
#[command(name = "errand", version, propagate_version = true)]
struct Cli {
    /// How commands that log (`errand node`) write their logs on stderr.
    #[arg(long, global = true, value_enum, default_value_t = cli::LogFormat::Text)]
    log_format: cli::LogFormat,
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
    /// and (with [registry]) act as a registry. Logs go to stderr and
    /// follow RUST_LOG; see --log-format.
    Node(cli::network::NodeArgs),
    /// Find capabilities by intent and constraints across registries.
    ///
    /// Needs no key: without one it searches with a one-off identity.
    Find(cli::network::FindArgs),
    /// Invoke a capability on a peer, verify the receipt, write the evidence.
    ///
    /// Exit status: 0 if the tool returned output, 1 otherwise.
    Invoke(Box<cli::network::InvokeArgs>),
    /// Serve the network's capabilities as MCP tools on stdin/stdout, for
    /// any MCP client (see docs/mcp.md). Logs go to stderr.
    Mcp(Box<cli::mcp::McpArgs>),
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
    /// Write the node's A2A Agent Card, signed with its key (discovery
    /// only: A2A clients cannot call QUIC), or check a card's signature.
    Card(cli::card::CardArgs),
    /// Simulate a network with the real discovery and trust code: sweeps
    /// over Sybil fraction, size, TTL and drift, and the paper's report.
    Sim(cli::sim::SimArgs),
}

/// The exit status when stdout is a closed pipe: 128 + SIGPIPE.
const BROKEN_PIPE: u8 = 141;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::set_log_format(cli.log_format);
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
        Command::Mcp(a) => cli::mcp::mcp(*a),
        Command::Status(a) => cli::network::status(a),
        Command::Receipts(a) => cli::receipts::receipts(a),
        Command::Workflow(c) => cli::trust::workflow(c),
        Command::Demo(a) => cli::trust::demo(a),
        Command::Sim(a) => cli::sim::run(a),
        Command::Card(a) => cli::card::run(a),
    };
    match result {
        Ok(code) => code,
        // Whoever read stdout has gone (`errand verify --json FILE | head`):
        // stop quietly, as ripgrep does. The status is the one a program
        // killed by SIGPIPE shows in a shell (128 + 13), never 0, so a
        // pipeline under `pipefail` cannot take a cut-off check for a pass.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<cli::StdoutError>()
                    .is_some_and(cli::StdoutError::is_broken_pipe)
            }) =>
        {
            ExitCode::from(BROKEN_PIPE)
        }
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
