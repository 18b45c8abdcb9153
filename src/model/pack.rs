//! Push a model: every file becomes a layer (streamed and hashed by the store while it
//! uploads, several at once), then the ModelPack config, then the manifest (tagged).

use super::cache::{self, BlobHome, DigestCache};
use super::config::{ModelConfig, ModelMetadata};
use super::paths::ModelPath;
use super::walk::{collect_model, LocalFile, LocalModel, WalkOptions};
use super::{roles, ModelError};
use crate::digest::Digest;
use crate::media_types as mt;
use crate::progress::SharedReporter;
use crate::store::copy::ProgressReader;
use crate::store::{
    Annotations, BlobSource, BoxReader, BytesSource, Descriptor, ImageManifest, Store, StoreError,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Annotation marking a layer whose media type is a guess (ModelPack spec).
pub const ANNOTATION_MEDIATYPE_UNTESTED: &str = "org.cncf.model.file.mediatype.untested";
/// Read buffer for file uploads (one filesystem read per MiB whatever the consumer asks).
const READ_BUF: usize = 1 << 20;

#[derive(Clone)]
pub struct PushOptions {
    /// Model name for the config (default: the directory name or first file's stem).
    pub name: Option<String>,
    /// The rest of the config's `descriptor` and `config` (architecture, paramSize…); its
    /// `descriptor.name` is replaced by `name`, `config.format` detected when not given.
    pub metadata: ModelMetadata,
    /// Manifest annotations.
    pub annotations: Annotations,
    pub walk: WalkOptions,
    /// Files uploaded at once.
    pub concurrency: usize,
    pub reporter: SharedReporter,
    /// Digest cache (re-pushes skip hashing and uploading what the store has).
    pub cache: Option<Arc<DigestCache>>,
    /// Pack each top-level directory of the model as one deterministic `.tar` layer
    /// (`push --archive-dirs`); files at the top level stay raw layers.
    pub archive_dirs: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            name: None,
            metadata: ModelMetadata::default(),
            annotations: Annotations::new(),
            walk: WalkOptions::default(),
            concurrency: 4,
            reporter: crate::progress::silent(),
            cache: None,
            archive_dirs: false,
        }
    }
}

/// One pushed file.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedFile {
    pub path: ModelPath,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    /// False when the store already had the blob (or mounted it).
    #[serde(skip)]
    pub uploaded: bool,
    /// The repository of the same registry the blob was mounted from, instead of uploaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted_from: Option<String>,
}

/// The result of a push.
#[derive(Clone, Debug)]
pub struct PushResult {
    pub manifest: Descriptor,
    pub manifest_bytes: Bytes,
    pub config: Descriptor,
    pub name: String,
    pub files: Vec<PushedFile>,
}

impl PushResult {
    pub fn total_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
    pub fn uploaded(&self) -> usize {
        self.files.iter().filter(|f| f.uploaded).count()
    }
    pub fn mounted(&self) -> usize {
        self.files
            .iter()
            .filter(|f| f.mounted_from.is_some())
            .count()
    }
}

/// Push the model made of `sources` (a directory, or files) to `store`, tagging it `tag`.
pub async fn push_model(
    store: &dyn Store,
    sources: &[PathBuf],
    tag: Option<&str>,
    options: &PushOptions,
) -> Result<PushResult, ModelError> {
    let sources = sources.to_vec();
    let walk = options.walk.clone();
    let model = tokio::task::spawn_blocking(move || collect_model(&sources, &walk))
        .await
        .map_err(|e| ModelError::Input(format!("listing the model files failed: {e}")))??;
    push_local_model(store, &model, tag, options).await
}

