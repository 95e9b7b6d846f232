//! `errand verify`: offline verification of receipts and evidence.

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
    /// The evidence package or tool receipt (binary or JSON).
    evidence: PathBuf,
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
    let evidence = match files::load_evidence(&args.evidence) {
        Ok(e) => e,
        Err(e) if e.is_corrupt_evidence() => {
            // Recognisably evidence, but broken: the format check fails.
            let mut report = Report::default();
            report.push("format", Verdict::Fail(e.to_string()));
            print_report(&args, &report, None);
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
    let component = match (component, &args.component) {
        (Some(c), Some(path)) if !c.starts_with(b"\0asm") => {
            match errand::packaging::decode_package(path, &c) {
                Ok(p) => {
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
    let supplied = Supplied {
        component: component.as_deref(),
        input: input.as_deref(),
        output: output.as_deref(),
        executor: args.executor,
    };
    let mut report = evidence::verify(&evidence, &supplied);
    if let Some(verdict) = author {
        report.push("author", verdict);
    }
    if args.replay {
        replay(&evidence, &supplied, &mut report);
    }
    print_report(&args, &report, Some(&evidence));
    Ok(if report.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

/// Re-executes the run and appends the `replay-*` checks.
fn replay(ev: &evidence::Evidence, supplied: &Supplied<'_>, report: &mut Report) {
    let component = supplied
        .component
        .or_else(|| ev.component.as_ref().and_then(|b| b.bytes()));
    let input = supplied
        .input
        .or_else(|| ev.input.as_ref().and_then(|b| b.bytes()));
    let (Some(component), Some(input)) = (component, input) else {
        report.push(
            "replay",
            Verdict::Fail(
                "replay needs the component and the input: pass --component and --input".into(),
            ),
        );
        return;
    };
    let host = match errand::packaging::default_host() {
        Ok(h) => h,
        Err(e) => {
            report.push(
                "replay",
                Verdict::Fail(format!("cannot start the WebAssembly host: {e}")),
            );
            return;
        }
    };
    let recorded = match &ev.trace {
        Some(errand_core::evidence::TraceBlob::Events(t)) => Some(t.as_slice()),
        _ => None,
    };
    match errand_host::replay(&host, ev.receipt.body(), component, input, recorded) {
        Ok(r) => report.checks.extend(r.report.checks),
        Err(e) => report.push("replay", Verdict::Fail(e.to_string())),
    }
}

fn print_report(args: &VerifyArgs, report: &Report, evidence: Option<&evidence::Evidence>) {
    if args.json {
        let json = serde_json::json!({
            "evidence": args.evidence.display().to_string(),
            "verified": report.verified(),
            "checks": report.checks,
            "receipt": evidence.map(|e| e.receipt.to_json()),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return;
    }
    println!("evidence {}", args.evidence.display());
    if let Some(e) = evidence {
        let r = e.receipt.body();
        println!("  executor  {}", r.executor);
        println!("  requester {}", r.requester);
        println!("  request   {}", r.request_id);
        if let Some(c) = &r.capability {
            println!("  capability {} {} (seq {})", c.name, c.version, c.seq);
        }
        println!(
            "  outcome   {}; fuel {} of {}",
            r.outcome, r.fuel_consumed, r.fuel_limit
        );
    }
    println!();
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
        println!("  {:<16} {word}  {detail}", c.name);
    }
    println!();
    match report.first_failure() {
        None => println!("verified: {pass} checks passed, {skip} skipped"),
        Some(c) => {
            let detail = match &c.verdict {
                Verdict::Fail(d) => d.as_str(),
                _ => "",
            };
            println!("NOT VERIFIED: check `{}` failed: {detail}", c.name)
        }
    }
}
