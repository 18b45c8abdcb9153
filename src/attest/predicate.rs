//! `--type` shortcuts and `--predicate FILE`.

use super::{AttestError, Result};
use crate::intoto::IN_TOTO_STATEMENT_V01;
use crate::media_types::{
    IN_TOTO_STATEMENT_V1, MAX_BUNDLE_SIZE, PREDICATE_CYCLONEDX, PREDICATE_LINK,
    PREDICATE_SLSA_PROVENANCE_V1, PREDICATE_SPDX,
};
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// Largest predicate file read (2.8 MiB). The statement travels base64-encoded (4/3 larger)
/// in a Sigstore bundle, and bundles are read back up to
/// [`crate::media_types::MAX_BUNDLE_SIZE`] (4 MiB): this leaves 256 KiB for the envelope,
/// signature and certificates, so every attestation we write can be read by verify.
pub const MAX_PREDICATE_SIZE: u64 = (MAX_BUNDLE_SIZE - 256 * 1024) / 4 * 3;

/// Shortcut → predicate type URI. `spdxjson` is cosign's name for the same SPDX type. (cosign's
/// `slsaprovenance` means SLSA provenance v0.2, so it is deliberately not an alias of v1.)
pub const SHORTCUTS: &[(&str, &str)] = &[
    ("slsaprovenance1", PREDICATE_SLSA_PROVENANCE_V1),
    ("spdx", PREDICATE_SPDX),
    ("spdxjson", PREDICATE_SPDX),
    ("cyclonedx", PREDICATE_CYCLONEDX),
    ("link", PREDICATE_LINK),
];

/// The shortcut names, for messages.
pub const SHORTCUT_NAMES: &str = "slsaprovenance1, spdx, cyclonedx, link";

/// Maps `--type` (and `--attestation-type` at verify) to a predicate type URI: a shortcut
/// (`slsaprovenance1`, `spdx`, `cyclonedx`, `link`, case-insensitive) gives its URI; a value
/// containing `:` is taken as a URI as is; anything else is an error naming the shortcuts.
///
/// CLI: `let predicate_type = resolve_predicate_type(args.predicate_type.as_deref().unwrap())?;`
/// (exit 2 on error); verify maps each `--attestation-type` the same way.
pub fn resolve_predicate_type(value: &str) -> Result<String> {
    let trimmed = value.trim();
    if let Some((_, uri)) = SHORTCUTS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
    {
        return Ok(uri.to_string());
    }
    if trimmed.contains(':') && !trimmed.chars().any(char::is_whitespace) {
        return Ok(trimmed.to_string());
    }
    Err(AttestError::UnknownPredicateType {
        given: value.to_string(),
        shortcuts: SHORTCUT_NAMES,
    })
}

