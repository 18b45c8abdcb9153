//! in-toto Statement v1 (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>).

use crate::digest::Digest;
use crate::media_types::IN_TOTO_STATEMENT_V1;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The older statement type cosign and in-toto-golang still write; accepted on read only.
pub const IN_TOTO_STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";

/// An in-toto Statement. Field order is the serialization order:
/// `_type`, `subject`, `predicateType`, `predicate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<Subject>,
    pub predicate_type: String,
    /// The spec treats an absent predicate as `{}`.
    #[serde(default = "empty_object")]
    pub predicate: Value,
}

/// A subject: what the statement is about. `digest` maps algorithm → lowercase hex; a
/// `BTreeMap` so the serialization is sorted and stable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    #[serde(default)]
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The statement about a model manifest: one subject, `name` = the repository (as
/// [`crate::reference::Target::repository_name`] gives it, e.g. `localhost:5000/team/bert`),
/// `digest.sha256` = the manifest digest's hex.
///
/// CLI: resolve the target to its manifest digest first (attest always signs the digest, never
/// a tag), then `statement_for_manifest(&target.repository_name(), &digest, &predicate_type,
/// predicate)`; sign [`Statement::to_json_bytes`] as the DSSE payload with payload type
/// `application/vnd.in-toto+json`, and set the referrer annotation
/// `dev.sigstore.bundle.predicateType` to `statement.predicate_type`.
pub fn statement_for_manifest(
    repository_name: &str,
    manifest_digest: &Digest,
    predicate_type: &str,
    predicate: Value,
) -> Statement {
    Statement {
        type_: IN_TOTO_STATEMENT_V1.to_string(),
        subject: vec![Subject {
            name: repository_name.to_string(),
            digest: BTreeMap::from([("sha256".to_string(), manifest_digest.hex().to_string())]),
        }],
        predicate_type: predicate_type.to_string(),
        predicate,
    }
}

impl Statement {
    /// The DSSE payload bytes: compact JSON, fields in the fixed order above, subject digests
    /// sorted by algorithm, the predicate's keys in their given order (the generated provenance
    /// has a fixed order; a predicate file keeps the file's). The same inputs always give the
    /// same bytes.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement has only string keys and serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(byte: u8) -> Digest {
        Digest::from_raw(&[byte; 32])
    }

    #[test]
    fn builds_one_subject_for_the_manifest_and_serializes_in_fixed_order() {
        let d = digest(0xab);
        let s = statement_for_manifest(
            "localhost:5000/team/bert",
            &d,
            "https://example.com/eval/v1",
            json!({"z": 1, "a": 2}),
        );
        let text = String::from_utf8(s.to_json_bytes()).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"localhost:5000/team/bert","digest":{{"sha256":"{}"}}}}],"predicateType":"https://example.com/eval/v1","predicate":{{"z":1,"a":2}}}}"#,
                d.hex()
            )
        );
        // Same inputs, same bytes; and they parse back to the same statement.
        assert_eq!(s.to_json_bytes(), s.clone().to_json_bytes());
        let back: Statement = serde_json::from_slice(&s.to_json_bytes()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn an_absent_predicate_reads_as_an_empty_object() {
        let absent = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"00"}}],"predicateType":"t"}"#;
        let s: Statement = serde_json::from_slice(absent).unwrap();
        assert_eq!(s.predicate, json!({}));
        assert_eq!(s.subject[0].name, "");
    }
}