/// Push an already listed model.
pub async fn push_local_model(
    store: &dyn Store,
    model: &LocalModel,
    tag: Option<&str>,
    options: &PushOptions,
) -> Result<PushResult, ModelError> {
    let result = if options.archive_dirs {
        push_archived_dirs(store, model, options).await
    } else {
        push_files(store, model, options).await
    };
    if let Some(cache) = &options.cache {
        if let Err(e) = cache.save() {
            tracing::warn!("cannot save the digest cache: {e}");
        }
    }
    let files = result?;

    let name = options.name.clone().unwrap_or_else(|| model.name.clone());
    let format = roles::model_format(
        files
            .iter()
            .filter(|f| f.media_type == mt::MODEL_WEIGHT)
            .map(|f| (f.path.as_str(), f.size)),
    );
    let mut metadata = options.metadata.clone();
    metadata.descriptor.name = Some(name.clone());
    let config_bytes = Bytes::from(
        ModelConfig::from_metadata(
            &metadata,
            format,
            files.iter().map(|f| f.digest.clone()).collect(),
        )
        .to_bytes(),
    );
    let (config_digest, config_size) = store.push_blob(&BytesSource(config_bytes)).await?;
    let config = Descriptor::new(mt::MODEL_CONFIG, config_digest, config_size);

    let manifest = build_manifest(config.clone(), &files, &options.annotations);
    let manifest_bytes = Bytes::from(manifest.to_bytes());
    let descriptor = store
        .push_manifest(manifest_bytes.clone(), mt::OCI_MANIFEST, tag)
        .await?;
    let expected = Digest::of(&manifest_bytes);
    if descriptor.digest != expected {
        return Err(StoreError::DigestMismatch {
            what: format!("manifest as stored in {}", store.location()),
            expected,
            actual: descriptor.digest,
        }
        .into());
    }
    Ok(PushResult {
        manifest: descriptor,
        manifest_bytes,
        config,
        name,
        files,
    })
}

/// The model manifest for pushed files (in their order) and a config descriptor.
pub fn build_manifest(
    config: Descriptor,
    files: &[PushedFile],
    annotations: &Annotations,
) -> ImageManifest {
    let layers = files
        .iter()
        .map(|f| {
            let mut a = Annotations::new();
            a.insert(mt::ANNOTATION_FILEPATH.to_string(), f.path.to_string());
            a.insert(mt::ANNOTATION_TITLE.to_string(), f.path.to_string());
            let archive = super::archive::ArchiveFormat::of_media_type(&f.media_type).is_some();
            if !archive && roles::role_of(&f.path).guessed {
                a.insert(
                    ANNOTATION_MEDIATYPE_UNTESTED.to_string(),
                    "true".to_string(),
                );
            }
            Descriptor {
                annotations: Some(a),
                ..Descriptor::new(f.media_type.clone(), f.digest.clone(), f.size)
            }
        })
        .collect();
    ImageManifest {
        artifact_type: Some(mt::MODEL_ARTIFACT.to_string()),
        annotations: (!annotations.is_empty()).then(|| annotations.clone()),
        ..ImageManifest::new(config, layers)
    }
}

async fn push_files(
    store: &dyn Store,
    model: &LocalModel,
    options: &PushOptions,
) -> Result<Vec<PushedFile>, ModelError> {
    let mut pushed: Vec<(usize, PushedFile)> =
        futures::stream::iter(model.files.iter().enumerate())
            .map(|(i, file)| async move { push_file(store, file, options).await.map(|p| (i, p)) })
            .buffer_unordered(options.concurrency.max(1))
            .try_collect()
            .await?;
    pushed.sort_by_key(|(i, _)| *i);
    Ok(pushed.into_iter().map(|(_, p)| p).collect())
}

