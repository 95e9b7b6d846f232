//! `errand node`, `errand find`, `errand invoke` and `errand status`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use errand::client::{Ask, Backoff, Client, ClientError, DEFAULT_FUEL, retry};
use errand::config::{NodeConfig, PeerAddr};
use errand::node::Node;
use errand::workflow::{InputSpec, Runner, RunnerConfig, StepSpec};
use errand_core::bounded::{BBytes, BString};
use errand_core::descriptor::{SignedDescriptor, Tiers};
use errand_core::receipt::{InvocationContext, Outcome};
use errand_core::request::CapabilityTarget;
use errand_core::signed;
use errand_core::wire::Query;
use errand_host::Embed;

use super::keys;
use super::tools::{now, read_input};

/// Arguments of `errand node`.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The node configuration.
    #[arg(long, short, default_value = "node.toml")]
    config: PathBuf,
}

pub fn node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    super::init_logging();
    let config = NodeConfig::load(&args.config)?;
    super::runtime()?.block_on(async move {
        // Listening for signals before the ready line: a supervisor may
        // send SIGTERM as soon as it reads it.
        let shutdown = shutdown_signal()?;
        let node = Node::start(config).await?;
        // A node keeps serving when nobody reads its stdout any more
        // (`errand node | head -1`): the ready line is for whoever is there.
        let _ = super::write_stdout(format!("{}\n", errand::node::ready_line(&node)).as_bytes());
        shutdown.await;
        tracing::info!("shutting down: withdrawing descriptors");
        node.shutdown().await;
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}

/// Starts listening for SIGINT and SIGTERM (Ctrl-C elsewhere) at once, and
/// returns what completes at the first of them.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Where to find registries.
#[derive(Debug, Args, Clone)]
pub struct RegistryArgs {
    /// A registry to ask, `PEERID@ADDR` (repeatable; also $ERRAND_REGISTRIES, comma-separated).
    #[arg(long = "registry", value_name = "PEERID@ADDR")]
    registries: Vec<PeerAddr>,
    /// Use the registries listed in this node configuration.
    #[arg(long)]
    config: Option<PathBuf>,
}

impl RegistryArgs {
    /// The node configuration named by `--config`, if any.
    pub fn node_config(&self) -> anyhow::Result<Option<NodeConfig>> {
        Ok(self.config.as_deref().map(NodeConfig::load).transpose()?)
    }

    /// Every registry named by flags, environment and configuration.
    pub fn resolve(&self) -> anyhow::Result<Vec<PeerAddr>> {
        let mut out = self.registries.clone();
        if let Ok(env) = std::env::var("ERRAND_REGISTRIES") {
            for part in env.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                out.push(part.parse().context("in $ERRAND_REGISTRIES")?);
            }
        }
        if let Some(c) = &self.config {
            out.extend(NodeConfig::load(c)?.registries);
        }
        out.dedup();
        Ok(out)
    }
}

/// Constraints shared by `find` and `invoke --intent`.
#[derive(Debug, Args, Clone)]
pub struct Constraints {
    /// Only capabilities declaring at most this latency, in ms.
    #[arg(long)]
    max_latency: Option<u32>,
    /// Only capabilities declaring at most this cost.
    #[arg(long)]
    max_cost: Option<u32>,
    /// Required verification tier: canary, receipts or replay (repeatable).
    #[arg(long = "tier", value_parser = ["canary", "receipts", "replay"])]
    tiers: Vec<String>,
    /// Required input media type.
    #[arg(long)]
    input_type: Option<String>,
    /// Required output media type.
    #[arg(long)]
    output_type: Option<String>,
    /// Exact capability name.
    #[arg(long)]
    name: Option<String>,
    /// A version the capability must be compatible with (same major, at least this).
    #[arg(long, value_name = "VERSION")]
    compatible: Option<errand_core::descriptor::Version>,
}

