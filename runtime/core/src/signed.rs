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

use std::collections::HashMap;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{Identity, IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest as _, Sha512};

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
    /// A requester's signed invocation request ([`crate::request`]).
    SignedRequest,
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
            Kind::SignedRequest => "errand/signed-request",
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
            Kind::SignedRequest => "signed request",
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
            b"errand/signed-request" => Kind::SignedRequest,
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
    #[error(
        "unsupported {kind} format version {found} (this build reads versions {oldest} to {supported})"
    )]
    UnsupportedVersion {
        /// The kind.
        kind: Kind,
        /// The version in the header.
        found: u8,
        /// The newest version this build reads (and the one it writes).
        supported: u8,
        /// The oldest version this build reads.
        oldest: u8,
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
    /// The format version this build writes, and the newest it reads.
    const VERSION: u8;
    /// The oldest format version this build still reads: one whose
    /// encodings are all valid encodings of the current version, which
    /// only added to it (see [`Object::check_version`]).
    const MIN_VERSION: u8 = Self::VERSION;
    /// Checks the invariants the format documents beyond field bounds.
    fn validate(&self) -> Result<(), Invalid>;
    /// Checks that an object read under the older format `version` uses
    /// only what that version has (a variant added since, say). Called,
    /// after [`Object::validate`], only for versions before
    /// [`Object::VERSION`].
    fn check_version(&self, version: u8) -> Result<(), Invalid> {
        let _ = version;
        Ok(())
    }
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

/// Decodes `header || body` as a `T`, returning it, its version, the length
/// of `header || body` and the unread rest.
fn decode_prefix<T: Object>(bytes: &[u8]) -> Result<(T, u8, usize, &[u8]), DecodeError> {
    let (kind, version, body) = split_header(bytes)?;
    if kind != T::KIND {
        return Err(DecodeError::WrongKind {
            expected: T::KIND,
            found: kind,
        });
    }
    if !(T::MIN_VERSION..=T::VERSION).contains(&version) {
        return Err(DecodeError::UnsupportedVersion {
            kind,
            found: version,
            supported: T::VERSION,
            oldest: T::MIN_VERSION,
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
    if version != T::VERSION {
        value
            .check_version(version)
            .map_err(|invalid| DecodeError::Invalid { kind, invalid })?;
    }
    let header_len = bytes.len() - body.len();
    Ok((value, version, header_len + body_len, rest))
}

/// Encodes an unsigned object: `header || postcard(value)`.
pub fn encode<T: Object>(value: &T) -> Result<Vec<u8>, EncodeError> {
    encode_as(value, T::VERSION)
}

/// Encodes an object under format `version`, which must be one this build
/// reads: for re-deriving the bytes an older signature covers.
fn encode_as<T: Object>(value: &T, version: u8) -> Result<Vec<u8>, EncodeError> {
    encode_into(value, version, Vec::with_capacity(256))
}

/// Appends the encoding of `value` under `version` to `out`.
fn encode_into<T: Object>(
    value: &T,
    version: u8,
    mut out: Vec<u8>,
) -> Result<Vec<u8>, EncodeError> {
    let invalid = |invalid| EncodeError::Invalid {
        kind: T::KIND,
        invalid,
    };
    value.validate().map_err(invalid)?;
    if version != T::VERSION {
        value.check_version(version).map_err(invalid)?;
    }
    write_header(T::KIND, version, &mut out);
    // postcard only fails on sequences of unknown length, which none of our
    // types produce; the error is still reported rather than assumed away.
    postcard::to_extend(value, out).map_err(|e| EncodeError::Serialize {
        kind: T::KIND,
        reason: e.to_string(),
    })
}

/// Checks and encodes `value` under `version` ([`encode_as`]) into a
/// per-thread scratch buffer and hands the bytes to `f`: signing an object
/// (or sizing one) allocates nothing.
fn with_encoding<T: Object, R>(
    value: &T,
    version: u8,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, EncodeError> {
    thread_local! {
        static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    // During thread teardown the scratch may be gone: use a fresh buffer.
    let mut buf = SCRATCH.try_with(std::cell::Cell::take).unwrap_or_default();
    buf.clear();
    let buf = encode_into(value, version, buf)?;
    let out = f(&buf);
    // Keep a buffer of ordinary size for the next object; let a huge one go.
    if buf.capacity() <= 64 * 1024 {
        let _ = SCRATCH.try_with(|s| s.set(buf));
    }
    Ok(out)
}

/// The length of a signed object's `header || body`, which [`Signed`] keeps
/// in 32 bits: every object is bounded far below 4 GiB.
fn signed_len<T: Object>(len: usize) -> Result<u32, EncodeError> {
    u32::try_from(len).map_err(|_| EncodeError::Serialize {
        kind: T::KIND,
        reason: format!("{len} bytes is over 4 GiB"),
    })
}

/// `header || postcard(body)` under `version`, re-derived without checks
/// from a body that passed them when its [`Signed`] was built. Decoding
/// accepts only the canonical encoding (it re-encodes and compares), so
/// these are exactly the bytes that were signed or received.
///
/// `len` is their length when the `Signed` was built; `spare` is room for
/// what the caller appends.
fn signed_bytes_of<T: Object>(body: &T, version: u8, len: usize, spare: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + spare);
    write_header(T::KIND, version, &mut out);
    let header = out.len();
    // postcard fails only on sequences of unknown length, which none of our
    // types produce, and the body was encoded once already when its
    // `Signed` was built. Were it ever to fail, the bytes would stop at the
    // header, and no signature would verify over them.
    let out = postcard::to_extend(body, out).unwrap_or_else(|_| {
        let mut out = Vec::with_capacity(header);
        write_header(T::KIND, version, &mut out);
        out
    });
    debug_assert_eq!(
        out.len(),
        len,
        "re-derived {} bytes differ in length",
        T::KIND
    );
    out
}

/// Decodes an unsigned object, rejecting trailing bytes.
pub fn decode<T: Object>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (value, _, _, rest) = decode_prefix::<T>(bytes)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes {
            kind: T::KIND,
            count: rest.len(),
        });
    }
    Ok(value)
}

/// A signed object: the body, the format version it was signed under, and
/// the signature.
///
/// The bytes the signature covers are not kept: they are a function of the
/// body and the version (the encoding is canonical, and decoding refuses any
/// other), so [`Signed::signed_bytes`] re-derives them when they are needed,
/// to verify, hash or send the object. A registry holding a million
/// descriptors keeps each once, decoded, rather than twice.
#[derive(Clone, PartialEq, Eq)]
pub struct Signed<T> {
    body: T,
    signature: Signature,
    /// The length of `header || body` (signed kinds are a few KiB at most).
    signed_len: u32,
    /// The format version: [`Object::VERSION`], or an older one still read.
    version: u8,
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
        let (len, signature) =
            with_encoding(&body, T::VERSION, |bytes| (bytes.len(), key.sign(bytes)))?;
        let signed_len = signed_len::<T>(len)?;
        Ok(Signed {
            body,
            signature,
            signed_len,
            version: T::VERSION,
        })
    }

    /// Builds a well-formed object whose signature is all zeros, so it never
    /// verifies. For simulators that model publishers and registries
    /// exchanging signed objects without paying for ed25519: they exercise
    /// the registry's path after verification ([`crate::discovery::Index::insert_verified`]).
    /// Objects built this way are refused by anything that checks them.
    pub fn with_placeholder_signature(body: T) -> Result<Signed<T>, EncodeError> {
        let signed_len = signed_len::<T>(with_encoding(&body, T::VERSION, <[u8]>::len)?)?;
        Ok(Signed {
            body,
            signature: Signature([0; 64]),
            signed_len,
            version: T::VERSION,
        })
    }

    /// Decodes the structure without checking the signature: for tools that
    /// report each check separately. Use [`Signed::from_bytes`] otherwise.
    pub fn decode(bytes: &[u8]) -> Result<Signed<T>, DecodeError> {
        let (body, version, signed_len, rest) = decode_prefix::<T>(bytes)?;
        let kind = T::KIND;
        let signed_len = u32::try_from(signed_len).map_err(|_| DecodeError::Malformed {
            kind,
            reason: "over 4 GiB",
        })?;
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
            signature: Signature(signature),
            signed_len,
            version,
        })
    }

    /// Decodes and verifies the signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Signed<T>, OpenError> {
        let s = Signed::<T>::decode(bytes)?;
        // The signed bytes are at hand: check over them rather than
        // re-deriving them (they are the same, decoding checked that).
        let checked = match bytes.get(..s.signed_len as usize) {
            Some(signed) => s.body.signer().verify(signed, &s.signature),
            None => s.verify(),
        };
        checked.map_err(|error| OpenError::Signature {
            kind: T::KIND,
            error,
        })?;
        Ok(s)
    }

    /// Checks the signature against the body's signer.
    pub fn verify(&self) -> Result<(), SignatureError> {
        self.body
            .signer()
            .verify(&self.signed_bytes(), &self.signature)
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

    /// The format version it was signed under: [`Object::VERSION`], or an
    /// older one this build still reads.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The bytes the signature covers: `header || body`, re-derived from the
    /// body (see the type's docs).
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes_of(&self.body, self.version, self.signed_len as usize, 0)
    }

    /// The full canonical encoding: `header || body || signature`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = signed_bytes_of(&self.body, self.version, self.signed_len as usize, 64);
        out.extend_from_slice(&self.signature.0);
        out
    }

    /// The length of [`Signed::to_bytes`], without encoding.
    pub fn encoded_len(&self) -> usize {
        self.signed_len as usize + 64
    }

    /// The digest of the full encoding: a stable id for this exact object.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.to_bytes())
    }

    /// The JSON rendering, for people and scripts.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": T::KIND.tag(),
            "version": self.version(),
            "body": to_json_value(&self.body),
            "signature": hex::encode(self.signature.0),
        })
    }

    /// Parses the JSON rendering back, checking that the body encodes under
    /// its stated version (the bytes themselves are re-derived when needed). The
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
        let signed_len = with_encoding(&j.body, j.version, <[u8]>::len)
            .and_then(signed_len::<T>)
            .map_err(|e| JsonError::Syntax(e.to_string()))?;
        Ok(Signed {
            body: j.body,
            signature: j.signature,
            signed_len,
            version: j.version,
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
    if !(T::MIN_VERSION..=T::VERSION).contains(&version) {
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
    if j.version != T::VERSION {
        j.body
            .check_version(j.version)
            .map_err(|e| JsonError::Syntax(e.to_string()))?;
    }
    Ok(j.body)
}

/// A signed object from fuzzer bytes: an arbitrary body that passes its
/// checks, under an arbitrary signature (so it almost never verifies).
#[cfg(feature = "arbitrary")]
impl<'a, T: Signable + arbitrary::Arbitrary<'a>> arbitrary::Arbitrary<'a> for Signed<T> {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let body = T::arbitrary(u)?;
        Signed::arbitrary_with_body(body, u)
    }
}

