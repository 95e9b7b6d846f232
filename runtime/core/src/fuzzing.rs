//! `Arbitrary` for the wire messages, behind the `arbitrary` feature.
//!
//! The structure-aware fuzz target (`fuzz/fuzz_targets/wire_roundtrip.rs`)
//! builds whole [`crate::wire::Request`]s and [`crate::wire::Response`]s from
//! fuzzer bytes. Most types derive `Arbitrary`; this module holds the few
//! impls and field generators that steer towards values that pass
//! [`crate::signed::Object::validate`] (names, media types, TTLs, packages and
//! invocations whose digests match), since a random string is almost never a
//! capability name and an object that fails validation cannot be encoded.
//! Signed objects get their signature from fuzzer bytes
//! (`impl Arbitrary for Signed<T>` in [`crate::signed`]), except packages,
//! which are really signed by a key drawn from them.

use std::net::SocketAddr;

use arbitrary::{Arbitrary, Error, Result, Unstructured};

use crate::bounded::{BBytes, BString, BVec};
use crate::descriptor::{
    Descriptor, MAX_TTL_MS, MIN_TTL_MS, MediaSpec, MediaType, Name, NetAddr, Version,
};
use crate::digest::Digest;
use crate::evidence::MAX_BLOB_BYTES;
use crate::identity::SecretKey;
use crate::package::{MAX_MANIFEST_BYTES, Package};
use crate::reach::{MAX_PUNCH_CANDIDATES, PunchOffer};
use crate::request::Request;
use crate::wire::{InvokeRequest, MAX_CANDIDATES};

impl<'a, const MAX: usize> Arbitrary<'a> for BString<MAX> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(BString::truncate_from(u.arbitrary::<&str>()?))
    }
}

impl<'a, const MAX: usize> Arbitrary<'a> for BBytes<MAX> {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let b: &[u8] = u.arbitrary()?;
        BBytes::new(b[..b.len().min(MAX)].to_vec()).map_err(|_| Error::IncorrectFormat)
    }
}

impl<'a, T: Arbitrary<'a>, const MAX: usize> Arbitrary<'a> for BVec<T, MAX> {
    /// Items that cannot be built (say, a signed object that fails its
    /// checks) are left out rather than failing the whole list.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let len = u.arbitrary_len::<T>()?.min(MAX);
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            match T::arbitrary(u) {
                Ok(item) => out.push(item),
                Err(Error::IncorrectFormat) => {}
                Err(e) => return Err(e),
            }
        }
        BVec::new(out).map_err(|_| Error::IncorrectFormat)
    }
}

/// Characters of a capability name after the first.
const NAME_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789._-/";

/// A capability name: usually valid, sometimes any string.
pub(crate) fn name(u: &mut Unstructured<'_>) -> Result<Name> {
    if u.ratio(1, 16)? {
        return u.arbitrary();
    }
    let len = u.int_in_range(1..=Name::MAX)?;
    let mut s = String::with_capacity(len);
    for i in 0..len {
        // The first character is a letter or digit.
        let chars = if i == 0 {
            &NAME_CHARS[..36]
        } else {
            NAME_CHARS
        };
        s.push(char::from(*u.choose(chars)?));
    }
    Ok(BString::truncate_from(&s))
}

/// A descriptor TTL: usually within bounds.
pub(crate) fn ttl_ms(u: &mut Unstructured<'_>) -> Result<u32> {
    if u.ratio(1, 16)? {
        return u.arbitrary();
    }
    u.int_in_range(MIN_TTL_MS..=MAX_TTL_MS)
}

/// A query limit: usually within 1..=100.
pub(crate) fn query_limit(u: &mut Unstructured<'_>) -> Result<u16> {
    if u.ratio(1, 16)? {
        return u.arbitrary();
    }
    u.int_in_range(1..=MAX_CANDIDATES as u16)
}

impl<'a> Arbitrary<'a> for Version {
    /// Small major and minor numbers, so that queries and descriptors meet.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Version::new(
            u.int_in_range(0..=3)?,
            u.int_in_range(0..=3)?,
            u.arbitrary()?,
        ))
    }
}

