//! A deliberately hostile tool. The input names what it does:
//!
//! | input | behaviour |
//! |---|---|
//! | `loop` | spins forever |
//! | `alloc` | allocates memory until stopped |
//! | `recurse` | recurses without bound |
//! | `big-output` | returns 64 MiB, or the `bytes` parameter's count |
//! | `panic` | panics |
//! | `log-flood` | logs forever |
//! | `log-fields` | logs once with the `fields` parameter's count of empty fields (default 1,000,000) |
//! | `clock-loop` | reads the monotonic clock forever (a host call per iteration) |
//! | `stdout-flood` | prints to stdout forever |
//! | `read-file` | reads `/etc/passwd` |
//! | `read-env` | reads the environment and arguments |
//! | `clock` | reads the wall and monotonic clocks and returns them |
//! | `random` | returns 32 random bytes |
//! | `net` | opens a TCP connection |
//! | `sleep` | sleeps for an hour |
//! | `echo` | returns its input |

use errand_guest::{Context, ToolError, log};

// Unbounded on purpose: this guest exists to overflow the stack.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(n: u64, acc: &mut [u64; 16]) -> u64 {
    acc[(n % 16) as usize] = acc[(n % 16) as usize].wrapping_add(n);
    recurse(n + 1, acc).wrapping_add(acc[((n + 7) % 16) as usize])
}

fn invoke(input: &[u8], ctx: &Context) -> Result<Vec<u8>, ToolError> {
    match input {
        b"loop" => {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        b"alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        b"recurse" => {
            let mut acc = [0u64; 16];
            Ok(recurse(0, &mut acc).to_le_bytes().to_vec())
        }
        b"big-output" => {
            let n = ctx
                .param("bytes")
                .and_then(|b| b.parse().ok())
                .unwrap_or(64 << 20);
            Ok(vec![0x42; n])
        }
        b"panic" => panic!("hostile guest panics on purpose"),
        b"log-flood" => loop {
            log::info("flood", &[("k", "v")]);
        },
        b"log-fields" => {
            let n = ctx
                .param("fields")
                .and_then(|b| b.parse().ok())
                .unwrap_or(1_000_000);
            log::info("", &vec![("", ""); n]);
            Ok(Vec::new())
        }
        b"clock-loop" => loop {
            std::hint::black_box(std::time::Instant::now());
        },
        b"stdout-flood" => loop {
            println!("flooding stdout with a line of text that goes on and on");
        },
        b"read-file" => match std::fs::read("/etc/passwd") {
            Ok(b) => Ok(b),
            Err(e) => Err(ToolError::Failed(format!("read failed: {e}"))),
        },
        b"read-env" => {
            let vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
            let args: Vec<String> = std::env::args().collect();
            Ok(format!("vars={vars:?} args={args:?}").into_bytes())
        }
        b"clock" => {
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let t0 = std::time::Instant::now();
            let mut x = 0u64;
            for i in 0..10_000u64 {
                x = std::hint::black_box(x ^ i);
            }
            let mono = t0.elapsed().as_nanos() as u64;
            Ok(format!("{wall} {mono} {x}").into_bytes())
        }
        b"random" => {
            use std::collections::hash_map::RandomState;
            use std::hash::BuildHasher;
            let a = RandomState::new().hash_one(1u8);
            let b = RandomState::new().hash_one(1u8);
            Ok([a.to_le_bytes(), b.to_le_bytes()].concat())
        }
        b"net" => match std::net::TcpStream::connect("93.184.216.34:80") {
            Ok(_) => Ok(b"connected".to_vec()),
            Err(e) => Err(ToolError::Failed(format!("connect failed: {e}"))),
        },
        b"sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(b"slept".to_vec())
        }
        b"echo" => Ok(input.to_vec()),
        other => Err(ToolError::InvalidInput(format!(
            "unknown attack {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}

errand_guest::export_tool!(invoke);
