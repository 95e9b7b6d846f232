//! `errand sim paper` without the node crate: runs the paper scenario with
//! the same options the CLI uses for a bare `errand sim paper` (seed 1,
//! default runs, no `--set`, the command recorded as `errand sim paper`)
//! and writes `docs/evaluation/` (or the directory given as the first
//! argument). Output does not depend on the thread count.
//!
//! ```text
//! cargo run --release -p errand-sim --example paper [OUT_DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use errand_sim::scenario::{NoProgress, Options, Scenario, run};

fn main() -> ExitCode {
    let out = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/evaluation"),
        PathBuf::from,
    );
    let mut opts = Options::new(out);
    opts.command = "errand sim paper".into();
    match run(Scenario::Paper, &opts, &NoProgress) {
        Ok(outcome) => {
            for f in &outcome.files {
                println!("{}", f.display());
            }
            eprintln!("simulated {} events", outcome.events);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("errand sim paper: {e}");
            ExitCode::FAILURE
        }
    }
}
