//! The guest's whole world: a deterministic, traced, bounded WASI subset plus
//! Errand's `host` interface.
//!
//! Every function here is reached only through the component linker, and
//! every one of them records a [`TraceEvent`] before returning: the fuel the
//! guest had consumed when it made the call (snapshotted by the store's call
//! hook), the call's name, and digests of its arguments and results.
//!
//! Nothing here touches the real world:
//!
//! | interface | behaviour |
//! |---|---|
//! | `wasi:clocks/wall-clock` | the invocation's declared time, fixed for the run |
//! | `wasi:clocks/monotonic-clock` | fuel consumed × 1 ns, plus virtual time slept |
//! | `wasi:random/*` | a SHA-256 counter-mode stream seeded from the request |
//! | `wasi:cli/environment` | no variables, no arguments, no working directory |
//! | `wasi:cli/stdin` | the input (WASI commands) or nothing (Errand tools) |
//! | `wasi:cli/stdout`, `stderr` | in-memory buffers with hard limits |
//! | `wasi:cli/exit` | ends the run with that status |
//! | `wasi:io/*` | streams over those buffers; pollables are always ready or virtual timers |
//! | anything else (`wasi:filesystem`, `wasi:sockets`, …) | ends the run: capability denied |

use errand_core::bounded::BString;
use errand_core::digest::Hasher;
use errand_core::evidence::{TraceChain, TraceEvent};
use errand_core::{Digest, UnixMillis};
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::errand::capability::host::{self as errand_host, Level};
use crate::bindings::wasi;
use crate::bindings::wasi::io::streams::StreamError;
use crate::run::Abort;

/// Nanoseconds of virtual monotonic time per unit of fuel.
pub const NS_PER_FUEL: u64 = 1;
/// Largest chunk a guest may write or read per call.
const IO_CHUNK: u64 = 64 * 1024;
/// Largest random byte string one call may ask for.
const MAX_RANDOM_REQUEST: u64 = 1 << 20;

/// A pollable: always ready, or ready at a virtual monotonic instant.
#[derive(Debug)]
pub enum Pollable {
    /// Ready now and forever (streams never block).
    Ready,
    /// Ready once the monotonic clock reaches this many nanoseconds.
    Timer(u64),
}

/// An input stream: the run's stdin.
#[derive(Debug)]
pub struct InputStream;

/// An output stream: one of the captured buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// An I/O error resource. The sandbox never produces one, but the type must
/// exist for guests that reference it.
#[derive(Debug)]
pub struct IoError;

/// A terminal handle; the sandbox has no terminal.
#[derive(Debug)]
pub struct Terminal;

/// One line a guest logged through `errand:capability/host.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Severity.
    pub level: &'static str,
    /// The message.
    pub message: String,
    /// Structured fields.
    pub fields: Vec<(String, String)>,
    /// Fuel consumed when it was logged.
    pub fuel: u64,
}

/// Hard limits enforced inside the sandbox, per run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SandboxLimits {
    pub max_stdout: usize,
    pub max_stderr: usize,
    pub max_trace_events: u32,
    pub max_log_bytes: usize,
    /// Whether stdout is the tool's output (WASI commands).
    pub stdout_is_output: bool,
}

/// A deterministic random stream: SHA-256 over `seed ‖ counter`.
#[derive(Debug, Clone)]
pub(crate) struct Drbg {
    seed: [u8; 32],
    counter: u64,
    buf: [u8; 32],
    used: usize,
}

impl Drbg {
    pub(crate) fn new(seed: [u8; 32]) -> Drbg {
        Drbg {
            seed,
            counter: 0,
            buf: [0; 32],
            used: 32,
        }
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            if self.used == 32 {
                let mut h = Hasher::new();
                h.update(b"errand/drbg/v1")
                    .update(&self.seed)
                    .update(&self.counter.to_le_bytes());
                self.buf = h.finish().0;
                self.counter += 1;
                self.used = 0;
            }
            *b = self.buf[self.used];
            self.used += 1;
        }
    }

    pub(crate) fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
}