/// `push --archive-dirs`: each top-level directory becomes one `.tar` layer (written to a
/// temporary file by [`super::archive::write_tar`], then uploaded like a file), at the place of
/// its first file; the files at the top level stay raw layers. The tar's media type is the
/// `.tar` form of its files' role when they all have one, else of its largest file's role.
async fn push_archived_dirs(
    store: &dyn Store,
    model: &LocalModel,
    options: &PushOptions,
) -> Result<Vec<PushedFile>, ModelError> {
    use super::archive::{tar_media_type, write_tar, TarSource};
    let mut units: Vec<(ModelPath, Vec<&LocalFile>)> = Vec::new();
    let mut raw: Vec<LocalFile> = Vec::new();
    let mut order: Vec<Result<usize, usize>> = Vec::new();
    for f in &model.files {
        match f.path.split_once('/') {
            None => {
                order.push(Ok(raw.len()));
                raw.push(f.clone());
            }
            Some((top, _)) => match units.last_mut() {
                Some((dir, files)) if dir.as_str() == top => files.push(f),
                _ => {
                    let dir = ModelPath::new(top)
                        .map_err(|r| ModelError::Input(format!("directory {top:?}: {r}")))?;
                    order.push(Err(units.len()));
                    units.push((dir, vec![f]));
                }
            },
        }
    }
    let temp = tempfile::tempdir()
        .map_err(|e| ModelError::io("create a temporary directory for the archives", e))?;
    let mut tars: Vec<(LocalFile, String)> = Vec::new();
    for (i, (dir, files)) in units.iter().enumerate() {
        let sources: Vec<TarSource> = files
            .iter()
            .map(|f| TarSource {
                path: f.path.clone(),
                source: f.source.clone(),
                size: f.size,
                executable: is_executable(&f.source),
            })
            .collect();
        let dest = temp.path().join(format!("{i}.tar"));
        let written = dest.clone();
        let shown = dir.to_string();
        let size = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let out = std::io::BufWriter::new(std::fs::File::create_new(&written)?);
            let out = write_tar(out, &sources)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
            Ok(std::fs::metadata(&written)?.len())
        })
        .await
        .map_err(|e| ModelError::Input(format!("archiving {shown} failed: {e}")))?
        .map_err(|e| ModelError::io(format!("archive directory {shown}"), e))?;
        let mut roles: Vec<(&'static str, u64)> = files
            .iter()
            .map(|f| (roles::role_of(&f.path).media_type, f.size))
            .collect();
        let role = if roles.iter().all(|(r, _)| *r == roles[0].0) {
            roles[0].0
        } else {
            roles.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
            roles[0].0
        };
        tars.push((
            LocalFile {
                path: dir.clone(),
                source: dest,
                size,
                key: None,
            },
            tar_media_type(role),
        ));
    }
    let pushed_raw = push_files(
        store,
        &LocalModel {
            name: model.name.clone(),
            root: model.root.clone(),
            files: raw,
        },
        options,
    )
    .await?;
    let pushed_tars: Vec<PushedFile> = futures::stream::iter(tars.iter())
        .then(|(file, media_type)| async move {
            let mut p = push_file(store, file, options).await?;
            p.media_type = media_type.clone();
            Ok::<_, ModelError>(p)
        })
        .try_collect()
        .await?;
    Ok(order
        .into_iter()
        .map(|o| match o {
            Ok(i) => pushed_raw[i].clone(),
            Err(i) => pushed_tars[i].clone(),
        })
        .collect())
}

#[cfg(unix)]
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o100 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &std::path::Path) -> bool {
    false
}

async fn push_file(
    store: &dyn Store,
    file: &LocalFile,
    options: &PushOptions,
) -> Result<PushedFile, ModelError> {
    let (cached, homes) = match (&options.cache, &file.key) {
        (Some(cache), Some(key)) => match cache.lookup_with_homes(&file.source, key) {
            Some((digest, homes)) => (Some(digest), homes),
            None => (None, Vec::new()),
        },
        _ => (None, Vec::new()),
    };
    let here = cache::home_of(store);
    let id = options.reporter.start(&file.path, file.size);
    if let (Some(digest), Some(here)) = (&cached, &here) {
        if let Some(from) = mount_from_elsewhere(store, digest, here, &homes).await? {
            options.reporter.finish(id, true);
            remember(options, file, digest, Some(here.clone()));
            return Ok(PushedFile {
                path: file.path.clone(),
                digest: digest.clone(),
                size: file.size,
                media_type: roles::role_of(&file.path).media_type.to_string(),
                uploaded: false,
                mounted_from: Some(from),
            });
        }
    }
    let mut source = ReportingFileSource {
        file,
        digest: cached.clone(),
        reporter: options.reporter.clone(),
        id,
        opened: AtomicBool::new(false),
    };
    let mut result = store.push_blob(&source).await;
    if cached.is_some() && matches!(result, Err(StoreError::DigestMismatch { .. })) {
        // A stale cache entry: forget it and upload hashing as we go.
        tracing::info!(
            "digest cache was stale for {}; re-hashing",
            file.source.display()
        );
        if let Some(cache) = &options.cache {
            cache.remove(&file.source);
        }
        source.digest = None;
        result = store.push_blob(&source).await;
    }
    let opened = source.opened.load(Ordering::Relaxed);
    options.reporter.finish(id, !opened);
    let (digest, size) = result?;
    if size != file.size {
        return Err(StoreError::SizeMismatch {
            what: format!("file {}", file.source.display()),
            expected: file.size,
            actual: size,
        }
        .into());
    }
    remember(options, file, &digest, here);
    Ok(PushedFile {
        path: file.path.clone(),
        digest,
        size,
        media_type: roles::role_of(&file.path).media_type.to_string(),
        uploaded: opened,
        mounted_from: None,
    })
}

