//! Pull a model: fetch its manifest, check that it is a model, and write its files as one
//! transaction. Every final path (rules, name and path length, case-folding collisions) and the
//! free space are checked before anything is written; each blob streams into one staging
//! directory inside the target (`.oci-model-XXXXXX.partial`, locked while the pull runs) while
//! its size and sha256 are checked; only when every file matched are they moved into place,
//! files replaced with `--overwrite` moved aside first. Any failure, or dropping the pull (an
//! interrupted command), restores the replaced files and removes the placed ones, the staging
//! directory and every directory the pull created. A later pull removes stale staging.

use super::cache::{DigestCache, FileKey};
use super::paths::{is_temp_name, ModelPath, TEMP_PREFIX, TEMP_SUFFIX};
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
use std::sync::Arc;

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

/// The path a layer declares: `org.cncf.model.filepath` (or the legacy `org.cnai.model.filepath`),
/// else `org.opencontainers.image.title`.
pub fn layer_path(layer: &Descriptor) -> Option<&str> {
    layer
        .annotation(mt::ANNOTATION_FILEPATH)
        .or_else(|| layer.annotation(mt::LEGACY_ANNOTATION_FILEPATH))
        .or_else(|| layer.annotation(mt::ANNOTATION_TITLE))
}

/// Is this manifest a model (artifactType or config media type, today's or the legacy
/// `vnd.cnai.model` ones)?
pub fn is_model(manifest: &ImageManifest) -> bool {
    let artifact_type = manifest
        .artifact_type
        .as_deref()
        .map(mt::current_model_type);
    artifact_type.as_deref() == Some(mt::MODEL_ARTIFACT)
        || mt::current_model_type(&manifest.config.media_type) == mt::MODEL_CONFIG
}

