//! OCI image layout directories (`oci:<dir>`), as the image-spec defines them: an `oci-layout`
//! file, an `index.json` listing the manifests (tags are entries annotated with
//! `org.opencontainers.image.ref.name`), and content-addressed `blobs/sha256/<hex>`.
//!
//! - Blobs are streamed into a temporary file inside `blobs/` while hashed, then renamed into
//!   place, so a blob path only ever holds complete content.
//! - `index.json` is rewritten atomically (temp file + rename) under an advisory lock on the
//!   layout directory itself (no lock file is left behind), so concurrent writers (processes
//!   or tasks) never lose entries.
//! - Temporary files (`.tmp-*`, in the layout root and `blobs/`) are locked while written; a
//!   write removes the unlocked ones an interrupted run left behind. An interrupted command
//!   drops its temporary files; the `index.json.lock` of older versions is removed.
//! - Referrers are untagged `index.json` entries whose manifest has a `subject`; they carry the
//!   manifest's `artifactType` and annotations like the referrers API does.
//! - Paths are built only from validated [`Digest`]s (64 lowercase hex), never from other input,
//!   so no digest can name a file outside `blobs/`.
//! - Nothing is created until the first write: reading a missing layout is a "not found".
//! - A layout may come from elsewhere: every file of it is read through [`open_regular`], which
//!   never follows a symlink and refuses anything but a regular file (a FIFO, a device, a
//!   directory) before reading a byte, so no layout can make a read hang or leave it; `blobs/`
//!   and `blobs/sha256/` must be directories, not symlinks, for reads and writes.
//! - `index.json` is read and rewritten as an [`ImageIndex`], which keeps the fields other
//!   tools wrote (`platform`, `urls`, `data`, the index `subject`, vendor fields): they are
//!   written back unchanged, also on an entry whose tag moves.

use super::io::fill_buf;
use super::*;
use crate::media_types as mt;
use std::io::Write as _;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const OCI_LAYOUT_FILE: &str = "oci-layout";
const INDEX_FILE: &str = "index.json";
/// The lock file older versions left beside `index.json` (removed when found).
const OLD_LOCK_FILE: &str = "index.json.lock";
/// The prefix of temporary files in the layout root and in `blobs/`.
pub const TEMP_PREFIX: &str = ".tmp-";
/// Largest `index.json` we read.
const MAX_INDEX_SIZE: u64 = 64 * 1024 * 1024;
/// Largest `oci-layout` file we read (it holds one short version field).
const MAX_LAYOUT_FILE_SIZE: u64 = 64 * 1024;
/// Copy buffer for blob writes.
const COPY_BUF: usize = 1 << 20;

/// An OCI image layout directory.
pub struct LayoutStore {
    root: PathBuf,
}