/// When the blob is not known to be in this repository but is known to be in another one of
/// the same registry, ask the registry to mount it from there. The repository it came from, or
/// `None` when no mount happened (the caller then pushes as usual, skipping the upload if the
/// registry has the blob).
async fn mount_from_elsewhere(
    store: &dyn Store,
    digest: &Digest,
    here: &BlobHome,
    homes: &[BlobHome],
) -> Result<Option<String>, ModelError> {
    let Some(mount) = store.mount().filter(|_| !homes.contains(here)) else {
        return Ok(None);
    };
    for home in homes {
        if home.registry == here.registry
            && home.repository != here.repository
            && mount.mount_blob(digest, &home.repository).await?
        {
            tracing::debug!("mounted {digest} from {}", home.repository);
            return Ok(Some(home.repository.clone()));
        }
    }
    Ok(None)
}

/// Record the file's digest (and where its blob now is) in the digest cache.
fn remember(options: &PushOptions, file: &LocalFile, digest: &Digest, home: Option<BlobHome>) {
    if let (Some(cache), Some(key)) = (&options.cache, &file.key) {
        cache.insert(&file.source, *key, digest.clone(), home);
    }
}

/// A model file read for upload: buffered reads, progress, and whether it was read at all.
struct ReportingFileSource<'a> {
    file: &'a LocalFile,
    digest: Option<Digest>,
    reporter: SharedReporter,
    id: u64,
    opened: AtomicBool,
}