/// Bytes of `max_log_bytes` each log field costs beyond its key and value:
/// what its two `String`s take on a 64-bit host. A constant, not
/// `size_of`, because it decides outcomes, which replay must reproduce.
pub(crate) const LOG_FIELD_OVERHEAD: usize = 48;

/// Everything a guest's store holds.
pub struct GuestState {
    pub(crate) table: ResourceTable,
    pub(crate) limiter: crate::run::Limiter,
    pub(crate) limits: SandboxLimits,
    pub(crate) stdin: Vec<u8>,
    pub(crate) stdin_pos: usize,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) log_bytes: usize,
    pub(crate) time: UnixMillis,
    pub(crate) rng: Drbg,
    pub(crate) slept_ns: u64,
    /// Fuel the run started with.
    pub(crate) fuel_limit: u64,
    /// Fuel consumed when the guest last entered the host.
    pub(crate) fuel_at_call: u64,
    pub(crate) chain: TraceChain,
    pub(crate) events: Option<Vec<TraceEvent>>,
}

impl GuestState {
    pub(crate) fn new(
        limits: SandboxLimits,
        limiter: crate::run::Limiter,
        stdin: Vec<u8>,
        time: UnixMillis,
        seed: [u8; 32],
        fuel_limit: u64,
        keep_events: bool,
    ) -> GuestState {
        GuestState {
            table: ResourceTable::new(),
            limiter,
            limits,
            stdin,
            stdin_pos: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            logs: Vec::new(),
            log_bytes: 0,
            time,
            rng: Drbg::new(seed),
            slept_ns: 0,
            fuel_limit,
            fuel_at_call: 0,
            chain: TraceChain::new(),
            events: keep_events.then(Vec::new),
        }
    }

    /// Appends a trace event, or ends the run when the trace is full.
    fn record(&mut self, call: &'static str, args: Digest, result: Digest) -> wasmtime::Result<()> {
        if self.chain.count() >= self.limits.max_trace_events {
            return Err(Abort::TraceLimit(self.limits.max_trace_events).into());
        }
        let event = TraceEvent {
            fuel: self.fuel_at_call,
            call: BString::truncate_from(call),
            args,
            result,
        };
        self.chain.push(&event);
        if let Some(events) = &mut self.events {
            events.push(event);
        }
        Ok(())
    }

    fn monotonic_now(&self) -> u64 {
        self.fuel_at_call
            .saturating_mul(NS_PER_FUEL)
            .saturating_add(self.slept_ns)
    }

    fn table_err(e: wasmtime::component::ResourceTableError) -> wasmtime::Error {
        wasmtime::Error::new(Abort::Trap(format!("resource table: {e}")))
    }

    fn push<T: Send + 'static>(&mut self, v: T) -> wasmtime::Result<Resource<T>> {
        self.table.push(v).map_err(Self::table_err)
    }

    fn delete<T: 'static>(&mut self, r: Resource<T>) -> wasmtime::Result<T> {
        self.table.delete(r).map_err(Self::table_err)
    }

    fn write_out(&mut self, stream: OutputStream, bytes: &[u8]) -> wasmtime::Result<()> {
        let (buf, max) = match stream {
            OutputStream::Stdout => (&mut self.stdout, self.limits.max_stdout),
            OutputStream::Stderr => (&mut self.stderr, self.limits.max_stderr),
        };
        if buf.len() + bytes.len() > max {
            return Err(match (stream, self.limits.stdout_is_output) {
                (OutputStream::Stdout, true) => Abort::OutputTooLarge(max),
                (OutputStream::Stdout, false) => Abort::StdioLimit("stdout", max),
                (OutputStream::Stderr, _) => Abort::StdioLimit("stderr", max),
            }
            .into());
        }
        buf.extend_from_slice(bytes);
        Ok(())
    }
}

fn d(parts: &[&[u8]]) -> Digest {
    Digest::of_parts(parts)
}

fn none() -> Digest {
    d(&[])
}

fn rep<T: 'static>(r: &Resource<T>) -> [u8; 4] {
    r.rep().to_le_bytes()
}

