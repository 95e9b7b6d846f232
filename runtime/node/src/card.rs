//! A2A Agent Cards: how an Errand node describes itself to agents that speak
//! [A2A](https://a2a-protocol.org) v1.0, signed with the node's key.
//!
//! `errand card --config node.toml` builds an `AgentCard` from the node's
//! configuration and the packages it hosts ([`from_config`]), and signs it
//! ([`sign`]). The card is for **discovery**: Errand's interface is QUIC with
//! the `errand/1` protocol, which standard A2A clients (HTTP, JSON-RPC,
//! gRPC) cannot call. An agent that finds a card uses Errand's CLI or library
//! to invoke what it lists.
//!
//! ## What is on the card
//!
//! * `name`, `description`, `version`, `provider`, `documentationUrl` and
//!   `iconUrl` from `[card]` in `node.toml` ([`CardConfig`]); without it, a
//!   name and a description made from the peer id and the hosted tools, and
//!   Errand's version.
//! * `supportedInterfaces`: one per advertised address, in order, with the
//!   URL `errand://PEERID@HOST:PORT` ([`interface_url`]), the binding
//!   [`PROTOCOL_BINDING`] and the A2A version [`A2A_VERSION`].
//! * `skills`: one per hosted capability (from the package's manifest: id
//!   and name are the capability name, tags its intents, examples its text
//!   examples, input and output modes its media types), and
//!   [`REGISTRY_SKILL`] when the node is a registry.
//! * `defaultInputModes` and `defaultOutputModes`: every skill's media
//!   types, in order, once each.
//! * `capabilities`: no streaming, no push notifications, and the extension
//!   [`RECEIPTS_EXTENSION`], which declares that every result comes with a
//!   receipt signed by this peer.
//!
//! ## The signature
//!
//! One entry in `signatures[]`, a JWS (RFC 7515) as A2A §8.4 describes:
//!
//! * **payload**: the card without `signatures`, canonicalised with JCS
//!   (RFC 8785). Before canonicalising, empty strings, arrays and objects
//!   (and nulls) are dropped, as the a2a-sdk's verifier does; Errand never
//!   puts any on a card ([`CardError::Empty`]), so the payload is also what
//!   a verifier following the specification's default-value rules computes.
//! * **protected header**: `{"alg":"EdDSA","kid":"PEERID","typ":"JOSE"}`,
//!   itself in JCS form. The `kid` is the signer's peer id, which *is* its
//!   ed25519 public key: [`public_jwk`] gives the same key as a JWK
//!   (RFC 8037) for JOSE libraries.
//! * **signature**: Ed25519 over `BASE64URL(header) '.' BASE64URL(payload)`,
//!   base64url without padding.
//!
//! [`verify`] checks such a card: a signature by its `kid` (or by an
//! expected peer), over the payload recomputed from the card as received,
//! and interfaces that name the signer.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64ct::{Base64UrlUnpadded, Encoding as _};
use errand_core::identity::Signature;
use errand_core::manifest::Manifest;
use errand_core::{PeerId, SecretKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{NodeConfig, PeerAddr};
use crate::packaging;

/// The A2A protocol version the card follows and its interfaces declare.
pub const A2A_VERSION: &str = "1.0";

/// The `protocolBinding` of Errand's interface: QUIC, ALPN `errand/1`,
/// mutual TLS with the peers' ed25519 keys, and Errand's wire messages.
pub const PROTOCOL_BINDING: &str =
    "https://github.com/errand-p2p/errand/blob/main/docs/a2a.md#errand1-binding";

/// The extension that declares signed receipts: every result comes with a
/// receipt signed by the executing peer.
pub const RECEIPTS_EXTENSION: &str =
    "https://github.com/errand-p2p/errand/blob/main/docs/a2a.md#signed-receipts-extension-v1";

/// The URL scheme of Errand interfaces: `errand://PEERID@HOST:PORT`.
pub const URL_SCHEME: &str = "errand";

/// The JWS algorithm of card signatures (RFC 8037: Ed25519).
pub const JWS_ALG: &str = "EdDSA";

/// The JWS `typ` of card signatures, as A2A §8.4.2 recommends.
pub const JWS_TYP: &str = "JOSE";

/// The id of the skill a registry node offers. A capability cannot have
/// this name (capability names have no `:`), so the two never clash.
pub const REGISTRY_SKILL: &str = "errand:registry";

/// Longest example text put on a skill, in characters.
pub const MAX_EXAMPLE_CHARS: usize = 200;

/// `[card]` in `node.toml`: how the node presents itself. Every field is
/// optional; a field that is given must not be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardConfig {
    /// The agent's name [default: `Errand node` and the peer id's start].
    #[serde(default)]
    pub name: Option<String>,
    /// What the agent does [default: made from the hosted tools].
    #[serde(default)]
    pub description: Option<String>,
    /// The agent's version [default: Errand's version].
    #[serde(default)]
    pub version: Option<String>,
    /// An http(s) URL with documentation about the agent.
    #[serde(default)]
    pub documentation_url: Option<String>,
    /// An http(s) URL of an icon for the agent.
    #[serde(default)]
    pub icon_url: Option<String>,
    /// Who runs the agent.
    #[serde(default)]
    pub provider: Option<ProviderConfig>,
}

/// `[card.provider]`: the organisation that runs the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The organisation's name.
    pub organization: String,
    /// An http(s) URL of its website.
    pub url: String,
}

