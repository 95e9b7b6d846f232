//! The MCP handler: tool listing, calls, and list-change notifications.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, SubscriptionFilter,
    Tool, ToolAnnotations,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, SubscriptionContext};
use rmcp::{ErrorData, ServerHandler, ServiceExt as _};
use serde_json::{Value, json};
use tokio::sync::watch;

use errand_core::digest::Digest;
use errand_core::trust::{Policy, Reputation, ReputationConfig, Risk};
use errand_core::wire::{MAX_CANDIDATES, Query};

use crate::client::Client;
use crate::workflow::{InputSpec, Runner, RunnerConfig, StepSpec};

use super::catalog::{self, CapabilityTool, Catalog, Facts, Judge, Skipped};
use super::schema::{self, Checks, InputKind};
use super::{McpConfig, ServeError, ToolPolicy, names, object, result};

/// The MCP server (cheap to clone: one shared state).
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

/// What `tools/list` answers and `tools/call` looks names up in.
#[derive(Default)]
struct Snapshot {
    tools: Vec<Tool>,
    by_name: HashMap<String, Arc<CapabilityTool>>,
}

struct Inner {
    config: McpConfig,
    client: Client,
    /// `None` without a lasting identity: calls are refused.
    runner: Option<tokio::sync::Mutex<Runner>>,
    catalog: Mutex<Catalog>,
    /// The runner's reputation as of its last call, which the catalog
    /// weighs publishers by (the runner itself is busy during calls).
    reputation: Mutex<Reputation>,
    /// The secret tie-break salt (see [`Judge`]).
    salt: Digest,
    /// The skip list last logged, to log changes only.
    skipped: Mutex<Vec<Skipped>>,
    snapshot: RwLock<Arc<Snapshot>>,
    /// Bumped whenever the listing changes.
    changes: watch::Sender<u64>,
    /// Registries that failed on the last refresh, to log changes only.
    failing: Mutex<Vec<String>>,
    find: (Tool, Checks),
    invoke: (Tool, Checks),
}

fn rank(r: Risk) -> u8 {
    match r {
        Risk::Low => 0,
        Risk::Medium => 1,
        Risk::High => 2,
    }
}

