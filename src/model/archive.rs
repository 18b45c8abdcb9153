//! Archive layers: the ModelPack `.tar`, `.tar+gzip` and `.tar+zstd` layer forms, the one
//! reader and the one writer.
//!
//! Reading (pull, sign, verify): the layer streams once, from the download into one blocking
//! thread that hashes every byte against the layer digest ([`BlobCheck`]), decompresses
//! (`flate2`, `zstd`) and walks the tar (`tar`). Each regular file entry is hashed (and, for a
//! pull, written to the pull's staging directory); its path must be a [`ModelPath`] (relative,
//! no `..`, no absolute path, no control character…). Refused, naming the entry: symbolic and
//! hard links (all of them: a model is regular files), character and block devices, FIFOs,
//! sparse files and any other entry type, two entries with one path, names longer than
//! [`MAX_PATH_LEN`] bytes (or a segment over 255). Directory entries only have their path
//! checked (directories are created when files are placed); PAX global headers are ignored.
//! Modes come from the tar header with setuid, setgid, sticky and group/other write dropped and
//! owner read/write always set (`mode & 0o755 | 0o600`, as tar's "data" filter does); owners and
//! times are never applied.
//!
//! Bounds: at most [`MAX_ENTRIES`] files in all archive layers of a model; the files together
//! at most the free space left at the target (pull) and [`MAX_EXTRACTED`]; a compressed
//! layer expands to at most [`MAX_EXPANSION_RATIO`] × its size + [`EXPANSION_ALLOWANCE`]
//! (gzip and zstd bombs); the tar headers, GNU long names and PAX records before one entry at
//! most [`MAX_HEADER_BYTES`] (what the tar crate keeps in memory).
//!
//! Writing (`push --archive-dirs`): [`write_tar`], a deterministic plain tar (entries sorted by
//! path, regular files only, mtime 0, uid/gid 0, no user or group names, mode 0644 or 0755).

use super::paths::ModelPath;
use super::ModelError;
use crate::digest::{Digest, Hasher};
use crate::media_types as mt;
use crate::progress::SharedReporter;
use crate::store::copy::PROGRESS_STEP;
use crate::store::{verified::BlobCheck, BoxChunks, Descriptor, Store, StoreError};
use bytes::{Buf, Bytes};
use futures::StreamExt;
use std::cell::Cell;
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Files in all the archive layers of one model, at most.
pub const MAX_ENTRIES: u64 = 100_000;
/// Bytes of all files extracted from a model's archive layers, at most (also bounded by the
/// free space at the pull target).
pub const MAX_EXTRACTED: u64 = 4 << 40;
/// A compressed layer expands to at most this many times its size…
pub const MAX_EXPANSION_RATIO: u64 = 256;
/// …plus this many bytes (a small archive of tiny files compresses very well).
pub const EXPANSION_ALLOWANCE: u64 = 64 << 20;
/// Tar headers, GNU long names and PAX records read before one entry's data, at most.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;
/// Longest entry path, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest segment of an entry path, in bytes.
const MAX_NAME_LEN: usize = 255;

/// The packing of an archive layer, from its media type's suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    Tar,
    TarGzip,
    TarZstd,
}

impl ArchiveFormat {
    /// `Some` for a media type ending in `.tar`, `.tar+gzip` or `.tar+zstd`.
    pub fn of_media_type(media_type: &str) -> Option<ArchiveFormat> {
        let m = media_type.to_ascii_lowercase();
        if m.ends_with(mt::SUFFIX_TAR) {
            Some(ArchiveFormat::Tar)
        } else if m.ends_with(mt::SUFFIX_TAR_GZIP) {
            Some(ArchiveFormat::TarGzip)
        } else if m.ends_with(mt::SUFFIX_TAR_ZSTD) {
            Some(ArchiveFormat::TarZstd)
        } else {
            None
        }
    }

