//! One invocation: its inputs, its limits, and what came out.

use std::time::Duration;

use errand_core::bounded::BString;
use errand_core::evidence::TraceEvent;
use errand_core::receipt::{AbortReason, InvocationContext, Outcome, RequestId};
use errand_core::request::Seed;
use errand_core::{Digest, UnixMillis};

use crate::sandbox::LogLine;

/// Per-invocation limits. Every run has all of them: they can be changed but
/// not switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel: roughly one unit per WebAssembly instruction.
    pub fuel: u64,
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Largest table, in elements.
    pub table_elements: usize,
    /// Most core instances a component may create.
    pub instances: usize,
    /// Most tables.
    pub tables: usize,
    /// Most linear memories.
    pub memories: usize,
    /// Wall-clock backstop; fuel is the real limit.
    pub deadline: Duration,
    /// Largest input accepted, in bytes.
    pub max_input: usize,
    /// Largest output returned, in bytes.
    pub max_output: usize,
    /// Most trace events (host calls) per run.
    pub max_trace_events: u32,
    /// Most bytes captured from stderr (and from stdout for Errand tools,
    /// whose output is their return value).
    pub max_stdio: usize,
    /// Most bytes of log messages and fields (each field also counts 48
    /// bytes beyond its key and value).
    pub max_log_bytes: usize,
}

impl Default for Limits {
    /// Generous for real tools, small enough that a node can run many at once:
    /// 2 billion fuel (about a second of compute), 256 MiB of memory, a 10 s
    /// backstop, 16 MiB in and out, 65,536 trace events, 1 MiB of stdio and logs.
    fn default() -> Limits {
        Limits {
            fuel: 2_000_000_000,
            memory_bytes: 256 << 20,
            table_elements: 100_000,
            instances: 64,
            tables: 64,
            memories: 16,
            deadline: Duration::from_secs(10),
            max_input: 16 << 20,
            max_output: 16 << 20,
            max_trace_events: 65_536,
            max_stdio: 1 << 20,
            max_log_bytes: 1 << 20,
        }
    }
}

/// What to run a prepared component on.
#[derive(Debug, Clone)]
pub struct Invocation<'a> {
    /// The input bytes.
    pub input: &'a [u8],
    /// The requester's nonce, which the guest can read.
    pub request_id: RequestId,
    /// The seed of the guest's randomness (from the signed request, or
    /// [`errand_core::receipt::local_seed`] for a local run).
    pub seed: Seed,
    /// The time and parameters the guest sees.
    pub context: InvocationContext,
    /// The limits.
    pub limits: Limits,
    /// Keep every trace event (for evidence), not only the chain's root.
    pub keep_trace: bool,
}

/// Which world a component implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorldKind {
    /// `errand:capability/capability`: exports `tool.invoke`.
    Errand {
        /// The exported interface, e.g. `errand:capability/tool@0.1.0`.
        export: String,
    },
    /// `wasi:cli/command`: exports `wasi:cli/run`; input on stdin, output on
    /// stdout, outcome from the exit status.
    Command {
        /// The exported interface, e.g. `wasi:cli/run@0.2.6`.
        export: String,
    },
}

impl std::fmt::Display for WorldKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorldKind::Errand { export } => write!(f, "errand tool ({export})"),
            WorldKind::Command { export } => write!(f, "WASI command ({export})"),
        }
    }
}

