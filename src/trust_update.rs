//! A Sigstore trusted root that stays current: `oci-model trusted-root update` fetches
//! `trusted_root.json` through TUF and keeps it in the user's cache; every command that needs
//! a trusted root then uses that cached root when it is there and not older than the one
//! embedded in the binary. Only `update` touches the network: loading the cached root is
//! offline, and a command never fetches by itself.
//!
//! The cache is written by the user's own runs but read as untrusted (a shared CI cache, a
//! restored cache archive): each load re-verifies the cached TUF metadata from the anchor
//! (signatures and thresholds, version floors, expiry as of the time of the update, the
//! target's length and hash) before the root is used. The anchor of the public-good
//! repository is the TUF `root.json` built into the binary; another repository's anchor is the
//! `--root` file given to its first update, kept in its cache directory (as trustworthy as
//! that directory).
//!
//! Layout under `<cache dir>/trusted-root/` (see [`TrustCache`]):
//! - `state.json`: which repository the root in use came from and when it was fetched;
//! - `repos/<sha256 of the URL, 16 hex digits>`: a symbolic link to the directory holding that
//!   repository's verified TUF metadata (`root.json`, `root_history/`, `timestamp.json`,
//!   `snapshot.json`, `targets.json`), its `targets/trusted_root.json`, and `anchor.json`
//!   (only for a repository given `--root`); an update fills a copy and swaps the link.
//!
//! What a repository can make us read is bounded per file (`limits()`: python-tuf's metadata
//! caps, the trusted-root cap for the target), and each request must answer within the
//! caller's timeout.

use crate::error::ErrorKind;
use crate::verify::{TrustedRoot, MAX_TRUSTED_ROOT_SIZE};
use serde::{Deserialize, Serialize};
use sigstore_trust_root::SigstoreInstance;
use sigstore_tuf::{FileStore, HttpRepository, MetadataStore, StoreRepository, Updater};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The TUF target that holds the Sigstore trusted root.
pub const TRUSTED_ROOT_TARGET: &str = "trusted_root.json";

/// Largest `state.json` or `anchor.json` read from the cache.
const MAX_STATE_SIZE: u64 = 512 * 1024;

/// The public-good instance's TUF repository.
pub fn public_good_tuf_url() -> &'static str {
    SigstoreInstance::PublicGood.tuf_url()
}

/// What a TUF repository can make us read, per file: python-tuf's defaults for metadata, and
/// the trusted-root cap for the target.
fn limits() -> sigstore_tuf::UpdaterConfig {
    let mut config = sigstore_tuf::UpdaterConfig::default();
    config.target_max_length = MAX_TRUSTED_ROOT_SIZE;
    config
}

/// The largest cached file a load reads (the largest metadata limit).
fn max_cached_file() -> u64 {
    let l = limits();
    [
        l.root_max_length,
        l.timestamp_max_length,
        l.snapshot_max_length,
        l.targets_max_length,
        l.target_max_length,
    ]
    .into_iter()
    .max()
    .unwrap_or(MAX_TRUSTED_ROOT_SIZE)
}

/// Why a trusted root could not be updated or a cached one not used.
#[derive(Debug, thiserror::Error)]
pub enum TrustUpdateError {
    /// The caller's input: a bad URL, an unusable `--root` file, a missing anchor.
    #[error("{0}")]
    Input(String),
    /// The repository could not be reached or answered with an error.
    #[error("TUF repository {url}: {reason}")]
    Fetch { url: String, reason: String },
    /// The repository's metadata or target was refused (expired, rolled back, badly signed,
    /// wrong length or hash) or its target is not a trusted root.
    #[error("TUF repository {url}: {reason}")]
    Refused { url: String, reason: String },
    /// The cache holds a trusted root that does not verify (or cannot be read).
    #[error("the cached trusted root in {} is not usable: {reason}; run `oci-model trusted-root update` again, or remove that directory to use the embedded root", dir.display())]
    Cache { dir: PathBuf, reason: String },
    /// Writing the cache failed.
    #[error("cannot write the trusted-root cache {}: {reason}", dir.display())]
    Write { dir: PathBuf, reason: String },
}

impl TrustUpdateError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            TrustUpdateError::Input(_) | TrustUpdateError::Write { .. } => ErrorKind::Input,
            TrustUpdateError::Fetch { .. } => ErrorKind::Remote,
            TrustUpdateError::Refused { .. } | TrustUpdateError::Cache { .. } => {
                ErrorKind::Integrity
            }
        }
    }
}

