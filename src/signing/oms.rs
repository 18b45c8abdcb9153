//! The OpenSSF model-signing (OMS) statement, as `model_signing` 1.x writes and reads it, and
//! the cosign-style statement. Pure: the files and their digests come from [`crate::model`].
//!
//! A model is a list of resources (file path → sha256), sorted by path segments. The in-toto
//! Statement v1 has one subject (the model name, and sha256 over the concatenated raw resource
//! digests) and the predicate `https://model_signing/signature/v1.0`:
//! `{"resources": [{"algorithm","name","digest"}], "serialization": {"method": "files",
//! "hash_type": "sha256", "ignore_paths"?, "allow_symlinks"}}`.
//!
//! Statements are parsed, never compared as text: `model_signing` emits the predicate's keys in
//! varying order.

use crate::digest::Digest;
use crate::intoto::{sha256_digest, ResourceDescriptor, Statement, Subject};
use crate::media_types::{IN_TOTO_STATEMENT_V1, PREDICATE_COSIGN_SIGN, PREDICATE_MODEL_SIGNING};
use crate::model::walk::DEFAULT_IGNORES;
use crate::model::{ModelPath, WalkOptions};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The only serialization method and hash oci-model reads and writes (the interop target).
pub const METHOD_FILES: &str = "files";
pub const HASH_SHA256: &str = "sha256";
/// The resource name `model_signing` gives a model that is a single file.
pub const SINGLE_FILE: &str = ".";

#[derive(Debug, thiserror::Error)]
pub enum OmsError {
    #[error("invalid resource name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("resource {name:?} is listed twice")]
    Duplicate { name: String },
    #[error("model-signing statement: {0}")]
    Statement(String),
}

/// Check a resource name: [`SINGLE_FILE`], or a [`ModelPath`].
pub fn validate_name(name: &str) -> Result<(), OmsError> {
    if name == SINGLE_FILE {
        return Ok(());
    }
    ModelPath::new(name)
        .map(drop)
        .map_err(|reason| OmsError::BadName {
            name: name.chars().take(200).collect(),
            reason,
        })
}

/// Normalise a model-relative ignore path (`./a/b/` → `a/b`); `None` if it points outside the
/// model (`..`, absolute) or is the model root itself.
pub fn normalize_ignore_path(path: &str) -> Option<String> {
    if path.starts_with('/') {
        return None;
    }
    let mut segs = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => return None,
            s => segs.push(s),
        }
    }
    if segs.is_empty() {
        None
    } else {
        Some(segs.join("/"))
    }
}

/// `name` is `ignore` or lies beneath it.
fn is_ignored(name: &str, ignore: &str) -> bool {
    name == ignore
        || (name.len() > ignore.len()
            && name.starts_with(ignore)
            && name.as_bytes()[ignore.len()] == b'/')
}

/// One file of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// [`SINGLE_FILE`] or a [`ModelPath`].
    pub name: String,
    pub digest: Digest,
}

/// The `serialization` parameters (method `files`, hash `sha256`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Serialization {
    pub allow_symlinks: bool,
    /// Model-relative paths left out of the signature (written only when non-empty, as
    /// `model_signing` does).
    pub ignore_paths: Vec<String>,
}

impl Serialization {
    /// What signing a local model records: the normalised `ignore_paths` (files or whole
    /// directories), plus `.git`, `.gitattributes`, `.github`, `.gitignore` when
    /// `ignore_git_paths`; symbolic links followed when `allow_symlinks` (else refused).
    pub fn for_signing(
        ignore_paths: &[String],
        ignore_git_paths: bool,
        allow_symlinks: bool,
    ) -> Self {
        let mut ignores: Vec<String> = ignore_paths
            .iter()
            .filter_map(|p| normalize_ignore_path(p))
            .collect();
        if ignore_git_paths {
            ignores.extend(DEFAULT_IGNORES.iter().map(|s| s.to_string()));
        }
        Serialization {
            allow_symlinks,
            ignore_paths: sorted_unique(ignores),
        }
    }

    /// How to list the local files these parameters sign.
    pub fn walk_options(&self) -> WalkOptions {
        WalkOptions {
            allow_symlinks: self.allow_symlinks,
            ignore: Vec::new(),
            keep_git_paths: true,
            exclude: self.ignore_paths.clone(),
        }
    }
}