/// The record of one run. Every run that started yields one, whatever the
/// guest did; [`Execution::outcome`] says how it ended.
#[derive(Debug, Clone)]
pub struct Execution {
    /// The fingerprint of the engine the run had (its settings, the
    /// [`crate::NanMode`] included), which the receipt carries.
    pub engine: Digest,
    /// How the run ended.
    pub outcome: Outcome,
    /// The output: the tool's return value, or a command's stdout. Empty
    /// unless the outcome is ok.
    pub output: Vec<u8>,
    /// SHA-256 of the input.
    pub input_digest: Digest,
    /// SHA-256 of [`Execution::output`].
    pub output_digest: Digest,
    /// Fuel allowed.
    pub fuel_limit: u64,
    /// Fuel used.
    pub fuel_consumed: u64,
    /// Root of the trace's hash chain.
    pub trace_root: Digest,
    /// Number of trace events.
    pub trace_events: u32,
    /// Every trace event, when [`Invocation::keep_trace`] was set.
    pub trace: Option<Vec<TraceEvent>>,
    /// Captured stderr (and, for Errand tools, stdout).
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// What the guest logged.
    pub logs: Vec<LogLine>,
    /// Wall-clock start, by the host's clock.
    pub started_at: UnixMillis,
    /// Wall-clock end, by the host's clock.
    pub finished_at: UnixMillis,
    /// Elapsed time, instantiation included.
    pub elapsed: Duration,
}

/// A run that could not happen at all. A guest that misbehaves does *not*
/// produce one of these: it produces an [`Execution`] whose outcome says how
/// it was stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The input is larger than [`Limits::max_input`].
    #[error("input is {len} bytes, over the limit of {max}")]
    InputTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Every instance slot is in use; retry later.
    #[error("the host is at its concurrency limit ({0}); retry later")]
    Busy(String),
    /// The engine failed in a way that is not the guest's doing.
    #[error("host error: {0}")]
    Host(String),
    /// This host ran short of a resource under the run (the operating
    /// system refused memory the limits allowed): not the guest's doing,
    /// and maybe not so later or elsewhere. Nothing is signed.
    #[error("this host failed under the run: {0}; retry later or elsewhere")]
    HostFailure(String),
}

/// Why the host stopped a guest: the payload of our own traps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Abort {
    /// The guest exited through `wasi:cli/exit`.
    #[error("exited with status {0}")]
    Exit(u8),
    /// The trace reached its event limit.
    #[error("more than {0} host calls")]
    TraceLimit(u32),
    /// A captured stream or the log exceeded its limit.
    #[error("{0} exceeded {1} bytes")]
    StdioLimit(&'static str, usize),
    /// The output exceeded its limit.
    #[error("output exceeded {0} bytes")]
    OutputTooLarge(usize),
    /// Memory growth past the limit.
    #[error("memory growth to {desired} bytes refused (limit {limit})")]
    MemoryLimit {
        /// Requested size.
        desired: usize,
        /// The limit.
        limit: usize,
    },
    /// Table growth past the limit.
    #[error("table growth to {desired} elements refused (limit {limit})")]
    TableLimit {
        /// Requested size.
        desired: usize,
        /// The limit.
        limit: usize,
    },
    /// A call to an interface the guest was not granted.
    #[error("call to `{0}`, which is not granted to tools")]
    Denied(String),
    /// A host-detected protocol violation by the guest.
    #[error("{0}")]
    Trap(String),
    /// This host failed under the guest (the operating system refused
    /// memory, say): not the guest's doing, and not what another host
    /// would see, so the run ends with [`RunError::HostFailure`] and
    /// nothing is signed.
    #[error("{0}")]
    HostFailure(String),
}

/// The store's resource limiter: refuses growth past the limits with an
/// [`Abort`], so the run ends with a typed reason instead of an allocation
/// failure inside the guest.
#[derive(Debug, Clone)]
pub struct Limiter {
    /// Whether the last growth asked of [`wasmtime::ResourceLimiter::memory_growing`]
    /// was allowed: a failure after that is this host's.
    approved: bool,
    pub(crate) memory_bytes: usize,
    pub(crate) table_elements: usize,
    pub(crate) instances: usize,
    pub(crate) tables: usize,
    pub(crate) memories: usize,
}