#[cfg(feature = "arbitrary")]
impl<T: Signable> Signed<T> {
    /// `body` under a signature drawn from `u`; fails when `body` does not
    /// pass its checks.
    pub(crate) fn arbitrary_with_body(
        body: T,
        u: &mut arbitrary::Unstructured<'_>,
    ) -> arbitrary::Result<Signed<T>> {
        let signed_len = with_encoding(&body, T::VERSION, <[u8]>::len)
            .and_then(signed_len::<T>)
            .map_err(|_| arbitrary::Error::IncorrectFormat)?;
        Ok(Signed {
            body,
            signature: Signature(u.arbitrary()?),
            signed_len,
            version: T::VERSION,
        })
    }
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
    /// Why it failed: exactly the error [`PeerId::verify`] gives for that item.
    pub error: SignatureError,
}

/// One signature to check in a batch: the signer, the signed bytes, and the
/// signature.
pub type BatchItem<'a> = (&'a PeerId, &'a [u8], &'a Signature);

/// Batches smaller than this are checked one by one: below it, the fixed
/// cost of the subgroup test ([`verify_batch_raw`]) outweighs what the batch
/// equation saves.
pub const BATCH_MIN: usize = 256;

/// Verifies many signed objects at once. The verdict is that of
/// [`verify_batch_raw`] over each object's signer, signed bytes and
/// signature: `Ok` exactly when every [`Signed::verify`] would pass, and
/// otherwise the first item that fails alone, with its error.
pub fn verify_batch<T: Signable>(items: &[&Signed<T>]) -> Result<(), BatchError> {
    let signers: Vec<PeerId> = items.iter().map(|i| i.body.signer()).collect();
    let messages: Vec<Vec<u8>> = items.iter().map(|i| i.signed_bytes()).collect();
    let raw: Vec<BatchItem<'_>> = items
        .iter()
        .zip(signers.iter().zip(&messages))
        .map(|(item, (signer, message))| (signer, message.as_slice(), &item.signature))
        .collect();
    verify_batch_raw(&raw)
}

