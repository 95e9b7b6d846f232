//! Tool input schemas made from descriptors, and arguments checked against
//! them before anything is sent.
//!
//! A capability takes bytes of one media type, plus request parameters
//! (strings by name). Its tool takes an object:
//!
//! ```json
//! { "input": …, "params": { "top": "3" }, "risk": "high" }
//! ```
//!
//! `input` depends on the input media type: for JSON (`application/json`,
//! `*/*+json`) it is the JSON value itself, checked against the schema the
//! descriptor carries if it carries one; for `text/*` it is a string, sent
//! as UTF-8; for anything else it is a base64 string of the bytes.
//! `params` and `risk` are optional.
//!
//! A descriptor's schema is the publisher's and may be any JSON Schema
//! (drafts 4 to 2020-12, up to 16 KiB): it is compiled with
//! [boon](https://docs.rs/boon), which passes the official JSON Schema test
//! suite, never loads a `$ref` from a file or the network, and assumes
//! draft 2020-12 (MCP's default) when the schema names none. It is compiled
//! as a document of its own, so its `$ref`s keep their meaning; the listed
//! `inputSchema` embeds it under `properties.input`, with an `$id` added
//! when it has `$ref`s and no `$id`, for the same reason.

use serde_json::{Map, Value, json};

use errand_core::descriptor::MediaSpec;

/// How a capability's input travels in a tool's `input` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A JSON value, sent as its JSON text.
    Json,
    /// A string, sent as UTF-8.
    Text,
    /// A base64 string, sent decoded.
    Binary,
}

impl InputKind {
    /// The kind for a media type.
    pub fn of(media_type: &str) -> InputKind {
        let e = essence(media_type);
        if is_json(&e) {
            InputKind::Json
        } else if e.starts_with("text/") {
            InputKind::Text
        } else {
            InputKind::Binary
        }
    }
}

/// The part of a media type before any parameters, lower-cased.
pub fn essence(media_type: &str) -> String {
    media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether a media type's essence is JSON.
pub fn is_json(essence: &str) -> bool {
    essence == "application/json" || essence.ends_with("+json")
}

/// A schema that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A descriptor's schema is not JSON.
    #[error("the {which} schema is not JSON: {reason}")]
    NotJson {
        /// `input` or `output`.
        which: &'static str,
        /// The parser's complaint.
        reason: String,
    },
    /// A schema does not compile (malformed, or a `$ref` that does not
    /// resolve inside it).
    #[error("the {which} schema does not compile: {reason}")]
    Compile {
        /// `input`, `output` or `arguments`.
        which: &'static str,
        /// The compiler's complaint.
        reason: String,
    },
}

/// What a tool's arguments and output are checked with.
pub struct Checks {
    schemas: boon::Schemas,
    arguments: boon::SchemaIndex,
    input: Option<boon::SchemaIndex>,
    output: Option<boon::SchemaIndex>,
}

impl std::fmt::Debug for Checks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checks")
            .field("input", &self.input.is_some())
            .field("output", &self.output.is_some())
            .finish_non_exhaustive()
    }
}

/// The most problems one check reports.
const MAX_PROBLEMS: usize = 8;

impl Checks {
    /// Checks a call's arguments: the whole object, then `input` against
    /// the descriptor's schema. Each problem names where it is, as a JSON
    /// pointer into the arguments.
    pub fn arguments(&self, args: &Value) -> Result<(), Vec<String>> {
        if let Err(e) = self.schemas.validate(args, self.arguments) {
            return Err(problems(&e, ""));
        }
        if let (Some(index), Some(input)) = (self.input, args.get("input"))
            && let Err(e) = self.schemas.validate(input, index)
        {
            return Err(problems(&e, "/input"));
        }
        Ok(())
    }

    /// Whether the tool declares an output schema.
    pub fn has_output_schema(&self) -> bool {
        self.output.is_some()
    }

    /// Checks an output against the declared output schema, if any.
    pub fn output(&self, output: &Value) -> Result<(), Vec<String>> {
        match self.output {
            Some(index) => self
                .schemas
                .validate(output, index)
                .map_err(|e| problems(&e, "")),
            None => Ok(()),
        }
    }
}