/// An A2A v1.0 `AgentCard`, in its JSON form (camelCase field names).
/// Only the fields Errand fills are here; see the A2A specification for
/// the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCard {
    /// A human-readable name.
    pub name: String,
    /// What the agent does.
    pub description: String,
    /// The agent's version.
    pub version: String,
    /// Where and how to reach the agent, preferred first.
    pub supported_interfaces: Vec<AgentInterface>,
    /// Who runs the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<AgentProvider>,
    /// Documentation about the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    /// An icon for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_url: Option<String>,
    /// Optional A2A features and extensions.
    pub capabilities: AgentCapabilities,
    /// Media types the agent accepts, across skills.
    pub default_input_modes: Vec<String>,
    /// Media types the agent produces, across skills.
    pub default_output_modes: Vec<String>,
    /// What the agent can do.
    pub skills: Vec<AgentSkill>,
    /// JWS signatures over the rest of the card.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<AgentCardSignature>,
}

/// An A2A `AgentInterface`: a URL and the protocol binding spoken there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInterface {
    /// Where: for Errand, `errand://PEERID@HOST:PORT`.
    pub url: String,
    /// How: for Errand, [`PROTOCOL_BINDING`].
    pub protocol_binding: String,
    /// The A2A version: [`A2A_VERSION`].
    pub protocol_version: String,
}

/// An A2A `AgentProvider`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentProvider {
    /// The organisation's name.
    pub organization: String,
    /// Its website.
    pub url: String,
}

/// An A2A `AgentCapabilities`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCapabilities {
    /// Whether the agent streams responses (Errand: explicitly no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<bool>,
    /// Whether the agent sends push notifications (Errand: explicitly no).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_notifications: Option<bool>,
    /// Protocol extensions the agent supports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<AgentExtension>,
}

/// An A2A `AgentExtension`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentExtension {
    /// The extension's URI.
    pub uri: String,
    /// How the agent uses it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Whether clients must understand it (Errand: no, so left out).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// Extension-specific settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
}

/// An A2A `AgentSkill`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSkill {
    /// Unique on the card: the capability name.
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Keywords: the capability's intents.
    pub tags: Vec<String>,
    /// Example inputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// Media types it accepts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_modes: Vec<String>,
    /// Media types it produces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_modes: Vec<String>,
}

/// An A2A `AgentCardSignature`: a JWS in flattened form without payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCardSignature {
    /// The protected header, base64url.
    pub protected: String,
    /// The signature, base64url.
    pub signature: String,
    /// Unprotected header parameters (Errand sets none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Map<String, Value>>,
}

/// Why a card could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The node's key could not be loaded.
    #[error(transparent)]
    Key(#[from] crate::keystore::KeyError),
    /// The packages folder cannot be read.
    #[error("cannot read packages folder {path}: {source}")]
    Packages {
        /// The folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The node hosts no capability and is no registry: no skill to list.
    #[error(
        "nothing to put on the card: the node hosts no usable package{} and is not a registry \
         (A2A requires at least one skill)",
        where_packages(.packages.as_deref())
    )]
    NoSkills {
        /// The packages folder, if one is configured.
        packages: Option<PathBuf>,
    },
    /// An interface address has port 0, which only says "any port".
    #[error(
        "the card would advertise {addr}, but port 0 is picked when the node starts: \
         set `advertise` in node.toml, or a fixed port in `listen`"
    )]
    PortZero {
        /// The address.
        addr: SocketAddr,
    },
    /// A `[card]` setting is empty or malformed.
    #[error("node.toml: `{field}` {problem}")]
    Config {
        /// The setting, e.g. `card.provider.url`.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The card would hold an empty value, which verifiers drop before
    /// checking the signature (so they would check other bytes).
    #[error("the card would hold an empty value at {path}")]
    Empty {
        /// Where, e.g. `skills[0].description`.
        path: String,
    },
    /// The card could not be turned into JSON or canonicalised.
    #[error("cannot encode the card as canonical JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Where [`CardError::NoSkills`] looked.
fn where_packages(dir: Option<&Path>) -> String {
    match dir {
        Some(d) => format!(" in {}", d.display()),
        None => " (`packages` is not set in node.toml)".into(),
    }
}

/// Why a card's signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The text is not a JSON object.
    #[error("not an agent card: {0}")]
    NotACard(String),
    /// The card carries no `signatures`.
    #[error("the card is not signed: it has no `signatures`")]
    Unsigned,
    /// The card cannot be canonicalised, so no signature can cover it.
    #[error("the card has no canonical form: {0}")]
    Canonical(String),
    /// No signature is a valid Ed25519 signature by the peer it names (or
    /// by the expected peer); one reason per signature.
    #[error("no valid signature: {}", .problems.join("; "))]
    Invalid {
        /// What is wrong with each signature, in order.
        problems: Vec<String>,
    },
    /// An `errand://` interface names another peer than the signer.
    #[error("interface {url} names another peer than the signer {signer}")]
    InterfacePeer {
        /// The interface URL.
        url: String,
        /// Who signed the card.
        signer: PeerId,
    },
}

/// What a verified card says, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The peer whose signature verified.
    pub signer: PeerId,
    /// The card's name.
    pub name: String,
    /// The skills' ids.
    pub skills: Vec<String>,
    /// The interfaces' URLs.
    pub interfaces: Vec<String>,
}

/// A package the card leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The package file.
    pub path: PathBuf,
    /// Why it is left out, naming the file.
    pub reason: String,
}

/// A node's signed card, and what it left out.
#[derive(Debug, Clone)]
pub struct NodeCard {
    /// The signed card.
    pub card: AgentCard,
    /// The node's peer id (the signer).
    pub peer: PeerId,
    /// The advertised addresses, in the card's order.
    pub addrs: Vec<SocketAddr>,
    /// Packages in the folder that are not on the card.
    pub skipped: Vec<Skipped>,
}

