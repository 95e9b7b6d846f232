//! Length-bounded strings, lists and byte strings.
//!
//! Every variable-length field of a signed object has a documented bound. The
//! bound is part of the field's type, and decoding checks it *before*
//! allocating: a peer that declares a four-gigabyte string costs us nothing but
//! the length prefix. In postcard the types are plain strings, sequences and
//! byte strings; in JSON, [`BBytes`] is a lowercase hex string.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::Arc;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// What kind of field broke its bound, for [`BoundViolation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A UTF-8 string.
    String,
    /// A list of values.
    List,
    /// A byte string.
    Bytes,
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldKind::String => "string",
            FieldKind::List => "list",
            FieldKind::Bytes => "byte string",
        })
    }
}

/// A field longer than its documented bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {kind} of length {len} exceeds its bound of {max}")]
pub struct BoundViolation {
    /// What kind of field it was.
    pub kind: FieldKind,
    /// The length it declared.
    pub len: usize,
    /// Its bound.
    pub max: usize,
}

thread_local! {
    // postcard's error type drops custom messages, so the bounded types leave
    // the details of a violation here for `signed::decode` to pick up.
    static LAST_VIOLATION: Cell<Option<BoundViolation>> = const { Cell::new(None) };
}

pub(crate) fn take_violation() -> Option<BoundViolation> {
    LAST_VIOLATION.with(|c| c.take())
}

pub(crate) fn set_violation(v: BoundViolation) {
    LAST_VIOLATION.with(|c| c.set(Some(v)));
}

pub(crate) fn clear_violation() {
    LAST_VIOLATION.with(|c| c.set(None));
}

fn violation<E: de::Error>(kind: FieldKind, len: usize, max: usize) -> E {
    let v = BoundViolation { kind, len, max };
    LAST_VIOLATION.with(|c| c.set(Some(v)));
    E::custom(v)
}

/// A UTF-8 string of at most `MAX` bytes.
///
/// Immutable and shared: a clone is a reference count, not a copy, so
/// the many descriptors that carry the same words (a publisher's refreshes,
/// a simulated network's peers of one kind) hold one copy of them, and
/// comparing two clones compares pointers first. Equality, order and
/// hashing are the string's.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BString<const MAX: usize>(Arc<str>);

impl<const MAX: usize> BString<MAX> {
    /// The bound, in bytes.
    pub const MAX: usize = MAX;

    /// Wraps `s`, or says how far over the bound it is.
    pub fn new(s: impl Into<String>) -> Result<Self, BoundViolation> {
        let s = s.into();
        if s.len() > MAX {
            return Err(BoundViolation {
                kind: FieldKind::String,
                len: s.len(),
                max: MAX,
            });
        }
        Ok(BString(s.into()))
    }

    /// Wraps `s`, cutting it at the last character boundary within the bound.
    pub fn truncate_from(s: &str) -> Self {
        let mut end = s.len().min(MAX);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        BString(s[..end].into())
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The owned string (a copy).
    pub fn into_string(self) -> String {
        self.0.as_ref().to_owned()
    }
}

impl<const MAX: usize> Deref for BString<MAX> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for BString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<const MAX: usize> fmt::Display for BString<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const MAX: usize> TryFrom<&str> for BString<MAX> {
    type Error = BoundViolation;
    fn try_from(s: &str) -> Result<Self, BoundViolation> {
        BString::new(s)
    }
}

impl<const MAX: usize> TryFrom<String> for BString<MAX> {
    type Error = BoundViolation;
    fn try_from(s: String) -> Result<Self, BoundViolation> {
        BString::new(s)
    }
}

impl<const MAX: usize> PartialEq<str> for BString<MAX> {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl<const MAX: usize> PartialEq<&str> for BString<MAX> {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl<const MAX: usize> Serialize for BString<MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BString<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MAX: usize>;
        impl<const MAX: usize> Visitor<'_> for V<MAX> {
            type Value = BString<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a string of at most {MAX} bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.len() > MAX {
                    return Err(violation(FieldKind::String, v.len(), MAX));
                }
                Ok(BString(v.into()))
            }
        }
        d.deserialize_str(V::<MAX>)
    }
}

