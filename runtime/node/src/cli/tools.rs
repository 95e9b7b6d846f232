//! `errand pack`, `errand inspect` and `errand run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;
use errand::packaging::{self, LoadedTool};
use errand_core::receipt::{InvocationContext, Outcome};
use errand_core::signed;
use errand_core::{Digest, UnixMillis};
use errand_host::{Embed, Invocation, ReceiptInfo, WorldKind};

use super::keys;

/// The current time, as data for the I/O-free core.
pub fn now() -> UnixMillis {
    UnixMillis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}

fn host() -> anyhow::Result<errand_host::Host> {
    packaging::default_host().context("starting the WebAssembly host")
}

/// Arguments of `errand pack`.
#[derive(Debug, Args)]
pub struct PackArgs {
    /// The tool's capability.toml.
    manifest: PathBuf,
    /// The component [default: when the manifest's folder holds the tool's
    /// Cargo.toml, built there with `cargo build --release --target
    /// wasm32-wasip2` (nothing to do when fresh); else found next to the
    /// manifest or under target/wasm32-wasip2/].
    #[arg(long)]
    component: Option<PathBuf>,
    /// The tool author's key; keep it apart from your node's key. It signs
    /// the package: component, manifest, name and version.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Where to write the package [default: NAME-VERSION.errand].
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub fn pack(args: PackArgs) -> anyhow::Result<ExitCode> {
    let key = keys::load_key(args.key)?;
    let component = match args.component {
        Some(c) => c,
        None => locate_or_build(&args.manifest)?,
    };
    pack_and_write(&args.manifest, &component, &key, args.out)?;
    Ok(ExitCode::SUCCESS)
}

/// Packs `component` with `manifest`, signed by `key`, writes the package
/// to `out` (default `NAME-VERSION.errand`) and prints what it holds.
pub fn pack_and_write(
    manifest: &Path,
    component: &Path,
    key: &errand_core::SecretKey,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let host = host()?;
    let report = packaging::pack(&host, manifest, Some(component), key, now())?;
    let d = report.package.descriptor.body();
    let out = out.unwrap_or_else(|| PathBuf::from(format!("{}-{}.errand", d.name, d.version)));
    let bytes = signed::encode(&report.package)?;
    errand::files::write_atomic(&out, &bytes)
        .with_context(|| format!("writing {}", out.display()))?;
    outln!(
        "packed {} {} → {} ({} bytes)",
        d.name,
        d.version,
        out.display(),
        bytes.len()
    );
    outln!(
        "  component  {} ({} bytes)",
        report.component_path.display(),
        report.info.size
    );
    outln!("  digest     sha256:{}", report.info.digest);
    outln!("  world      {}", report.info.world);
    if !report.info.denied.is_empty() {
        outln!(
            "  denied     {} (imported; calls end the run)",
            report.info.denied.join(", ")
        );
    }
    outln!("  author     {}", report.package.author());
    outln!("  package    sha256:{}", report.package.digest());
    for ex in &report.examples {
        outln!(
            "  example    {:<16} ok, {} fuel, {} output bytes",
            ex.name,
            ex.fuel,
            ex.output_bytes
        );
    }
    Ok(())
}

/// The component `errand pack` uses when given none: built from the tool's
/// crate whenever the manifest's folder holds one (cargo does nothing when
/// the build is fresh, so sources newer than the component are never left
/// out: issue 11), else the one found near the manifest (see
/// [`errand::build`]).
fn locate_or_build(manifest: &Path) -> anyhow::Result<PathBuf> {
    let Some(dir) = packaging::tool_crate(manifest) else {
        return match packaging::locate_component(manifest) {
            Err(e @ packaging::PackError::NoComponent { .. }) => {
                let dir = manifest.parent().unwrap_or(Path::new("."));
                match errand::build::Lang::detect(dir) {
                    // A Python or JavaScript tool: say how to build it.
                    Ok(lang) => Err(anyhow::Error::new(e).context(format!(
                        "this is a {lang} tool: build and pack it with `errand build {}`",
                        dir.display()
                    ))),
                    Err(_) => Err(e.into()),
                }
            }
            found => Ok(found?),
        };
    };
    let name = packaging::read_manifest(manifest)?.name;
    eprintln!(
        "{name}: building it with `cargo build --release --target {}` in {} (nothing to \
         do when the build is fresh; cargo runs the crate's build scripts, outside any \
         sandbox)",
        errand::build::TARGET,
        dir.display()
    );
    let built = errand::build::build_component(&dir, &name)?;
    eprintln!("built {}", built.display());
    Ok(built)
}

/// Arguments of `errand inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A tool package or a bare component.
    package: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let tool = packaging::load_tool(&args.package)?;
    let host = host()?;
    let info = host
        .inspect(&tool.component)
        .map_err(|source| packaging::PackError::Component {
            path: args.package.clone(),
            source,
        })?;
    let sig_ok = tool.descriptor.as_ref().map(|d| d.verify().is_ok());
    // Decoding already checked that the signed digests match the component
    // and manifest; this checks the signature itself.
    let author_ok = tool.authorship.as_ref().map(|a| a.verify().is_ok());
    let author = tool.authorship.as_ref().map(|a| a.body().author);
    let package_digest = tool
        .authorship
        .as_ref()
        .map(|a| Digest::of(&a.signed_bytes()));
    let exit = if author_ok == Some(false) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    if args.json {
        let json = serde_json::json!({
            "file": args.package.display().to_string(),
            "component": {
                "digest": info.digest.to_string(),
                "size": info.size,
                "world": info.world.to_string(),
                "imports": info.imports,
                "denied": info.denied,
                "exports": info.exports,
            },
            "descriptor": tool.descriptor.as_ref().map(|d| d.to_json()),
            "descriptor_signature_valid": sig_ok,
            "author": author.map(|a| a.to_string()),
            "author_signature_valid": author_ok,
            "package_digest": package_digest.map(|d| d.to_string()),
            "manifest": tool.manifest,
        });
        outln!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(exit);
    }
    outln!("{}", args.package.display());
    if let (Some(d), Some(m)) = (&tool.descriptor, &tool.manifest) {
        let b = d.body();
        outln!("  tool package: {} {}", b.name, b.version);
        outln!("  description   {}", b.description);
        outln!(
            "  intents       {}",
            b.intents
                .iter()
                .map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        outln!("  input         {}", b.input.media_type);
        outln!("  output        {}", b.output.media_type);
        outln!(
            "  qos           {} ms, {} cost units, fuel limit {}, max input {} bytes",
            b.qos.latency_ms,
            b.qos.cost,
            b.qos.fuel,
            b.qos.max_input_bytes
        );
        outln!(
            "  tiers         canary={} receipts={} replay={}",
            b.tiers.canary,
            b.tiers.receipts,
            b.tiers.replay
        );
        if let (Some(a), Some(ok), Some(pd)) = (author, author_ok, package_digest) {
            outln!(
                "  author        {a} ({})",
                if ok {
                    "author signature valid"
                } else {
                    "AUTHOR SIGNATURE INVALID"
                }
            );
            outln!("  package       sha256:{pd}");
        }
        outln!(
            "  signed by     {} ({})",
            b.publisher,
            if sig_ok == Some(true) {
                "signature valid"
            } else {
                "SIGNATURE INVALID"
            }
        );
        outln!(
            "  examples      {}",
            m.examples
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        outln!("  bare component (no manifest)");
    }
    outln!(
        "  component     sha256:{} ({} bytes)",
        info.digest,
        info.size
    );
    outln!("  world         {}", info.world);
    outln!("  imports");
    for i in &info.imports {
        let note = if info.denied.contains(i) {
            "  (denied: calls end the run)"
        } else {
            ""
        };
        outln!("    {i}{note}");
    }
    outln!("  exports");
    for e in &info.exports {
        outln!("    {e}");
    }
    Ok(exit)
}

/// Arguments of `errand run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A tool package or a bare component.
    tool: PathBuf,
    /// The input file (`-` for stdin).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the output [default: stdout].
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Fuel limit [default: the manifest's, else 2,000,000,000].
    #[arg(long)]
    fuel: Option<u64>,
    /// A request parameter, `key=value` (repeatable).
    #[arg(long = "param", short = 'p', value_parser = parse_param)]
    params: Vec<(String, String)>,
    /// The time the tool sees, in ms since the Unix epoch [default: now].
    #[arg(long)]
    time: Option<u64>,
    /// The executor's key, which signs the receipt.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Where to write the evidence package [default: a new file per run,
    /// TOOL-REQUESTID.evidence, so that runs side by side never overwrite
    /// each other's; its path is printed].
    #[arg(long)]
    evidence: Option<PathBuf>,
    /// Embed the component in the evidence, for replay with no other files.
    #[arg(long)]
    embed_component: bool,
    /// Print the receipt summary as JSON on stdout (the output must then go to --output).
    #[arg(long)]
    json: bool,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("parameter {s:?} must be key=value"))?;
    if k.is_empty() || k.len() > 64 || v.len() > 1024 {
        return Err(format!(
            "parameter {s:?}: key must be 1-64 bytes and value at most 1024"
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// Reads `path`, or stdin for `-`.
pub fn read_input(path: &Path, max: usize) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), max as u64 + 1),
            &mut buf,
        )?;
        if buf.len() > max {
            bail!("stdin is larger than the input limit of {max} bytes");
        }
        return Ok(buf);
    }
    Ok(errand::files::read_bounded(path, max as u64)?)
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    if args.json && args.output.is_none() {
        bail!("--json prints the receipt on stdout, so give the output a file with --output");
    }
    let key = keys::load_key(args.key.clone())?;
    let LoadedTool {
        component,
        manifest,
        descriptor,
        ..
    } = packaging::load_tool(&args.tool)?;
    let mut limits = manifest
        .as_ref()
        .map(packaging::manifest_limits)
        .unwrap_or_default();
    if let Some(f) = args.fuel {
        limits.fuel = f;
    }
    let input = read_input(&args.input, limits.max_input)?;
    let host = host()?;
    // The receipt states the memory the run had: this engine's cap when
    // the manifest allows more (as a node does), so that a replay runs
    // with exactly that.
    limits.memory_bytes = limits.memory_bytes.min(host.config().max_memory_bytes);
    let nan = manifest
        .as_ref()
        .map(errand_host::NanMode::for_manifest)
        .unwrap_or_default();
    let prepared =
        host.prepare_with(&component, nan)
            .map_err(|source| packaging::PackError::Component {
                path: args.tool.clone(),
                source,
            })?;
    let (request_id, seed) = errand::client::Ask::fresh_ids();
    let context =
        InvocationContext::from_pairs(args.time.map(UnixMillis).unwrap_or_else(now), &args.params)
            .map_err(|e| anyhow::anyhow!("--param: {e}"))?;
    // A local run answers a request too: this user's, to themselves, so
    // the evidence says exactly what was asked.
    let request = errand_core::request::SignedRequest::sign(
        errand_core::request::Request {
            requester: key.peer_id(),
            executor: key.peer_id(),
            request_id,
            capability: descriptor
                .as_ref()
                .map(|d| errand_core::request::CapabilityTarget {
                    name: d.body().name.clone(),
                    version: Some(d.body().version),
                }),
            component: Some(Digest::of(&component)),
            input: Digest::of(&input),
            context: context.clone(),
            fuel: limits.fuel,
            limits: Some(limits.run_limits()),
            seed,
        },
        &key,
    )?;
    let inv = Invocation {
        input: &input,
        request_id,
        seed,
        context,
        limits,
        keep_trace: true,
    };
    let exec = host.run(&prepared, &inv)?;
    let capability = descriptor
        .as_ref()
        .map(|d| errand_core::receipt::CapabilityRef {
            name: d.body().name.clone(),
            version: d.body().version,
            seq: d.body().seq,
        });
    let receipt = host.sign_receipt(
        &ReceiptInfo {
            executor: &key,
            requester: key.peer_id(),
            request_id: inv.request_id,
            request: request.digest(),
            seed,
            capability,
            component: Digest::of(&component),
            context: inv.context.clone(),
            limits,
        },
        &exec,
    )?;
    let name = descriptor
        .as_ref()
        .map(|d| d.body().name.to_string())
        .or_else(|| {
            args.tool
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "run".into());
    let mut evidence = errand_host::evidence(
        receipt.clone(),
        Embed {
            input: Some(&input),
            output: Some(&exec.output),
            trace: exec.trace.as_deref(),
            component: args.embed_component.then_some(component.as_slice()),
        },
    );
    evidence.request = Some(request);
    // Named after this run unless --evidence names it: runs side by side
    // in one folder keep every piece of evidence.
    let evidence_path = super::write_evidence(
        args.evidence.as_deref(),
        &name,
        &receipt.body().request_id,
        &signed::encode(&evidence)?,
    )?;

    match &args.output {
        Some(p) => errand::files::write_atomic(p, &exec.output)
            .with_context(|| format!("writing {}", p.display()))?,
        None => super::write_stdout(&exec.output)?,
    }
    for line in &exec.logs {
        eprintln!("[{} guest] {} {:?}", line.level, line.message, line.fields);
    }
    if !exec.stderr.is_empty() {
        eprintln!(
            "[guest stderr] {}",
            String::from_utf8_lossy(&exec.stderr).trim_end()
        );
    }
    let kind = match prepared.info().world {
        WorldKind::Errand { .. } => "errand tool",
        WorldKind::Command { .. } => "WASI command",
    };
    eprintln!(
        "{} {} ({kind}): {} · fuel {} of {} · {:.1} ms · output {} bytes{} · evidence {}",
        name,
        receipt.body().request_id,
        exec.outcome,
        exec.fuel_consumed,
        exec.fuel_limit,
        exec.elapsed.as_secs_f64() * 1e3,
        exec.output.len(),
        args.output
            .as_ref()
            .map(|p| format!(" → {}", p.display()))
            .unwrap_or_default(),
        evidence_path.display()
    );
    if args.json {
        let json = serde_json::json!({
            "outcome": exec.outcome.to_string(),
            "fuel_consumed": exec.fuel_consumed,
            "fuel_limit": exec.fuel_limit,
            "elapsed_ms": exec.elapsed.as_secs_f64() * 1e3,
            "evidence": evidence_path.display().to_string(),
            "receipt": receipt.to_json(),
        });
        outln!("{}", serde_json::to_string_pretty(&json)?);
    }
    Ok(if matches!(exec.outcome, Outcome::Ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