/// What a card describes; [`build`] turns it into a card.
#[derive(Debug, Clone, Copy)]
pub struct CardInput<'a> {
    /// The node.
    pub peer: PeerId,
    /// Its advertised QUIC addresses, preferred first.
    pub addrs: &'a [SocketAddr],
    /// The manifests of the capabilities it hosts.
    pub tools: &'a [Manifest],
    /// Whether it is also a registry.
    pub registry: bool,
    /// `[card]` from `node.toml`.
    pub config: &'a CardConfig,
}

/// The URL of an Errand interface: `errand://PEERID@HOST:PORT`.
pub fn interface_url(peer: PeerId, addr: SocketAddr) -> String {
    format!("{URL_SCHEME}://{}", PeerAddr { peer, addr })
}

/// The peer and address in an `errand://PEERID@HOST:PORT` URL (what
/// `errand invoke` takes as its target), or `None` for anything else.
pub fn parse_interface_url(url: &str) -> Option<PeerAddr> {
    url.strip_prefix(URL_SCHEME)?
        .strip_prefix("://")?
        .trim_end_matches('/')
        .parse()
        .ok()
}

/// The peer's public key as a JWK (RFC 8037 `OKP`/`Ed25519`), with `kid`
/// the peer id: what a JOSE library needs to check a card signature.
pub fn public_jwk(peer: PeerId) -> Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": Base64UrlUnpadded::encode_string(peer.as_bytes()),
        "kid": peer.to_string(),
        "alg": JWS_ALG,
        "use": "sig",
    })
}

/// A `[card]` string that must be non-empty when given.
fn setting(field: &'static str, v: &Option<String>) -> Result<Option<String>, CardError> {
    match v {
        Some(s) if s.trim().is_empty() => Err(CardError::Config {
            field,
            problem: "is empty: leave it out for the default".into(),
        }),
        Some(s) => Ok(Some(s.clone())),
        None => Ok(None),
    }
}

/// A `[card]` URL: absolute http or https.
fn url_setting(field: &'static str, v: &Option<String>) -> Result<Option<String>, CardError> {
    let v = setting(field, v)?;
    if let Some(u) = &v {
        let rest = u
            .strip_prefix("https://")
            .or_else(|| u.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.chars().any(char::is_whitespace)) {
            return Err(CardError::Config {
                field,
                problem: format!("is {u:?}: give an absolute http:// or https:// URL"),
            });
        }
    }
    Ok(v)
}

/// Pushes `v` unless it is already there.
fn push_once(list: &mut Vec<String>, v: &str) {
    if !list.iter().any(|x| x == v) {
        list.push(v.to_owned());
    }
}

/// A skill's example from a manifest example: its text input, cut to
/// [`MAX_EXAMPLE_CHARS`], and its parameters. Binary inputs are left out.
fn example_text(e: &errand_core::manifest::Example) -> Option<String> {
    let input = e.input.as_deref()?.trim();
    if input.is_empty() {
        return None;
    }
    let mut text: String = input.chars().take(MAX_EXAMPLE_CHARS).collect();
    if input.chars().nth(MAX_EXAMPLE_CHARS).is_some() {
        text.push('…');
    }
    if !e.params.is_empty() {
        let params: Vec<String> = e.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        text.push_str(&format!(" (params: {})", params.join(", ")));
    }
    Some(text)
}

/// The skill of a hosted capability.
fn tool_skill(m: &Manifest) -> AgentSkill {
    let description = if m.description.trim().is_empty() {
        format!("The {} tool, version {}.", m.name, m.version)
    } else {
        m.description.clone()
    };
    let mut tags = Vec::new();
    for i in m.intents.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        push_once(&mut tags, i);
    }
    if tags.is_empty() {
        tags.push(m.name.clone());
    }
    AgentSkill {
        id: m.name.clone(),
        name: m.name.clone(),
        description,
        tags,
        examples: m.examples.iter().filter_map(example_text).collect(),
        input_modes: vec![m.input.media_type.clone()],
        output_modes: vec![m.output.media_type.clone()],
    }
}

/// The skill of a registry node.
fn registry_skill() -> AgentSkill {
    AgentSkill {
        id: REGISTRY_SKILL.into(),
        name: "Capability registry".into(),
        description: "Finds capabilities by intent and constraints among the signed \
                      descriptors that peers publish to this node (what `errand find` asks)."
            .into(),
        tags: vec![
            "registry".into(),
            "discovery".into(),
            "find capabilities".into(),
        ],
        examples: vec!["count words".into(), "generate image".into()],
        input_modes: vec!["text/plain".into()],
        output_modes: vec!["application/json".into()],
    }
}

/// The signed-receipts extension, naming the receipts' signer.
fn receipts_extension(peer: PeerId) -> AgentExtension {
    let mut params = Map::new();
    params.insert("signer".into(), Value::String(peer.to_string()));
    params.insert("algorithm".into(), Value::String("Ed25519".into()));
    AgentExtension {
        uri: RECEIPTS_EXTENSION.into(),
        description: "Every result comes with a receipt signed by this peer's ed25519 key \
                      (the signer below: the peer in the interface URLs and this card's \
                      signature). It binds the signed request, the component's digest and the \
                      output's digest; check it offline with `errand verify`."
            .into(),
        required: false,
        params: Some(params),
    }
}

