//! The tool set: capabilities found through the registries and in the
//! node's own packages, one tool per capability name and major version.
//!
//! Descriptors are soft state, and so is the tool set. Every refresh asks
//! the registries again; a descriptor seen once is kept until it expires
//! (`issued_at + ttl`) or a newer one of the same publisher and name
//! replaces it, so a tool stays while any executor keeps its descriptor
//! fresh and goes within one TTL of the last one stopping. The node's own
//! packages are listed as long as they are in its packages folder.
//!
//! A tool's description and schemas come from one descriptor of its group:
//! the node's own package if it has one, else the highest version, then
//! the lowest publisher id. Calls go to every executor of the same name and
//! major version whose input and output media types match that descriptor's.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use rmcp::model::{MetaObject, Tool, ToolAnnotations};
use serde_json::json;

use errand_core::descriptor::{Descriptor, Name, SignedDescriptor};
use errand_core::{PeerId, UnixMillis};

use super::names;
use super::schema::{self, Checks, InputKind};

/// One capability tool.
#[derive(Debug)]
pub struct CapabilityTool {
    /// The tool name.
    pub name: String,
    /// The capability name.
    pub capability: String,
    /// The major version.
    pub major: u32,
    /// The descriptor the tool is described by (see the module docs).
    pub descriptor: Descriptor,
    /// How `input` travels.
    pub kind: InputKind,
    /// Argument and output checks.
    pub checks: Checks,
    /// The listed definition.
    pub tool: Tool,
}

/// A capability that has no tool, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The capability and major version, `name@major`.
    pub capability: String,
    /// Why.
    pub reason: String,
}

/// Descriptors seen, as soft state (see the module docs).
#[derive(Debug, Default)]
pub struct Catalog {
    remote: HashMap<(PeerId, Name), SignedDescriptor>,
    own: Vec<Descriptor>,
}

impl Catalog {
    /// Takes in verified, fresh descriptors from a registry answer; a newer
    /// `seq` of the same publisher and name replaces an older one.
    pub fn absorb(&mut self, found: impl IntoIterator<Item = SignedDescriptor>) {
        for d in found {
            let key = (d.body().publisher, d.body().name.clone());
            match self.remote.get(&key) {
                Some(old) if old.body().seq > d.body().seq => {}
                _ => {
                    self.remote.insert(key, d);
                }
            }
        }
    }

    /// Drops the descriptors that are no longer fresh at `now`.
    pub fn expire(&mut self, now: UnixMillis) {
        self.remote
            .retain(|_, d| d.body().check_fresh(now).is_ok() && !d.body().withdrawn);
    }

    /// Replaces the node's own packages' descriptors.
    pub fn set_own(&mut self, own: Vec<Descriptor>) {
        self.own = own;
    }

    /// The capability tools, by tool name, and the capabilities that have
    /// none. `describe` writes a tool's description from its name and
    /// descriptor.
    pub fn tools(
        &self,
        describe: &dyn Fn(&str, &Descriptor) -> String,
    ) -> (BTreeMap<String, Arc<CapabilityTool>>, Vec<Skipped>) {
        // (name, major) → (own?, descriptor), best first after sorting.
        let mut groups: BTreeMap<(String, u32), Vec<(bool, &Descriptor)>> = BTreeMap::new();
        for d in &self.own {
            groups
                .entry((d.name.to_string(), d.version.major))
                .or_default()
                .push((true, d));
        }
        for d in self.remote.values() {
            let b = d.body();
            groups
                .entry((b.name.to_string(), b.version.major))
                .or_default()
                .push((false, b));
        }
        let mut tools = BTreeMap::new();
        let mut skipped = Vec::new();
        for ((capability, major), mut members) in groups {
            members.sort_by(|(own_a, a), (own_b, b)| {
                own_b
                    .cmp(own_a)
                    .then(b.version.cmp(&a.version))
                    .then(a.publisher.0.cmp(&b.publisher.0))
            });
            let Some((_, best)) = members.first() else {
                continue;
            };
            let skip = |reason: String| Skipped {
                capability: format!("{capability}@{major}"),
                reason,
            };
            let Some(name) = names::tool_name(&capability, major) else {
                skipped.push(skip(format!(
                    "its tool name would be over {} characters",
                    names::MAX_TOOL_NAME
                )));
                continue;
            };
            let schemas = match schema::capability(&best.input, &best.output) {
                Ok(s) => s,
                Err(e) => {
                    skipped.push(skip(format!(
                        "{e} (publisher {}); it can still be called with `invoke`",
                        best.publisher
                    )));
                    continue;
                }
            };
            let mut tool = Tool::new(name.clone(), describe(&name, best), schemas.input);
            tool.title = Some(format!("{capability} {major}.x"));
            tool.output_schema = schemas.output.map(Arc::new);
            tool.annotations = Some(ToolAnnotations::new().open_world(true));
            tool.meta = Some(MetaObject(super::object(json!({
                "errand/capability": capability,
                "errand/version": best.version.to_string(),
                "errand/input_type": best.input.media_type.as_str(),
                "errand/output_type": best.output.media_type.as_str(),
            }))));
            tools.insert(
                name.clone(),
                Arc::new(CapabilityTool {
                    name,
                    capability: capability.clone(),
                    major,
                    descriptor: (*best).clone(),
                    kind: InputKind::of(&best.input.media_type),
                    checks: schemas.checks,
                    tool,
                }),
            );
        }
        (tools, skipped)
    }
}

/// The descriptors of the packages in `dir` (the node's own), each checked
/// like the node checks them: the descriptor template's signature and the
/// author's. Packages that fail are logged and left out.
pub fn own_descriptors(dir: &Path) -> Vec<Descriptor> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(path = %dir.display(), error = %e, "cannot read the packages folder");
            return Vec::new();
        }
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "errand"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let loaded = crate::files::read_bounded(&path, 128 << 20)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                crate::packaging::decode_package(&path, &bytes).map_err(|e| e.to_string())
            })
            .and_then(|p| {
                p.descriptor
                    .verify()
                    .map_err(|e| format!("descriptor template signature: {e}"))?;
                p.verify_author()
                    .map_err(|e| format!("author signature: {e}"))?;
                Ok(p.descriptor.body().clone())
            });
        match loaded {
            Ok(d) => out.push(d),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping package");
            }
        }
    }
    out
}
