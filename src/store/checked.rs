//! The checked forms that store writes take and by-digest reads are held to. Each rule lives in
//! one constructor here, so a store cannot be handed a write that skipped it:
//!
//! - [`Reference`] / [`Tag`]: a tag (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`) or a sha256 digest,
//!   never anything else (it becomes part of a URL path or an `index.json` entry);
//! - [`SizedManifest`]: manifest bytes within [`MAX_MANIFEST_SIZE`], the limit every reader
//!   applies;
//! - [`Referrer`]: a sized manifest that parses and whose `subject` is the one it is pushed for;
//! - [`check_fetched`]: a fetched manifest is what it was asked for (by digest) and what its
//!   descriptor says.

use super::error::{Result, StoreError};
use super::oci::{Descriptor, ImageManifest};
use crate::digest::Digest;
use crate::media_types::{self as mt, MAX_MANIFEST_SIZE};
use bytes::Bytes;
use std::fmt;

const TAG_SHAPE: &str = "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}";

/// A valid tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag(String);

impl Tag {
    pub fn new(tag: &str) -> Result<Tag> {
        if crate::reference::valid_tag(tag) {
            Ok(Tag(tag.to_string()))
        } else {
            Err(StoreError::invalid(
                format!("tag {tag:?}"),
                format!("not a valid tag ({TAG_SHAPE})"),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A manifest reference: a valid tag or a sha256 digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl Reference {
    pub fn parse(reference: &str) -> Result<Reference> {
        if reference.starts_with("sha256:") {
            return reference
                .parse::<Digest>()
                .map(Reference::Digest)
                .map_err(|e| {
                    StoreError::invalid(format!("reference {reference:?}"), e.to_string())
                });
        }
        Tag::new(reference).map(Reference::Tag).map_err(|_| {
            StoreError::invalid(
                format!("reference {reference:?}"),
                format!("expected a tag ({TAG_SHAPE}) or a sha256 digest"),
            )
        })
    }
    pub fn as_str(&self) -> &str {
        match self {
            Reference::Tag(t) => t.as_str(),
            Reference::Digest(d) => d.as_str(),
        }
    }
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Reference::Digest(d) => Some(d),
            Reference::Tag(_) => None,
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Manifest bytes (any kind: image manifest, index) no larger than [`MAX_MANIFEST_SIZE`].
#[derive(Clone, Debug)]
pub struct SizedManifest {
    bytes: Bytes,
    digest: Digest,
}

impl SizedManifest {
    /// Refuses bytes over the limit, naming them `what`.
    pub fn new(what: impl Into<String>, bytes: Bytes) -> Result<Self> {
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(StoreError::TooLarge {
                what: what.into(),
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let digest = Digest::of(&bytes);
        Ok(SizedManifest { bytes, digest })
    }
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// A referrer manifest whose `subject` was checked: sized, parsed, and about `subject`.
#[derive(Clone, Debug)]
pub struct Referrer {
    sized: SizedManifest,
    manifest: ImageManifest,
    descriptor: Descriptor,
}

impl Referrer {
    /// The one subject check: `bytes` must be an image manifest whose `subject` is `subject`.
    pub fn new(bytes: Bytes, subject: &Digest) -> Result<Referrer> {
        let sized = SizedManifest::new("referrer manifest", bytes)?;
        let what = || format!("referrer manifest {}", sized.digest);
        let manifest: ImageManifest = serde_json::from_slice(&sized.bytes)
            .map_err(|e| StoreError::invalid(what(), e.to_string()))?;
        match &manifest.subject {
            Some(s) if &s.digest == subject => {}
            Some(s) => {
                return Err(StoreError::invalid(
                    what(),
                    format!("its subject is {}, expected {subject}", s.digest),
                ))
            }
            None => {
                return Err(StoreError::invalid(
                    what(),
                    format!("it has no subject (expected {subject})"),
                ))
            }
        }
        let media_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| mt::OCI_MANIFEST.to_string());
        let descriptor = Descriptor {
            artifact_type: Some(manifest.effective_artifact_type().to_string()),
            annotations: manifest.annotations.clone().filter(|a| !a.is_empty()),
            ..Descriptor::new(media_type, sized.digest.clone(), sized.size())
        };
        Ok(Referrer {
            sized,
            manifest,
            descriptor,
        })
    }
    pub fn sized(&self) -> &SizedManifest {
        &self.sized
    }
    pub fn bytes(&self) -> &Bytes {
        &self.sized.bytes
    }
    pub fn manifest(&self) -> &ImageManifest {
        &self.manifest
    }
    /// The subject (checked in [`Referrer::new`]).
    pub fn subject(&self) -> &Digest {
        &self.manifest.subject.as_ref().expect("checked").digest
    }
    /// The descriptor a referrers list holds for it: media type, digest, size, `artifactType`
    /// (the manifest's, else its config media type) and its annotations.
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }
}

/// A manifest as stored: exact bytes plus its descriptor.
#[derive(Clone, Debug)]
pub struct RawManifest {
    pub descriptor: Descriptor,
    pub bytes: Bytes,
}

impl RawManifest {
    pub fn image_manifest(&self) -> Result<ImageManifest> {
        serde_json::from_slice(&self.bytes).map_err(|e| {
            StoreError::invalid(
                format!("manifest {}", self.descriptor.digest),
                e.to_string(),
            )
        })
    }
}

/// The rule for every manifest read: within the size limit, the bytes hash to the digest they
/// were asked by (when asked by digest) and to the digest and size their descriptor states.
pub fn check_fetched(
    reference: &Reference,
    raw: RawManifest,
    location: &str,
) -> Result<RawManifest> {
    let what = || format!("manifest {reference} from {location}");
    let size = raw.bytes.len() as u64;
    if size > MAX_MANIFEST_SIZE {
        return Err(StoreError::TooLarge {
            what: what(),
            size,
            limit: MAX_MANIFEST_SIZE,
        });
    }
    let actual = Digest::of(&raw.bytes);
    for expected in reference
        .digest()
        .into_iter()
        .chain([&raw.descriptor.digest])
    {
        if *expected != actual {
            return Err(StoreError::DigestMismatch {
                what: what(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    if raw.descriptor.size != size {
        return Err(StoreError::SizeMismatch {
            what: what(),
            expected: raw.descriptor.size,
            actual: size,
        });
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_tags_or_digests() {
        assert!(matches!(Reference::parse("v1.0"), Ok(Reference::Tag(_))));
        assert!(matches!(
            Reference::parse(mt::OCI_EMPTY_DIGEST),
            Ok(Reference::Digest(_))
        ));
        for bad in ["../x", "a/b", "", "sha256:abc", "tag?x=1"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        assert!(Tag::new("-x").is_err());
    }

    #[test]
    fn a_fetched_manifest_must_hash_to_what_was_asked() {
        let bytes = Bytes::from_static(b"{}");
        let d = Digest::of(&bytes);
        let raw = |digest: Digest, size| RawManifest {
            descriptor: Descriptor::new(mt::OCI_MANIFEST, digest, size),
            bytes: bytes.clone(),
        };
        let by_digest = Reference::Digest(d.clone());
        check_fetched(&by_digest, raw(d.clone(), 2), "l").unwrap();
        let other = Reference::Digest(Digest::of(b"x"));
        let err = check_fetched(&other, raw(d.clone(), 2), "l").unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        let tag = Reference::parse("v1").unwrap();
        let err = check_fetched(&tag, raw(Digest::of(b"x"), 2), "l").unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        let err = check_fetched(&tag, raw(d, 3), "l").unwrap_err();
        assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
    }
}
