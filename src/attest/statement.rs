//! in-toto Statement v1 (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>).

use super::{AttestError, Result};
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

    /// Parses a statement from a (verified) DSSE payload. Accepts Statement v1 and, for
    /// attestations made by older cosign versions, v0.1; anything else is an error.
    ///
    /// Verify: call it on the payload of a bundle whose signature has been checked, then run
    /// [`check_subject`] and [`check_predicate_type_annotation`] before trusting the predicate.
    pub fn from_json(bytes: &[u8]) -> Result<Statement> {
        let statement: Statement = serde_json::from_slice(bytes)
            .map_err(|e| AttestError::InvalidStatement(e.to_string()))?;
        if statement.type_ != IN_TOTO_STATEMENT_V1 && statement.type_ != IN_TOTO_STATEMENT_V01 {
            return Err(AttestError::InvalidStatement(format!(
                "_type is {:?}, expected {IN_TOTO_STATEMENT_V1:?}",
                statement.type_
            )));
        }
        if statement.subject.is_empty() {
            return Err(AttestError::InvalidStatement(
                "no subject: a statement must name at least one subject".into(),
            ));
        }
        if statement.predicate_type.is_empty() {
            return Err(AttestError::InvalidStatement(
                "predicateType is empty".into(),
            ));
        }
        Ok(statement)
    }
}

/// Checks that a verified statement is about the manifest `manifest_digest`: some subject's
/// `digest.sha256` must equal its hex. An attestation copied from another model (its bundle
/// attached as a referrer of this one) fails here.
///
/// Verify: call on every verified attestation with the digest the target resolved to; count
/// the attestation only on `Ok`.
pub fn check_subject(statement: &Statement, manifest_digest: &Digest) -> Result<(), String> {
    if statement
        .subject
        .iter()
        .any(|s| s.digest.get("sha256").map(String::as_str) == Some(manifest_digest.hex()))
    {
        return Ok(());
    }
    let found: Vec<String> = statement
        .subject
        .iter()
        .map(|s| match s.digest.get("sha256") {
            Some(hex) => format!("{} sha256:{hex}", s.name),
            None => format!("{} (no sha256 digest)", s.name),
        })
        .collect();
    Err(format!(
        "attestation subject is not the model manifest: expected sha256 {manifest_digest}, found {}",
        found.join(", ")
    ))
}

/// Checks that the signed `predicateType` equals the referrer's (unsigned)
/// `dev.sigstore.bundle.predicateType` annotation. The annotation is only a discovery hint: an
/// attestation whose annotation claims another type is rejected rather than counted under
/// either type. `None` (no annotation) passes.
///
/// Verify: call with the referrer manifest's annotation value after the signature check.
pub fn check_predicate_type_annotation(
    statement: &Statement,
    annotation: Option<&str>,
) -> Result<(), String> {
    match annotation {
        Some(a) if a != statement.predicate_type => Err(format!(
            "the referrer annotation dev.sigstore.bundle.predicateType says {a:?} but the signed \
             statement's predicateType is {:?}",
            statement.predicate_type
        )),
        _ => Ok(()),
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
        // Same inputs, same bytes; and it parses back.
        assert_eq!(s.to_json_bytes(), s.clone().to_json_bytes());
        assert_eq!(Statement::from_json(&s.to_json_bytes()).unwrap(), s);
    }

    #[test]
    fn from_json_rejects_other_types_and_empty_subjects() {
        let bad_type = br#"{"_type":"https://example.com/x","subject":[{"name":"a","digest":{"sha256":"00"}}],"predicateType":"t","predicate":{}}"#;
        let err = Statement::from_json(bad_type).unwrap_err().to_string();
        assert!(err.contains("https://example.com/x"), "{err}");
        let no_subject =
            br#"{"_type":"https://in-toto.io/Statement/v1","subject":[],"predicateType":"t"}"#;
        assert!(Statement::from_json(no_subject)
            .unwrap_err()
            .to_string()
            .contains("no subject"));
        let absent_predicate = br#"{"_type":"https://in-toto.io/Statement/v0.1","subject":[{"digest":{"sha256":"00"}}],"predicateType":"t"}"#;
        assert_eq!(
            Statement::from_json(absent_predicate).unwrap().predicate,
            json!({})
        );
        assert!(Statement::from_json(b"[1]").is_err());
    }

    #[test]
    fn subject_check_passes_for_the_manifest_and_fails_for_another() {
        let s = statement_for_manifest("r", &digest(1), "t", json!({}));
        check_subject(&s, &digest(1)).unwrap();
        let err = check_subject(&s, &digest(2)).unwrap_err();
        assert!(err.contains(&digest(2).to_string()), "{err}");
        assert!(
            err.contains(&format!("r sha256:{}", digest(1).hex())),
            "{err}"
        );
    }

    #[test]
    fn predicate_type_must_match_the_annotation() {
        let s =
            statement_for_manifest("r", &digest(1), "https://slsa.dev/provenance/v1", json!({}));
        check_predicate_type_annotation(&s, Some("https://slsa.dev/provenance/v1")).unwrap();
        check_predicate_type_annotation(&s, None).unwrap();
        let err =
            check_predicate_type_annotation(&s, Some("https://spdx.dev/Document")).unwrap_err();
        assert!(
            err.contains("https://spdx.dev/Document") && err.contains("slsa.dev"),
            "{err}"
        );
    }
}
