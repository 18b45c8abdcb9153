//! The OpenSSF model-signing (OMS) statement, as `model_signing` 1.x writes and reads it
//! (DESIGN §8), and the cosign-style statement.
//!
//! A model is a list of resources (file path → sha256), sorted by path segments. The in-toto
//! Statement v1 has one subject (the model name, and sha256 over the concatenated raw resource
//! digests) and the predicate `https://model_signing/signature/v1.0`:
//! `{"resources": [{"algorithm","name","digest"}], "serialization": {"method": "files",
//! "hash_type": "sha256", "ignore_paths"?, "allow_symlinks"}}`.
//!
//! Statements are parsed, never compared as text: `model_signing` emits the predicate's keys in
//! varying order.

use crate::digest::{Digest, Hasher};
use crate::media_types::{IN_TOTO_STATEMENT_V1, PREDICATE_COSIGN_SIGN, PREDICATE_MODEL_SIGNING};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Paths `model_signing` ignores by default (unless `--no-ignore-git-paths`).
pub const DEFAULT_IGNORE_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];
/// The only serialization method and hash oci-model reads and writes (the interop target).
pub const METHOD_FILES: &str = "files";
pub const HASH_SHA256: &str = "sha256";

#[derive(Debug, thiserror::Error)]
pub enum OmsError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is a symbolic link: refused unless symbolic links are allowed (--allow-symlinks)"
    )]
    Symlink { path: String },
    #[error("{path} is neither a regular file nor a directory")]
    SpecialFile { path: String },
    #[error("{path}: the file name is not valid UTF-8")]
    NonUtf8 { path: String },
    #[error("invalid resource name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("resource {name:?} is listed twice")]
    Duplicate { name: String },
    #[error("model-signing statement: {0}")]
    Statement(String),
}

