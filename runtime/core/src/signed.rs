//! Tagged, versioned, canonical encodings, and signatures over them.
//!
//! Every Errand object on disk or on the wire starts with a header naming what
//! it is and which format version it uses:
//!
//! ```text
//! object        = header body [signature]
//! header        = tag-len:u8 tag:ascii version:u8     e.g. 0x0f "errand/receipt" 0x01
//! body          = postcard(T), canonical
//! signature     = 64 bytes of ed25519, present for signed kinds only
//! ```
//!
//! A signature covers `header || body`, so it is domain-separated by the type
//! tag and the version: a receipt's signature can never verify as a
//! descriptor's, and a version-1 signature never as a version-2 object.
//!
//! Decoding is strict. It rejects an unknown tag, another kind than the one
//! expected, an unknown version, a field over its bound (checked before
//! allocating, see [`crate::bounded`]), trailing bytes, and any encoding other
//! than the canonical one (postcard tolerates overlong varints; we re-encode and
//! compare). Every object also passes its own semantic checks
//! ([`Object::validate`]) before it is handed out.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bounded::{self, BoundViolation};
use crate::digest::Digest;
use crate::identity::{PeerId, SecretKey, Signature, SignatureError};

/// The kinds of tagged object Errand reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A signed capability descriptor ([`crate::descriptor`]).
    Descriptor,
    /// A signed tool receipt ([`crate::receipt`]).
    Receipt,
    /// An evidence package ([`crate::evidence`]).
    Evidence,
    /// A tool package: component, manifest and descriptor template.
    Package,
    /// A tool author's signature over a package ([`crate::package`]).
    Authorship,
    /// A wire request ([`crate::wire`]).
    Request,
    /// A wire response ([`crate::wire`]).
    Response,
}

impl Kind {
    /// The type tag written in the header.
    pub const fn tag(self) -> &'static str {
        match self {
            Kind::Descriptor => "errand/descriptor",
            Kind::Receipt => "errand/receipt",
            Kind::Evidence => "errand/evidence",
            Kind::Package => "errand/package",
            Kind::Authorship => "errand/authorship",
            Kind::Request => "errand/request",
            Kind::Response => "errand/response",
        }
    }

    /// What people call it.
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Descriptor => "capability descriptor",
            Kind::Receipt => "tool receipt",
            Kind::Evidence => "evidence package",
            Kind::Package => "tool package",
            Kind::Authorship => "tool authorship",
            Kind::Request => "wire request",
            Kind::Response => "wire response",
        }
    }

    fn from_tag(tag: &[u8]) -> Option<Kind> {
        // Exhaustive over the tags `tag` produces; the round-trip test in
        // this module checks the two agree for every kind.
        Some(match tag {
            b"errand/descriptor" => Kind::Descriptor,
            b"errand/receipt" => Kind::Receipt,
            b"errand/evidence" => Kind::Evidence,
            b"errand/package" => Kind::Package,
            b"errand/authorship" => Kind::Authorship,
            b"errand/request" => Kind::Request,
            b"errand/response" => Kind::Response,
            _ => return None,
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// A semantic check an object failed: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}` {problem}")]
pub struct Invalid {
    /// The field, as named in the format documentation.
    pub field: &'static str,
    /// What is wrong, phrased to follow the field name.
    pub problem: String,
}

impl Invalid {
    /// An [`Invalid`] for `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Invalid {
        Invalid {
            field,
            problem: problem.into(),
        }
    }
}

/// Why bytes could not be decoded as the expected object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// There were no bytes at all.
    #[error("empty input")]
    Empty,
    /// The header is not one of Errand's type tags.
    #[error("not an errand object: the header names no known kind")]
    NotErrand,
    /// The header names a different kind than the caller expected.
    #[error("expected a {expected}, found a {found}")]
    WrongKind {
        /// What the caller asked for.
        expected: Kind,
        /// What the header says.
        found: Kind,
    },
    /// The header's version is one this build cannot read.
    #[error("unsupported {kind} format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The kind.
        kind: Kind,
        /// The version in the header.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },
    /// The input ends before the object does.
    #[error("truncated {kind}: the input ends early")]
    Truncated {
        /// The kind being decoded.
        kind: Kind,
    },
    /// A field is longer than its documented bound.
    #[error("{kind} has an oversized field: {violation}")]
    OverBound {
        /// The kind being decoded.
        kind: Kind,
        /// Which bound was broken.
        violation: BoundViolation,
    },
    /// The body is not a valid encoding of the kind.
    #[error("malformed {kind}: {reason}")]
    Malformed {
        /// The kind being decoded.
        kind: Kind,
        /// What the decoder tripped over.
        reason: &'static str,
    },
    /// Bytes follow the end of the object.
    #[error("{count} trailing bytes after the {kind}")]
    TrailingBytes {
        /// The kind being decoded.
        kind: Kind,
        /// How many bytes follow it.
        count: usize,
    },
    /// The body decodes, but is not in canonical form.
    #[error("{kind} is not canonically encoded")]
    NonCanonical {
        /// The kind being decoded.
        kind: Kind,
    },
    /// The body decodes, but fails the kind's semantic checks.
    #[error("invalid {kind}: {invalid}")]
    Invalid {
        /// The kind being decoded.
        kind: Kind,
        /// The failed check.
        invalid: Invalid,
    },
}

/// Why an object could not be encoded or signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The object fails its own semantic checks.
    #[error("invalid {kind}: {invalid}")]
    Invalid {
        /// The kind being encoded.
        kind: Kind,
        /// The failed check.
        invalid: Invalid,
    },
    /// The serializer refused the value.
    #[error("could not serialize {kind}: {reason}")]
    Serialize {
        /// The kind being encoded.
        kind: Kind,
        /// The serializer's complaint.
        reason: String,
    },
    /// The signing key is not the peer the object names as its signer.
    #[error("the {kind} names {expected} as its signer, but the key is {actual}")]
    WrongSigner {
        /// The kind being signed.
        kind: Kind,
        /// The signer the object names.
        expected: PeerId,
        /// The key's peer.
        actual: PeerId,
    },
}