/// The leaf errors of a validation failure, as `at /input/x: want string,
/// but got number`.
fn problems(e: &boon::ValidationError<'_, '_>, prefix: &str) -> Vec<String> {
    fn walk(e: &boon::ValidationError<'_, '_>, prefix: &str, out: &mut Vec<String>) {
        if e.causes.is_empty() {
            if out.len() < MAX_PROBLEMS {
                let at = format!("{prefix}{}", e.instance_location);
                let at = if at.is_empty() {
                    "the arguments".to_owned()
                } else {
                    format!("`{at}`")
                };
                out.push(format!("at {at}: {}", e.kind));
            }
            return;
        }
        for c in &e.causes {
            walk(c, prefix, out);
        }
    }
    let mut out = Vec::new();
    walk(e, prefix, &mut out);
    if out.is_empty() {
        out.push(format!("{}", e.kind));
    }
    out
}

/// A compiler that loads nothing from outside and defaults to 2020-12.
fn compiler() -> boon::Compiler {
    let mut c = boon::Compiler::new();
    c.set_default_draft(boon::Draft::V2020_12);
    // No scheme at all: a `$ref` to a file or a URL fails to compile
    // instead of reading this machine's files or the network.
    c.use_loader(Box::new(boon::SchemeUrlLoader::new()));
    c
}

fn compile(
    c: &mut boon::Compiler,
    schemas: &mut boon::Schemas,
    which: &'static str,
    url: &str,
    schema: Value,
) -> Result<boon::SchemaIndex, SchemaError> {
    let err = |e: &dyn std::fmt::Display| SchemaError::Compile {
        which,
        reason: format!("{e:#}"),
    };
    c.add_resource(url, schema).map_err(|e| err(&e))?;
    // A publisher's schema must never take the server down: boon asserts
    // (in debug builds) on some schemas it cannot compile, such as a
    // `pattern` whose regex is over its size limit. Such a panic is this
    // schema's compile error; the caller drops `c` and `schemas` with it.
    let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.compile(url, schemas).map_err(|e| format!("{e:#}"))
    }));
    match compiled {
        Ok(r) => r.map_err(|e| err(&e)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the validator gave up".to_owned());
            Err(SchemaError::Compile {
                which,
                reason: format!("cannot compile this schema: {what}"),
            })
        }
    }
}

fn parse(which: &'static str, text: &str) -> Result<Value, SchemaError> {
    serde_json::from_str(text).map_err(|e| SchemaError::NotJson {
        which,
        reason: e.to_string(),
    })
}

/// The `params` argument: request parameters, strings by name.
pub fn params_schema() -> Value {
    json!({
        "type": "object",
        "description": "Request parameters the tool reads, by name (the executor signs them into its receipt).",
        "additionalProperties": { "type": "string" },
    })
}

/// The `risk` argument.
pub fn risk_schema() -> Value {
    json!({
        "type": "string",
        "enum": ["low", "medium", "high"],
        "description": "How much is at stake. It can raise the verification the server is configured with for this tool, never lower it.",
    })
}

/// A tool's listed schemas and the checks made from them.
#[derive(Debug)]
pub struct ToolSchemas {
    /// The listed `inputSchema`.
    pub input: Map<String, Value>,
    /// The listed `outputSchema`: the descriptor's output schema, when the
    /// output is JSON and that schema describes an object.
    pub output: Option<Map<String, Value>>,
    /// The checks.
    pub checks: Checks,
}