/// Compare two resource names by `/`-separated segments, so `a/b` < `a-b` < `a.txt` (as
/// Python's `PurePosixPath` ordering in `model_signing`).
pub fn compare_paths(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// Check a resource name: `.` (single-file model) or a relative POSIX path without `.`/`..`
/// or empty segments, NUL or backslash.
pub fn validate_name(name: &str) -> Result<(), OmsError> {
    let bad = |reason| {
        Err(OmsError::BadName {
            name: name.chars().take(200).collect(),
            reason,
        })
    };
    if name == "." {
        return Ok(());
    }
    if name.is_empty() {
        return bad("empty");
    }
    if name.starts_with('/') {
        return bad("absolute path");
    }
    if name.contains('\0') {
        return bad("contains NUL");
    }
    if name.contains('\\') {
        return bad("contains a backslash");
    }
    for seg in name.split('/') {
        match seg {
            "" => return bad("empty path segment"),
            "." | ".." => return bad("contains a `.` or `..` segment"),
            _ => {}
        }
    }
    Ok(())
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
fn is_ignored(name: &str, ignore: &[String]) -> bool {
    ignore.iter().any(|p| {
        name == p
            || (name.len() > p.len()
                && name.starts_with(p.as_str())
                && name.as_bytes()[p.len()] == b'/')
    })
}

/// One file of the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resource {
    /// POSIX path relative to the model root (`.` for a single-file model).
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

/// The model as signed: what an OMS statement says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelStatement {
    /// Informative model name (the directory name); not checked on verification.
    pub name: String,
    /// Sorted by path segments, unique.
    pub resources: Vec<Resource>,
    pub serialization: Serialization,
}

impl ModelStatement {
    /// Build from (path, digest) pairs in any order, e.g. an OCI manifest's layers
    /// (`org.cncf.model.filepath` + layer digest). Names are checked and sorted; duplicates
    /// are refused.
    pub fn from_pairs(
        name: &str,
        pairs: impl IntoIterator<Item = (String, Digest)>,
        serialization: Serialization,
    ) -> Result<Self, OmsError> {
        let mut resources: Vec<Resource> = pairs
            .into_iter()
            .map(|(name, digest)| Resource { name, digest })
            .collect();
        for r in &resources {
            validate_name(&r.name)?;
        }
        resources.sort_by(|a, b| compare_paths(&a.name, &b.name));
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

    /// sha256 over the concatenated raw 32-byte resource digests, in listed order.
    pub fn root_digest(&self) -> Digest {
        let mut h = Sha256::new();
        for r in &self.resources {
            h.update(r.digest.raw());
        }
        Digest::from_raw(&h.finalize().into())
    }

    /// The statement as a JSON value (key order as `model_signing` writes it).
    pub fn to_value(&self) -> Value {
        let resources: Vec<Value> = self
            .resources
            .iter()
            .map(|r| json!({"algorithm": HASH_SHA256, "name": r.name, "digest": r.digest.hex()}))
            .collect();
        let mut ser = Map::new();
        ser.insert("method".into(), METHOD_FILES.into());
        ser.insert("hash_type".into(), HASH_SHA256.into());
        if !self.serialization.ignore_paths.is_empty() {
            ser.insert(
                "ignore_paths".into(),
                self.serialization.ignore_paths.clone().into(),
            );
        }
        ser.insert(
            "allow_symlinks".into(),
            self.serialization.allow_symlinks.into(),
        );
        json!({
            "_type": IN_TOTO_STATEMENT_V1,
            "subject": [{"name": self.name, "digest": {"sha256": self.root_digest().hex()}}],
            "predicateType": PREDICATE_MODEL_SIGNING,
            "predicate": {"resources": resources, "serialization": Value::Object(ser)},
        })
    }

    /// The DSSE payload bytes, formatted as `model_signing` does (protobuf `MessageToJson`:
    /// two-space indent, non-ASCII escaped, no trailing newline).
    pub fn to_payload(&self) -> Vec<u8> {
        python_json(&self.to_value())
    }

    /// Parse and check a statement: `_type`, predicate type, exactly one subject whose
    /// digest equals the root digest of the resources, method `files`, hash `sha256`, valid
    /// and unique resource names.
    pub fn parse(payload: &[u8]) -> Result<Self, OmsError> {
        let bad = |m: String| OmsError::Statement(m);
        let v: Value = serde_json::from_slice(payload)
            .map_err(|e| bad(format!("the payload is not JSON: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| bad("the payload is not a JSON object".into()))?;
        let typ = obj.get("_type").and_then(Value::as_str).unwrap_or("");
        if typ != IN_TOTO_STATEMENT_V1 {
            return Err(bad(format!(
                "_type is {typ:?}, expected {IN_TOTO_STATEMENT_V1:?}"
            )));
        }
        let pt = obj
            .get("predicateType")
            .and_then(Value::as_str)
            .unwrap_or("");
        if pt != PREDICATE_MODEL_SIGNING {
            return Err(bad(format!(
                "predicateType is {pt:?}, expected {PREDICATE_MODEL_SIGNING:?}"
            )));
        }
        let subjects = obj
            .get("subject")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no subject list".into()))?;
        if subjects.len() != 1 {
            return Err(bad(format!(
                "expected exactly one subject, found {}",
                subjects.len()
            )));
        }
        let name = subjects[0]
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let subject_hex = subjects[0]
            .pointer("/digest/sha256")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("the subject has no sha256 digest".into()))?;
        let subject_digest: Digest = format!("sha256:{subject_hex}").parse().map_err(|_| {
            bad(format!(
                "subject digest {subject_hex:?} is not a sha256 hex digest"
            ))
        })?;
        let predicate = obj
            .get("predicate")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("no predicate object".into()))?;
        let ser = predicate
            .get("serialization")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("the predicate has no serialization object".into()))?;
        let method = ser.get("method").and_then(Value::as_str).unwrap_or("");
        if method != METHOD_FILES {
            return Err(bad(format!(
                "serialization method {method:?} is not supported (oci-model reads \"files\")"
            )));
        }
        let hash_type = ser.get("hash_type").and_then(Value::as_str).unwrap_or("");
        if hash_type != HASH_SHA256 {
            return Err(bad(format!(
                "hash_type {hash_type:?} is not supported (oci-model reads \"sha256\")"
            )));
        }
        let allow_symlinks = match ser.get("allow_symlinks") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(other) => {
                return Err(bad(format!(
                    "allow_symlinks is {other}, expected a boolean"
                )))
            }
        };
        let ignore_paths = match ser.get("ignore_paths") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|p| {
                    p.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(format!("ignore_paths holds {p}, expected strings")))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(bad(format!("ignore_paths is {other}, expected a list"))),
        };
        let list = predicate
            .get("resources")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("the predicate has no resources list".into()))?;
        let mut resources = Vec::with_capacity(list.len());
        let mut seen = BTreeSet::new();
        for (i, r) in list.iter().enumerate() {
            let field = |k: &str| {
                r.get(k)
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(format!("resource #{i} has no string {k:?}")))
            };
            let rname = field("name")?;
            let algorithm = field("algorithm")?;
            if algorithm != HASH_SHA256 {
                return Err(bad(format!(
                    "resource {rname:?} uses algorithm {algorithm:?}, expected \"sha256\""
                )));
            }
            let hex = field("digest")?;
            let digest: Digest = format!("sha256:{hex}").parse().map_err(|_| {
                bad(format!(
                    "resource {rname:?} digest {hex:?} is not a sha256 hex digest"
                ))
            })?;
            validate_name(rname)?;
            if !seen.insert(rname.to_string()) {
                return Err(OmsError::Duplicate {
                    name: rname.to_string(),
                });
            }
            resources.push(Resource {
                name: rname.to_string(),
                digest,
            });
        }
        let statement = ModelStatement {
            name,
            resources,
            serialization: Serialization {
                allow_symlinks,
                ignore_paths,
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
            list.sort_by(|a, b| compare_paths(a, b));
        }
        c
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
        for git in DEFAULT_IGNORE_PATHS {
            let signed_beneath = self
                .resources
                .iter()
                .any(|r| is_ignored(&r.name, &[git.to_string()]));
            if !signed_beneath {
                out.push(git.to_string());
            }
        }
        sorted_unique(out)
    }
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