/// Why bytes could not be opened as a signed object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The bytes are not a well-formed object.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The object is well formed but its signature does not verify.
    #[error("bad signature on {kind}: {error}")]
    Signature {
        /// The kind.
        kind: Kind,
        /// What went wrong.
        error: SignatureError,
    },
}

/// A tagged, versioned object with semantic checks.
pub trait Object: Serialize + DeserializeOwned {
    /// Which kind it is.
    const KIND: Kind;
    /// The format version this build writes and reads.
    const VERSION: u8;
    /// Checks the invariants the format documents beyond field bounds.
    fn validate(&self) -> Result<(), Invalid>;
}

/// An object that is signed by one of the peers it names.
pub trait Signable: Object {
    /// The peer whose key must sign it.
    fn signer(&self) -> PeerId;
}

/// Reads the header of `bytes`: which kind and version they claim to be.
/// Useful to tell a user they passed the wrong kind of file.
pub fn sniff(bytes: &[u8]) -> Result<(Kind, u8), DecodeError> {
    let (kind, version, _) = split_header(bytes)?;
    Ok((kind, version))
}

fn split_header(bytes: &[u8]) -> Result<(Kind, u8, &[u8]), DecodeError> {
    let (&len, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    let len = usize::from(len);
    if rest.len() < len {
        // Could be a truncated header, could be anything: we cannot tell
        // which kind, so the honest answer is "not ours".
        return Err(DecodeError::NotErrand);
    }
    let (tag, rest) = rest.split_at(len);
    let kind = Kind::from_tag(tag).ok_or(DecodeError::NotErrand)?;
    let (&version, body) = rest.split_first().ok_or(DecodeError::Truncated { kind })?;
    Ok((kind, version, body))
}

fn write_header(kind: Kind, version: u8, out: &mut Vec<u8>) {
    let tag = kind.tag().as_bytes();
    // Tags are short constants; the cast cannot truncate.
    out.push(tag.len() as u8);
    out.extend_from_slice(tag);
    out.push(version);
}

fn map_postcard(kind: Kind, e: postcard::Error) -> DecodeError {
    use postcard::Error as E;
    if let Some(violation) = bounded::take_violation() {
        return DecodeError::OverBound { kind, violation };
    }
    let reason = match e {
        E::DeserializeUnexpectedEnd => return DecodeError::Truncated { kind },
        E::DeserializeBadVarint => "bad varint",
        E::DeserializeBadBool => "bad bool",
        E::DeserializeBadChar => "bad char",
        E::DeserializeBadUtf8 => "a string is not valid UTF-8",
        E::DeserializeBadOption => "bad option tag",
        E::DeserializeBadEnum => "unknown enum variant",
        E::DeserializeBadEncoding => "bad encoding",
        E::SerdeDeCustom => "a field failed to decode",
        _ => "undecodable body",
    };
    DecodeError::Malformed { kind, reason }
}

/// Decodes `header || body` as a `T`, returning it and the unread rest.
fn decode_prefix<T: Object>(bytes: &[u8]) -> Result<(T, usize, &[u8]), DecodeError> {
    let (kind, version, body) = split_header(bytes)?;
    if kind != T::KIND {
        return Err(DecodeError::WrongKind {
            expected: T::KIND,
            found: kind,
        });
    }
    if version != T::VERSION {
        return Err(DecodeError::UnsupportedVersion {
            kind,
            found: version,
            supported: T::VERSION,
        });
    }
    bounded::clear_violation();
    let (value, rest) = postcard::take_from_bytes::<T>(body).map_err(|e| map_postcard(kind, e))?;
    let body_len = body.len() - rest.len();
    // Canonical form: exactly one byte string per value.
    let again = postcard::to_allocvec(&value).map_err(|_| DecodeError::Malformed {
        kind,
        reason: "body does not re-encode",
    })?;
    if again != body[..body_len] {
        return Err(DecodeError::NonCanonical { kind });
    }
    value
        .validate()
        .map_err(|invalid| DecodeError::Invalid { kind, invalid })?;
    let header_len = bytes.len() - body.len();
    Ok((value, header_len + body_len, rest))
}

/// Encodes an unsigned object: `header || postcard(value)`.
pub fn encode<T: Object>(value: &T) -> Result<Vec<u8>, EncodeError> {
    value.validate().map_err(|invalid| EncodeError::Invalid {
        kind: T::KIND,
        invalid,
    })?;
    let mut out = Vec::with_capacity(256);
    write_header(T::KIND, T::VERSION, &mut out);
    // postcard only fails on sequences of unknown length, which none of our
    // types produce; the error is still reported rather than assumed away.
    postcard::to_extend(value, out).map_err(|e| EncodeError::Serialize {
        kind: T::KIND,
        reason: e.to_string(),
    })
}

/// Decodes an unsigned object, rejecting trailing bytes.
pub fn decode<T: Object>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, _, rest) = decode_prefix::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            kind: T::KIND,
            count: rest.len(),
        });
    }
    Ok(value)
}