/// A list of at most `MAX` values.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> BVec<T, MAX> {
    /// The bound, in items.
    pub const MAX: usize = MAX;

    /// Wraps `v`, or says how far over the bound it is.
    pub fn new(v: Vec<T>) -> Result<Self, BoundViolation> {
        if v.len() > MAX {
            return Err(BoundViolation {
                kind: FieldKind::List,
                len: v.len(),
                max: MAX,
            });
        }
        Ok(BVec(v))
    }

    /// An empty list.
    pub const fn empty() -> Self {
        BVec(Vec::new())
    }

    /// Appends `item`, or refuses when the list is full.
    pub fn push(&mut self, item: T) -> Result<(), BoundViolation> {
        if self.0.len() >= MAX {
            return Err(BoundViolation {
                kind: FieldKind::List,
                len: self.0.len() + 1,
                max: MAX,
            });
        }
        self.0.push(item);
        Ok(())
    }

    /// The values.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }

    /// The owned values.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }
}

impl<T, const MAX: usize> Default for BVec<T, MAX> {
    fn default() -> Self {
        BVec(Vec::new())
    }
}

impl<T, const MAX: usize> Deref for BVec<T, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: fmt::Debug, const MAX: usize> fmt::Debug for BVec<T, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<T, const MAX: usize> TryFrom<Vec<T>> for BVec<T, MAX> {
    type Error = BoundViolation;
    fn try_from(v: Vec<T>) -> Result<Self, BoundViolation> {
        BVec::new(v)
    }
}

impl<'a, T, const MAX: usize> IntoIterator for &'a BVec<T, MAX> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: Serialize, const MAX: usize> Serialize for BVec<T, MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for BVec<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const MAX: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for V<T, MAX> {
            type Value = BVec<T, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a list of at most {MAX} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                // postcard reports the exact declared length: refuse before
                // allocating anything for it.
                let hint = seq.size_hint().unwrap_or(0);
                if hint > MAX {
                    return Err(violation(FieldKind::List, hint, MAX));
                }
                let mut out = Vec::with_capacity(hint);
                while let Some(item) = seq.next_element()? {
                    if out.len() == MAX {
                        return Err(violation(FieldKind::List, MAX + 1, MAX));
                    }
                    out.push(item);
                }
                Ok(BVec(out))
            }
        }
        d.deserialize_seq(V::<T, MAX>(PhantomData))
    }
}

/// A byte string of at most `MAX` bytes: raw bytes in postcard, hex in JSON.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct BBytes<const MAX: usize>(Vec<u8>);

impl<const MAX: usize> BBytes<MAX> {
    /// The bound, in bytes.
    pub const MAX: usize = MAX;

    /// Wraps `v`, or says how far over the bound it is.
    pub fn new(v: Vec<u8>) -> Result<Self, BoundViolation> {
        if v.len() > MAX {
            return Err(BoundViolation {
                kind: FieldKind::Bytes,
                len: v.len(),
                max: MAX,
            });
        }
        Ok(BBytes(v))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The owned bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
}

impl<const MAX: usize> Deref for BBytes<MAX> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const MAX: usize> fmt::Debug for BBytes<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl<const MAX: usize> Serialize for BBytes<MAX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de, const MAX: usize> Deserialize<'de> for BBytes<MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MAX: usize>;
        impl<const MAX: usize> Visitor<'_> for V<MAX> {
            type Value = BBytes<MAX>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a byte string of at most {MAX} bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                if v.len() > MAX {
                    return Err(violation(FieldKind::Bytes, v.len(), MAX));
                }
                Ok(BBytes(v.to_vec()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v.len() / 2 > MAX {
                    return Err(violation(FieldKind::Bytes, v.len() / 2, MAX));
                }
                hex::decode(v)
                    .map(BBytes)
                    .map_err(|e| E::custom(format_args!("invalid hex: {e}")))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(V::<MAX>)
        } else {
            d.deserialize_bytes(V::<MAX>)
        }
    }
}