/// The default description: what the node hosts, and how to reach it.
fn default_description(tools: &[Manifest], registry: bool) -> String {
    let mut d = String::from("An Errand peer");
    match tools.len() {
        0 => {}
        1 => d.push_str(&format!(" hosting the tool {}", tools[0].name)),
        n => {
            let names: Vec<&str> = tools.iter().map(|m| m.name.as_str()).collect();
            d.push_str(&format!(" hosting {n} tools: {}", names.join(", ")));
        }
    }
    if registry {
        d.push_str(if tools.is_empty() {
            " that is a registry: it answers searches for capabilities by intent"
        } else {
            ", and a registry: it answers searches for capabilities by intent"
        });
    }
    d.push_str(
        ". Reach it over QUIC with the errand/1 protocol (see supportedInterfaces), through \
         the errand CLI or library: standard A2A clients cannot call it. Every result comes \
         with a receipt signed by this peer.",
    );
    d
}

/// Builds the (unsigned) card for `input`; see the module docs for what
/// goes where. Pure: no I/O, the same input gives the same card.
pub fn build(input: &CardInput<'_>) -> Result<AgentCard, CardError> {
    let c = input.config;
    let name = setting("card.name", &c.name)?
        .unwrap_or_else(|| format!("Errand node {}", input.peer.short()));
    let description = setting("card.description", &c.description)?
        .unwrap_or_else(|| default_description(input.tools, input.registry));
    let version = setting("card.version", &c.version)?
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned());
    let documentation_url = url_setting("card.documentation_url", &c.documentation_url)?;
    let icon_url = url_setting("card.icon_url", &c.icon_url)?;
    let provider = match &c.provider {
        Some(p) => Some(AgentProvider {
            organization: setting("card.provider.organization", &Some(p.organization.clone()))?
                .unwrap_or_default(),
            url: url_setting("card.provider.url", &Some(p.url.clone()))?.unwrap_or_default(),
        }),
        None => None,
    };

    let mut supported_interfaces = Vec::with_capacity(input.addrs.len());
    for &addr in input.addrs {
        if addr.port() == 0 {
            return Err(CardError::PortZero { addr });
        }
        supported_interfaces.push(AgentInterface {
            url: interface_url(input.peer, addr),
            protocol_binding: PROTOCOL_BINDING.into(),
            protocol_version: A2A_VERSION.into(),
        });
    }

    let mut skills: Vec<AgentSkill> = input.tools.iter().map(tool_skill).collect();
    if input.registry {
        skills.push(registry_skill());
    }
    let (mut default_input_modes, mut default_output_modes) = (Vec::new(), Vec::new());
    for s in &skills {
        for m in &s.input_modes {
            push_once(&mut default_input_modes, m);
        }
        for m in &s.output_modes {
            push_once(&mut default_output_modes, m);
        }
    }

    let card = AgentCard {
        name,
        description,
        version,
        supported_interfaces,
        provider,
        documentation_url,
        icon_url,
        capabilities: AgentCapabilities {
            streaming: Some(false),
            push_notifications: Some(false),
            extensions: vec![receipts_extension(input.peer)],
        },
        default_input_modes,
        default_output_modes,
        skills,
        signatures: Vec::new(),
    };
    // Required arrays (interfaces, skills, modes) must not be empty either:
    // this names the first that is.
    check_no_empty(&serde_json::to_value(&card)?, "")?;
    Ok(card)
}

/// Fails on the first empty string, array or object, or null, in `v`.
fn check_no_empty(v: &Value, path: &str) -> Result<(), CardError> {
    let empty = |path: &str| CardError::Empty {
        path: if path.is_empty() {
            "the top level".into()
        } else {
            path.to_owned()
        },
    };
    match v {
        Value::Null => Err(empty(path)),
        Value::String(s) if s.is_empty() => Err(empty(path)),
        Value::Array(a) if a.is_empty() => Err(empty(path)),
        Value::Object(o) if o.is_empty() => Err(empty(path)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_no_empty(x, &format!("{path}[{i}]"))),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            check_no_empty(x, &p)
        }),
        _ => Ok(()),
    }
}

/// Drops nulls and empty strings, arrays and objects, innermost first, as
/// the a2a-sdk does before canonicalising (`None` if nothing is left).
fn drop_empty(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) => {
            let a: Vec<Value> = a.into_iter().filter_map(drop_empty).collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        Value::Object(o) => {
            let o: Map<String, Value> = o
                .into_iter()
                .filter_map(|(k, x)| drop_empty(x).map(|x| (k, x)))
                .collect();
            (!o.is_empty()).then_some(Value::Object(o))
        }
        other => Some(other),
    }
}

/// The JWS payload of a card in JSON form: without `signatures` and
/// empty values, in JCS (RFC 8785) form.
pub fn payload_of(card: &Value) -> Result<Vec<u8>, serde_json::Error> {
    let mut card = card.clone();
    if let Value::Object(o) = &mut card {
        o.remove("signatures");
    }
    serde_json_canonicalizer::to_vec(&drop_empty(card).unwrap_or(Value::Null))
}

/// The JWS payload of `card`: the bytes its signatures cover.
pub fn signing_payload(card: &AgentCard) -> Result<Vec<u8>, CardError> {
    Ok(payload_of(&serde_json::to_value(card)?)?)
}

/// The protected header of a signature by `peer`, in JCS form.
pub fn protected_header(peer: PeerId) -> Result<Vec<u8>, CardError> {
    let header = serde_json::json!({ "alg": JWS_ALG, "kid": peer.to_string(), "typ": JWS_TYP });
    Ok(serde_json_canonicalizer::to_vec(&header)?)
}

