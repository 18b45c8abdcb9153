//! Pull a model: fetch its manifest, check that it is a model, and write its files as one
//! transaction. Every final path (rules, name and path length, case-folding collisions) and the
//! free space are checked before anything is written; each blob streams into one staging
//! directory inside the target (`.oci-model-XXXXXX.partial`, locked while the pull runs) while
//! its size and sha256 are checked; only when every file matched are they moved into place,
//! files replaced with `--overwrite` moved aside first. Any failure, or dropping the pull (an
//! interrupted command), restores the replaced files and removes the placed ones, the staging
//! directory and every directory the pull created. A later pull removes stale staging.

use super::archive::{self, ArchiveEntry, ArchiveFormat, Budget, Staging};
use super::cache::{DigestCache, FileKey};
use super::paths::{is_temp_name, ModelPath, RESUME_DIR, TEMP_PREFIX, TEMP_SUFFIX};
use super::ModelError;
use crate::digest::Digest;
use crate::media_types as mt;
use crate::progress::SharedReporter;
use crate::store::copy::PROGRESS_STEP;
use crate::store::{verified, Descriptor, ImageManifest, Store, StoreError};
use bytes::Bytes;
use futures::{StreamExt, TryFutureExt, TryStreamExt};
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

/// One file of a model artifact: a raw layer, or a file of an archive layer (then
/// `descriptor` holds the file's own digest and size, and `archive` the layer's digest).
#[derive(Clone, Debug)]
pub struct ModelFile {
    pub path: ModelPath,
    pub descriptor: Descriptor,
    pub archive: Option<Digest>,
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

    /// The layers, every declared path checked: no absolute path, `..`, `.`, backslash, NUL,
    /// control character or empty component, no two layers with one path; a layer packed in a
    /// form we cannot read (`.tar+xz`…) refused.
    pub fn layers(&self) -> Result<Vec<ModelLayer>, ModelError> {
        let mdigest = &self.descriptor.digest;
        let mut out: Vec<ModelLayer> = Vec::with_capacity(self.manifest.layers.len());
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
            if checked.split('/').any(|c| c == RESUME_DIR) {
                return Err(ModelError::UnsafePath {
                    what: what(),
                    path: path.to_string(),
                    reason: format!(
                        "{RESUME_DIR:?} is where oci-model keeps partial downloads, never a \
                         model file"
                    ),
                });
            }
            if let Some(other) = seen.insert(path, &layer.digest) {
                return Err(ModelError::UnsafePath {
                    what: what(),
                    path: path.to_string(),
                    reason: format!("duplicate path (also layer {other})"),
                });
            }
            let archive = ArchiveFormat::of_media_type(&layer.media_type);
            if archive.is_none() && ArchiveFormat::is_unreadable_packing(&layer.media_type) {
                return Err(ModelError::NotAModel {
                    reference: mdigest.to_string(),
                    reason: format!(
                        "layer {} ({path}) is packed as {}; only raw, .tar, .tar+gzip and \
                         .tar+zstd layers are supported",
                        layer.digest, layer.media_type
                    ),
                });
            }
            out.push(ModelLayer {
                path: checked,
                descriptor: layer.clone(),
                archive,
            });
        }
        Ok(out)
    }

    /// The files of a model made only of raw layers (path → layer digest, read from the
    /// manifest alone), every path checked ([`Self::layers`], and no file that is also a
    /// directory). A model with archive layers is refused: its files are known only by
    /// reading them ([`Self::resolve_files`]).
    pub fn files(&self) -> Result<Vec<ModelFile>, ModelError> {
        let layers = self.layers()?;
        if let Some(a) = layers.iter().find(|l| l.archive.is_some()) {
            return Err(ModelError::Input(format!(
                "layer {} ({}) of manifest {} is an archive: its files are known only by \
                 reading it",
                a.descriptor.digest, a.path, self.descriptor.digest
            )));
        }
        let files: Vec<ModelFile> = layers.into_iter().map(ModelLayer::into_file).collect();
        check_file_tree(&files, &self.descriptor.digest)?;
        Ok(files)
    }

    /// Every file of the model with its sha256: raw layers from the manifest alone, archive
    /// layers streamed once from `store` (checked against their layer digest, every entry
    /// checked and hashed, nothing written). No path twice, no file that is also a directory.
    pub async fn resolve_files(
        &self,
        store: &dyn Store,
        reporter: &SharedReporter,
    ) -> Result<Vec<ModelFile>, ModelError> {
        let layers = self.layers()?;
        let budget = Arc::new(Budget::unwritten());
        let mut files = Vec::new();
        for layer in layers {
            match layer.archive {
                None => files.push(layer.into_file()),
                Some(format) => {
                    let entries = archive::stream_archive(
                        store,
                        &layer.descriptor,
                        format,
                        &layer.path,
                        &budget,
                        None,
                        reporter,
                    )
                    .await?;
                    files.extend(entries.into_iter().map(|e| layer.entry_file(e)));
                }
            }
        }
        check_file_tree(&files, &self.descriptor.digest)?;
        Ok(files)
    }
}

/// One layer of a model artifact, its declared path checked.
#[derive(Clone, Debug)]
pub struct ModelLayer {
    /// `org.cncf.model.filepath` (or the title): the file, or what an archive unpacks as.
    pub path: ModelPath,
    pub descriptor: Descriptor,
    /// `Some` for an archive layer.
    pub archive: Option<ArchiveFormat>,
}

impl ModelLayer {
    fn into_file(self) -> ModelFile {
        ModelFile {
            path: self.path,
            descriptor: self.descriptor,
            archive: None,
        }
    }

    /// A file read from this archive layer: its own digest and size, the layer's media type.
    fn entry_file(&self, e: ArchiveEntry) -> ModelFile {
        let mut descriptor = Descriptor::new(&self.descriptor.media_type, e.digest, e.size);
        descriptor.annotations = Some(
            [(mt::ANNOTATION_FILEPATH.to_string(), e.path.to_string())]
                .into_iter()
                .collect(),
        );
        ModelFile {
            path: e.path,
            descriptor,
            archive: Some(self.descriptor.digest.clone()),
        }
    }
}

