//! Builds the example tools for wasm32-wasip2 and embeds them.

fn main() {
    errand_wasm_build::bundle(
        &[
            ("imagegen", "IMAGEGEN"),
            ("publish", "PUBLISH"),
            ("thumbnail", "THUMBNAIL"),
            ("markdown", "MARKDOWN"),
            ("text-stats", "TEXT_STATS"),
        ],
        &[
            "examples/tools/imagegen",
            "examples/tools/publish",
            "examples/tools/thumbnail",
            "examples/tools/markdown",
            "examples/tools/text-stats",
            "guest-sdk",
            "wit",
        ],
    );
}