    /// Compressed or archived in a form we cannot read (`.tar+xz`, `+gzip` without tar…).
    pub fn is_unreadable_packing(media_type: &str) -> bool {
        let m = media_type.to_ascii_lowercase();
        Self::of_media_type(&m).is_none()
            && (m.contains(".tar") || m.contains('+') && !m.ends_with("+json"))
    }
}

/// The `.tar` media type of a raw layer media type (`…weight.v1.raw` → `…weight.v1.tar`).
pub fn tar_media_type(raw: &str) -> String {
    format!(
        "{}{}",
        raw.strip_suffix(mt::SUFFIX_RAW).unwrap_or(raw),
        mt::SUFFIX_TAR
    )
}

/// What is left of the bounds shared by every archive layer of one model.
pub struct Budget {
    entries: AtomicU64,
    bytes: AtomicU64,
    /// Why `bytes` is what it is, for the error.
    bytes_reason: String,
}

impl Budget {
    pub fn new(bytes: u64, bytes_reason: String) -> Self {
        Budget {
            entries: AtomicU64::new(MAX_ENTRIES),
            bytes: AtomicU64::new(bytes.min(MAX_EXTRACTED)),
            bytes_reason,
        }
    }

    /// The bounds of a read that writes nothing (sign, verify).
    pub fn unwritten() -> Self {
        Self::new(
            MAX_EXTRACTED,
            format!(
                "the {} cap on a model's archived files",
                human(MAX_EXTRACTED)
            ),
        )
    }

    fn take(counter: &AtomicU64, n: u64) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }

    fn give_back(&self, entries: u64, bytes: u64) {
        self.entries.fetch_add(entries, Ordering::SeqCst);
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
    }
}

fn human(n: u64) -> String {
    crate::progress::human_size(n)
}

/// A regular file of an archive layer.
#[derive(Clone, Debug)]
pub struct ArchiveEntry {
    pub path: ModelPath,
    pub digest: Digest,
    pub size: u64,
    /// Permission bits to give the file (never setuid, setgid or sticky).
    pub mode: u32,
    /// Where it was written in the staging directory (a pull), else `None`.
    pub staged: Option<PathBuf>,
}

/// Permission bits for a pulled file from a mode an archive or annotation gave: no setuid,
/// setgid or sticky bit, no group/other write, always owner read/write.
pub fn safe_mode(mode: u32) -> u32 {
    (mode & 0o755) | 0o600
}

/// The mode a raw layer's `org.cncf.model.file.metadata+json` annotation gives its file (made
/// safe by [`safe_mode`]), when it has one and describes a regular file.
pub fn annotated_mode(layer: &Descriptor) -> Option<u32> {
    let meta: serde_json::Value =
        serde_json::from_str(layer.annotation(mt::ANNOTATION_FILE_METADATA)?).ok()?;
    // modctl writes the type flag as a number, others as the tar character.
    let directory = matches!(meta.get("typeflag"), Some(v) if v == 5 || v == "5");
    let mode = meta.get("mode")?.as_u64()?;
    (!directory && mode <= 0o7777).then(|| safe_mode(mode as u32))
}

/// Where to write the files of one archive: `dir/<prefix><n>`.
#[derive(Clone, Debug)]
pub struct Staging {
    pub dir: PathBuf,
    pub prefix: String,
}

/// Shared between the guard reader (inside the tar reader) and the loop over entries.
#[derive(Default)]
struct GuardState {
    /// Decompressed bytes so far, and at most.
    total: Cell<u64>,
    max_total: Cell<u64>,
    /// Reading an entry's data (not counted against the header bound).
    in_data: Cell<bool>,
    /// Bytes read outside entry data since the last entry began.
    header_bytes: Cell<u64>,
    /// Why the guard stopped the read.
    tripped: Cell<Option<Tripped>>,
}

#[derive(Clone, Copy, Debug)]
enum Tripped {
    Expansion,
    Headers,
}