/// The model as signed: what an OMS statement says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelStatement {
    /// Informative model name (the directory name); not checked on verification.
    pub name: String,
    /// Sorted by path segments, unique.
    pub resources: Vec<Resource>,
    pub serialization: Serialization,
}

/// The predicate `https://model_signing/signature/v1.0` (field order = `model_signing`'s).
#[derive(Serialize, Deserialize)]
struct Predicate {
    resources: Vec<PredicateResource>,
    serialization: PredicateSerialization,
}

#[derive(Serialize, Deserialize)]
struct PredicateResource {
    algorithm: String,
    name: String,
    /// Lowercase hex.
    digest: String,
}

#[derive(Serialize, Deserialize)]
struct PredicateSerialization {
    method: String,
    hash_type: String,
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        skip_serializing_if = "Vec::is_empty"
    )]
    ignore_paths: Vec<String>,
    /// A boolean; `model_signing` before 1.0 wrote `"true"`/`"false"`.
    #[serde(default, deserialize_with = "lenient_bool")]
    allow_symlinks: bool,
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Option::<Vec<String>>::deserialize(d).map(Option::unwrap_or_default)
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(serde::de::Error::custom(format!(
            "allow_symlinks is {other}, expected a boolean"
        ))),
    }
}

/// The resource name of a local file: its model path, or [`SINGLE_FILE`] for a model that is
/// one file.
pub fn local_name(path: &Option<ModelPath>) -> &str {
    path.as_deref().unwrap_or(SINGLE_FILE)
}