fn stream_result<T: AsRef<[u8]>>(r: &Result<T, StreamError>) -> Digest {
    match r {
        Ok(v) => d(&[b"ok", v.as_ref()]),
        Err(StreamError::Closed) => d(&[b"closed"]),
        Err(StreamError::LastOperationFailed(e)) => d(&[b"failed", &e.rep().to_le_bytes()]),
    }
}

// ------------------------------------------------------------ errand host

impl errand_host::Host for GuestState {
    fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        // Each field is charged what it holds here beyond its text (two
        // `String`s), so a flood of empty fields cannot hold memory free.
        // Checked before the call is hashed into the trace, so an
        // oversized call costs the host no more than lifting it did.
        let size = message.len()
            + fields
                .iter()
                .map(|(k, v)| k.len() + v.len() + LOG_FIELD_OVERHEAD)
                .sum::<usize>();
        self.log_bytes = self.log_bytes.saturating_add(size);
        if self.log_bytes > self.limits.max_log_bytes {
            return Err(Abort::StdioLimit("log", self.limits.max_log_bytes).into());
        }
        let mut args = Hasher::new();
        args.update(level.as_bytes())
            .update(&(message.len() as u64).to_le_bytes())
            .update(message.as_bytes());
        for (k, v) in &fields {
            args.update(&(k.len() as u64).to_le_bytes())
                .update(k.as_bytes());
            args.update(&(v.len() as u64).to_le_bytes())
                .update(v.as_bytes());
        }
        self.record("errand:capability/host#log", args.finish(), none())?;
        tracing::debug!(target: "errand::guest", level, %message, ?fields, "guest log");
        self.logs.push(LogLine {
            level,
            message,
            fields,
            fuel: self.fuel_at_call,
        });
        Ok(())
    }
}

impl crate::bindings::errand::capability::types::Host for GuestState {}

// ------------------------------------------------------------ wasi:io

impl wasi::io::error::HostError for GuestState {
    fn to_debug_string(&mut self, e: Resource<IoError>) -> wasmtime::Result<String> {
        self.record(
            "wasi:io/error#error.to-debug-string",
            d(&[&rep(&e)]),
            none(),
        )?;
        Ok("io error".into())
    }

    fn drop(&mut self, e: Resource<IoError>) -> wasmtime::Result<()> {
        self.record("wasi:io/error#error.drop", d(&[&rep(&e)]), none())?;
        self.delete(e).map(|_| ())
    }
}

impl wasi::io::error::Host for GuestState {}

impl GuestState {
    fn pollable_ready(&self, p: &Pollable) -> bool {
        match p {
            Pollable::Ready => true,
            Pollable::Timer(at) => self.monotonic_now() >= *at,
        }
    }
}

impl wasi::io::poll::HostPollable for GuestState {
    fn ready(&mut self, p: Resource<Pollable>) -> wasmtime::Result<bool> {
        let ready = {
            let pollable = self.table.get(&p).map_err(Self::table_err)?;
            self.pollable_ready(pollable)
        };
        self.record(
            "wasi:io/poll#pollable.ready",
            d(&[&rep(&p)]),
            d(&[&[ready as u8]]),
        )?;
        Ok(ready)
    }

    fn block(&mut self, p: Resource<Pollable>) -> wasmtime::Result<()> {
        if let Pollable::Timer(at) = *self.table.get(&p).map_err(Self::table_err)? {
            // Virtual time: sleeping costs nothing and replays exactly.
            let now = self.monotonic_now();
            if at > now {
                self.slept_ns = self.slept_ns.saturating_add(at - now);
            }
        }
        self.record("wasi:io/poll#pollable.block", d(&[&rep(&p)]), none())
    }

    fn drop(&mut self, p: Resource<Pollable>) -> wasmtime::Result<()> {
        self.record("wasi:io/poll#pollable.drop", d(&[&rep(&p)]), none())?;
        self.delete(p).map(|_| ())
    }
}