fn risk_name(r: Risk) -> &'static str {
    match r {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

fn parse_risk(v: Option<&Value>) -> Option<Risk> {
    match v.and_then(Value::as_str) {
        Some("low") => Some(Risk::Low),
        Some("medium") => Some(Risk::Medium),
        Some("high") => Some(Risk::High),
        _ => None,
    }
}

impl Server {
    /// Starts the network client, the runner and the first refresh of the
    /// tool set.
    pub async fn start(config: McpConfig) -> Result<Server, ServeError> {
        std::fs::create_dir_all(&config.evidence_dir).map_err(|source| {
            ServeError::EvidenceDir {
                path: config.evidence_dir.clone(),
                source,
            }
        })?;
        let client = Client::new(config.identity.key.clone())?;
        let runner = match &config.identity.one_off {
            Some(_) => None,
            None => Some(runner(&config, client.clone())?),
        };
        let reputation = runner.as_ref().map_or_else(
            || Reputation::new(ReputationConfig::default()),
            |r| r.reputation().clone(),
        );
        let runner = runner.map(tokio::sync::Mutex::new);
        // Only this server's key can make this signature: publishers can
        // neither predict nor grind the tie-breaks salted with it.
        let salt = Digest::of_parts(&[
            b"errand mcp tie-break",
            &config.identity.key.sign(b"errand mcp tie-break salt v1").0,
        ]);
        let find = generic_tool(
            names::FIND,
            "Find capabilities on the Errand network by intent: what you want done, in words. Lists who offers what (name, version, publisher, media types, declared latency and cost, verification tiers) and the tool that calls each. Runs nothing.",
            find_schema(),
        )?;
        let invoke = generic_tool(
            names::INVOKE,
            "Run whatever capability on the Errand network best matches an intent, checked by the server's verification policy. Give `input` (text, or any JSON value, sent as JSON) or `input_base64` (bytes). Prefer a capability's own tool when there is one: it checks the input against the capability's schema.",
            invoke_schema(),
        )?;
        let (changes, _) = watch::channel(0);
        let server = Server {
            inner: Arc::new(Inner {
                config,
                client,
                runner,
                catalog: Mutex::new(Catalog::default()),
                reputation: Mutex::new(reputation),
                salt,
                skipped: Mutex::new(Vec::new()),
                snapshot: RwLock::new(Arc::new(Snapshot::default())),
                changes,
                failing: Mutex::new(Vec::new()),
                find,
                invoke,
            }),
        };
        // The first listing is ready before the client can ask; a registry
        // that does not answer in time is asked again on the next refresh.
        let first = server.refresh();
        if tokio::time::timeout(std::time::Duration::from_secs(5), first)
            .await
            .is_err()
        {
            tracing::warn!("the registries did not answer within 5 s; listing what is known");
            server.publish_snapshot();
        }
        Ok(server)
    }

    /// Serves on stdin and stdout until the client closes them, refreshing
    /// the tool set in the background.
    pub async fn serve_stdio(self) -> Result<(), ServeError> {
        let refresher = {
            let s = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(s.inner.config.refresh).await;
                    s.refresh().await;
                }
            })
        };
        let inner = self.inner.clone();
        let served = match self.serve(rmcp::transport::stdio()).await {
            Ok(running) => running
                .waiting()
                .await
                .map(|reason| tracing::info!(?reason, "MCP session ended"))
                .map_err(|e| ServeError::Session(e.to_string())),
            Err(e) => Err(ServeError::Session(e.to_string())),
        };
        refresher.abort();
        if let Some(r) = &inner.runner
            && let Err(e) = r.lock().await.save()
        {
            tracing::warn!(error = %e, "saving the reputation");
        }
        inner.client.close().await;
        served
    }

    /// Asks the registries and reads the own packages again; publishes a
    /// new listing, and tells clients, if it changed.
    pub async fn refresh(&self) {
        let config = &self.inner.config;
        let now = crate::node::now();
        let mut found = Vec::new();
        let mut failing = Vec::new();
        if !config.registries.is_empty() {
            let intents: Vec<&str> = if config.expose.is_empty() {
                vec![""]
            } else {
                config.expose.iter().map(String::as_str).collect()
            };
            for intent in intents {
                let q = Query::intent(intent, MAX_CANDIDATES as u16);
                match self.inner.client.find(&config.registries, &q, now).await {
                    Ok(f) => {
                        failing.extend(f.failures.iter().map(|(r, e)| format!("{r}: {e}")));
                        found.extend(f.candidates);
                    }
                    Err(e) => failing.push(e.to_string()),
                }
            }
        }
        let own = match &config.packages {
            Some(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || super::catalog::own_descriptors(&dir))
                    .await
                    .unwrap_or_default()
            }
            None => Vec::new(),
        };
        {
            let mut last = lock(&self.inner.failing);
            failing.sort();
            failing.dedup();
            if *last != failing {
                for f in &failing {
                    tracing::warn!(registry = %f, "a registry did not answer; tools it alone lists go when their descriptors expire");
                }
                if failing.is_empty() && !last.is_empty() {
                    tracing::info!("every registry answers again");
                }
                *last = failing;
            }
        }
        {
            let mut catalog = lock(&self.inner.catalog);
            catalog.absorb(found);
            catalog.set_own(own);
            catalog.expire(now);
        }
        self.publish_snapshot();
    }

    /// Rebuilds the listing from the catalog and swaps it in if it changed.
    fn publish_snapshot(&self) {
        let (tools, skipped) = {
            let catalog = lock(&self.inner.catalog);
            let reputation = lock(&self.inner.reputation);
            let judge = Judge {
                reputation: &reputation,
                now: crate::node::now(),
                salt: &self.inner.salt,
            };
            catalog.tools(&judge, &|facts| self.describe(facts))
        };
        {
            let mut last = lock(&self.inner.skipped);
            if *last != skipped {
                for s in &skipped {
                    tracing::info!(capability = %s.capability, reason = %s.reason, "no tool");
                }
                *last = skipped;
            }
        }
        let mut listing = vec![self.inner.find.0.clone(), self.inner.invoke.0.clone()];
        listing.extend(tools.values().map(|t| t.tool.clone()));
        let changed = {
            let current = read(&self.inner.snapshot);
            current.tools != listing
        };
        if changed {
            let by_name: HashMap<String, Arc<CapabilityTool>> = tools.into_iter().collect();
            tracing::info!(tools = listing.len(), "tool list changed");
            *write(&self.inner.snapshot) = Arc::new(Snapshot {
                tools: listing,
                by_name,
            });
            self.inner.changes.send_modify(|g| *g += 1);
        }
    }

    /// A capability tool's description ([`catalog::description`]): the
    /// server's facts first, the publisher's claim last.
    fn describe(&self, facts: &Facts<'_>) -> String {
        let (risk, tiers) = self.policy(facts.tool, Some(facts.descriptor.name.as_str()), None);
        catalog::description(facts, &self.tiers_label(risk, tiers.as_deref()))
    }

    /// The risk and tier override of a call to `tool` (capability
    /// `capability`), raised to `asked` if the caller asks for more.
    fn policy(
        &self,
        tool: &str,
        capability: Option<&str>,
        asked: Option<Risk>,
    ) -> (Risk, Option<String>) {
        let config = &self.inner.config;
        let own = config
            .tool_policies
            .iter()
            .find(|(k, _)| k == tool || Some(k.as_str()) == capability)
            .map(|(_, p)| p.clone())
            .unwrap_or(ToolPolicy::Risk(config.risk));
        match own {
            ToolPolicy::Tiers(t) => (config.risk, Some(t)),
            ToolPolicy::Risk(r) => {
                let r = match asked {
                    Some(a) if rank(a) > rank(r) => a,
                    _ => r,
                };
                (r, None)
            }
        }
    }

    /// What a call at `risk` with tier override `tiers` gets, in words.
    fn tiers_label(&self, risk: Risk, tiers: Option<&str>) -> String {
        let config = &self.inner.config;
        match tiers.and_then(|t| Policy::parse(t, Default::default(), config.replay)) {
            Some(p) => format!("{} (fixed for this tool)", p.tiers(risk, None).label()),
            None => match config.policy {
                Policy::Risk(_) => format!(
                    "{} (risk {}; a call may ask for a higher `risk`)",
                    config.policy.tiers(risk, None).label(),
                    risk_name(risk)
                ),
                Policy::Fixed(t) => format!("{} (fixed)", t.label()),
            },
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        read(&self.inner.snapshot).clone()
    }

    /// A call to a capability tool.
    async fn call_capability(&self, tool: &CapabilityTool, args: Value) -> CallToolResult {
        if let Err(problems) = tool.checks.arguments(&args) {
            return result::schema_failure(&tool.name, &problems);
        }
        let input = match schema::input_bytes(tool.kind, &args["input"]) {
            Ok(b) => b,
            Err(p) => return result::schema_failure(&tool.name, &[p]),
        };
        let max = tool.descriptor.qos.max_input_bytes;
        if max > 0 && input.len() as u64 > max {
            return result::failure(format!(
                "{}: the input is {} bytes, and {} takes at most {max}. Nothing was sent; send a smaller input.",
                tool.name,
                input.len(),
                tool.capability
            ));
        }
        let (risk, tiers) = self.policy(
            &tool.name,
            Some(&tool.capability),
            parse_risk(args.get("risk")),
        );
        let spec = StepSpec {
            name: tool.name.clone(),
            // The name and version pin the capability; an empty intent
            // takes every executor of it.
            intent: String::new(),
            input: InputSpec::Text(String::new()),
            params: params(&args),
            risk,
            tiers,
            max_latency_ms: None,
            max_cost: None,
            input_type: Some(tool.descriptor.input.media_type.to_string()),
            output_type: Some(tool.descriptor.output.media_type.to_string()),
            capability: Some(tool.capability.clone()),
            compatible: Some(format!("{}.0.0", tool.major)),
            fuel: self.inner.config.fuel,
            // The listed variant's author: executors claiming another
            // author's package are not this tool (see `catalog`).
            author: tool.author.map(|a| a.to_string()),
            component: None,
        };
        self.run(&tool.name, &spec, &input, Some(&tool.checks))
            .await
    }

    /// A call to `invoke`.
    async fn call_invoke(&self, args: Value) -> CallToolResult {
        let name = names::INVOKE;
        if let Err(problems) = self.inner.invoke.1.arguments(&args) {
            return result::schema_failure(name, &problems);
        }
        let input = match (args.get("input"), args.get("input_base64")) {
            (Some(Value::String(s)), None) => s.as_bytes().to_vec(),
            (Some(v), None) => v.to_string().into_bytes(),
            (None, Some(b64)) => match schema::input_bytes(InputKind::Binary, b64) {
                Ok(b) => b,
                Err(p) => {
                    return result::schema_failure(name, &[p.replace("/input", "/input_base64")]);
                }
            },
            _ => {
                return result::schema_failure(
                    name,
                    &["give exactly one of `input` and `input_base64`".into()],
                );
            }
        };
        let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
        let capability = text("capability");
        let (risk, tiers) = self.policy(name, None, parse_risk(args.get("risk")));
        let spec = StepSpec {
            name: name.into(),
            intent: text("intent").unwrap_or_default(),
            input: InputSpec::Text(String::new()),
            params: params(&args),
            risk,
            tiers,
            max_latency_ms: None,
            max_cost: None,
            input_type: text("input_type"),
            output_type: text("output_type"),
            capability,
            compatible: None,
            fuel: self.inner.config.fuel,
            author: None,
            component: None,
        };
        self.run(name, &spec, &input, None).await
    }

    /// Runs one step through the shared runner (calls take turns: they
    /// share the requester's reputation).
    async fn run(
        &self,
        tool: &str,
        spec: &StepSpec,
        input: &[u8],
        checks: Option<&Checks>,
    ) -> CallToolResult {
        let Some(runner) = &self.inner.runner else {
            let why = self
                .inner
                .config
                .identity
                .one_off
                .as_deref()
                .unwrap_or("no key");
            return result::failure(format!(
                "{tool}: nothing was sent, because this Errand server has no lasting identity to sign requests with ({why}). Requests, receipts and evidence name the requester, so invoking needs one: run `errand keygen` (or give `errand mcp` a --key), then restart the server. `find` and the tool list work without one."
            ));
        };
        let (report, output) = {
            let mut runner = runner.lock().await;
            let done = runner.run_step(spec, input, crate::node::now()).await;
            if let Err(e) = runner.save() {
                tracing::warn!(error = %e, "saving the reputation");
            }
            *lock(&self.inner.reputation) = runner.reputation().clone();
            done
        };
        tracing::info!(
            tool,
            executor = report.executor.as_deref().unwrap_or("-"),
            tiers = %report.tiers,
            fallbacks = report.fallbacks,
            error = report.error.as_deref().unwrap_or("-"),
            "call"
        );
        result::from_step(tool, &report, output, checks)
    }

    /// A call to `find`.
    async fn call_find(&self, args: Value) -> CallToolResult {
        let name = names::FIND;
        if let Err(problems) = self.inner.find.1.arguments(&args) {
            return result::schema_failure(name, &problems);
        }
        let config = &self.inner.config;
        if config.registries.is_empty() {
            return result::failure(
                "find: this server knows no registry. Start `errand mcp` with --registry PEERID@ADDR or --config with [[registries]].",
            );
        }
        let text = |k: &str| args.get(k).and_then(Value::as_str);
        let number = |k: &str| args.get(k).and_then(Value::as_u64);
        let mut q = Query::intent(
            text("intent").unwrap_or_default(),
            number("limit")
                .unwrap_or(10)
                .clamp(1, MAX_CANDIDATES as u64) as u16,
        );
        q.input = text("input_type").map(errand_core::bounded::BString::truncate_from);
        q.output = text("output_type").map(errand_core::bounded::BString::truncate_from);
        q.max_latency_ms = number("max_latency_ms").map(|v| v.min(u64::from(u32::MAX)) as u32);
        q.max_cost = number("max_cost").map(|v| v.min(u64::from(u32::MAX)) as u32);
        let found = match self
            .inner
            .client
            .find(&config.registries, &q, crate::node::now())
            .await
        {
            Ok(f) => f,
            Err(e) => {
                return result::failure(format!(
                    "find: the registries could not be asked: {e}. Check that they are running and reachable, then call again."
                ));
            }
        };
        let candidates: Vec<Value> = found
            .candidates
            .iter()
            .map(|d| {
                let b = d.body();
                json!({
                    "tool": names::tool_name(&b.name, b.version.major),
                    "capability": b.name.as_str(),
                    "version": b.version.to_string(),
                    "publisher": b.publisher.to_string(),
                    "description": b.description.as_str(),
                    "intents": b.intents.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
                    "input_type": b.input.media_type.as_str(),
                    "output_type": b.output.media_type.as_str(),
                    "latency_ms": b.qos.latency_ms,
                    "cost": b.qos.cost,
                    "tiers": { "canary": b.tiers.canary, "receipts": b.tiers.receipts, "replay": b.tiers.replay },
                    "address": b.addrs.first().map(|a| a.to_string()),
                })
            })
            .collect();
        let body = json!({
            "intent": q.intent.as_str(),
            "candidates": candidates,
            "failed_registries": found.failures.iter().map(|(r, e)| format!("{r}: {e}")).collect::<Vec<_>>(),
        });
        let mut r = CallToolResult::success(vec![ContentBlock::text(
            serde_json::to_string_pretty(&body).unwrap_or_default(),
        )]);
        r.structured_content = Some(body);
        r
    }
}

