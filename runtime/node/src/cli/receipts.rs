//! `errand receipts`: list and export the receipts a node has signed, so an
//! operator can hand them to an auditor (`errand verify FOLDER`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use errand::config::NodeConfig;
use errand::store::Store;
use errand_core::evidence::Evidence;
use errand_core::signed;

/// Arguments of `errand receipts`.
#[derive(Debug, Args)]
pub struct ReceiptsArgs {
    /// The node's configuration (its storage folder). The node must be
    /// stopped: its store is open while it runs.
    #[arg(long, short, default_value = "node.toml")]
    config: PathBuf,
    /// Write each receipt, with the signed request it answers, as
    /// DIR/REQUEST-ID.evidence.
    #[arg(long, value_name = "DIR")]
    export: Option<PathBuf>,
    /// Print one JSON object per receipt instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn receipts(args: ReceiptsArgs) -> anyhow::Result<ExitCode> {
    let config = NodeConfig::load(&args.config)?;
    let store = Store::open(&config.storage).with_context(|| {
        format!(
            "opening the node's store in {} (is the node still running? stop it first)",
            config.storage.display()
        )
    })?;
    if let Some(dir) = &args.export {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut n = 0usize;
    store.for_each_receipt::<anyhow::Error>(|receipt, request| {
        n += 1;
        let r = receipt.body();
        if args.json {
            outln!(
                "{}",
                serde_json::json!({
                    "receipt": receipt.to_json(),
                    "request": request.as_ref().map(|q| q.to_json()),
                })
            );
        } else {
            outln!(
                "{}  {}  {}  {}  fuel {}{}",
                r.request_id,
                r.requester.short(),
                r.capability
                    .as_ref()
                    .map(|c| format!("{} {}", c.name, c.version))
                    .unwrap_or_else(|| "shipped".into()),
                r.outcome,
                r.fuel_consumed,
                if request.is_some() {
                    ""
                } else {
                    "  (no signed request)"
                }
            );
        }
        if let Some(dir) = &args.export {
            let mut ev = Evidence::of_receipt(receipt.clone());
            ev.request = request;
            let path = dir.join(format!("{}.evidence", r.request_id));
            errand::files::write_atomic(&path, &signed::encode(&ev)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    })?;
    eprintln!(
        "{n} receipts{}",
        args.export
            .as_ref()
            .map(|d| format!(
                " exported to {} (check them with `errand verify {}`)",
                d.display(),
                d.display()
            ))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
