//! Peer identities: ed25519 keys and their text forms.
//!
//! A peer *is* its ed25519 public key. [`PeerId`] prints as a bech32m string
//! with the human-readable part `errand`, for example
//! `errand1qz9x4…`: lowercase, safe to double-click and copy, and protected by
//! a checksum, so a mistyped character is reported as a typo instead of naming
//! some other peer.
//!
//! [`SecretKey`] zeroizes itself on drop and never prints its secret, in
//! `Debug` or anywhere else. Its text file form is
//!
//! ```text
//! -----BEGIN ERRAND SECRET KEY-----
//! <64 hex digits of the ed25519 seed>
//! -----END ERRAND SECRET KEY-----
//! ```
//!
//! Reading and writing that file, with its permission checks, is the node's
//! job; this module only converts to and from text.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use bech32::{Bech32m, Hrp, primitives::decode::CheckedHrpstring};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

use crate::bounded::hex_array;

/// The human-readable prefix of a [`PeerId`]'s text form.
pub const PEER_ID_HRP: &str = "errand";

/// Length of a [`PeerId`]'s text form: `errand1`, 52 data characters and a
/// 6-character checksum.
pub const PEER_ID_TEXT_LEN: usize = 65;

/// A peer's identity: its ed25519 public key.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerId(pub [u8; 32]);

/// A [`PeerId`] that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParsePeerIdError {
    /// The text does not start with `errand1`.
    #[error("not a peer id: {0:?} does not start with `errand1`")]
    WrongPrefix(String),
    /// The text has the wrong number of characters.
    #[error(
        "peer id {0:?} has {1} characters, expected {PEER_ID_TEXT_LEN}: part of it is missing or extra"
    )]
    WrongTextLength(String, usize),
    /// The checksum does not match: some character was mistyped.
    #[error("peer id {0:?} has a typo: its checksum does not match (check each character)")]
    Checksum(String),
    /// The text is not bech32m at all (bad characters or length).
    #[error("not a peer id: {0:?} is not a valid bech32m string ({1})")]
    Malformed(String, String),
    /// The decoded key is not 32 bytes.
    #[error("not a peer id: {0:?} decodes to {1} bytes, expected 32")]
    WrongLength(String, usize),
}

/// A public key that is not a valid ed25519 point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a valid ed25519 public key")]
pub struct InvalidKey(pub PeerId);

impl PeerId {
    /// The raw public key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as a verifier, decompressing the curve point.
    ///
    /// Decompression costs about a sixth of a signature check, so recently
    /// used keys are cached per thread: verifying many objects from the same
    /// peers (receipts from one executor, refreshes from one publisher) pays
    /// it once.
    pub fn verifying_key(&self) -> Result<VerifyingKey, InvalidKey> {
        const CACHE_CAP: usize = 4096;
        thread_local! {
            static CACHE: RefCell<HashMap<[u8; 32], VerifyingKey>> = RefCell::new(HashMap::new());
        }
        CACHE.with(|cache| {
            if let Some(vk) = cache.borrow().get(&self.0) {
                return Ok(*vk);
            }
            let vk = VerifyingKey::from_bytes(&self.0).map_err(|_| InvalidKey(*self))?;
            let mut cache = cache.borrow_mut();
            if cache.len() >= CACHE_CAP {
                cache.clear();
            }
            cache.insert(self.0, vk);
            Ok(vk)
        })
    }

    /// The first characters of the text form after the prefix, for tables.
    pub fn short(&self) -> String {
        let s = self.to_string();
        s[PEER_ID_HRP.len() + 1..PEER_ID_HRP.len() + 11].to_owned()
    }

    /// Verifies an ed25519 signature by this peer over `msg`, strictly
    /// (rejecting small-order keys and non-canonical signatures).
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), SignatureError> {
        let vk = self
            .verifying_key()
            .map_err(|_| SignatureError::InvalidKey)?;
        vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(&sig.0))
            .map_err(|_| SignatureError::Mismatch)
    }
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signer's public key is not a valid ed25519 point.
    #[error("the signer's public key is not a valid ed25519 key")]
    InvalidKey,
    /// The signature does not match the signer and the signed bytes.
    #[error("the signature does not match the signer and the signed bytes")]
    Mismatch,
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The HRP is a constant known to be valid, and 32 bytes are far below
        // bech32m's length limit, so encoding cannot fail.
        let hrp = Hrp::parse_unchecked(PEER_ID_HRP);
        bech32::encode_lower_to_fmt::<Bech32m, _>(f, hrp, &self.0).map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({self})")
    }
}

impl FromStr for PeerId {
    type Err = ParsePeerIdError;
    fn from_str(s: &str) -> Result<PeerId, ParsePeerIdError> {
        let trimmed = s.trim();
        let lower = trimmed.to_ascii_lowercase();
        if !lower.starts_with("errand1") {
            return Err(ParsePeerIdError::WrongPrefix(trimmed.to_owned()));
        }
        if trimmed.chars().count() != PEER_ID_TEXT_LEN {
            return Err(ParsePeerIdError::WrongTextLength(
                trimmed.to_owned(),
                trimmed.chars().count(),
            ));
        }
        let checked = match CheckedHrpstring::new::<Bech32m>(trimmed) {
            Ok(c) => c,
            Err(bech32::primitives::decode::CheckedHrpstringError::Checksum(_)) => {
                return Err(ParsePeerIdError::Checksum(trimmed.to_owned()));
            }
            Err(e) => {
                return Err(ParsePeerIdError::Malformed(
                    trimmed.to_owned(),
                    e.to_string(),
                ));
            }
        };
        if !checked.hrp().as_str().eq_ignore_ascii_case(PEER_ID_HRP) {
            return Err(ParsePeerIdError::WrongPrefix(trimmed.to_owned()));
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ParsePeerIdError::WrongLength(trimmed.to_owned(), bytes.len()))?;
        // Whether the bytes are a valid curve point is checked where it
        // matters, when a signature is verified: parsing accepts exactly what
        // binary decoding accepts, so every decodable object renders to text
        // that parses back.
        Ok(PeerId(key))
    }
}