/// A media type: one of a few common ones, or any string.
pub(crate) fn media_type(u: &mut Unstructured<'_>) -> Result<MediaType> {
    const COMMON: &[&str] = &[
        "text/plain",
        "text/plain; charset=utf-8",
        "application/json",
        "image/png",
        "text/markdown",
        "text/html",
        "application/octet-stream",
    ];
    if u.ratio(1, 4)? {
        return u.arbitrary();
    }
    Ok(BString::truncate_from(u.choose(COMMON)?))
}

impl<'a> Arbitrary<'a> for MediaSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        const SCHEMAS: &[&str] = &[
            r#"{"type":"string"}"#,
            r#"{"type":"object","properties":{"words":{"type":"integer"}}}"#,
            "{}",
        ];
        let schema = match u.int_in_range(0..=3)? {
            0 => Some(u.arbitrary()?),
            1 => Some(BString::truncate_from(u.choose(SCHEMAS)?)),
            _ => None,
        };
        Ok(MediaSpec {
            media_type: media_type(u)?,
            schema,
        })
    }
}

/// A socket address as serde encodes it: IPv6 flow info and scope id are
/// not encoded (serde writes address and port only), so they stay zero.
pub(crate) fn socket_addr(u: &mut Unstructured<'_>) -> Result<SocketAddr> {
    let port = u.arbitrary()?;
    Ok(if u.arbitrary()? {
        SocketAddr::from((u.arbitrary::<std::net::Ipv4Addr>()?, port))
    } else {
        SocketAddr::from((u.arbitrary::<std::net::Ipv6Addr>()?, port))
    })
}

/// [`socket_addr`], or none.
pub(crate) fn option_socket_addr(u: &mut Unstructured<'_>) -> Result<Option<SocketAddr>> {
    Ok(if u.arbitrary()? {
        Some(socket_addr(u)?)
    } else {
        None
    })
}

impl<'a> Arbitrary<'a> for NetAddr {
    /// Port 0 and 240.0.0.0/4 are refused by validation.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut addr = socket_addr(u)?;
        addr.set_port(u.int_in_range(1..=u16::MAX)?);
        let v4 = match addr.ip() {
            std::net::IpAddr::V4(ip) => Some(ip),
            std::net::IpAddr::V6(ip) => ip.to_ipv4_mapped(),
        };
        if let Some(ip) = v4
            && ip.octets()[0] >= 240
        {
            let [a, b, c, d] = ip.octets();
            addr.set_ip(std::net::Ipv4Addr::new(a - 240, b, c, d).into());
        }
        Ok(if u.ratio(1, 4)? {
            NetAddr::Relay {
                relay: u.arbitrary()?,
                addr,
            }
        } else {
            NetAddr::Quic(addr)
        })
    }
}

impl<'a> Arbitrary<'a> for PunchOffer {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let n = u.int_in_range(0..=MAX_PUNCH_CANDIDATES)?;
        let mut addrs = Vec::with_capacity(n);
        for _ in 0..n {
            addrs.push(socket_addr(u)?);
        }
        // Offers carry whatever a peer sends: not cleaned up here.
        Ok(PunchOffer {
            addrs: BVec::new(addrs).map_err(|_| Error::IncorrectFormat)?,
        })
    }
}

impl<'a> Arbitrary<'a> for Package {
    /// A package really signed by a key drawn from the input, so that its
    /// digests agree and both signatures verify.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let author = SecretKey::from_seed(u.arbitrary()?);
        let manifest: BString<MAX_MANIFEST_BYTES> = u.arbitrary()?;
        let component: BBytes<MAX_BLOB_BYTES> = u.arbitrary()?;
        let template: Descriptor = u.arbitrary()?;
        Package::sign(manifest, component, template, &author).map_err(|_| Error::IncorrectFormat)
    }
}

impl<'a> Arbitrary<'a> for InvokeRequest {
    /// The signed request names the digests of the input (and of the
    /// component, when bytes are shipped) that come with it.
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let mut body: Request = u.arbitrary()?;
        let input: BBytes<MAX_BLOB_BYTES> = u.arbitrary()?;
        body.input = Digest::of(&input);
        let component = if u.arbitrary()? {
            let bytes: BBytes<MAX_BLOB_BYTES> = u.arbitrary()?;
            body.component = Some(Digest::of(&bytes));
            Some(bytes)
        } else {
            None
        };
        Ok(InvokeRequest {
            request: crate::signed::Signed::arbitrary_with_body(body, u)?,
            input,
            component,
            want_trace: u.arbitrary()?,
        })
    }
}