/// A signed object: the body, its canonical signed bytes, and the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed<T> {
    body: T,
    signed_bytes: Box<[u8]>,
    signature: Signature,
}

impl<T: Signable> Signed<T> {
    /// Signs `body` with `key`, which must be the body's signer.
    pub fn sign(body: T, key: &SecretKey) -> Result<Signed<T>, EncodeError> {
        let actual = key.peer_id();
        if body.signer() != actual {
            return Err(EncodeError::WrongSigner {
                kind: T::KIND,
                expected: body.signer(),
                actual,
            });
        }
        let signed_bytes = encode(&body)?.into_boxed_slice();
        let signature = key.sign(&signed_bytes);
        Ok(Signed {
            body,
            signed_bytes,
            signature,
        })
    }

    /// Builds a well-formed object whose signature is all zeros, so it never
    /// verifies. For simulators that model publishers and registries
    /// exchanging signed objects without paying for ed25519: they exercise
    /// the registry's path after verification ([`crate::discovery::Index::insert_verified`]).
    /// Objects built this way are refused by anything that checks them.
    pub fn with_placeholder_signature(body: T) -> Result<Signed<T>, EncodeError> {
        let signed_bytes = encode(&body)?.into_boxed_slice();
        Ok(Signed {
            body,
            signed_bytes,
            signature: Signature([0; 64]),
        })
    }

