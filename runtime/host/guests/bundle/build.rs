//! Builds the hostile guest for wasm32-wasip2 and embeds it.

fn main() {
    errand_wasm_build::bundle(
        &[
            ("hostile-guest", "HOSTILE"),
            ("upper-command", "UPPER_COMMAND"),
        ],
        &[
            "runtime/host/guests/hostile",
            "runtime/host/guests/upper-command",
            "guest-sdk",
            "wit",
        ],
    );
}