/// A TUF failure in words that name what was wrong.
fn describe(err: &sigstore_tuf::Error) -> String {
    use sigstore_tuf::Error as E;
    let mut text = match err {
        E::Rollback { role, trusted, new } => format!(
            "rollback refused: {role} metadata version {new} is older than the version {trusted} already trusted"
        ),
        E::BadRootVersion { trusted, new } => format!(
            "rollback refused: root metadata version {new} does not follow the trusted version {trusted}"
        ),
        E::Expired { role, expires } => format!("{role} metadata expired at {expires}"),
        E::ThresholdNotMet {
            role,
            found,
            threshold,
        } => format!(
            "bad signature: {role} metadata has {found} valid signature(s), {threshold} required"
        ),
        E::IntegrityMismatch(what) => format!("wrong length or hash: {what}"),
        E::TargetNotFound(name) => format!("the repository lists no target {name:?}"),
        other => other.to_string(),
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// A TUF failure while talking to `url`: transport errors are the repository's failure,
/// everything else a refusal.
fn tuf_error(url: &str, err: sigstore_tuf::Error) -> TrustUpdateError {
    let reason = describe(&err);
    match err {
        // A body longer than the length the signed metadata pins (or than our cap) is refused
        // by the transport while reading; it is the content that is wrong, not the connection.
        sigstore_tuf::Error::Transport { ref message, .. } if message.contains("exceeds max") => {
            TrustUpdateError::Refused {
                url: url.to_string(),
                reason: format!("wrong length or hash: {message}"),
            }
        }
        sigstore_tuf::Error::Transport { .. } => TrustUpdateError::Fetch {
            url: url.to_string(),
            reason,
        },
        _ => TrustUpdateError::Refused {
            url: url.to_string(),
            reason,
        },
    }
}

/// `state.json`: the repository the cached root came from and when it was fetched.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    tuf_url: String,
    fetched_at: jiff::Timestamp,
}

/// What the cache holds, as verified.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedInfo {
    /// The TUF repository it came from.
    pub tuf_url: String,
    /// When `trusted-root update` fetched it (RFC 3339).
    pub fetched_at: String,
    /// TUF root metadata version reached.
    pub tuf_root_version: u64,
    /// Version of the targets metadata that listed the trusted root.
    pub targets_version: u64,
    /// When the TUF timestamp metadata expires: an update after that must find newer metadata.
    pub metadata_expires: String,
    /// sha256 of the cached `trusted_root.json` (hex).
    pub sha256: String,
    /// Newest validity start of any key or CA in it (RFC 3339).
    pub newest_key_start: Option<String>,
}

/// A cached root that verified, with what is known about it.
#[derive(Clone, Debug)]
pub struct Cached {
    pub root: TrustedRoot,
    pub info: CachedInfo,
}

/// The trusted-root cache under a user's cache directory.
#[derive(Clone, Debug)]
pub struct TrustCache {
    dir: PathBuf,
}

/// The options of one update.
#[derive(Clone, Debug)]
pub struct UpdateOptions {
    /// The TUF repository (default: the public-good one).
    pub tuf_url: Option<String>,
    /// `--root`: the TUF root.json to trust for a repository other than the public-good one.
    pub root: Option<PathBuf>,
    /// Each request must answer (and its body keep coming) within this.
    pub timeout: Duration,
}

impl TrustCache {
    /// The cache inside `cache_dir` (oci-model's cache directory): `<cache_dir>/trusted-root`.
    pub fn new(cache_dir: &Path) -> Self {
        TrustCache {
            dir: cache_dir.join("trusted-root"),
        }
    }

    /// Where the cache lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The metadata directory of one repository.
    fn repo_dir(&self, url: &str) -> PathBuf {
        let digest = crate::digest::Digest::of(normalize_url(url).as_bytes())
            .hex()
            .to_string();
        self.dir.join("repos").join(&digest[..16])
    }

    fn cache_err(&self, reason: impl Into<String>) -> TrustUpdateError {
        TrustUpdateError::Cache {
            dir: self.dir.clone(),
            reason: reason.into(),
        }
    }

