//! in-toto Statement v1 (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>)
//! and its ResourceDescriptor: the one Statement type every statement oci-model writes (OMS,
//! cosign-style, attestations) or reads (verification) goes through. A leaf: no I/O.
//!
//! `sigstore_types::Statement` is not used: its subject digests are typed (upper-case hex is
//! accepted and re-written lower-case, a malformed one fails the whole parse), and its subject
//! always writes `name`, where the cosign-style statement writes none.

use crate::digest::Digest;
use crate::media_types::IN_TOTO_STATEMENT_V1;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The older statement type cosign and in-toto-golang still write; accepted on read only.
pub const IN_TOTO_STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";

/// An in-toto Statement. Field order is the serialization order: `_type`, `subject`,
/// `predicateType`, `predicate`. `S` is how a subject is written: a [`Subject`] (always with a
/// `name`), or a [`ResourceDescriptor`] (fields only when set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statement<S = Subject> {
    #[serde(rename = "_type")]
    pub type_: String,
    pub subject: Vec<S>,
    pub predicate_type: String,
    /// The spec treats an absent predicate as `{}`.
    #[serde(default = "empty_object")]
    pub predicate: Value,
}

/// A subject: what the statement is about. `name` reads as `""` when absent (cosign 3 omits
/// it); `digest` maps algorithm → lowercase hex, sorted so the serialization is stable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    #[serde(default)]
    pub name: String,
    pub digest: BTreeMap<String, String>,
}

/// SLSA / in-toto ResourceDescriptor (the fields oci-model uses).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceDescriptor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Algorithm → hex (`sha256`), or `gitCommit` → commit id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digest: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, Value>>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// `{"sha256": <hex>}`.
pub fn sha256_digest(digest: &Digest) -> BTreeMap<String, String> {
    BTreeMap::from([("sha256".to_string(), digest.hex().to_string())])
}

impl Subject {
    pub fn new(name: impl Into<String>, digest: &Digest) -> Self {
        Subject {
            name: name.into(),
            digest: sha256_digest(digest),
        }
    }

    /// The `sha256` digest's hex, as written (not validated).
    pub fn sha256(&self) -> Option<&str> {
        self.digest.get("sha256").map(String::as_str)
    }
}

impl<S: Serialize> Statement<S> {
    /// A v1 statement.
    pub fn new(subject: Vec<S>, predicate_type: &str, predicate: Value) -> Self {
        Statement {
            type_: IN_TOTO_STATEMENT_V1.to_string(),
            subject,
            predicate_type: predicate_type.to_string(),
            predicate,
        }
    }

    /// The DSSE payload bytes: compact JSON, fields in the fixed order above, subject digests
    /// sorted by algorithm, the predicate's keys in their given order (the generated provenance
    /// has a fixed order; a predicate file keeps the file's). The same inputs always give the
    /// same bytes.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a statement has only string keys and serializes")
    }
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
    Statement::new(
        vec![Subject::new(repository_name, manifest_digest)],
        predicate_type,
        predicate,
    )
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
    fn an_absent_predicate_and_subject_name_read_as_empty() {
        let absent = br#"{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"00"}}],"predicateType":"t"}"#;
        let s: Statement = serde_json::from_slice(absent).unwrap();
        assert_eq!(s.predicate, json!({}));
        assert_eq!(s.subject[0].name, "");
        assert_eq!(s.subject[0].sha256(), Some("00"));
    }

    #[test]
    fn a_resource_descriptor_subject_writes_only_its_set_fields() {
        let d = digest(1);
        let s = Statement::new(
            vec![ResourceDescriptor {
                digest: sha256_digest(&d),
                ..Default::default()
            }],
            "t",
            json!({}),
        );
        assert_eq!(
            String::from_utf8(s.to_json_bytes()).unwrap(),
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{}"}}}}],"predicateType":"t","predicate":{{}}}}"#,
                d.hex()
            )
        );
    }
}