    /// Decodes the structure without checking the signature: for tools that
    /// report each check separately. Use [`Signed::from_bytes`] otherwise.
    pub fn decode(bytes: &[u8]) -> Result<Signed<T>, DecodeError> {
        let (body, signed_len, rest) = decode_prefix::<T>(bytes)?;
        let kind = T::KIND;
        let signature: [u8; 64] = match rest.len() {
            64 => rest
                .try_into()
                .map_err(|_| DecodeError::Truncated { kind })?,
            n if n < 64 => return Err(DecodeError::Truncated { kind }),
            n => {
                return Err(DecodeError::TrailingBytes {
                    kind,
                    count: n - 64,
                });
            }
        };
        Ok(Signed {
            body,
            signed_bytes: bytes[..signed_len].into(),
            signature: Signature(signature),
        })
    }

    /// Decodes and verifies the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Signed<T>, OpenError> {
        let s = Signed::decode(bytes)?;
        s.verify().map_err(|error| OpenError::Signature {
            kind: T::KIND,
            error,
        })?;
        Ok(s)
    }

    /// Checks the signature against the body's signer.
    pub fn verify(&self) -> Result<(), SignatureError> {
        self.body
            .signer()
            .verify(&self.signed_bytes, &self.signature)
    }

    /// The body. Only trust it after [`Signed::verify`] (or when the value came
    /// from [`Signed::from_bytes`] or [`Signed::sign`]).
    pub fn body(&self) -> &T {
        &self.body
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The bytes the signature covers: `header || body`.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.signed_bytes
    }

    /// The full canonical encoding: `header || body || signature`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.signed_bytes);
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// The length of [`Signed::to_bytes`].
    pub fn encoded_len(&self) -> usize {
        self.signed_bytes.len() + 64
    }

    /// The digest of the full encoding: a stable id for this exact object.
    pub fn digest(&self) -> Digest {
        let mut h = crate::digest::Hasher::new();
        h.update(&self.signed_bytes).update(&self.signature.0);
        h.finish()
    }

    /// The JSON rendering, for people and scripts.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": T::KIND.tag(),
            "version": T::VERSION,
            "body": to_json_value(&self.body),
            "signature": hex::encode(self.signature.0),
        })
    }

    /// Parses the JSON rendering back, re-deriving the canonical bytes. The
    /// signature is not checked: call [`Signed::verify`].
    pub fn from_json(value: &serde_json::Value) -> Result<Signed<T>, JsonError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct J<B> {
            kind: String,
            version: u8,
            body: B,
            signature: Signature,
        }
        let j: J<T> =
            serde_json::from_value(value.clone()).map_err(|e| JsonError::Syntax(e.to_string()))?;
        check_json_header::<T>(&j.kind, j.version)?;
        let signed_bytes = encode(&j.body)
            .map_err(|e| JsonError::Syntax(e.to_string()))?
            .into_boxed_slice();
        Ok(Signed {
            body: j.body,
            signed_bytes,
            signature: j.signature,
        })
    }
}

/// Why a JSON rendering could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The JSON does not have the expected shape.
    #[error("bad JSON: {0}")]
    Syntax(String),
    /// The `kind` field names another kind.
    #[error("expected a {expected} (`{}`), found kind `{found}`", expected.tag())]
    WrongKind {
        /// What was expected.
        expected: Kind,
        /// What the JSON says.
        found: String,
    },
    /// The `version` field is one this build cannot read.
    #[error("unsupported {kind} version {found}")]
    UnsupportedVersion {
        /// The kind.
        kind: Kind,
        /// The version in the JSON.
        found: u8,
    },
}

fn check_json_header<T: Object>(kind: &str, version: u8) -> Result<(), JsonError> {
    if kind != T::KIND.tag() {
        return Err(JsonError::WrongKind {
            expected: T::KIND,
            found: kind.to_owned(),
        });
    }
    if version != T::VERSION {
        return Err(JsonError::UnsupportedVersion {
            kind: T::KIND,
            found: version,
        });
    }
    Ok(())
}