/// Verifies many `(signer, message, signature)` triples with the verdict of
/// checking each with [`PeerId::verify`] (ed25519-dalek's `verify_strict`),
/// usually several times faster.
///
/// # Guarantee
///
/// The result is `Ok(())` exactly when every item passes [`PeerId::verify`];
/// otherwise it is `Err` naming the lowest index that fails alone, with the
/// error [`PeerId::verify`] gives for it. Every `Err` comes from a single
/// check, so a rejection is always exact. An `Ok` from the batch equation is
/// wrong only if one of two randomized checks errs, each with probability
/// below 2^-128 over coefficients derived by hashing the batch (the soundness
/// bound of any ed25519 batch verification).
///
/// # How
///
/// A batch equation (ed25519-dalek's `verify_batch` included) does not apply
/// `verify_strict`'s rules: it accepts small-order and non-canonically
/// encoded `R`, and, being a random linear combination of the cofactorless
/// equations, it can accept an item whose error is a small-order point
/// (probability up to 1/2 per item), which `verify_strict` always rejects;
/// dalek's also rejects some valid signatures by mixed-order keys. So an item
/// goes into the batch equation only if
///
/// - its key decodes, is canonically encoded and is not of small order,
/// - `S` is canonical (below the group order),
/// - `R` is canonically encoded, decodes, and is not of small order,
///
/// and every `R` and key in the batch is shown to lie in the prime-order
/// subgroup (by 128 random subset sums, each multiplied by the group order).
/// For such items an error term can only lie in the prime-order subgroup,
/// where the batch equation and `verify_strict` agree. All other items are
/// checked alone, and if the subgroup test or the batch equation fails, every
/// item is checked alone. Batches smaller than [`BATCH_MIN`] are checked one
/// by one from the start.
pub fn verify_batch_raw(items: &[BatchItem<'_>]) -> Result<(), BatchError> {
    let single = |index: usize| -> Result<(), BatchError> {
        let (peer, msg, sig) = items[index];
        peer.verify(msg, sig)
            .map_err(|error| BatchError { index, error })
    };
    if items.len() < BATCH_MIN {
        return (0..items.len()).try_for_each(single);
    }
    let mut eligible: Vec<Screened> = Vec::with_capacity(items.len());
    // The first failure among the items that are checked alone.
    let mut first_bad: Option<BatchError> = None;
    for (index, &(peer, _, sig)) in items.iter().enumerate() {
        match screen(index, peer, sig) {
            Some(s) => eligible.push(s),
            None => {
                if first_bad.is_none() {
                    first_bad = single(index).err();
                }
            }
        }
    }
    if batch_holds(items, &eligible) {
        return first_bad.map_or(Ok(()), Err);
    }
    // Something in the batch fails (or the subgroup test could not vouch
    // for it): give each eligible item before the known failure its own
    // verdict.
    let stop = first_bad.map_or(items.len(), |e| e.index);
    for s in eligible.iter().take_while(|s| s.index < stop) {
        single(s.index)?;
    }
    first_bad.map_or(Ok(()), Err)
}

/// An item that passed [`screen`]: the decoded parts the batch equation uses.
struct Screened {
    index: usize,
    key: VerifyingKey,
    r: EdwardsPoint,
    s: Scalar,
}

/// Whether `bytes` is the canonical encoding of a field element: the
/// 255-bit `y` is below p = 2^255 - 19. (The other non-canonical form, a
/// negative zero `x`, only occurs for the two small-order points with
/// `y = ±1`, which are rejected separately.)
fn canonical_y(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f == 0x7f;
    let middle = bytes[1..31].iter().all(|&b| b == 0xff);
    !(top && middle && bytes[0] >= 0xed)
}

/// Checks every rule `verify_strict` applies besides its equation; `None`
/// sends the item to the single check.
fn screen(index: usize, peer: &PeerId, sig: &Signature) -> Option<Screened> {
    let key = peer.verifying_key().ok()?;
    if !canonical_y(peer.as_bytes()) || key.is_weak() {
        return None;
    }
    let (r_bytes, s_bytes) = sig.0.split_first_chunk::<32>()?;
    let s_bytes: &[u8; 32] = s_bytes.first_chunk::<32>()?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(*s_bytes))?;
    if !canonical_y(r_bytes) {
        return None;
    }
    let r = CompressedEdwardsY(*r_bytes).decompress()?;
    if r.is_small_order() {
        return None;
    }
    Some(Screened { index, key, r, s })
}