/// How to turn a local model into resources.
#[derive(Clone, Debug, Default)]
pub struct HashOptions {
    /// Model-relative paths to leave out (files or whole directories).
    pub ignore_paths: Vec<String>,
    /// Also leave out `.git`, `.gitattributes`, `.github`, `.gitignore`.
    pub ignore_git_paths: bool,
    /// Follow symbolic links (else a symlink is an error, as in `model_signing`).
    pub allow_symlinks: bool,
}

impl HashOptions {
    /// The normalised ignore list recorded in the statement.
    fn effective_ignores(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .ignore_paths
            .iter()
            .filter_map(|p| normalize_ignore_path(p))
            .collect();
        if self.ignore_git_paths {
            v.extend(DEFAULT_IGNORE_PATHS.iter().map(|s| s.to_string()));
        }
        sorted_unique(v)
    }
}

/// The model name `model_signing` records: the path's last component, or the resolved
/// directory's name for `.`/`..`.
pub fn model_name(path: &Path) -> String {
    let from = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty() && n != "..")
    };
    from(path)
        .or_else(|| path.canonicalize().ok().and_then(|p| from(&p)))
        .unwrap_or_else(|| "model".into())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> OmsError + '_ {
    move |source| OmsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// List the files of a model (a directory, or a single file named `.`), applying the ignore