    /// Fetch the newest trusted root from a TUF repository, verify it, and make it the cached
    /// root. Fails naming what the repository got wrong; on failure the cache stays as it was
    /// (the refresh runs in a copy). The versions it trusted become the floors of the next
    /// update: an older version is refused as a rollback.
    pub async fn update(&self, opts: &UpdateOptions) -> Result<Cached, TrustUpdateError> {
        let url = normalize_url(opts.tuf_url.as_deref().unwrap_or(public_good_tuf_url()));
        check_url(&url)?;
        let repo_dir = self.repo_dir(&url);
        let given_root = match &opts.root {
            Some(_) if url == normalize_url(public_good_tuf_url()) => {
                return Err(TrustUpdateError::Input(format!(
                    "--root is for a TUF repository other than the public-good one ({url}), whose root.json is built in"
                )))
            }
            Some(path) => Some(read_root_file(path)?),
            None => None,
        };
        let anchor = match &given_root {
            Some(bytes) => bytes.clone(),
            None => self.anchor(&url, &repo_dir).map_err(|e| match e {
                TrustUpdateError::Cache { .. } => TrustUpdateError::Input(format!(
                    "no TUF root.json to start from for {url}: give --root ROOT.json (the repository's trusted root metadata) on its first update"
                )),
                other => other,
            })?,
        };
        let client = sigstore_tuf::reqwest::Client::builder()
            .connect_timeout(opts.timeout)
            .read_timeout(opts.timeout)
            .timeout(opts.timeout.saturating_mul(2))
            .user_agent(concat!("oci-model/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| TrustUpdateError::Input(format!("cannot build an HTTP client: {e}")))?;
        let repo = HttpRepository::new(&url)
            .map_err(|e| tuf_error(&url, e))?
            .with_http_client(client);
        // The refresh runs in a copy of the repository's cache, which replaces it only when
        // the whole update succeeded: a refused update leaves the cache as it was.
        let staging = self.stage(&repo_dir)?;
        let mut updater = Updater::new(repo, &anchor)
            .map_err(|e| {
                TrustUpdateError::Input(format!(
                    "the TUF root.json to start from: {}",
                    describe(&e)
                ))
            })?
            .with_config(limits())
            .with_store(FileStore::new(staging.path()));
        let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
            .expect("now is a valid time");
        updater.refresh(now).await.map_err(|e| tuf_error(&url, e))?;
        let bytes = updater
            .get_target(TRUSTED_ROOT_TARGET, now)
            .await
            .map_err(|e| tuf_error(&url, e))?;
        let cached =
            cached(&url, now, &updater, &bytes).map_err(|reason| TrustUpdateError::Refused {
                url: url.clone(),
                reason,
            })?;
        if let Some(root) = given_root {
            write_file(staging.path(), &staging.path().join("anchor.json"), &root)?;
        }
        self.commit(staging, &repo_dir)?;
        let state = State {
            tuf_url: url,
            fetched_at: now,
        };
        let state = serde_json::to_vec_pretty(&state).expect("state serializes");
        write_file(&self.dir, &self.state_path(), &state)?;
        Ok(cached)
    }

    fn write_err(&self, reason: impl std::fmt::Display) -> TrustUpdateError {
        TrustUpdateError::Write {
            dir: self.dir.clone(),
            reason: reason.to_string(),
        }
    }

    /// A new directory beside `repo_dir` holding a copy of what it holds (nothing on a first
    /// update); removed when dropped unless committed.
    fn stage(&self, repo_dir: &Path) -> Result<tempfile::TempDir, TrustUpdateError> {
        let parent = repo_dir
            .parent()
            .expect("a repository directory has a parent");
        std::fs::create_dir_all(parent).map_err(|e| self.write_err(e))?;
        let name = repo_dir.file_name().expect("named").to_string_lossy();
        remove_stale_staging(parent, &name, repo_dir);
        let staging = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .tempdir_in(parent)
            .map_err(|e| self.write_err(e))?;
        if std::fs::symlink_metadata(repo_dir).is_ok() {
            copy_tree(repo_dir, staging.path(), max_cached_file())
                .map_err(|e| self.cache_err(e))?;
        }
        Ok(staging)
    }

    /// Make `staging` the repository's cache: `repo_dir` is a symbolic link to the current
    /// copy, replaced in one rename, so a concurrent load sees the old copy or the new one.
    fn commit(&self, staging: tempfile::TempDir, repo_dir: &Path) -> Result<(), TrustUpdateError> {
        let parent = repo_dir
            .parent()
            .expect("a repository directory has a parent");
        let previous = std::fs::read_link(repo_dir).ok();
        let target = staging.keep();
        let target_name = target.file_name().expect("named").to_owned();
        let link = parent.join(format!("{}.link", target_name.to_string_lossy()));
        std::os::unix::fs::symlink(&target_name, &link).map_err(|e| self.write_err(e))?;
        if let Err(e) = std::fs::rename(&link, repo_dir) {
            let _ = std::fs::remove_file(&link);
            let _ = std::fs::remove_dir_all(&target);
            return Err(self.write_err(format!("{}: {e}", repo_dir.display())));
        }
        if let Some(old) = previous {
            let _ = std::fs::remove_dir_all(parent.join(old));
        }
        Ok(())
    }

    /// The anchor for `url`: the built-in root for the public-good repository, else the
    /// `anchor.json` its first update kept.
    fn anchor(&self, url: &str, repo_dir: &Path) -> Result<Vec<u8>, TrustUpdateError> {
        if url == normalize_url(public_good_tuf_url()) {
            return Ok(SigstoreInstance::PublicGood.tuf_root().to_vec());
        }
        read_bounded(&repo_dir.join("anchor.json"), MAX_STATE_SIZE)
            .map_err(|e| self.cache_err(format!("no anchor for {url}: {e}")))
    }

    /// The cached root, re-verified offline, or None when no update ever ran. Makes no
    /// network request and writes nothing.
    pub fn load(&self) -> Result<Option<Cached>, TrustUpdateError> {
        let state_path = self.state_path();
        if std::fs::symlink_metadata(&state_path).is_err() {
            return Ok(None);
        }
        let state = read_bounded(&state_path, MAX_STATE_SIZE)
            .map_err(|e| self.cache_err(format!("{}: {e}", state_path.display())))?;
        let state: State = serde_json::from_slice(&state)
            .map_err(|e| self.cache_err(format!("{}: {e}", state_path.display())))?;
        let url = normalize_url(&state.tuf_url);
        let repo_dir = self.repo_dir(&url);
        let anchor = self.anchor(&url, &repo_dir)?;
        let store = ReadOnlyStore {
            dir: repo_dir,
            max: max_cached_file(),
        };
        let at = state.fetched_at;
        let verified = futures::executor::block_on(async {
            let mut updater = Updater::new(StoreRepository::new(store.clone()), &anchor)?
                .with_config(limits())
                .with_store(store);
            updater.refresh(at).await?;
            let bytes = updater.get_target(TRUSTED_ROOT_TARGET, at).await?;
            Ok::<_, sigstore_tuf::Error>((updater, bytes))
        });
        let (updater, bytes) = verified.map_err(|e| self.cache_err(describe(&e)))?;
        cached(&url, at, &updater, &bytes)
            .map(Some)
            .map_err(|reason| self.cache_err(reason))
    }
}

/// Which root a command uses, and why.
#[derive(Clone, Debug)]
pub struct Current {
    /// The root to verify with.
    pub root: TrustedRoot,
    /// What the cache holds (None: no update ever ran, or no cache directory).
    pub cached: Option<CachedInfo>,
    /// True when `root` is the cached one; false: the embedded root (no cache, or the cached
    /// root is older than the embedded one).
    pub from_cache: bool,
}

/// The trusted root a command uses by default: the cached one when an update ran and it is
/// not older than the embedded root, else the embedded root. Offline.
pub fn current(cache: Option<&TrustCache>) -> Result<Current, TrustUpdateError> {
    let embedded = TrustedRoot::production().map_err(|e| TrustUpdateError::Input(e.to_string()))?;
    let Some(cached) = cache.map(TrustCache::load).transpose()?.flatten() else {
        return Ok(Current {
            root: embedded,
            cached: None,
            from_cache: false,
        });
    };
    let from_cache = cached.root.newest_key_start() >= embedded.newest_key_start();
    Ok(Current {
        root: if from_cache { cached.root } else { embedded },
        cached: Some(cached.info),
        from_cache,
    })
}

/// Describe a verified target: parse it as a trusted root (the repository signed it, but it
/// must still be one) and collect what the metadata says.
fn cached(
    url: &str,
    fetched_at: jiff::Timestamp,
    updater: &Updater,
    bytes: &[u8],
) -> Result<Cached, String> {
    let trusted = updater.trusted();
    let fetched = fetched_at.to_string();
    let json = std::str::from_utf8(bytes)
        .map_err(|e| format!("{TRUSTED_ROOT_TARGET} is not UTF-8: {e}"))?;
    let source = format!("TUF {url} (fetched {fetched})");
    let root = TrustedRoot::from_json(json, &source).map_err(|e| e.to_string())?;
    let info = CachedInfo {
        tuf_url: url.to_string(),
        fetched_at: fetched,
        tuf_root_version: trusted.root().version,
        targets_version: trusted.targets_role("targets").map_or(0, |t| t.version),
        metadata_expires: trusted
            .timestamp()
            .map(|t| t.expires.to_string())
            .unwrap_or_default(),
        sha256: crate::digest::Digest::of(bytes).hex().to_string(),
        newest_key_start: root.newest_key_start().map(|t| t.to_string()),
    };
    Ok(Cached { root, info })
}

/// One spelling per repository: no trailing slash.
fn normalize_url(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

fn check_url(url: &str) -> Result<(), TrustUpdateError> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "https" | "http") && u.host().is_some() => Ok(()),
        Ok(_) => Err(TrustUpdateError::Input(format!(
            "--tuf-url {url}: an http or https URL is needed"
        ))),
        Err(e) => Err(TrustUpdateError::Input(format!("--tuf-url {url}: {e}"))),
    }
}

