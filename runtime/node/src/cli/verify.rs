//! `errand verify`: offline verification of receipts and evidence, one file
//! in detail or many (files and folders) at once: signatures checked in
//! ed25519 batches, replays run in parallel on every core, one line per file
//! and a summary, and the exit status of the worst.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use errand::files::{self, LoadError};
use errand_core::PeerId;
use errand_core::evidence::{self, Report, Supplied, Verdict};

/// Largest component, input or output file read for comparison.
const MAX_BLOB_FILE: u64 = 1 << 30;

/// Arguments of `errand verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Evidence packages or tool receipts (binary or JSON), or folders of
    /// them (searched recursively for *.evidence and *.receipt files).
    #[arg(required = true, value_name = "EVIDENCE")]
    evidence: Vec<PathBuf>,
    /// The component file to compare with the receipt's component digest.
    #[arg(long)]
    component: Option<PathBuf>,
    /// The input file to compare with the receipt's input digest.
    #[arg(long)]
    input: Option<PathBuf>,
    /// The output file to compare with the receipt's output digest.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Require that this peer executed the run.
    #[arg(long)]
    executor: Option<PeerId>,
    /// A parameter you asked for, `key=value` (repeatable): the run must
    /// have had exactly these parameters. Checked against the receipt and
    /// against the signed request the package carries, if any.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// The declared time you asked for, in milliseconds since the Unix epoch.
    #[arg(long, value_name = "UNIX_MS")]
    time: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also re-execute the run (needs the component and input: from
    /// --component/--input or embedded in the package) and compare output,
    /// fuel and trace with the receipt.
    #[arg(long)]
    replay: bool,
}

const EXIT_FAILED: u8 = 1;
const EXIT_UNUSABLE: u8 = 2;

fn unusable(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(EXIT_UNUSABLE)
}

fn read_blob(path: &Option<PathBuf>) -> Result<Option<Vec<u8>>, LoadError> {
    path.as_deref()
        .map(|p: &Path| files::read_bounded(p, MAX_BLOB_FILE))
        .transpose()
}

pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let paths = match expand(&args.evidence) {
        Ok(p) => p,
        Err(e) => return Ok(unusable(e)),
    };
    if paths.len() == 1 && args.evidence.len() == 1 && !args.evidence[0].is_dir() {
        return single(&args, &paths[0]);
    }
    if args.component.is_some() || args.input.is_some() || args.output.is_some() {
        return Ok(unusable(
            "--component, --input and --output are one run's material: give one evidence file with them",
        ));
    }
    many(&args, &paths)
}

/// The files named, with folders searched recursively for evidence and
/// receipts, in a stable order.
fn expand(args: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let mut found: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        found.sort();
        for p in found {
            // Symlinked folders are not followed: a received folder must not
            // be able to loop the walk or count a file twice.
            let is_link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
            if p.is_dir() && !is_link {
                walk(&p, out)?;
            } else if p
                .extension()
                .is_some_and(|e| e == "evidence" || e == "receipt")
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            walk(a, &mut out)?;
        } else {
            out.push(a.clone());
        }
    }
    if out.is_empty() {
        return Err("no evidence or receipt files found".into());
    }
    Ok(out)
}

