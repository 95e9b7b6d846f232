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