impl Serialize for PeerId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            hex_array::serialize(&self.0, s)
        }
    }
}

impl<'de> Deserialize<'de> for PeerId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PeerId, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            hex_array::deserialize(d).map(PeerId)
        }
    }
}

/// An ed25519 signature: raw bytes in postcard, hex in JSON.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        hex_array::serialize(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Signature, D::Error> {
        hex_array::deserialize(d).map(Signature)
    }
}

/// A peer's secret signing key. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct SecretKey(SigningKey);

/// A secret-key file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// The file lacks the `BEGIN ERRAND SECRET KEY` armour.
    #[error("not an errand secret key file: missing the `{KEY_FILE_BEGIN}` line")]
    NotAKeyFile,
    /// The armour is there but the body is not 64 hex digits.
    #[error("corrupt secret key file: the key must be 64 hex digits between the armour lines")]
    BadBody,
}

const KEY_FILE_BEGIN: &str = "-----BEGIN ERRAND SECRET KEY-----";
const KEY_FILE_END: &str = "-----END ERRAND SECRET KEY-----";

impl SecretKey {
    /// The key whose ed25519 seed is `seed`. Callers pass 32 random bytes
    /// from a CSPRNG; `errand-core` does not read randomness itself.
    pub fn from_seed(seed: [u8; 32]) -> SecretKey {
        let mut seed = seed;
        let key = SigningKey::from_bytes(&seed);
        seed.zeroize();
        SecretKey(key)
    }

    /// This key's public identity.
    pub fn peer_id(&self) -> PeerId {
        PeerId(self.0.verifying_key().to_bytes())
    }

    /// Signs `msg`. Callers sign domain-separated bytes only: see
    /// [`crate::signed`].
    pub fn sign(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }

    /// The 32-byte seed, in a buffer that is wiped when dropped.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The underlying dalek key, for the TLS layer.
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// The key file text (see the module docs), wiped when dropped.
    pub fn to_key_file(&self) -> Zeroizing<String> {
        let seed = self.seed();
        let hex = Zeroizing::new(hex::encode(*seed));
        Zeroizing::new(format!(
            "{KEY_FILE_BEGIN}\n{}\n{KEY_FILE_END}\n",
            hex.as_str()
        ))
    }

    /// Parses key file text.
    pub fn from_key_file(text: &str) -> Result<SecretKey, KeyFileError> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        if lines.next() != Some(KEY_FILE_BEGIN) {
            return Err(KeyFileError::NotAKeyFile);
        }
        let body = lines.next().ok_or(KeyFileError::BadBody)?;
        if lines.next() != Some(KEY_FILE_END) || lines.next().is_some() {
            return Err(KeyFileError::BadBody);
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(body, seed.as_mut()).map_err(|_| KeyFileError::BadBody)?;
        Ok(SecretKey::from_seed(*seed))
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("peer", &self.peer_id())
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed([n; 32])
    }

    #[test]
    fn peer_id_text_round_trips() {
        let id = key(7).peer_id();
        let s = id.to_string();
        assert!(s.starts_with("errand1"));
        assert_eq!(s, s.to_lowercase());
        assert_eq!(s.parse::<PeerId>().unwrap(), id);
        assert_eq!(s.to_uppercase().parse::<PeerId>().unwrap(), id);
    }

    #[test]
    fn peer_id_typo_is_a_checksum_error() {
        let s = key(7).peer_id().to_string();
        let mut chars: Vec<char> = s.chars().collect();
        let i = 20;
        chars[i] = if chars[i] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(
            typo.parse::<PeerId>(),
            Err(ParsePeerIdError::Checksum(_))
        ));
        assert!(matches!(
            "hello".parse::<PeerId>(),
            Err(ParsePeerIdError::WrongPrefix(_))
        ));
        assert!(matches!(
            s[..30].parse::<PeerId>(),
            Err(ParsePeerIdError::WrongTextLength(_, 30))
        ));
        assert_eq!(s.len(), PEER_ID_TEXT_LEN);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = key(9);
        let dbg = format!("{k:?}");
        let seed_hex = hex::encode(*k.seed());
        assert!(!dbg.contains(&seed_hex));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn key_file_round_trips_and_rejects_garbage() {
        let k = key(3);
        let text = k.to_key_file();
        let back = SecretKey::from_key_file(&text).unwrap();
        assert_eq!(back.peer_id(), k.peer_id());
        assert_eq!(
            SecretKey::from_key_file("hello").unwrap_err(),
            KeyFileError::NotAKeyFile
        );
        let mut lines: Vec<&str> = text.lines().collect();
        let short = &lines[1][..60];
        lines[1] = short;
        assert_eq!(
            SecretKey::from_key_file(&lines.join("\n")).unwrap_err(),
            KeyFileError::BadBody
        );
    }

    #[test]
    fn signatures_verify_and_reject_other_messages() {
        let k = key(1);
        let sig = k.sign(b"hello");
        assert!(k.peer_id().verify(b"hello", &sig).is_ok());
        assert_eq!(
            k.peer_id().verify(b"hellp", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key(2).peer_id().verify(b"hello", &sig),
            Err(SignatureError::Mismatch)
        );
    }
}