/// The JWS signing input: `BASE64URL(header) '.' BASE64URL(payload)`.
pub fn signing_input(protected_b64: &str, payload: &[u8]) -> String {
    format!(
        "{protected_b64}.{}",
        Base64UrlUnpadded::encode_string(payload)
    )
}

/// Signs `card` with `key`, adding a signature to `signatures` (any already
/// there stay, and are not covered).
pub fn sign(mut card: AgentCard, key: &SecretKey) -> Result<AgentCard, CardError> {
    let payload = signing_payload(&card)?;
    let protected = Base64UrlUnpadded::encode_string(&protected_header(key.peer_id())?);
    let sig = key.sign(signing_input(&protected, &payload).as_bytes());
    card.signatures.push(AgentCardSignature {
        protected,
        signature: Base64UrlUnpadded::encode_string(&sig.0),
        header: None,
    });
    Ok(card)
}

/// Checks one signature over `payload`; returns its signer.
fn check_signature(
    sig: &Value,
    payload: &[u8],
    expected: Option<PeerId>,
) -> Result<PeerId, String> {
    let field = |name: &str| {
        sig.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no `{name}` string"))
    };
    let protected = field("protected")?;
    let header_bytes = Base64UrlUnpadded::decode_vec(protected)
        .map_err(|e| format!("`protected` is not base64url: {e}"))?;
    let header: Map<String, Value> = serde_json::from_slice(&header_bytes)
        .map_err(|e| format!("the protected header is not a JSON object: {e}"))?;
    match header.get("alg").and_then(Value::as_str) {
        Some(JWS_ALG) => {}
        other => return Err(format!("alg is {other:?}, expected {JWS_ALG:?}")),
    }
    if let Some(crit) = header.get("crit") {
        return Err(format!(
            "critical header parameters {crit} are not understood"
        ));
    }
    let kid: PeerId = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or("no `kid` in the protected header")?
        .parse()
        .map_err(|e| format!("kid: {e}"))?;
    if let Some(want) = expected
        && kid != want
    {
        return Err(format!("signed as {kid}, expected {want}"));
    }
    let sig_bytes = Base64UrlUnpadded::decode_vec(field("signature")?)
        .map_err(|e| format!("`signature` is not base64url: {e}"))?;
    let sig: [u8; 64] = sig_bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("the signature has {} bytes, expected 64", b.len()))?;
    kid.verify(
        signing_input(protected, payload).as_bytes(),
        &Signature(sig),
    )
    .map_err(|e| format!("signature by {kid}: {e}"))?;
    Ok(kid)
}

/// Verifies a card in JSON form: at least one signature must be a valid
/// Ed25519 signature, by the peer its `kid` names (and by `expected`, if
/// given), over the payload recomputed from the card as it is; and every
/// `errand://` interface must name that peer.
pub fn verify(card: &Value, expected: Option<PeerId>) -> Result<Verified, VerifyError> {
    let Value::Object(o) = card else {
        return Err(VerifyError::NotACard("the JSON is not an object".into()));
    };
    let sigs = match o.get("signatures") {
        Some(Value::Array(s)) if !s.is_empty() => s,
        _ => return Err(VerifyError::Unsigned),
    };
    let payload = payload_of(card).map_err(|e| VerifyError::Canonical(e.to_string()))?;
    let mut problems = Vec::new();
    let mut signer = None;
    for (i, sig) in sigs.iter().enumerate() {
        match check_signature(sig, &payload, expected) {
            Ok(p) => {
                signer = Some(p);
                break;
            }
            Err(e) => problems.push(format!("signatures[{i}]: {e}")),
        }
    }
    let Some(signer) = signer else {
        return Err(VerifyError::Invalid { problems });
    };
    let strings = |v: Option<&Value>, key: &str| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.get(key).and_then(Value::as_str).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let interfaces = strings(o.get("supportedInterfaces"), "url");
    for url in &interfaces {
        if url.starts_with(&format!("{URL_SCHEME}:"))
            && parse_interface_url(url).is_none_or(|pa| pa.peer != signer)
        {
            return Err(VerifyError::InterfacePeer {
                url: url.clone(),
                signer,
            });
        }
    }
    Ok(Verified {
        signer,
        name: o
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        skills: strings(o.get("skills"), "id"),
        interfaces,
    })
}

/// The manifests of the packages in `dir` that a node would host: `.errand`
/// files in name order whose descriptor template and author signatures
/// verify, the first of each capability name. (The node also compiles each
/// component; a package whose component does not compile is on the card
/// but not hosted.)
pub fn hosted_manifests(dir: &Path) -> Result<(Vec<Manifest>, Vec<Skipped>), CardError> {
    let files = packaging::package_files(dir).map_err(|source| CardError::Packages {
        path: dir.to_owned(),
        source,
    })?;
    let mut manifests: Vec<Manifest> = Vec::new();
    let mut skipped = Vec::new();
    for path in files {
        match read_package_manifest(&path) {
            Ok(m) if manifests.iter().any(|k| k.name == m.name) => skipped.push(Skipped {
                reason: format!(
                    "{}: another package already provides {}",
                    path.display(),
                    m.name
                ),
                path,
            }),
            Ok(m) => manifests.push(m),
            Err(reason) => skipped.push(Skipped { path, reason }),
        }
    }
    Ok((manifests, skipped))
}