impl wasi::io::poll::Host for GuestState {
    fn poll(&mut self, list: Vec<Resource<Pollable>>) -> wasmtime::Result<Vec<u32>> {
        if list.is_empty() {
            return Err(Abort::Trap("wasi:io/poll#poll called with an empty list".into()).into());
        }
        let mut ready = Vec::new();
        let mut earliest = u64::MAX;
        for (i, p) in list.iter().enumerate() {
            let pollable = self.table.get(p).map_err(Self::table_err)?;
            if self.pollable_ready(pollable) {
                ready.push(i as u32);
            } else if let Pollable::Timer(at) = pollable {
                earliest = earliest.min(*at);
            }
        }
        if ready.is_empty() {
            // Nothing ready: advance virtual time to the first timer.
            self.slept_ns = self
                .slept_ns
                .saturating_add(earliest - self.monotonic_now());
            for (i, p) in list.iter().enumerate() {
                let pollable = self.table.get(p).map_err(Self::table_err)?;
                if self.pollable_ready(pollable) {
                    ready.push(i as u32);
                }
            }
        }
        let args: Vec<u8> = list.iter().flat_map(rep).collect();
        let res: Vec<u8> = ready.iter().flat_map(|i| i.to_le_bytes()).collect();
        self.record("wasi:io/poll#poll", d(&[&args]), d(&[&res]))?;
        Ok(ready)
    }
}

impl GuestState {
    fn traced_read(
        &mut self,
        call: &'static str,
        s: &Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        let r = self.read_stdin(len);
        self.record(call, d(&[&rep(s), &len.to_le_bytes()]), stream_result(&r))?;
        Ok(r)
    }

    fn traced_skip(
        &mut self,
        call: &'static str,
        s: &Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        let r = self.read_stdin(len).map(|v| v.len() as u64);
        let res = r
            .as_ref()
            .map(|n| n.to_le_bytes())
            .map_err(|_| StreamError::Closed);
        self.record(call, d(&[&rep(s), &len.to_le_bytes()]), stream_result(&res))?;
        Ok(r)
    }

    /// Records and performs a write of `bytes`, or of `zeroes` zero bytes
    /// when `bytes` is `None`, to an output stream.
    fn traced_write(
        &mut self,
        call: &'static str,
        s: &Resource<OutputStream>,
        bytes: Option<&[u8]>,
        zeroes: u64,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        let len = bytes.map_or(zeroes, |b| b.len() as u64);
        let args = match bytes {
            Some(b) => d(&[&rep(s), b]),
            None => d(&[&rep(s), &zeroes.to_le_bytes()]),
        };
        self.record(call, args, none())?;
        Self::check_len(usize::try_from(len).unwrap_or(usize::MAX))?;
        let stream = self.out_stream(s)?;
        match bytes {
            Some(b) => self.write_out(stream, b)?,
            None => self.write_out(stream, &vec![0; len as usize])?,
        }
        Ok(Ok(()))
    }
}

impl wasi::io::streams::HostInputStream for GuestState {
    fn read(
        &mut self,
        s: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        self.traced_read("wasi:io/streams#input-stream.read", &s, len)
    }

    fn blocking_read(
        &mut self,
        s: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<Vec<u8>, StreamError>> {
        self.traced_read("wasi:io/streams#input-stream.blocking-read", &s, len)
    }

    fn skip(
        &mut self,
        s: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        self.traced_skip("wasi:io/streams#input-stream.skip", &s, len)
    }

    fn blocking_skip(
        &mut self,
        s: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        self.traced_skip("wasi:io/streams#input-stream.blocking-skip", &s, len)
    }

    fn subscribe(&mut self, s: Resource<InputStream>) -> wasmtime::Result<Resource<Pollable>> {
        let p = self.push(Pollable::Ready)?;
        self.record(
            "wasi:io/streams#input-stream.subscribe",
            d(&[&rep(&s)]),
            d(&[&rep(&p)]),
        )?;
        Ok(p)
    }

    fn drop(&mut self, s: Resource<InputStream>) -> wasmtime::Result<()> {
        self.record("wasi:io/streams#input-stream.drop", d(&[&rep(&s)]), none())?;
        self.delete(s).map(|_| ())
    }
}

impl GuestState {
    fn read_stdin(&mut self, len: u64) -> Result<Vec<u8>, StreamError> {
        let rest = &self.stdin[self.stdin_pos..];
        if rest.is_empty() {
            return Err(StreamError::Closed);
        }
        let n = (len.min(IO_CHUNK) as usize).min(rest.len());
        let out = rest[..n].to_vec();
        self.stdin_pos += n;
        Ok(out)
    }