/// How many random subset sums the subgroup test checks: each catches a
/// point outside the prime-order subgroup with probability at least 1/2.
const SUBGROUP_TESTS: usize = 128;

/// Whether every screened item satisfies `verify_strict`'s equation, except
/// with probability below 2^-127 (`false` may also mean that some `R` or key
/// has a small-order component, which the caller settles one by one).
///
/// Two randomized checks, with randomness derived by hashing every input
/// (Fiat-Shamir), so the inputs are fixed before it is drawn:
///
/// 1. Subgroup test. A point lies in the prime-order subgroup exactly when
///    its small-order (torsion) component is zero, and adding points adds
///    their torsion components. Each of [`SUBGROUP_TESTS`] random subset sums
///    of all `R`s and keys is multiplied by the group order `l`, which leaves
///    exactly its torsion component. If some point has a nonzero one, each
///    sum misses it with probability at most 1/2 (flipping that point's
///    membership changes the sum).
/// 2. Batch equation, with random 128-bit `z_i`:
///    `[Σ z_i s_i] B = Σ [z_i] R_i + Σ [z_i k_i] A_i`. Once every `R_i` and
///    `A_i` is in the prime-order subgroup, each item's error
///    `[s_i] B - R_i - [k_i] A_i` is too, so the sum vanishes only if every
///    error does, except with probability 2^-128. (ed25519-dalek's batch
///    reduces `z_i k_i` modulo `l`, which is only sound for such keys.)
///    Terms for the same key are merged, so the multiscalar multiplication
///    has one point per item and per distinct key.
fn batch_holds(items: &[BatchItem<'_>], eligible: &[Screened]) -> bool {
    if eligible.is_empty() {
        return true;
    }
    // k_i = H(R || A || M), as verify_strict computes it.
    let hrams: Vec<[u8; 64]> = eligible
        .iter()
        .map(|e| {
            let (peer, msg, sig) = items[e.index];
            let mut h = Sha512::new();
            h.update(&sig.0[..32]);
            h.update(peer.as_bytes());
            h.update(msg);
            h.finalize().into()
        })
        .collect();
    let mut t = Sha512::new();
    t.update(b"errand batch verification v1");
    t.update((eligible.len() as u64).to_le_bytes());
    for (e, hram) in eligible.iter().zip(&hrams) {
        t.update(hram);
        t.update(e.s.as_bytes());
    }
    let seed: [u8; 64] = t.finalize().into();
    let draw = |label: &[u8], i: usize| -> (u128, u128) {
        let mut h = Sha512::new();
        h.update(seed);
        h.update(label);
        h.update((i as u64).to_le_bytes());
        let d: [u8; 64] = h.finalize().into();
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        a.copy_from_slice(&d[..16]);
        b.copy_from_slice(&d[16..32]);
        (u128::from_le_bytes(a), u128::from_le_bytes(b))
    };

    // Points (R_i, then each distinct key) with their subset masks, and
    // the batch equation's coefficients.
    let mut points: Vec<EdwardsPoint> = Vec::with_capacity(eligible.len() + 16);
    let mut masks: Vec<u128> = Vec::with_capacity(eligible.len() + 16);
    let mut coefficients: Vec<Scalar> = Vec::with_capacity(eligible.len() + 17);
    let mut b_coefficient = Scalar::ZERO;
    let mut key_slot: HashMap<[u8; 32], usize> = HashMap::new();
    let mut key_points: Vec<EdwardsPoint> = Vec::new();
    let mut key_coefficients: Vec<Scalar> = Vec::new();
    for (i, (e, hram)) in eligible.iter().zip(&hrams).enumerate() {
        let (z, mask) = draw(b"item", i);
        let z = Scalar::from(z);
        let k = Scalar::from_bytes_mod_order_wide(hram);
        b_coefficient += z * e.s;
        points.push(e.r);
        masks.push(mask);
        coefficients.push(-z);
        let slot = *key_slot.entry(e.key.to_bytes()).or_insert_with(|| {
            key_points.push(e.key.to_edwards());
            key_coefficients.push(Scalar::ZERO);
            key_points.len() - 1
        });
        key_coefficients[slot] -= z * k;
    }
    for (j, p) in key_points.iter().enumerate() {
        points.push(*p);
        masks.push(draw(b"key", j).1);
    }
    if !torsion_free(&points, &masks) {
        return false;
    }
    // [Σ z s] B - Σ [z] R - Σ [z k] A = 0
    let sum = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&b_coefficient)
            .chain(&coefficients)
            .chain(&key_coefficients),
        std::iter::once(&ED25519_BASEPOINT_POINT)
            .chain(&points[..eligible.len()])
            .chain(&key_points),
    );
    sum.is_identity()
}

