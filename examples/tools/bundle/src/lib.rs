//! The example tools, built as `wasm32-wasip2` components and embedded with
//! their `capability.toml` manifests, so the CLI's `demo` and the tests can
//! run them without a separate build step.
//!
//! ```
//! let tool = errand_example_tools::get("text-stats").unwrap();
//! assert_eq!(&tool.component[..4], b"\0asm");
//! assert!(tool.manifest.contains("name = \"text-stats\""));
//! ```

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// An example tool: its component and manifest.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The capability name.
    pub name: &'static str,
    /// The WebAssembly component.
    pub component: &'static [u8],
    /// The `capability.toml` text.
    pub manifest: &'static str,
}

/// All the example tools.
pub const ALL: [Tool; 5] = [
    Tool {
        name: "imagegen",
        component: IMAGEGEN,
        manifest: include_str!("../../imagegen/capability.toml"),
    },
    Tool {
        name: "publish",
        component: PUBLISH,
        manifest: include_str!("../../publish/capability.toml"),
    },
    Tool {
        name: "thumbnail",
        component: THUMBNAIL,
        manifest: include_str!("../../thumbnail/capability.toml"),
    },
    Tool {
        name: "markdown",
        component: MARKDOWN,
        manifest: include_str!("../../markdown/capability.toml"),
    },
    Tool {
        name: "text-stats",
        component: TEXT_STATS,
        manifest: include_str!("../../text-stats/capability.toml"),
    },
];

/// The example tool called `name`.
pub fn get(name: &str) -> Option<Tool> {
    ALL.into_iter().find(|t| t.name == name)
}