impl ModelStatement {
    /// Build from (path, digest) pairs in any order, e.g. an OCI manifest's layers
    /// (`org.cncf.model.filepath` + layer digest). Names are checked and sorted; duplicates
    /// are refused.
    pub fn from_pairs<N: Into<String>>(
        name: &str,
        pairs: impl IntoIterator<Item = (N, Digest)>,
        serialization: Serialization,
    ) -> Result<Self, OmsError> {
        let mut resources: Vec<Resource> = pairs
            .into_iter()
            .map(|(name, digest)| Resource {
                name: name.into(),
                digest,
            })
            .collect();
        for r in &resources {
            validate_name(&r.name)?;
        }
        resources.sort_by(|a, b| crate::model::paths::compare(&a.name, &b.name));
        if let Some(w) = resources.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(OmsError::Duplicate {
                name: w[0].name.clone(),
            });
        }
        let mut serialization = serialization;
        serialization.ignore_paths = sorted_unique(serialization.ignore_paths);
        Ok(ModelStatement {
            name: if name.is_empty() {
                "model".into()
            } else {
                name.into()
            },
            resources,
            serialization,
        })
    }

    /// The statement for a local model's files and digests ([`crate::model::digest_local`],
    /// listed with [`Serialization::walk_options`]).
    pub fn for_files(
        name: &str,
        files: &[(Option<ModelPath>, Digest)],
        serialization: Serialization,
    ) -> Result<Self, OmsError> {
        let pairs = files.iter().map(|(p, d)| (local_name(p), d.clone()));
        Self::from_pairs(name, pairs, serialization)
    }

    /// sha256 over the concatenated raw 32-byte resource digests, in listed order.
    pub fn root_digest(&self) -> Digest {
        let mut h = Sha256::new();
        for r in &self.resources {
            h.update(r.digest.raw());
        }
        Digest::from_raw(&h.finalize().into())
    }

    /// The in-toto statement (key order as `model_signing` writes it).
    pub fn to_statement(&self) -> Statement {
        let predicate = Predicate {
            resources: self
                .resources
                .iter()
                .map(|r| PredicateResource {
                    algorithm: HASH_SHA256.into(),
                    name: r.name.clone(),
                    digest: r.digest.hex().into(),
                })
                .collect(),
            serialization: PredicateSerialization {
                method: METHOD_FILES.into(),
                hash_type: HASH_SHA256.into(),
                ignore_paths: self.serialization.ignore_paths.clone(),
                allow_symlinks: self.serialization.allow_symlinks,
            },
        };
        Statement::new(
            vec![Subject::new(&self.name, &self.root_digest())],
            PREDICATE_MODEL_SIGNING,
            serde_json::to_value(predicate).expect("string keys only: serializes"),
        )
    }

    /// The DSSE payload bytes, formatted as `model_signing` does (protobuf `MessageToJson`:
    /// two-space indent, non-ASCII escaped, no trailing newline).
    pub fn to_payload(&self) -> Vec<u8> {
        python_json(&self.to_statement())
    }

    /// Parse and check a statement: `_type`, predicate type, exactly one subject whose
    /// digest equals the root digest of the resources, method `files`, hash `sha256`, valid
    /// and unique resource names.
    pub fn parse(payload: &[u8]) -> Result<Self, OmsError> {
        let bad = |m: String| OmsError::Statement(m);
        let statement: Statement = serde_json::from_slice(payload).map_err(|e| {
            bad(if e.is_data() {
                format!("the payload is not an in-toto statement: {e}")
            } else {
                format!("the payload is not JSON: {e}")
            })
        })?;
        if statement.type_ != IN_TOTO_STATEMENT_V1 {
            return Err(bad(format!(
                "_type is {:?}, expected {IN_TOTO_STATEMENT_V1:?}",
                statement.type_
            )));
        }
        if statement.predicate_type != PREDICATE_MODEL_SIGNING {
            return Err(bad(format!(
                "predicateType is {:?}, expected {PREDICATE_MODEL_SIGNING:?}",
                statement.predicate_type
            )));
        }
        let [subject] = statement.subject.as_slice() else {
            return Err(bad(format!(
                "expected exactly one subject, found {}",
                statement.subject.len()
            )));
        };
        let subject_hex = subject
            .sha256()
            .ok_or_else(|| bad("the subject has no sha256 digest".into()))?;
        let subject_digest = parse_hex(subject_hex).ok_or_else(|| {
            bad(format!(
                "subject digest {subject_hex:?} is not a sha256 hex digest"
            ))
        })?;
        let predicate = Predicate::deserialize(&statement.predicate).map_err(|e| {
            bad(format!(
                "the predicate is not a model-signing predicate: {e}"
            ))
        })?;
        let ser = predicate.serialization;
        if ser.method != METHOD_FILES {
            return Err(bad(format!(
                "serialization method {:?} is not supported (oci-model reads \"files\")",
                ser.method
            )));
        }
        if ser.hash_type != HASH_SHA256 {
            return Err(bad(format!(
                "hash_type {:?} is not supported (oci-model reads \"sha256\")",
                ser.hash_type
            )));
        }
        let mut resources = Vec::with_capacity(predicate.resources.len());
        let mut seen = BTreeSet::new();
        for r in predicate.resources {
            if r.algorithm != HASH_SHA256 {
                return Err(bad(format!(
                    "resource {:?} uses algorithm {:?}, expected \"sha256\"",
                    r.name, r.algorithm
                )));
            }
            let digest = parse_hex(&r.digest).ok_or_else(|| {
                bad(format!(
                    "resource {:?} digest {:?} is not a sha256 hex digest",
                    r.name, r.digest
                ))
            })?;
            validate_name(&r.name)?;
            if !seen.insert(r.name.clone()) {
                return Err(OmsError::Duplicate { name: r.name });
            }
            resources.push(Resource {
                name: r.name,
                digest,
            });
        }
        let statement = ModelStatement {
            name: subject.name.clone(),
            resources,
            serialization: Serialization {
                allow_symlinks: ser.allow_symlinks,
                ignore_paths: ser.ignore_paths,
            },
        };
        let root = statement.root_digest();
        if root != subject_digest {
            return Err(bad(format!(
                "inconsistent: the subject digest is {subject_digest} but the resources hash to {root}"
            )));
        }
        Ok(statement)
    }

    /// The resources as a name → digest map.
    pub fn digests(&self) -> BTreeMap<&str, &Digest> {
        self.resources
            .iter()
            .map(|r| (r.name.as_str(), &r.digest))
            .collect()
    }

    /// Compare the signed resources with the actual files (name → digest).
    pub fn compare<'a>(
        &self,
        actual: impl IntoIterator<Item = (&'a str, &'a Digest)>,
    ) -> Comparison {
        let expected = self.digests();
        let actual: BTreeMap<&str, &Digest> = actual.into_iter().collect();
        let mut c = Comparison {
            checked: expected.len(),
            ..Comparison::default()
        };
        for (name, want) in &expected {
            match actual.get(name) {
                None => c.missing.push(name.to_string()),
                Some(got) if got != want => c.changed.push(Changed {
                    name: name.to_string(),
                    expected: (*want).clone(),
                    actual: (*got).clone(),
                }),
                Some(_) => {}
            }
        }
        c.extra = actual
            .keys()
            .filter(|k| !expected.contains_key(*k))
            .map(|k| k.to_string())
            .collect();
        for list in [&mut c.missing, &mut c.extra] {
            list.sort_by(|a, b| crate::model::paths::compare(a, b));
        }
        c
    }

    /// Compare the signed resources with a local model's files and digests
    /// ([`crate::model::digest_local`], listed with [`ModelStatement::verification_walk`]).
    pub fn check_files(&self, files: &[(Option<ModelPath>, Digest)]) -> Comparison {
        self.compare(files.iter().map(|(p, d)| (local_name(p), d)))
    }

    /// The ignore set to re-apply when checking a directory against this statement: its
    /// `ignore_paths`, the caller's `extra`, and the default git paths unless the statement
    /// signed files under them (`--no-ignore-git-paths` at signing).
    pub fn verification_ignores(&self, extra: &[String]) -> Vec<String> {
        let mut out: Vec<String> = self
            .serialization
            .ignore_paths
            .iter()
            .chain(extra)
            .filter_map(|p| normalize_ignore_path(p))
            .collect();
        for git in DEFAULT_IGNORES {
            let signed_beneath = self.resources.iter().any(|r| is_ignored(&r.name, git));
            if !signed_beneath {
                out.push(git.to_string());
            }
        }
        sorted_unique(out)
    }

    /// How to list a local model to check it against this statement: the
    /// [`Self::verification_ignores`] left out, symbolic links followed when the statement or
    /// the caller allows them.
    pub fn verification_walk(&self, extra: &[String], allow_symlinks: bool) -> WalkOptions {
        WalkOptions {
            allow_symlinks: allow_symlinks || self.serialization.allow_symlinks,
            ignore: Vec::new(),
            keep_git_paths: true,
            exclude: self.verification_ignores(extra),
        }
    }
}

