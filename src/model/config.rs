//! The ModelPack config blob (`application/vnd.cncf.model.config.v1+json`): `descriptor`
//! (name, version, family…), `modelfs` (`type: layers`, `diffIds` = the layer digests in
//! manifest order) and `config` (architecture, format, paramSize, precision, quantization).
//! Serialized from structs with a fixed field order (the spec's order) and no timestamp unless
//! given, so the same inputs always give the same bytes. What `push` writes validates against
//! the model-spec's published JSON schema (`tests/it/ecosystem.rs`).
//!
//! The fields a user may set ([`ModelMetadata`]) come from `push` flags and/or a JSON file in
//! the shape of the config's `descriptor` and `config` objects ([`ModelMetadata::from_json`]);
//! `modelfs` is always computed.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};

/// The spec's `descriptor` object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authors: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "docURL", skip_serializing_if = "Option::is_none")]
    pub doc_url: Option<String>,
    #[serde(default, rename = "sourceURL", skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    #[serde(
        default,
        rename = "datasetsURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub datasets_url: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licenses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// The spec's `config` object (the parts we write; `capabilities` is kept as given).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelConfigFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The ModelPack model config. Unknown fields are refused by the `descriptor` and `config`
/// structs (the spec's schema allows none); [`ModelConfig::read`] is lenient for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub descriptor: ModelDescriptor,
    pub modelfs: ModelFs,
    #[serde(default)]
    pub config: ModelConfigFields,
}

/// What a user may say about a model (`push` flags and `--config-file`): the spec's
/// `descriptor` and `config` objects, without `modelfs` (always computed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelMetadata {
    #[serde(default)]
    pub descriptor: ModelDescriptor,
    #[serde(default)]
    pub config: ModelConfigFields,
}

/// A `--config-file` that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("model config file: {0}")]
pub struct MetadataError(String);

impl ModelMetadata {
    /// Parse a JSON document `{"descriptor": {…}, "config": {…}}` (either may be absent) with
    /// the spec's field names; any other field (including `modelfs`) is refused, naming it.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MetadataError> {
        let meta: ModelMetadata = serde_json::from_slice(bytes).map_err(|e| {
            let hint = if e.to_string().contains("`modelfs`") {
                " (modelfs is computed by push from the layers)"
            } else {
                ""
            };
            MetadataError(format!("{e}{hint}"))
        })?;
        meta.check()?;
        Ok(meta)
    }

    /// The rules the spec's schema states beyond types: a non-empty name, `createdAt` an
    /// RFC 3339 date-time.
    pub fn check(&self) -> Result<(), MetadataError> {
        if self.descriptor.name.as_deref() == Some("") {
            return Err(MetadataError("descriptor.name must not be empty".into()));
        }
        if let Some(t) = &self.descriptor.created_at {
            chrono::DateTime::parse_from_rfc3339(t).map_err(|e| {
                MetadataError(format!(
                    "descriptor.createdAt {t:?} is not an RFC 3339 date-time: {e}"
                ))
            })?;
        }
        Ok(())
    }
}

impl ModelConfig {
    pub fn new(name: Option<String>, format: Option<&str>, diff_ids: Vec<Digest>) -> Self {
        let metadata = ModelMetadata {
            descriptor: ModelDescriptor {
                name,
                ..Default::default()
            },
            ..Default::default()
        };
        Self::from_metadata(&metadata, format, diff_ids)
    }

    /// The config for `metadata` (what the user said), with `detected_format` where the user
    /// named none and `modelfs` from the layer digests in manifest order.
    pub fn from_metadata(
        metadata: &ModelMetadata,
        detected_format: Option<&str>,
        diff_ids: Vec<Digest>,
    ) -> Self {
        let mut config = metadata.config.clone();
        if config.format.is_none() {
            config.format = detected_format.map(str::to_string);
        }
        ModelConfig {
            descriptor: metadata.descriptor.clone(),
            modelfs: ModelFs {
                kind: "layers".to_string(),
                diff_ids,
            },
            config,
        }
    }

