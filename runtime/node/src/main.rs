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
    /// Start a tool: a working scaffold in Rust, Python or JavaScript.
    New(cli::author::NewArgs),
    /// Build a tool from its sources (Rust, Python or JavaScript) and pack it.
    Build(cli::author::BuildArgs),
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
    /// Reach a peer by its id over every path it publishes (direct,
    /// relayed), report how, and wait for a hole punch if asked.
    ///
    /// Exit status: 0 if every ping was answered, 1 otherwise.
    Ping(cli::network::PingArgs),
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
        Command::New(a) => cli::author::new(a),
        Command::Build(a) => cli::author::build(a),
        Command::Pack(a) => cli::tools::pack(a),
        Command::Inspect(a) => cli::tools::inspect(a),
        Command::Run(a) => cli::tools::run(a),
        Command::Node(a) => cli::network::node(a),
        Command::Find(a) => cli::network::find(a),
        Command::Invoke(a) => cli::network::invoke(*a),
        Command::Mcp(a) => cli::mcp::mcp(*a),
        Command::Status(a) => cli::network::status(a),
        Command::Ping(a) => cli::network::ping(a),
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
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes on one line, as `{:#}` writes them, but with a
/// cause left out when the text so far already ends with it: many error
/// types put their source in their own message too, and the reader should
/// not get `…: File exists (os error 17): File exists (os error 17)`.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Regression (review): `errand new x --dir FILE` said `cannot write
    /// FILE: File exists (os error 17): File exists (os error 17)`, an
    /// error whose message holds its source, printed with its chain.
    #[test]
    fn an_error_that_names_its_source_is_not_printed_twice() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot write afile: {source}")]
        struct Write {
            source: std::io::Error,
        }
        let io = std::io::Error::from_raw_os_error(17);
        let shown = io.to_string();
        let e = anyhow::Error::new(Write { source: io }).context("errand new");
        assert_eq!(
            super::error_text(&e),
            format!("errand new: cannot write afile: {shown}")
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::error_text(&plain), "outer: inner");
    }

    /// clap checks argument names and the like only at run time; this makes
    /// a malformed command fail the build's tests instead of a user's run.
    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