/// The schemas of a capability's tool, from its descriptor's input and
/// output specs.
pub fn capability(input: &MediaSpec, output: &MediaSpec) -> Result<ToolSchemas, SchemaError> {
    let media = input.media_type.as_str();
    let kind = InputKind::of(media);
    let publisher = match (kind, input.schema.as_deref()) {
        (InputKind::Json, Some(text)) => Some(parse("input", text)?),
        _ => None,
    };
    let described = |mut v: Value, what: String| {
        if let Some(o) = v.as_object_mut() {
            o.entry("description").or_insert(Value::String(what));
        }
        v
    };
    // What `input` is checked with inside the arguments object: the
    // publisher's schema is checked on its own (see the module docs).
    let (listed_input, checked_input) = match kind {
        InputKind::Json => match &publisher {
            Some(schema) => (listed_publisher_schema(schema), json!(true)),
            None => {
                let any = described(json!({}), format!("The input, as a JSON value ({media})."));
                (any.clone(), any)
            }
        },
        InputKind::Text => {
            let s = described(
                json!({ "type": "string" }),
                format!("The input, as text ({media})."),
            );
            (s.clone(), s)
        }
        InputKind::Binary => {
            let s = described(
                json!({
                    "type": "string",
                    "contentEncoding": "base64",
                    "contentMediaType": essence(media),
                }),
                format!("The input ({media}), base64-encoded."),
            );
            (s.clone(), s)
        }
    };
    let wrapper = |input: Value| {
        let mut properties = Map::new();
        properties.insert("input".into(), input);
        properties.insert("params".into(), params_schema());
        properties.insert("risk".into(), risk_schema());
        let mut m = Map::new();
        m.insert("type".into(), json!("object"));
        m.insert("properties".into(), Value::Object(properties));
        m.insert("required".into(), json!(["input"]));
        m.insert("additionalProperties".into(), json!(false));
        m
    };
    let mut schemas = boon::Schemas::new();
    let mut c = compiler();
    let arguments = compile(
        &mut c,
        &mut schemas,
        "arguments",
        "urn:errand:arguments",
        Value::Object(wrapper(checked_input)),
    )?;
    let input_index = match publisher {
        Some(schema) => Some(compile(
            &mut c,
            &mut schemas,
            "input",
            "urn:errand:input",
            schema,
        )?),
        None => None,
    };
    let output_schema = match output.schema.as_deref() {
        Some(text) if is_json(&essence(&output.media_type)) => {
            let v = parse("output", text)?;
            (v.get("type") == Some(&json!("object"))).then_some(v)
        }
        _ => None,
    };
    let output_index = match &output_schema {
        Some(v) => Some(compile(
            &mut c,
            &mut schemas,
            "output",
            "urn:errand:output",
            v.clone(),
        )?),
        None => None,
    };
    Ok(ToolSchemas {
        input: wrapper(listed_input),
        output: output_schema.and_then(|v| match v {
            Value::Object(o) => Some(o),
            _ => None,
        }),
        checks: Checks {
            schemas,
            arguments,
            input: input_index,
            output: output_index,
        },
    })
}

/// The publisher's input schema as listed: with an `$id` of its own when
/// it has `$ref`s and none, so that they still resolve inside it once it
/// is embedded in the arguments object.
fn listed_publisher_schema(schema: &Value) -> Value {
    let mut v = schema.clone();
    if let Value::Object(o) = &mut v
        && !o.contains_key("$id")
        && schema.to_string().contains("\"$ref\"")
    {
        o.insert("$id".into(), json!("urn:errand:input"));
    }
    v
}

/// Checks for a generic tool whose arguments schema is `schema`.
pub fn generic(schema: &Value) -> Result<Checks, SchemaError> {
    let mut schemas = boon::Schemas::new();
    let mut c = compiler();
    let arguments = compile(
        &mut c,
        &mut schemas,
        "arguments",
        "urn:errand:arguments",
        schema.clone(),
    )?;
    Ok(Checks {
        schemas,
        arguments,
        input: None,
        output: None,
    })
}

/// The bytes a call sends, from its `input` argument (already checked
/// against the schema).
pub fn input_bytes(kind: InputKind, input: &Value) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    match (kind, input) {
        (InputKind::Json, v) => Ok(v.to_string().into_bytes()),
        (InputKind::Text, Value::String(s)) => Ok(s.as_bytes().to_vec()),
        (InputKind::Binary, Value::String(s)) => {
            let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| format!("at `/input`: not valid base64 ({e})"))
        }
        (_, other) => Err(format!(
            "at `/input`: want string, but got {}",
            json_type(other)
        )),
    }
}