/// Does this manifest use the legacy (pre-CNCF) `vnd.cnai.model` media types?
pub fn is_legacy_model(manifest: &ImageManifest) -> bool {
    manifest
        .artifact_type
        .as_deref()
        .is_some_and(mt::is_legacy_model_type)
        || mt::is_legacy_model_type(&manifest.config.media_type)
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

/// Write the files of `artifact` (fetched from `store`) into `dir`, all or nothing.
///
/// Every final path is checked before anything is written ([`check_targets`]), the files are
/// downloaded into one staging directory inside `dir` (same filesystem), and only when every
/// one of them matched its digest are they moved into place. Files replaced with `overwrite`
/// are moved aside first. Any failure — or dropping the returned future, which is what an
/// interrupted command does — restores what was replaced, removes what was placed, the
/// staging directory and every directory this pull created.
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
        let total: u64 = files.iter().map(|f| f.descriptor.size).sum();
        let overwrite = options.overwrite;
        tokio::task::spawn_blocking(move || check_targets(&owned, &rels, total, overwrite))
            .await
            .map_err(|e| ModelError::Input(format!("checking {} failed: {e}", dir.display())))??
    };
    let mut txn = Transaction::begin(&plan)?;
    if plan.case_folds {
        txn.refuse_case_collisions(&files)?;
    }
    let staging = txn.staging.clone();
    let downloads = futures::stream::iter(files.iter().enumerate())
        .map(|(i, f)| download(store, &staging, i, f, options))
        .buffer_unordered(options.concurrency.max(1))
        .try_collect::<Vec<(usize, PathBuf)>>()
        .await?;
    let mut staged: Vec<(usize, PathBuf)> = downloads;
    staged.sort_by_key(|(i, _)| *i);
    for (i, path) in staged {
        txn.place(&path, &files[i].path, i, options.overwrite)?;
    }
    let root = txn.commit();
    if let Some(cache) = &options.cache {
        let home = super::cache::home_of(store);
        for file in &files {
            let dest = root.join(&file.path);
            if let Some(key) = std::fs::metadata(&dest)
                .ok()
                .and_then(|m| FileKey::from_metadata(&m))
            {
                cache.insert(&dest, key, file.descriptor.digest.clone(), home.clone());
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

/// What [`check_targets`] found: where to write and what is missing.
struct Plan {
    /// The target directory (canonical when it exists).
    root: PathBuf,
    /// Directories to create, outermost first, when `root` does not exist yet.
    missing_root: Vec<PathBuf>,
    /// The filesystem folds case and two files differ only by case.
    case_folds: bool,
}

/// Before anything is written: no target may escape `dir` through an existing symlink, sit
/// below an existing non-directory, be a directory, or exist (unless `overwrite`); no name may
/// exceed the filesystem's limits; the files must fit in the free space. Stale temporary files
/// of an interrupted pull (ours, unlocked) are removed on the way.
fn check_targets(
    dir: &Path,
    rels: &[String],
    total: u64,
    overwrite: bool,
) -> Result<Plan, ModelError> {
    // The nearest existing ancestor holds the filesystem the files will be written to.
    let mut missing_root = Vec::new();
    let mut existing = dir.to_path_buf();
    loop {
        match std::fs::metadata(&existing) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(ModelError::Input(format!(
                    "{} exists and is not a directory",
                    existing.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing_root.push(existing.clone());
                match existing.parent() {
                    Some(p) if !p.as_os_str().is_empty() => existing = p.to_path_buf(),
                    _ => {
                        existing = PathBuf::from(".");
                        break;
                    }
                }
            }
            Err(e) => {
                return Err(ModelError::io(
                    format!("cannot read {}", existing.display()),
                    e,
                ))
            }
        }
    }
    missing_root.reverse();
    let fs = fs_limits(&existing)
        .map_err(|e| ModelError::io(format!("cannot read {}", existing.display()), e))?;
    if total > fs.available {
        return Err(ModelError::Input(format!(
            "not enough free space to pull into {}: the model's files total {} ({total} bytes) \
             but its filesystem has {} free",
            dir.display(),
            crate::progress::human_size(total),
            crate::progress::human_size(fs.available)
        )));
    }
    let root = if missing_root.is_empty() {
        dir.canonicalize()
    } else {
        std::path::absolute(dir)
    }
    .map_err(|e| ModelError::io(format!("cannot read {}", dir.display()), e))?;
    // Name and length limits, and names that differ only by case.
    let mut folded: HashMap<String, &str> = HashMap::new();
    let mut case_folds = false;
    for rel in rels {
        for comp in rel.split('/') {
            if comp.len() as u64 > fs.name_max {
                return Err(ModelError::Input(format!(
                    "cannot write {rel:?} into {}: the name {:?}… is {} bytes long, longer than \
                     the {} bytes its filesystem allows",
                    dir.display(),
                    comp.chars().take(24).collect::<String>(),
                    comp.len(),
                    fs.name_max
                )));
            }
        }
        let full = root.join(rel).as_os_str().len();
        if full >= PATH_MAX {
            return Err(ModelError::Input(format!(
                "cannot write {rel:?} into {}: the full path is {full} bytes long, longer than \
                 the {} bytes allowed",
                dir.display(),
                PATH_MAX - 1
            )));
        }
        if let Some(other) = folded.insert(rel.to_lowercase(), rel) {
            if other != rel {
                case_folds = true;
            }
        }
    }
    if !missing_root.is_empty() {
        return Ok(Plan {
            root,
            missing_root,
            case_folds,
        });
    }
    remove_stale_temp(&root);
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
                Ok(m) if m.is_dir() => remove_stale_temp(&cur),
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
        missing_root,
        case_folds,
    })
}

/// Longest path the system calls take (Linux `PATH_MAX`, with its NUL).
const PATH_MAX: usize = 4096;

/// The limits of the filesystem holding a directory.
struct FsLimits {
    /// Bytes an unprivileged writer may still use.
    available: u64,
    /// Longest file name, in bytes.
    name_max: u64,
}

#[cfg(unix)]
fn fs_limits(dir: &Path) -> std::io::Result<FsLimits> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok(FsLimits {
        available: (st.f_bavail as u64).saturating_mul(st.f_frsize as u64),
        name_max: if st.f_namemax == 0 {
            255
        } else {
            st.f_namemax as u64
        },
    })
}

#[cfg(not(unix))]
fn fs_limits(_dir: &Path) -> std::io::Result<FsLimits> {
    Ok(FsLimits {
        available: u64::MAX,
        name_max: 255,
    })
}

/// Remove the temporary files and staging directories an interrupted pull left in `dir`
/// (ours by name, and not locked by a pull still running).
fn remove_stale_temp(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_temp_name) {
            continue;
        }
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            continue;
        }
        // A running pull holds a lock on its staging directory.
        let Ok(handle) = std::fs::File::open(&path) else {
            continue;
        };
        if handle.try_lock().is_err() {
            continue;
        }
        let removed = if kind.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => tracing::info!("removed {} (left by an interrupted pull)", path.display()),
            Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
        }
    }
}

