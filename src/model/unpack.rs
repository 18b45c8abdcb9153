//! Pull a model: fetch its manifest, check that it is a model, validate every layer path
//! before anything is written, then stream each blob into a temporary file next to its final
//! place while checking its size and sha256, and rename the files into place only when every
//! one of them matched. A failed pull leaves no partial or wrong file and removes the
//! directories it created.

use super::cache::{DigestCache, FileKey};
use super::paths::ModelPath;
use super::ModelError;
use crate::digest::Digest;
use crate::media_types as mt;
use crate::progress::SharedReporter;
use crate::store::copy::PROGRESS_STEP;
use crate::store::{verified, Descriptor, ImageManifest, Store, StoreError};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A model manifest as fetched, with its exact bytes and digest.
#[derive(Clone, Debug)]
pub struct ModelArtifact {
    /// The manifest descriptor; its digest is computed from `bytes`.
    pub descriptor: Descriptor,
    pub bytes: Bytes,
    pub manifest: ImageManifest,
}

/// One file of a model artifact.
#[derive(Clone, Debug)]
pub struct ModelFile {
    pub path: ModelPath,
    pub descriptor: Descriptor,
}

/// The path a layer declares: `org.cncf.model.filepath`, else `org.opencontainers.image.title`.
pub fn layer_path(layer: &Descriptor) -> Option<&str> {
    layer
        .annotation(mt::ANNOTATION_FILEPATH)
        .or_else(|| layer.annotation(mt::ANNOTATION_TITLE))
}

/// Is this manifest a model (artifactType or config media type)?
pub fn is_model(manifest: &ImageManifest) -> bool {
    manifest.artifact_type.as_deref() == Some(mt::MODEL_ARTIFACT)
        || manifest.config.media_type == mt::MODEL_CONFIG
}

impl ModelArtifact {
    /// Check manifest bytes as fetched for `reference`: a model image manifest.
    pub fn from_manifest(
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Self, ModelError> {
        let digest = Digest::of(&bytes);
        if media_type == mt::OCI_INDEX || media_type == mt::DOCKER_MANIFEST_LIST {
            return Err(ModelError::NotAModel {
                reference: reference.to_string(),
                reason: format!("it is an image index ({media_type}), not a model manifest"),
            });
        }
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| ModelError::InvalidArtifact {
                what: format!("manifest {digest}"),
                reason: e.to_string(),
            })?;
        if !is_model(&manifest) {
            return Err(ModelError::NotAModel {
                reference: reference.to_string(),
                reason: format!(
                    "artifactType is {:?} and config media type is {:?}; expected artifactType {} or config {}",
                    manifest.artifact_type.as_deref().unwrap_or("(none)"),
                    manifest.config.media_type,
                    mt::MODEL_ARTIFACT,
                    mt::MODEL_CONFIG
                ),
            });
        }
        Ok(ModelArtifact {
            descriptor: Descriptor::new(media_type, digest, bytes.len() as u64),
            bytes,
            manifest,
        })
    }