/// Serde helpers for fixed-size byte arrays: raw in postcard, hex in JSON.
pub(crate) mod hex_array {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&hex::encode(v))
        } else {
            // A tuple of N bytes: no length prefix, exactly N bytes on the wire.
            serde::Serialize::serialize(&Array(*v), s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            // One spelling only: a JSON rendering is canonical, so no
            // character of it can change without changing what it says.
            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(de::Error::custom("hex digits must be lowercase"));
            }
            let mut out = [0u8; N];
            hex::decode_to_slice(s.as_bytes(), &mut out).map_err(|e| {
                de::Error::custom(format_args!("expected {} hex digits: {e}", 2 * N))
            })?;
            Ok(out)
        } else {
            Ok(Array::<N>::deserialize(d)?.0)
        }
    }

    /// `[u8; N]` as a fixed-length tuple (serde only derives up to 32).
    pub(crate) struct Array<const N: usize>(pub [u8; N]);

    impl<const N: usize> Serialize for Array<N> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeTuple;
            let mut t = s.serialize_tuple(N)?;
            for b in &self.0 {
                t.serialize_element(b)?;
            }
            t.end()
        }
    }

    impl<'de, const N: usize> Deserialize<'de> for Array<N> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V<const N: usize>;
            impl<'de, const N: usize> Visitor<'de> for V<N> {
                type Value = Array<N>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    write!(f, "{N} bytes")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Array<N>, A::Error> {
                    let mut out = [0u8; N];
                    for (i, slot) in out.iter_mut().enumerate() {
                        *slot = seq
                            .next_element()?
                            .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                    }
                    Ok(Array(out))
                }
            }
            d.deserialize_tuple(N, V::<N>)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bstring_clones_share_one_copy_and_compare_as_strings() {
        let a = BString::<64>::new("image/png").unwrap();
        let b = a.clone();
        assert!(std::ptr::eq(a.as_str(), b.as_str()), "a clone is shared");
        let c = BString::<64>::new(String::from("image/png")).unwrap();
        assert!(!std::ptr::eq(a.as_str(), c.as_str()));
        // Equality, order and hashing are the string's, shared or not.
        assert_eq!(a, c);
        assert_eq!(a.cmp(&c), std::cmp::Ordering::Equal);
        let state = std::hash::RandomState::new();
        assert_eq!(
            std::hash::BuildHasher::hash_one(&state, &a),
            std::hash::BuildHasher::hash_one(&state, "image/png")
        );
        assert!(BString::<64>::new("image/jpeg").unwrap() < a);
        assert_eq!(a.clone().into_string(), "image/png");
    }

    #[test]
    fn bstring_refuses_over_bound_before_allocating() {
        // A postcard string header claiming 100 bytes, with the bytes present.
        let mut bytes = vec![100u8];
        bytes.extend(std::iter::repeat_n(b'a', 100));
        let err = postcard::from_bytes::<BString<10>>(&bytes).unwrap_err();
        assert_eq!(err, postcard::Error::SerdeDeCustom);
        assert_eq!(
            take_violation(),
            Some(BoundViolation {
                kind: FieldKind::String,
                len: 100,
                max: 10
            })
        );
    }

    #[test]
    fn bvec_refuses_declared_length_over_bound() {
        // Five items present, bound four: refused on the declared length.
        let bytes = [5, 1, 2, 3, 4, 5];
        clear_violation();
        assert!(postcard::from_bytes::<BVec<u8, 4>>(&bytes).is_err());
        let v = take_violation().expect("bound violation recorded");
        assert_eq!((v.kind, v.len, v.max), (FieldKind::List, 5, 4));
    }

    #[test]
    fn bvec_huge_declared_length_fails_without_allocating() {
        // Declares 2^32-1 items with no payload: postcard withholds the size
        // hint, so nothing is reserved and decoding stops at the end of input.
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert_eq!(
            postcard::from_bytes::<BVec<u64, 1_000_000_000>>(&bytes).unwrap_err(),
            postcard::Error::DeserializeUnexpectedEnd
        );
    }

    #[test]
    fn bbytes_json_is_hex() {
        let b = BBytes::<8>::new(vec![0xde, 0xad]).unwrap();
        assert_eq!(serde_json::to_string(&b).unwrap(), "\"dead\"");
        let back: BBytes<8> = serde_json::from_str("\"dead\"").unwrap();
        assert_eq!(back, b);
        assert!(serde_json::from_str::<BBytes<1>>("\"dead\"").is_err());
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = BString::<4>::truncate_from("añbc");
        assert_eq!(s.as_str(), "añb");
    }
}
