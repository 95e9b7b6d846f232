//! A plain WASI command, written without the Errand SDK: reads stdin,
//! writes it upper-cased to stdout, and exits with status 3 when the input
//! is `fail` (after a message on stderr).

use std::io::{Read, Write};

fn main() {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        eprintln!("stdin is not UTF-8");
        std::process::exit(2);
    }
    if input.trim() == "fail" {
        eprintln!("asked to fail");
        std::process::exit(3);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(input.to_uppercase().as_bytes());
}