#[async_trait]
impl BlobSource for ReportingFileSource<'_> {
    fn size(&self) -> u64 {
        self.file.size
    }
    fn known_digest(&self) -> Option<Digest> {
        self.digest.clone()
    }
    fn describe(&self) -> String {
        format!("file {}", self.file.source.display())
    }
    async fn open(&self) -> crate::store::Result<BoxReader> {
        self.opened.store(true, Ordering::Relaxed);
        let f = tokio::fs::File::open(&self.file.source)
            .await
            .map_err(|e| StoreError::io(format!("open {}", self.file.source.display()), e))?;
        let reader = tokio::io::BufReader::with_capacity(READ_BUF, f);
        Ok(Box::pin(ProgressReader::new(
            reader,
            self.reporter.clone(),
            self.id,
        )))
    }
    async fn open_at(&self, offset: u64) -> crate::store::Result<BoxReader> {
        self.opened.store(true, Ordering::Relaxed);
        let f = crate::store::open_file_at(&self.file.source, offset).await?;
        let reader = tokio::io::BufReader::with_capacity(READ_BUF, f);
        Ok(Box::pin(ProgressReader::new(
            reader,
            self.reporter.clone(),
            self.id,
        )))
    }
    /// The file's path and identity (device, inode, size, change times): an upload of it is
    /// continued only while the file is the one that was being sent.
    fn resume_key(&self) -> Option<String> {
        let key = self.file.key?;
        Some(format!(
            "{}\n{}:{}:{}:{}.{}:{}.{}",
            self.file.source.display(),
            key.dev,
            key.ino,
            key.size,
            key.mtime,
            key.mtime_nsec,
            key.ctime,
            key.ctime_nsec
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn model_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, c) in [
            ("config.json", &b"{}"[..]),
            ("model.safetensors", b"weights"),
            ("README.md", b"# m"),
            ("sub/.hidden", b""),
        ] {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        dir
    }

    #[tokio::test]
    async fn builds_a_modelpack_manifest() {
        let dir = model_dir();
        let store = MemoryStore::new("m");
        let options = PushOptions {
            name: Some("bert".into()),
            ..Default::default()
        };
        let r = push_model(&store, &[dir.path().to_path_buf()], Some("v1"), &options)
            .await
            .unwrap();
        let m: ImageManifest = serde_json::from_slice(&r.manifest_bytes).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some(mt::MODEL_ARTIFACT));
        assert_eq!(m.media_type.as_deref(), Some(mt::OCI_MANIFEST));
        assert_eq!(m.config.media_type, mt::MODEL_CONFIG);
        let got: Vec<(&str, &str)> = m
            .layers
            .iter()
            .map(|l| {
                (
                    l.annotation(mt::ANNOTATION_FILEPATH).unwrap(),
                    l.media_type.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("README.md", mt::MODEL_DOC),
                ("config.json", mt::MODEL_WEIGHT_CONFIG),
                ("model.safetensors", mt::MODEL_WEIGHT),
                ("sub/.hidden", mt::MODEL_WEIGHT),
            ]
        );
        assert_eq!(
            m.layers[3].annotation(ANNOTATION_MEDIATYPE_UNTESTED),
            Some("true")
        );
        assert_eq!(
            m.layers[0].annotation(mt::ANNOTATION_TITLE),
            Some("README.md")
        );
        let config = crate::store::fetch_small_blob(&store, &m.config, "config", 1 << 20)
            .await
            .unwrap();
        let c: ModelConfig = serde_json::from_slice(&config).unwrap();
        assert_eq!(c.descriptor.name.as_deref(), Some("bert"));
        assert_eq!(c.config.format.as_deref(), Some("safetensors"));
        assert_eq!(
            c.modelfs.diff_ids,
            m.layers
                .iter()
                .map(|l| l.digest.clone())
                .collect::<Vec<_>>()
        );
        assert_eq!(store.resolve("v1").await.unwrap().digest, r.manifest.digest);

        // Same directory, same digest.
        let again = push_model(&store, &[dir.path().to_path_buf()], Some("v2"), &options)
            .await
            .unwrap();
        assert_eq!(again.manifest.digest, r.manifest.digest);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn digest_cache_lets_a_repush_skip_reading_files() {
        let dir = model_dir();
        let cache_dir = tempfile::tempdir().unwrap();
        let store = MemoryStore::new("m");
        // Each push loads the cache afresh, as a new process would.
        let push = || async {
            let options = PushOptions {
                cache: Some(Arc::new(DigestCache::load(cache_dir.path()))),
                ..Default::default()
            };
            push_model(&store, &[dir.path().to_path_buf()], Some("v1"), &options)
                .await
                .unwrap()
        };
        let first = push().await;
        assert_eq!(first.uploaded(), 4);
        let second = push().await;
        assert_eq!(second.manifest.digest, first.manifest.digest);
        assert_eq!(
            second.uploaded(),
            0,
            "known digests are skipped without reading the files"
        );

        // A stale entry (forged here) is detected by the upload's own hash and dropped.
        let target = dir.path().join("model.safetensors");
        let key = crate::model::cache::FileKey::from_metadata(&std::fs::metadata(&target).unwrap())
            .unwrap();
        let cache = Arc::new(DigestCache::load(cache_dir.path()));
        cache.insert(&target, key, Digest::of(b"not the content"), None);
        let fresh = MemoryStore::new("fresh");
        let options = PushOptions {
            cache: Some(cache.clone()),
            ..Default::default()
        };
        let third = push_model(&fresh, &[dir.path().to_path_buf()], Some("v1"), &options)
            .await
            .unwrap();
        assert_eq!(third.manifest.digest, first.manifest.digest);
        assert_eq!(cache.lookup(&target, &key), Some(Digest::of(b"weights")));
    }
}