/// The JSON type name of a value.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(media: &str, schema: Option<&str>) -> MediaSpec {
        let mut m = MediaSpec::new(media).unwrap();
        m.schema = schema.map(|s| errand_core::bounded::BString::new(s).unwrap());
        m
    }

    /// A publisher's `pattern` over the regex size limit made boon assert
    /// (debug builds), taking `errand mcp` down at start-up.
    #[test]
    fn a_publishers_regex_over_the_size_limit_is_a_schema_error_not_a_panic() {
        let huge = r#"{"type":"object","properties":{"w":{"type":"string","pattern":"[\p{L}\p{N}]{500}"}}}"#;
        let got = capability(
            &spec("application/json", Some(huge)),
            &spec("application/json", None),
        );
        let e = match got {
            Ok(_) => panic!("a schema boon cannot compile was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("input"), "{e}");
    }

    #[test]
    fn text_tools_take_a_string_and_optional_string_params() {
        let s = capability(
            &spec("text/plain; charset=utf-8", None),
            &spec(
                "application/json",
                Some(r#"{"type":"object","required":["words"]}"#),
            ),
        )
        .unwrap();
        assert_eq!(s.input["properties"]["input"]["type"], "string");
        assert!(s.output.is_some());
        let ok = json!({"input": "hello", "params": {"top": "3"}, "risk": "high"});
        s.checks.arguments(&ok).unwrap();
        for (bad, says) in [
            (json!({}), "missing properties 'input'"),
            (
                json!({"input": 3}),
                "at `/input`: want string, but got number",
            ),
            (
                json!({"input": "x", "extra": 1}),
                "additionalProperties 'extra' not allowed",
            ),
            (
                json!({"input": "x", "params": {"top": 3}}),
                "at `/params/top`",
            ),
            (json!({"input": "x", "risk": "extreme"}), "at `/risk`"),
        ] {
            let e = s.checks.arguments(&bad).unwrap_err().join("; ");
            assert!(e.contains(says), "{bad}: {e}");
        }
        s.checks.output(&json!({"words": 1})).unwrap();
        assert!(s.checks.output(&json!({"lines": 1})).is_err());
    }

    #[test]
    fn json_tools_check_input_against_the_publishers_schema_with_its_own_refs() {
        let publisher = r##"{
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "required": ["text"],
            "properties": { "text": { "$ref": "#/definitions/words" } },
            "definitions": { "words": { "type": "string", "minLength": 1 } }
        }"##;
        let s = capability(
            &spec("application/json", Some(publisher)),
            &spec("text/plain", None),
        )
        .unwrap();
        assert_eq!(s.input["properties"]["input"]["$id"], "urn:errand:input");
        assert!(s.output.is_none());
        s.checks
            .arguments(&json!({"input": {"text": "some words"}}))
            .unwrap();
        let e = s
            .checks
            .arguments(&json!({"input": {"text": ""}}))
            .unwrap_err()
            .join("; ");
        assert!(e.contains("at `/input/text`"), "{e}");
        let e = s
            .checks
            .arguments(&json!({"input": {}}))
            .unwrap_err()
            .join("; ");
        assert!(e.contains("at `/input`: missing properties 'text'"), "{e}");
    }

    #[test]
    fn schemas_never_load_files_or_urls() {
        for r in ["file:///etc/passwd", "https://example.com/schema.json"] {
            let publisher = json!({ "$ref": r }).to_string();
            let e = capability(
                &spec("application/json", Some(&publisher)),
                &spec("text/plain", None),
            )
            .unwrap_err();
            assert!(
                matches!(e, SchemaError::Compile { which: "input", .. }),
                "{e}"
            );
        }
    }

    #[test]
    fn binary_inputs_are_base64() {
        let s = capability(&spec("image/png", None), &spec("image/png", None)).unwrap();
        assert_eq!(s.input["properties"]["input"]["contentEncoding"], "base64");
        assert_eq!(
            input_bytes(InputKind::Binary, &json!("aGk=\n")).unwrap(),
            b"hi"
        );
        assert!(input_bytes(InputKind::Binary, &json!("%%%")).is_err());
        assert_eq!(
            input_bytes(InputKind::Json, &json!({"a": [1]})).unwrap(),
            br#"{"a":[1]}"#
        );
    }
}
