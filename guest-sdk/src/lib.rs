//! # errand-guest
//!
//! Write an Errand tool as one plain Rust function and one macro line; build
//! it with `cargo build --target wasm32-wasip2 --release` and the result is a
//! WebAssembly component that any Errand node can run, meter, trace and sign
//! receipts for.
//!
//! ## A complete tool
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "shout"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! errand-guest = "0.1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use errand_guest::{Context, ToolError, log};
//!
//! /// Upper-cases UTF-8 text, optionally adding a `suffix` parameter.
//! fn shout(input: &[u8], ctx: &Context) -> Result<Vec<u8>, ToolError> {
//!     let text = std::str::from_utf8(input)
//!         .map_err(|_| ToolError::InvalidInput("input must be UTF-8 text".into()))?;
//!     log::info("shouting", &[("bytes", &input.len().to_string())]);
//!     let mut out = text.to_uppercase();
//!     out.push_str(ctx.param("suffix").unwrap_or("!"));
//!     Ok(out.into_bytes())
//! }
//!
//! errand_guest::export_tool!(shout);
//! ```
//!
//! Then `cargo build --target wasm32-wasip2 --release` writes
//! `target/wasm32-wasip2/release/shout.wasm`, and
//! `errand run shout.wasm --input in.txt` runs it.
//!
//! ## What a tool can do
//!
//! A tool sees its input bytes and a [`Context`]: the request id, the
//! invocation time and the request's parameters. It can log through [`log`].
//! The Rust standard library works, but the sandbox is locked down and
//! deterministic: there is no filesystem, network, environment or argument
//! list; the clock reads the invocation time; randomness is seeded from the
//! request, so a replay sees the same numbers. Every call to the host is
//! recorded in the run's trace, and the run is metered by fuel.
//!
//! Return [`ToolError::InvalidInput`] for input the tool will never accept
//! and [`ToolError::Failed`] for work it could not complete. A panic is a
//! *trap*, not a tool error: the host ends the run and reports it as such.

// The generated bindings name this crate by its absolute path, so that the
// export macro works from tool crates; make that path resolve here too.
extern crate self as errand_guest;

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

/// Generated bindings for the `errand:capability` world.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "capability",
        pub_export_macro: true,
        export_macro_name: "__export_errand_capability",
        default_bindings_module: "::errand_guest::bindings",
        runtime_path: "::errand_guest::__wit_bindgen::rt",
    });
}

use bindings::errand::capability::types as wit;

/// What a tool knows about a request besides its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The requester's 16-byte nonce.
    pub request_id: Vec<u8>,
    /// The invocation time in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Request parameters, in the order given.
    pub params: Vec<(String, String)>,
}

impl Context {
    /// The value of parameter `key`, if given.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A tool's own error: the run completed and the tool said no.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolError {
    /// The input is not acceptable; retrying it will not help.
    InvalidInput(String),
    /// The tool could not complete the work.
    Failed(String),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::InvalidInput(m) => write!(f, "invalid input: {m}"),
            ToolError::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

impl std::error::Error for ToolError {}

/// Structured logging to the host. Each call is a trace event.
pub mod log {
    use crate::bindings::errand::capability::host::{self, Level};

    fn emit(level: Level, message: &str, fields: &[(&str, &str)]) {
        let fields: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        host::log(level, message, &fields);
    }

    /// Logs at trace level.
    pub fn trace(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Trace, message, fields)
    }
    /// Logs at debug level.
    pub fn debug(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Debug, message, fields)
    }
    /// Logs at info level.
    pub fn info(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Info, message, fields)
    }
    /// Logs at warn level.
    pub fn warn(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Warn, message, fields)
    }
    /// Logs at error level.
    pub fn error(message: &str, fields: &[(&str, &str)]) {
        emit(Level::Error, message, fields)
    }
}

#[doc(hidden)]
pub fn __invoke(
    f: impl FnOnce(&[u8], &Context) -> Result<Vec<u8>, ToolError>,
    input: Vec<u8>,
    ctx: wit::RequestContext,
) -> Result<Vec<u8>, wit::ToolError> {
    let ctx = Context {
        request_id: ctx.request_id,
        time_ms: ctx.time_ms,
        params: ctx.params.into_iter().map(|p| (p.key, p.value)).collect(),
    };
    f(&input, &ctx).map_err(|e| match e {
        ToolError::InvalidInput(m) => wit::ToolError::InvalidInput(m),
        ToolError::Failed(m) => wit::ToolError::Failed(m),
    })
}

/// Exports `f: fn(&[u8], &Context) -> Result<Vec<u8>, ToolError>` as the
/// component's `invoke`. Use it once, at the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_tool {
    ($f:expr) => {
        // Exports exist only in the WebAssembly build: natively the crate
        // is an ordinary library whose functions unit tests can call.
        #[cfg(target_family = "wasm")]
        const _: () = {
            struct __ErrandTool;

            impl $crate::bindings::exports::errand::capability::tool::Guest for __ErrandTool {
                fn invoke(
                    input: ::std::vec::Vec<u8>,
                    ctx: $crate::bindings::errand::capability::types::RequestContext,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<u8>,
                    $crate::bindings::errand::capability::types::ToolError,
                > {
                    $crate::__invoke($f, input, ctx)
                }
            }

            $crate::bindings::__export_errand_capability!(__ErrandTool with_types_in $crate::bindings);
        };
        // Keep `f` used natively too.
        #[cfg(not(target_family = "wasm"))]
        const _: fn(&[u8], &$crate::Context) -> ::std::result::Result<::std::vec::Vec<u8>, $crate::ToolError> = $f;
    };
}
