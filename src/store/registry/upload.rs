//! Blob upload: `POST` an upload session, send the source in `PATCH`es of at most the upload
//! chunk (one `PATCH` for a blob that fits) while hashing it, then `PUT <location>?digest=` with
//! an empty body.
//!
//! Resume: when the store remembers sessions ([`crate::store::StoreOptions::upload_sessions`])
//! and the source can be recognised across runs ([`BlobSource::resume_key`]), the session's
//! latest `Location` and offset are written down after the `POST` and after every chunk the
//! registry took. A later attempt (the retry of this run, or the next run) first asks the
//! registry for that session's status (`GET`, its `Range: 0-<last>`), hashes the source up to
//! there again, and sends only the rest. A session the registry no longer has (404), refuses
//! (distribution cancels one whose state does not match what it holds, e.g. after a chunk that
//! was cut off), or describes inconsistently (no `Range`, one past the blob) is dropped and the
//! upload starts again; so is one whose commit is refused (the registry checks the digest of
//! the whole blob, which we computed from the source).
//!
//! Nothing here waits without a bound: the POST and the status GET answer within `--timeout`;
//! a PATCH fails when the registry takes no data for `--timeout`, and, once all is sent, when
//! its answer takes longer than [`super::transport::Transport::commit_wait`]; the final PUT
//! gets the same bound.

use super::body::{Hashing, Stall, Watch};
use super::transport::{header_str, human_secs, resolve_location};
use super::{RegistryStore, DOCKER_CONTENT_DIGEST};
use crate::digest::{Digest, Hasher};
use crate::store::auth::Access;
use crate::store::error::{shown, StoreError};
use crate::store::retry::Failed;
use crate::store::{BlobSource, Result, Store};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, StatusCode};
use std::path::PathBuf;
use tokio::io::AsyncReadExt;
use url::Url;

/// Largest session record read back.
const MAX_SESSION_RECORD: u64 = 64 << 10;

/// An upload session as remembered between attempts and runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct Session {
    /// The registry's latest `Location` for it.
    location: String,
    /// Bytes the registry took.
    offset: u64,
    /// The blob's size.
    size: u64,
}

/// Where sessions are written down: one small JSON file per (registry, repository, source).
struct Sessions<'a> {
    dir: &'a PathBuf,
}

impl Sessions<'_> {
    fn path(&self, key: &str) -> PathBuf {
        self.dir
            .join(format!("{}.json", Digest::of(key.as_bytes()).hex()))
    }

    fn load(&self, key: &str) -> Option<Session> {
        let path = self.path(key);
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || meta.len() > MAX_SESSION_RECORD {
            return None;
        }
        serde_json::from_slice(&std::fs::read(&path).ok()?).ok()
    }

    fn save(&self, key: &str, session: &Session) {
        let path = self.path(key);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(self.dir)?;
            std::io::Write::write_all(&mut tmp, &serde_json::to_vec(session)?)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        if let Err(e) = write() {
            tracing::warn!(
                "cannot remember the upload session in {}: {e}",
                path.display()
            );
        }
    }

    fn forget(&self, key: &str) {
        let _ = std::fs::remove_file(self.path(key));
    }
}

/// `Range: 0-<last>` of an upload status: the bytes the registry holds. `0-0` says 0 or 1 and
/// is not believed; neither is anything past `size`.
fn held_bytes(range: Option<&str>, size: u64) -> Option<u64> {
    let (first, last) = range?.trim().split_once('-')?;
    if first.trim() != "0" {
        return None;
    }
    let last: u64 = last.trim().parse().ok()?;
    let held = last.checked_add(1)?;
    (last > 0 && held <= size).then_some(held)
}