/// list; returns (resource name, path) sorted by path segments.
pub fn list_files(model: &Path, opts: &HashOptions) -> Result<Vec<(String, PathBuf)>, OmsError> {
    let meta = std::fs::metadata(model).map_err(io_err(model))?;
    if meta.is_file() {
        return Ok(vec![(".".to_string(), model.to_path_buf())]);
    }
    if !meta.is_dir() {
        return Err(OmsError::SpecialFile {
            path: model.display().to_string(),
        });
    }
    let ignores = opts.effective_ignores();
    let mut files = Vec::new();
    let walker = walkdir::WalkDir::new(model)
        .min_depth(1)
        .follow_links(opts.allow_symlinks)
        .into_iter()
        .filter_entry(|e| match rel_name(model, e.path()) {
            Ok(name) => !is_ignored(&name, &ignores),
            Err(_) => true, // reported below
        });
    for entry in walker {
        let entry = entry.map_err(|e| {
            let path = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| model.display().to_string());
            match e.into_io_error() {
                Some(source) => OmsError::Io { path, source },
                None => OmsError::Io {
                    path,
                    source: std::io::Error::other("symbolic link loop"),
                },
            }
        })?;
        let path = entry.path();
        let ft = entry.file_type();
        if ft.is_symlink() {
            // Only reachable without follow_links.
            return Err(OmsError::Symlink {
                path: path.display().to_string(),
            });
        }
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            return Err(OmsError::SpecialFile {
                path: path.display().to_string(),
            });
        }
        files.push((rel_name(model, path)?, path.to_path_buf()));
    }
    files.sort_by(|a, b| compare_paths(&a.0, &b.0));
    Ok(files)
}

fn rel_name(root: &Path, path: &Path) -> Result<String, OmsError> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut segs = Vec::new();
    for c in rel.components() {
        match c.as_os_str().to_str() {
            Some(s) => segs.push(s),
            None => {
                return Err(OmsError::NonUtf8 {
                    path: path.display().to_string(),
                })
            }
        }
    }
    Ok(segs.join("/"))
}

/// sha256 of a file, streamed in 1 MiB reads.
pub fn hash_file(path: &Path) -> Result<Digest, OmsError> {
    let mut f = std::fs::File::open(path).map_err(io_err(path))?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// Hash a local model as `model_signing` does (files method, sha256): every file, hidden and
/// empty ones included, minus the ignore list; files hashed in parallel.
pub fn hash_model(model: &Path, opts: &HashOptions) -> Result<ModelStatement, OmsError> {
    let files = list_files(model, opts)?;
    let digests = hash_files_parallel(&files)?;
    let resources = files
        .into_iter()
        .zip(digests)
        .map(|((name, _), digest)| Resource { name, digest })
        .collect();
    Ok(ModelStatement {
        name: model_name(model),
        resources,
        serialization: Serialization {
            allow_symlinks: opts.allow_symlinks,
            ignore_paths: opts.effective_ignores(),
        },
    })
}

fn hash_files_parallel(files: &[(String, PathBuf)]) -> Result<Vec<Digest>, OmsError> {
    use std::sync::atomic::{AtomicUsize, Ordering as AO};
    use std::sync::Mutex;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Digest, OmsError>>>> =
        Mutex::new((0..files.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, AO::Relaxed);
                if i >= files.len() {
                    break;
                }
                let r = hash_file(&files[i].1);
                let failed = r.is_err();
                results.lock().expect("lock")[i] = Some(r);
                if failed {
                    next.store(files.len(), AO::Relaxed);
                }
            });
        }
    });
    let results = results.into_inner().expect("lock");
    let mut out = Vec::with_capacity(files.len());
    for r in results {
        match r {
            Some(Ok(digest)) => out.push(digest),
            // Every index before a failure was taken by a worker, so the first error in
            // index order comes before any skipped (None) entry.
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    if out.len() != files.len() {
        return Err(OmsError::Io {
            path: files[out.len()].1.display().to_string(),
            source: std::io::Error::other("not hashed"),
        });
    }
    Ok(out)
}

/// Hash a local model as `statement` was signed: re-applies the statement's ignore paths
/// (plus `extra_ignores`, e.g. the signature file) and its symlink setting.
pub fn hash_as_signed(
    statement: &ModelStatement,
    model: &Path,
    extra_ignores: &[String],
    allow_symlinks: bool,
) -> Result<ModelStatement, OmsError> {
    let opts = HashOptions {
        ignore_paths: statement.verification_ignores(extra_ignores),
        ignore_git_paths: false,
        allow_symlinks: allow_symlinks || statement.serialization.allow_symlinks,
    };
    hash_model(model, &opts)
}

/// Check a local model against a signed statement: [`hash_as_signed`], then compare.
pub fn check_model(
    statement: &ModelStatement,
    model: &Path,
    extra_ignores: &[String],
    allow_symlinks: bool,
) -> Result<Comparison, OmsError> {
    let actual = hash_as_signed(statement, model, extra_ignores, allow_symlinks)?;
    Ok(statement.compare(
        actual
            .resources
            .iter()
            .map(|r| (r.name.as_str(), &r.digest)),
    ))
}

/// The cosign-style statement: subject = the manifest digest, predicate type
/// `https://sigstore.dev/cosign/sign/v1`, empty predicate (compact JSON).
pub fn cosign_statement(manifest_digest: &Digest, name: Option<&str>) -> Vec<u8> {
    let mut subject = Map::new();
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        subject.insert("name".into(), n.into());
    }
    subject.insert("digest".into(), json!({"sha256": manifest_digest.hex()}));
    let v = json!({
        "_type": IN_TOTO_STATEMENT_V1,
        "subject": [Value::Object(subject)],
        "predicateType": PREDICATE_COSIGN_SIGN,
        "predicate": {},
    });
    serde_json::to_vec(&v).expect("JSON value serializes")
}