fn parse_hex(hex: &str) -> Option<Digest> {
    format!("sha256:{hex}").parse().ok()
}

fn sorted_unique(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// One file whose digest differs from the signed one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub name: String,
    pub expected: Digest,
    pub actual: Digest,
}

/// Result of comparing signed resources with actual files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Number of signed resources.
    pub checked: usize,
    /// Signed but absent.
    pub missing: Vec<String>,
    /// Present but not signed.
    pub extra: Vec<String>,
    /// Present with another digest.
    pub changed: Vec<Changed>,
}

impl Comparison {
    pub fn is_match(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.changed.is_empty()
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_match() {
            return write!(f, "all {} signed files match", self.checked);
        }
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!("missing files: {}", self.missing.join(", ")));
        }
        if !self.extra.is_empty() {
            parts.push(format!(
                "files not in the signature: {}",
                self.extra.join(", ")
            ));
        }
        for c in &self.changed {
            parts.push(format!(
                "changed file {}: signed {}, found {}",
                c.name, c.expected, c.actual
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

/// The cosign-style statement: subject = the manifest digest (no name, as cosign 3 writes
/// it), predicate type `https://sigstore.dev/cosign/sign/v1`, empty predicate (compact JSON).
pub fn cosign_statement(manifest_digest: &Digest) -> Vec<u8> {
    let subject = ResourceDescriptor {
        digest: sha256_digest(manifest_digest),
        ..Default::default()
    };
    Statement::new(
        vec![subject],
        PREDICATE_COSIGN_SIGN,
        Value::Object(Default::default()),
    )
    .to_json_bytes()
}

/// Pretty JSON as Python's `json.dumps(indent=2, ensure_ascii=True)` writes it.
pub fn python_json(v: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiPretty::default());
    v.serialize(&mut ser).expect("string keys only: serializes");
    out
}

/// `Formatter` methods that `AsciiPretty` passes to its `PrettyFormatter` unchanged: those
/// with only the writer, then (after `first:`) those that also take `first: bool`.
macro_rules! delegate_to_pretty {
    ($($plain:ident),* ; first: $($first:ident),*) => {
        $(fn $plain<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
            self.0.$plain(w)
        })*
        $(fn $first<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            self.0.$first(w, first)
        })*
    };
}

/// serde_json's pretty formatter with non-ASCII characters escaped as `\uXXXX`.
#[derive(Default)]
struct AsciiPretty<'a>(serde_json::ser::PrettyFormatter<'a>);

