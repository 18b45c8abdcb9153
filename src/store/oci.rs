//! OCI data types: descriptors, image manifests, image indexes. Field order is fixed so the
//! serialized bytes (and so digests) are deterministic.

use crate::digest::Digest;
use crate::media_types as mt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type Annotations = BTreeMap<String, String>;

/// Fields of a JSON object this crate does not model, kept as they were read (in their order)
/// and written back after the modelled ones, so a read-modify-write of a document another tool
/// wrote (a layout's `index.json`, a referrers fallback index) never drops them. Bounded by
/// what bounds the document: the manifest size cap (`checked::SizedManifest`,
/// `limits::MAX_MANIFEST_SIZE`) and the layout's `index.json` cap.
pub type UnknownFields = serde_json::Map<String, serde_json::Value>;

/// An OCI content descriptor: the fields of the image-spec, plus every other field another
/// tool wrote ([`UnknownFields`]). Build one with [`Descriptor::new`] (and struct update
/// syntax); with nothing optional set it serializes to exactly
/// `{"mediaType":…,"digest":…,"size":…}`.
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
    /// The platform of the image an index entry points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Other places the content may be fetched from (never used here: blobs come from the
    /// store that lists them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    /// The content itself, base64 (kept as written; never trusted in place of the blob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(flatten)]
    pub unknown: UnknownFields,
}

/// The `platform` of a descriptor (image-spec, image index). The spec requires `architecture`
/// and `os`; nothing here uses a platform, so one that lacks them is kept as written rather
/// than refused (a wrong JSON type is refused); fields beyond these are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(flatten)]
    pub unknown: UnknownFields,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            artifact_type: None,
            annotations: None,
            platform: None,
            urls: None,
            data: None,
            unknown: UnknownFields::new(),
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

/// OCI image index (referrers responses, fallback tags, layout `index.json`), with every field
/// another tool wrote on it and on its entries ([`UnknownFields`]), so rewriting one keeps
/// them. [`ImageIndex::new`] (and `Default`) is an empty OCI index; with nothing else set it
/// serializes to exactly what it always did.
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
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Annotations>,
    #[serde(flatten)]
    pub unknown: UnknownFields,
}

impl ImageIndex {
    pub fn new() -> Self {
        ImageIndex {
            schema_version: 2,
            media_type: Some(mt::OCI_INDEX.to_string()),
            artifact_type: None,
            manifests: Vec::new(),
            subject: None,
            annotations: None,
            unknown: UnknownFields::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What another tool wrote on the index and on its entries survives a rewrite, byte for
    /// byte when written in our field order.
    #[test]
    fn index_keeps_unknown_fields() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"annotations":{"org.opencontainers.image.ref.name":"v1"},"platform":{"architecture":"arm64","os":"linux","os.version":"6.1","os.features":["f"],"variant":"v8","features":["g"],"io.vendor.p":1},"urls":["https://example.com/x"],"data":"e30=","io.vendor.x":{"n":[1,2.5,null]}}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"io.vendor.s":"s"},"annotations":{"i":"j"},"io.vendor.top":true}"#;
        let index: ImageIndex = serde_json::from_str(text).unwrap();
        let entry = &index.manifests[0];
        assert_eq!(entry.size, 2);
        assert_eq!(entry.annotation(mt::ANNOTATION_REF_NAME), Some("v1"));
        let platform = entry.platform.as_ref().unwrap();
        assert_eq!(
            (platform.architecture.as_deref(), platform.os.as_deref()),
            (Some("arm64"), Some("linux"))
        );
        assert_eq!(platform.os_version.as_deref(), Some("6.1"));
        assert_eq!(platform.variant.as_deref(), Some("v8"));
        assert_eq!(platform.unknown["io.vendor.p"], 1);
        assert_eq!(
            entry.urls.as_deref(),
            Some(&["https://example.com/x".into()][..])
        );
        assert_eq!(entry.data.as_deref(), Some("e30="));
        assert_eq!(entry.unknown["io.vendor.x"]["n"][1], 2.5);
        let subject = index.subject.as_ref().unwrap();
        assert_eq!(subject.unknown["io.vendor.s"], "s");
        assert_eq!(index.unknown["io.vendor.top"], true);
        assert_eq!(String::from_utf8(index.to_bytes()).unwrap(), text);
    }

    /// With nothing but our fields set, the bytes (so the digests) are what they always were.
    #[test]
    fn our_descriptors_and_indexes_serialize_as_before() {
        assert_eq!(
            String::from_utf8(ImageIndex::new().to_bytes()).unwrap(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
        );
        let mut ours = ImageIndex::new();
        ours.manifests.push(Descriptor {
            artifact_type: Some("x/y".into()),
            annotations: Some(Annotations::from([("a".into(), "b".into())])),
            ..Descriptor::empty()
        });
        assert_eq!(
            String::from_utf8(ours.to_bytes()).unwrap(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"artifactType":"x/y","annotations":{"a":"b"}}]}"#
        );
        let again: ImageIndex = serde_json::from_slice(&ours.to_bytes()).unwrap();
        assert!(again.unknown.is_empty() && again.manifests[0].unknown.is_empty());
        assert_eq!(again, ours);
    }

    /// A platform lacking fields the spec requires is kept as written; fields of the wrong
    /// JSON type are refused, naming the field.
    #[test]
    fn platforms_are_kept_as_written_and_typed() {
        let entry = r#"{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"platform":{"os":"linux"}}"#;
        let d: Descriptor = serde_json::from_str(entry).unwrap();
        let platform = d.platform.as_ref().unwrap();
        assert_eq!(
            (platform.architecture.as_deref(), platform.os.as_deref()),
            (None, Some("linux"))
        );
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&d).unwrap()).unwrap(),
            entry
        );
        for (bad, field) in [
            (r#""platform":{"os":5}"#, "string"),
            (r#""platform":"linux""#, "Platform"),
            (r#""urls":"https://x""#, "sequence"),
            (r#""data":[1]"#, "string"),
        ] {
            let text = entry.replace(r#""platform":{"os":"linux"}"#, bad);
            let err = serde_json::from_str::<Descriptor>(&text).unwrap_err();
            assert!(err.to_string().contains(field), "{bad}: {err}");
        }
    }
}
