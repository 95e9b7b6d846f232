//! # errand-host
//!
//! Errand's execution plane. Tools are WebAssembly components; this crate
//! compiles them once per digest, runs them in a deterministic, locked-down
//! sandbox metered by fuel, records every host call in a hash-chained trace,
//! signs receipts, and replays runs to check receipts.
//!
//! * **Determinism.** NaN canonicalisation wherever a NaN's bits can be
//!   observed (by rewriting the component, see [`nan`]; unless the tool's
//!   manifest declares it never observes NaN bits: see [`NanMode`]), deterministic
//!   relaxed SIMD, no threads. The guest's wall clock reads the invocation time, its
//!   monotonic clock is derived from fuel, and its randomness is seeded from
//!   the request. The same component, input and request replay to the same
//!   output, fuel and trace, byte for byte.
//! * **Grants.** The guest can reach Errand's `host` interface (logging) and
//!   a deterministic WASI subset: clocks, random, in-memory stdio, an empty
//!   environment. Nothing else is reachable: other WASI imports link to stubs
//!   that end the run as *capability denied*, and non-WASI imports are
//!   refused at load time. See [`sandbox`] for the exact list.
//! * **Limits, always on.** Fuel, memory, tables, instances, a wall-clock
//!   backstop, input and output size, trace events and captured stdio. A
//!   guest that breaks one ends *its* run with a typed
//!   [`AbortReason`](errand_core::receipt::AbortReason); the host carries on.
//!   The backstop costs the guest nothing per loop: a run yields to the
//!   calling thread every [`HostConfig::deadline_check_fuel`] units of fuel,
//!   which checks the clock and drops the run once its deadline has passed;
//!   the clock is also checked each time the guest enters the host (a host
//!   function, or wasmtime's own calls out of compiled code, such as string
//!   copies between component instances).
//! * **Compile once.** Components are cached per digest as `InstancePre` on
//!   the pooling allocator, and serialized to disk so a restart does not
//!   recompile.
//!
//! Accepted worlds: Errand tools (`errand:capability/capability`, written
//! with the `errand-guest` crate), and plain WASI commands
//! (`wasi:cli/command`), which read their input from stdin, write their
//! output to stdout, and report their outcome through the exit status.
//!
//! ## Running a tool and signing a receipt
//!
//! ```
//! use errand_core::receipt::{InvocationContext, RequestId};
//! use errand_core::request::Seed;
//! use errand_core::Digest;
//! use errand_core::{SecretKey, UnixMillis};
//! use errand_host::{Host, Invocation, Limits, ReceiptInfo};
//!
//! // A WASI command that copies stdin to stdout would do; here, one that
//! // prints a fixed line, written in the component text format.
//! # let wat = errand_host::testing::ECHO_COMMAND_WAT;
//! let component = wat::parse_str(wat)?;
//! let host = Host::new()?;
//! let prepared = host.prepare(&component)?;
//! let inv = Invocation {
//!     input: b"hello",
//!     request_id: RequestId([1; 16]),
//!     seed: Seed([2; 32]),
//!     context: InvocationContext { time: UnixMillis(1_772_600_000_000), params: Default::default() },
//!     limits: Limits::default(),
//!     keep_trace: true,
//! };
//! let exec = host.run(&prepared, &inv)?;
//! assert!(exec.outcome.is_ok());
//!
//! let key = SecretKey::from_seed([9; 32]);
//! let receipt = host.sign_receipt(
//!     &ReceiptInfo {
//!         executor: &key,
//!         requester: key.peer_id(),
//!         request_id: inv.request_id,
//!         // A local run answers no signed request.
//!         request: Digest::of(b""),
//!         seed: inv.seed,
//!         capability: None,
//!         component: prepared.digest(),
//!         context: inv.context.clone(),
//!         limits: inv.limits,
//!     },
//!     &exec,
//! )?;
//! // Anyone can now check the run by executing it again.
//! let replay =
//!     errand_host::replay(&host, receipt.body(), None, &component, b"hello", None, None)?;
//! assert!(replay.matched());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![allow(unsafe_code)] // only in `host::Host::load_cached` (documented there) and generated bindings

#[allow(missing_docs, unused_variables, unsafe_code, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "errand:capability/sandbox",
        imports: { default: trappable },
        // Polled by `Host::execute`, which checks the wall-clock deadline
        // whenever the run yields (every `HostConfig::deadline_check_fuel`).
        exports: { default: async },
        with: {
            "wasi:io/poll.pollable": crate::sandbox::Pollable,
            "wasi:io/streams.input-stream": crate::sandbox::InputStream,
            "wasi:io/streams.output-stream": crate::sandbox::OutputStream,
            "wasi:io/error.error": crate::sandbox::IoError,
            "wasi:cli/terminal-input.terminal-input": crate::sandbox::Terminal,
            "wasi:cli/terminal-output.terminal-output": crate::sandbox::Terminal,
        },
    });
}

mod evidence;
mod host;
pub mod nan;
mod run;
pub mod sandbox;
pub mod testing;

pub use evidence::{Embed, ReceiptInfo, Replay, ReplayError, evidence, replay};
pub use host::{
    ComponentInfo, Host, HostConfig, HostError, LoadError, MAX_COMPONENT_BYTES,
    MAX_CORE_INSTANCES_PER_COMPONENT, NanMode, Prepared, WASMTIME_VERSION,
};
pub use run::{Abort, Execution, Invocation, Limits, RunError, WorldKind};