/// No path twice (two layers, or a layer and an archive entry), and no file that is also the
/// directory of another.
fn check_file_tree(files: &[ModelFile], mdigest: &Digest) -> Result<(), ModelError> {
    let source = |f: &ModelFile| match &f.archive {
        Some(layer) => format!("archive layer {layer}"),
        None => format!("layer {}", f.descriptor.digest),
    };
    let mut seen: HashMap<&str, &ModelFile> = HashMap::new();
    for f in files {
        if let Some(other) = seen.insert(&f.path, f) {
            return Err(ModelError::UnsafePath {
                what: format!("{} of manifest {mdigest}", source(f)),
                path: f.path.to_string(),
                reason: format!("duplicate path (also in {})", source(other)),
            });
        }
    }
    for f in files {
        let comps: Vec<&str> = f.path.split('/').collect();
        for k in 1..comps.len() {
            let prefix = comps[..k].join("/");
            if let Some(d) = seen.get(prefix.as_str()) {
                return Err(ModelError::UnsafePath {
                    what: format!("{} of manifest {mdigest}", source(f)),
                    path: f.path.to_string(),
                    reason: format!("{prefix:?} is also a file (in {})", source(d)),
                });
            }
        }
    }
    Ok(())
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
    /// The files a verification before the pull accepted (path → sha256): the files unpacked
    /// must be exactly these, or nothing is placed.
    pub expected_files: Option<Arc<Vec<(ModelPath, Digest)>>>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            overwrite: false,
            concurrency: 4,
            reporter: crate::progress::silent(),
            cache: None,
            expected_files: None,
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
    let layers = artifact.layers()?;
    let files: Vec<ModelFile> = layers
        .iter()
        .filter(|l| l.archive.is_none())
        .cloned()
        .map(ModelLayer::into_file)
        .collect();
    let archives: Vec<&ModelLayer> = layers.iter().filter(|l| l.archive.is_some()).collect();
    check_file_tree(&files, &artifact.descriptor.digest)?;
    let plan = {
        let owned = dir.to_path_buf();
        let rels: Vec<String> = files.iter().map(|f| f.path.to_string()).collect();
        // An archive takes at least its own size (checked again, entry by entry, as it unpacks).
        let total: u64 = layers.iter().map(|l| l.descriptor.size).sum();
        let overwrite = options.overwrite;
        tokio::task::spawn_blocking(move || check_targets(&owned, &rels, total, overwrite))
            .await
            .map_err(|e| ModelError::Input(format!("checking {} failed: {e}", dir.display())))??
    };
    let mut txn = Transaction::begin(&plan)?;
    if plan.case_folds {
        txn.refuse_case_collisions(&files)?;
    }
    let (resume, parts, staging) = (txn.resume.clone(), txn.parts.clone(), txn.staging.clone());
    let raw_total: u64 = files.iter().map(|f| f.descriptor.size).sum();
    let budget = Arc::new(Budget::new(
        plan.available.saturating_sub(raw_total),
        format!(
            "the free space left in {} after the model's other files",
            dir.display()
        ),
    ));
    // Each blob is downloaded once; files with the same content get copies.
    let mut first_of: HashMap<&Digest, usize> = HashMap::new();
    let unique: Vec<(usize, &ModelFile)> = files
        .iter()
        .enumerate()
        .filter(|(i, f)| *first_of.entry(&f.descriptor.digest).or_insert(*i) == *i)
        .collect();
    let downloads = futures::stream::iter(unique)
        .map(|(i, f)| download(store, &resume, &parts, i, f, options).map_ok(|d| (Some(d), None)))
        .buffer_unordered(options.concurrency.max(1));
    // Archive layers unpack as they stream into the staging directory (not resumed: a rerun
    // streams such a layer again from its first byte).
    let unpacked = futures::stream::iter(archives.iter().enumerate())
        .map(|(j, layer)| {
            let (staging, budget) = (&staging, &budget);
            async move {
                let extracted = archive::stream_archive(
                    store,
                    &layer.descriptor,
                    layer.archive.expect("an archive layer"),
                    &layer.path,
                    budget,
                    Some(Staging {
                        dir: staging.clone(),
                        prefix: format!("a{j}-"),
                    }),
                    &options.reporter,
                )
                .await?;
                Ok::<_, ModelError>((None, Some((j, extracted))))
            }
        })
        .buffer_unordered(options.concurrency.max(1));
    let results = futures::stream::select(downloads, unpacked)
        .try_collect::<Vec<(Option<Downloaded>, Option<(usize, Vec<ArchiveEntry>)>)>>()
        .await;
    let results = match results {
        Ok(results) => results,
        Err(e) => {
            txn.keep_parts = keeps_parts(&e);
            return Err(e);
        }
    };
    let mut sources: HashMap<usize, PathBuf> = HashMap::new();
    let mut extracted: Vec<Vec<ArchiveEntry>> = vec![Vec::new(); archives.len()];
    for (raw, archive) in results {
        if let Some(d) = raw {
            sources.insert(d.index, d.path);
            txn.locks.push(d.lock);
        }
        if let Some((j, entries)) = archive {
            extracted[j] = entries;
        }
    }
    // Copies first: placing a file moves its download away.
    for (i, f) in files.iter().enumerate() {
        let first = first_of[&f.descriptor.digest];
        if first != i {
            let copy = txn.staging.join(format!("copy-{i}"));
            if let Err(e) = std::fs::copy(&sources[&first], &copy) {
                txn.keep_parts = false;
                return Err(ModelError::io(format!("write {}", copy.display()), e));
            }
            set_layer_mode(&copy, f);
            sources.insert(i, copy);
        }
    }
    // Every file to place, with where it is staged: raw layers, then each archive's files.
    let mut all: Vec<(ModelFile, PathBuf)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.clone(), sources[&i].clone()))
        .collect();
    for (layer, entries) in archives.iter().zip(extracted) {
        for e in entries {
            let at = e.staged.clone().expect("extracted into staging");
            all.push((layer.entry_file(e), at));
        }
    }
    let files: Vec<ModelFile> = all.iter().map(|(f, _)| f.clone()).collect();
    if let Err(e) = check_unpacked(
        &mut txn,
        &files,
        artifact,
        !archives.is_empty(),
        dir,
        options,
    )
    .await
    {
        txn.keep_parts = keeps_parts(&e);
        return Err(e);
    }
    for (i, (file, path)) in all.iter().enumerate() {
        if let Err(e) = txn.place(path, &file.path, i, options.overwrite) {
            txn.keep_parts = keeps_parts(&e);
            return Err(e);
        }
    }
    let root = txn.commit();
    if let Some(cache) = &options.cache {
        let home = super::cache::home_of(store);
        // A file of an archive has no blob of its own to remember.
        for file in files.iter().filter(|f| f.archive.is_none()) {
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

/// The files about to be placed must be exactly the ones verified (path → sha256).
fn check_expected(
    files: &[ModelFile],
    expected: &[(ModelPath, Digest)],
    mdigest: &Digest,
) -> Result<(), ModelError> {
    let want: HashMap<&str, &Digest> = expected.iter().map(|(p, d)| (p.as_str(), d)).collect();
    for f in files {
        match want.get(f.path.as_str()) {
            Some(d) if **d == f.descriptor.digest => {}
            Some(d) => {
                return Err(ModelError::InvalidArtifact {
                    what: format!("manifest {mdigest}"),
                    reason: format!(
                        "{:?} was verified as {d} but unpacked as {}",
                        f.path, f.descriptor.digest
                    ),
                })
            }
            None => {
                return Err(ModelError::InvalidArtifact {
                    what: format!("manifest {mdigest}"),
                    reason: format!("{:?} was unpacked but not among the verified files", f.path),
                })
            }
        }
    }
    if files.len() != want.len() {
        return Err(ModelError::InvalidArtifact {
            what: format!("manifest {mdigest}"),
            reason: format!(
                "{} file(s) verified but {} unpacked",
                want.len(),
                files.len()
            ),
        });
    }
    Ok(())
}

/// What [`check_targets`] found: where to write and what is missing.
struct Plan {
    /// The target directory (canonical when it exists).
    root: PathBuf,
    /// Directories to create, outermost first, when `root` does not exist yet.
    missing_root: Vec<PathBuf>,
    /// The filesystem folds case and two files differ only by case.
    case_folds: bool,
    /// Bytes free at the target.
    available: u64,
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
            available: fs.available,
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
        available: fs.available,
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

/// Whether a failed pull keeps its downloads for the next one: when the registry or the network
/// failed (what a rerun can resume). A refused pull (wrong content, a hostile answer, a full
/// disk, a file in the way) leaves nothing.
fn keeps_parts(e: &ModelError) -> bool {
    e.kind() == crate::error::ErrorKind::Remote
}

/// One pull's changes to the target directory, undone on drop unless committed.
///
/// Downloads go into `root/.oci-model-resume/sha256-<hex>.part` and move from there into
/// place. A pull that is dropped (interrupted) or fails for the network's or registry's sake
/// keeps them there (the files it had placed move back), so the next pull of the same blobs
/// resumes them ([`keeps_parts`]). A pull that succeeds removes the resume directory.
struct Transaction {
    root: PathBuf,
    /// `root/.oci-model-XXXX.partial`: the files moved aside (and the case probe).
    staging: PathBuf,
    /// `root/`[`RESUME_DIR`]: the downloads, by digest.
    resume: PathBuf,
    /// Part files this pull wrote or took up.
    parts: Arc<std::sync::Mutex<Vec<PathBuf>>>,
    /// Locks on the finished downloads, so that no other pull takes them.
    locks: Vec<std::fs::File>,
    /// On failure, keep the downloads for the next pull (see [`keeps_parts`]).
    keep_parts: bool,
    /// Held while the pull runs, so that another pull does not take it for stale.
    _lock: Option<std::fs::File>,
    /// Directories this pull created, outermost first.
    created: Vec<PathBuf>,
    /// Files moved into place: where, where the file they replaced was moved, and the part
    /// they came from.
    placed: Vec<(PathBuf, Option<PathBuf>, PathBuf)>,
    committed: bool,
}

impl Transaction {
    fn begin(plan: &Plan) -> Result<Transaction, ModelError> {
        let mut txn = Transaction {
            root: plan.root.clone(),
            staging: PathBuf::new(),
            resume: PathBuf::new(),
            parts: Default::default(),
            locks: Vec::new(),
            keep_parts: true,
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
        if !crate::store::io::is_same_file(&txn.staging, &lock) {
            return Err(ModelError::Input(format!(
                "another pull into {} removed this pull's staging directory",
                txn.root.display()
            )));
        }
        txn._lock = Some(lock);
        txn.resume = txn.root.join(RESUME_DIR);
        match std::fs::create_dir(&txn.resume) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(ModelError::io(
                    format!("create {}", txn.resume.display()),
                    e,
                ))
            }
        }
        match std::fs::symlink_metadata(&txn.resume) {
            Ok(m) if m.is_dir() => {}
            _ => {
                return Err(ModelError::Input(format!(
                    "{} is not a directory (oci-model keeps partial downloads there); remove it",
                    txn.resume.display()
                )))
            }
        }
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
        let original = staged.to_path_buf();
        if !overwrite {
            let staged = tempfile::TempPath::try_from_path(staged)
                .map_err(|e| ModelError::io(format!("open {}", staged.display()), e))?;
            return match staged.persist_noclobber(&dest) {
                Ok(()) => {
                    self.placed.push((dest, None, original));
                    Ok(())
                }
                Err(e) => {
                    // The download stays where it was (for the next pull, or removed on drop).
                    let _ = e.path.keep();
                    Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                        ModelError::Exists { path: dest }
                    } else {
                        ModelError::io(format!("rename into {}", dest.display()), e.error)
                    })
                }
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
        self.placed.push((dest, aside, original));
        Ok(())
    }

    /// Keep everything placed; drop the staging directory (and the replaced files in it) and
    /// the resume directory (what an earlier pull into this directory kept included).
    fn commit(mut self) -> PathBuf {
        self.committed = true;
        if let Err(e) = std::fs::remove_dir_all(&self.staging) {
            tracing::warn!("cannot remove {}: {e}", self.staging.display());
        }
        self.locks.clear();
        clear_resume(&self.resume);
        std::mem::take(&mut self.root)
    }
}

/// Remove the resume directory after a pull that succeeded: every part in it that no running
/// pull holds, then the directory when it is empty.
fn clear_resume(resume: &Path) {
    let Ok(entries) = std::fs::read_dir(resume) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let ours = entry.file_name().to_str().is_some_and(is_part_name)
            && entry.file_type().is_ok_and(|t| t.is_file());
        if !ours {
            continue;
        }
        // A pull still running holds a lock on its part.
        let free = std::fs::File::open(&path).is_ok_and(|f| f.try_lock().is_ok());
        if free {
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
    let _ = std::fs::remove_dir(resume);
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
        for (dest, aside, part) in self.placed.drain(..).rev() {
            if !(self.keep_parts && std::fs::rename(&dest, &part).is_ok()) {
                let _ = std::fs::remove_file(&dest);
            }
            if let Some(aside) = aside {
                kept |= !restore(&aside, &dest);
            }
        }
        if !self.keep_parts {
            for part in self
                .parts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .drain(..)
            {
                let _ = std::fs::remove_file(part);
            }
        }
        if !self.resume.as_os_str().is_empty() {
            // Only when empty: what is kept stays for the next pull.
            let _ = std::fs::remove_dir(&self.resume);
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

/// The checks that wait for the archives' contents: their paths (as for raw layers, now that
/// they are known) and, after a verification, that the files are exactly the signed ones.
async fn check_unpacked(
    txn: &mut Transaction,
    files: &[ModelFile],
    artifact: &ModelArtifact,
    has_archives: bool,
    dir: &Path,
    options: &PullOptions,
) -> Result<(), ModelError> {
    if has_archives {
        check_file_tree(files, &artifact.descriptor.digest)?;
        let root = txn.root.clone();
        let rels: Vec<String> = files
            .iter()
            .filter(|f| f.archive.is_some())
            .map(|f| f.path.to_string())
            .collect();
        let overwrite = options.overwrite;
        tokio::task::spawn_blocking(move || check_targets(&root, &rels, 0, overwrite))
            .await
            .map_err(|e| ModelError::Input(format!("checking {} failed: {e}", dir.display())))??;
        txn.refuse_case_collisions(files)?;
    }
    if let Some(expected) = &options.expected_files {
        check_expected(files, expected, &artifact.descriptor.digest)?;
    }
    Ok(())
}

/// Give a raw layer's file the mode of its `org.cncf.model.file.metadata+json` annotation
/// (made safe: never setuid/setgid), else 0644.
fn set_layer_mode(path: &Path, file: &ModelFile) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = archive::annotated_mode(&file.descriptor).unwrap_or(0o644);
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = (path, file);
}

/// A layer downloaded and checked: its file in the resume directory, locked until the pull ends.
struct Downloaded {
    index: usize,
    path: PathBuf,
    lock: std::fs::File,
}

/// The name a download of `digest` is kept under in [`RESUME_DIR`]: `sha256-<hex>.part`.
fn part_name(digest: &Digest) -> String {
    format!("{}.part", digest.as_str().replace(':', "-"))
}

/// Is `name` one of the names of [`part_name`]?
fn is_part_name(name: &str) -> bool {
    name.strip_suffix(".part")
        .and_then(|d| d.strip_prefix("sha256-"))
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Download one layer into its part file in the resume directory, checked for size and digest.
/// What an interrupted pull kept of it is hashed again and only the rest is fetched (a range
/// request, [`Store::fetch_blob_from`]); the digest check covers the whole (kept prefix and
/// rest). A part that turns out wrong is fetched again once from its first byte.
async fn download(
    store: &dyn Store,
    resume: &Path,
    parts: &std::sync::Mutex<Vec<PathBuf>>,
    index: usize,
    file: &ModelFile,
    options: &PullOptions,
) -> Result<Downloaded, ModelError> {
    let part = resume.join(part_name(&file.descriptor.digest));
    let what = format!("file {:?} (layer {})", file.path, file.descriptor.digest);
    let fresh = {
        let (digest, size, what) = (
            file.descriptor.digest.clone(),
            file.descriptor.size,
            what.clone(),
        );
        move || verified::BlobCheck::new(digest.clone(), size, what.clone())
    };
    let (out, kept) = open_part(&part, file.descriptor.size)?;
    let (out, check) = if kept == 0 {
        (out, fresh())
    } else {
        let (path, check) = (part.clone(), fresh());
        tokio::task::spawn_blocking(move || hash_kept(&path, out, kept, check))
            .await
            .map_err(|e| ModelError::Input(format!("reading {} failed: {e}", part.display())))??
    };
    parts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(part.clone());
    let kept = check.len();
    if kept > 0 {
        tracing::info!(
            "{what}: resuming after the {kept} bytes an interrupted pull kept in {}",
            part.display()
        );
    }
    let id = options.reporter.start(&file.path, file.descriptor.size);
    options.reporter.advance(id, kept);
    let result = fetch_rest(store, file, &what, &part, out, check, &fresh, options, id).await;
    options.reporter.finish(id, false);
    match result {
        Ok(lock) => {
            set_layer_mode(&part, file);
            Ok(Downloaded {
                index,
                path: part,
                lock,
            })
        }
        Err((e, discard)) => {
            if discard {
                let _ = std::fs::remove_file(&part);
            }
            Err(e)
        }
    }
}

/// Open (or create) the part file of a layer and lock it: the file and how many bytes it
/// keeps (none when it holds more than the layer's `size`).
fn open_part(path: &Path, size: u64) -> Result<(std::fs::File, u64), ModelError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .mode(0o600);
    }
    let io = |doing: &str, e| ModelError::io(format!("{doing} {}", path.display()), e);
    let file = options.open(path).map_err(|e| io("open", e))?;
    let meta = file.metadata().map_err(|e| io("read", e))?;
    if !meta.is_file() {
        return Err(ModelError::Input(format!(
            "{} is not a regular file (oci-model keeps partial downloads there); remove it",
            path.display()
        )));
    }
    if file.try_lock().is_err() {
        return Err(ModelError::Input(format!(
            "another pull is downloading into {} right now; wait for it to finish",
            path.display()
        )));
    }
    let kept = meta.len();
    if kept > size {
        tracing::warn!(
            "{} holds {kept} bytes, more than the layer's {size}: starting it again",
            path.display()
        );
        file.set_len(0).map_err(|e| io("write", e))?;
        return Ok((file, 0));
    }
    Ok((file, kept))
}

/// Hash the `kept` bytes a part file starts with into `check` (they are checked with the rest,
/// never trusted), and leave the file at their end, ready for the rest.
fn hash_kept(
    path: &Path,
    mut file: std::fs::File,
    kept: u64,
    mut check: verified::BlobCheck,
) -> Result<(std::fs::File, verified::BlobCheck), ModelError> {
    use std::io::{Read, Seek};
    let io = |doing: &str, e| ModelError::io(format!("{doing} {}", path.display()), e);
    let mut buf = vec![0u8; 1 << 20];
    let mut hashed = 0u64;
    while hashed < kept {
        let want = buf.len().min((kept - hashed) as usize);
        let n = file.read(&mut buf[..want]).map_err(|e| io("read", e))?;
        if n == 0 {
            break;
        }
        check.update(&buf[..n])?;
        hashed += n as u64;
    }
    file.seek(std::io::SeekFrom::Start(hashed))
        .map_err(|e| io("read", e))?;
    Ok((file, check))
}

/// Fetch what a layer's part lacks, retrying as the store's policy says (a connection lost
/// mid-blob continues from the bytes already written), and check the whole. On failure, the
/// error and whether the part must go (its content is wrong, or the registry's answer to a
/// range was refused).
#[allow(clippy::too_many_arguments)]
async fn fetch_rest(
    store: &dyn Store,
    file: &ModelFile,
    what: &str,
    dest: &Path,
    mut out: std::fs::File,
    mut check: verified::BlobCheck,
    fresh: &(dyn Fn() -> verified::BlobCheck + Sync),
    options: &PullOptions,
    progress_id: u64,
) -> Result<std::fs::File, (ModelError, bool)> {
    let size = file.descriptor.size;
    let policy = store.retry_policy();
    let mut attempt = 1;
    // The check holds bytes from before the current stream (an earlier pull's part, or an
    // earlier attempt of this one): a wrong whole may be their fault, and the blob is then
    // fetched once more from its first byte.
    let mut stitched = false;
    let mut refetched = false;
    loop {
        if !check.is_empty() {
            stitched = true;
        }
        // A part kept whole needs nothing more (an empty blob is still asked for: the store
        // must have it).
        let result = if size > 0 && check.len() == size {
            Ok(())
        } else {
            let pass = stream_layer(
                store,
                file,
                what,
                dest,
                out,
                check,
                fresh,
                options,
                progress_id,
            )
            .await;
            out = pass.out;
            check = pass.check;
            if pass.started_at == 0 {
                stitched = false;
            }
            pass.result
        };
        let failed = match result {
            Ok(()) => match std::mem::replace(&mut check, fresh()).finish() {
                Ok(_) => return Ok(out),
                Err(e) => ModelError::Store(e),
            },
            Err(e) => e,
        };
        let wrong = matches!(&failed, ModelError::Store(e) if e.is_integrity());
        if wrong && stitched && !refetched {
            // What came before was not what the blob starts with (a kept part tampered with,
            // or a stream that sent wrong bytes before it broke).
            tracing::warn!(
                "{what}: the bytes kept from before the last interruption are not part of this \
                 layer ({failed}); fetching it again from its first byte"
            );
            stitched = false;
            refetched = true;
            check = fresh();
            if let Err(e) = rewind(&mut out) {
                return Err((ModelError::io(format!("write {}", dest.display()), e), true));
            }
            continue;
        }
        if wrong {
            return Err((failed, true));
        }
        let again = match &failed {
            ModelError::Store(e) => policy.again(attempt, e),
            _ => None,
        };
        if let Some(wait) = again {
            tracing::warn!(
                "{what}: {failed}; retrying (attempt {}) from byte {}",
                attempt + 1,
                check.len()
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
            continue;
        }
        // A registry whose answer to a range was refused: the next pull starts from zero.
        let refused_range = !check.is_empty()
            && matches!(
                &failed,
                ModelError::Store(StoreError::Invalid { .. })
                    | ModelError::Store(StoreError::Http { status: 416, .. })
            );
        if refused_range {
            tracing::warn!(
                "{what}: discarded the partial download kept in {}; the next pull fetches this \
                 layer from its first byte",
                dest.display()
            );
        }
        return Err((failed, refused_range));
    }
}

/// Empty a part file, to write it again from its first byte.
fn rewind(out: &mut std::fs::File) -> std::io::Result<()> {
    use std::io::Seek;
    out.set_len(0)?;
    out.seek(std::io::SeekFrom::Start(0)).map(drop)
}

/// What one pass over a layer's rest returns: the file and check (for the next pass), where
/// the store's chunks started, and how the pass ended.
struct Pass {
    out: std::fs::File,
    check: verified::BlobCheck,
    started_at: u64,
    result: Result<(), ModelError>,
}

/// One pass over the rest of a layer (from the check's length on): the blob's chunks are
/// taken as they arrive and checked and written by one blocking thread, with no copy in
/// between, while the async workers keep receiving. A store that sends the whole blob instead
/// of the rest makes the pass start again from the first byte. Failures to read that are not
/// integrity failures are the connection's (network errors, retried).
#[allow(clippy::too_many_arguments)]
async fn stream_layer(
    store: &dyn Store,
    file: &ModelFile,
    what: &str,
    dest: &Path,
    mut out: std::fs::File,
    mut check: verified::BlobCheck,
    fresh: &(dyn Fn() -> verified::BlobCheck + Sync),
    options: &PullOptions,
    progress_id: u64,
) -> Pass {
    let have = check.len();
    let fail = |out, check, e: ModelError| Pass {
        out,
        check,
        started_at: have,
        result: Err(e),
    };
    let ranged = match store.fetch_blob_from(&file.descriptor, have).await {
        Ok(r) => r,
        Err(e) => return fail(out, check, e.into()),
    };
    if ranged.start != have {
        if ranged.start != 0 {
            let e = StoreError::invalid(
                format!("answer of {} for {what}", store.location()),
                format!(
                    "asked for the bytes from {have} on, it sent them from {}",
                    ranged.start
                ),
            );
            return fail(out, check, e.into());
        }
        tracing::info!(
            "{what}: {} sent the whole blob instead of its bytes from {have} on; taking it \
             from its first byte",
            store.location()
        );
        check = fresh();
        if let Err(e) = rewind(&mut out) {
            let e = ModelError::io(format!("write {}", dest.display()), e);
            return fail(out, check, e);
        }
    }
    let started_at = ranged.start;
    // The file holds exactly what the check took; the rest is appended.
    let at = check.len();
    let placed = {
        use std::io::Seek;
        out.set_len(at)
            .and_then(|()| out.seek(std::io::SeekFrom::Start(at)).map(drop))
    };
    if let Err(e) = placed {
        let e = ModelError::io(format!("write {}", dest.display()), e);
        return fail(out, check, e);
    }
    // Dropping this future (another file failed, the pull was cancelled) stops the thread.
    let cancel = tokio_util::sync::CancellationToken::new();
    let _stop_on_drop = cancel.clone().drop_guard();
    let pass = ChunkPass {
        runtime: tokio::runtime::Handle::current(),
        cancel,
        source: format!("{} (blob {})", store.location(), file.descriptor.digest),
        what: what.to_string(),
        dest: dest.to_path_buf(),
        reporter: options.reporter.clone(),
        progress_id,
    };
    let chunks = ranged.chunks;
    let joined = tokio::task::spawn_blocking(move || {
        let result = pass.run(chunks, &mut out, &mut check);
        (out, check, result)
    })
    .await;
    match joined {
        Ok((out, check, result)) => Pass {
            out,
            check,
            started_at,
            result,
        },
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

struct ChunkPass {
    runtime: tokio::runtime::Handle,
    cancel: tokio_util::sync::CancellationToken,
    source: String,
    what: String,
    dest: PathBuf,
    reporter: SharedReporter,
    progress_id: u64,
}

impl ChunkPass {
    /// Take chunks until the stream ends (the caller then checks the whole).
    fn run(
        self,
        mut chunks: crate::store::BoxChunks,
        out: &mut std::fs::File,
        check: &mut verified::BlobCheck,
    ) -> Result<(), ModelError> {
        use std::io::Write;
        let ChunkPass {
            runtime,
            cancel,
            source,
            what,
            dest,
            reporter,
            progress_id,
        } = self;
        let mut unreported = 0u64;
        let result = loop {
            let next = runtime.block_on(async {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => None,
                    next = chunks.next() => Some(next),
                }
            });
            let chunk = match next {
                None => break Err(ModelError::Input(format!("{what}: download cancelled"))),
                Some(None) => break Ok(()),
                Some(Some(Ok(chunk))) => chunk,
                Some(Some(Err(e))) => {
                    break Err(StoreError::Network {
                        url: source,
                        reason: format!("reading {what} failed: {e}"),
                    }
                    .into())
                }
            };
            if let Err(e) = check.update(&chunk) {
                break Err(e.into());
            }
            if let Err(e) = out.write_all(&chunk) {
                break Err(ModelError::io(format!("write {}", dest.display()), e));
            }
            unreported += chunk.len() as u64;
            if unreported >= PROGRESS_STEP {
                reporter.advance(progress_id, unreported);
                unreported = 0;
            }
        };
        if unreported > 0 {
            reporter.advance(progress_id, unreported);
        }
        result
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

    pub(super) fn entries(dir: &Path) -> Vec<String> {
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
        for bad in [
            "../x",
            "/abs",
            "a\\b",
            "a/../../x",
            "ok/./x",
            "",
            "a\0b",
            ".oci-model-resume/sha256-00.part",
            "sub/.oci-model-resume/x",
        ] {
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

    #[test]
    fn unpacked_files_must_be_exactly_the_verified_ones() {
        let file = |p: &str, content: &[u8]| ModelFile {
            path: ModelPath::new(p).unwrap(),
            descriptor: Descriptor::new(mt::MODEL_WEIGHT, Digest::of(content), 1),
            archive: None,
        };
        let m = Digest::of(b"m");
        let expected = vec![(ModelPath::new("a").unwrap(), Digest::of(b"a"))];
        assert!(check_expected(&[file("a", b"a")], &expected, &m).is_ok());
        let err = check_expected(&[file("a", b"evil")], &expected, &m).unwrap_err();
        assert!(err.to_string().contains("verified as"), "{err}");
        let err = check_expected(&[file("a", b"a"), file("b", b"b")], &expected, &m).unwrap_err();
        assert!(
            err.to_string().contains("not among the verified files"),
            "{err}"
        );
        let err = check_expected(&[], &expected, &m).unwrap_err();
        assert!(
            err.to_string()
                .contains("1 file(s) verified but 0 unpacked"),
            "{err}"
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

    /// `archive_dirs`: one `.tar` layer per top-level directory, the same digest every time,
    /// config diffIds = layer digests, and a pull gives back the same files.
    #[tokio::test]
    async fn archive_dirs_pack_each_top_level_directory_deterministically() {
        let dir = tempfile::tempdir().unwrap();
        for (p, c) in [
            ("config.json", &b"{}"[..]),
            ("model.safetensors", b"weights"),
            ("README.md", b"# m"),
            ("sub/.hidden", b""),
        ] {
            support_write(dir.path(), p, c);
        }
        std::fs::create_dir_all(dir.path().join("tok/deep")).unwrap();
        std::fs::write(dir.path().join("tok/deep/vocab.txt"), b"a b c").unwrap();
        let store = MemoryStore::new("m");
        let options = PushOptions {
            archive_dirs: true,
            ..Default::default()
        };
        let first = push_model(&store, &[dir.path().to_path_buf()], Some("v1"), &options)
            .await
            .unwrap();
        let again = push_model(&store, &[dir.path().to_path_buf()], Some("v2"), &options)
            .await
            .unwrap();
        assert_eq!(first.manifest.digest, again.manifest.digest);
        let m: ImageManifest = serde_json::from_slice(&first.manifest_bytes).unwrap();
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
                ("sub", "application/vnd.cncf.model.weight.v1.tar"),
                ("tok", "application/vnd.cncf.model.weight.config.v1.tar"),
            ]
        );
        assert!(m.layers[3]
            .annotation(crate::model::pack::ANNOTATION_MEDIATYPE_UNTESTED)
            .is_none());
        let config = crate::store::fetch_small_blob(&store, &m.config, "config", 1 << 20)
            .await
            .unwrap();
        let c: crate::model::config::ModelConfig = serde_json::from_slice(&config).unwrap();
        let digests: Vec<Digest> = m.layers.iter().map(|l| l.digest.clone()).collect();
        assert_eq!(c.modelfs.diff_ids, digests);

        let artifact = fetch_model(&store, "v1").await.unwrap();
        let out = tempfile::tempdir().unwrap();
        let pulled = unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(pulled.files.len(), 5);
        for p in ["sub/.hidden", "tok/deep/vocab.txt", "model.safetensors"] {
            assert_eq!(
                std::fs::read(out.path().join(p)).unwrap(),
                std::fs::read(dir.path().join(p)).unwrap(),
                "{p}"
            );
        }
        let resolved = artifact
            .resolve_files(&store, &crate::progress::silent())
            .await
            .unwrap();
        let paths: Vec<&str> = resolved.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "README.md",
                "config.json",
                "model.safetensors",
                "sub/.hidden",
                "tok/deep/vocab.txt"
            ]
        );
        assert_eq!(resolved[4].descriptor.digest, Digest::of(b"a b c"));
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
        /// When set, ranges are served (and the offsets asked for recorded); else the whole
        /// blob is sent whatever the offset, like a registry that ignores `Range`.
        ranges: Option<std::sync::Mutex<Vec<u64>>>,
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
        async fn fetch_blob_from(
            &self,
            d: &Descriptor,
            offset: u64,
        ) -> crate::store::Result<crate::store::RangedChunks> {
            let Some(asked) = &self.ranges else {
                return Ok(crate::store::RangedChunks {
                    start: 0,
                    chunks: self.fetch_blob_chunks(d).await?,
                });
            };
            asked.lock().unwrap().push(offset);
            let ranged = self.inner.fetch_blob_from(d, offset).await?;
            let fail = self
                .fails
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let reader: BoxReader = Box::pin(tokio_util::io::StreamReader::new(ranged.chunks));
            let reader: BoxReader = if fail {
                Box::pin(BreakAfter {
                    inner: reader,
                    left: 3,
                })
            } else {
                reader
            };
            Ok(crate::store::RangedChunks {
                start: ranged.start,
                chunks: Box::pin(tokio_util::io::ReaderStream::new(reader)),
            })
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
            ranges: None,
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
        // What came before the connection broke is kept for the next pull, and nothing else.
        let part = format!(
            "{RESUME_DIR}/{}",
            part_name(&artifact.manifest.layers[0].digest)
        );
        assert_eq!(
            crate::model::unpack::tests::entries(&out),
            [RESUME_DIR, &part]
        );
        assert_eq!(std::fs::read(out.join(&part)).unwrap(), b"som");
    }

    /// A store serving ranges of a model `v1` made of `files`, breaking the first `fails`
    /// streams after 3 bytes.
    async fn ranged(files: &[(&str, &'static [u8])], fails: usize) -> (Flaky, ModelArtifact) {
        let (inner, _) = model_store(files).await;
        let store = Flaky {
            inner,
            fails: AtomicUsize::new(fails),
            stall: None,
            on_fetch: None,
            ranges: Some(Default::default()),
        };
        let artifact = fetch_model(&store, "v1").await.unwrap();
        (store, artifact)
    }

    fn asked(store: &Flaky) -> Vec<u64> {
        store.ranges.as_ref().unwrap().lock().unwrap().clone()
    }

    /// Write a kept part for layer `i` of `artifact` into `dir`.
    fn keep_part(dir: &Path, artifact: &ModelArtifact, i: usize, content: &[u8]) {
        let path = dir
            .join(RESUME_DIR)
            .join(part_name(&artifact.manifest.layers[i].digest));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[tokio::test]
    async fn a_connection_lost_mid_blob_continues_where_it_broke() {
        let (store, artifact) = ranged(&[("w.bin", b"some model weights")], 2).await;
        let out = tempfile::tempdir().unwrap();
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(asked(&store), [0, 3, 6]);
        assert_eq!(
            std::fs::read(out.path().join("w.bin")).unwrap(),
            b"some model weights"
        );
        assert_eq!(crate::model::unpack::tests::entries(out.path()), ["w.bin"]);
    }

    #[tokio::test]
    async fn a_kept_prefix_is_hashed_again_and_only_the_rest_fetched() {
        let (store, artifact) = ranged(&[("w.bin", b"some model weights")], 0).await;
        let out = tempfile::tempdir().unwrap();
        keep_part(out.path(), &artifact, 0, b"some mo");
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(asked(&store), [7]);
        assert_eq!(
            std::fs::read(out.path().join("w.bin")).unwrap(),
            b"some model weights"
        );
        // The resume directory goes with a pull that succeeded.
        assert_eq!(crate::model::unpack::tests::entries(out.path()), ["w.bin"]);
    }

    #[tokio::test]
    async fn a_tampered_kept_prefix_is_noticed_and_the_blob_fetched_again() {
        let (store, artifact) = ranged(&[("w.bin", b"some model weights")], 0).await;
        let out = tempfile::tempdir().unwrap();
        keep_part(out.path(), &artifact, 0, b"EVIL mo");
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        // The rest, then (the whole failed its digest) everything from the first byte.
        assert_eq!(asked(&store), [7, 0]);
        assert_eq!(
            std::fs::read(out.path().join("w.bin")).unwrap(),
            b"some model weights"
        );
    }

    #[tokio::test]
    async fn a_kept_part_longer_than_its_layer_or_already_whole() {
        // Longer: started again, the kept bytes never read into the file.
        let (store, artifact) = ranged(&[("w.bin", b"some model weights")], 0).await;
        let out = tempfile::tempdir().unwrap();
        keep_part(out.path(), &artifact, 0, b"some model weights and more");
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(asked(&store), [0]);
        assert_eq!(
            std::fs::read(out.path().join("w.bin")).unwrap(),
            b"some model weights"
        );
        // Whole and right: nothing is fetched.
        let (store, artifact) = ranged(&[("w.bin", b"some model weights")], 0).await;
        let out = tempfile::tempdir().unwrap();
        keep_part(out.path(), &artifact, 0, b"some model weights");
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(asked(&store), Vec::<u64>::new());
        // An empty layer with junk kept: the junk is not delivered.
        let (store, artifact) = ranged(&[("empty", b"")], 0).await;
        let out = tempfile::tempdir().unwrap();
        keep_part(out.path(), &artifact, 0, b"junk");
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(std::fs::read(out.path().join("empty")).unwrap(), b"");
    }

    #[tokio::test]
    async fn a_store_that_sends_the_whole_blob_to_a_range_restarts_it() {
        let (inner, _) = model_store(&[("w.bin", b"some model weights")]).await;
        let store = Flaky {
            inner,
            fails: AtomicUsize::new(0),
            stall: None,
            on_fetch: None,
            ranges: None,
        };
        let artifact = fetch_model(&store, "v1").await.unwrap();
        let out = tempfile::tempdir().unwrap();
        keep_part(out.path(), &artifact, 0, b"some mo");
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(out.path().join("w.bin")).unwrap(),
            b"some model weights"
        );
    }

    #[tokio::test]
    async fn files_with_the_same_content_are_downloaded_once() {
        let (store, artifact) = ranged(
            &[("a", b"same"), ("b", b"same"), ("e1", b""), ("e2", b"")],
            0,
        )
        .await;
        let out = tempfile::tempdir().unwrap();
        unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        // One request for "same", one for the empty blob.
        assert_eq!(asked(&store), [0, 0]);
        for (p, c) in [
            ("a", &b"same"[..]),
            ("b", b"same"),
            ("e1", b""),
            ("e2", b""),
        ] {
            assert_eq!(std::fs::read(out.path().join(p)).unwrap(), c, "{p}");
        }
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
            ranges: None,
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
                ranges: None,
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

    /// An archive layer whose connection is lost mid-layer is read again from its first byte,
    /// and its files are unpacked once.
    #[tokio::test]
    async fn a_connection_lost_mid_archive_restarts_that_archive() {
        let inner = MemoryStore::new("flaky");
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [("w/a.bin", &b"alpha"[..]), ("w/b.bin", b"beta")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, data).unwrap();
        }
        let tar = Bytes::from(b.into_inner().unwrap());
        let (digest, size) = inner.push_blob(&BytesSource(tar)).await.unwrap();
        let mut layer = Descriptor::new("application/vnd.cncf.model.weight.v1.tar", digest, size);
        layer.annotations = Some(
            [(mt::ANNOTATION_FILEPATH.to_string(), "w".to_string())]
                .into_iter()
                .collect(),
        );
        let m = ImageManifest {
            artifact_type: Some(mt::MODEL_ARTIFACT.into()),
            ..ImageManifest::new(Descriptor::empty(), vec![layer])
        };
        inner
            .push_manifest(Bytes::from(m.to_bytes()), mt::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        let store = Flaky {
            inner,
            fails: AtomicUsize::new(ATTEMPTS as usize - 1),
            stall: None,
            on_fetch: None,
            ranges: None,
        };
        let artifact = fetch_model(&store, "v1").await.unwrap();
        let out = tempfile::tempdir().unwrap();
        let r = unpack_model(&store, &artifact, out.path(), &PullOptions::default())
            .await
            .unwrap();
        assert_eq!(r.files.len(), 2);
        assert_eq!(std::fs::read(out.path().join("w/a.bin")).unwrap(), b"alpha");
        assert_eq!(std::fs::read(out.path().join("w/b.bin")).unwrap(), b"beta");
        assert_eq!(store.fails.load(Ordering::SeqCst), 0);
    }
}