/// A package's manifest, once its signatures check out; or why not, naming
/// the file.
fn read_package_manifest(path: &Path) -> Result<Manifest, String> {
    let bytes = crate::files::read_bounded(path, 128 << 20).map_err(|e| e.to_string())?;
    let package = packaging::decode_package(path, &bytes).map_err(|e| e.to_string())?;
    package
        .descriptor
        .verify()
        .map_err(|e| format!("{}: descriptor template signature: {e}", path.display()))?;
    package.verify_author().map_err(|e| {
        format!(
            "{}: author signature of {}: {e}",
            path.display(),
            package.author()
        )
    })?;
    packaging::parse_manifest(path, &package.manifest).map_err(|e| e.to_string())
}

/// The key of the node `config` describes: its `key`, or the default.
pub fn node_key(config: &NodeConfig) -> Result<SecretKey, CardError> {
    let path = match &config.key {
        Some(k) => k.clone(),
        None => crate::keystore::default_key_path()?,
    };
    Ok(crate::keystore::load(&path)?)
}

/// The signed card of the node `config` describes: its key, advertised
/// addresses, hosted packages, registry role and `[card]`.
pub fn from_config(config: &NodeConfig) -> Result<NodeCard, CardError> {
    let key = node_key(config)?;
    let (tools, skipped) = match &config.packages {
        Some(dir) => hosted_manifests(dir)?,
        None => (Vec::new(), Vec::new()),
    };
    if tools.is_empty() && config.registry.is_none() {
        return Err(CardError::NoSkills {
            packages: config.packages.clone(),
        });
    }
    // A node listening on port 0 with nothing to advertise has no address
    // to publish (the node drops port 0 from what it advertises).
    if config.advertise.is_empty() && config.listen.port() == 0 {
        return Err(CardError::PortZero {
            addr: config.listen,
        });
    }
    let addrs = config.advertised(config.listen);
    let card = build(&CardInput {
        peer: key.peer_id(),
        addrs: &addrs,
        tools: &tools,
        registry: config.registry.is_some(),
        config: &config.card,
    })?;
    Ok(NodeCard {
        card: sign(card, &key)?,
        peer: key.peer_id(),
        addrs,
        skipped,
    })
}