impl Constraints {
    fn query(&self, intent: &str, limit: u16) -> anyhow::Result<Query> {
        let mut q = Query::intent(intent, limit);
        q.max_latency_ms = self.max_latency;
        q.max_cost = self.max_cost;
        q.tiers = Tiers {
            canary: self.tiers.iter().any(|t| t == "canary"),
            receipts: self.tiers.iter().any(|t| t == "receipts"),
            replay: self.tiers.iter().any(|t| t == "replay"),
        };
        q.input = self.input_type.as_deref().map(BString::new).transpose()?;
        q.output = self.output_type.as_deref().map(BString::new).transpose()?;
        q.name = self.name.as_deref().map(BString::new).transpose()?;
        q.version = self.compatible;
        Ok(q)
    }
}

/// Arguments of `errand find`.
#[derive(Debug, Args)]
pub struct FindArgs {
    /// What you want done, in words.
    intent: String,
    #[command(flatten)]
    constraints: Constraints,
    /// Most candidates to list.
    #[arg(long, default_value_t = 10)]
    limit: u16,
    #[command(flatten)]
    registries: RegistryArgs,
    /// Your key, which identifies you to registries [default: the default
    /// key if there is one, else a one-off identity made for this search].
    #[arg(long)]
    key: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn tiers_text(t: &Tiers) -> String {
    let mut v = Vec::new();
    if t.canary {
        v.push("canary");
    }
    if t.receipts {
        v.push("receipts");
    }
    if t.replay {
        v.push("replay");
    }
    v.join(",")
}

pub fn find(args: FindArgs) -> anyhow::Result<ExitCode> {
    if !(1..=100).contains(&args.limit) {
        bail!("--limit must be 1..=100");
    }
    let registries = args.registries.resolve()?;
    let query = args.constraints.query(&args.intent, args.limit)?;
    let key = match args.key.clone() {
        Some(path) => keys::load_key(Some(path))?,
        None => keys::load_default_or_ephemeral()?,
    };
    let found = super::runtime()?.block_on(async {
        let c = Client::new(key)?;
        let found = c.find(&registries, &query, now()).await;
        c.close().await;
        found
    })?;
    if args.json {
        let json = serde_json::json!({
            "intent": args.intent,
            "elapsed_ms": found.elapsed.as_secs_f64() * 1e3,
            "registries": registries.len(),
            "failures": found.failures.iter().map(|(r, e)| serde_json::json!({"registry": r.to_string(), "error": e})).collect::<Vec<_>>(),
            "rejected": found.rejected,
            "candidates": found.candidates.iter().map(|d| d.to_json()).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (r, e) in &found.failures {
        eprintln!("warning: registry {r} failed: {e}");
    }
    if found.candidates.is_empty() {
        outln!(
            "no capability matches {:?} ({:.1} ms)",
            args.intent,
            found.elapsed.as_secs_f64() * 1e3
        );
        return Ok(ExitCode::from(1));
    }
    outln!(
        "{:>2}  {:<14} {:<8} {:<12} {:>7} {:>5}  {:<22} ADDRESS",
        "#",
        "NAME",
        "VERSION",
        "PUBLISHER",
        "LAT ms",
        "COST",
        "TIERS"
    );
    for (i, d) in found.candidates.iter().enumerate() {
        let b = d.body();
        outln!(
            "{:>2}  {:<14} {:<8} {:<12} {:>7} {:>5}  {:<22} {}",
            i + 1,
            b.name.as_str(),
            b.version.to_string(),
            b.publisher.short(),
            b.qos.latency_ms,
            b.qos.cost,
            tiers_text(&b.tiers),
            b.addrs.first().map(|a| a.to_string()).unwrap_or_default(),
        );
    }
    outln!(
        "{} candidates from {} registries in {:.1} ms",
        found.candidates.len(),
        registries.len() - found.failures.len(),
        found.elapsed.as_secs_f64() * 1e3
    );
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `errand invoke`.
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The executor: PEERID (looked up in the registries) or PEERID@ADDR.
    #[arg(required_unless_present = "intent", conflicts_with = "intent")]
    target: Option<String>,
    /// Discover the executor by intent instead.
    #[arg(long)]
    intent: Option<String>,
    /// The capability to run on the executor (needed with PEERID@ADDR, or
    /// when the executor hosts several).
    #[arg(long)]
    capability: Option<String>,
    /// Action shipping: run this component (or package) on the executor
    /// instead of a hosted capability (the executor's policy must allow you).
    #[arg(long, value_name = "COMPONENT", conflicts_with_all = ["intent", "capability"])]
    ship: Option<PathBuf>,
    /// The input file (`-` for stdin).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the output [default: stdout].
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Where to write the evidence [default: a new file per invocation,
    /// CAPABILITY-REQUESTID.evidence, so that invocations running side by
    /// side never overwrite each other's].
    #[arg(long)]
    evidence: Option<PathBuf>,
    /// A request parameter, `key=value` (repeatable).
    #[arg(long = "param", short = 'p')]
    params: Vec<String>,
    /// Fuel the run gets [default: 5000000000, or 1000000000 with --ship,
    /// the default caps]. An executor whose policy allows less refuses,
    /// saying how much it allows.
    #[arg(long)]
    fuel: Option<u64>,
    /// Ask for the full trace and keep it in the evidence.
    #[arg(long)]
    trace: bool,
    /// With --intent: verification, none, t1, t2, t3, t3:P (replay with
    /// probability P) or risk (tiers by --risk, mapped by [trust] in
    /// --config, else low→t1, medium→t3:0, high→t3).
    #[arg(long, default_value = "risk", requires = "intent")]
    policy: String,
    /// With --intent: how much is at stake, low, medium or high.
    #[arg(long, default_value = "medium", requires = "intent")]
    risk: String,
    /// With --intent: where the requester keeps its reputation
    /// [default: $ERRAND_STATE, else ~/.local/share/errand].
    #[arg(long, requires = "intent")]
    state: Option<PathBuf>,
    /// Only executors of a tool packaged by this author (a peer id).
    #[arg(long, conflicts_with = "ship")]
    author: Option<String>,
    /// Only executors of this component (sha256 hex, `sha256:` optional).
    #[arg(long, conflicts_with = "ship")]
    component: Option<String>,
    #[command(flatten)]
    constraints: Constraints,
    #[command(flatten)]
    registries: RegistryArgs,
    /// Your key (the requester's identity).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Print a JSON summary on stdout (the output must then go to --output).
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_params(list: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let pairs: Vec<(String, String)> = list
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("parameter {p:?} must be key=value"))
        })
        .collect::<anyhow::Result<_>>()?;
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(o, _)| o == k) {
            bail!("-p {k} is given twice");
        }
    }
    Ok(pairs)
}

pub fn invoke(args: InvokeArgs) -> anyhow::Result<ExitCode> {
    if args.json && args.output.is_none() {
        bail!("--json prints a summary on stdout, so give the output a file with --output");
    }
    let key = keys::load_key(args.key.clone())?;
    errand::workflow::Pins::parse(args.author.as_deref(), args.component.as_deref())
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let input = read_input(&args.input, 64 << 20)?;
    let params = parse_params(&args.params)?;
    super::runtime()?.block_on(async move {
        let client = Client::new(key)?;
        let result = invoke_async(args, client.clone(), input, params).await;
        client.close().await;
        result
    })
}

async fn invoke_async(
    args: InvokeArgs,
    client: Client,
    input: Vec<u8>,
    params: Vec<(String, String)>,
) -> anyhow::Result<ExitCode> {
    let now = now();
    if let Some(intent) = args.intent.clone() {
        return invoke_by_intent(&args, &intent, client, input, params).await;
    }
    if let Some(path) = &args.ship {
        let Some(target) = args.target.as_deref().filter(|t| t.contains('@')) else {
            bail!("--ship needs the executor as PEERID@ADDR");
        };
        let to: PeerAddr = target.parse()?;
        let tool = errand::packaging::load_tool(path)?;
        let (request_id, seed) = Ask::fresh_ids();
        let req = Ask {
            request_id,
            capability: None,
            component: Some(errand_core::Digest::of(&tool.component)),
            input: BBytes::new(input.clone())?,
            context: InvocationContext::from_pairs(now, &params)
                .map_err(|e| anyhow::anyhow!("--param: {e}"))?,
            fuel: args.fuel.unwrap_or(SHIPPING_FUEL),
            limits: None,
            seed,
            want_trace: args.trace,
        };
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "shipped".into());
        let done = retry(
            Backoff::default(),
            || client.ship(to, &tool.component, &req),
            |e, wait| busy_note(to, e, wait),
        )
        .await?;
        return finish(&args, &input, &name, to, 0.0, done);
    }
    // Who to ask, and which descriptor promised what.
    let mut constraints = args.constraints.clone();
    if let Some(c) = &args.capability {
        constraints.name = Some(c.clone());
    }
    let mut discovery_ms = 0.0;
    let (targets, descriptors): (Vec<PeerAddr>, Vec<Option<SignedDescriptor>>) =
        match (&args.intent, &args.target) {
            (Some(intent), _) => {
                let registries = args.registries.resolve()?;
                let found = client
                    .find(&registries, &constraints.query(intent, 5)?, now)
                    .await?;
                discovery_ms = found.elapsed.as_secs_f64() * 1e3;
                if found.candidates.is_empty() {
                    bail!("no capability matches {intent:?}");
                }
                let mut t = Vec::new();
                let mut d = Vec::new();
                for c in found.candidates {
                    if let Ok(a) = Client::address_of(&c) {
                        t.push(a);
                        d.push(Some(c));
                    }
                }
                (t, d)
            }
            (None, Some(target)) if target.contains('@') => {
                let pa: PeerAddr = target.parse()?;
                let Some(name) = &args.capability else {
                    bail!("with PEERID@ADDR, name the capability with --capability NAME");
                };
                // The descriptor (for the promised component) if a registry has it.
                let registries = args.registries.resolve().unwrap_or_default();
                let mut q = constraints.query("", 1)?;
                q.publisher = Some(pa.peer);
                q.name = Some(BString::new(name.as_str())?);
                let d = if registries.is_empty() {
                    None
                } else {
                    client
                        .find(&registries, &q, now)
                        .await
                        .ok()
                        .and_then(|f| f.candidates.into_iter().next())
                };
                (vec![pa], vec![d])
            }
            (None, Some(target)) => {
                let peer: errand_core::PeerId = target.parse()?;
                let registries = args.registries.resolve()?;
                let mut q = constraints.query("", 100)?;
                q.publisher = Some(peer);
                let found = client.find(&registries, &q, now).await?;
                discovery_ms = found.elapsed.as_secs_f64() * 1e3;
                match found.candidates.len() {
                    0 => bail!("no registry lists a capability from {peer}"),
                    1 => {}
                    _ => bail!(
                        "{peer} hosts several capabilities ({}); pick one with --capability NAME",
                        found
                            .candidates
                            .iter()
                            .map(|d| d.body().name.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
                let d = found.candidates.into_iter().next();
                let a = Client::address_of(d.as_ref().context("no candidate")?)?;
                (vec![a], vec![d])
            }
            (None, None) => bail!("give a target PEERID or --intent"),
        };
    // --author / --component: drop candidates whose descriptor does not match.
    let pins = errand::workflow::Pins::parse(args.author.as_deref(), args.component.as_deref())
        .map_err(|e| anyhow::anyhow!("--{e}"))?;
    let (targets, descriptors): (Vec<PeerAddr>, Vec<Option<SignedDescriptor>>) =
        if pins == errand::workflow::Pins::default() {
            (targets, descriptors)
        } else {
            let kept: (Vec<_>, Vec<_>) = targets
                .into_iter()
                .zip(descriptors)
                .filter(|(_, d)| d.as_ref().is_some_and(|d| pins.admit(d.body())))
                .unzip();
            if kept.0.is_empty() {
                bail!("no candidate matches the pinned --author/--component");
            }
            kept
        };

    let mut last_err = None;
    for (to, descriptor) in targets.into_iter().zip(descriptors).take(3) {
        let name = descriptor
            .as_ref()
            .map(|d| d.body().name.to_string())
            .or(args.capability.clone())
            .unwrap_or_default();
        let (request_id, seed) = Ask::fresh_ids();
        let req = Ask {
            request_id,
            capability: Some(CapabilityTarget {
                name: BString::new(name.as_str())?,
                version: descriptor.as_ref().map(|d| d.body().version),
            }),
            component: descriptor.as_ref().and_then(|d| d.body().component),
            input: BBytes::new(input.clone())?,
            context: InvocationContext::from_pairs(now, &params)
                .map_err(|e| anyhow::anyhow!("--param: {e}"))?,
            fuel: args.fuel.unwrap_or(DEFAULT_FUEL),
            limits: None,
            seed,
            want_trace: args.trace,
        };
        // Refused at a limit before any work was done: the same request
        // (same nonce, never used) is sent again after a pause.
        let sent = retry(
            Backoff::default(),
            || client.invoke(to, &req),
            |e, wait| busy_note(to, e, wait),
        )
        .await;
        match sent {
            Ok(done) => return finish(&args, &input, &name, to, discovery_ms, done),
            Err(
                e
                @ (ClientError::Receipt { .. } | ClientError::Remote { .. } | ClientError::Net(_)),
            ) => {
                eprintln!("warning: {to} failed: {e}");
                last_err = Some(e);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last_err
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no candidate could be invoked")))
}

/// Tells the user an executor refused at a limit and when we try again.
fn busy_note(to: PeerAddr, e: &ClientError, wait: Duration) {
    eprintln!(
        "note: {to} is busy ({e}); retrying in {} ms",
        wait.as_millis()
    );
}

fn finish(
    args: &InvokeArgs,
    input: &[u8],
    name: &str,
    to: PeerAddr,
    discovery_ms: f64,
    done: errand::client::Invoked,
) -> anyhow::Result<ExitCode> {
    let r = &done.response;
    let body = r.receipt.body();
    let trace: Option<Vec<_>> = r.trace.as_ref().map(|t| t.as_slice().to_vec());
    let mut ev = errand_host::evidence(
        r.receipt.clone(),
        Embed {
            input: Some(input),
            output: Some(&r.output),
            trace: trace.as_deref(),
            component: None,
        },
    );
    ev.request = Some(done.request.clone());
    let bytes = signed::encode(&ev)?;
    let evidence_path =
        super::write_evidence(args.evidence.as_deref(), name, &body.request_id, &bytes);
    // The output is written even when the evidence could not be: the run
    // is done (and perhaps paid for); only then is either failure reported.
    match &args.output {
        Some(p) => errand::files::write_atomic(p, &r.output)
            .with_context(|| format!("writing {}", p.display()))?,
        None => super::write_stdout(&r.output)?,
    }
    let evidence_path = evidence_path?;
    eprintln!(
        "{name} on {}: {} · fuel {} · {:.1} ms{} · receipt verified (executor, nonce, component, input, output) · evidence {}",
        to,
        body.outcome,
        body.fuel_consumed,
        done.elapsed.as_secs_f64() * 1e3,
        if discovery_ms > 0.0 {
            format!(" (+{discovery_ms:.1} ms discovery)")
        } else {
            String::new()
        },
        evidence_path.display()
    );
    if args.json {
        let json = serde_json::json!({
            "executor": to.to_string(),
            "capability": name,
            "outcome": body.outcome.to_string(),
            "fuel_consumed": body.fuel_consumed,
            "elapsed_ms": done.elapsed.as_secs_f64() * 1e3,
            "discovery_ms": discovery_ms,
            "evidence": evidence_path.display().to_string(),
            "receipt": r.receipt.to_json(),
        });
        outln!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(if matches!(body.outcome, Outcome::Ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Fuel for a shipped component when none is given: the default
/// `[policy] shipping_max_fuel`.
const SHIPPING_FUEL: u64 = 1_000_000_000;

/// `errand invoke --intent`: a one-step workflow through the same
/// delegation state machine as `errand workflow run` (discovery, reputation,
/// canaries, cross-checks, receipts and replay, by policy and risk).
async fn invoke_by_intent(
    args: &InvokeArgs,
    intent: &str,
    client: Client,
    input: Vec<u8>,
    params: Vec<(String, String)>,
) -> anyhow::Result<ExitCode> {
    let config = args.registries.node_config()?;
    let trust = config.map(|c| c.trust).unwrap_or_default();
    let risk_policy = trust.risk_policy().map_err(anyhow::Error::msg)?;
    let policy = errand_core::trust::Policy::parse(&args.policy, risk_policy, trust.replay)
        .with_context(|| {
            format!(
                "--policy {:?}: use none, t1, t2, t3, t3:P or risk",
                args.policy
            )
        })?;
    let risk = match args.risk.as_str() {
        "low" => errand_core::trust::Risk::Low,
        "medium" => errand_core::trust::Risk::Medium,
        "high" => errand_core::trust::Risk::High,
        other => bail!("--risk {other:?}: use low, medium or high"),
    };
    let name = args
        .capability
        .clone()
        .or(args.constraints.name.clone())
        .unwrap_or_else(|| "invoke".into());
    let spec = StepSpec {
        name: name.clone(),
        intent: intent.to_owned(),
        input: InputSpec::File(args.input.clone()),
        params: params.into_iter().collect(),
        risk,
        tiers: None,
        max_latency_ms: args.constraints.max_latency,
        max_cost: args.constraints.max_cost,
        input_type: args.constraints.input_type.clone(),
        output_type: args.constraints.output_type.clone(),
        capability: args.capability.clone().or(args.constraints.name.clone()),
        compatible: args.constraints.compatible.map(|v| v.to_string()),
        fuel: args.fuel,
        author: args.author.clone(),
        component: args.component.clone(),
    };
    // Each request's evidence gets its own file (STEP-REQUESTID.evidence),
    // so invocations running side by side never overwrite each other's.
    let evidence_dir = match &args.evidence {
        Some(p) => p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".")),
        None => PathBuf::from("."),
    };
    let registries = args.registries.resolve()?;
    let state = args
        .state
        .clone()
        .or_else(errand::workflow::default_state_dir);
    let runner_config = RunnerConfig {
        policy,
        fallback_budget: trust.fallbacks,
        widen: trust.widen,
        exploration: trust.exploration,
        replay: trust.replay,
        evidence_dir: Some(evidence_dir),
        keep_trace: args.trace,
        ..RunnerConfig::default()
    };
    let host = errand::packaging::default_host()?;
    // Agents call tools in parallel from several processes under one
    // identity: the reputation store admits one process at a time, so the
    // others go ahead with what they know in memory rather than fail.
    let mut runner = match Runner::new(
        client.clone(),
        host.clone(),
        registries.clone(),
        runner_config.clone(),
        state.as_deref(),
    ) {
        Ok(r) => r,
        Err(errand::workflow::WorkflowError::Store(e)) => {
            eprintln!(
                "note: reputation store busy or unreadable ({e}); this call uses a fresh in-memory reputation"
            );
            Runner::new(client, host, registries, runner_config, None)?
        }
        Err(e) => return Err(e.into()),
    };
    let (report, output) = runner.run_step(&spec, &input, now()).await;
    runner.save()?;
    eprint!("{}", super::trust::format_step(&report));
    let Some(output) = output else {
        return Ok(ExitCode::from(1));
    };
    let mut evidence = report
        .evidence
        .iter()
        .rfind(|p| !p.contains("FRAUD-"))
        .map(PathBuf::from);
    if let (Some(want), Some(got)) = (&args.evidence, &evidence) {
        std::fs::rename(got, want)
            .with_context(|| format!("moving the evidence to {}", want.display()))?;
        eprintln!("  evidence {} → {}", got.display(), want.display());
        evidence = Some(want.clone());
    }
    match &args.output {
        Some(p) => errand::files::write_atomic(p, &output)
            .with_context(|| format!("writing {}", p.display()))?,
        None => super::write_stdout(&output)?,
    }
    if args.json {
        let json = serde_json::json!({
            "executor": report.executor,
            "capability": report.attempts.last().map(|a| a.capability.clone()),
            "tiers": report.tiers,
            "fallbacks": report.fallbacks,
            "discovery_ms": report.discovery_ms,
            "elapsed_ms": report.latency_ms,
            "evidence": evidence.map(|e| e.display().to_string()),
            "attempts": report.attempts,
        });
        outln!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `errand ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// The peer: `PEERID`, whose paths the registries know from its
    /// descriptors, or `PEERID@ADDR` to dial one address.
    target: String,
    #[command(flatten)]
    registries: RegistryArgs,
    /// Pings to send in all.
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Between pings, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// When the peer was first reached through a relay, wait up to this
    /// long for a direct path (a hole punch), in milliseconds.
    #[arg(long, default_value_t = 0)]
    wait_direct_ms: u64,
    /// Your key [default: the default key if there is one, else a one-off
    /// identity].
    #[arg(long)]
    key: Option<PathBuf>,
    /// Print a JSON summary at the end.
    #[arg(long)]
    json: bool,
}

/// Dials a peer by id (every path it publishes, preferring direct), pings
/// it, reports how it was reached, and waits for a hole punch if asked.
pub fn ping(args: PingArgs) -> anyhow::Result<ExitCode> {
    use errand_core::reach::PathKind;
    use errand_core::wire::{Request, Response};
    let (peer, hint): (errand_core::PeerId, Option<std::net::SocketAddr>) =
        match args.target.split_once('@') {
            Some(_) => {
                let pa: PeerAddr = args.target.parse()?;
                (pa.peer, Some(pa.addr))
            }
            None => (args.target.trim().parse()?, None),
        };
    let key = match args.key.clone() {
        Some(path) => keys::load_key(Some(path))?,
        None => keys::load_default_or_ephemeral()?,
    };
    let registries = if hint.is_none() {
        args.registries.resolve()?
    } else {
        Vec::new()
    };
    let count = args.count.max(1);
    super::runtime()?.block_on(async move {
        let c = Client::new(key)?;
        let done = async {
            if hint.is_none() {
                let q = Query {
                    publisher: Some(peer),
                    limit: 1,
                    ..Query::default()
                };
                let found = c.find(&registries, &q, now()).await?;
                if found.candidates.is_empty() {
                    bail!("no registry lists {peer}");
                }
            }
            let ep = c.endpoint();
            let t0 = std::time::Instant::now();
            let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1e3;
            let first = ep.peer_connection(peer, hint).await?;
            match first.request(&Request::Ping).await? {
                Response::Pong => {}
                other => bail!("{peer} answered {other:?}"),
            }
            let first_ms = ms(t0);
            outln!("reached {peer} {} in {first_ms:.1} ms", first.kind());
            let mut direct: Option<(PathKind, f64)> = None;
            if first.kind() == PathKind::Relayed && args.wait_direct_ms > 0 {
                let until = t0 + Duration::from_millis(args.wait_direct_ms);
                while std::time::Instant::now() < until {
                    let now_conn = ep.peer_connection(peer, hint).await?;
                    if now_conn.kind() != PathKind::Relayed {
                        if let Ok(Response::Pong) = now_conn.request(&Request::Ping).await {
                            direct = Some((now_conn.kind(), ms(t0)));
                        }
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                match direct {
                    Some((kind, at)) => outln!("direct ({kind}) after {at:.1} ms"),
                    None => outln!(
                        "stayed relayed: no direct path within {} ms",
                        args.wait_direct_ms
                    ),
                }
            }
            let mut answered = 1u32;
            for i in 2..=count {
                tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
                let t = std::time::Instant::now();
                let got = async {
                    let conn = ep.peer_connection(peer, hint).await?;
                    let kind = conn.kind();
                    Ok::<_, errand_net::NetError>((conn.request(&Request::Ping).await?, kind))
                }
                .await;
                match got {
                    Ok((Response::Pong, kind)) => {
                        answered += 1;
                        outln!("ping {i}: {:.1} ms {kind}", ms(t));
                    }
                    Ok((other, _)) => outln!("ping {i}: answered {other:?}"),
                    Err(e) => outln!("ping {i}: failed: {e}"),
                }
            }
            outln!("{answered} of {count} answered");
            if args.json {
                let json = serde_json::json!({
                    "peer": peer.to_string(),
                    "first": { "kind": first.kind(), "ms": first_ms },
                    "direct": direct.map(|(kind, at)| serde_json::json!({ "kind": kind, "ms": at })),
                    "answered": answered,
                    "count": count,
                });
                outln!("{}", serde_json::to_string(&json)?);
            }
            Ok(answered == count)
        }
        .await;
        c.close().await;
        Ok(if done? {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// Arguments of `errand status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The node, `PEERID@ADDR` [default: the node of --config].
    target: Option<PeerAddr>,
    /// The node's configuration: its key and listen address.
    #[arg(long, short, default_value = "node.toml")]
    config: PathBuf,
    /// The key to ask with (status answers only the node's own key).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (target, key_path) = match args.target {
        Some(t) => (t, args.key.clone()),
        None => {
            let c = NodeConfig::load(&args.config)?;
            let key_path = args.key.clone().or(c.key.clone());
            let key = keys::load_key(key_path.clone())?;
            let mut addr = errand::node::recorded_addr(&c.storage).unwrap_or(c.listen);
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::IpAddr::from([127, 0, 0, 1]));
            }
            (
                PeerAddr {
                    peer: key.peer_id(),
                    addr,
                },
                key_path,
            )
        }
    };
    let key = keys::load_key(key_path)?;
    let (s, reach) = super::runtime()?.block_on(async move {
        let c = Client::new(key)?;
        let s = c.status(target).await;
        // Older nodes do not report reachability.
        let reach = c.reachability(target).await.ok();
        c.close().await;
        s.map(|s| (s, reach))
    })?;
    if args.json {
        let mut v = serde_json::to_value(&s)?;
        if let (Some(r), Some(o)) = (&reach, v.as_object_mut()) {
            o.insert("reachability".into(), serde_json::to_value(r)?);
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("node       {}", s.peer);
    outln!("version    {}", s.version);
    outln!("uptime     {:.1} s", s.uptime_ms as f64 / 1e3);
    outln!("peers      {} connected", s.peers.len());
    for p in s.peers.iter() {
        outln!("           {p}");
    }
    outln!("hosting    {} capabilities", s.capabilities.len());
    for c in s.capabilities.iter() {
        outln!(
            "           {} {} seq {} component {}{}",
            c.name,
            c.version,
            c.seq,
            c.component.short(),
            c.measured_latency_ms
                .map(|l| format!(" measured {l} ms"))
                .unwrap_or_default()
        );
    }
    match s.registry_entries {
        Some(n) => outln!("registry   {n} live descriptors"),
        None => outln!("registry   not a registry"),
    }
    outln!("receipts   {} stored", s.receipts_stored);
    outln!("served     {} invocations", s.invocations_served);
    if let Some(r) = reach {
        print_reachability(&r)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The reachability part of `errand status` (see docs/reachability.md).
fn print_reachability(r: &errand_core::reach::ReachabilityReport) -> anyhow::Result<()> {
    outln!("nat        {}", r.nat);
    for o in r.observed.iter() {
        outln!(
            "           seen as {} by {} at {}{}",
            o.seen,
            o.observer,
            o.observer_addr,
            o.local.map(|l| format!(" (local {l})")).unwrap_or_default()
        );
    }
    outln!("paths      {} published", r.paths.len());
    for p in r.paths.iter() {
        outln!("           {p}");
    }
    for x in r.relays.iter() {
        match (&x.error, x.reserved) {
            (_, true) => outln!("relay      reserved with {}@{}", x.relay, x.addr),
            (Some(e), false) => outln!("relay      not reserved with {}@{}: {e}", x.relay, x.addr),
            (None, false) => outln!("relay      reserving with {}@{}", x.relay, x.addr),
        }
    }
    outln!(
        "made       {} direct, {} punched, {} relayed connections",
        r.made.direct,
        r.made.punched,
        r.made.relayed
    );
    outln!(
        "punches    {} attempted, {} succeeded",
        r.punches.attempted,
        r.punches.succeeded
    );
    outln!("open       {} connections", r.open.len());
    for o in r.open.iter() {
        outln!(
            "           {} {} {} {}",
            o.kind,
            if o.incoming { "from" } else { "to" },
            o.peer,
            o.remote
        );
    }
    if let Some(x) = &r.relay {
        outln!(
            "relaying   {} reservations, {} circuits open, {} in all, {} bytes, {} refused",
            x.reservations,
            x.circuits_open,
            x.circuits_total,
            x.bytes_relayed,
            x.refused
        );
    }
    Ok(())
}
