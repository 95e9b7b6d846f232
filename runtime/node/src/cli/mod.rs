//! Subcommands, and what they share: writing to stdout, logging.
//!
//! Commands print with [`outln!`] and [`out!`] rather than `println!`: a
//! closed stdout (`errand verify --json FILE | head`) is then an error,
//! [`StdoutError`], that `main` turns into a quiet exit instead of a panic.

use std::io::{IsTerminal as _, Write as _};
use std::sync::OnceLock;

/// `println!` for commands: on a failed write, returns a [`StdoutError`]
/// from the enclosing function instead of panicking.
macro_rules! outln {
    () => {
        $crate::cli::write_stdout_fmt(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout_fmt(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!` for commands, as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout_fmt(format_args!($($arg)*))?
    };
}

pub mod author;
pub mod card;
pub mod keys;
pub mod mcp;
pub mod network;
pub mod receipts;
pub mod sim;
pub mod tools;
pub mod trust;
pub mod verify;

/// The async runtime network commands run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Writing to stdout failed; a broken pipe means the reader has gone.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout: {0}")]
pub struct StdoutError(#[from] pub std::io::Error);

impl StdoutError {
    /// True when whoever read stdout closed it (`| head`).
    pub fn is_broken_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Writes formatted text to stdout (see [`outln!`]).
pub fn write_stdout_fmt(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    std::io::stdout().lock().write_fmt(args)?;
    Ok(())
}

/// Writes bytes to stdout and flushes them, so that a closed pipe is
/// reported here rather than lost at exit.
pub fn write_stdout(bytes: &[u8]) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Writes an invocation's evidence and returns where: to `explicit` when
/// the user named a file (`--evidence`, replacing it), or else to a new file
/// in the current folder named after the capability and the request,
/// `NAME-REQUESTID.evidence` (see [`evidence_file_name`]), created only if
/// no file has that name, so that runs and invocations side by side in one
/// folder keep every piece of evidence. `errand run` and `errand invoke`
/// share it.
pub fn write_evidence(
    explicit: Option<&std::path::Path>,
    name: &str,
    request_id: &errand_core::receipt::RequestId,
    bytes: &[u8],
) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context as _;
    match explicit {
        Some(p) => errand::files::write_atomic(p, bytes)
            .with_context(|| format!("writing {}", p.display()))
            .map(|()| p.to_owned()),
        None => {
            let p = std::path::PathBuf::from(evidence_file_name(name, request_id));
            errand::files::write_new(&p, bytes)
                .with_context(|| format!("writing {}", p.display()))
                .map(|()| p)
        }
    }
}

/// `NAME-REQUESTID.evidence`, with the capability name made safe as one
/// file name: a descriptor's name may hold `/` (and so `..`), and it is the
/// publisher's choice, not the user's.
pub fn evidence_file_name(name: &str, request_id: &errand_core::receipt::RequestId) -> String {
    let mut safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    safe = safe.trim_start_matches('.').to_owned();
    if safe.is_empty() {
        safe = "invoke".into();
    }
    format!("{safe}-{request_id}.evidence")
}

/// How commands that log (`errand node`) format their logs on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per event, for log collectors.
    Json,
}

static LOG_FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Records `--log-format` for [`init_logging`].
pub fn set_log_format(format: LogFormat) {
    let _ = LOG_FORMAT.set(format);
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), in the
/// `--log-format` chosen. Text has ANSI colours only when stderr is a
/// terminal and `NO_COLOR` is unset, so logs sent to a file stay plain.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match LOG_FORMAT.get().copied().unwrap_or_default() {
        LogFormat::Json => builder.with_ansi(false).json().try_init(),
        LogFormat::Text => builder.with_ansi(colour_stderr()).try_init(),
    };
}

/// Whether stderr gets ANSI colours: a terminal, and no `NO_COLOR`
/// (<https://no-color.org>).
fn colour_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use errand_core::receipt::RequestId;

    /// A descriptor's name is the publisher's choice and may hold `/`:
    /// the evidence file it names stays one file in the current folder.
    #[test]
    fn evidence_names_from_descriptors_stay_in_the_folder() {
        let id = RequestId([0xab; 16]);
        let hex = "ab".repeat(16);
        assert_eq!(
            super::evidence_file_name("text-stats", &id),
            format!("text-stats-{hex}.evidence")
        );
        assert_eq!(
            super::evidence_file_name("a/../../etc/x", &id),
            format!("a_.._.._etc_x-{hex}.evidence")
        );
        assert_eq!(
            super::evidence_file_name("../x", &id),
            format!("_x-{hex}.evidence")
        );
        assert_eq!(
            super::evidence_file_name("", &id),
            format!("invoke-{hex}.evidence")
        );
    }
}