fn to_json_value<T: Serialize>(v: &T) -> serde_json::Value {
    // Our types serialize to JSON infallibly: map keys are strings and no
    // value is a non-finite float.
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// The JSON rendering of an unsigned object.
pub fn to_json<T: Object>(value: &T) -> serde_json::Value {
    serde_json::json!({
        "kind": T::KIND.tag(),
        "version": T::VERSION,
        "body": to_json_value(value),
    })
}

/// Parses the JSON rendering of an unsigned object.
pub fn from_json<T: Object>(value: &serde_json::Value) -> Result<T, JsonError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct J<B> {
        kind: String,
        version: u8,
        body: B,
    }
    let j: J<T> =
        serde_json::from_value(value.clone()).map_err(|e| JsonError::Syntax(e.to_string()))?;
    check_json_header::<T>(&j.kind, j.version)?;
    j.body
        .validate()
        .map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(j.body)
}

impl<T: fmt::Debug> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("body", &self.body)
            .field("signature", &self.signature)
            .finish()
    }
}

impl<T: Signable> Serialize for Signed<T> {
    /// Embedded in other objects, a signed object is its canonical bytes (a
    /// byte string in postcard) or its JSON rendering.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.to_json().serialize(s)
        } else {
            s.serialize_bytes(&self.to_bytes())
        }
    }
}

impl<'de, T: Signable> Deserialize<'de> for Signed<T> {
    /// Embedded signed objects are decoded structurally; their signatures
    /// are checked by whoever relies on them.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let v = serde_json::Value::deserialize(d)?;
            Signed::from_json(&v).map_err(serde::de::Error::custom)
        } else {
            struct V<T>(std::marker::PhantomData<T>);
            impl<T: Signable> serde::de::Visitor<'_> for V<T> {
                type Value = Signed<T>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    write!(f, "an encoded {}", T::KIND)
                }
                fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signed<T>, E> {
                    // Nested decoding may itself leave a bound violation; the
                    // outer decoder reports it.
                    Signed::decode(v).map_err(|e| {
                        if let DecodeError::OverBound { violation, .. } = e {
                            bounded::set_violation(violation);
                        }
                        E::custom(e)
                    })
                }
            }
            d.deserialize_bytes(V(std::marker::PhantomData))
        }
    }
}

/// A batch verification that failed, naming the first bad item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("item {index} of the batch has a bad signature: {error}")]
pub struct BatchError {
    /// Index of the first item whose signature fails on its own.
    pub index: usize,
    /// Why it failed.
    pub error: SignatureError,
}

/// Verifies many signed objects at once with ed25519 batch verification,
/// which is several times faster than checking each.
///
/// Weak (small-order) keys are rejected up front, matching the strict single
/// check. When the batch fails, the items are checked one by one to name the
/// first bad one.
pub fn verify_batch<T: Signable>(items: &[&Signed<T>]) -> Result<(), BatchError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut keys = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let vk = item.body.signer().verifying_key().map_err(|_| BatchError {
            index,
            error: SignatureError::InvalidKey,
        })?;
        if vk.is_weak() {
            return Err(BatchError {
                index,
                error: SignatureError::InvalidKey,
            });
        }
        keys.push(vk);
    }
    let msgs: Vec<&[u8]> = items.iter().map(|i| &*i.signed_bytes).collect();
    let sigs: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|i| ed25519_dalek::Signature::from_bytes(&i.signature.0))
        .collect();
    if ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok() {
        return Ok(());
    }
    for (index, item) in items.iter().enumerate() {
        item.verify().map_err(|error| BatchError { index, error })?;
    }
    // The batch failed but every item passes alone: only possible for
    // signatures the strict check accepts and the batch equation does not,
    // which ed25519 rules out; report the first as failing to stay safe.
    Err(BatchError {
        index: 0,
        error: SignatureError::Mismatch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind's tag parses back to it. The `match` makes adding a kind
    /// without listing it here a compile error.
    #[test]
    fn every_kind_round_trips_through_its_tag() {
        let kinds = [
            Kind::Descriptor,
            Kind::Receipt,
            Kind::Evidence,
            Kind::Package,
            Kind::Authorship,
            Kind::Request,
            Kind::Response,
        ];
        for k in kinds {
            match k {
                Kind::Descriptor
                | Kind::Receipt
                | Kind::Evidence
                | Kind::Package
                | Kind::Authorship
                | Kind::Request
                | Kind::Response => {}
            }
            assert_eq!(Kind::from_tag(k.tag().as_bytes()), Some(k), "{k:?}");
            assert!(k.tag().len() < 256);
        }
    }
}