/// Whether every point's torsion component is zero, checked on
/// [`SUBGROUP_TESTS`] subset sums (bit `j` of `masks[i]`: whether point `i`
/// is in sum `j`). See [`batch_holds`].
fn torsion_free(points: &[EdwardsPoint], masks: &[u128]) -> bool {
    // Four Russians: for each group of GROUP points, tabulate all 2^GROUP
    // subset sums once, then add one table entry to each test sum. About
    // 30 point additions per point instead of 64.
    const GROUP: usize = 6;
    let mut sums = [EdwardsPoint::identity(); SUBGROUP_TESTS];
    let mut table = [EdwardsPoint::identity(); 1 << GROUP];
    for (group, group_masks) in points.chunks(GROUP).zip(masks.chunks(GROUP)) {
        for entry in 1..(1usize << group.len()) {
            let low = entry.trailing_zeros() as usize;
            let rest = entry & (entry - 1);
            table[entry] = if rest == 0 {
                group[low]
            } else {
                table[rest] + group[low]
            };
        }
        for (j, sum) in sums.iter_mut().enumerate() {
            let mut entry = 0usize;
            for (b, m) in group_masks.iter().enumerate() {
                entry |= (((m >> j) & 1) as usize) << b;
            }
            if entry != 0 {
                *sum += &table[entry];
            }
        }
    }
    // [l]P = [l - 1]P + P, with l - 1 = -1 as a canonical scalar.
    let minus_one = -Scalar::ONE;
    sums.iter().all(|p| {
        let times_l =
            EdwardsPoint::vartime_double_scalar_mul_basepoint(&minus_one, p, &Scalar::ZERO) + p;
        times_l.is_identity()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signing goes through a per-thread scratch buffer: whatever was
    /// encoded before (larger, smaller, refused), the signature is over
    /// exactly `encode`'s bytes (`verify` checks it over the re-derived
    /// bytes, which must equal them), and the recorded length is theirs.
    #[test]
    fn signing_encodes_exactly_what_encode_gives_whatever_came_before() {
        let key = crate::testing::key(1);
        let small = crate::testing::descriptor(&key);
        let mut big = small.clone();
        big.description = crate::bounded::BString::truncate_from(&"long ".repeat(200));
        let mut bad = small.clone();
        bad.ttl_ms = 0;
        for d in [&big, &small, &bad, &small, &big] {
            let Ok(expected) = encode(d) else {
                assert!(Signed::sign(d.clone(), &key).is_err());
                assert!(Signed::with_placeholder_signature(d.clone()).is_err());
                continue;
            };
            let signed = Signed::sign(d.clone(), &key).unwrap();
            assert_eq!(signed.signed_bytes(), &expected[..]);
            assert_eq!(signed.encoded_len(), expected.len() + 64);
            signed.verify().unwrap();
            key.peer_id().verify(&expected, signed.signature()).unwrap();
            let placeholder = Signed::with_placeholder_signature(d.clone()).unwrap();
            assert_eq!(placeholder.signed_bytes(), &expected[..]);
            let json =
                Signed::<crate::descriptor::Descriptor>::from_json(&signed.to_json()).unwrap();
            assert_eq!(json.signed_bytes(), &expected[..]);
        }
    }

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
            Kind::SignedRequest,
        ];
        for k in kinds {
            match k {
                Kind::Descriptor
                | Kind::Receipt
                | Kind::Evidence
                | Kind::Package
                | Kind::Authorship
                | Kind::Request
                | Kind::Response
                | Kind::SignedRequest => {}
            }
            assert_eq!(Kind::from_tag(k.tag().as_bytes()), Some(k), "{k:?}");
            assert!(k.tag().len() < 256);
        }
    }
}