impl LayoutStore {
    /// Open the layout at `root`. Nothing is created until the first write; an existing
    /// `oci-layout` file must declare a 1.x layout version.
    pub fn open_or_create(root: &Path) -> Result<Self> {
        let store = LayoutStore {
            root: root.to_path_buf(),
        };
        match read_regular(&store.root.join(OCI_LAYOUT_FILE), MAX_LAYOUT_FILE_SIZE)? {
            Some(bytes) => check_layout_version(&store.location(), &bytes)?,
            None => {
                if store.root.exists() && !store.root.is_dir() {
                    return Err(StoreError::invalid(
                        store.location(),
                        "exists and is not a directory",
                    ));
                }
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/sha256/<hex>`: safe because a [`Digest`] is always `sha256:` + 64 hex digits.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs").join("sha256").join(digest.hex())
    }

    /// The current `index.json` (an empty index when the layout does not exist yet).
    pub async fn read_index(&self) -> Result<ImageIndex> {
        let path = self.root.join(INDEX_FILE);
        let bytes = tokio::task::spawn_blocking(move || read_regular(&path, MAX_INDEX_SIZE))
            .await
            .map_err(|e| StoreError::Other(format!("index.json read task failed: {e}")))??;
        match bytes {
            Some(bytes) => parse_index(&self.location(), &bytes),
            None => Ok(ImageIndex::new()),
        }
    }

    /// Create `oci-layout`, `index.json` and `blobs/sha256` when missing.
    fn ensure_layout(&self) -> Result<()> {
        let blobs = self.root.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs)
            .map_err(|e| StoreError::io(format!("create {}", blobs.display()), e))?;
        self.check_blob_dirs()?;
        let layout = self.root.join(OCI_LAYOUT_FILE);
        if !layout.exists() {
            let body = serde_json::json!({ "imageLayoutVersion": mt::OCI_LAYOUT_VERSION });
            write_atomic(&self.root, &layout, body.to_string().as_bytes())?;
        }
        remove_stale_temp(&self.root);
        remove_stale_temp(&self.root.join("blobs"));
        let old_lock = self.root.join(OLD_LOCK_FILE);
        if std::fs::symlink_metadata(&old_lock)
            .is_ok_and(|m| m.file_type().is_symlink() || (m.is_file() && m.len() == 0))
        {
            let _ = std::fs::remove_file(&old_lock);
        }
        let index = self.root.join(INDEX_FILE);
        if !index.exists() {
            // Under the lock: another writer may be creating it with entries right now.
            let _lock = self.lock_index()?;
            if !index.exists() {
                write_atomic(&self.root, &index, &ImageIndex::new().to_bytes())?;
            }
        }
        Ok(())
    }

    /// `blobs` and `blobs/sha256` are directories of the layout, not symlinks to elsewhere
    /// (`O_NOFOLLOW` guards only the last component of a path).
    fn check_blob_dirs(&self) -> Result<()> {
        for dir in [
            self.root.join("blobs"),
            self.root.join("blobs").join("sha256"),
        ] {
            match std::fs::symlink_metadata(&dir) {
                Ok(m) if !m.is_dir() => {
                    return Err(StoreError::invalid(
                        dir.display().to_string(),
                        format!(
                            "is {}, not a directory (refused: an OCI layout's blob directories are its own)",
                            file_type_name(m.file_type())
                        ),
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Open a blob for reading (`None` when absent): see [`open_regular`].
    async fn open_blob(&self, digest: &Digest) -> Result<Option<std::fs::File>> {
        let root = self.root.clone();
        let path = self.blob_path(digest);
        tokio::task::spawn_blocking(move || {
            LayoutStore { root }.check_blob_dirs()?;
            open_regular(&path)
        })
        .await
        .map_err(|e| StoreError::Other(format!("open task failed: {e}")))?
    }

    /// The advisory lock serializing `index.json` read-modify-write cycles (released on drop):
    /// a lock on the layout directory itself, so that no lock file is ever left behind.
    fn lock_index(&self) -> Result<std::fs::File> {
        let path = &self.root;
        let dir = std::fs::File::open(path)
            .map_err(|e| StoreError::io(format!("open {}", path.display()), e))?;
        dir.lock()
            .map_err(|e| StoreError::io(format!("lock {}", path.display()), e))?;
        Ok(dir)
    }

    /// Read-modify-write `index.json` under the lock; `edit` returns whether it changed it.
    /// Fields we do not model are kept (see [`ImageIndex`]).
    async fn update_index<F>(&self, edit: F) -> Result<()>
    where
        F: FnOnce(&mut ImageIndex) -> bool + Send + 'static,
    {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            let store = LayoutStore { root };
            store.ensure_layout()?;
            let _lock = store.lock_index()?;
            let path = store.root.join(INDEX_FILE);
            let bytes =
                read_regular(&path, MAX_INDEX_SIZE)?.ok_or_else(|| StoreError::NotFound {
                    what: INDEX_FILE.to_string(),
                    location: store.location(),
                })?;
            let mut index: ImageIndex = parse_index(&store.location(), &bytes)?;
            if edit(&mut index) {
                write_atomic(&store.root, &path, &index.to_bytes())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Other(format!("index.json update task failed: {e}")))?
    }

    /// Store small content (a manifest) as a blob unless present.
    async fn write_small_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        let path = self.blob_path(&digest);
        if blob_has_size(&path, bytes.len() as u64).await {
            return Ok(digest);
        }
        let root = self.root.clone();
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || {
            let store = LayoutStore { root };
            store.ensure_layout()?;
            write_atomic(&store.root.join("blobs"), &path, &bytes)
        })
        .await
        .map_err(|e| StoreError::Other(format!("blob write task failed: {e}")))??;
        Ok(digest)
    }

    /// Read a manifest blob fully, capped (checked against its digest by the caller: see
    /// [`checked::check_fetched`]).
    async fn read_manifest_blob(&self, digest: &Digest) -> Result<Bytes> {
        let what = format!("manifest {digest} in {}", self.location());
        let Some(file) = self.open_blob(digest).await? else {
            return Err(StoreError::NotFound {
                what,
                location: self.location(),
            });
        };
        let mut buf = Vec::new();
        tokio::fs::File::from_std(file)
            .take(mt::MAX_MANIFEST_SIZE + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| StoreError::io(format!("read {what}"), e))?;
        SizedManifest::new(what, Bytes::from(buf)).map(|m| m.bytes().clone())
    }
}

fn check_layout_version(location: &str, bytes: &[u8]) -> Result<()> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| StoreError::invalid(format!("{location} oci-layout file"), e.to_string()))?;
    match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
        Some(ver) if ver.starts_with("1.") => Ok(()),
        other => Err(StoreError::invalid(
            format!("{location} oci-layout file"),
            format!("imageLayoutVersion is {other:?}, expected \"1.0.0\""),
        )),
    }
}

fn parse_index<T: serde::de::DeserializeOwned>(location: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::invalid(format!("{location} index.json"), e.to_string()))
}

/// Whether `path` is a regular file (not a symlink to one) of `size` bytes.
async fn blob_has_size(path: &Path, size: u64) -> bool {
    matches!(tokio::fs::symlink_metadata(path).await, Ok(m) if m.is_file() && m.len() == size)
}

/// Open a file of the layout for reading; `None` when it does not exist. Anything but a regular
/// file is refused, naming the path and what it is: a symlink is never followed (`O_NOFOLLOW`),
/// and the open itself cannot block on a FIFO (`O_NONBLOCK`, which does nothing to reads of a
/// regular file); the type is checked on the open file, so it cannot change after the check.
pub fn open_regular(path: &Path) -> Result<Option<std::fs::File>> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            // ELOOP: the last component is a symlink.
            return Err(match std::fs::symlink_metadata(path) {
                Ok(m) if !m.is_file() => not_regular(path, m.file_type()),
                _ => StoreError::io(format!("open {}", path.display()), e),
            });
        }
    };
    let meta = file
        .metadata()
        .map_err(|e| StoreError::io(format!("stat {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(not_regular(path, meta.file_type()));
    }
    Ok(Some(file))
}

/// Read a whole file of the layout through [`open_regular`], refusing one over `limit` bytes.
fn read_regular(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let Some(file) = open_regular(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| StoreError::io(format!("read {}", path.display()), e))?;
    if bytes.len() as u64 > limit {
        return Err(StoreError::TooLarge {
            what: path.display().to_string(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(Some(bytes))
}

fn not_regular(path: &Path, t: std::fs::FileType) -> StoreError {
    StoreError::invalid(
        path.display().to_string(),
        format!(
            "is {}, not a regular file (refused: an OCI layout holds only regular files)",
            file_type_name(t)
        ),
    )
}

fn file_type_name(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Write `bytes` to `dest` through a temporary file in `tmp_dir` (same filesystem) + rename.
fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let what = || format!("write {}", dest.display());
    let mut tmp = locked_temp(tmp_dir).map_err(|e| StoreError::io(what(), e))?;
    tmp.write_all(bytes)
        .map_err(|e| StoreError::io(what(), e))?;
    make_readable(tmp.path());
    tmp.persist(dest)
        .map_err(|e| StoreError::io(what(), e.error))?;
    Ok(())
}

/// A new temporary file in `dir`, locked (so [`remove_stale_temp`] of another run leaves it
/// alone) and checked to still be the file at its path after locking (another run may have
/// taken it for stale between its creation and the lock).
fn locked_temp(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut attempts = 0;
    loop {
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        tmp.as_file().lock()?;
        if super::io::is_same_file(tmp.path(), tmp.as_file()) || attempts == 3 {
            return Ok(tmp);
        }
        attempts += 1;
    }
}

/// Remove the temporary files an interrupted run left in `dir`: ours by name, regular files,
/// not locked by a run still writing them.
fn remove_stale_temp(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX))
            || !entry.file_type().is_ok_and(|t| t.is_file())
        {
            continue;
        }
        let path = entry.path();
        let Ok(Some(file)) = open_regular(&path) else {
            continue;
        };
        if file.try_lock().is_ok() {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!("removed {} (left by an interrupted write)", path.display())
                }
                Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
            }
        }
    }
}

/// Temporary files are created private (0600); layout content is ordinary readable data.
fn make_readable(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644));
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// `mediaType` and `artifactType` (else config media type) of manifest bytes.
struct ManifestInfo {
    media_type: Option<String>,
    artifact_type: Option<String>,
}

fn manifest_info(bytes: &[u8]) -> Option<ManifestInfo> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Partial {
        media_type: Option<String>,
        artifact_type: Option<String>,
        config: Option<ConfigPart>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ConfigPart {
        media_type: Option<String>,
    }
    let p: Partial = serde_json::from_slice(bytes).ok()?;
    Some(ManifestInfo {
        media_type: p.media_type,
        artifact_type: p
            .artifact_type
            .or_else(|| p.config.and_then(|c| c.media_type)),
    })
}

fn ref_name(d: &Descriptor) -> Option<&str> {
    d.annotation(mt::ANNOTATION_REF_NAME)
}

fn is_manifest_type(media_type: &str) -> bool {
    matches!(
        media_type,
        mt::OCI_MANIFEST | mt::OCI_INDEX | mt::DOCKER_MANIFEST_V2 | mt::DOCKER_MANIFEST_LIST
    )
}

#[async_trait]
impl Store for LayoutStore {
    fn location(&self) -> String {
        format!("oci:{}", self.root.display())
    }

    async fn resolve_reference(&self, reference: &Reference) -> Result<Descriptor> {
        let index = self.read_index().await?;
        match reference {
            Reference::Digest(digest) => {
                if let Some(d) = index.manifests.iter().find(|d| &d.digest == digest) {
                    return Ok(Descriptor::new(
                        d.media_type.clone(),
                        digest.clone(),
                        d.size,
                    ));
                }
                // A manifest that is a blob but not listed (e.g. a child of an index).
                let bytes = self.read_manifest_blob(digest).await?;
                let media_type = manifest_info(&bytes)
                    .and_then(|i| i.media_type)
                    .unwrap_or_else(|| mt::OCI_MANIFEST.to_string());
                Ok(Descriptor::new(
                    media_type,
                    digest.clone(),
                    bytes.len() as u64,
                ))
            }
            Reference::Tag(tag) => index
                .manifests
                .iter()
                .rev()
                .find(|d| ref_name(d) == Some(tag.as_str()))
                .map(|d| Descriptor::new(d.media_type.clone(), d.digest.clone(), d.size))
                .ok_or_else(|| StoreError::NotFound {
                    what: format!("tag {:?}", tag.as_str()),
                    location: self.location(),
                }),
        }
    }

    async fn read_manifest(&self, reference: &Reference) -> Result<RawManifest> {
        let descriptor = self.resolve_reference(reference).await?;
        let bytes = self.read_manifest_blob(&descriptor.digest).await?;
        Ok(RawManifest { descriptor, bytes })
    }

    async fn write_manifest(
        &self,
        manifest: &SizedManifest,
        media_type: &str,
        tag: Option<&Tag>,
    ) -> Result<()> {
        let bytes = manifest.bytes();
        self.write_small_blob(bytes).await?;
        let mut entry = Descriptor::new(media_type, manifest.digest().clone(), manifest.size());
        entry.artifact_type = manifest_info(bytes).and_then(|i| i.artifact_type);
        let tag = tag.map(|t| t.as_str().to_string());
        self.update_index(move |index| match tag {
            Some(tag) => {
                // What other tools wrote on this manifest's entry (its `platform`, `urls`,
                // annotations, vendor fields) stays; the tag is ours to set.
                if let Some(old) = index.manifests.iter().find(|d| {
                    let name = ref_name(d);
                    d.digest == entry.digest && (name.is_none() || name == Some(tag.as_str()))
                }) {
                    entry = Descriptor {
                        media_type: entry.media_type,
                        digest: entry.digest,
                        size: entry.size,
                        artifact_type: entry.artifact_type,
                        ..old.clone()
                    };
                }
                // The tag moves here; an untagged entry for the same manifest becomes redundant.
                index.manifests.retain(|d| {
                    let name = ref_name(d);
                    name != Some(tag.as_str()) && !(name.is_none() && d.digest == entry.digest)
                });
                entry
                    .annotations
                    .get_or_insert_with(Annotations::new)
                    .insert(mt::ANNOTATION_REF_NAME.to_string(), tag);
                index.manifests.push(entry);
                true
            }
            None => add_untagged(index, entry),
        })
        .await
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        // A symlink is not a blob of this layout (reading it is refused; a push replaces it).
        match tokio::fs::symlink_metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io(format!("check blob {digest}"), e)),
        }
    }

    async fn fetch_blob_raw(&self, descriptor: &Descriptor) -> Result<BoxReader> {
        let digest = &descriptor.digest;
        match self.open_blob(digest).await? {
            Some(f) => Ok(Box::pin(tokio::fs::File::from_std(f))),
            None => Err(StoreError::NotFound {
                what: format!("blob {digest}"),
                location: self.location(),
            }),
        }
    }

    async fn fetch_blob_from(&self, descriptor: &Descriptor, offset: u64) -> Result<RangedChunks> {
        use std::io::Seek;
        let digest = &descriptor.digest;
        let Some(mut f) = self.open_blob(digest).await? else {
            return Err(StoreError::NotFound {
                what: format!("blob {digest}"),
                location: self.location(),
            });
        };
        let len = f
            .metadata()
            .map_err(|e| StoreError::io(format!("read blob {digest}"), e))?
            .len();
        // A blob shorter than the offset is sent whole (its check then fails as it should).
        let start = if offset <= len { offset } else { 0 };
        f.seek(std::io::SeekFrom::Start(start))
            .map_err(|e| StoreError::io(format!("read blob {digest}"), e))?;
        let reader: BoxReader = Box::pin(tokio::fs::File::from_std(f));
        Ok(RangedChunks {
            start,
            chunks: Box::pin(tokio_util::io::ReaderStream::with_capacity(
                reader,
                READER_CHUNK,
            )),
        })
    }

    async fn push_blob(&self, source: &dyn BlobSource) -> Result<(Digest, u64)> {
        let size = source.size();
        if let Some(digest) = source.known_digest() {
            if blob_has_size(&self.blob_path(&digest), size).await {
                return Ok((digest, size));
            }
        }
        {
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || LayoutStore { root }.ensure_layout())
                .await
                .map_err(|e| StoreError::Other(format!("layout init task failed: {e}")))??;
        }
        let what = source.describe();
        let blobs_dir = self.root.join("blobs");
        let tmp = locked_temp(&blobs_dir).map_err(|e| {
            StoreError::io(
                format!("create a temporary file in {}", blobs_dir.display()),
                e,
            )
        })?;
        let (file, tmp_path) = tmp.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut reader = source.open().await?;
        let mut check = verified::BlobCheck::upload(size, source.known_digest(), what.clone());
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let n = fill_buf(&mut reader, &mut buf)
                .await
                .map_err(verified::unwrap_io_error)?;
            if n == 0 {
                break;
            }
            check.update(&buf[..n])?;
            file.write_all(&buf[..n])
                .await
                .map_err(|e| StoreError::io(format!("write blob for {what}"), e))?;
        }
        file.flush()
            .await
            .map_err(|e| StoreError::io(format!("write blob for {what}"), e))?;
        // Still open (and locked) until renamed: no other run may take it for stale.
        let file = file.into_std().await;
        let digest = check.finish()?;
        let dest = self.blob_path(&digest);
        make_readable(&tmp_path);
        tmp_path
            .persist(&dest)
            .map_err(|e| StoreError::io(format!("store blob {digest}"), e.error))?;
        drop(file);
        Ok((digest, size))
    }

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let index = self.read_index().await?;
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for entry in &index.manifests {
            if entry.digest == subject.digest
                || !is_manifest_type(&entry.media_type)
                || entry.size > mt::MAX_MANIFEST_SIZE
                || !seen.insert(entry.digest.clone())
            {
                continue;
            }
            let found = self.read_manifest_blob(&entry.digest).await.map(|bytes| {
                super::referrers::descriptor_if_referrer(&bytes, &subject.digest, artifact_type)
            });
            match found {
                Ok(Some(d)) if d.digest != entry.digest => tracing::warn!(
                    "skipping {} in {}: its content does not match its digest",
                    entry.digest,
                    self.location()
                ),
                Ok(found) => out.extend(found),
                Err(e) => tracing::warn!("skipping {} in {}: {e}", entry.digest, self.location()),
            }
        }
        Ok(out)
    }

    async fn write_referrer(&self, referrer: &Referrer) -> Result<()> {
        self.write_small_blob(referrer.bytes()).await?;
        let mut entry = referrer.descriptor().clone();
        // Never let a referrer's own annotations make its index entry look like a tag.
        entry.annotations = entry
            .annotations
            .map(|mut a| {
                a.remove(mt::ANNOTATION_REF_NAME);
                a
            })
            .filter(|a| !a.is_empty());
        self.update_index(move |index| add_untagged(index, entry))
            .await
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let index = self.read_index().await?;
        let mut tags: Vec<String> = index
            .manifests
            .iter()
            .filter_map(|d| ref_name(d).map(str::to_string))
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }
}

/// Adds an untagged `entry` unless the index already lists its manifest; whether it did.
fn add_untagged(index: &mut ImageIndex, entry: Descriptor) -> bool {
    if index.manifests.iter().any(|d| d.digest == entry.digest) {
        return false;
    }
    index.manifests.push(entry);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn manifest_with_subject(subject: &Descriptor, n: u32) -> Bytes {
        let m = ImageManifest {
            artifact_type: Some(mt::SIGSTORE_BUNDLE_V03.into()),
            subject: Some(subject.clone()),
            annotations: Some(Annotations::from([
                ("n".to_string(), n.to_string()),
                (mt::ANNOTATION_REF_NAME.to_string(), "sneaky".to_string()),
            ])),
            ..ImageManifest::new(Descriptor::empty(), vec![])
        };
        Bytes::from(m.to_bytes())
    }

    /// A write removes the temporary files an interrupted run left, but not one another run
    /// is writing (it holds a lock on it), and no lock file is ever created.
    #[tokio::test]
    async fn stale_temporary_files_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        store
            .push_blob(&BytesSource(Bytes::from_static(b"first")))
            .await
            .unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::write(blobs.join(".tmp-stale"), b"half").unwrap();
        std::fs::write(dir.path().join(".tmp-stale-index"), b"{").unwrap();
        std::fs::write(blobs.join(".tmp-live"), b"being written").unwrap();
        let live = std::fs::File::open(blobs.join(".tmp-live")).unwrap();
        live.lock().unwrap();
        std::fs::write(dir.path().join(OLD_LOCK_FILE), b"").unwrap();
        store
            .push_blob(&BytesSource(Bytes::from_static(b"second")))
            .await
            .unwrap();
        store
            .push_manifest(
                Bytes::from(
                    ImageManifest {
                        schema_version: 2,
                        media_type: Some(mt::OCI_MANIFEST.into()),
                        artifact_type: Some("application/x-test".into()),
                        config: Descriptor::empty(),
                        layers: vec![],
                        subject: None,
                        annotations: None,
                    }
                    .to_bytes(),
                ),
                mt::OCI_MANIFEST,
                Some("v1"),
            )
            .await
            .unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&blobs)
            .unwrap()
            .chain(std::fs::read_dir(dir.path()).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".tmp-live", "blobs", "index.json", "oci-layout", "sha256"]
        );
    }

    #[tokio::test]
    async fn an_oversized_manifest_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("l");
        let store = LayoutStore::open_or_create(&root).unwrap();
        let big = Bytes::from(vec![b' '; mt::MAX_MANIFEST_SIZE as usize + 1]);
        let err = store
            .push_manifest(big, mt::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
        assert!(!root.exists(), "a refused manifest created the layout");
    }

    #[tokio::test]
    async fn blobs_manifests_tags_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(&dir.path().join("l")).unwrap();
        assert!(matches!(
            store.resolve("v1").await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(
            !dir.path().join("l").exists(),
            "reading must not create the layout"
        );

        let (d, n) = store
            .push_blob(&BytesSource(Bytes::from_static(b"hello")))
            .await
            .unwrap();
        assert_eq!((d.clone(), n), (Digest::of(b"hello"), 5));
        assert!(store.blob_exists(&d).await.unwrap());
        assert_eq!(std::fs::read(store.blob_path(&d)).unwrap(), b"hello");
        let layout: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("l/oci-layout")).unwrap())
                .unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");

        let body = Bytes::from_static(br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"x/y","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#);
        let desc = store
            .push_manifest(body.clone(), mt::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        assert_eq!(desc.digest, Digest::of(&body));
        let got = store.fetch_manifest("v1").await.unwrap();
        assert_eq!(got.bytes, body);
        assert_eq!(got.descriptor, desc);
        let by_digest = store.fetch_manifest(desc.digest.as_str()).await.unwrap();
        assert_eq!(by_digest.bytes, body);
        assert_eq!(store.list_tags().await.unwrap(), vec!["v1".to_string()]);

        // Re-tagging moves the tag and keeps one entry.
        store
            .push_manifest(body.clone(), mt::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        let index = store.read_index().await.unwrap();
        assert_eq!(index.manifests.len(), 1);
        assert_eq!(index.manifests[0].artifact_type.as_deref(), Some("x/y"));
    }

    #[tokio::test]
    async fn push_blob_checks_size_and_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"content").unwrap();
        let wrong = FileSource {
            path: path.clone(),
            size: 7,
            digest: Some(Digest::of(b"other")),
        };
        let err = store.push_blob(&wrong).await.unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        let short = FileSource {
            path: path.clone(),
            size: 3,
            digest: None,
        };
        assert!(matches!(
            store.push_blob(&short).await.unwrap_err(),
            StoreError::SizeMismatch { .. }
        ));
        assert!(!store.blob_exists(&Digest::of(b"other")).await.unwrap());
        assert!(!store.blob_exists(&Digest::of(b"content")).await.unwrap());
        // No temporary files left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != "sha256")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test]
    async fn corrupted_manifest_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let body = Bytes::from_static(br#"{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}}"#);
        let desc = store
            .push_manifest(body.clone(), mt::OCI_MANIFEST, Some("t"))
            .await
            .unwrap();
        let mut tampered = body.to_vec();
        tampered[5] = b'X';
        std::fs::write(store.blob_path(&desc.digest), tampered).unwrap();
        let err = store.fetch_manifest("t").await.unwrap_err();
        assert!(err.is_integrity(), "{err}");
    }

    #[tokio::test]
    async fn referrers_are_untagged_index_entries_found_by_subject() {
        let dir = tempfile::tempdir().unwrap();
        let store = LayoutStore::open_or_create(dir.path()).unwrap();
        let subject_bytes = Bytes::from(ImageManifest::new(Descriptor::empty(), vec![]).to_bytes());
        let subject = store
            .push_manifest(subject_bytes, mt::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        let other = Descriptor::new(mt::OCI_MANIFEST, Digest::of(b"nope"), 4);
        let err = store
            .push_referrer(manifest_with_subject(&other, 0), &subject)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }));

        let r = store
            .push_referrer(manifest_with_subject(&subject, 1), &subject)
            .await
            .unwrap();
        // Pushing the same referrer again adds nothing.
        store
            .push_referrer(manifest_with_subject(&subject, 1), &subject)
            .await
            .unwrap();
        let found = store.referrers(&subject, None).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].digest, r.digest);
        assert_eq!(
            found[0].artifact_type.as_deref(),
            Some(mt::SIGSTORE_BUNDLE_V03)
        );
        assert_eq!(found[0].annotation("n"), Some("1"));
        assert!(store
            .referrers(&subject, Some("other/type"))
            .await
            .unwrap()
            .is_empty());
        // The referrer's own ref.name annotation must not turn into a tag.
        assert_eq!(store.list_tags().await.unwrap(), vec!["v1".to_string()]);
    }

    #[tokio::test]
    async fn concurrent_writers_keep_every_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let subject = {
            let s = LayoutStore::open_or_create(&root).unwrap();
            let bytes = Bytes::from(ImageManifest::new(Descriptor::empty(), vec![]).to_bytes());
            s.push_manifest(bytes, mt::OCI_MANIFEST, Some("base"))
                .await
                .unwrap()
        };
        let mut tasks = Vec::new();
        for n in 0..24u32 {
            // Separate store values, as separate processes would have.
            let store = Arc::new(LayoutStore::open_or_create(&root).unwrap());
            let subject = subject.clone();
            tasks.push(tokio::spawn(async move {
                store
                    .push_referrer(manifest_with_subject(&subject, n), &subject)
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let store = LayoutStore::open_or_create(&root).unwrap();
        assert_eq!(store.referrers(&subject, None).await.unwrap().len(), 24);
        assert_eq!(store.read_index().await.unwrap().manifests.len(), 25);
    }

    /// Only regular files are opened: the others are refused at once, naming what they are.
    #[test]
    fn open_regular_refuses_everything_but_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(open_regular(&file).unwrap().is_some());
        assert!(open_regular(&dir.path().join("missing")).unwrap().is_none());
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for (path, what) in [
            (fifo.as_path(), "a FIFO"),
            (link.as_path(), "a symbolic link"),
            (dir.path(), "a directory"),
            (Path::new("/dev/null"), "a device"),
        ] {
            let err = open_regular(path).unwrap_err().to_string();
            assert!(
                err.contains(&path.display().to_string()) && err.contains(what),
                "{err}"
            );
        }
        // A FIFO as `oci-layout` is refused when the layout is opened.
        std::fs::rename(&fifo, dir.path().join(OCI_LAYOUT_FILE)).unwrap();
        let err = LayoutStore::open_or_create(dir.path()).err().unwrap();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    fn refuses_unknown_layout_versions() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"2.0.0"}"#,
        )
        .unwrap();
        assert!(matches!(
            LayoutStore::open_or_create(dir.path()),
            Err(StoreError::Invalid { .. })
        ));
    }
}