impl Limiter {
    pub(crate) fn new(l: &Limits) -> Limiter {
        Limiter {
            approved: false,
            memory_bytes: l.memory_bytes,
            table_elements: l.table_elements,
            instances: l.instances,
            tables: l.tables,
            memories: l.memories,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    /// Growth past the limit ends the run ([`Abort::MemoryLimit`]); past
    /// the memory's own declared maximum, `memory.grow` returns -1, as the
    /// Wasm specification says, on every host.
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.approved = false;
        if desired > self.memory_bytes {
            return Err(Abort::MemoryLimit {
                desired,
                limit: self.memory_bytes,
            }
            .into());
        }
        if max.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        self.approved = true;
        Ok(true)
    }

    /// Growth that [`Limiter::memory_growing`] allowed failed anyway: that
    /// is this host's failure (the operating system refusing to map
    /// memory), and the guest must not see it, or its run would depend on
    /// how busy the executor was, a replay would differ, and an honest
    /// executor would be blamed for it. It ends the run with
    /// [`Abort::HostFailure`]. A failure wasmtime finds before asking the
    /// limiter is the module's own doing (a size its memory type cannot
    /// hold; only reachable with custom page sizes, which this engine does
    /// not enable) and returns -1 on every host.
    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        if std::mem::take(&mut self.approved) || is_os_failure(&error) {
            return Err(Abort::HostFailure(format!(
                "memory growth failed on this host: {error:#}"
            ))
            .into());
        }
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            return Err(Abort::TableLimit {
                desired,
                limit: self.table_elements,
            }
            .into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

fn msg(s: impl std::fmt::Display) -> BString<512> {
    BString::truncate_from(&s.to_string())
}

fn aborted(reason: AbortReason, detail: impl std::fmt::Display) -> Outcome {
    Outcome::Aborted {
        reason,
        detail: msg(detail),
    }
}

/// The most telling line of captured stderr: a Rust panic's location and
/// message when there is one, else the last line that is not a `note:`.
fn last_line(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(i) = lines.iter().rposition(|l| l.contains("panicked at")) {
        let at = lines[i];
        return Some(match lines.get(i + 1).filter(|m| !m.starts_with("note:")) {
            Some(msg) => format!("{at} {msg}"),
            None => at.to_owned(),
        });
    }
    lines
        .iter()
        .rev()
        .find(|l| !l.starts_with("note:"))
        .map(|l| (*l).to_owned())
}

/// Whether `err` comes from the operating system (an I/O error, an
/// allocation refused) rather than from anything the guest did. Decided by
/// type, and by the text of the root cause only: a trap's context carries
/// a backtrace whose frame names are the guest's own (its `name` section),
/// so no other layer's text may decide anything.
fn is_os_failure(err: &wasmtime::Error) -> bool {
    err.chain()
        .any(|c| c.is::<std::io::Error>() || c.is::<wasmtime::OutOfMemory>())
        // rustix's `Errno`, which wasmtime's mmap paths return as is (the
        // root cause), prints as std's `io::Error` does.
        || err.root_cause().to_string().contains("(os error ")
}

/// The host failure behind `err`, if it is one: our own
/// [`Abort::HostFailure`], or an error of the operating system's that
/// reached the run. A trap (the guest's instructions, fuel, the deadline)
/// and our other aborts never are.
pub(crate) fn host_failure(err: &wasmtime::Error) -> Option<String> {
    match err.downcast_ref::<Abort>() {
        Some(Abort::HostFailure(m)) => Some(m.clone()),
        Some(_) => None,
        None if err.is::<wasmtime::Trap>() => None,
        None if is_os_failure(err) => Some(format!("{err:#}")),
        None => None,
    }
}

/// Maps an error raised out of the guest to how the run ended.
pub(crate) fn classify(err: &wasmtime::Error, stderr: &[u8]) -> Outcome {
    if let Some(a) = err.downcast_ref::<Abort>() {
        return match a {
            Abort::Exit(0) => Outcome::Ok,
            Abort::Exit(code) => Outcome::Failed {
                message: msg(format_args!(
                    "exited with status {code}{}",
                    last_line(stderr)
                        .map(|l| format!(": {l}"))
                        .unwrap_or_default()
                )),
            },
            Abort::TraceLimit(_) => aborted(AbortReason::TraceLimit, a),
            Abort::StdioLimit(..) => aborted(AbortReason::StdioLimit, a),
            Abort::OutputTooLarge(_) => aborted(AbortReason::OutputTooLarge, a),
            Abort::MemoryLimit { .. } => aborted(AbortReason::MemoryLimit, a),
            Abort::TableLimit { .. } => aborted(AbortReason::TableLimit, a),
            Abort::Denied(_) => aborted(AbortReason::CapabilityDenied, a),
            Abort::Trap(_) => aborted(AbortReason::Trap, a),
            // Not reached: `Host::run` answers a host failure with
            // `RunError::HostFailure` before classifying anything.
            Abort::HostFailure(_) => aborted(AbortReason::Trap, a),
        };
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::OutOfFuel => aborted(AbortReason::OutOfFuel, "all fuel consumed"),
            wasmtime::Trap::Interrupt => {
                aborted(AbortReason::Deadline, "wall-clock deadline passed")
            }
            wasmtime::Trap::StackOverflow => {
                aborted(AbortReason::Trap, "stack overflow (call stack exhausted)")
            }
            other => {
                let detail = match last_line(stderr) {
                    Some(line) => format!("{other}; stderr: {line}"),
                    None => other.to_string(),
                };
                aborted(AbortReason::Trap, detail)
            }
        };
    }
    // Limits wasmtime enforces itself at instantiation.
    let text = err.to_string();
    if text.contains("resource limit exceeded") {
        let reason = if text.contains("table") {
            AbortReason::TableLimit
        } else if text.contains("memor") {
            AbortReason::MemoryLimit
        } else {
            AbortReason::InstanceLimit
        };
        return aborted(reason, text);
    }
    aborted(AbortReason::Trap, format!("{err:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter as _;

    /// The operating system refusing memory the limits allowed is this
    /// host's failure: the guest must not see it as `-1`, or its run would
    /// depend on how loaded the executor was and an honest replay would
    /// disagree with it.
    #[test]
    fn memory_the_host_cannot_map_ends_the_run_as_a_host_failure() {
        let mut l = Limiter::new(&Limits::default());
        // Past the memory's declared maximum: -1, on every host.
        assert!(!l.memory_growing(1 << 16, 3 << 16, Some(2 << 16)).unwrap());
        // A failure before the limiter was asked: the module's own.
        assert!(
            l.memory_grow_failed(wasmtime::format_err!("type limits"))
                .is_ok()
        );
        // Allowed, then refused by the operating system (rustix's errno
        // as wasmtime returns it, or std's).
        for os in [
            wasmtime::format_err!("Cannot allocate memory (os error 12)"),
            wasmtime::Error::new(std::io::Error::from_raw_os_error(12)),
        ] {
            assert!(l.memory_growing(1 << 16, 2 << 16, None).unwrap());
            let err = l.memory_grow_failed(os).unwrap_err();
            let m = host_failure(&err).expect("a host failure");
            assert!(m.contains("memory growth failed on this host"), "{m}");
            assert!(m.contains("os error 12"), "{m}");
        }
    }

    /// Instantiation and calls: only what comes from the operating system
    /// is the host's; everything else (wasmtime's own checks of what the
    /// guest did, traps, our limits) is the guest's and is signed.
    #[test]
    fn only_the_operating_systems_failures_are_the_hosts() {
        let os = wasmtime::Error::new(std::io::Error::from_raw_os_error(12))
            .context("failed to map the memory image");
        assert!(host_failure(&os).is_some());
        for guest in [
            wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached),
            wasmtime::Error::new(Abort::MemoryLimit {
                desired: 2,
                limit: 1,
            }),
            wasmtime::format_err!("unknown handle index 7"),
            // A trap whose context names the guest's own functions.
            wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached)
                .context("wasm backtrace:\n    0:  0x2a - m!(os error 1)"),
            // Text that only looks like the operating system's, above a
            // root cause that is not.
            wasmtime::format_err!("unknown handle index 7").context("(os error 12)"),
            wasmtime::format_err!("resource limit exceeded: instance count too high at 9"),
        ] {
            assert!(host_failure(&guest).is_none(), "{guest:#}");
        }
    }
}