/// The `params` argument as request parameters.
fn params(args: &Value) -> BTreeMap<String, String> {
    args.get("params")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn runner(config: &McpConfig, client: Client) -> Result<Runner, ServeError> {
    let host = crate::packaging::default_host()?;
    let runner_config = RunnerConfig {
        policy: config.policy,
        fallback_budget: config.fallbacks,
        widen: config.widen,
        exploration: config.exploration,
        replay: config.replay,
        evidence_dir: Some(config.evidence_dir.clone()),
        ..RunnerConfig::default()
    };
    let registries = config.registries.clone();
    match Runner::new(
        client.clone(),
        host.clone(),
        registries.clone(),
        runner_config.clone(),
        config.state.as_deref(),
    ) {
        Ok(r) => Ok(r),
        Err(e) => {
            // Another process (an `errand invoke`, a second MCP server)
            // holds the store: go on with a reputation in memory.
            tracing::warn!(error = %e, "reputation store busy or unreadable; this server keeps its reputation in memory");
            Runner::new(client, host, registries, runner_config, None)
                .map_err(|e| ServeError::Session(e.to_string()))
        }
    }
}

fn generic_tool(
    name: &str,
    description: &str,
    schema: Value,
) -> Result<(Tool, Checks), ServeError> {
    let checks = schema::generic(&schema)?;
    let mut tool = Tool::new(name.to_owned(), description.to_owned(), object(schema));
    tool.annotations = Some(ToolAnnotations::new().open_world(true));
    Ok((tool, checks))
}

fn find_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "intent": { "type": "string", "maxLength": 512, "description": "What you want done, in words." },
            "limit": { "type": "integer", "minimum": 1, "maximum": MAX_CANDIDATES, "description": "Most candidates to list (default 10)." },
            "input_type": { "type": "string", "description": "Only capabilities taking this media type." },
            "output_type": { "type": "string", "description": "Only capabilities returning this media type." },
            "max_latency_ms": { "type": "integer", "minimum": 0, "description": "Only capabilities declaring at most this latency." },
            "max_cost": { "type": "integer", "minimum": 0, "description": "Only capabilities declaring at most this cost." },
        },
        "required": ["intent"],
        "additionalProperties": false,
    })
}