/// The decompressed stream as the tar reader sees it, bounded.
struct Guarded<R> {
    inner: R,
    state: Rc<GuardState>,
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let s = &self.state;
        s.total.set(s.total.get() + n as u64);
        if s.total.get() > s.max_total.get() {
            s.tripped.set(Some(Tripped::Expansion));
            return Err(io::Error::other("archive expands beyond its bound"));
        }
        if !s.in_data.get() {
            s.header_bytes.set(s.header_bytes.get() + n as u64);
            if s.header_bytes.get() > MAX_HEADER_BYTES {
                s.tripped.set(Some(Tripped::Headers));
                return Err(io::Error::other("tar headers beyond their bound"));
            }
        }
        Ok(n)
    }
}

/// Read the archive `input` (the layer's bytes, as stored) of `layer`: check every entry,
/// hash every regular file, and write it below `staging` when given. `what` names the layer
/// in errors. Blocking. Reads `input` only as far as the tar's end: the caller reads the rest
/// (so that the layer digest covers every byte).
pub fn read_entries<'r, R: Read + 'r>(
    input: R,
    format: ArchiveFormat,
    layer: &Descriptor,
    what: &str,
    budget: &Budget,
    staging: Option<&Staging>,
) -> Result<Vec<ArchiveEntry>, ModelError> {
    let state = Rc::new(GuardState::default());
    state.max_total.set(match format {
        ArchiveFormat::Tar => u64::MAX,
        _ => layer
            .size
            .saturating_mul(MAX_EXPANSION_RATIO)
            .saturating_add(EXPANSION_ALLOWANCE),
    });
    let decoded: Box<dyn Read + 'r> = match format {
        ArchiveFormat::Tar => Box::new(input),
        ArchiveFormat::TarGzip => Box::new(flate2::read::GzDecoder::new(input)),
        ArchiveFormat::TarZstd => Box::new(
            zstd::stream::read::Decoder::new(input)
                .map_err(|e| invalid(what, format!("cannot start zstd: {e}")))?,
        ),
    };
    let mut taken = (0u64, 0u64);
    let result = walk_tar(
        Guarded {
            inner: decoded,
            state: state.clone(),
        },
        &state,
        layer,
        what,
        budget,
        staging,
        &mut taken,
    );
    if result.is_err() {
        budget.give_back(taken.0, taken.1);
    }
    result
}

fn invalid(what: &str, reason: String) -> ModelError {
    ModelError::InvalidArtifact {
        what: what.to_string(),
        reason,
    }
}

