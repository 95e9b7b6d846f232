//! Tool packages: what `errand pack` writes and nodes host.
//!
//! A [`Package`] holds the WebAssembly component, the capability manifest
//! (with every example input inlined), a descriptor *template* and an
//! [`Authorship`]: the tool author's signature over the package.
//!
//! ## The author signature
//!
//! The author is a key of its own, kept apart from any node's key: whoever
//! hosts a package, the author vouches for what it contains. The signed
//! [`Authorship`] (`errand/authorship`, version 1) names the author, the
//! tool's name and version, the SHA-256 of the component and the SHA-256 of
//! the whole manifest text: examples inlined, limits, schemas, everything a
//! requester uses to make canaries and replay. Decoding a package checks that
//! both digests match the bytes it carries and that the template agrees with
//! the authorship (name, version, component, publisher = author);
//! [`Package::verify_author`] checks the signature.
//!
//! The **package digest** ([`Package::digest`]) is the SHA-256 of the
//! authorship's signed bytes (header and body): it commits to author, name,
//! version, component and manifest at once, and identifies a package. A
//! node that hosts a package names it in its descriptors
//! ([`crate::descriptor::PackageRef`]: package digest and author), and
//! answers `FetchPackage` by package digest.
//!
//! ## What a requester checks
//!
//! Before it runs a package to compute a canary's expected answer or to
//! replay a run, a requester checks, with [`PackageRef::check`], that the
//! fetched package decodes (its component and manifest are the ones the
//! author signed), that its author signature verifies, that its
//! package digest is the one the candidate's descriptor names, and that its
//! author is the descriptor's author. It does not matter who served the
//! bytes: a peer serving the same component with a doctored manifest (no
//! examples, tiny limits) serves a package with another digest, which is
//! refused.

use serde::{Deserialize, Serialize};

use crate::bounded::{BBytes, BString};
use crate::descriptor::{Descriptor, Name, PackageRef, SignedDescriptor, Version};
use crate::digest::Digest;
use crate::evidence::MAX_BLOB_BYTES;
use crate::identity::{PeerId, SecretKey, SignatureError};
use crate::signed::{self, DecodeError, EncodeError, Invalid, Kind, Object, Signable, Signed};

/// Largest manifest text: 1 MiB (examples are inlined).
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// A tool author's statement: this component and this manifest are my tool
/// `name` at `version`. Signed by `author`.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authorship {
    /// The tool author, whose key signs this.
    pub author: PeerId,
    /// The capability's name.
    #[cfg_attr(feature = "arbitrary", arbitrary(with = crate::fuzzing::name))]
    pub name: Name,
    /// The capability's version.
    pub version: Version,
    /// SHA-256 of the component.
    pub component: Digest,
    /// SHA-256 of the whole manifest text (examples inlined).
    pub manifest: Digest,
}

/// A signed authorship.
pub type SignedAuthorship = Signed<Authorship>;

impl Object for Authorship {
    const KIND: Kind = Kind::Authorship;
    const VERSION: u8 = 1;

    fn validate(&self) -> Result<(), Invalid> {
        crate::descriptor::validate_name(&self.name).map_err(|p| Invalid::new("name", p))
    }
}

impl Signable for Authorship {
    fn signer(&self) -> PeerId {
        self.author
    }
}

/// A tool package (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The `capability.toml` text, example files inlined as `input_hex`.
    pub manifest: BString<MAX_MANIFEST_BYTES>,
    /// The WebAssembly component.
    pub component: BBytes<MAX_BLOB_BYTES>,
    /// The descriptor template, signed by the author.
    pub descriptor: SignedDescriptor,
    /// The author's signature over component, manifest, name and version.
    pub authorship: SignedAuthorship,
}

/// Why a package is not the one a descriptor names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageMismatch {
    /// The bytes are not a well-formed package.
    #[error("not a valid tool package: {0}")]
    Decode(#[from] DecodeError),
    /// The author signature does not verify.
    #[error("the author signature of {author} does not verify: {error}")]
    AuthorSignature {
        /// The author the package names.
        author: PeerId,
        /// What went wrong.
        error: SignatureError,
    },
    /// The descriptor template's signature does not verify.
    #[error("the descriptor template's signature does not verify: {0}")]
    TemplateSignature(SignatureError),
    /// The package digest is not the one the descriptor names.
    #[error("package digest is sha256:{found}, but the descriptor names sha256:{expected}")]
    Digest {
        /// What the descriptor names.
        expected: Digest,
        /// The package's digest.
        found: Digest,
    },
    /// The author is not the one the descriptor names.
    #[error("the package is authored by {found}, but the descriptor names {expected}")]
    Author {
        /// What the descriptor names.
        expected: PeerId,
        /// The package's author.
        found: PeerId,
    },
}