    /// The files, every path checked: no absolute path, `..`, `.`, backslash, NUL, control
    /// character or empty component, no duplicates, no file that is also a directory, and only
    /// raw (not archived) layers.
    pub fn files(&self) -> Result<Vec<ModelFile>, ModelError> {
        let mdigest = &self.descriptor.digest;
        let mut out: Vec<ModelFile> = Vec::with_capacity(self.manifest.layers.len());
        let mut seen: HashMap<&str, &Digest> = HashMap::new();
        for layer in &self.manifest.layers {
            let what = || format!("layer {} of manifest {mdigest}", layer.digest);
            let path = layer_path(layer).ok_or_else(|| ModelError::InvalidArtifact {
                what: format!("manifest {mdigest}"),
                reason: format!(
                    "layer {} has no {} (or {}) annotation",
                    layer.digest,
                    mt::ANNOTATION_FILEPATH,
                    mt::ANNOTATION_TITLE
                ),
            })?;
            let checked = ModelPath::new(path).map_err(|reason| ModelError::UnsafePath {
                what: what(),
                path: path.to_string(),
                reason: reason.to_string(),
            })?;
            if let Some(other) = seen.insert(path, &layer.digest) {
                return Err(ModelError::UnsafePath {
                    what: what(),
                    path: path.to_string(),
                    reason: format!("duplicate path (also layer {other})"),
                });
            }
            let mt_lower = layer.media_type.to_ascii_lowercase();
            if mt_lower.contains(".tar")
                || mt_lower.ends_with("+gzip")
                || mt_lower.ends_with("+zstd")
            {
                return Err(ModelError::NotAModel {
                    reference: mdigest.to_string(),
                    reason: format!(
                        "layer {} ({path}) is an archive ({}); only raw file layers are supported",
                        layer.digest, layer.media_type
                    ),
                });
            }
            out.push(ModelFile {
                path: checked,
                descriptor: layer.clone(),
            });
        }
        for f in &out {
            let comps: Vec<&str> = f.path.split('/').collect();
            for k in 1..comps.len() {
                let prefix = comps[..k].join("/");
                if let Some(d) = seen.get(prefix.as_str()) {
                    return Err(ModelError::UnsafePath {
                        what: format!("layer {} of manifest {mdigest}", f.descriptor.digest),
                        path: f.path.to_string(),
                        reason: format!("{prefix:?} is also a file (layer {d})"),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Fetch the manifest `reference` (tag or digest) and check that it is a model.
pub async fn fetch_model(store: &dyn Store, reference: &str) -> Result<ModelArtifact, ModelError> {
    let raw = store.fetch_manifest(reference).await?;
    let shown = format!("{}@{}", store.location(), reference);
    ModelArtifact::from_manifest(&shown, &raw.descriptor.media_type, raw.bytes)
}

#[derive(Clone)]
pub struct PullOptions {
    /// Replace files that exist in the target directory.
    pub overwrite: bool,
    /// Files downloaded at once.
    pub concurrency: usize,
    pub reporter: SharedReporter,
    /// Record the pulled files' digests (a later push of the directory skips hashing).
    pub cache: Option<Arc<DigestCache>>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            overwrite: false,
            concurrency: 4,
            reporter: crate::progress::silent(),
            cache: None,
        }
    }
}

/// What a pull wrote.
#[derive(Clone, Debug)]
pub struct PullResult {
    pub manifest: Descriptor,
    pub directory: PathBuf,
    pub files: Vec<ModelFile>,
}

impl PullResult {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.descriptor.size).sum()
    }
}

/// Write the files of `artifact` (fetched from `store`) into `dir`.
pub async fn unpack_model(
    store: &dyn Store,
    artifact: &ModelArtifact,
    dir: &Path,
    options: &PullOptions,
) -> Result<PullResult, ModelError> {
    let files = artifact.files()?;
    let plan = {
        let owned = dir.to_path_buf();
        let rels: Vec<String> = files.iter().map(|f| f.path.to_string()).collect();
        let overwrite = options.overwrite;
        tokio::task::spawn_blocking(move || check_targets(&owned, &rels, overwrite))
            .await
            .map_err(|e| ModelError::Input(format!("checking {} failed: {e}", dir.display())))??
    };
    let created: Arc<Mutex<Vec<PathBuf>>> = Default::default();
    if plan.create_root {
        std::fs::create_dir_all(&plan.root)
            .map_err(|e| ModelError::io(format!("create {}", plan.root.display()), e))?;
        created.lock().expect("lock").push(plan.root.clone());
    }
    let root = plan
        .root
        .canonicalize()
        .map_err(|e| ModelError::io(format!("open {}", plan.root.display()), e))?;

    let downloads = futures::stream::iter(files.iter())
        .map(|f| download(store, &root, f, &created, options))
        .buffer_unordered(options.concurrency.max(1))
        .try_collect::<Vec<(tempfile::TempPath, PathBuf, &ModelFile)>>()
        .await;
    let downloads = match downloads {
        Ok(d) => d,
        Err(e) => {
            remove_created_dirs(&created);
            return Err(e);
        }
    };
    let mut placed = Vec::with_capacity(downloads.len());
    for (tmp, dest, file) in downloads {
        let res = if options.overwrite {
            tmp.persist(&dest)
        } else {
            tmp.persist_noclobber(&dest)
        };
        if let Err(e) = res {
            return Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                ModelError::Exists { path: dest }
            } else {
                ModelError::io(format!("rename into {}", dest.display()), e.error)
            });
        }
        placed.push((dest, file));
    }
    if let Some(cache) = &options.cache {
        let home = super::cache::home_of(store);
        for (dest, file) in &placed {
            if let Some(key) = std::fs::metadata(dest)
                .ok()
                .and_then(|m| FileKey::from_metadata(&m))
            {
                cache.insert(dest, key, file.descriptor.digest.clone(), home.clone());
            }
        }
        if let Err(e) = cache.save() {
            tracing::warn!("cannot save the digest cache: {e}");
        }
    }
    Ok(PullResult {
        manifest: artifact.descriptor.clone(),
        directory: root,
        files,
    })
}

struct Plan {
    root: PathBuf,
    create_root: bool,
}

/// Before anything is written: no target may escape `dir` through an existing symlink, sit
/// below an existing non-directory, be a directory, or exist (unless `overwrite`).
fn check_targets(dir: &Path, rels: &[String], overwrite: bool) -> Result<Plan, ModelError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Plan {
                root: dir.to_path_buf(),
                create_root: true,
            })
        }
        Err(e) => return Err(ModelError::io(format!("cannot read {}", dir.display()), e)),
        Ok(m) if !m.is_dir() => {
            return Err(ModelError::Input(format!(
                "{} exists and is not a directory",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    let root = dir
        .canonicalize()
        .map_err(|e| ModelError::io(format!("cannot read {}", dir.display()), e))?;
    let mut checked_dirs: HashSet<PathBuf> = HashSet::new();
    for rel in rels {
        let comps: Vec<&str> = rel.split('/').collect();
        let (name, parents) = comps.split_last().expect("validated non-empty");
        let mut cur = root.clone();
        let mut exists = true;
        for comp in parents {
            cur.push(comp);
            if !checked_dirs.insert(cur.clone()) {
                continue;
            }
            match std::fs::symlink_metadata(&cur) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    exists = false;
                    break;
                }
                Err(e) => return Err(ModelError::io(format!("cannot read {}", cur.display()), e)),
                Ok(m) if m.file_type().is_symlink() => {
                    let real = cur.canonicalize().ok();
                    match real {
                        Some(real) if real.starts_with(&root) && real.is_dir() => {}
                        _ => {
                            return Err(ModelError::UnsafePath {
                                what: format!("target directory {}", root.display()),
                                path: rel.clone(),
                                reason: format!(
                                    "{} is a symbolic link leading outside the target directory",
                                    cur.display()
                                ),
                            })
                        }
                    }
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(ModelError::Input(format!(
                        "cannot write {rel}: {} exists and is not a directory",
                        cur.display()
                    )))
                }
            }
        }
        if !exists {
            continue;
        }
        let target = cur.join(name);
        match std::fs::symlink_metadata(&target) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ModelError::io(
                    format!("cannot read {}", target.display()),
                    e,
                ))
            }
            Ok(m) if m.is_dir() => {
                return Err(ModelError::Input(format!(
                    "cannot write {rel}: {} is a directory",
                    target.display()
                )))
            }
            // A symlink in the way is replaced by the file itself (rename never follows it).
            Ok(_) if overwrite => {}
            Ok(_) => return Err(ModelError::Exists { path: target }),
        }
    }
    Ok(Plan {
        root,
        create_root: false,
    })
}