fn unsafe_entry(what: &str, path: &str, reason: impl Into<String>) -> ModelError {
    ModelError::UnsafePath {
        what: format!("archive {what}"),
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// The entry's path as a model path: `./` prefixes and (for a directory) a trailing `/`
/// dropped; `None` for the archive's root directory.
fn entry_path(what: &str, raw: &[u8], is_dir: bool) -> Result<Option<ModelPath>, ModelError> {
    let shown = String::from_utf8_lossy(raw);
    if raw.len() > MAX_PATH_LEN {
        let head: String = shown.chars().take(40).collect();
        return Err(unsafe_entry(
            what,
            &format!("{head}…"),
            format!(
                "the entry name is {} bytes long, longer than the {MAX_PATH_LEN} allowed",
                raw.len()
            ),
        ));
    }
    let name = std::str::from_utf8(raw)
        .map_err(|_| unsafe_entry(what, &shown, "the entry name is not UTF-8"))?;
    let mut rel = name;
    while let Some(rest) = rel.strip_prefix("./") {
        rel = rest;
    }
    if is_dir {
        rel = rel.strip_suffix('/').unwrap_or(rel);
        if rel.is_empty() || rel == "." {
            return Ok(None);
        }
    }
    if let Some(long) = rel.split('/').find(|s| s.len() > MAX_NAME_LEN) {
        return Err(unsafe_entry(
            what,
            name,
            format!(
                "a segment of the name is {} bytes long, longer than the {MAX_NAME_LEN} allowed",
                long.len()
            ),
        ));
    }
    ModelPath::new(rel)
        .map(Some)
        .map_err(|reason| unsafe_entry(what, name, reason))
}

#[allow(clippy::too_many_arguments)]
fn walk_tar<R: Read>(
    input: Guarded<R>,
    state: &GuardState,
    layer: &Descriptor,
    what: &str,
    budget: &Budget,
    staging: Option<&Staging>,
    taken: &mut (u64, u64),
) -> Result<Vec<ArchiveEntry>, ModelError> {
    let tar_error = |e: io::Error| match state.tripped.get() {
        Some(Tripped::Expansion) => invalid(
            what,
            format!(
                "it decompresses to more than {} ({MAX_EXPANSION_RATIO} × its {} bytes + {}): \
                 refused as a compression bomb",
                human(state.max_total.get()),
                layer.size,
                human(EXPANSION_ALLOWANCE)
            ),
        ),
        Some(Tripped::Headers) => invalid(
            what,
            format!(
                "more than {} of tar headers, long names or PAX records before one entry",
                human(MAX_HEADER_BYTES)
            ),
        ),
        None => invalid(what, format!("not a readable tar archive: {e}")),
    };
    let mut archive = tar::Archive::new(input);
    let mut entries = archive.entries().map_err(tar_error)?;
    let mut out = Vec::new();
    let mut seen: HashSet<ModelPath> = HashSet::new();
    loop {
        state.in_data.set(false);
        state.header_bytes.set(0);
        let Some(entry) = entries.next() else {
            break;
        };
        let mut entry = entry.map_err(tar_error)?;
        state.in_data.set(true);
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                entry_path(what, &raw, true)?;
                continue;
            }
            T::XGlobalHeader => continue,
            T::Regular | T::Continuous => {}
            T::Symlink | T::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let kind = if kind == T::Symlink {
                    "symbolic"
                } else {
                    "hard"
                };
                return Err(unsafe_entry(
                    what,
                    &shown,
                    format!(
                        "it is a {kind} link (to {target:?}); archive layers may hold only \
                         regular files and directories"
                    ),
                ));
            }
            T::Char | T::Block | T::Fifo => {
                let name = match kind {
                    T::Char => "character device",
                    T::Block => "block device",
                    _ => "FIFO",
                };
                return Err(unsafe_entry(
                    what,
                    &shown,
                    format!(
                        "it is a {name}; archive layers may hold only regular files and \
                         directories"
                    ),
                ));
            }
            other => {
                return Err(unsafe_entry(
                    what,
                    &shown,
                    format!(
                        "unsupported entry type {:?}; archive layers may hold only regular \
                         files and directories",
                        other.as_byte() as char
                    ),
                ))
            }
        }
        let path = entry_path(what, &raw, false)?.expect("a file has a name");
        if !seen.insert(path.clone()) {
            return Err(unsafe_entry(
                what,
                &shown,
                "the archive holds this path twice",
            ));
        }
        if !Budget::take(&budget.entries, 1) {
            return Err(invalid(
                what,
                format!("more than {MAX_ENTRIES} files in the model's archive layers"),
            ));
        }
        taken.0 += 1;
        let size = entry.size();
        if !Budget::take(&budget.bytes, size) {
            return Err(invalid(
                what,
                format!(
                    "entry {shown:?} ({size} bytes) does not fit: the archived files exceed {}",
                    budget.bytes_reason
                ),
            ));
        }
        taken.1 += size;
        let mode = safe_mode(entry.header().mode().unwrap_or(0o644));
        let mut hasher = Hasher::new();
        let staged = match staging {
            Some(s) => {
                let dest = s.dir.join(format!("{}{}", s.prefix, out.len()));
                let mut file = std::fs::File::create_new(&dest)
                    .map_err(|e| ModelError::io(format!("create {}", dest.display()), e))?;
                copy_hashed(&mut entry, &mut file, &mut hasher)
                    .map_err(|e| entry_read_error(e, &tar_error, &dest))?;
                drop(file);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| ModelError::io(format!("chmod {}", dest.display()), e))?;
                }
                Some(dest)
            }
            None => {
                copy_hashed(&mut entry, &mut io::sink(), &mut hasher)
                    .map_err(|e| entry_read_error(e, &tar_error, Path::new("")))?;
                None
            }
        };
        if hasher.len() != size {
            return Err(invalid(
                what,
                format!(
                    "entry {shown:?} ends after {} of its {size} bytes",
                    hasher.len()
                ),
            ));
        }
        out.push(ArchiveEntry {
            path,
            digest: hasher.finish(),
            size,
            mode,
            staged,
        });
    }
    Ok(out)
}

