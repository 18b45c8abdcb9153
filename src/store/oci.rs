//! OCI data types: descriptors, image manifests, image indexes. Field order is fixed so the
//! serialized bytes (and so digests) are deterministic.

use crate::digest::Digest;
use crate::media_types as mt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type Annotations = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: None,
        }
    }
    /// The OCI empty descriptor (`{}`), used as the config of referrer manifests.
    pub fn empty() -> Self {
        Descriptor::new(mt::OCI_EMPTY, Digest::of(b"{}"), 2)
    }
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// OCI image manifest (also accepts Docker schema 2 on read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl ImageManifest {
    /// An OCI image manifest (schema 2, OCI media type) of `config` and `layers`, with no
    /// artifact type, subject or annotations; set those with struct update syntax.
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: Some(mt::OCI_MANIFEST.to_string()),
            artifact_type: None,
            config,
            layers,
            subject: None,
            annotations: None,
        }
    }
    /// The artifact type as the referrers API reports it: `artifactType`, else the config type.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serializes")
    }
}

/// OCI image index (referrers responses, fallback tags, layout `index.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
}

impl ImageIndex {
    pub fn new() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(mt::OCI_INDEX.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            annotations: None,
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("index serializes")
    }
}

impl Default for ImageIndex {
    fn default() -> Self {
        Self::new()
    }
}

/// Fields of a JSON object this crate does not model, kept as they were read.
pub type UnknownFields = serde_json::Map<String, serde_json::Value>;

/// An image index read to be rewritten (a layout's `index.json`): the fields of [`ImageIndex`]
/// plus every field we do not model, on the index (e.g. its `subject`) and on each entry
/// (`platform`, `urls`, `data`, vendor fields), written back unchanged after our fields, so a
/// read-modify-write never drops what another tool wrote.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<KeptDescriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    #[serde(flatten)]
    pub unknown: UnknownFields,
}

/// A [`Descriptor`] of a [`KeptIndex`], with the fields we do not model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeptDescriptor {
    #[serde(flatten)]
    pub descriptor: Descriptor,
    #[serde(flatten)]
    pub unknown: UnknownFields,
}

impl From<Descriptor> for KeptDescriptor {
    fn from(descriptor: Descriptor) -> Self {
        KeptDescriptor {
            descriptor,
            unknown: UnknownFields::new(),
        }
    }
}

impl std::ops::Deref for KeptDescriptor {
    type Target = Descriptor;
    fn deref(&self) -> &Descriptor {
        &self.descriptor
    }
}

impl KeptIndex {
    pub fn new() -> Self {
        let ImageIndex {
            schema_version,
            media_type,
            artifact_type,
            annotations,
            ..
        } = ImageIndex::new();
        KeptIndex {
            schema_version,
            media_type,
            artifact_type,
            manifests: Vec::new(),
            annotations,
            unknown: UnknownFields::new(),
        }
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("index serializes")
    }
}

impl Default for KeptIndex {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What another tool wrote on the index and on its entries survives a rewrite, and an
    /// index of ours serializes to exactly the bytes [`ImageIndex`] gives.
    #[test]
    fn kept_index_keeps_unknown_fields_and_our_bytes() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"annotations":{"org.opencontainers.image.ref.name":"v1"},"platform":{"architecture":"amd64","os":"linux"},"urls":["https://example.com/x"],"data":"e30=","io.vendor.x":{"n":[1,2.5,null]}}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"io.vendor.top":true}"#;
        let kept: KeptIndex = serde_json::from_str(text).unwrap();
        assert_eq!(kept.manifests[0].size, 2);
        assert_eq!(
            kept.manifests[0].annotation(mt::ANNOTATION_REF_NAME),
            Some("v1")
        );
        assert_eq!(String::from_utf8(kept.to_bytes()).unwrap(), text);

        let mut ours = ImageIndex::new();
        ours.manifests.push(Descriptor {
            artifact_type: Some("x/y".into()),
            annotations: Some(Annotations::from([("a".into(), "b".into())])),
            ..Descriptor::empty()
        });
        let kept: KeptIndex = serde_json::from_slice(&ours.to_bytes()).unwrap();
        assert!(kept.unknown.is_empty() && kept.manifests[0].unknown.is_empty());
        assert_eq!(kept.to_bytes(), ours.to_bytes());
        assert_eq!(KeptIndex::new().to_bytes(), ImageIndex::new().to_bytes());
    }
}