/// Pretty JSON as Python's `json.dumps(indent=2, ensure_ascii=True)` writes it.
pub fn python_json(v: &Value) -> Vec<u8> {
    use serde::Serialize as _;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiPretty::default());
    v.serialize(&mut ser).expect("JSON value serializes");
    out
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
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &[u8]) -> Digest {
        Digest::of(s)
    }

    #[test]
    fn paths_sort_by_segments() {
        let mut v = vec!["a.txt", "a-b", "a/b", "B", "a/b/c", ".hidden", "a"];
        v.sort_by(|a, b| compare_paths(a, b));
        assert_eq!(v, vec![".hidden", "B", "a", "a/b", "a/b/c", "a-b", "a.txt"]);
    }

    #[test]
    fn names_are_validated() {
        for ok in [".", "a", "a/b", ".hidden", "a..b"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "/a", "a/../b", "./a", "a//b", "a\\b", "a\0", "..", "a/"] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn ignore_paths_normalise_and_match_by_segment() {
        assert_eq!(normalize_ignore_path("./a/b/").as_deref(), Some("a/b"));
        assert_eq!(normalize_ignore_path("../x"), None);
        assert_eq!(normalize_ignore_path("/abs"), None);
        assert_eq!(normalize_ignore_path("."), None);
        let ig = vec![".git".to_string(), "sub/x".to_string()];
        assert!(is_ignored(".git", &ig));
        assert!(is_ignored(".git/config", &ig));
        assert!(!is_ignored(".gitignore", &ig));
        assert!(is_ignored("sub/x/y", &ig));
        assert!(!is_ignored("sub/xy", &ig));
    }

    #[test]
    fn statement_round_trips_and_matches_model_signing_layout() {
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
        let payload = String::from_utf8(st.to_payload()).unwrap();
        assert!(payload.starts_with(
            "{\n  \"_type\": \"https://in-toto.io/Statement/v1\",\n  \"subject\": [\n    {\n      \"name\": \"m\",\n"
        ), "{payload}");
        assert!(payload.contains("\"predicateType\": \"https://model_signing/signature/v1.0\""));
        assert!(!payload.ends_with('\n'));
        let back = ModelStatement::parse(payload.as_bytes()).unwrap();
        assert_eq!(back, st);
        let names: Vec<_> = back.resources.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec![".hidden", "a/b", "a-b", "a.txt"]);
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
        let mut v = good.to_value();
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
                "no resources",
                Box::new(|v| {
                    v["predicate"].as_object_mut().unwrap().remove("resources");
                }),
            ),
        ];
        for (want, mutate) in cases {
            let mut v = good.to_value();
            mutate(&mut v);
            let err = ModelStatement::parse(&serde_json::to_vec(&v).unwrap()).unwrap_err();
            assert!(err.to_string().contains(want), "{want}: {err}");
        }
        let err = ModelStatement::parse(b"{not json").unwrap_err();
        assert!(err.to_string().contains("not JSON"), "{err}");
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

    #[test]
    fn hash_model_matches_model_signing() {
        let t = tree();
        let opts = HashOptions {
            ignore_paths: vec!["model.sig".into()],
            ignore_git_paths: true,
            allow_symlinks: false,
        };
        let st = hash_model(t.path(), &opts).unwrap();
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
        let c = check_model(&st, t.path(), &[], false).unwrap();
        assert!(c.is_match(), "{c}");
        assert_eq!(c.checked, 4);
    }

    #[test]
    fn check_model_finds_extra_missing_changed() {
        let t = tree();
        let opts = HashOptions {
            ignore_paths: vec!["model.sig".into()],
            ignore_git_paths: true,
            allow_symlinks: false,
        };
        let st = hash_model(t.path(), &opts).unwrap();
        std::fs::write(t.path().join("a/new"), "n").unwrap();
        std::fs::remove_file(t.path().join("a-b")).unwrap();
        std::fs::write(t.path().join("a.txt"), "changed").unwrap();
        std::fs::write(t.path().join(".git/d"), "ignored").unwrap();
        let c = check_model(&st, t.path(), &[], false).unwrap();
        assert_eq!(c.extra, vec!["a/new"]);
        assert_eq!(c.missing, vec!["a-b"]);
        assert_eq!(c.changed.len(), 1);
        assert_eq!(c.changed[0].name, "a.txt");
        assert_eq!(c.changed[0].actual, d(b"changed"));
    }

    #[test]
    fn git_files_signed_with_no_ignore_git_paths_are_checked() {
        let t = tree();
        let opts = HashOptions {
            ignore_paths: vec!["model.sig".into()],
            ignore_git_paths: false,
            allow_symlinks: false,
        };
        let st = hash_model(t.path(), &opts).unwrap();
        assert!(st.resources.iter().any(|r| r.name == ".git/c"));
        assert!(check_model(&st, t.path(), &[], false).unwrap().is_match());
        std::fs::write(t.path().join(".git/c"), "tampered").unwrap();
        let c = check_model(&st, t.path(), &[], false).unwrap();
        assert_eq!(c.changed[0].name, ".git/c");
    }

    #[test]
    fn single_file_model_is_named_dot() {
        let t = tree();
        let st = hash_model(&t.path().join("a/b"), &HashOptions::default()).unwrap();
        assert_eq!(st.name, "b");
        assert_eq!(st.resources.len(), 1);
        assert_eq!(st.resources[0].name, ".");
        assert_eq!(st.resources[0].digest, d(b"hi\n"));
    }

    #[test]
    fn symlinks_are_refused_unless_allowed() {
        let t = tree();
        std::os::unix::fs::symlink("a.txt", t.path().join("link")).unwrap();
        let err = hash_model(t.path(), &HashOptions::default()).unwrap_err();
        assert!(matches!(err, OmsError::Symlink { .. }), "{err}");
        let st = hash_model(
            t.path(),
            &HashOptions {
                allow_symlinks: true,
                ..HashOptions::default()
            },
        )
        .unwrap();
        let link = st.resources.iter().find(|r| r.name == "link").unwrap();
        assert_eq!(link.digest, d(b""));
        assert!(st.serialization.allow_symlinks);
    }

    #[test]
    fn cosign_statement_layout() {
        let digest = d(b"manifest");
        let v: Value = serde_json::from_slice(&cosign_statement(&digest, None)).unwrap();
        assert_eq!(v["predicateType"], PREDICATE_COSIGN_SIGN);
        assert_eq!(v["subject"][0]["digest"]["sha256"], digest.hex());
        assert!(v["subject"][0].get("name").is_none());
        assert_eq!(v["predicate"], json!({}));
        let v: Value =
            serde_json::from_slice(&cosign_statement(&digest, Some("reg/repo"))).unwrap();
        assert_eq!(v["subject"][0]["name"], "reg/repo");
    }
}