fn invoke_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "intent": { "type": "string", "minLength": 1, "maxLength": 512, "description": "What you want done, in words." },
            "input": { "description": "The input: a string is sent as UTF-8 text, any other JSON value as its JSON text." },
            "input_base64": { "type": "string", "contentEncoding": "base64", "description": "The input as base64 bytes, instead of `input`." },
            "params": schema::params_schema(),
            "risk": schema::risk_schema(),
            "capability": { "type": "string", "description": "Only this capability name." },
            "input_type": { "type": "string", "description": "Only capabilities taking this media type." },
            "output_type": { "type": "string", "description": "Only capabilities returning this media type." },
        },
        "required": ["intent"],
        "additionalProperties": false,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(
            Implementation::new("errand", env!("CARGO_PKG_VERSION"))
                .with_title("Errand")
                .with_description("Capabilities of an Errand peer-to-peer network, verified by a risk-tiered policy"),
        )
        .with_instructions(
            "Each tool runs a capability on a peer of an Errand network, chosen and checked by the server's verification policy (reputation, canaries, signed receipts, replay). A result's _meta holds its evidence: errand/executor, errand/receipt (digest), errand/tiers, errand/checks, errand/fallbacks and errand/evidence (the evidence file, verifiable offline with `errand verify`). Use `find` to look for capabilities by intent and `invoke` to run one by intent. The tool list follows the network: it changes as executors come and go.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.snapshot().tools.clone(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        match name {
            names::FIND => Some(self.inner.find.0.clone()),
            names::INVOKE => Some(self.inner.invoke.0.clone()),
            _ => self.snapshot().by_name.get(name).map(|t| t.tool.clone()),
        }
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = Value::Object(request.arguments.unwrap_or_default());
        let name = request.name.as_ref();
        let call = async {
            match name {
                names::FIND => Ok(self.call_find(args).await),
                names::INVOKE => Ok(self.call_invoke(args).await),
                name => {
                    let Some(tool) = self.snapshot().by_name.get(name).cloned() else {
                        return Err(ErrorData::invalid_params(
                            format!(
                                "unknown tool {name:?}: no capability by that name is offered now (descriptors expire when executors stop). List the tools again, or use `find`."
                            ),
                            None,
                        ));
                    };
                    Ok(self.call_capability(&tool, args).await)
                }
            }
        };
        // `notifications/cancelled` cancels the context: stop waiting for
        // the runner or the network, so the calls queued behind this one
        // need not wait for it. What the runner learnt so far is kept.
        tokio::select! {
            result = call => result.map(CallToolResponse::from),
            () = context.ct.cancelled() => {
                tracing::info!(tool = name, "call cancelled by the client; stopped");
                Err(ErrorData::internal_error("the client cancelled the call", None))
            }
        }
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        Some(requested.supported_by(&self.get_info().capabilities))
    }

    /// Protocol 2026-07-28: list changes go on the client's
    /// `subscriptions/listen` stream, until it is cancelled.
    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        if context.accepted().tools_list_changed != Some(true) {
            context.cancelled().await;
            return Ok(());
        }
        let mut changes = self.inner.changes.subscribe();
        loop {
            tokio::select! {
                () = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() || context.sink().notify_tool_list_changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The `initialize` lifecycle: list changes go to the session as
    /// notifications from now on.
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let mut changes = self.inner.changes.subscribe();
        let peer = context.peer;
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if let Err(e) = peer.notify_tool_list_changed().await {
                    tracing::debug!(error = %e, "the client is gone; no more list changes");
                    return;
                }
            }
        });
    }
}
