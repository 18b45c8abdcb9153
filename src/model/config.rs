//! The ModelPack config blob (`application/vnd.cncf.model.config.v1+json`): `descriptor`
//! (name…), `modelfs` (`type: layers`, `diffIds` = the layer digests in manifest order) and
//! `config` (format where known). Serialized from structs with a fixed field order (the spec's
//! order) and no timestamp unless given, so the same inputs always give the same bytes.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
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
}

/// The ModelPack model config (the parts we write; unknown fields are ignored on read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub descriptor: ModelDescriptor,
    pub modelfs: ModelFs,
    #[serde(default)]
    pub config: ModelConfigFields,
}

impl ModelConfig {
    pub fn new(name: Option<String>, format: Option<&str>, diff_ids: Vec<Digest>) -> Self {
        ModelConfig {
            descriptor: ModelDescriptor {
                name,
                ..Default::default()
            },
            modelfs: ModelFs {
                kind: "layers".to_string(),
                diff_ids,
            },
            config: ModelConfigFields {
                format: format.map(str::to_string),
                ..Default::default()
            },
        }
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
}