/// One pull's changes to the target directory, undone on drop unless committed.
struct Transaction {
    root: PathBuf,
    /// `root/.oci-model-XXXX.partial`: downloads, then the files moved aside.
    staging: PathBuf,
    /// Held while the pull runs, so that another pull does not take it for stale.
    _lock: Option<std::fs::File>,
    /// Directories this pull created, outermost first.
    created: Vec<PathBuf>,
    /// Files moved into place, with where the file they replaced was moved.
    placed: Vec<(PathBuf, Option<PathBuf>)>,
    committed: bool,
}

impl Transaction {
    fn begin(plan: &Plan) -> Result<Transaction, ModelError> {
        let mut txn = Transaction {
            root: plan.root.clone(),
            staging: PathBuf::new(),
            _lock: None,
            created: Vec::new(),
            placed: Vec::new(),
            committed: false,
        };
        for d in &plan.missing_root {
            match std::fs::create_dir(d) {
                Ok(()) => txn.created.push(d.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
                Err(e) => return Err(ModelError::io(format!("create {}", d.display()), e)),
            }
        }
        if !plan.missing_root.is_empty() {
            txn.root = plan
                .missing_root
                .last()
                .expect("non-empty")
                .canonicalize()
                .map_err(|e| ModelError::io(format!("open {}", plan.root.display()), e))?;
        }
        let staging = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .suffix(TEMP_SUFFIX)
            .tempdir_in(&txn.root)
            .map_err(|e| {
                ModelError::io(
                    format!("create a staging directory in {}", txn.root.display()),
                    e,
                )
            })?;
        txn.staging = staging.keep();
        // Locked, so that another pull into this directory does not take it for stale.
        let lock = std::fs::File::open(&txn.staging)
            .and_then(|f| f.try_lock().map(|()| f).map_err(std::io::Error::other))
            .map_err(|e| ModelError::io(format!("lock {}", txn.staging.display()), e))?;
        if !is_same_file(&txn.staging, &lock) {
            return Err(ModelError::Input(format!(
                "another pull into {} removed this pull's staging directory",
                txn.root.display()
            )));
        }
        txn._lock = Some(lock);
        Ok(txn)
    }

    /// On a filesystem that folds case, two files whose names differ only by case would be
    /// one file: refuse them before anything is downloaded.
    fn refuse_case_collisions(&self, files: &[ModelFile]) -> Result<(), ModelError> {
        let probe = self.staging.join("case-Probe");
        std::fs::write(&probe, b"")
            .map_err(|e| ModelError::io(format!("write {}", probe.display()), e))?;
        let folds = self.staging.join("CASE-pROBE").exists();
        let _ = std::fs::remove_file(&probe);
        if folds {
            refuse_same_but_case(&self.root, files)
        } else {
            Ok(())
        }
    }

    /// Move a downloaded file to `rel`, moving a file already there aside when `overwrite`.
    fn place(
        &mut self,
        staged: &Path,
        rel: &ModelPath,
        index: usize,
        overwrite: bool,
    ) -> Result<(), ModelError> {
        let mut cur = self.root.clone();
        let comps: Vec<&str> = rel.split('/').collect();
        for comp in &comps[..comps.len() - 1] {
            cur.push(comp);
            match std::fs::create_dir(&cur) {
                Ok(()) => self.created.push(cur.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(ModelError::io(format!("create {}", cur.display()), e)),
            }
        }
        let dest = self.root.join(rel);
        if !overwrite {
            let staged = tempfile::TempPath::try_from_path(staged)
                .map_err(|e| ModelError::io(format!("open {}", staged.display()), e))?;
            return match staged.persist_noclobber(&dest) {
                Ok(()) => {
                    self.placed.push((dest, None));
                    Ok(())
                }
                Err(e) => Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    ModelError::Exists { path: dest }
                } else {
                    ModelError::io(format!("rename into {}", dest.display()), e.error)
                }),
            };
        }
        let aside = match std::fs::symlink_metadata(&dest) {
            Ok(m) if m.is_dir() => {
                return Err(ModelError::Input(format!(
                    "cannot write {rel}: {} is a directory",
                    dest.display()
                )))
            }
            Ok(_) => {
                let aside = self.staging.join(format!("replaced-{index}"));
                std::fs::rename(&dest, &aside)
                    .map_err(|e| ModelError::io(format!("move {} aside", dest.display()), e))?;
                Some(aside)
            }
            Err(_) => None,
        };
        if let Err(e) = std::fs::rename(staged, &dest) {
            if let Some(aside) = &aside {
                restore(aside, &dest);
            }
            return Err(ModelError::io(format!("rename into {}", dest.display()), e));
        }
        self.placed.push((dest, aside));
        Ok(())
    }

