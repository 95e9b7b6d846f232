//! `errand mcp`: the network's capabilities as MCP tools, on stdio.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use errand::keystore;
use errand::mcp::{Identity, McpConfig, ToolPolicy};
use errand_core::SecretKey;
use errand_core::trust::{Policy, Risk};

use super::network::RegistryArgs;

/// Arguments of `errand mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    #[command(flatten)]
    registries: RegistryArgs,
    /// Your key, which signs every request [default: $ERRAND_KEY, else the
    /// default key; without one, tools are listed and `find` works, but
    /// calls are refused until there is one].
    #[arg(long)]
    key: Option<PathBuf>,
    /// Verification: none, t1, t2, t3, t3:P (replay with probability P) or
    /// risk (tiers by each tool's risk, mapped by [trust] in --config, else
    /// low→t1, medium→t3:0, high→t3).
    #[arg(long, default_value = "risk")]
    policy: String,
    /// The risk of calls to tools without a --tool-policy: low, medium or
    /// high. A call may ask for more with its `risk` argument, never less.
    #[arg(long, default_value = "medium")]
    risk: String,
    /// One tool's policy, TOOL=POLICY (repeatable): TOOL is a tool name, a
    /// capability name or `invoke`; POLICY is a risk (low, medium, high)
    /// or fixed tiers (none, t1, t2, t3, t3:P).
    #[arg(long = "tool-policy", value_name = "TOOL=POLICY")]
    tool_policies: Vec<String>,
    /// Where the requester keeps its reputation [default: $ERRAND_STATE,
    /// else ~/.local/share/errand].
    #[arg(long)]
    state: Option<PathBuf>,
    /// Where evidence files go [default: the state folder's `evidence`].
    #[arg(long)]
    evidence_dir: Option<PathBuf>,
    /// How often the tool list is refreshed from the registries, in ms.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    refresh_ms: u64,
    /// Only capabilities matching this intent become tools (repeatable)
    /// [default: all, as far as one registry answer of 100 goes].
    #[arg(long, value_name = "INTENT")]
    expose: Vec<String>,
    /// Fuel each run gets [default: 5000000000].
    #[arg(long)]
    fuel: Option<u64>,
}

pub fn mcp(args: McpArgs) -> anyhow::Result<ExitCode> {
    // Logs go to stderr: stdout carries JSON-RPC only.
    super::init_logging();
    let config = args.registries.node_config()?;
    let trust = config.as_ref().map(|c| c.trust.clone()).unwrap_or_default();
    let risk_policy = trust.risk_policy().map_err(anyhow::Error::msg)?;
    let policy = Policy::parse(&args.policy, risk_policy, trust.replay).with_context(|| {
        format!(
            "--policy {:?}: use none, t1, t2, t3, t3:P or risk",
            args.policy
        )
    })?;
    let risk = match args.risk.as_str() {
        "low" => Risk::Low,
        "medium" => Risk::Medium,
        "high" => Risk::High,
        other => bail!("--risk {other:?}: use low, medium or high"),
    };
    let mut tool_policies = Vec::new();
    for p in &args.tool_policies {
        let Some((tool, spec)) = p.split_once('=') else {
            bail!("--tool-policy {p:?} must be TOOL=POLICY");
        };
        let parsed = ToolPolicy::parse(spec.trim()).with_context(|| {
            format!("--tool-policy {p:?}: use low, medium, high, none, t1, t2, t3 or t3:P")
        })?;
        tool_policies.push((tool.trim().to_owned(), parsed));
    }
    let state = args
        .state
        .clone()
        .or_else(errand::workflow::default_state_dir);
    let evidence_dir = match (&args.evidence_dir, &state) {
        (Some(d), _) => d.clone(),
        (None, Some(s)) => s.join("evidence"),
        (None, None) => bail!("no home folder for the evidence: give --evidence-dir"),
    };
    let evidence_dir = std::path::absolute(&evidence_dir)
        .with_context(|| format!("resolving {}", evidence_dir.display()))?;
    let identity = identity(args.key.clone())?;
    let registries = args.registries.resolve()?;
    if registries.is_empty() && config.as_ref().is_none_or(|c| c.packages.is_none()) {
        tracing::warn!(
            "no registry (--registry, $ERRAND_REGISTRIES or --config): only `find` and `invoke` are listed, and they will fail"
        );
    }
    let mcp = McpConfig {
        registries,
        packages: config.as_ref().and_then(|c| c.packages.clone()),
        identity,
        policy,
        risk,
        tool_policies,
        replay: trust.replay,
        fallbacks: trust.fallbacks,
        widen: trust.widen,
        exploration: trust.exploration,
        state,
        evidence_dir,
        refresh: Duration::from_millis(args.refresh_ms),
        expose: args.expose.clone(),
        fuel: args.fuel,
    };
    super::runtime()?.block_on(errand::mcp::serve_stdio(mcp))?;
    Ok(ExitCode::SUCCESS)
}

/// The key named by `--key` or `$ERRAND_KEY` (which must exist), else the
/// default key, else a one-off identity that may only search.
fn identity(key: Option<PathBuf>) -> anyhow::Result<Identity> {
    let named = key.is_some() || std::env::var_os("ERRAND_KEY").is_some_and(|v| !v.is_empty());
    let path = match key {
        Some(p) => Ok(p),
        None => keystore::default_key_path(),
    };
    let missing = match path {
        Ok(path) => match keystore::load(&path) {
            Ok(key) => return Ok(Identity { key, one_off: None }),
            Err(keystore::KeyError::Missing { path }) if !named => {
                format!("no key at {}", path.display())
            }
            Err(e) => return Err(e.into()),
        },
        Err(keystore::KeyError::NoHome) => "no home folder for a default key".to_owned(),
        Err(e) => return Err(e.into()),
    };
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut())
        .map_err(|e| anyhow::anyhow!("reading the system random number generator: {e}"))?;
    tracing::warn!(
        "{missing}: listing and `find` use a one-off identity; calls are refused until there is a key (`errand keygen`)"
    );
    Ok(Identity {
        key: SecretKey::from_seed(*seed),
        one_off: Some(missing),
    })
}
