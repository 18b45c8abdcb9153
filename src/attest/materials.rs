//! `--material NAME=PATH|REF`: the datasets, code and base models a model was built from,
//! recorded as SLSA `resolvedDependencies`.
//!
//! A value is, in this order:
//! 1. an existing file → `{name, uri: "file:<PATH>", digest: {sha256: <file sha256>}}`, hashed
//!    streaming;
//! 2. an existing directory → `{name, uri: "file:<PATH>", digest: {sha256: <tree hash>},
//!    annotations: {"oci-model.dev/directory-hash": "sha256sum-v1"}}` where the tree hash is
//!    defined in [`hash_directory`];
//! 3. an OCI reference written with its registry host (`host[:port]/repo[:tag|@digest]`, e.g.
//!    `ghcr.io/org/base:v1`, `docker.io/library/x:1`) or an OCI layout (`oci:<dir>[:tag]`) →
//!    resolved to its manifest digest: `{name, uri: "oci://host/repo@sha256:…" (or
//!    "oci:<dir>@sha256:…"), digest: {sha256: <manifest digest>}}`;
//! 4. anything else → an error naming the material. A short name like `library/bert` is not
//!    taken as a Docker Hub reference, so a mistyped path is reported as missing.
//!
//! PATH is recorded as given (relative paths stay relative: no home directory leaks unless the
//! user writes one), `/`-separated, with characters outside URI syntax percent-encoded.

use super::{AttestError, Result};
use crate::digest::{Digest, Hasher};
use crate::intoto::ResourceDescriptor;
use crate::model::walk::relative;
use crate::model::{hash_file, hash_files, ReadError};
use crate::reference::Target;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};

/// Annotation on a directory material naming how its digest was computed.
pub const DIRECTORY_HASH_ANNOTATION: &str = "oci-model.dev/directory-hash";
/// The value of [`DIRECTORY_HASH_ANNOTATION`]: see [`hash_directory`].
pub const DIRECTORY_HASH_SHA256SUM_V1: &str = "sha256sum-v1";

/// Resolves an OCI reference (registry or layout) to its manifest digest.
///
/// CLI: implement it by opening the store for the target (with the same auth/insecure options
/// as the attested model) and resolving `target.reference()`; for a target pinned by digest,
/// still check the manifest exists. Any `Fn(Target) -> impl Future<Output = Result<Digest, E:
/// Display>>` closure is a resolver:
/// ```ignore
/// let resolver = |t: Target| async move {
///     let store = store::open(&t, &opts).await?;
///     anyhow::Ok(store.resolve(&t.reference()).await?.digest)
/// };
/// ```
#[async_trait]
pub trait ReferenceResolver: Send + Sync {
    /// The manifest digest `target` points to, or why it cannot be resolved.
    async fn resolve_manifest(&self, target: &Target) -> std::result::Result<Digest, String>;
}

#[async_trait]
impl<F, Fut, E> ReferenceResolver for F
where
    F: Fn(Target) -> Fut + Send + Sync,
    Fut: Future<Output = std::result::Result<Digest, E>> + Send,
    E: std::fmt::Display,
{
    async fn resolve_manifest(&self, target: &Target) -> std::result::Result<Digest, String> {
        (self)(target.clone()).await.map_err(|e| format!("{e:#}"))
    }
}

/// A resolver for callers with no store access: every reference is an error.
pub struct NoReferences;

#[async_trait]
impl ReferenceResolver for NoReferences {
    async fn resolve_manifest(&self, target: &Target) -> std::result::Result<Digest, String> {
        Err(format!("OCI references are not supported here ({target})"))
    }
}

/// One parsed `NAME=VALUE` material argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Material {
    pub name: String,
    pub value: String,
}

