//! `errand mcp`: the network's capabilities as MCP tools, over stdio.
//!
//! Any MCP client (Claude Desktop, an IDE agent, a Python agent) starts
//! `errand mcp` and talks JSON-RPC on its stdin and stdout; logs go to
//! stderr. The server is built on `rmcp`, the official Rust SDK, with a
//! hand-written handler, because its tools are found at run time:
//!
//! * **Tools.** One per capability name and major version found through
//!   the registries (and in the node's own packages), named as
//!   [`names`] says, with an `inputSchema` made from the descriptor
//!   ([`schema`]); plus `find` (discovery by intent) and `invoke` (run
//!   whatever matches an intent). The set is soft state ([`catalog`]):
//!   it is refreshed periodically and clients are told when it changes
//!   (`notifications/tools/list_changed`, on a `subscriptions/listen`
//!   stream for clients of protocol 2026-07-28). It is bounded, and what
//!   a tool says and where its calls go is decided by the node's own
//!   packages and the requester's reputation of publishers, never by a
//!   field a publisher sets freely ([`catalog`]'s docs).
//! * **Calls.** Arguments are checked against the schema before anything
//!   is sent. Every call then runs as one step of the workflow runner
//!   ([`crate::workflow::Runner::run_step`]), the same path as
//!   `errand invoke --intent` and `errand workflow run`: discovery,
//!   reputation, canaries, cross-checks, receipts and replay as the risk
//!   policy decides per tool, and evidence written to a file. The output
//!   comes back as MCP content, with a summary of the evidence in `_meta`
//!   ([`result`]); a failure is a result with `isError` that says what to
//!   do. A call the client cancels (`notifications/cancelled`) stops.
//! * **Protocol.** Both lifecycles rmcp implements: the `initialize`
//!   handshake (up to protocol 2025-11-25) and the stateless
//!   `server/discover` lifecycle of 2026-07-28.
//!
//! See `docs/mcp.md` for the agent developer's guide.

use std::path::PathBuf;
use std::time::Duration;

use errand_core::SecretKey;
use errand_core::trust::{Policy, Risk};
use serde_json::{Map, Value};

use crate::config::PeerAddr;

pub mod catalog;
pub mod names;
pub mod result;
pub mod schema;
mod server;

pub use server::Server;

/// How one tool's calls are verified.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolPolicy {
    /// Tiers by risk, through the server's policy.
    Risk(Risk),
    /// These tiers whatever the risk: `none`, `t1`, `t2`, `t3` or `t3:P`.
    Tiers(String),
}

impl ToolPolicy {
    /// Parses `low`, `medium`, `high`, `none`, `t1`, `t2`, `t3` or `t3:P`.
    pub fn parse(s: &str) -> Option<ToolPolicy> {
        match s {
            "low" => Some(ToolPolicy::Risk(Risk::Low)),
            "medium" => Some(ToolPolicy::Risk(Risk::Medium)),
            "high" => Some(ToolPolicy::Risk(Risk::High)),
            t => match Policy::parse(t, Default::default(), 1.0) {
                Some(Policy::Fixed(_)) => Some(ToolPolicy::Tiers(t.to_ascii_lowercase())),
                _ => None,
            },
        }
    }
}

/// The requester identity calls are signed with.
#[derive(Clone)]
pub struct Identity {
    /// The key.
    pub key: SecretKey,
    /// Why it is a one-off identity, made for this run because there is
    /// no key: discovery works, invoking is refused with this reason.
    pub one_off: Option<String>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("peer", &self.key.peer_id())
            .field("one_off", &self.one_off)
            .finish()
    }
}

/// How `errand mcp` runs.
#[derive(Debug, Clone)]
pub struct McpConfig {
    /// The registries to find capabilities through.
    pub registries: Vec<PeerAddr>,
    /// The node's own packages folder, listed as tools too.
    pub packages: Option<PathBuf>,
    /// Who signs requests.
    pub identity: Identity,
    /// The verification policy: fixed tiers, or tiers by risk.
    pub policy: Policy,
    /// The risk of a call whose tool has no policy of its own.
    pub risk: Risk,
    /// Policies by tool name or capability name (`invoke` for the generic
    /// tool); the first that names a tool wins.
    pub tool_policies: Vec<(String, ToolPolicy)>,
    /// Replay probability for `t3`.
    pub replay: f64,
    /// Most fallbacks per call, per discovery round.
    pub fallbacks: usize,
    /// Wider discovery rounds when a round finds no one trustworthy.
    pub widen: u8,
    /// Chance of trying a newcomer first.
    pub exploration: f64,
    /// Where the requester keeps its reputation (`None`: in memory).
    pub state: Option<PathBuf>,
    /// Where evidence files go (absolute, so `_meta` paths are).
    pub evidence_dir: PathBuf,
    /// How often the tool set is refreshed.
    pub refresh: Duration,
    /// Which capabilities become tools: those matching these intents
    /// (empty: one query for everything, up to a registry answer's 100).
    pub expose: Vec<String>,
    /// Fuel per run (`None`: the default).
    pub fuel: Option<u64>,
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The QUIC client could not start.
    #[error("starting the network client: {0}")]
    Client(#[from] crate::client::ClientError),
    /// The WebAssembly host (for canaries and replay) could not start.
    #[error("starting the WebAssembly host: {0}")]
    Host(#[from] errand_host::HostError),
    /// The evidence folder could not be made.
    #[error("creating the evidence folder {path}: {source}")]
    EvidenceDir {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A built-in schema does not compile (a bug).
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    /// The MCP session could not start.
    #[error("MCP session: {0}")]
    Session(String),
}

/// Serves MCP on stdin and stdout until the client closes the stream.
pub async fn serve_stdio(config: McpConfig) -> Result<(), ServeError> {
    Server::start(config).await?.serve_stdio().await
}

/// A JSON object from a `json!` object literal (an empty one otherwise).
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