impl serde_json::ser::Formatter for AsciiPretty<'_> {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
    delegate_to_pretty! {
        begin_array, end_array, end_array_value, begin_object, end_object,
        begin_object_value, end_object_value;
        first: begin_array_value, begin_object_key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelError;
    use serde_json::json;

    fn d(s: &[u8]) -> Digest {
        Digest::of(s)
    }

    #[test]
    fn names_are_validated() {
        for ok in [".", "a", "a/b", ".hidden", "a..b"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "/a", "a/../b", "./a", "a//b", "a\\b", "a\0", "..", "a/"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
        // Accepted here before the model-path rules became the one rule; pull refuses them.
        for bad in ["C:x", "c:/x", "a\nb", "tab\tname", "\u{1b}[31mred"] {
            let err = validate_name(bad).unwrap_err();
            assert!(matches!(err, OmsError::BadName { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn ignore_paths_normalise_and_match_by_segment() {
        assert_eq!(normalize_ignore_path("./a/b/").as_deref(), Some("a/b"));
        assert_eq!(normalize_ignore_path("../x"), None);
        assert_eq!(normalize_ignore_path("/abs"), None);
        assert_eq!(normalize_ignore_path("."), None);
        assert!(is_ignored(".git", ".git"));
        assert!(is_ignored(".git/config", ".git"));
        assert!(!is_ignored(".gitignore", ".git"));
        assert!(is_ignored("sub/x/y", "sub/x"));
        assert!(!is_ignored("sub/xy", "sub/x"));
    }

    #[test]
    fn statement_round_trips_with_model_signing_root_digest() {
        let st = ModelStatement::from_pairs(
            "m",
            vec![
                ("a.txt".to_string(), d(b"")),
                ("a/b".to_string(), d(b"hi\n")),
                ("a-b".to_string(), d(b"x\n")),
                (".hidden".to_string(), d(b"h\n")),
            ],
            Serialization {
                allow_symlinks: false,
                ignore_paths: vec!["model.sig".into(), ".git".into()],
            },
        )
        .unwrap();
        // The same directory signed by model_signing 1.1.1 has this subject digest.
        assert_eq!(
            st.root_digest().hex(),
            "0b8cf5881240b094d8e59214fcd55edeb43888ca5eea58d957c9decf16be8e6b"
        );
        // The layout is pinned by payload_bytes_are_pythons_json_dumps.
        let back = ModelStatement::parse(&st.to_payload()).unwrap();
        assert_eq!(back, st);
        let names: Vec<_> = back.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec![".hidden", "a/b", "a-b", "a.txt"]);
    }

    #[test]
    fn payload_bytes_are_pythons_json_dumps() {
        // json.dumps(statement, indent=2, ensure_ascii=True), as model_signing writes it.
        let st = ModelStatement::from_pairs(
            "modèle",
            vec![("é.bin", d(b"x")), ("a/b", d(b"hi\n"))],
            Serialization {
                allow_symlinks: false,
                ignore_paths: vec!["model.sig".into(), ".git".into()],
            },
        )
        .unwrap();
        let expected = r#"{
  "_type": "https://in-toto.io/Statement/v1",
  "subject": [
    {
      "name": "mod\u00e8le",
      "digest": {
        "sha256": "da88fd6e548c3e170d3b59222348d1eed0bff6f0fac45b73834551a5351a8145"
      }
    }
  ],
  "predicateType": "https://model_signing/signature/v1.0",
  "predicate": {
    "resources": [
      {
        "algorithm": "sha256",
        "name": "a/b",
        "digest": "98ea6e4f216f2fb4b69fff9b3a44842c38686ca685f3f55dc48c5d3fb1107be4"
      },
      {
        "algorithm": "sha256",
        "name": "\u00e9.bin",
        "digest": "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
      }
    ],
    "serialization": {
      "method": "files",
      "hash_type": "sha256",
      "ignore_paths": [
        ".git",
        "model.sig"
      ],
      "allow_symlinks": false
    }
  }
}"#;
        assert_eq!(String::from_utf8(st.to_payload()).unwrap(), expected);
    }

    #[test]
    fn empty_ignore_paths_are_omitted_and_non_ascii_escaped() {
        let st = ModelStatement::from_pairs(
            "modèle",
            vec![("é.bin".to_string(), d(b"x"))],
            Serialization::default(),
        )
        .unwrap();
        let payload = String::from_utf8(st.to_payload()).unwrap();
        assert!(payload.is_ascii());
        assert!(payload.contains("\"name\": \"mod\\u00e8le\""), "{payload}");
        assert!(!payload.contains("ignore_paths"));
        assert_eq!(ModelStatement::parse(payload.as_bytes()).unwrap(), st);
    }

    #[test]
    fn parse_accepts_any_key_order_and_rejects_inconsistencies() {
        let good = ModelStatement::from_pairs(
            "m",
            vec![("f".to_string(), d(b"1"))],
            Serialization::default(),
        )
        .unwrap();
        let value = |st: &ModelStatement| serde_json::to_value(st.to_statement()).unwrap();
        let mut v = value(&good);
        // Reordered keys, ignore_paths present, string allow_symlinks (pre-1.0 style).
        v["predicate"]["serialization"] = json!({"ignore_paths": ["x"], "allow_symlinks": "false", "hash_type": "sha256", "method": "files"});
        let parsed = ModelStatement::parse(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(parsed.serialization.ignore_paths, vec!["x"]);

        type Mutation = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "subject digest",
                Box::new(|v| v["subject"][0]["digest"]["sha256"] = json!("00".repeat(32))),
            ),
            (
                "predicateType",
                Box::new(|v| v["predicateType"] = json!("https://model_signing/Digests/v0.1")),
            ),
            (
                "_type",
                Box::new(|v| v["_type"] = json!("https://in-toto.io/Statement/v0.1")),
            ),
            (
                "exactly one subject",
                Box::new(|v| v["subject"] = json!([])),
            ),
            (
                "shards",
                Box::new(|v| v["predicate"]["serialization"]["method"] = json!("shards")),
            ),
            (
                "blake3",
                Box::new(|v| v["predicate"]["serialization"]["hash_type"] = json!("blake3")),
            ),
            (
                "not a sha256",
                Box::new(|v| v["predicate"]["resources"][0]["digest"] = json!("zz")),
            ),
            (
                "invalid resource name",
                Box::new(|v| v["predicate"]["resources"][0]["name"] = json!("../etc/passwd")),
            ),
            (
                "missing field `resources`",
                Box::new(|v| {
                    v["predicate"].as_object_mut().unwrap().remove("resources");
                }),
            ),
        ];
        for (want, mutate) in cases {
            let mut v = value(&good);
            mutate(&mut v);
            let err = ModelStatement::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
        let err = ModelStatement::parse(b"{not json").unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
        let err = ModelStatement::parse(b"[1]").unwrap_err();
        assert!(
            err.to_string().contains("not an in-toto statement"),
            "{err}"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let err = ModelStatement::from_pairs(
            "m",
            vec![("f".to_string(), d(b"1")), ("f".to_string(), d(b"2"))],
            Serialization::default(),
        )
        .unwrap_err();
        assert!(matches!(err, OmsError::Duplicate { .. }));
    }

    #[test]
    fn compare_reports_missing_extra_changed_by_name() {
        let st = ModelStatement::from_pairs(
            "m",
            vec![
                ("keep".to_string(), d(b"k")),
                ("gone".to_string(), d(b"g")),
                ("edit".to_string(), d(b"e")),
            ],
            Serialization::default(),
        )
        .unwrap();
        let (k, e2, n) = (d(b"k"), d(b"E"), d(b"n"));
        let c = st.compare(vec![("keep", &k), ("edit", &e2), ("new", &n)]);
        assert!(!c.is_match());
        assert_eq!(c.missing, vec!["gone"]);
        assert_eq!(c.extra, vec!["new"]);
        assert_eq!(c.changed.len(), 1);
        assert_eq!(c.changed[0].name, "edit");
        let msg = c.to_string();
        assert!(msg.contains("missing files: gone"), "{msg}");
        assert!(msg.contains("files not in the signature: new"), "{msg}");
        assert!(msg.contains("changed file edit"), "{msg}");
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let p = t.path();
        std::fs::create_dir_all(p.join("a")).unwrap();
        std::fs::create_dir_all(p.join(".git")).unwrap();
        std::fs::create_dir_all(p.join("empty-dir")).unwrap();
        std::fs::write(p.join("a/b"), "hi\n").unwrap();
        std::fs::write(p.join("a-b"), "x\n").unwrap();
        std::fs::write(p.join("a.txt"), "").unwrap();
        std::fs::write(p.join(".hidden"), "h\n").unwrap();
        std::fs::write(p.join(".git/c"), "g\n").unwrap();
        std::fs::write(p.join("model.sig"), "{}").unwrap();
        t
    }

    /// Sign a local tree as sign-local does: list and hash it with `model`, build the statement.
    fn sign_tree(
        model: &std::path::Path,
        serialization: Serialization,
    ) -> Result<ModelStatement, ModelError> {
        let files = crate::model::digest_local(model, &serialization.walk_options())?;
        Ok(
            ModelStatement::for_files(&crate::model::model_name(model), &files, serialization)
                .unwrap(),
        )
    }

    /// Check a local tree as verify-local does.
    fn check_tree(st: &ModelStatement, model: &std::path::Path) -> Comparison {
        let files = crate::model::digest_local(model, &st.verification_walk(&[], false)).unwrap();
        st.check_files(&files)
    }

    fn signing(ignore_git_paths: bool) -> Serialization {
        Serialization::for_signing(&["model.sig".into()], ignore_git_paths, false)
    }

    #[test]
    fn a_local_tree_signs_as_model_signing_does() {
        let t = tree();
        let st = sign_tree(t.path(), signing(true)).unwrap();
        let names: Vec<_> = st.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec![".hidden", "a/b", "a-b", "a.txt"]);
        assert_eq!(
            st.root_digest().hex(),
            "0b8cf5881240b094d8e59214fcd55edeb43888ca5eea58d957c9decf16be8e6b"
        );
        assert_eq!(
            st.serialization.ignore_paths,
            vec![
                ".git",
                ".gitattributes",
                ".github",
                ".gitignore",
                "model.sig"
            ]
        );
        // Checking the same tree passes; the statement's ignores are re-applied.
        let c = check_tree(&st, t.path());
        assert!(c.is_match(), "{c}");
        assert_eq!(c.checked, 4);
    }

    #[test]
    fn checking_a_tree_finds_extra_missing_changed() {
        let t = tree();
        let st = sign_tree(t.path(), signing(true)).unwrap();
        std::fs::write(t.path().join("a/new"), "n").unwrap();
        std::fs::remove_file(t.path().join("a-b")).unwrap();
        std::fs::write(t.path().join("a.txt"), "changed").unwrap();
        std::fs::write(t.path().join(".git/d"), "ignored").unwrap();
        let c = check_tree(&st, t.path());
        assert_eq!(c.extra, vec!["a/new"]);
        assert_eq!(c.missing, vec!["a-b"]);
        assert_eq!(c.changed.len(), 1);
        assert_eq!(c.changed[0].name, "a.txt");
        assert_eq!(c.changed[0].actual, d(b"changed"));
    }

    #[test]
    fn git_files_signed_with_no_ignore_git_paths_are_checked() {
        let t = tree();
        let st = sign_tree(t.path(), signing(false)).unwrap();
        assert!(st.resources.iter().any(|r| r.name == ".git/c"));
        assert!(check_tree(&st, t.path()).is_match());
        std::fs::write(t.path().join(".git/c"), "tampered").unwrap();
        let c = check_tree(&st, t.path());
        assert_eq!(c.changed[0].name, ".git/c");
    }

    #[test]
    fn single_file_model_is_named_dot() {
        let t = tree();
        let st = sign_tree(&t.path().join("a/b"), Serialization::default()).unwrap();
        assert_eq!(st.name, "b");
        assert_eq!(st.resources.len(), 1);
        assert_eq!(st.resources[0].name, ".");
        assert_eq!(st.resources[0].digest, d(b"hi\n"));
        assert!(check_tree(&st, &t.path().join("a/b")).is_match());
    }

    #[test]
    fn symlinks_are_refused_unless_allowed() {
        let t = tree();
        std::os::unix::fs::symlink("a.txt", t.path().join("link")).unwrap();
        let err = sign_tree(t.path(), Serialization::default()).unwrap_err();
        assert!(err.to_string().contains("link is a symbolic link"), "{err}");
        let st = sign_tree(t.path(), Serialization::for_signing(&[], false, true)).unwrap();
        let link = st.resources.iter().find(|r| r.name == "link").unwrap();
        assert_eq!(link.digest, d(b""));
        assert!(st.serialization.allow_symlinks);
    }

    #[test]
    fn cosign_statement_layout() {
        let digest = d(b"manifest");
        let bytes = cosign_statement(&digest);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            format!(
                r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{}"}}}}],"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{{}}}}"#,
                digest.hex()
            )
        );
    }
}
