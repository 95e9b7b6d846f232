//! `errand workflow run` and `errand demo`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use errand::client::Client;
use errand::workflow::{Runner, RunnerConfig, StepReport, WorkflowFile, WorkflowReport};
use errand_core::trust::Policy;

use super::keys;
use super::network::RegistryArgs;

/// `errand workflow …`
#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Run a workflow across the network with tiered verification.
    Run(WorkflowRunArgs),
}

/// Arguments of `errand workflow run`.
#[derive(Debug, Args)]
pub struct WorkflowRunArgs {
    /// The workflow file (TOML).
    file: PathBuf,
    /// Verification: none, t1, t2, t3, t3:P (replay with probability P) or
    /// risk (tiers by each step's risk, mapped by [trust] in --config, else
    /// low→t1, medium→t3:0, high→t3).
    #[arg(long, default_value = "risk")]
    policy: String,
    /// Replay probability for t3 [default: trust.replay in --config, else 1.0].
    #[arg(long)]
    replay: Option<f64>,
    /// Most fallbacks per step [default: trust.fallbacks in --config, else 4].
    #[arg(long)]
    fallbacks: Option<usize>,
    /// Where to write evidence and fraud proofs [default: ./evidence].
    #[arg(long)]
    evidence_dir: Option<PathBuf>,
    /// Write each step's output to DIR/STEP.out.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Where the requester keeps its reputation [default: $ERRAND_STATE, else ~/.local/share/errand].
    #[arg(long)]
    state: Option<PathBuf>,
    /// Seconds to wait for an executor.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    #[command(flatten)]
    registries: RegistryArgs,
    /// Your key (the requester's identity).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn workflow(cmd: WorkflowCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        WorkflowCommand::Run(a) => workflow_run(a),
    }
}

fn workflow_run(args: WorkflowRunArgs) -> anyhow::Result<ExitCode> {
    let trust = args
        .registries
        .node_config()?
        .map(|c| c.trust)
        .unwrap_or_default();
    let replay = args.replay.unwrap_or(trust.replay);
    if !(0.0..=1.0).contains(&replay) {
        bail!("--replay must be between 0 and 1");
    }
    let mut risk = trust.risk_policy().map_err(anyhow::Error::msg)?;
    if args.replay.is_some() {
        risk.high.replay = replay;
    }
    let policy = Policy::parse(&args.policy, risk, replay).with_context(|| {
        format!(
            "--policy {:?}: use none, t1, t2, t3, t3:P or risk",
            args.policy
        )
    })?;
    let wf = WorkflowFile::load(&args.file)?;
    let base = args
        .file
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let registries = args.registries.resolve()?;
    let key = keys::load_key(args.key.clone())?;
    let state = args
        .state
        .clone()
        .or_else(errand::workflow::default_state_dir);
    let evidence_dir = args
        .evidence_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("evidence"));
    let report = super::runtime()?.block_on(async {
        let client = Client::new(key)?;
        let host = errand::packaging::default_host()?;
        let mut runner = Runner::new(
            client.clone(),
            host,
            registries,
            RunnerConfig {
                policy,
                fallback_budget: args.fallbacks.unwrap_or(trust.fallbacks),
                widen: trust.widen,
                exploration: trust.exploration,
                replay,
                step_timeout: Duration::from_secs(args.timeout),
                evidence_dir: Some(evidence_dir.clone()),
                ..RunnerConfig::default()
            },
            state.as_deref(),
        )?;
        let r = runner.run(&wf, &base, errand::node::now()).await;
        client.close().await;
        Ok::<_, anyhow::Error>(r?)
    })?;
    if let Some(dir) = &args.out {
        for (step, output) in &report.outputs {
            let path = dir.join(format!("{step}.out"));
            errand::files::write_atomic(&path, output)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report)?;
    }
    Ok(if report.succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_report(r: &WorkflowReport) -> Result<(), super::StdoutError> {
    for s in &r.steps {
        out!("{}", format_step(s));
    }
    outln!(
        "workflow {} {} in {:.1} ms",
        r.name,
        if r.succeeded { "succeeded" } else { "FAILED" },
        r.latency_ms
    );
    Ok(())
}

/// Arguments of `errand demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Honest executors.
    #[arg(long, default_value_t = 3)]
    honest: usize,
    /// Sybil executors (cheating, with attractive descriptors).
    #[arg(long, default_value_t = 6)]
    sybil: usize,
    /// Drifting executors (capabilities that come and go).
    #[arg(long, default_value_t = 2)]
    drifting: usize,
    /// Workflow runs per policy.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Where to leave the evidence [default: ./errand-demo].
    #[arg(long, default_value = "errand-demo")]
    out: PathBuf,
    /// Seed of every key and requester decision: every policy meets the
    /// same network, and a run can be repeated.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.honest == 0 {
        bail!("--honest must be at least 1: with no honest executor nothing can succeed");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let started = std::time::Instant::now();
    let cfg = errand::demo::DemoConfig {
        honest: args.honest,
        sybil: args.sybil,
        drifting: args.drifting,
        runs: args.runs,
        out: args.out.clone(),
        seed: args.seed,
    };
    let quiet = args.json;
    let report = super::runtime()?.block_on(errand::demo::run(&cfg, &|line| {
        if !quiet {
            eprintln!("demo: {line}");
        }
    }))?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!();
    outln!(
        "Two-step workflow (generate image → publish), {} runs per policy; {} honest, {} Sybil, {} drifting executors",
        args.runs,
        args.honest,
        args.sybil,
        args.drifting
    );
    outln!("success = both outputs exactly right (checked against ground truth)\n");
    out!("{}", errand::demo::table(&report));
    outln!(
        "\nexposed = accepted results the offline audit (expected executor, signed request, replay) shows wrong"
    );
    outln!(
        "audited offline: {} evidence files passed the audit, {} failed it; evidence and fraud proofs in {}",
        report.evidence_verified,
        report.evidence_failed,
        report.evidence_dir.display()
    );
    outln!("finished in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}

/// One step's attempts, checks and verdict, as `errand workflow run` and
/// `errand invoke --intent` print them.
pub fn format_step(s: &StepReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "step {} [{}] — {} candidates, discovery {:.1} ms",
        s.name, s.tiers, s.candidates, s.discovery_ms
    );
    for a in &s.attempts {
        let checks: Vec<String> = a
            .checks
            .iter()
            .map(|(n, ok)| format!("{n} {}", if *ok { "ok" } else { "FAILED" }))
            .collect();
        let verdict = match &a.rejected {
            None => "accepted".to_owned(),
            Some(why) => format!("rejected: {why}"),
        };
        let _ = writeln!(
            out,
            "  {} {} — {}{}",
            a.capability,
            a.peer,
            if checks.is_empty() {
                String::new()
            } else {
                format!("{}; ", checks.join(", "))
            },
            verdict
        );
    }
    match (&s.output, &s.error) {
        (Some(o), _) => {
            let _ = writeln!(
                out,
                "  → ok in {:.1} ms, {} fallbacks, output sha256:{}",
                s.latency_ms, s.fallbacks, o
            );
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "  → FAILED after {:.1} ms: {e}", s.latency_ms);
        }
        _ => {}
    }
    for e in &s.evidence {
        let _ = writeln!(out, "  evidence {e}");
    }
    out
}