/// Whether every address is a loopback one: such a card only helps agents
/// on the same machine.
pub fn loopback_only(addrs: &[SocketAddr]) -> bool {
    addrs.iter().all(|a| a.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TEXT_STATS: &str = r#"
name = "text-stats"
version = "1.0.0"
description = "Counts words"
intents = ["count words", "word frequency", "count words"]
[input]
media_type = "text/plain; charset=utf-8"
[output]
media_type = "application/json"
[[examples]]
name = "fox"
input = "the quick brown fox"
params = { top = "3" }
[[examples]]
name = "bytes"
input_hex = "00ff"
"#;

    const THUMBNAIL: &str = r#"
name = "thumbnail"
version = "2.0.1"
description = ""
[input]
media_type = "image/png"
[output]
media_type = "image/png"
"#;

    fn manifest(text: &str) -> Manifest {
        toml::from_str(text).unwrap()
    }

    fn key() -> SecretKey {
        SecretKey::from_seed([7; 32])
    }

    fn addrs() -> Vec<SocketAddr> {
        vec![
            "127.0.0.1:4434".parse().unwrap(),
            "[::1]:4434".parse().unwrap(),
        ]
    }

    fn config() -> CardConfig {
        CardConfig {
            name: Some("Acme tools".into()),
            version: Some("2.1.0".into()),
            provider: Some(ProviderConfig {
                organization: "Acme".into(),
                url: "https://acme.example".into(),
            }),
            ..CardConfig::default()
        }
    }

    fn signed(config: &CardConfig, registry: bool) -> AgentCard {
        let tools = [manifest(TEXT_STATS), manifest(THUMBNAIL)];
        let card = build(&CardInput {
            peer: key().peer_id(),
            addrs: &addrs(),
            tools: &tools,
            registry,
            config,
        })
        .unwrap();
        sign(card, &key()).unwrap()
    }

    fn as_value(card: &AgentCard) -> Value {
        // What a verifier reads: the card as printed, parsed again.
        serde_json::from_str(&serde_json::to_string_pretty(card).unwrap()).unwrap()
    }

    /// Pins the signing input: what the payload, the protected header and
    /// the signature of a card are, byte for byte. A change here breaks
    /// every card already published, and every verifier's expectations.
    #[test]
    fn golden_signing_input() {
        let card = signed(&config(), true);
        let peer = key().peer_id();
        let payload = String::from_utf8(signing_payload(&card).unwrap()).unwrap();
        let expected = format!(
            concat!(
                r#"{{"capabilities":{{"extensions":[{{"description":"Every result comes with a receipt signed by this peer's ed25519 key (the signer below: the peer in the interface URLs and this card's signature). It binds the signed request, the component's digest and the output's digest; check it offline with `errand verify`.","params":{{"algorithm":"Ed25519","signer":"{peer}"}},"uri":"https://github.com/errand-p2p/errand/blob/main/docs/a2a.md#signed-receipts-extension-v1"}}],"pushNotifications":false,"streaming":false}},"#,
                r#""defaultInputModes":["text/plain; charset=utf-8","image/png","text/plain"],"defaultOutputModes":["application/json","image/png"],"#,
                r#""description":"An Errand peer hosting 2 tools: text-stats, thumbnail, and a registry: it answers searches for capabilities by intent. Reach it over QUIC with the errand/1 protocol (see supportedInterfaces), through the errand CLI or library: standard A2A clients cannot call it. Every result comes with a receipt signed by this peer.","#,
                r#""name":"Acme tools","provider":{{"organization":"Acme","url":"https://acme.example"}},"#,
                r#""skills":[{{"description":"Counts words","examples":["the quick brown fox (params: top=3)"],"id":"text-stats","inputModes":["text/plain; charset=utf-8"],"name":"text-stats","outputModes":["application/json"],"tags":["count words","word frequency"]}},"#,
                r#"{{"description":"The thumbnail tool, version 2.0.1.","id":"thumbnail","inputModes":["image/png"],"name":"thumbnail","outputModes":["image/png"],"tags":["thumbnail"]}},"#,
                r#"{{"description":"Finds capabilities by intent and constraints among the signed descriptors that peers publish to this node (what `errand find` asks).","examples":["count words","generate image"],"id":"errand:registry","inputModes":["text/plain"],"name":"Capability registry","outputModes":["application/json"],"tags":["registry","discovery","find capabilities"]}}],"#,
                r#""supportedInterfaces":[{{"protocolBinding":"https://github.com/errand-p2p/errand/blob/main/docs/a2a.md#errand1-binding","protocolVersion":"1.0","url":"errand://{peer}@127.0.0.1:4434"}},{{"protocolBinding":"https://github.com/errand-p2p/errand/blob/main/docs/a2a.md#errand1-binding","protocolVersion":"1.0","url":"errand://{peer}@[::1]:4434"}}],"#,
                r#""version":"2.1.0"}}"#
            ),
            peer = peer
        );
        assert_eq!(payload, expected);
        let header = String::from_utf8(protected_header(peer).unwrap()).unwrap();
        assert_eq!(
            header,
            format!(r#"{{"alg":"EdDSA","kid":"{peer}","typ":"JOSE"}}"#)
        );
        assert_eq!(card.signatures.len(), 1);
        let s = &card.signatures[0];
        assert_eq!(
            s.protected,
            Base64UrlUnpadded::encode_string(header.as_bytes())
        );
        // Ed25519 is deterministic: the same key and card, the same bytes.
        assert_eq!(s.signature, GOLDEN_SIGNATURE);
        assert_eq!(verify(&as_value(&card), Some(peer)).unwrap().signer, peer);
    }

    const GOLDEN_SIGNATURE: &str =
        "_QWiodLTDEJbMqu-uKDIF8SeeC0X9qELm_OWxAnn5R936eCOmw_k4FURHdQloB-pjB0Pey2c_UVOEpdv7c5YCg";

    #[test]
    fn card_fields_follow_the_node() {
        let card = signed(&CardConfig::default(), false);
        let peer = key().peer_id();
        assert_eq!(card.name, format!("Errand node {}", peer.short()));
        assert_eq!(card.version, env!("CARGO_PKG_VERSION"));
        assert!(
            card.description
                .contains("standard A2A clients cannot call it")
        );
        assert_eq!(card.skills.len(), 2, "no registry skill without [registry]");
        assert_eq!(
            card.supported_interfaces[1].url,
            format!("errand://{peer}@[::1]:4434")
        );
        for i in &card.supported_interfaces {
            assert_eq!(i.protocol_binding, PROTOCOL_BINDING);
            assert_eq!(i.protocol_version, "1.0");
            assert_eq!(parse_interface_url(&i.url).unwrap().peer, peer);
        }
        assert_eq!(card.capabilities.extensions[0].uri, RECEIPTS_EXTENSION);
        assert!(card.provider.is_none());
        // Nothing on a card is empty: a verifier that drops empty values
        // (the a2a-sdk does) checks the same bytes that were signed.
        check_no_empty(&as_value(&card), "").unwrap();
    }

    #[test]
    fn a_card_altered_after_signing_or_signed_by_another_key_is_rejected() {
        let card = signed(&config(), false);
        let peer = key().peer_id();
        let good = as_value(&card);
        assert!(verify(&good, None).is_ok());

        let mut altered = good.clone();
        altered["skills"][0]["tags"][0] = "steal secrets".into();
        assert!(matches!(
            verify(&altered, None),
            Err(VerifyError::Invalid { .. })
        ));

        let other = SecretKey::from_seed([8; 32]);
        let mut unsigned = card.clone();
        unsigned.signatures.clear();
        let theirs = as_value(&sign(unsigned.clone(), &other).unwrap());
        // Signed by another key: not by the expected peer...
        let e = verify(&theirs, Some(peer)).unwrap_err().to_string();
        assert!(e.contains("expected"), "{e}");
        // ...and, taken at its word, its interfaces name someone else.
        assert!(matches!(
            verify(&theirs, None),
            Err(VerifyError::InterfacePeer { .. })
        ));

        // Another key's signature under a header that claims this peer.
        let protected = Base64UrlUnpadded::encode_string(&protected_header(peer).unwrap());
        let payload = signing_payload(&unsigned).unwrap();
        let forged = other.sign(signing_input(&protected, &payload).as_bytes());
        let mut forged_card = unsigned.clone();
        forged_card.signatures.push(AgentCardSignature {
            protected,
            signature: Base64UrlUnpadded::encode_string(&forged.0),
            header: None,
        });
        assert!(matches!(
            verify(&as_value(&forged_card), Some(peer)),
            Err(VerifyError::Invalid { .. })
        ));

        let mut none = good.clone();
        none.as_object_mut().unwrap().remove("signatures");
        assert_eq!(verify(&none, None), Err(VerifyError::Unsigned));
        assert!(matches!(
            verify(&Value::from(3), None),
            Err(VerifyError::NotACard(_))
        ));
    }

    #[test]
    fn only_eddsa_headers_are_accepted() {
        let card = signed(&config(), false);
        let mut v = as_value(&card);
        let peer = key().peer_id();
        let header = format!(r#"{{"alg":"none","kid":"{peer}"}}"#);
        v["signatures"][0]["protected"] =
            Base64UrlUnpadded::encode_string(header.as_bytes()).into();
        let e = verify(&v, None).unwrap_err().to_string();
        assert!(e.contains("alg"), "{e}");
    }

    #[test]
    fn bad_settings_and_addresses_are_named() {
        let tools = [manifest(TEXT_STATS)];
        let (dflt, two) = (CardConfig::default(), addrs());
        let input = |config, addrs| CardInput {
            peer: key().peer_id(),
            addrs,
            tools: &tools,
            registry: false,
            config,
        };
        let blank = CardConfig {
            name: Some("  ".into()),
            ..CardConfig::default()
        };
        let e = build(&input(&blank, &two)).unwrap_err();
        assert!(
            matches!(
                e,
                CardError::Config {
                    field: "card.name",
                    ..
                }
            ),
            "{e}"
        );
        let relative = CardConfig {
            documentation_url: Some("docs/a2a.md".into()),
            ..CardConfig::default()
        };
        let e = build(&input(&relative, &two)).unwrap_err();
        assert!(
            matches!(
                e,
                CardError::Config {
                    field: "card.documentation_url",
                    ..
                }
            ),
            "{e}"
        );
        let any_port = ["127.0.0.1:0".parse().unwrap()];
        let e = build(&input(&dflt, &any_port)).unwrap_err();
        assert!(matches!(e, CardError::PortZero { .. }), "{e}");
        let e = build(&input(&dflt, &[])).unwrap_err();
        assert!(
            matches!(&e, CardError::Empty { path } if path == "supportedInterfaces"),
            "{e}"
        );
        let nothing = CardInput {
            tools: &[],
            ..input(&dflt, &two)
        };
        assert!(matches!(build(&nothing), Err(CardError::Empty { .. })));
    }

    #[test]
    fn jwk_and_interface_urls_round_trip() {
        let peer = key().peer_id();
        let jwk = public_jwk(peer);
        let x = Base64UrlUnpadded::decode_vec(jwk["x"].as_str().unwrap()).unwrap();
        assert_eq!(x, peer.as_bytes());
        assert_eq!(jwk["kid"], peer.to_string());
        for a in addrs() {
            let url = interface_url(peer, a);
            assert_eq!(parse_interface_url(&url), Some(PeerAddr { peer, addr: a }));
        }
        assert_eq!(parse_interface_url("https://example.com"), None);
        assert_eq!(parse_interface_url(&format!("errand://{peer}")), None);
    }

    /// RFC 8785's own examples (§3.2.2 and §3.2.3): the canonicaliser
    /// formats numbers as ECMAScript does, escapes only what it must, and
    /// sorts keys by UTF-16 code units.
    #[test]
    fn jcs_matches_rfc_8785_examples() {
        let input = r#"{
          "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#;
        let v: Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            String::from_utf8(serde_json_canonicalizer::to_vec(&v).unwrap()).unwrap(),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        let sorting = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let v: Value = serde_json::from_str(sorting).unwrap();
        let out = String::from_utf8(serde_json_canonicalizer::to_vec(&v).unwrap()).unwrap();
        let order: Vec<&str> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
        .to_vec();
        let mut at = 0;
        for name in order {
            let i = out[at..]
                .find(name)
                .unwrap_or_else(|| panic!("{name} out of order in {out}"));
            at += i;
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            (-1e15f64..1e15).prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                prop::collection::btree_map(any::<String>(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z ]{0,12}",
            any::<String>(),
            Just("€ 😀 \"quoted\" \\ \u{7f} \u{1}".to_owned()),
        ]
    }

    proptest! {
        /// Canonical JSON is a fixed point: canonicalising its own output,
        /// or a pretty-printed copy of the value, gives the same bytes.
        #[test]
        fn canonical_form_is_stable(v in json_value()) {
            let c = serde_json_canonicalizer::to_vec(&v).unwrap();
            let again: Value = serde_json::from_slice(&c).unwrap();
            prop_assert_eq!(&serde_json_canonicalizer::to_vec(&again).unwrap(), &c);
            let pretty: Value =
                serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
            prop_assert_eq!(serde_json_canonicalizer::to_vec(&pretty).unwrap(), c);
        }

        /// Whatever the manifests and settings say, the card holds no
        /// empty value, and its signature verifies on the card as printed
        /// and read back: the signing input survives the file.
        #[test]
        fn any_card_verifies_after_a_round_trip(
            description in text(),
            intents in prop::collection::vec(text(), 0..4),
            example in text(),
            name in prop::option::of("[A-Za-z0-9 ,.€😀]{0,20}[A-Za-z€😀]"),
            registry in any::<bool>(),
        ) {
            let mut m = manifest(TEXT_STATS);
            m.description = description;
            m.intents = intents;
            m.examples[0].input = Some(example);
            let config = CardConfig { name, ..CardConfig::default() };
            let card = build(&CardInput {
                peer: key().peer_id(),
                addrs: &addrs(),
                tools: &[m],
                registry,
                config: &config,
            })
            .unwrap();
            let card = sign(card, &key()).unwrap();
            let v = as_value(&card);
            prop_assert!(check_no_empty(&v, "").is_ok());
            prop_assert_eq!(payload_of(&v).unwrap(), signing_payload(&card).unwrap());
            prop_assert_eq!(verify(&v, Some(key().peer_id())).unwrap().signer, key().peer_id());
        }
    }
}