impl RegistryStore {
    /// Where sessions are remembered, when they are.
    fn sessions(&self) -> Option<Sessions<'_>> {
        self.sessions_dir.as_ref().map(|dir| Sessions { dir })
    }

    /// The key of `source`'s session record, when sessions are remembered and the source can
    /// be recognised.
    fn session_key(&self, source: &dyn BlobSource) -> Option<String> {
        self.sessions_dir.as_ref()?;
        Some(format!(
            "{}\n{}\n{}",
            self.base,
            self.repository,
            source.resume_key()?
        ))
    }

    fn remember(&self, key: Option<&str>, location: &Url, offset: u64, size: u64) {
        if let (Some(sessions), Some(key)) = (self.sessions(), key) {
            let session = Session {
                location: location.to_string(),
                offset,
                size,
            };
            sessions.save(key, &session);
        }
    }

    fn forget(&self, key: Option<&str>) {
        if let (Some(sessions), Some(key)) = (self.sessions(), key) {
            sessions.forget(key);
        }
    }

    /// One upload attempt: continue the session remembered for `source`, else POST a new one;
    /// then the chunks, then `PUT ?digest=`.
    pub(super) async fn upload_once(
        &self,
        source: &dyn BlobSource,
    ) -> Result<(Digest, u64), Failed> {
        let key = self.session_key(source);
        if let (Some(sessions), Some(k)) = (self.sessions(), key.as_deref()) {
            if let Some(saved) = sessions.load(k) {
                if let Some(done) = self.continue_upload(source, saved, k).await? {
                    return Ok(done);
                }
            }
        }
        let t = &self.transport;
        let scope = self.scope(Access::Push);
        let scope = scope.as_deref();
        let start_url = self.url("blobs/uploads/")?;
        let upload = format!("upload of {}", source.describe());
        let resp = t
            .request(scope, &upload, || {
                t.http().post(start_url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await?;
        let location = match header_str(resp.headers(), LOCATION.as_str()) {
            Some(l) if !l.is_empty() => resolve_location(&start_url, l)?,
            _ => {
                return Err(StoreError::Http {
                    method: "POST".into(),
                    url: shown(&start_url),
                    status: resp.status().as_u16(),
                    body: ": the registry started an upload session but sent no Location header"
                        .into(),
                }
                .into())
            }
        };
        self.remember(key.as_deref(), &location, 0, source.size());
        self.send_from(source, location, Hasher::new(), key.as_deref())
            .await
    }

    /// Continue the remembered session `saved`: `Ok(None)` when it cannot be (gone, refused,
    /// inconsistent), after forgetting it.
    async fn continue_upload(
        &self,
        source: &dyn BlobSource,
        saved: Session,
        key: &str,
    ) -> Result<Option<(Digest, u64)>, Failed> {
        let t = &self.transport;
        let size = source.size();
        let restart = |why: &str| {
            tracing::info!("{}: {why}; starting its upload again", source.describe());
            self.forget(Some(key));
            Ok(None)
        };
        let Ok(url) = Url::parse(&saved.location) else {
            return restart("the remembered upload session has no usable location");
        };
        if saved.size != size {
            return restart("the remembered upload session was for another size");
        }
        let scope = self.scope(Access::Push);
        let scope = scope.as_deref();
        let resp = match t.send(scope, || t.http().get(url.clone())).await {
            Ok(resp) => resp,
            Err(Failed::Error { error, wait }) if error.is_transient() => {
                return Err(Failed::Error { error, wait })
            }
            Err(f) => {
                let why = format!("its upload session cannot be read ({})", f.into_error());
                return restart(&why);
            }
        };
        if !resp.status().is_success() {
            t.discard(&url, scope).await;
            let why = format!(
                "the registry answered HTTP {} for the status of its upload session",
                resp.status().as_u16()
            );
            return restart(&why);
        }
        let Some(held) = held_bytes(header_str(resp.headers(), RANGE.as_str()), size) else {
            t.discard(&url, scope).await;
            return restart("the status of its upload session gives no usable Range");
        };
        let location = match header_str(resp.headers(), LOCATION.as_str()) {
            Some(l) if !l.is_empty() => resolve_location(&url, l)?,
            _ => url,
        };
        // What the registry holds is hashed again from the source (never taken from it); the
        // registry checks the whole blob's digest when it is committed.
        let mut hasher = Hasher::new();
        let mut reader = source.open().await?.take(held);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader
                .read(&mut buf)
                .await
                .map_err(|e| StoreError::io(format!("read {}", source.describe()), e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        if hasher.len() != held {
            return restart("the file is shorter than what the registry holds of it");
        }
        tracing::info!(
            "{}: continuing its interrupted upload at byte {held} of {size}",
            source.describe()
        );
        self.remember(Some(key), &location, held, size);
        match self.send_from(source, location, hasher, Some(key)).await {
            Ok(done) => Ok(Some(done)),
            // Refused (e.g. the commit's digest check): the next attempt starts afresh.
            Err(Failed::Error { error, .. }) if !error.is_transient() => {
                self.forget(Some(key));
                Err(Failed::Race(error))
            }
            Err(other) => Err(other),
        }
    }

    /// Send the source from `hasher.len()` on to `location`, chunk by chunk, then commit.
    async fn send_from(
        &self,
        source: &dyn BlobSource,
        mut location: Url,
        mut hasher: Hasher,
        key: Option<&str>,
    ) -> Result<(Digest, u64), Failed> {
        let t = &self.transport;
        let size = source.size();
        let chunked = size > self.upload_chunk || !hasher.is_empty();
        let scope = self.scope(Access::Push);
        let scope = scope.as_deref();
        loop {
            let offset = hasher.len();
            let n = (size - offset.min(size)).min(self.upload_chunk);
            let last = offset + n >= size;
            let reader = if offset == 0 {
                source.open().await?
            } else {
                source.open_at(offset).await?
            };
            // The last chunk reads to the end, so that a source longer than it said is noticed.
            let reader: crate::store::BoxReader = if last {
                reader
            } else {
                Box::pin(reader.take(n))
            };
            let (resp, seen) = self
                .patch(source, &location, reader, n, hasher, chunked, key)
                .await?;
            hasher = seen.hasher;
            // The registry's upload state moves with each request: use its latest Location.
            if let Some(l) = header_str(resp.headers(), LOCATION.as_str()).filter(|l| !l.is_empty())
            {
                location = resolve_location(&location, l)?;
            }
            let offset = hasher.len();
            if chunked {
                if let Some(range) = header_str(resp.headers(), RANGE.as_str()) {
                    if held_bytes(Some(range), size) != Some(offset) && offset > 1 {
                        t.discard(&location, scope).await;
                        self.forget(key);
                        return Err(Failed::Race(StoreError::invalid(
                            format!("upload session of {}", source.describe()),
                            format!(
                                "after {offset} bytes the registry says it holds {:?}",
                                t.redact(range)
                            ),
                        )));
                    }
                }
            }
            if offset >= size {
                break;
            }
            self.remember(key, &location, offset, size);
        }
        let digest = hasher.finish();
        if let Some(known) = source.known_digest().filter(|k| *k != digest) {
            t.discard(&location, scope).await;
            self.forget(key);
            return Err(StoreError::DigestMismatch {
                what: source.describe(),
                expected: known,
                actual: digest,
            }
            .into());
        }
        let put_url = with_digest_query(&location, &digest);
        let what = format!("blob {digest} from {}", source.describe());
        // Committing may make the registry read the whole blob again: it gets longer.
        let resp = t
            .request_within(scope, &what, t.commit_wait(size), || {
                t.http()
                    .put(put_url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        self.forget(key);
        if let Some(said) = header_str(resp.headers(), DOCKER_CONTENT_DIGEST) {
            if said != digest.as_str() {
                return Err(StoreError::Other(format!(
                    "{} stored the blob from {} as {}, but its content is {digest}",
                    self.location(),
                    source.describe(),
                    t.redact(said)
                ))
                .into());
            }
        }
        Ok((digest, size))
    }

    /// One streamed, hashed `PATCH` of `n` bytes (after the `hasher.len()` sent before) to
    /// `location`: the answer and what the body saw.
    #[allow(clippy::too_many_arguments)]
    async fn patch(
        &self,
        source: &dyn BlobSource,
        location: &Url,
        reader: crate::store::BoxReader,
        n: u64,
        hasher: Hasher,
        chunked: bool,
        key: Option<&str>,
    ) -> Result<(reqwest::Response, super::body::UploadState), Failed> {
        let t = &self.transport;
        let scope = self.scope(Access::Push);
        let scope = scope.as_deref();
        let upload = format!("upload of {}", source.describe());
        let body = Hashing::new(reader, n, hasher);
        let watch = body.watch();
        let base = watch.base();
        let mut builder = t
            .http()
            .patch(location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, n);
        if chunked && n > 0 {
            builder = builder.header(CONTENT_RANGE, format!("{base}-{}", base + n - 1));
        }
        let (request, sent) = t.authorize(builder.body(reqwest::Body::wrap_stream(body)), scope)?;
        tracing::debug!("PATCH {} ({n} bytes from byte {base})", shown(location));
        let answer = t.commit_wait(n);
        let result = tokio::select! {
            result = t.execute(request) => result,
            stall = watch.stalled(t.idle, answer) => {
                // A remembered session is kept: the next attempt asks where it stands.
                if key.is_none() {
                    t.discard(location, scope).await;
                }
                return Err(match stall {
                    Stall::Sending => StoreError::Network {
                        url: shown(location),
                        reason: format!(
                            "the upload of {} made no progress for {} (see --timeout)",
                            source.describe(),
                            human_secs(t.idle)
                        ),
                    },
                    Stall::Unanswered => t.unanswered(&Method::PATCH, location, answer),
                }
                .into());
            }
        };
        let seen = watch.get();
        let got = Watch::sent(&seen, base);
        let refused = if let Some((kind, msg)) = &seen.source_error {
            Some(StoreError::io(
                format!("read {}", source.describe()),
                std::io::Error::new(*kind, msg.clone()),
            ))
        } else if seen.too_long || (seen.eof && got != n) {
            Some(StoreError::SizeMismatch {
                what: source.describe(),
                expected: source.size(),
                actual: seen.hasher.len(),
            })
        } else {
            None
        };
        if let Some(e) = refused {
            t.discard(location, scope).await;
            self.forget(key);
            return Err(e.into());
        }
        let resp = result?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            // The token expired mid-upload: renew it, then start the upload again.
            return Err(t.renew(location, &resp, scope, sent.as_ref()).await);
        }
        if !resp.status().is_success() {
            return Err(t
                .status_error(&Method::PATCH, location, resp, &upload)
                .await);
        }
        if got != n {
            return Err(StoreError::SizeMismatch {
                what: source.describe(),
                expected: source.size(),
                actual: seen.hasher.len(),
            }
            .into());
        }
        Ok((resp, seen))
    }
}

/// `location` with `digest=<digest>` added to its query (kept: the registry's upload state).
pub(crate) fn with_digest_query(location: &Url, digest: &Digest) -> Url {
    let mut u = location.clone();
    let q = match u.query() {
        Some(q) if !q.is_empty() => format!("{q}&digest={digest}"),
        _ => format!("digest={digest}"),
    };
    u.set_query(Some(&q));
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn resolves_relative_and_absolute_locations() {
        let req = u("http://127.0.0.1:5000/v2/team/m/blobs/uploads/");
        assert_eq!(
            resolve_location(&req, "/v2/team/m/blobs/uploads/abc?_state=x")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5000/v2/team/m/blobs/uploads/abc?_state=x"
        );
        assert_eq!(
            resolve_location(&req, "https://storage.example/up/1")
                .unwrap()
                .as_str(),
            "https://storage.example/up/1"
        );
        assert_eq!(
            resolve_location(&req, "abc").unwrap().as_str(),
            "http://127.0.0.1:5000/v2/team/m/blobs/uploads/abc"
        );
    }

    #[test]
    fn an_upload_status_range_is_believed_only_when_it_makes_sense() {
        assert_eq!(held_bytes(Some("0-99"), 1000), Some(100));
        assert_eq!(held_bytes(Some(" 0-999 "), 1000), Some(1000));
        for bad in [
            None,
            Some("0-0"),
            Some("0-1000"),
            Some("5-99"),
            Some("bytes=0-99"),
            Some("0-"),
            Some("0-18446744073709551615"),
            Some("junk"),
        ] {
            assert_eq!(held_bytes(bad, 1000), None, "{bad:?}");
        }
    }

    #[test]
    fn adds_the_digest_to_the_upload_query() {
        let d = Digest::of(b"x");
        assert_eq!(
            with_digest_query(&u("http://h/v2/m/blobs/uploads/1?_state=a%3Db"), &d).as_str(),
            format!("http://h/v2/m/blobs/uploads/1?_state=a%3Db&digest={d}")
        );
        assert_eq!(
            with_digest_query(&u("http://h/v2/m/blobs/uploads/1"), &d).as_str(),
            format!("http://h/v2/m/blobs/uploads/1?digest={d}")
        );
        assert_eq!(
            with_digest_query(&u("http://h/up?"), &d).as_str(),
            format!("http://h/up?digest={d}")
        );
    }
}