/// A failure while copying an entry: reading (the archive's fault) or writing (ours).
enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn entry_read_error(
    e: CopyError,
    tar_error: &dyn Fn(io::Error) -> ModelError,
    dest: &Path,
) -> ModelError {
    match e {
        CopyError::Read(e) => tar_error(e),
        CopyError::Write(e) => ModelError::io(format!("write {}", dest.display()), e),
    }
}

fn copy_hashed(
    from: &mut impl Read,
    to: &mut impl Write,
    hasher: &mut Hasher,
) -> Result<(), CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// The layer's bytes as the download brings them, for a blocking reader: every chunk checked
/// against the layer's size and digest as it passes ([`BlobCheck`]), the check finished at the
/// end. A failure of the download or of the check is kept in `failure` (typed), and the reader
/// answers it with an I/O error.
struct ChunkReader {
    runtime: tokio::runtime::Handle,
    cancel: tokio_util::sync::CancellationToken,
    chunks: BoxChunks,
    check: Option<BlobCheck>,
    current: Bytes,
    done: bool,
    failure: Option<ModelError>,
    source: String,
    what: String,
    reporter: SharedReporter,
    progress_id: u64,
    unreported: u64,
}

impl ChunkReader {
    fn fail(&mut self, e: ModelError) -> io::Error {
        let msg = e.to_string();
        self.failure.get_or_insert(e);
        io::Error::other(msg)
    }