    /// Keep everything placed; drop the staging directory (and the replaced files in it).
    fn commit(mut self) -> PathBuf {
        self.committed = true;
        if let Err(e) = std::fs::remove_dir_all(&self.staging) {
            tracing::warn!("cannot remove {}: {e}", self.staging.display());
        }
        std::mem::take(&mut self.root)
    }
}

/// Two files whose paths differ only by case, refused (for a filesystem that folds case).
fn refuse_same_but_case(root: &Path, files: &[ModelFile]) -> Result<(), ModelError> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    for f in files {
        if let Some(other) = seen.insert(f.path.to_lowercase(), &f.path) {
            return Err(ModelError::UnsafePath {
                what: format!("target directory {}", root.display()),
                path: f.path.to_string(),
                reason: format!(
                    "its filesystem does not tell upper from lower case, and {other:?} would \
                     be the same file"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_same_file(path: &Path, file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(path), file.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn is_same_file(path: &Path, _file: &std::fs::File) -> bool {
    path.exists()
}

/// Put a file moved aside back; say loudly where it is when that fails.
fn restore(aside: &Path, dest: &Path) -> bool {
    match std::fs::rename(aside, dest) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(
                "cannot restore {} (your file is kept at {}): {e}",
                dest.display(),
                aside.display()
            );
            false
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let mut kept = false;
        for (dest, aside) in self.placed.drain(..).rev() {
            let _ = std::fs::remove_file(&dest);
            if let Some(aside) = aside {
                kept |= !restore(&aside, &dest);
            }
        }
        if !kept && !self.staging.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        // Innermost first: a directory's children were created after it.
        for d in self.created.drain(..).rev() {
            let _ = std::fs::remove_dir(&d);
        }
    }
}

/// Stream one layer into the staging directory, checked for size and digest.
async fn download(
    store: &dyn Store,
    staging: &Path,
    index: usize,
    file: &ModelFile,
    options: &PullOptions,
) -> Result<(usize, PathBuf), ModelError> {
    let dest = staging.join(index.to_string());
    let mut out = std::fs::File::create_new(&dest)
        .map_err(|e| ModelError::io(format!("create {}", dest.display()), e))?;
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
        let _ = std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o644));
    }
    Ok((index, dest))
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
                annotations: Some(a),
                ..Descriptor::new(mt::MODEL_WEIGHT, Digest::of(&content), content.len() as u64)
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

    /// A file tree as (path, content) pairs, for before/after comparisons.
    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        entries(dir)
            .into_iter()
            .map(|p| {
                let c = std::fs::read(dir.join(&p)).unwrap_or_default();
                (p, c)
            })
            .collect()
    }

    fn user_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
        for (p, c) in [
            ("a.bin", &b"my a"[..]),
            ("sub/b.bin", b"my b"),
            ("keep", b"k"),
        ] {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        snapshot(dir)
    }

    #[tokio::test]
    async fn a_bad_blob_with_overwrite_leaves_the_users_files_as_they_were() {
        let (store, artifact) = store_with(&["a.bin", "sub/b.bin", "new/dir/c.bin", "z.bin"]).await;
        store.corrupt_blob(
            &artifact.manifest.layers[3].digest,
            Bytes::from_static(b"content X"),
        );
        let out = tempfile::tempdir().unwrap();
        let before = user_files(out.path());
        let options = PullOptions {
            overwrite: true,
            ..Default::default()
        };
        let err = unpack_model(&store, &artifact, out.path(), &options)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("z.bin"), "{err}");
        assert_eq!(snapshot(out.path()), before);
    }

    #[tokio::test]
    async fn a_name_too_long_for_the_filesystem_is_refused_before_writing() {
        let long = "x".repeat(300);
        for bad in [long.clone(), format!("new/deeper/{long}")] {
            let (store, artifact) = store_with(&["a.bin", "sub/b.bin", &bad]).await;
            let out = tempfile::tempdir().unwrap();
            let before = user_files(out.path());
            let options = PullOptions {
                overwrite: true,
                ..Default::default()
            };
            let err = unpack_model(&store, &artifact, out.path(), &options)
                .await
                .unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("300 bytes long"), "{msg}");
            assert!(msg.contains("255 bytes"), "{msg}");
            assert_eq!(err.kind(), crate::error::ErrorKind::Input);
            assert_eq!(snapshot(out.path()), before);
            // Into a directory that does not exist yet: not even the directory is created.
            let parent = tempfile::tempdir().unwrap();
            let fresh = parent.path().join("fresh/out");
            unpack_model(&store, &artifact, &fresh, &options)
                .await
                .unwrap_err();
            assert!(
                entries(parent.path()).is_empty(),
                "{:?}",
                entries(parent.path())
            );
        }
    }

    #[tokio::test]
    async fn a_declared_size_beyond_the_free_space_is_refused_up_front() {
        let (store, mut artifact) = store_with(&["a.bin", "huge.bin"]).await;
        artifact.manifest.layers[1].size = 1 << 40; // 1 TiB
        let out = tempfile::tempdir().unwrap();
        let before = user_files(out.path());
        let err = unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("not enough free space"), "{msg}");
        assert!(msg.contains("1.0 TiB"), "{msg}");
        assert_eq!(err.kind(), crate::error::ErrorKind::Input);
        assert_eq!(snapshot(out.path()), before);
    }

    #[tokio::test]
    async fn stale_temporary_files_of_an_interrupted_pull_are_removed() {
        let (store, artifact) = store_with(&["a.bin", "sub/b.bin"]).await;
        let out = tempfile::tempdir().unwrap();
        // An old-style partial file beside its destination, and a staging directory.
        support_write(out.path(), "sub/.oci-model-AbC123.partial", b"half");
        support_write(out.path(), ".oci-model-XyZ789.partial/0", b"half");
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(entries(out.path()), ["a.bin", "sub", "sub/b.bin"]);
    }

    /// No case-folding filesystem can be mounted here (no CONFIG_UNICODE for ext4 casefold,
    /// no XFS ascii-ci, no vfat), so the refusal is tested on its own, and the probe on this
    /// case-sensitive filesystem must let such names through.
    #[tokio::test]
    async fn names_that_differ_only_by_case() {
        let (store, artifact) = store_with(&["README.md", "docs/x", "readme.md"]).await;
        let files = artifact.files().unwrap();
        let err = refuse_same_but_case(Path::new("/t"), &files).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"readme.md\""), "{msg}");
        assert!(
            msg.contains("\"README.md\" would be the same file"),
            "{msg}"
        );
        assert_eq!(err.kind(), crate::error::ErrorKind::Integrity);
        let out = tempfile::tempdir().unwrap();
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(
            entries(out.path()),
            ["README.md", "docs", "docs/x", "readme.md"]
        );
    }

    /// The staging directory of a pull still running (locked) is not another pull's to remove.
    #[tokio::test]
    async fn a_running_pulls_staging_is_left_alone() {
        let (store, artifact) = store_with(&["a.bin"]).await;
        let out = tempfile::tempdir().unwrap();
        support_write(out.path(), ".oci-model-Live01.partial/0", b"half");
        let live = std::fs::File::open(out.path().join(".oci-model-Live01.partial")).unwrap();
        live.lock().unwrap();
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(
            entries(out.path()),
            [
                ".oci-model-Live01.partial",
                ".oci-model-Live01.partial/0",
                "a.bin"
            ]
        );
    }

    fn support_write(root: &Path, rel: &str, content: &[u8]) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
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
        /// Runs when a blob is fetched (to change the target directory mid-pull).
        on_fetch: Option<FetchHook>,
    }

    type FetchHook = Box<dyn Fn(&Digest) + Send + Sync>;

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
            if let Some(hook) = &self.on_fetch {
                hook(&d.digest);
            }
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
            on_fetch: None,
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
            on_fetch: None,
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

    /// A failure while the files are moved into place (something appeared where a file goes,
    /// after the checks): the files placed before it are removed, the files they replaced are
    /// back, and the directories the pull created are gone.
    #[tokio::test]
    async fn a_failure_while_placing_rolls_back_every_placed_file() {
        for overwrite in [false, true] {
            let (inner, _) = model_store(&[
                ("a.bin", b"new a"),
                ("new/dir/c.bin", b"new c"),
                ("z.bin", b"new z"),
            ])
            .await;
            let out = tempfile::tempdir().unwrap();
            let mine: &[&str] = if overwrite {
                &["a.bin", "keep"]
            } else {
                &["keep"]
            };
            for p in mine {
                std::fs::write(out.path().join(p), format!("my {p}")).unwrap();
            }
            let before: Vec<(String, Vec<u8>)> = mine
                .iter()
                .map(|p| (p.to_string(), std::fs::read(out.path().join(p)).unwrap()))
                .collect();
            let target = out.path().to_path_buf();
            let store = Flaky {
                inner,
                fails: AtomicUsize::new(0),
                stall: None,
                // A directory where z.bin goes: no rename can put a file there.
                on_fetch: Some(Box::new(move |_| {
                    let _ = std::fs::create_dir_all(target.join("z.bin/x"));
                })),
            };
            let artifact = fetch_model(&store, "v1").await.unwrap();
            let options = PullOptions {
                overwrite,
                ..Default::default()
            };
            let err = unpack_model(&store, &artifact, out.path(), &options)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("z.bin"), "{err}");
            std::fs::remove_dir_all(out.path().join("z.bin")).unwrap();
            let mut after: Vec<String> = std::fs::read_dir(out.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            after.sort();
            assert_eq!(after, mine, "overwrite={overwrite}");
            for (p, c) in &before {
                assert_eq!(&std::fs::read(out.path().join(p)).unwrap(), c, "{p}");
            }
        }
    }
}