fn read_root_file(path: &Path) -> Result<Vec<u8>, TrustUpdateError> {
    let limit = limits().root_max_length;
    read_bounded(path, limit)
        .map_err(|e| TrustUpdateError::Input(format!("--root {}: {e}", path.display())))
}

/// Read a regular file of at most `limit` bytes.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than the {limit}-byte limit"));
    }
    Ok(bytes)
}

/// Copy the regular files under `from` into `to` (directories recreated), each at most `max`
/// bytes.
fn copy_tree(from: &Path, to: &Path, max: u64) -> Result<(), String> {
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
            copy_tree(&path, &dest, max)?;
        } else if kind.is_file() {
            let bytes = read_bounded(&path, max).map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::write(&dest, bytes).map_err(|e| format!("{}: {e}", dest.display()))?;
        }
    }
    Ok(())
}

/// Write `path` (inside `dir`) through a temporary file, so no reader sees half of it.
/// How old a staging directory must be before an update takes it for one a killed update left
/// behind (a live update finishes within its timeouts, far sooner).
const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(3600);

/// Remove what killed updates of `name` left in `parent`: staging copies (`<name>.XXXXXX`) and
/// half-made links (`<name>.XXXXXX.link`) older than [`STALE_STAGING`], never the copy
/// `repo_dir` points at. Best effort: what cannot be removed stays for the next update.
fn remove_stale_staging(parent: &Path, name: &str, repo_dir: &Path) {
    let current = std::fs::read_link(repo_dir).ok();
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!("{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(text) = file_name.to_str() else {
            continue;
        };
        if !text.starts_with(&prefix) || current.as_deref() == Some(Path::new(text)) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age > STALE_STAGING);
        if !old {
            continue;
        }
        let _ = if meta.is_dir() {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        };
    }
}

