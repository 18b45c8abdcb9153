//! Blob upload: `POST` an upload session, send the whole source as ONE streamed `PATCH` while
//! hashing it, then `PUT <location>?digest=<computed>` with an empty body. A failed attempt
//! drops its session; the retry starts again from the source.
//!
//! Nothing here waits without a bound: the POST answers within `--timeout`; the PATCH fails
//! when the registry takes no data for `--timeout`, and, once all is sent, when its answer
//! takes longer than [`super::transport::Transport::commit_wait`]; the final PUT gets the same bound.

use super::body::{Hashing, Stall};
use super::transport::{header_str, human_secs, resolve_location};
use super::{RegistryStore, DOCKER_CONTENT_DIGEST};
use crate::digest::Digest;
use crate::store::auth::Access;
use crate::store::error::{shown, StoreError};
use crate::store::retry::Failed;
use crate::store::{BlobSource, Result, Store};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

impl RegistryStore {
    /// One upload attempt: POST a session, ONE streamed PATCH while hashing, PUT ?digest=.
    pub(super) async fn upload_once(
        &self,
        source: &dyn BlobSource,
    ) -> Result<(Digest, u64), Failed> {
        let t = &self.transport;
        let size = source.size();
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

        // PATCH: the whole source, streamed, hashed as it passes.
        let body = Hashing::new(source.open().await?, size);
        let watch = body.watch();
        let (request, sent) = t.authorize(
            t.http()
                .patch(location.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .body(reqwest::Body::wrap_stream(body)),
            scope,
        )?;
        tracing::debug!("PATCH {} ({size} bytes)", shown(&location));
        let answer = t.commit_wait(size);
        let result = tokio::select! {
            result = t.execute(request) => result,
            stall = watch.stalled(t.idle, answer) => {
                t.discard(&location, scope).await;
                return Err(match stall {
                    Stall::Sending => StoreError::Network {
                        url: shown(&location),
                        reason: format!(
                            "the upload of {} made no progress for {} (see --timeout)",
                            source.describe(),
                            human_secs(t.idle)
                        ),
                    },
                    Stall::Unanswered => t.unanswered(&Method::PATCH, &location, answer),
                }
                .into());
            }
        };
        let seen = watch.get();
        let refused = if let Some((kind, msg)) = seen.source_error {
            Some(StoreError::io(
                format!("read {}", source.describe()),
                std::io::Error::new(kind, msg),
            ))
        } else if seen.too_long || (seen.eof && seen.hasher.len() != size) {
            Some(StoreError::SizeMismatch {
                what: source.describe(),
                expected: size,
                actual: seen.hasher.len(),
            })
        } else {
            None
        };
        if let Some(e) = refused {
            t.discard(&location, scope).await;
            return Err(e.into());
        }
        let resp = result?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            // The token expired mid-upload: renew it, then start the upload again.
            return Err(t.renew(&location, &resp, scope, sent.as_ref()).await);
        }
        if !resp.status().is_success() {
            return Err(t
                .status_error(&Method::PATCH, &location, resp, &upload)
                .await);
        }
        let hashed = seen.hasher;
        if hashed.len() != size {
            return Err(StoreError::SizeMismatch {
                what: source.describe(),
                expected: size,
                actual: hashed.len(),
            }
            .into());
        }
        let digest = hashed.finish();
        if let Some(known) = source.known_digest().filter(|k| *k != digest) {
            t.discard(&location, scope).await;
            return Err(StoreError::DigestMismatch {
                what: source.describe(),
                expected: known,
                actual: digest,
            }
            .into());
        }
        // The registry's upload state moves with each request: use its latest Location.
        let location = match header_str(resp.headers(), LOCATION.as_str()) {
            Some(l) if !l.is_empty() => resolve_location(&location, l)?,
            _ => location,
        };

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