    /// Read a config blob for display: unknown fields (a newer spec, another tool) are
    /// ignored rather than refused. `None` when it is not a ModelPack config at all.
    pub fn read(bytes: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Lenient {
            #[serde(default)]
            descriptor: serde_json::Value,
            modelfs: ModelFs,
            #[serde(default)]
            config: serde_json::Value,
        }
        fn known<T: Default + serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
            let serde_json::Value::Object(mut m) = v else {
                return T::default();
            };
            // Keep only the fields this version knows, each only when it has the right type.
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                let one = serde_json::json!({ k.clone(): m[&k].clone() });
                if serde_json::from_value::<T>(one).is_err() {
                    m.remove(&k);
                }
            }
            serde_json::from_value(serde_json::Value::Object(m)).unwrap_or_default()
        }
        let l: Lenient = serde_json::from_slice(bytes).ok()?;
        Some(ModelConfig {
            descriptor: known(l.descriptor),
            modelfs: l.modelfs,
            config: known(l.config),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("config serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_in_spec_order_without_timestamp() {
        let c = ModelConfig::new(
            Some("bert".into()),
            Some("safetensors"),
            vec![Digest::of(b"a")],
        );
        let s = String::from_utf8(c.to_bytes()).unwrap();
        assert_eq!(
            s,
            format!(
                r#"{{"descriptor":{{"name":"bert"}},"modelfs":{{"type":"layers","diffIds":["{}"]}},"config":{{"format":"safetensors"}}}}"#,
                Digest::of(b"a")
            )
        );
        let back: ModelConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn metadata_file_sets_the_spec_fields_and_the_user_format_wins() {
        let meta = ModelMetadata::from_json(
            br#"{"descriptor":{"name":"llama","family":"llama3","version":"3.1","licenses":["Apache-2.0"],"docURL":"https://x"},
                 "config":{"architecture":"transformer","format":"gguf","paramSize":"8b","precision":"bf16","quantization":"q4_k_m"}}"#,
        )
        .unwrap();
        let c = ModelConfig::from_metadata(&meta, Some("safetensors"), vec![Digest::of(b"a")]);
        assert_eq!(c.config.format.as_deref(), Some("gguf"));
        assert_eq!(c.config.param_size.as_deref(), Some("8b"));
        let v: serde_json::Value = serde_json::from_slice(&c.to_bytes()).unwrap();
        assert_eq!(v["descriptor"]["docURL"], "https://x");
        assert_eq!(v["descriptor"]["family"], "llama3");
        assert_eq!(v["config"]["quantization"], "q4_k_m");
        // Detected format only where none was given.
        let c = ModelConfig::from_metadata(
            &ModelMetadata::default(),
            Some("safetensors"),
            vec![Digest::of(b"a")],
        );
        assert_eq!(c.config.format.as_deref(), Some("safetensors"));
    }

    #[test]
    fn metadata_file_refusals_name_the_field() {
        for (doc, want) in [
            (&br#"{"modelfs":{}}"#[..], "computed by push"),
            (br#"{"config":{"paramsize":"8b"}}"#, "paramsize"),
            (br#"{"descriptor":{"name":""}}"#, "must not be empty"),
            (br#"{"descriptor":{"createdAt":"yesterday"}}"#, "createdAt"),
            (br#"{"config":{"precision":16}}"#, "invalid type"),
            (b"not json", "expected"),
        ] {
            let err = ModelMetadata::from_json(doc).unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want}");
            assert!(err.starts_with("model config file: "), "{err}");
        }
    }

    #[test]
    fn reading_for_display_ignores_what_it_does_not_know() {
        let c = ModelConfig::read(
            br#"{"descriptor":{"name":"n","future":1,"family":7},"modelfs":{"type":"layers","diffIds":[]},"config":{"precision":"fp16","extra":true}}"#,
        )
        .unwrap();
        assert_eq!(c.descriptor.name.as_deref(), Some("n"));
        assert_eq!(c.descriptor.family, None);
        assert_eq!(c.config.precision.as_deref(), Some("fp16"));
        assert!(ModelConfig::read(b"{}").is_none());
    }
}
