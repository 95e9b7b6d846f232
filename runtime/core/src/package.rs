//! Tool packages: what `errand pack` writes and nodes host.
//!
//! A [`Package`] holds the WebAssembly component, the capability manifest
//! (with every example input inlined) and a descriptor *template* signed by
//! the packer: name, version, description, intents, media types, QoS, tiers
//! and, above all, the component's digest. A node that hosts the package
//! publishes its own descriptor, with its addresses, sequence number and
//! freshness; the template says what the tool author vouched for.

use serde::{Deserialize, Serialize};

use crate::bounded::{BBytes, BString};
use crate::descriptor::SignedDescriptor;
use crate::digest::Digest;
use crate::evidence::MAX_BLOB_BYTES;
use crate::signed::{Invalid, Kind, Object};

/// Largest manifest text: 1 MiB (examples are inlined).
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// A tool package (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The `capability.toml` text, example files inlined as `input_hex`.
    pub manifest: BString<MAX_MANIFEST_BYTES>,
    /// The WebAssembly component.
    pub component: BBytes<MAX_BLOB_BYTES>,
    /// The descriptor template, signed by the packer.
    pub descriptor: SignedDescriptor,
}

impl Package {
    /// SHA-256 of the component.
    pub fn component_digest(&self) -> Digest {
        Digest::of(&self.component)
    }
}

impl Object for Package {
    const KIND: Kind = Kind::Package;
    const VERSION: u8 = 1;

    fn validate(&self) -> Result<(), Invalid> {
        let digest = self.component_digest();
        match self.descriptor.body().component {
            Some(d) if d == digest => Ok(()),
            Some(d) => Err(Invalid::new(
                "descriptor.component",
                format!("is sha256:{d}, but the packaged component is sha256:{digest}"),
            )),
            None => Err(Invalid::new("descriptor.component", "is missing")),
        }
    }
}