    fn out_stream(&self, s: &Resource<OutputStream>) -> wasmtime::Result<OutputStream> {
        self.table.get(s).copied().map_err(Self::table_err)
    }

    fn check_len(contents: usize) -> wasmtime::Result<()> {
        if contents as u64 > IO_CHUNK {
            return Err(Abort::Trap(format!(
                "wasi:io/streams write of {contents} bytes exceeds the {IO_CHUNK}-byte permit"
            ))
            .into());
        }
        Ok(())
    }
}

impl wasi::io::streams::HostOutputStream for GuestState {
    fn check_write(
        &mut self,
        s: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        self.record(
            "wasi:io/streams#output-stream.check-write",
            d(&[&rep(&s)]),
            d(&[&IO_CHUNK.to_le_bytes()]),
        )?;
        Ok(Ok(IO_CHUNK))
    }

    fn write(
        &mut self,
        s: Resource<OutputStream>,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        self.traced_write(
            "wasi:io/streams#output-stream.write",
            &s,
            Some(&contents),
            0,
        )
    }

    fn blocking_write_and_flush(
        &mut self,
        s: Resource<OutputStream>,
        contents: Vec<u8>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        self.traced_write(
            "wasi:io/streams#output-stream.blocking-write-and-flush",
            &s,
            Some(&contents),
            0,
        )
    }

    fn flush(&mut self, s: Resource<OutputStream>) -> wasmtime::Result<Result<(), StreamError>> {
        self.record(
            "wasi:io/streams#output-stream.flush",
            d(&[&rep(&s)]),
            none(),
        )?;
        Ok(Ok(()))
    }

    fn blocking_flush(
        &mut self,
        s: Resource<OutputStream>,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        self.record(
            "wasi:io/streams#output-stream.blocking-flush",
            d(&[&rep(&s)]),
            none(),
        )?;
        Ok(Ok(()))
    }

    fn subscribe(&mut self, s: Resource<OutputStream>) -> wasmtime::Result<Resource<Pollable>> {
        let p = self.push(Pollable::Ready)?;
        self.record(
            "wasi:io/streams#output-stream.subscribe",
            d(&[&rep(&s)]),
            d(&[&rep(&p)]),
        )?;
        Ok(p)
    }

    fn write_zeroes(
        &mut self,
        s: Resource<OutputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        self.traced_write("wasi:io/streams#output-stream.write-zeroes", &s, None, len)
    }

    fn blocking_write_zeroes_and_flush(
        &mut self,
        s: Resource<OutputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<(), StreamError>> {
        self.traced_write(
            "wasi:io/streams#output-stream.blocking-write-zeroes-and-flush",
            &s,
            None,
            len,
        )
    }

    fn splice(
        &mut self,
        s: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        let r = self.read_stdin(len);
        let res = r
            .as_ref()
            .map(|v| (v.len() as u64).to_le_bytes())
            .map_err(|_| StreamError::Closed);
        self.record(
            "wasi:io/streams#output-stream.splice",
            d(&[&rep(&s), &rep(&src), &len.to_le_bytes()]),
            stream_result(&res),
        )?;
        match r {
            Ok(bytes) => {
                let stream = self.out_stream(&s)?;
                self.write_out(stream, &bytes)?;
                Ok(Ok(bytes.len() as u64))
            }
            Err(e) => Ok(Err(e)),
        }
    }

    fn blocking_splice(
        &mut self,
        s: Resource<OutputStream>,
        src: Resource<InputStream>,
        len: u64,
    ) -> wasmtime::Result<Result<u64, StreamError>> {
        self.splice(s, src, len)
    }

    fn drop(&mut self, s: Resource<OutputStream>) -> wasmtime::Result<()> {
        self.record("wasi:io/streams#output-stream.drop", d(&[&rep(&s)]), none())?;
        self.delete(s).map(|_| ())
    }
}

impl wasi::io::streams::Host for GuestState {}

// ------------------------------------------------------------ wasi:cli

impl wasi::cli::environment::Host for GuestState {
    fn get_environment(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        self.record("wasi:cli/environment#get-environment", none(), none())?;
        Ok(Vec::new())
    }