impl Material {
    /// Parses `NAME=PATH|REF` (split at the first `=`; both parts required, NAME without
    /// surrounding whitespace or control characters).
    pub fn parse(spec: &str) -> Result<Material> {
        let syntax = |reason: &str| AttestError::MaterialSyntax {
            spec: spec.to_string(),
            reason: reason.to_string(),
        };
        let (name, value) = spec.split_once('=').ok_or_else(|| syntax("missing '='"))?;
        if name.is_empty() {
            return Err(syntax("NAME before '=' is empty"));
        }
        if value.is_empty() {
            return Err(syntax("PATH or REFERENCE after '=' is empty"));
        }
        if name.trim() != name || name.chars().any(char::is_control) {
            return Err(syntax("NAME has surrounding spaces or control characters"));
        }
        Ok(Material {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

/// Parses every `--material` argument and rejects duplicate names, before any hashing (so a
/// typo fails fast).
pub fn parse_materials(specs: &[String]) -> Result<Vec<Material>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let m = Material::parse(spec)?;
        if !seen.insert(m.name.clone()) {
            return Err(AttestError::MaterialDuplicate { name: m.name });
        }
        out.push(m);
    }
    Ok(out)
}

/// Turns `--material` arguments into SLSA resource descriptors, in the order given (see the
/// module doc for the rules). Files are hashed on blocking threads, streaming.
///
/// CLI: normally called through [`super::generate_provenance`]; call it directly only to show
/// materials without attesting.
pub async fn resolve_materials(
    specs: &[String],
    resolver: &dyn ReferenceResolver,
) -> Result<Vec<ResourceDescriptor>> {
    let materials = parse_materials(specs)?;
    let mut out = Vec::with_capacity(materials.len());
    for m in &materials {
        out.push(resolve_material(m, resolver).await?);
    }
    Ok(out)
}

/// One material → its resource descriptor.
pub async fn resolve_material(
    material: &Material,
    resolver: &dyn ReferenceResolver,
) -> Result<ResourceDescriptor> {
    let path = PathBuf::from(&material.value);
    match std::fs::metadata(&path) {
        Ok(meta) => {
            let name = material.name.clone();
            let p = path.clone();
            let (digest, annotations) = if meta.is_dir() {
                let (d, _) = blocking(move || hash_directory(&name, &p)).await?;
                let ann = BTreeMap::from([(
                    DIRECTORY_HASH_ANNOTATION.to_string(),
                    Value::String(DIRECTORY_HASH_SHA256SUM_V1.to_string()),
                )]);
                (d, Some(ann))
            } else if meta.is_file() {
                let d = blocking(move || hash_file(&p).map_err(|e| material_io(&name, e))).await?;
                (d, None)
            } else {
                return Err(AttestError::MaterialUnsupported {
                    name: material.name.clone(),
                    path,
                    reason: "not a regular file or directory".into(),
                });
            };
            Ok(ResourceDescriptor {
                name: Some(material.name.clone()),
                uri: Some(file_uri(&material.value)),
                digest: BTreeMap::from([("sha256".to_string(), digest.hex().to_string())]),
                annotations,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let Some(target) = as_reference(&material.value) else {
                return Err(AttestError::MaterialNotFound {
                    name: material.name.clone(),
                    value: material.value.clone(),
                });
            };
            let digest = resolver.resolve_manifest(&target).await.map_err(|reason| {
                AttestError::MaterialUnresolved {
                    name: material.name.clone(),
                    value: material.value.clone(),
                    reason,
                }
            })?;
            Ok(ResourceDescriptor {
                name: Some(material.name.clone()),
                uri: Some(oci_uri(&target, &digest)),
                digest: BTreeMap::from([("sha256".to_string(), digest.hex().to_string())]),
                annotations: None,
            })
        }
        Err(source) => Err(AttestError::MaterialIo {
            name: material.name.clone(),
            path,
            source,
        }),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        // Only a panic can end a blocking task early: pass it on.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A value is taken as an OCI reference only when it names its registry host or is an
/// `oci:` layout: `data/train.csv` (missing) must not silently become `docker.io/data/…`.
fn as_reference(value: &str) -> Option<Target> {
    let target = Target::parse(value).ok()?;
    match &target {
        Target::Layout(_) => Some(target),
        Target::Registry(r) => {
            let first = value.split('/').next()?;
            (value.contains('/') && first == r.registry).then_some(target)
        }
    }
}

/// `oci://host/repo@sha256:…` for a registry, `oci:<dir>@sha256:…` for a layout.
pub fn oci_uri(target: &Target, digest: &Digest) -> String {
    match target {
        Target::Registry(r) => format!("oci://{}/{}@{digest}", r.registry, r.repository),
        Target::Layout(l) => format!(
            "oci:{}@{digest}",
            uri_escape(&l.path.to_string_lossy().replace('\\', "/"))
        ),
    }
}

/// `file:<path>` with the path as given, `/`-separated and percent-encoded where needed.
pub fn file_uri(path: &str) -> String {
    format!("file:{}", uri_escape(&path.replace('\\', "/")))
}

fn uri_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The digest of a directory material (`sha256sum-v1`), returned with the file count.
///
/// Every regular file under `dir` (hidden ones included, symlinks followed, empty directories
/// contributing nothing) gives one line `<sha256 hex of the file><two spaces><relative path>\n`
/// — exactly a `sha256sum` output line — with the relative path `/`-separated; the lines are
/// sorted by path bytes and the digest is the sha256 of their concatenation. So the same tree
/// gives the same digest anywhere, and it can be recomputed with standard tools:
/// ```text
/// (cd DIR && find -L . -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum
/// ```
/// Paths must be UTF-8 without newlines (a newline would make the lines ambiguous); sockets,
/// FIFOs and devices are errors, as are symlink loops.
pub fn hash_directory(name: &str, dir: &Path) -> Result<(Digest, usize)> {
    let unsupported = |path: &Path, reason: &str| AttestError::MaterialUnsupported {
        name: name.to_string(),
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(true) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(dir).to_path_buf();
            match e.into_io_error() {
                Some(source) => AttestError::MaterialIo {
                    name: name.to_string(),
                    path,
                    source,
                },
                None => unsupported(&path, "symlink loop"),
            }
        })?;
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        if !ft.is_file() {
            return Err(unsupported(
                entry.path(),
                "not a regular file (socket, FIFO or device)",
            ));
        }
        let rel = relative(dir, entry.path())
            .map_err(|_| unsupported(entry.path(), "path is not UTF-8"))?;
        if rel.contains('\n') || rel.contains('\r') {
            return Err(unsupported(entry.path(), "path contains a line break"));
        }
        entries.push((rel, entry.into_path()));
    }
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let paths: Vec<&PathBuf> = entries.iter().map(|(_, p)| p).collect();
    let digests = hash_files(&paths).map_err(|e| material_io(name, e))?;
    let mut tree = Hasher::new();
    for ((rel, _), d) in entries.iter().zip(digests) {
        tree.update(format!("{}  {rel}\n", d.hex()).as_bytes());
    }
    Ok((tree.finish(), entries.len()))
}

fn material_io(name: &str, e: ReadError) -> AttestError {
    AttestError::MaterialIo {
        name: name.to_string(),
        path: e.path,
        source: e.source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn specs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn syntax_errors_name_the_argument() {
        for (bad, why) in [
            ("data", "missing '='"),
            ("=x.csv", "NAME before '=' is empty"),
            ("data=", "after '=' is empty"),
            (" data=x", "surrounding spaces"),
        ] {
            let err = Material::parse(bad).unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
        assert_eq!(
            Material::parse("a=b=c").unwrap(),
            Material {
                name: "a".into(),
                value: "b=c".into()
            }
        );
        let err = parse_materials(&specs(&["d=a", "d=b"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"d\" is given twice"), "{err}");
    }

    #[tokio::test]
    async fn a_file_is_hashed_and_recorded_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train set.csv");
        std::fs::write(&p, b"a,b\n1,2\n").unwrap();
        let spec = format!("data={}", p.display());
        let d = resolve_materials(&[spec], &NoReferences).await.unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].name.as_deref(), Some("data"));
        assert_eq!(d[0].digest["sha256"], Digest::of(b"a,b\n1,2\n").hex());
        assert_eq!(
            d[0].uri.as_deref().unwrap(),
            format!("file:{}", p.display()).replace(' ', "%20")
        );
        assert!(d[0].annotations.is_none());
    }

    #[tokio::test]
    async fn a_directory_is_hashed_as_sorted_sha256sum_lines() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ds");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("empty")).unwrap();
        std::fs::write(root.join("b.txt"), b"bee").unwrap();
        std::fs::write(root.join("sub/a.txt"), b"ay").unwrap();
        std::fs::write(root.join(".hidden"), b"").unwrap();
        let expected_lines = format!(
            "{}  .hidden\n{}  b.txt\n{}  sub/a.txt\n",
            Digest::of(b"").hex(),
            Digest::of(b"bee").hex(),
            Digest::of(b"ay").hex()
        );
        let (d, n) = hash_directory("ds", &root).unwrap();
        assert_eq!(n, 3);
        assert_eq!(d, Digest::of(expected_lines.as_bytes()));

        let spec = format!("ds={}", root.display());
        let out = resolve_materials(&[spec], &NoReferences).await.unwrap();
        assert_eq!(out[0].digest["sha256"], d.hex());
        assert_eq!(
            out[0].annotations.as_ref().unwrap()[DIRECTORY_HASH_ANNOTATION],
            DIRECTORY_HASH_SHA256SUM_V1
        );
        // Changing one byte anywhere changes the digest.
        std::fs::write(root.join("sub/a.txt"), b"az").unwrap();
        assert_ne!(hash_directory("ds", &root).unwrap().0, d);
    }

    #[test]
    fn directory_hash_matches_coreutils_when_available() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("x/y")).unwrap();
        std::fs::write(root.join("x/y/z.bin"), [0u8, 1, 2]).unwrap();
        std::fs::write(root.join("x-a"), b"1").unwrap();
        std::fs::write(root.join("x.a"), b"2").unwrap();
        let script = "find -L . -type f -printf '%P\\0' | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum";
        let Ok(out) = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(root)
            .output()
        else {
            return;
        };
        if !out.status.success() {
            return;
        }
        let hex = String::from_utf8(out.stdout).unwrap();
        let (d, _) = hash_directory("t", root).unwrap();
        assert_eq!(d.hex(), hex.split_whitespace().next().unwrap());
    }

    #[tokio::test]
    async fn a_missing_path_that_is_not_a_reference_is_an_error() {
        let calls = AtomicUsize::new(0);
        let resolver = |_t: Target| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<Digest, _>("unreachable") }
        };
        for value in ["data/missing.csv", "missing.csv", "library/bert:v1"] {
            let err = resolve_materials(&[format!("data={value}")], &resolver)
                .await
                .unwrap_err();
            assert!(matches!(err, AttestError::MaterialNotFound { .. }), "{err}");
            let msg = err.to_string();
            assert!(msg.contains("\"data\"") && msg.contains(value), "{msg}");
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "no registry lookups for paths"
        );
    }

    #[tokio::test]
    async fn references_resolve_to_manifest_digests() {
        let base = Digest::from_raw(&[7; 32]);
        let seen = std::sync::Mutex::new(Vec::new());
        let resolver = |t: Target| {
            seen.lock().unwrap().push(t.to_string());
            let base = base.clone();
            async move { Ok::<_, String>(base) }
        };
        let out = resolve_materials(
            &specs(&[
                "base=localhost:5000/team/base:v1",
                "layout=oci:./nowhere/lay:v2",
            ]),
            &resolver,
        )
        .await
        .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["localhost:5000/team/base:v1", "oci:./nowhere/lay:v2"]
        );
        assert_eq!(
            out[0].uri.as_deref().unwrap(),
            format!("oci://localhost:5000/team/base@{base}")
        );
        assert_eq!(out[0].digest["sha256"], base.hex());
        assert_eq!(
            out[1].uri.as_deref().unwrap(),
            format!("oci:./nowhere/lay@{base}")
        );
    }

    #[tokio::test]
    async fn an_unresolvable_reference_names_the_material_and_the_reason() {
        let resolver =
            |t: Target| async move { Err::<Digest, _>(format!("manifest v9 not found in {t}")) };
        let err = resolve_materials(&specs(&["base=ghcr.io/org/base:v9"]), &resolver)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"base\""), "{err}");
        assert!(
            err.contains("manifest v9 not found in ghcr.io/org/base:v9"),
            "{err}"
        );
        let err = resolve_materials(&specs(&["base=ghcr.io/org/base:v9"]), &NoReferences)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not supported"), "{err}");
    }

    #[tokio::test]
    async fn an_existing_path_wins_over_a_reference_reading() {
        let dir = tempfile::tempdir().unwrap();
        // A relative path that would also parse as a registry reference.
        let host_dir = dir.path().join("example.com");
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("data"), b"x").unwrap();
        let spec = format!("d={}", host_dir.join("data").display());
        let out = resolve_materials(&[spec], &NoReferences).await.unwrap();
        assert_eq!(out[0].digest["sha256"], Digest::of(b"x").hex());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn special_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let ok = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !matches!(ok, Ok(s) if s.success()) {
            return;
        }
        let err = resolve_materials(&[format!("p={}", fifo.display())], &NoReferences)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let err = hash_directory("d", dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