/// One line per file, a summary, and the worst status.
fn many(args: &VerifyArgs, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let stated = match stated_params(args) {
        Ok(s) => s,
        Err(e) => return Ok(unusable(e)),
    };
    // Recognisably evidence but broken fails the `format` check (exit 1), as
    // with one file; anything else is unusable input (exit 2).
    let mut corrupt: Vec<Option<String>> = vec![None; paths.len()];
    let loaded: Vec<Result<evidence::Evidence, String>> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            files::load_evidence(p).map_err(|e| {
                if e.is_corrupt_evidence() {
                    corrupt[i] = Some(e.to_string());
                }
                e.to_string()
            })
        })
        .collect();
    let supplied = Supplied {
        executor: args.executor,
        params: stated.as_ref(),
        time: args.time.map(errand_core::UnixMillis),
        ..Default::default()
    };
    let ok: Vec<&evidence::Evidence> = loaded.iter().filter_map(|l| l.as_ref().ok()).collect();
    let mut reports = evidence::verify_many(&ok, &supplied).into_iter();
    let mut results: Vec<Result<Report, String>> = loaded
        .iter()
        .zip(&corrupt)
        .map(|(l, c)| match (l, c) {
            (Ok(_), _) => Ok(reports.next().unwrap_or_else(|| {
                let mut r = Report::default();
                r.push(
                    "format",
                    Verdict::Fail("internal: no report for this file".into()),
                );
                r
            })),
            (Err(_), Some(why)) => {
                let mut report = Report::default();
                report.push("format", Verdict::Fail(why.clone()));
                Ok(report)
            }
            (Err(e), None) => Err(e.clone()),
        })
        .collect();
    if args.replay {
        let host = match errand::packaging::default_host() {
            Ok(h) => h,
            Err(e) => return Ok(unusable(format!("cannot start the WebAssembly host: {e}"))),
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = results.len().div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (rs, ls) in results.chunks_mut(chunk).zip(loaded.chunks(chunk)) {
                let host = host.clone();
                let supplied = &supplied;
                scope.spawn(move || {
                    for (r, l) in rs.iter_mut().zip(ls) {
                        if let (Ok(report), Ok(ev)) = (r, l) {
                            replay_with(&host, ev, supplied, None, report);
                        }
                    }
                });
            }
        });
    }
    let (mut passed, mut failed, mut broken, mut unbound, mut unreplayed) = (0, 0, 0, 0, 0);
    let mut json = Vec::new();
    for (path, r) in paths.iter().zip(&results) {
        match r {
            Ok(report) if report.verified() => {
                passed += 1;
                // Say plainly what was not checked: what was asked, or the
                // replay this machine could not run.
                let mut notes = Vec::new();
                if skipped(report, "request") {
                    unbound += 1;
                    notes.push("no signed request: what was asked is unchecked");
                }
                if args.replay && skipped(report, "replay") {
                    unreplayed += 1;
                    notes.push("not replayed here");
                }
                if !args.json {
                    if notes.is_empty() {
                        outln!("ok      {}", path.display());
                    } else {
                        outln!("ok*     {}  ({})", path.display(), notes.join("; "));
                    }
                }
            }
            Ok(report) => {
                failed += 1;
                if !args.json {
                    let (name, detail) = first_failure(report).unwrap_or(("?", ""));
                    outln!("FAILED  {}  check `{name}`: {detail}", path.display());
                }
            }
            Err(e) => {
                broken += 1;
                if !args.json {
                    outln!("ERROR   {}  {e}", path.display());
                }
            }
        }
        if args.json {
            json.push(match r {
                Ok(report) => {
                    let mut notes = Vec::new();
                    if skipped(report, "request") {
                        notes.push("no signed request");
                    }
                    if args.replay && skipped(report, "replay") {
                        notes.push("not replayed here");
                    }
                    let status = match (report.verified(), notes.is_empty()) {
                        (false, _) => "failed",
                        (true, true) => "ok",
                        (true, false) => "ok*",
                    };
                    serde_json::json!({
                        "evidence": path.display().to_string(),
                        "verified": report.verified(),
                        "status": status,
                        "notes": notes,
                        "checks": report.checks,
                    })
                }
                Err(e) => serde_json::json!({
                    "evidence": path.display().to_string(),
                    "verified": false,
                    "status": "unreadable",
                    "error": e,
                }),
            });
        }
    }
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
    } else {
        outln!(
            "\n{} files: {passed} verified, {failed} failed, {broken} unreadable",
            paths.len()
        );
        if unbound + unreplayed > 0 {
            outln!(
                "of the verified: {unbound} carry no signed request (pass -p/--time to state what you asked), {unreplayed} could not be replayed here"
            );
        }
    }
    Ok(if broken > 0 || unreplayed > 0 {
        ExitCode::from(EXIT_UNUSABLE)
    } else if failed > 0 {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn stated_params(
    args: &VerifyArgs,
) -> Result<Option<errand_core::receipt::InvocationContext>, String> {
    if args.params.is_empty() {
        return Ok(None);
    }
    let pairs = super::network::parse_params(&args.params).map_err(|e| format!("{e:#}"))?;
    errand_core::receipt::InvocationContext::from_pairs(errand_core::UnixMillis(0), &pairs)
        .map(Some)
        .map_err(|e| format!("--param: {e}"))
}

fn single(args: &VerifyArgs, path: &Path) -> anyhow::Result<ExitCode> {
    let evidence = match files::load_evidence(path) {
        Ok(e) => e,
        Err(e) if e.is_corrupt_evidence() => {
            // Recognisably evidence, but broken: the format check fails.
            let mut report = Report::default();
            report.push("format", Verdict::Fail(e.to_string()));
            print_report(args, path, &report, None)?;
            return Ok(ExitCode::from(EXIT_FAILED));
        }
        Err(e) => return Ok(unusable(e)),
    };
    let (component, input, output) = match (
        read_blob(&args.component),
        read_blob(&args.input),
        read_blob(&args.output),
    ) {
        (Ok(c), Ok(i), Ok(o)) => (c, i, o),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Ok(unusable(e)),
    };
    // --component may name a tool package: compare its component, and
    // check its author's signature (the `author` check).
    let mut author = None;
    // Its manifest, when the author's signature holds: whether the tool may
    // run without NaN canonicalisation.
    let mut manifest = None;
    let component = match (component, &args.component) {
        (Some(c), Some(path)) if !c.starts_with(b"\0asm") => {
            match errand::packaging::decode_package(path, &c) {
                Ok(p) => {
                    if p.verify_author().is_ok() {
                        manifest =
                            toml::from_str::<errand_core::manifest::Manifest>(&p.manifest).ok();
                    }
                    author = Some(match p.verify_author() {
                        Ok(()) => Verdict::Pass(format!(
                            "package sha256:{} signed by its author {}",
                            p.digest(),
                            p.author()
                        )),
                        Err(e) => Verdict::Fail(format!(
                            "the author signature of {} on the package does not verify: {e}",
                            p.author()
                        )),
                    });
                    Some(p.component.into_vec())
                }
                Err(e @ errand::packaging::PackError::AuthorSignature { .. }) => {
                    author = Some(Verdict::Fail(e.to_string()));
                    None
                }
                Err(e) => return Ok(unusable(e)),
            }
        }
        (c, _) => c,
    };
    let stated = match stated_params(args) {
        Ok(s) => s,
        Err(e) => return Ok(unusable(e)),
    };
    let supplied = Supplied {
        component: component.as_deref(),
        input: input.as_deref(),
        output: output.as_deref(),
        executor: args.executor,
        params: stated.as_ref(),
        time: args.time.map(errand_core::UnixMillis),
    };
    let mut report = evidence::verify(&evidence, &supplied);
    if let Some(verdict) = author {
        report.push("author", verdict);
    }
    if args.replay {
        replay(&evidence, &supplied, manifest.as_ref(), &mut report);
    }
    print_report(args, path, &report, Some(&evidence))?;
    Ok(if !report.verified() {
        // Also on stderr, for whoever reads only that (a script, `--json`
        // piped to a parser).
        if let Some((name, detail)) = first_failure(&report) {
            eprintln!(
                "error: {} is not verified: check `{name}` failed: {detail}",
                path.display()
            );
        }
        ExitCode::from(EXIT_FAILED)
    } else if args.replay && skipped(&report, "replay") {
        // Asked to replay and could not: not a verdict on the evidence.
        eprintln!("error: the run could not be replayed on this machine (see `replay` above)");
        ExitCode::from(EXIT_UNUSABLE)
    } else {
        ExitCode::SUCCESS
    })
}

/// The first failed check's name and what it says.
fn first_failure(report: &Report) -> Option<(&'static str, &str)> {
    report.first_failure().map(|c| match &c.verdict {
        Verdict::Fail(d) => (c.name, d.as_str()),
        _ => (c.name, ""),
    })
}

/// Whether check `name` ran and was skipped.
fn skipped(report: &Report, name: &str) -> bool {
    report
        .checks
        .iter()
        .any(|c| c.name == name && matches!(c.verdict, Verdict::Skip(_)))
}

/// Re-executes the run and appends the `replay-*` checks.
fn replay(
    ev: &evidence::Evidence,
    supplied: &Supplied<'_>,
    manifest: Option<&errand_core::manifest::Manifest>,
    report: &mut Report,
) {
    match errand::packaging::default_host() {
        Ok(host) => replay_with(&host, ev, supplied, manifest, report),
        Err(e) => report.push(
            "replay",
            Verdict::Skip(format!(
                "not replayed: cannot start the WebAssembly host: {e}"
            )),
        ),
    }
}

fn replay_with(
    host: &errand_host::Host,
    ev: &evidence::Evidence,
    supplied: &Supplied<'_>,
    manifest: Option<&errand_core::manifest::Manifest>,
    report: &mut Report,
) {
    // A component the package embeds is the executor's word for what ran;
    // only a request that pins the component, or the auditor's own copy,
    // fixes what the replay must run.
    let pinned = ev
        .request
        .as_ref()
        .is_some_and(|q| q.body().component.is_some());
    let embedded = ev
        .component
        .as_ref()
        .and_then(|b| b.bytes())
        .filter(|_| pinned);
    let component = supplied.component.or(embedded);
    let input = supplied
        .input
        .or_else(|| ev.input.as_ref().and_then(|b| b.bytes()));
    let (Some(component), Some(input)) = (component, input) else {
        let missing = match (component, input) {
            (None, None) => "the component and the input",
            (None, Some(_)) => "the component (the author's package)",
            _ => "the input",
        };
        report.push(
            "replay",
            Verdict::Skip(format!(
                "not replayed: the package does not hold {missing}; with one file, pass --component and --input"
            )),
        );
        return;
    };
    let recorded = match &ev.trace {
        Some(errand_core::evidence::TraceBlob::Events(t)) => Some(t.as_slice()),
        _ => None,
    };
    // The signed request, when the package has one: replay runs what was
    // asked, not what the receipt claims.
    let asked = ev
        .request
        .as_ref()
        .filter(|q| q.verify().is_ok())
        .map(|q| q.body());
    match errand_host::replay(
        host,
        ev.receipt.body(),
        asked,
        component,
        input,
        recorded,
        manifest,
    ) {
        Ok(r) => report.checks.extend(r.report.checks),
        // This side could not replay: that says nothing about the executor.
        Err(e) => report.push("replay", Verdict::Skip(format!("not replayed here: {e}"))),
    }
}

fn print_report(
    args: &VerifyArgs,
    path: &Path,
    report: &Report,
    evidence: Option<&evidence::Evidence>,
) -> Result<(), super::StdoutError> {
    if args.json {
        let json = serde_json::json!({
            "evidence": path.display().to_string(),
            "verified": report.verified(),
            "checks": report.checks,
            "receipt": evidence.map(|e| e.receipt.to_json()),
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return Ok(());
    }
    outln!("evidence {}", path.display());
    if let Some(e) = evidence {
        let r = e.receipt.body();
        outln!("  executor  {}", r.executor);
        outln!("  requester {}", r.requester);
        outln!("  request   {}", r.request_id);
        if let Some(c) = &r.capability {
            outln!("  capability {} {} (seq {})", c.name, c.version, c.seq);
        }
        outln!(
            "  outcome   {}; fuel {} of {}",
            r.outcome,
            r.fuel_consumed,
            r.fuel_limit
        );
    }
    outln!();
    let (mut pass, mut skip) = (0, 0);
    for c in &report.checks {
        let (word, detail) = match &c.verdict {
            Verdict::Pass(d) => {
                pass += 1;
                ("pass", d)
            }
            Verdict::Fail(d) => ("FAIL", d),
            Verdict::Skip(d) => {
                skip += 1;
                ("skip", d)
            }
        };
        outln!("  {:<16} {word}  {detail}", c.name);
    }
    outln!();
    match first_failure(report) {
        None => outln!("verified: {pass} checks passed, {skip} skipped"),
        Some((name, detail)) => outln!("NOT VERIFIED: check `{name}` failed: {detail}"),
    }
    Ok(())
}