    fn get_arguments(&mut self) -> wasmtime::Result<Vec<String>> {
        self.record("wasi:cli/environment#get-arguments", none(), none())?;
        Ok(Vec::new())
    }

    fn initial_cwd(&mut self) -> wasmtime::Result<Option<String>> {
        self.record("wasi:cli/environment#initial-cwd", none(), none())?;
        Ok(None)
    }
}

impl wasi::cli::exit::Host for GuestState {
    fn exit(&mut self, status: Result<(), ()>) -> wasmtime::Result<()> {
        let code = if status.is_ok() { 0 } else { 1 };
        self.record("wasi:cli/exit#exit", d(&[&[code]]), none())?;
        Err(Abort::Exit(code).into())
    }

    fn exit_with_code(&mut self, status_code: u8) -> wasmtime::Result<()> {
        self.record("wasi:cli/exit#exit-with-code", d(&[&[status_code]]), none())?;
        Err(Abort::Exit(status_code).into())
    }
}

impl wasi::cli::stdin::Host for GuestState {
    fn get_stdin(&mut self) -> wasmtime::Result<Resource<InputStream>> {
        let r = self.push(InputStream)?;
        self.record("wasi:cli/stdin#get-stdin", none(), d(&[&rep(&r)]))?;
        Ok(r)
    }
}

impl wasi::cli::stdout::Host for GuestState {
    fn get_stdout(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        let r = self.push(OutputStream::Stdout)?;
        self.record("wasi:cli/stdout#get-stdout", none(), d(&[&rep(&r)]))?;
        Ok(r)
    }
}

impl wasi::cli::stderr::Host for GuestState {
    fn get_stderr(&mut self) -> wasmtime::Result<Resource<OutputStream>> {
        let r = self.push(OutputStream::Stderr)?;
        self.record("wasi:cli/stderr#get-stderr", none(), d(&[&rep(&r)]))?;
        Ok(r)
    }
}

impl wasi::cli::terminal_input::HostTerminalInput for GuestState {
    fn drop(&mut self, t: Resource<Terminal>) -> wasmtime::Result<()> {
        self.record(
            "wasi:cli/terminal-input#terminal-input.drop",
            d(&[&rep(&t)]),
            none(),
        )?;
        self.delete(t).map(|_| ())
    }
}

impl wasi::cli::terminal_input::Host for GuestState {}

impl wasi::cli::terminal_output::HostTerminalOutput for GuestState {
    fn drop(&mut self, t: Resource<Terminal>) -> wasmtime::Result<()> {
        self.record(
            "wasi:cli/terminal-output#terminal-output.drop",
            d(&[&rep(&t)]),
            none(),
        )?;
        self.delete(t).map(|_| ())
    }
}

impl wasi::cli::terminal_output::Host for GuestState {}

impl wasi::cli::terminal_stdin::Host for GuestState {
    fn get_terminal_stdin(&mut self) -> wasmtime::Result<Option<Resource<Terminal>>> {
        self.record("wasi:cli/terminal-stdin#get-terminal-stdin", none(), none())?;
        Ok(None)
    }
}

impl wasi::cli::terminal_stdout::Host for GuestState {
    fn get_terminal_stdout(&mut self) -> wasmtime::Result<Option<Resource<Terminal>>> {
        self.record(
            "wasi:cli/terminal-stdout#get-terminal-stdout",
            none(),
            none(),
        )?;
        Ok(None)
    }
}

impl wasi::cli::terminal_stderr::Host for GuestState {
    fn get_terminal_stderr(&mut self) -> wasmtime::Result<Option<Resource<Terminal>>> {
        self.record(
            "wasi:cli/terminal-stderr#get-terminal-stderr",
            none(),
            none(),
        )?;
        Ok(None)
    }
}

// ------------------------------------------------------------ wasi:clocks

impl wasi::clocks::wall_clock::Host for GuestState {
    fn now(&mut self) -> wasmtime::Result<wasi::clocks::wall_clock::Datetime> {
        let ms = self.time.0;
        let dt = wasi::clocks::wall_clock::Datetime {
            seconds: ms / 1000,
            nanoseconds: ((ms % 1000) * 1_000_000) as u32,
        };
        self.record(
            "wasi:clocks/wall-clock#now",
            none(),
            d(&[&ms.to_le_bytes()]),
        )?;
        Ok(dt)
    }