/// Create the parent directories of `rel` below `root` one by one, recording the new ones.
/// Synchronous on purpose: a cancelled download must not leave a directory creation in flight
/// (it would escape the cleanup of a failed pull).
fn ensure_parents(
    root: &Path,
    rel: &str,
    created: &Mutex<Vec<PathBuf>>,
) -> Result<PathBuf, ModelError> {
    let mut cur = root.to_path_buf();
    let comps: Vec<&str> = rel.split('/').collect();
    for comp in &comps[..comps.len() - 1] {
        cur.push(comp);
        match std::fs::create_dir(&cur) {
            Ok(()) => created.lock().expect("lock").push(cur.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ModelError::io(format!("create {}", cur.display()), e)),
        }
    }
    Ok(cur)
}

fn remove_created_dirs(created: &Mutex<Vec<PathBuf>>) {
    let mut dirs = std::mem::take(&mut *created.lock().expect("lock"));
    // Deepest first: a directory's children were created after it.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let _ = std::fs::remove_dir(&d);
    }
}

/// Stream one layer into a temporary file beside its destination, checked for size and digest.
async fn download<'f>(
    store: &dyn Store,
    root: &Path,
    file: &'f ModelFile,
    created: &Mutex<Vec<PathBuf>>,
    options: &PullOptions,
) -> Result<(tempfile::TempPath, PathBuf, &'f ModelFile), ModelError> {
    let parent = ensure_parents(root, &file.path, created)?;
    let dest = root.join(&file.path);
    let tmp = tempfile::Builder::new()
        .prefix(".oci-model-")
        .suffix(".partial")
        .tempfile_in(&parent)
        .map_err(|e| {
            ModelError::io(
                format!("create a temporary file in {}", parent.display()),
                e,
            )
        })?;
    let (mut out, tmp_path) = tmp.into_parts();
    let what = format!("file {:?} (layer {})", file.path, file.descriptor.digest);
    let id = options.reporter.start(&file.path, file.descriptor.size);
    let policy = store.retry_policy();
    let mut attempt = 1;
    let result = loop {
        let (back, result) = stream_layer(store, file, &what, &dest, out, options, id).await;
        out = back;
        // A connection lost mid-blob: start this blob again from its first byte.
        let wait = match &result {
            Err(ModelError::Store(e)) => policy.again(attempt, e).map(|w| (w, e.to_string())),
            _ => None,
        };
        let Some((wait, e)) = wait else {
            break result;
        };
        tracing::warn!("{what}: {e}; retrying (attempt {})", attempt + 1);
        tokio::time::sleep(wait).await;
        attempt += 1;
        use std::io::Seek;
        out.set_len(0)
            .and_then(|()| out.seek(std::io::SeekFrom::Start(0)).map(|_| ()))
            .map_err(|e| ModelError::io(format!("write {}", dest.display()), e))?;
    };
    options.reporter.finish(id, false);
    result?;
    drop(out);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp_path, std::fs::Permissions::from_mode(0o644));
    }
    Ok((tmp_path, dest, file))
}