fn write_file(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), TrustUpdateError> {
    use std::io::Write as _;
    let err = |e: std::io::Error| TrustUpdateError::Write {
        dir: dir.to_path_buf(),
        reason: format!("{}: {e}", path.display()),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// The cache as a TUF store for a load: reads bounded regular files, writes nothing.
#[derive(Clone, Debug)]
struct ReadOnlyStore {
    dir: PathBuf,
    max: u64,
}

impl MetadataStore for ReadOnlyStore {
    fn load(&self, name: &str) -> sigstore_tuf::Result<Option<Vec<u8>>> {
        let rel = Path::new(name);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(sigstore_tuf::Error::Malformed(format!(
                "unsafe cache name {name:?}"
            )));
        }
        let path = self.dir.join(rel);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        read_bounded(&path, self.max)
            .map(Some)
            .map_err(|e| sigstore_tuf::Error::Malformed(format!("{}: {e}", path.display())))
    }

    fn store(&self, _name: &str, _bytes: &[u8]) -> sigstore_tuf::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_staging_copies_go_the_current_and_fresh_ones_stay() {
        let parent = tempfile::tempdir().unwrap();
        let p = parent.path();
        let age = |path: &Path, secs: u64| {
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
            std::fs::File::open(path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        };
        for dir in [
            "repo.current",
            "repo.killed",
            "repo.running",
            "other.killed",
        ] {
            std::fs::create_dir(p.join(dir)).unwrap();
            std::fs::write(p.join(dir).join("root.json"), b"{}").unwrap();
        }
        std::fs::write(p.join("repo.killed.link"), b"").unwrap();
        std::os::unix::fs::symlink("repo.current", p.join("repo")).unwrap();
        for old in [
            "repo.current",
            "repo.killed",
            "other.killed",
            "repo.killed.link",
        ] {
            age(&p.join(old), 2 * STALE_STAGING.as_secs());
        }
        remove_stale_staging(p, "repo", &p.join("repo"));
        let mut left: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["other.killed", "repo", "repo.current", "repo.running"]
        );
        assert!(p.join("repo/root.json").exists());
    }

    #[test]
    fn no_cache_means_the_embedded_root_and_no_io() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TrustCache::new(dir.path());
        let current = current(Some(&cache)).unwrap();
        assert!(!current.from_cache);
        assert!(current.cached.is_none());
        assert!(current.root.source().contains("embedded"));
        // Loading created nothing.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(!current_root_is_cached(None));
    }

    fn current_root_is_cached(cache: Option<&TrustCache>) -> bool {
        current(cache).unwrap().from_cache
    }

    #[test]
    fn a_cache_that_does_not_verify_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TrustCache::new(dir.path());
        std::fs::create_dir_all(cache.dir()).unwrap();
        // A state naming the public-good repository with no metadata behind it.
        std::fs::write(
            cache.dir().join("state.json"),
            br#"{"tufUrl":"https://tuf-repo-cdn.sigstore.dev","fetchedAt":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let err = current(Some(&cache)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Integrity);
        let msg = err.to_string();
        assert!(msg.contains(&cache.dir().display().to_string()), "{msg}");
        // Garbage state.
        std::fs::write(cache.dir().join("state.json"), b"not json").unwrap();
        let msg = current(Some(&cache)).unwrap_err().to_string();
        assert!(msg.contains("state.json"), "{msg}");
    }

    #[test]
    fn the_built_in_public_good_tuf_root_is_an_anchor() {
        let store = sigstore_tuf::MemoryStore::new();
        let updater = Updater::new(
            StoreRepository::new(store),
            SigstoreInstance::PublicGood.tuf_root(),
        )
        .unwrap();
        assert!(updater.trusted().root().version >= 1);
        assert_eq!(public_good_tuf_url(), "https://tuf-repo-cdn.sigstore.dev");
    }

    #[test]
    fn describes_each_refusal() {
        use sigstore_tuf::Error as E;
        let rollback = E::Rollback {
            role: "targets".into(),
            trusted: 3,
            new: 2,
        };
        assert!(describe(&rollback).starts_with("rollback refused: targets"));
        let expired = E::Expired {
            role: "timestamp".into(),
            expires: "2020-01-01T00:00:00Z".parse().unwrap(),
        };
        assert_eq!(
            describe(&expired),
            "timestamp metadata expired at 2020-01-01T00:00:00Z"
        );
        let sig = E::ThresholdNotMet {
            role: "snapshot".into(),
            found: 0,
            threshold: 1,
        };
        assert!(describe(&sig).starts_with("bad signature: snapshot"));
        let hash = E::IntegrityMismatch("trusted_root.json: sha256 mismatch".into());
        assert!(describe(&hash).contains("wrong length or hash: trusted_root.json"));
        assert_eq!(
            tuf_error("u", E::transport("down")).kind(),
            ErrorKind::Remote
        );
        assert_eq!(tuf_error("u", hash).kind(), ErrorKind::Integrity);
        let long = E::transport("http://x/targets/t.json: content-length 9 exceeds max 4");
        let long = tuf_error("u", long);
        assert_eq!(long.kind(), ErrorKind::Integrity);
        assert!(long.to_string().contains("wrong length or hash"), "{long}");
    }

    #[test]
    fn refuses_bad_urls_and_root_for_the_public_good_repository() {
        for bad in ["ftp://x/", "not a url", "file:///etc"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let cache = TrustCache::new(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt
            .block_on(cache.update(&UpdateOptions {
                tuf_url: None,
                root: Some(dir.path().join("root.json")),
                timeout: Duration::from_secs(1),
            }))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Input);
        assert!(err.to_string().contains("--root"), "{err}");
        // A custom repository without --root and without an earlier update: nothing to start from.
        let err = rt
            .block_on(cache.update(&UpdateOptions {
                tuf_url: Some("http://127.0.0.1:1/".into()),
                root: None,
                timeout: Duration::from_secs(1),
            }))
            .unwrap_err();
        assert!(err.to_string().contains("give --root"), "{err}");
    }
}
