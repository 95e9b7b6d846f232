//! Capability manifests: what a tool author writes in `capability.toml`.
//!
//! ```toml
//! name = "text-stats"
//! version = "1.0.0"
//! description = "Counts words, lines and characters and lists the top terms"
//! intents = ["count words", "text statistics", "word frequency"]
//!
//! [input]
//! media_type = "text/plain; charset=utf-8"
//!
//! [output]
//! media_type = "application/json"
//! schema = { type = "object", required = ["words", "lines"] }   # or a JSON string
//!
//! [limits]            # defaults for every run of this tool
//! fuel = 200_000_000
//! memory_bytes = 33554432
//! max_input_bytes = 1048576
//!
//! [qos]               # what the descriptor declares
//! latency_ms = 20
//! cost = 1
//!
//! [tiers]             # default: all true
//! canary = true
//! receipts = true
//! replay = true
//!
//! [sandbox]           # default: observes_nan_bits = true
//! observes_nan_bits = false   # runs without NaN canonicalisation
//!
//! [[examples]]        # realistic inputs; `errand pack` runs each (canaries never use them)
//! name = "fox"
//! input = "the quick brown fox jumps over the lazy dog"
//! params = { top = "3" }
//! ```
//!
//! An example's input is `input` (UTF-8 text), `input_hex`, or
//! `input_file` (a path relative to the manifest, inlined by `errand pack`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bounded::{BString, BVec};
use crate::descriptor::{Descriptor, MediaSpec, NetAddr, Qos, Tiers, Version, validate_name};
use crate::digest::Digest;
use crate::identity::PeerId;
use crate::receipt::Param;
use crate::signed::Object;
use crate::time::UnixMillis;

/// A JSON Schema given inline as a table, or as JSON text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SchemaSpec {
    /// JSON text.
    Text(String),
    /// A table, converted to JSON.
    Inline(serde_json::Value),
}

impl SchemaSpec {
    /// The schema as compact JSON text.
    pub fn to_json(&self) -> String {
        match self {
            SchemaSpec::Text(t) => t.clone(),
            SchemaSpec::Inline(v) => v.to_string(),
        }
    }
}

/// A media type with an optional schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaManifest {
    /// The media type.
    pub media_type: String,
    /// A JSON Schema for JSON content.
    #[serde(default)]
    pub schema: Option<SchemaSpec>,
}

/// Default limits for runs of the tool. Unset fields use the host defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestLimits {
    /// Fuel per run.
    pub fuel: Option<u64>,
    /// Largest linear memory, in bytes.
    pub memory_bytes: Option<u64>,
    /// Largest input, in bytes.
    pub max_input_bytes: Option<u64>,
    /// Largest output, in bytes.
    pub max_output_bytes: Option<u64>,
    /// Wall-clock backstop, in milliseconds.
    pub deadline_ms: Option<u64>,
}

/// Declared quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestQos {
    /// Expected latency per invocation, in milliseconds.
    pub latency_ms: Option<u32>,
    /// Cost units per invocation.
    pub cost: Option<u32>,
}

/// What the tool author declares about the tool's behaviour in the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSandbox {
    /// Whether the tool's output can depend on the bits of a NaN (its sign
    /// or payload, seen through a reinterpret, a store or `copysign`).
    /// Unset means it can, and the tool runs with NaN canonicalisation;
    /// `false` lets it run without, which is faster on float-heavy loops
    /// but replays exactly only on the same CPU architecture if the
    /// declaration is wrong.
    pub observes_nan_bits: Option<bool>,
}

/// An example input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    /// A short name.
    pub name: String,
    /// UTF-8 input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Binary input, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_hex: Option<String>,
    /// A file, relative to the manifest (inlined when packed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_file: Option<String>,
    /// Request parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
}

impl Example {
    /// The input bytes, unless it names a file (resolve those first).
    pub fn bytes(&self) -> Result<Vec<u8>, ManifestError> {
        match (&self.input, &self.input_hex, &self.input_file) {
            (Some(t), None, None) => Ok(t.as_bytes().to_vec()),
            (None, Some(h), None) => hex::decode(h.trim()).map_err(|e| ManifestError::Field {
                field: "examples.input_hex",
                problem: format!("example {:?}: {e}", self.name),
            }),
            (None, None, Some(f)) => Err(ManifestError::Field {
                field: "examples.input_file",
                problem: format!(
                    "example {:?} names file {f:?}, which must be read first",
                    self.name
                ),
            }),
            _ => Err(ManifestError::Field {
                field: "examples",
                problem: format!(
                    "example {:?} needs exactly one of input, input_hex, input_file",
                    self.name
                ),
            }),
        }
    }

    /// The parameters as receipt parameters.
    pub fn params(&self) -> Vec<Param> {
        self.params
            .iter()
            .map(|(k, v)| Param {
                key: BString::truncate_from(k),
                value: BString::truncate_from(v),
            })
            .collect()
    }
}