/// One pass over a layer: the blob's chunks are taken as they arrive and checked and written
/// by one blocking thread, with no copy in between, while the async workers keep receiving.
/// Failures to read that are not integrity failures are the connection's (network errors,
/// retried). Returns the file for a retry.
async fn stream_layer(
    store: &dyn Store,
    file: &ModelFile,
    what: &str,
    dest: &Path,
    mut out: std::fs::File,
    options: &PullOptions,
    progress_id: u64,
) -> (std::fs::File, Result<(), ModelError>) {
    let chunks = match store.fetch_blob_chunks(&file.descriptor).await {
        Ok(c) => c,
        Err(e) => return (out, Err(e.into())),
    };
    // Dropping this future (another file failed, the pull was cancelled) stops the thread.
    let cancel = tokio_util::sync::CancellationToken::new();
    let _stop_on_drop = cancel.clone().drop_guard();
    let pass = ChunkPass {
        runtime: tokio::runtime::Handle::current(),
        cancel,
        check: verified::BlobCheck::new(
            file.descriptor.digest.clone(),
            file.descriptor.size,
            what.to_string(),
        ),
        source: format!("{} (blob {})", store.location(), file.descriptor.digest),
        what: what.to_string(),
        dest: dest.to_path_buf(),
        reporter: options.reporter.clone(),
        progress_id,
    };
    let joined = tokio::task::spawn_blocking(move || {
        let result = pass.run(chunks, &mut out);
        (out, result)
    })
    .await;
    match joined {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

struct ChunkPass {
    runtime: tokio::runtime::Handle,
    cancel: tokio_util::sync::CancellationToken,
    check: verified::BlobCheck,
    source: String,
    what: String,
    dest: PathBuf,
    reporter: SharedReporter,
    progress_id: u64,
}

impl ChunkPass {
    fn run(
        self,
        mut chunks: crate::store::BoxChunks,
        out: &mut std::fs::File,
    ) -> Result<(), ModelError> {
        use std::io::Write;
        let ChunkPass {
            runtime,
            cancel,
            mut check,
            source,
            what,
            dest,
            reporter,
            progress_id,
        } = self;
        let mut unreported = 0u64;
        loop {
            let next = runtime.block_on(async {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => None,
                    next = chunks.next() => Some(next),
                }
            });
            let chunk = match next {
                None => return Err(ModelError::Input(format!("{what}: download cancelled"))),
                Some(None) => break,
                Some(Some(Ok(chunk))) => chunk,
                Some(Some(Err(e))) => {
                    return Err(StoreError::Network {
                        url: source,
                        reason: format!("reading {what} failed: {e}"),
                    }
                    .into())
                }
            };
            check.update(&chunk)?;
            out.write_all(&chunk)
                .map_err(|e| ModelError::io(format!("write {}", dest.display()), e))?;
            unreported += chunk.len() as u64;
            if unreported >= PROGRESS_STEP {
                reporter.advance(progress_id, unreported);
                unreported = 0;
            }
        }
        if unreported > 0 {
            reporter.advance(progress_id, unreported);
        }
        check.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pack::{push_model, PushOptions};
    use crate::store::memory::MemoryStore;
    use crate::store::{Annotations, BytesSource};

    fn manifest_with_paths(paths: &[&str]) -> (ImageManifest, Vec<Bytes>) {
        let mut layers = Vec::new();
        let mut blobs = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let content = Bytes::from(format!("content {i}"));
            let mut a = Annotations::new();
            a.insert(mt::ANNOTATION_FILEPATH.into(), p.to_string());
            layers.push(Descriptor {
                media_type: mt::MODEL_WEIGHT.into(),
                digest: Digest::of(&content),
                size: content.len() as u64,
                artifact_type: None,
                annotations: Some(a),
            });
            blobs.push(content);
        }
        (
            ImageManifest {
                schema_version: 2,
                media_type: Some(mt::OCI_MANIFEST.into()),
                artifact_type: Some(mt::MODEL_ARTIFACT.into()),
                config: Descriptor::empty(),
                layers,
                subject: None,
                annotations: None,
            },
            blobs,
        )
    }

    async fn store_with(paths: &[&str]) -> (MemoryStore, ModelArtifact) {
        let store = MemoryStore::new("m");
        let (m, blobs) = manifest_with_paths(paths);
        for b in blobs {
            store.push_blob(&BytesSource(b)).await.unwrap();
        }
        let bytes = Bytes::from(m.to_bytes());
        store
            .push_manifest(bytes.clone(), mt::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        let artifact = fetch_model(&store, "v1").await.unwrap();
        (store, artifact)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = walkdir::WalkDir::new(dir)
            .min_depth(1)
            .into_iter()
            .map(|e| {
                e.unwrap()
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn hostile_paths_are_refused_before_writing() {
        for bad in ["../x", "/abs", "a\\b", "a/../../x", "ok/./x", "", "a\0b"] {
            let (store, artifact) = store_with(&["good.txt", bad]).await;
            let out = tempfile::tempdir().unwrap();
            let err = unpack_model(&store, &artifact, out.path(), &PullOptions::default())
                .await
                .unwrap_err();
            assert!(
                matches!(err, ModelError::UnsafePath { .. }),
                "{bad:?}: {err}"
            );
            assert_eq!(err.kind(), crate::error::ErrorKind::Integrity);
            assert!(
                entries(out.path()).is_empty(),
                "{bad:?} wrote {:?}",
                entries(out.path())
            );
        }
        for (paths, why) in [
            (&["a", "a"][..], "duplicate"),
            (&["a", "a/b"][..], "also a file"),
        ] {
            let (store, artifact) = store_with(paths).await;
            let out = tempfile::tempdir().unwrap();
            let err = unpack_model(&store, &artifact, out.path(), &PullOptions::default())
                .await
                .unwrap_err();
            assert!(err.to_string().contains(why), "{err}");
            assert!(entries(out.path()).is_empty());
        }
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_in_the_target_cannot_lead_outside() {
        let (store, artifact) = store_with(&["link/evil.txt"]).await;
        let outside = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), out.path().join("link")).unwrap();
        let err = unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::UnsafePath { .. }), "{err}");
        assert!(entries(outside.path()).is_empty());
    }

    #[tokio::test]
    async fn corrupted_blob_fails_naming_file_and_digests_leaving_nothing() {
        let (store, artifact) = store_with(&["a.bin", "sub/b.bin", "sub/deeper/c.bin"]).await;
        let victim = artifact.manifest.layers[1].digest.clone();
        store.corrupt_blob(&victim, Bytes::from_static(b"content X"));
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let err = unpack_model(&store, &artifact, &out, &PullOptions::default())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.kind(), crate::error::ErrorKind::Integrity, "{msg}");
        assert!(msg.contains("sub/b.bin"), "{msg}");
        assert!(msg.contains(victim.as_str()), "{msg}");
        assert!(msg.contains(Digest::of(b"content X").as_str()), "{msg}");
        assert!(
            !out.exists(),
            "created directory left behind: {:?}",
            entries(&out)
        );
    }

    #[tokio::test]
    async fn refuses_to_overwrite_unless_asked() {
        let (store, artifact) = store_with(&["a.bin", "b.bin"]).await;
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("b.bin"), b"mine").unwrap();
        let err = unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::Exists { .. }), "{err}");
        assert_eq!(entries(out.path()), ["b.bin"]);
        let options = PullOptions {
            overwrite: true,
            ..Default::default()
        };
        unpack_model(&store, &artifact, out.path(), &options)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(out.path().join("b.bin")).unwrap(),
            b"content 1"
        );
    }

    #[tokio::test]
    async fn refuses_non_models() {
        let store = MemoryStore::new("m");
        let (mut m, _) = manifest_with_paths(&["a"]);
        m.artifact_type = Some("application/x-other".into());
        store
            .push_manifest(Bytes::from(m.to_bytes()), mt::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        let err = fetch_model(&store, "v1").await.unwrap_err();
        assert!(matches!(err, ModelError::NotAModel { .. }), "{err}");
        assert!(err.to_string().contains(mt::MODEL_ARTIFACT));
    }

    #[tokio::test]
    async fn push_then_pull_round_trips() {
        let src = tempfile::tempdir().unwrap();
        for (p, c) in [("x/y/z.bin", &b"zz"[..]), (".h", b""), ("README.md", b"hi")] {
            let path = src.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        let store = MemoryStore::new("m");
        let pushed = push_model(
            &store,
            &[src.path().to_path_buf()],
            Some("v1"),
            &PushOptions::default(),
        )
        .await
        .unwrap();
        let artifact = fetch_model(&store, pushed.manifest.digest.as_str())
            .await
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        let r = unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(r.files.len(), 3);
        assert_eq!(
            entries(out.path()),
            [".h", "README.md", "x", "x/y", "x/y/z.bin"]
        );
        assert_eq!(std::fs::read(out.path().join("x/y/z.bin")).unwrap(), b"zz");
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::retry::RetryPolicy;
    use crate::store::{
        BlobSource, BoxChunks, BoxReader, BytesSource, RawManifest, Reference, Referrer,
        SizedManifest, Tag,
    };
    use async_trait::async_trait;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, ReadBuf};

    /// A store whose blob streams break after a few bytes, `fails` times; the blob `stall`
    /// names sends its first bytes and then nothing, and its flag tells when the stream was
    /// dropped.
    struct Flaky {
        inner: MemoryStore,
        fails: AtomicUsize,
        stall: Option<(Digest, Arc<AtomicBool>)>,
    }

    /// First bytes, then silence; sets its flag when dropped.
    struct Stalled {
        first: Option<Bytes>,
        dropped: Arc<AtomicBool>,
    }

    impl futures::Stream for Stalled {
        type Item = std::io::Result<Bytes>;
        fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.first.take() {
                Some(b) => Poll::Ready(Some(Ok(b))),
                None => Poll::Pending,
            }
        }
    }

    impl Drop for Stalled {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    struct BreakAfter {
        inner: BoxReader,
        left: usize,
    }

    impl AsyncRead for BreakAfter {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            if self.left == 0 {
                return Poll::Ready(Err(std::io::Error::other("connection reset by peer")));
            }
            let mut small = vec![0u8; self.left.min(buf.remaining())];
            let mut rb = ReadBuf::new(&mut small);
            match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    buf.put_slice(rb.filled());
                    self.left -= n;
                    Poll::Ready(Ok(()))
                }
                other => other,
            }
        }
    }

    #[async_trait]
    impl Store for Flaky {
        fn location(&self) -> String {
            self.inner.location()
        }
        async fn resolve_reference(&self, r: &Reference) -> crate::store::Result<Descriptor> {
            self.inner.resolve_reference(r).await
        }
        async fn read_manifest(&self, r: &Reference) -> crate::store::Result<RawManifest> {
            self.inner.read_manifest(r).await
        }
        async fn write_manifest(
            &self,
            m: &SizedManifest,
            t: &str,
            tag: Option<&Tag>,
        ) -> crate::store::Result<()> {
            self.inner.write_manifest(m, t, tag).await
        }
        async fn write_referrer(&self, r: &Referrer) -> crate::store::Result<()> {
            self.inner.write_referrer(r).await
        }
        async fn blob_exists(&self, d: &Digest) -> crate::store::Result<bool> {
            self.inner.blob_exists(d).await
        }
        async fn fetch_blob_raw(&self, d: &Descriptor) -> crate::store::Result<BoxReader> {
            let r = self.inner.fetch_blob_raw(d).await?;
            let fail = self
                .fails
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            Ok(if fail {
                Box::pin(BreakAfter { inner: r, left: 3 })
            } else {
                r
            })
        }
        async fn fetch_blob_chunks(&self, d: &Descriptor) -> crate::store::Result<BoxChunks> {
            match &self.stall {
                Some((digest, dropped)) if *digest == d.digest => Ok(Box::pin(Stalled {
                    first: Some(Bytes::from_static(b"abc")),
                    dropped: dropped.clone(),
                })),
                _ => {
                    let r = self.fetch_blob_raw(d).await?;
                    Ok(Box::pin(tokio_util::io::ReaderStream::new(r)))
                }
            }
        }
        async fn push_blob(&self, s: &dyn BlobSource) -> crate::store::Result<(Digest, u64)> {
            self.inner.push_blob(s).await
        }
        async fn referrers(
            &self,
            s: &Descriptor,
            a: Option<&str>,
        ) -> crate::store::Result<Vec<Descriptor>> {
            self.inner.referrers(s, a).await
        }
        async fn list_tags(&self) -> crate::store::Result<Vec<String>> {
            self.inner.list_tags().await
        }
        fn retry_policy(&self) -> RetryPolicy {
            RetryPolicy::new(ATTEMPTS).with_backoff_base(std::time::Duration::from_millis(20))
        }
    }

    /// Attempts the flaky store's retry policy allows.
    const ATTEMPTS: u32 = 3;

    /// A memory store holding a model `v1` made of these files; their layers.
    async fn model_store(files: &[(&str, &'static [u8])]) -> (MemoryStore, Vec<Descriptor>) {
        let inner = MemoryStore::new("flaky");
        let mut layers = Vec::new();
        for (path, content) in files {
            let (digest, size) = inner
                .push_blob(&BytesSource(Bytes::from_static(content)))
                .await
                .unwrap();
            let mut layer = Descriptor::new(mt::MODEL_WEIGHT, digest, size);
            layer.annotations = Some(
                [(mt::ANNOTATION_FILEPATH.to_string(), path.to_string())]
                    .into_iter()
                    .collect(),
            );
            layers.push(layer);
        }
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(mt::OCI_MANIFEST.into()),
            artifact_type: Some(mt::MODEL_ARTIFACT.into()),
            config: Descriptor::empty(),
            layers: layers.clone(),
            subject: None,
            annotations: None,
        };
        inner
            .push_manifest(Bytes::from(m.to_bytes()), mt::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        (inner, layers)
    }

    async fn flaky(fails: usize) -> (Flaky, ModelArtifact) {
        let (inner, _) = model_store(&[("w.bin", b"some model weights")]).await;
        let store = Flaky {
            inner,
            fails: AtomicUsize::new(fails),
            stall: None,
        };
        let artifact = fetch_model(&store, "v1").await.unwrap();
        (store, artifact)
    }

    #[tokio::test]
    async fn a_connection_lost_mid_blob_restarts_that_blob() {
        let (store, artifact) = flaky(ATTEMPTS as usize - 1).await;
        let out = tempfile::tempdir().unwrap();
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(out.path().join("w.bin")).unwrap(),
            b"some model weights"
        );
    }

    #[tokio::test]
    async fn a_connection_that_keeps_failing_is_a_network_error() {
        let (store, artifact) = flaky(100).await;
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let err = unpack_model(&store, &artifact, &out, &PullOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ModelError::Store(StoreError::Network { .. })),
            "{err}"
        );
        // The store's retry policy (`--retries`) says how many times the blob is fetched.
        assert_eq!(store.fails.load(Ordering::SeqCst), 100 - ATTEMPTS as usize);
        assert_eq!(err.kind(), crate::error::ErrorKind::Remote);
        assert!(err.to_string().contains("w.bin"), "{err}");
        assert!(!out.exists());
    }

    #[tokio::test]
    async fn a_failed_file_stops_the_downloads_still_running() {
        // The stalled file comes first, so that it is running when the bad one fails (a
        // bad file that fails within its first poll would otherwise stop the pull before the
        // other download starts).
        let (inner, layers) =
            model_store(&[("a-slow.bin", b"abcdef"), ("bad.bin", b"good bytes")]).await;
        inner.corrupt_blob(&layers[1].digest, Bytes::from_static(b"evil bytes"));
        let dropped = Arc::new(AtomicBool::new(false));
        let store = Flaky {
            inner,
            fails: AtomicUsize::new(0),
            stall: Some((layers[0].digest.clone(), dropped.clone())),
        };
        let artifact = fetch_model(&store, "v1").await.unwrap();
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let err = unpack_model(&store, &artifact, &out, &PullOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ModelError::Store(StoreError::DigestMismatch { .. })),
            "{err}"
        );
        assert!(err.to_string().contains("bad.bin"), "{err}");
        // The stalled download's thread lets go of its stream (and so of its connection)
        // instead of waiting for bytes that never come.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !dropped.load(Ordering::SeqCst) {
            assert!(
                std::time::Instant::now() < deadline,
                "the stalled download still runs after the pull failed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            !out.exists(),
            "{:?}",
            std::fs::read_dir(&out).ok().map(|d| d.count())
        );
    }
}