/// Reads `--predicate FILE` for `--type predicate_type` (already resolved with
/// [`resolve_predicate_type`]). The file must be at most [`MAX_PREDICATE_SIZE`] bytes of JSON
/// holding an object. Rejected with an error naming the file:
/// - not JSON (`PREDICATE FILE … is not JSON: line X column Y …`);
/// - JSON that is not an object (the in-toto spec makes the predicate an object);
/// - a complete in-toto Statement (its subject would be silently replaced: pass its
///   `predicate` alone);
/// - an object with a top-level `predicateType` different from `predicate_type`.
///
/// CLI: `let predicate = read_predicate_file(&path, &predicate_type)?;` then
/// [`super::statement_for_manifest`]. Blocking I/O on a small file: fine to call directly or
/// in `spawn_blocking`.
pub fn read_predicate_file(path: &Path, predicate_type: &str) -> Result<Value> {
    let read_err = |source| AttestError::Read {
        what: "predicate file",
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(AttestError::InvalidPredicate {
            path: path.to_path_buf(),
            reason: "not a regular file".into(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_PREDICATE_SIZE) as usize);
    file.take(MAX_PREDICATE_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_PREDICATE_SIZE {
        return Err(AttestError::TooLarge {
            what: "predicate file",
            path: path.to_path_buf(),
            size: meta.len().max(bytes.len() as u64),
            limit: MAX_PREDICATE_SIZE,
        });
    }
    parse_predicate(path, &bytes, predicate_type)
}

fn parse_predicate(path: &Path, bytes: &[u8], predicate_type: &str) -> Result<Value> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        let reason = e.to_string();
        // serde_json appends " at line X column Y": we print the position first.
        let reason = match reason.rfind(" at line ") {
            Some(i) => reason[..i].to_string(),
            None => reason,
        };
        AttestError::PredicateNotJson {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            reason,
        }
    })?;
    let invalid = |reason: String| AttestError::InvalidPredicate {
        path: path.to_path_buf(),
        reason,
    };
    let Value::Object(map) = &value else {
        return Err(invalid(format!(
            "the predicate must be a JSON object, found {}",
            json_kind(&value)
        )));
    };
    if let Some(Value::String(t)) = map.get("_type") {
        if t == IN_TOTO_STATEMENT_V1 || t == IN_TOTO_STATEMENT_V01 {
            let found = map
                .get("predicateType")
                .and_then(Value::as_str)
                .unwrap_or("none");
            if found != predicate_type {
                return Err(AttestError::PredicateTypeMismatch {
                    path: path.to_path_buf(),
                    found: found.to_string(),
                    expected: predicate_type.to_string(),
                });
            }
            return Err(invalid(format!(
                "this is a complete in-toto Statement ({t}); attest builds the statement \
                 itself with the model as subject: pass only its \"predicate\" object"
            )));
        }
    }
    if let Some(found) = map.get("predicateType") {
        let found = found
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| found.to_string());
        if found != predicate_type {
            return Err(AttestError::PredicateTypeMismatch {
                path: path.to_path_buf(),
                found,
                expected: predicate_type.to_string(),
            });
        }
    }
    Ok(value)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shortcuts_map_to_their_uris_and_uris_pass_through() {
        for (given, uri) in [
            ("slsaprovenance1", "https://slsa.dev/provenance/v1"),
            ("spdx", "https://spdx.dev/Document"),
            ("spdxjson", "https://spdx.dev/Document"),
            ("CycloneDX", "https://cyclonedx.org/bom"),
            ("link", "https://in-toto.io/attestation/link/v0.3"),
            ("https://example.com/eval/v1", "https://example.com/eval/v1"),
            ("urn:x:y", "urn:x:y"),
        ] {
            assert_eq!(resolve_predicate_type(given).unwrap(), uri, "{given}");
        }
    }

    #[test]
    fn unknown_shortcut_names_the_valid_ones() {
        for bad in ["slsa", "slsaprovenance", "provenance", "", "has space:x"] {
            let err = resolve_predicate_type(bad).unwrap_err().to_string();
            assert!(err.contains(SHORTCUT_NAMES), "{err}");
        }
    }

    fn write(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn reads_a_json_object_predicate() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "eval.json",
            br#"{"accuracy": 0.91, "dataset": "squad"}"#,
        );
        let v = read_predicate_file(&p, "https://example.com/eval/v1").unwrap();
        assert_eq!(v, json!({"accuracy": 0.91, "dataset": "squad"}));
    }

    #[test]
    fn predicate_file_not_json_reports_position() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "eval.yaml", b"{\n  \"a\": 1,\n  oops\n}");
        let err = read_predicate_file(&p, "https://example.com/eval/v1")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("PREDICATE FILE "), "{err}");
        assert!(
            err.contains("eval.yaml is not JSON: line 3 column 3"),
            "{err}"
        );
        let p = write(&dir, "bin", &[0xff, 0x00, 0x12]);
        let err = read_predicate_file(&p, "x:y").unwrap_err().to_string();
        assert!(err.contains("is not JSON: line 1"), "{err}");
    }

    #[test]
    fn predicate_must_be_an_object() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "a.json", b"[1,2]");
        let err = read_predicate_file(&p, "x:y").unwrap_err().to_string();
        assert!(
            err.contains("must be a JSON object, found an array"),
            "{err}"
        );
    }

    #[test]
    fn a_statement_or_a_different_predicate_type_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let stmt = json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "x", "digest": {"sha256": "00"}}],
            "predicateType": "https://spdx.dev/Document",
            "predicate": {}
        });
        let p = write(&dir, "stmt.json", stmt.to_string().as_bytes());
        let err = read_predicate_file(&p, "https://cyclonedx.org/bom").unwrap_err();
        assert!(
            matches!(err, AttestError::PredicateTypeMismatch { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("https://spdx.dev/Document"),
            "{err}"
        );
        let err = read_predicate_file(&p, "https://spdx.dev/Document")
            .unwrap_err()
            .to_string();
        assert!(err.contains("complete in-toto Statement"), "{err}");

        let p = write(
            &dir,
            "p.json",
            br#"{"predicateType": "https://a/b", "x": 1}"#,
        );
        let err = read_predicate_file(&p, "https://c/d")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"https://a/b\"") && err.contains("\"https://c/d\""),
            "{err}"
        );
        read_predicate_file(&p, "https://a/b").unwrap();
    }

    #[test]
    fn missing_and_oversized_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_predicate_file(&dir.path().join("nope.json"), "x:y")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read predicate file") && err.contains("nope.json"),
            "{err}"
        );
        let p = dir.path().join("big.json");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(MAX_PREDICATE_SIZE + 1).unwrap();
        let err = read_predicate_file(&p, "x:y").unwrap_err().to_string();
        assert!(
            err.contains(&format!("over the {MAX_PREDICATE_SIZE}-byte limit")),
            "{err}"
        );
        let err = read_predicate_file(dir.path(), "x:y")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