/// A capability manifest (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Capability name.
    pub name: String,
    /// Semantic version, `major.minor.patch`.
    pub version: String,
    /// What it does.
    pub description: String,
    /// Intent keywords and tags.
    #[serde(default)]
    pub intents: Vec<String>,
    /// Input media type.
    pub input: MediaManifest,
    /// Output media type.
    pub output: MediaManifest,
    /// Default run limits.
    #[serde(default)]
    pub limits: ManifestLimits,
    /// Declared QoS.
    #[serde(default)]
    pub qos: ManifestQos,
    /// Supported tiers (default: all).
    #[serde(default)]
    pub tiers: Option<Tiers>,
    /// Declarations about the tool's behaviour in the sandbox.
    #[serde(default)]
    pub sandbox: ManifestSandbox,
    /// Example inputs.
    #[serde(default)]
    pub examples: Vec<Example>,
}

/// A manifest that does not make a valid descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// A field is missing, malformed or over its bound.
    #[error("capability.toml: `{field}` {problem}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

fn field(field: &'static str, problem: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field,
        problem: problem.into(),
    }
}

fn bounded<const N: usize>(name: &'static str, v: &str) -> Result<BString<N>, ManifestError> {
    BString::new(v).map_err(|e| field(name, format!("is too long: {e}")))
}

fn media(name: &'static str, m: &MediaManifest) -> Result<MediaSpec, ManifestError> {
    Ok(MediaSpec {
        media_type: bounded(name, &m.media_type)?,
        schema: m
            .schema
            .as_ref()
            .map(|s| bounded(name, &s.to_json()))
            .transpose()?,
    })
}

/// Where and how a descriptor built from a manifest is published.
#[derive(Debug, Clone)]
pub struct Publication {
    /// The publishing peer.
    pub publisher: PeerId,
    /// The component's digest.
    pub component: Option<Digest>,
    /// Where the publisher listens.
    pub addrs: Vec<NetAddr>,
    /// Sequence number.
    pub seq: u64,
    /// Signing time.
    pub issued_at: UnixMillis,
    /// Lifetime.
    pub ttl_ms: u32,
    /// Declared latency, overriding the manifest (for measured drift).
    pub latency_ms: Option<u32>,
}

impl Manifest {
    /// Whether the tool may observe NaN bits, so must run with NaN
    /// canonicalisation: true unless the manifest declares
    /// `observes_nan_bits = false`.
    pub fn observes_nan_bits(&self) -> bool {
        self.sandbox.observes_nan_bits.unwrap_or(true)
    }

    /// The parsed version.
    pub fn parsed_version(&self) -> Result<Version, ManifestError> {
        self.version
            .parse()
            .map_err(|e: crate::descriptor::ParseVersionError| field("version", e.to_string()))
    }

    /// Checks the manifest; the same checks as [`Manifest::descriptor`].
    pub fn validate(&self) -> Result<(), ManifestError> {
        let p = Publication {
            publisher: PeerId([0; 32]),
            component: None,
            addrs: vec![],
            seq: 0,
            issued_at: UnixMillis(0),
            ttl_ms: crate::descriptor::DEFAULT_TTL_MS,
            latency_ms: None,
        };
        self.descriptor(&p).map(|_| ())?;
        for e in &self.examples {
            if e.input_file.is_none() {
                e.bytes()?;
            }
        }
        Ok(())
    }

    /// The descriptor this manifest publishes as.
    pub fn descriptor(&self, p: &Publication) -> Result<Descriptor, ManifestError> {
        validate_name(&self.name).map_err(|e| field("name", e))?;
        let mut intents = Vec::with_capacity(self.intents.len());
        for i in &self.intents {
            intents.push(bounded("intents", i)?);
        }
        let d = Descriptor {
            publisher: p.publisher,
            name: bounded("name", &self.name)?,
            version: self.parsed_version()?,
            description: bounded("description", &self.description)?,
            intents: BVec::new(intents)
                .map_err(|e| field("intents", format!("has too many tags: {e}")))?,
            input: media("input", &self.input)?,
            output: media("output", &self.output)?,
            component: p.component,
            package: None,
            qos: Qos {
                latency_ms: p.latency_ms.or(self.qos.latency_ms).unwrap_or(100),
                cost: self.qos.cost.unwrap_or(1),
                fuel: self.limits.fuel.unwrap_or(0),
                max_input_bytes: self.limits.max_input_bytes.unwrap_or(0),
            },
            tiers: self.tiers.unwrap_or(Tiers {
                canary: true,
                receipts: true,
                replay: p.component.is_some(),
            }),
            addrs: BVec::new(p.addrs.clone()).map_err(|e| field("addrs", e.to_string()))?,
            seq: p.seq,
            issued_at: p.issued_at,
            ttl_ms: p.ttl_ms,
            withdrawn: false,
        };
        d.validate().map_err(|i| ManifestError::Field {
            field: i.field,
            problem: i.problem,
        })?;
        Ok(d)
    }
}