    fn resolution(&mut self) -> wasmtime::Result<wasi::clocks::wall_clock::Datetime> {
        self.record("wasi:clocks/wall-clock#resolution", none(), none())?;
        Ok(wasi::clocks::wall_clock::Datetime {
            seconds: 0,
            nanoseconds: 1_000_000,
        })
    }
}

impl wasi::clocks::monotonic_clock::Host for GuestState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        let now = self.monotonic_now();
        self.record(
            "wasi:clocks/monotonic-clock#now",
            none(),
            d(&[&now.to_le_bytes()]),
        )?;
        Ok(now)
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        self.record("wasi:clocks/monotonic-clock#resolution", none(), none())?;
        Ok(NS_PER_FUEL)
    }

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<Pollable>> {
        let p = self.push(Pollable::Timer(when))?;
        self.record(
            "wasi:clocks/monotonic-clock#subscribe-instant",
            d(&[&when.to_le_bytes()]),
            d(&[&rep(&p)]),
        )?;
        Ok(p)
    }

    fn subscribe_duration(&mut self, dur: u64) -> wasmtime::Result<Resource<Pollable>> {
        let at = self.monotonic_now().saturating_add(dur);
        let p = self.push(Pollable::Timer(at))?;
        self.record(
            "wasi:clocks/monotonic-clock#subscribe-duration",
            d(&[&dur.to_le_bytes()]),
            d(&[&rep(&p)]),
        )?;
        Ok(p)
    }
}

// ------------------------------------------------------------ wasi:random

impl GuestState {
    fn random_bytes(&mut self, call: &'static str, len: u64) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_REQUEST {
            return Err(Abort::Trap(format!(
                "{call} asked for {len} random bytes, over {MAX_RANDOM_REQUEST}"
            ))
            .into());
        }
        let mut out = vec![0u8; len as usize];
        self.rng.fill(&mut out);
        self.record(call, d(&[&len.to_le_bytes()]), d(&[&out]))?;
        Ok(out)
    }

    fn random_u64(&mut self, call: &'static str) -> wasmtime::Result<u64> {
        let v = self.rng.u64();
        self.record(call, none(), d(&[&v.to_le_bytes()]))?;
        Ok(v)
    }
}

impl wasi::random::random::Host for GuestState {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.random_bytes("wasi:random/random#get-random-bytes", len)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        self.random_u64("wasi:random/random#get-random-u64")
    }
}

impl wasi::random::insecure::Host for GuestState {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        self.random_bytes("wasi:random/insecure#get-insecure-random-bytes", len)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        self.random_u64("wasi:random/insecure#get-insecure-random-u64")
    }
}

impl wasi::random::insecure_seed::Host for GuestState {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        let v = (self.rng.u64(), self.rng.u64());
        self.record(
            "wasi:random/insecure-seed#insecure-seed",
            none(),
            d(&[&v.0.to_le_bytes(), &v.1.to_le_bytes()]),
        )?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drbg_is_deterministic_and_seed_dependent() {
        let mut a = Drbg::new([1; 32]);
        let mut b = Drbg::new([1; 32]);
        let mut c = Drbg::new([2; 32]);
        let (mut x, mut y, mut z) = ([0u8; 100], [0u8; 100], [0u8; 100]);
        a.fill(&mut x);
        b.fill(&mut y[..37]);
        b.fill(&mut y[37..]);
        c.fill(&mut z);
        assert_eq!(x, y, "chunking must not change the stream");
        assert_ne!(x, z);
    }
}