impl Package {
    /// Builds a package signed by `author`: signs the authorship over
    /// `component` and `manifest`, and the descriptor template (its
    /// publisher set to the author, its component and package filled in).
    pub fn sign(
        manifest: BString<MAX_MANIFEST_BYTES>,
        component: BBytes<MAX_BLOB_BYTES>,
        mut template: Descriptor,
        author: &SecretKey,
    ) -> Result<Package, EncodeError> {
        let authorship = SignedAuthorship::sign(
            Authorship {
                author: author.peer_id(),
                name: template.name.clone(),
                version: template.version,
                component: Digest::of(&component),
                manifest: Digest::of(manifest.as_bytes()),
            },
            author,
        )?;
        template.publisher = author.peer_id();
        template.component = Some(Digest::of(&component));
        template.package = Some(PackageRef {
            digest: Digest::of(&authorship.signed_bytes()),
            author: author.peer_id(),
        });
        let package = Package {
            manifest,
            component,
            descriptor: SignedDescriptor::sign(template, author)?,
            authorship,
        };
        signed::encode(&package)?;
        Ok(package)
    }

    /// SHA-256 of the component.
    pub fn component_digest(&self) -> Digest {
        Digest::of(&self.component)
    }

    /// SHA-256 of the manifest text.
    pub fn manifest_digest(&self) -> Digest {
        Digest::of(self.manifest.as_bytes())
    }

    /// The package digest: SHA-256 of the authorship's signed bytes, which
    /// commit to author, name, version, component and manifest.
    pub fn digest(&self) -> Digest {
        Digest::of(&self.authorship.signed_bytes())
    }

    /// The tool author the package names. Only trust it after
    /// [`Package::verify_author`].
    pub fn author(&self) -> PeerId {
        self.authorship.body().author
    }

    /// What a descriptor hosting this package names: digest and author.
    pub fn reference(&self) -> PackageRef {
        PackageRef {
            digest: self.digest(),
            author: self.author(),
        }
    }

    /// Checks the author's signature. (Decoding already checked that the
    /// signed digests match the component and manifest.)
    pub fn verify_author(&self) -> Result<(), SignatureError> {
        self.authorship.verify()
    }

    /// Decodes a package and checks the author's signature and the
    /// template's.
    pub fn open(bytes: &[u8]) -> Result<Package, PackageMismatch> {
        let p: Package = signed::decode(bytes)?;
        p.verify()?;
        Ok(p)
    }

    /// Checks a package however it arrived (a package nested in a wire
    /// response is decoded structurally only): that the signed digests
    /// match the component and manifest it carries, and that the author's
    /// and the template's signatures verify.
    pub fn verify(&self) -> Result<(), PackageMismatch> {
        self.validate().map_err(|invalid| {
            PackageMismatch::Decode(DecodeError::Invalid {
                kind: Kind::Package,
                invalid,
            })
        })?;
        self.verify_author()
            .map_err(|error| PackageMismatch::AuthorSignature {
                author: self.author(),
                error,
            })?;
        self.descriptor
            .verify()
            .map_err(PackageMismatch::TemplateSignature)
    }
}

impl PackageRef {
    /// Whether `package` is the one this reference names: its component
    /// and manifest are the ones signed, its signatures verify, its package
    /// digest is this digest and its author this author,
    /// whoever served it (see the module docs).
    pub fn check(&self, package: &Package) -> Result<(), PackageMismatch> {
        let found = package.digest();
        if found != self.digest {
            return Err(PackageMismatch::Digest {
                expected: self.digest,
                found,
            });
        }
        if package.author() != self.author {
            return Err(PackageMismatch::Author {
                expected: self.author,
                found: package.author(),
            });
        }
        package.verify()
    }

    /// Decodes `bytes` and checks them with [`PackageRef::check`].
    pub fn open(&self, bytes: &[u8]) -> Result<Package, PackageMismatch> {
        let p: Package = signed::decode(bytes)?;
        self.check(&p)?;
        Ok(p)
    }
}

impl Object for Package {
    const KIND: Kind = Kind::Package;
    const VERSION: u8 = 2;

    fn validate(&self) -> Result<(), Invalid> {
        let digest = self.component_digest();
        let a = self.authorship.body();
        if a.component != digest {
            return Err(Invalid::new(
                "authorship.component",
                format!(
                    "is sha256:{}, but the packaged component is sha256:{digest}",
                    a.component
                ),
            ));
        }
        let manifest = self.manifest_digest();
        if a.manifest != manifest {
            return Err(Invalid::new(
                "authorship.manifest",
                format!(
                    "is sha256:{}, but the packaged manifest is sha256:{manifest}",
                    a.manifest
                ),
            ));
        }
        let d = self.descriptor.body();
        match d.component {
            Some(c) if c == digest => {}
            Some(c) => {
                return Err(Invalid::new(
                    "descriptor.component",
                    format!("is sha256:{c}, but the packaged component is sha256:{digest}"),
                ));
            }
            None => return Err(Invalid::new("descriptor.component", "is missing")),
        }
        if d.publisher != a.author {
            return Err(Invalid::new(
                "descriptor.publisher",
                format!("is {}, but the author is {}", d.publisher, a.author),
            ));
        }
        if d.name != a.name || d.version != a.version {
            return Err(Invalid::new(
                "descriptor.name",
                format!(
                    "is {} {}, but the author signed {} {}",
                    d.name, d.version, a.name, a.version
                ),
            ));
        }
        if let Some(r) = d.package
            && r != self.reference()
        {
            return Err(Invalid::new(
                "descriptor.package",
                format!(
                    "names sha256:{} by {}, not this package (sha256:{} by {})",
                    r.digest,
                    r.author,
                    self.digest(),
                    a.author
                ),
            ));
        }
        Ok(())
    }
}