    /// Read what the tar reader left (end-of-archive blocks, padding, trailing bytes), so the
    /// digest covers the whole layer.
    fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            let (cancel, chunks) = (&self.cancel, &mut self.chunks);
            let next = self.runtime.block_on(async {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => None,
                    next = chunks.next() => Some(next),
                }
            });
            match next {
                None => {
                    let e = ModelError::Input(format!("{}: download cancelled", self.what));
                    return Err(self.fail(e));
                }
                Some(None) => {
                    self.done = true;
                    if self.unreported > 0 {
                        self.reporter.advance(self.progress_id, self.unreported);
                        self.unreported = 0;
                    }
                    let check = self.check.take().expect("finished once");
                    if let Err(e) = check.finish() {
                        return Err(self.fail(e.into()));
                    }
                }
                Some(Some(Err(e))) => {
                    let e = StoreError::Network {
                        url: self.source.clone(),
                        reason: format!("reading {} failed: {e}", self.what),
                    };
                    return Err(self.fail(e.into()));
                }
                Some(Some(Ok(chunk))) => {
                    let check = self.check.as_mut().expect("not finished");
                    if let Err(e) = check.update(&chunk) {
                        return Err(self.fail(e.into()));
                    }
                    self.unreported += chunk.len() as u64;
                    if self.unreported >= PROGRESS_STEP {
                        self.reporter.advance(self.progress_id, self.unreported);
                        self.unreported = 0;
                    }
                    self.current = chunk;
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Stream the archive layer `layer` from `store` once and read it ([`read_entries`]): its
/// bytes checked against the layer digest, its files hashed and, with `staging`, written there.
/// A connection lost mid-layer restarts the layer (the store's retry policy), its staged files
/// removed first. `name` is the layer's path, for progress and errors.
pub async fn stream_archive(
    store: &dyn Store,
    layer: &Descriptor,
    format: ArchiveFormat,
    name: &str,
    budget: &std::sync::Arc<Budget>,
    staging: Option<Staging>,
    reporter: &SharedReporter,
) -> Result<Vec<ArchiveEntry>, ModelError> {
    let what = format!("layer {} ({name:?})", layer.digest);
    let policy = store.retry_policy();
    let mut attempt = 1;
    let id = reporter.start(name, layer.size);
    let result = loop {
        let result = stream_once(store, layer, format, &what, budget, &staging, reporter, id).await;
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
    };
    reporter.finish(id, false);
    result
}

#[allow(clippy::too_many_arguments)]
async fn stream_once(
    store: &dyn Store,
    layer: &Descriptor,
    format: ArchiveFormat,
    what: &str,
    budget: &std::sync::Arc<Budget>,
    staging: &Option<Staging>,
    reporter: &SharedReporter,
    progress_id: u64,
) -> Result<Vec<ArchiveEntry>, ModelError> {
    if let Some(s) = staging {
        remove_staged(s);
    }
    let chunks = store.fetch_blob_chunks(layer).await?;
    // Dropping this future (another layer failed, the pull was cancelled) stops the thread.
    let cancel = tokio_util::sync::CancellationToken::new();
    let _stop_on_drop = cancel.clone().drop_guard();
    let mut input = ChunkReader {
        runtime: tokio::runtime::Handle::current(),
        cancel,
        chunks,
        check: Some(BlobCheck::new(
            layer.digest.clone(),
            layer.size,
            what.to_string(),
        )),
        current: Bytes::new(),
        done: false,
        failure: None,
        source: format!("{} (blob {})", store.location(), layer.digest),
        what: what.to_string(),
        reporter: reporter.clone(),
        progress_id,
        unreported: 0,
    };
    let layer = layer.clone();
    let what = what.to_string();
    let budget = budget.clone();
    let staging = staging.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let read = read_entries(&mut input, format, &layer, &what, &budget, staging.as_ref());
        let read = read.and_then(|entries| match input.drain() {
            Ok(()) => Ok(entries),
            Err(e) => {
                // read_entries kept these in the budget; a retry takes them again.
                let bytes = entries.iter().map(|e| e.size).sum();
                budget.give_back(entries.len() as u64, bytes);
                Err(ModelError::io(format!("read {what}"), e))
            }
        });
        // The download's own failure (digest, size, network) explains any other.
        match (read, input.failure.take()) {
            (Ok(entries), Some(e)) => {
                let bytes = entries.iter().map(|e| e.size).sum();
                budget.give_back(entries.len() as u64, bytes);
                Err(e)
            }
            (Err(_), Some(e)) => Err(e),
            (r, None) => r,
        }
    })
    .await;
    match joined {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Remove what an earlier attempt staged for this archive.
fn remove_staged(s: &Staging) {
    let Ok(dir) = std::fs::read_dir(&s.dir) else {
        return;
    };
    for e in dir.flatten() {
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&s.prefix))
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// One file of a tar to write: its name in the archive and where to read it.
#[derive(Clone, Debug)]
pub struct TarSource {
    pub path: ModelPath,
    pub source: PathBuf,
    pub size: u64,
    pub executable: bool,
}

/// Write a deterministic plain tar of `files` into `out`: entries sorted by path, regular files
/// only, mtime 0, uid/gid 0, no user or group names, mode 0644 (0755 when executable); names
/// over 100 bytes as GNU long names. A file whose size changed since it was listed fails.
pub fn write_tar<W: Write>(out: W, files: &[TarSource]) -> io::Result<W> {
    let mut sorted: Vec<&TarSource> = files.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let mut builder = tar::Builder::new(out);
    for f in sorted {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(f.size);
        header.set_mode(if f.executable { 0o755 } else { 0o644 });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let file = std::fs::File::open(&f.source)?;
        let mut exact = ExactSize {
            inner: file.take(f.size + 1),
            left: f.size,
            source: &f.source,
        };
        builder.append_data(&mut header, f.path.as_str(), &mut exact)?;
    }
    builder.into_inner()
}

/// A file read for a tar entry: exactly the size its header says, or an error.
struct ExactSize<'a, R> {
    inner: R,
    left: u64,
    source: &'a Path,
}

impl<R: Read> Read for ExactSize<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left || (n == 0 && self.left > 0) {
            return Err(io::Error::other(format!(
                "{} changed size while it was archived",
                self.source.display()
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_of(bytes: &[u8]) -> Descriptor {
        Descriptor::new(mt::MODEL_WEIGHT, Digest::of(bytes), bytes.len() as u64)
    }

    fn read(bytes: &[u8], format: ArchiveFormat) -> Result<Vec<ArchiveEntry>, ModelError> {
        read_entries(
            bytes,
            format,
            &layer_of(bytes),
            "layer x",
            &Budget::unwritten(),
            None,
        )
    }

    /// A tar with one entry of this type, path and content (headers built by hand, so that
    /// names the tar crate's builder refuses can be written).
    fn one_entry(kind: tar::EntryType, path: &str, data: &[u8], mode: u32) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_link_name("../../etc/passwd").unwrap();
        }
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn the_metadata_annotation_gives_a_safe_mode() {
        let with = |json: &str| {
            let mut d = layer_of(b"x");
            d.annotations = Some(
                [(mt::ANNOTATION_FILE_METADATA.to_string(), json.to_string())]
                    .into_iter()
                    .collect(),
            );
            annotated_mode(&d)
        };
        assert_eq!(with(r#"{"name":"a","mode":493,"typeflag":0}"#), Some(0o755));
        assert_eq!(with(r#"{"mode":3565}"#), Some(0o755)); // 0o6755: setuid, setgid dropped
        assert_eq!(with(r#"{"mode":292}"#), Some(0o644)); // 0o444: owner can write
        assert_eq!(with(r#"{"mode":493,"typeflag":5}"#), None);
        assert_eq!(with(r#"{"mode":-1}"#), None);
        assert_eq!(with("not json"), None);
        assert_eq!(annotated_mode(&layer_of(b"x")), None);
    }

    #[test]
    fn media_types_say_the_packing() {
        use ArchiveFormat::*;
        let of = ArchiveFormat::of_media_type;
        assert_eq!(of("application/vnd.cncf.model.weight.v1.tar"), Some(Tar));
        assert_eq!(
            of("application/vnd.cncf.model.doc.v1.tar+gzip"),
            Some(TarGzip)
        );
        assert_eq!(
            of("application/vnd.cncf.model.code.v1.tar+zstd"),
            Some(TarZstd)
        );
        assert_eq!(of(mt::MODEL_WEIGHT), None);
        assert!(ArchiveFormat::is_unreadable_packing(
            "application/vnd.cncf.model.weight.v1.tar+xz"
        ));
        assert!(!ArchiveFormat::is_unreadable_packing(mt::MODEL_DOC));
        assert_eq!(
            tar_media_type(mt::MODEL_WEIGHT_CONFIG),
            "application/vnd.cncf.model.weight.config.v1.tar"
        );
    }

    #[test]
    fn reads_files_and_skips_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b.txt"), b"bee").unwrap();
        std::fs::write(dir.path().join("a.bin"), b"a").unwrap();
        let src = |p: &str| TarSource {
            path: ModelPath::new(p).unwrap(),
            source: dir.path().join(p),
            size: std::fs::metadata(dir.path().join(p)).unwrap().len(),
            executable: false,
        };
        let tar = write_tar(Vec::new(), &[src("d/b.txt"), src("a.bin")]).unwrap();
        let entries = read(&tar, ArchiveFormat::Tar).unwrap();
        let got: Vec<(&str, &Digest, u32)> = entries
            .iter()
            .map(|e| (e.path.as_str(), &e.digest, e.mode))
            .collect();
        assert_eq!(
            got,
            [
                ("a.bin", &Digest::of(b"a"), 0o644),
                ("d/b.txt", &Digest::of(b"bee"), 0o644)
            ]
        );
        // Deterministic: the same files give the same bytes.
        assert_eq!(
            tar,
            write_tar(Vec::new(), &[src("a.bin"), src("d/b.txt")]).unwrap()
        );
    }

    #[test]
    fn refuses_hostile_entries_naming_them() {
        use tar::EntryType as T;
        for (kind, path, needle) in [
            (T::Regular, "../escape", "escape"),
            (T::Regular, "/etc/passwd", "/etc/passwd"),
            (T::Regular, "a/../../b", "a/../../b"),
            (T::Symlink, "link", "symbolic link"),
            (T::Link, "hard", "hard link"),
            (T::Char, "tty", "character device"),
            (T::Block, "sda", "block device"),
            (T::Fifo, "pipe", "FIFO"),
            (T::new(b'Z'), "odd", "unsupported entry type"),
        ] {
            let tar = one_entry(kind, path, b"", 0o644);
            let err = read(&tar, ArchiveFormat::Tar).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(err, ModelError::UnsafePath { .. }),
                "{path}: {msg}"
            );
            assert!(msg.contains(path), "{path}: {msg}");
            assert!(msg.contains(needle), "{path}: {msg}");
        }
    }

    #[test]
    fn strips_setuid_setgid_sticky_and_group_write() {
        let tar = one_entry(tar::EntryType::Regular, "run.sh", b"x", 0o7777);
        let entries = read(&tar, ArchiveFormat::Tar).unwrap();
        assert_eq!(entries[0].mode, 0o755);
        let tar = one_entry(tar::EntryType::Regular, "ro", b"x", 0o400);
        assert_eq!(read(&tar, ArchiveFormat::Tar).unwrap()[0].mode, 0o600);
    }

    #[test]
    fn refuses_compression_bombs() {
        let zeros = vec![0u8; 1 << 20];
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 19).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_path("big").unwrap();
        h.set_size(80 << 20);
        h.set_mode(0o644);
        h.set_cksum();
        enc.write_all(h.as_bytes()).unwrap();
        for _ in 0..80 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        let err = read(&bomb, ArchiveFormat::TarZstd).unwrap_err();
        assert!(err.to_string().contains("compression bomb"), "{err}");
    }

    #[test]
    fn refuses_a_long_name_past_the_header_bound() {
        // A GNU long-name entry of 2 MiB: the tar crate would keep it in memory.
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(2 << 20);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, io::repeat(b'a').take(2 << 20)).unwrap();
        let tar = b.into_inner().unwrap();
        let err = read(&tar, ArchiveFormat::Tar).unwrap_err();
        assert!(err.to_string().contains("tar headers"), "{err}");
    }

    #[test]
    fn refuses_a_path_twice_and_too_many_bytes() {
        let mut one = one_entry(tar::EntryType::Regular, "w", b"abc", 0o644);
        one.truncate(1024); // header + one data block, no end marker
        let mut twice = one.clone();
        twice.extend_from_slice(&one);
        twice.extend_from_slice(&[0u8; 1024]);
        let err = read(&twice, ArchiveFormat::Tar).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");

        let tar = one_entry(tar::EntryType::Regular, "w", b"abc", 0o644);
        let small = Budget::new(2, "the 2 bytes free".into());
        let err = read_entries(
            &tar[..],
            ArchiveFormat::Tar,
            &layer_of(&tar),
            "layer x",
            &small,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("the 2 bytes free"), "{err}");
    }
}
