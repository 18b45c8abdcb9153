//! OCI distribution client: our own HTTP on `reqwest` (rustls).
//!
//! - Scheme: plain http only for loopback hosts or `--plain-http`; https otherwise
//!   (`--insecure` accepts certificates that do not verify).
//! - Blob upload (DESIGN §9): HEAD-skip when the digest is known and the blob exists; else
//!   `POST` an upload session, send the whole source as ONE streamed `PATCH` while hashing it,
//!   then `PUT <location>?digest=<computed>` with an empty body.
//! - Manifests: read with the full `Accept` list, capped at
//!   [`MAX_MANIFEST_SIZE`](crate::media_types::MAX_MANIFEST_SIZE), checked against the digest
//!   they were asked by; written as the exact bytes given.
//! - Transient failures (connection errors, 5xx, 429) are retried with exponential backoff
//!   (honouring `Retry-After`); a blob upload restarts from its source.
//! - Authentication: see [`super::auth`]; referrers: see [`super::referrers`].

use super::auth::{self, Access, Authenticator};
use super::error::{error_chain, shown, snippet};
use super::*;
use crate::media_types as mt;
use crate::reference::RegistryRef;
use futures::{Stream, TryStreamExt};
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, LINK, LOCATION,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::io::{ReaderStream, StreamReader};
use url::Url;

/// Attempts when the options leave it at 0.
pub const DEFAULT_ATTEMPTS: u32 = 4;
/// See [`StoreOptions::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(10);
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);
/// Rounds of 401 → authenticate → resend before giving up.
const AUTH_ROUNDS: u32 = 3;
const UPLOAD_CHUNK: usize = 256 * 1024;
const ERROR_BODY_LIMIT: usize = 8 * 1024;

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
const OCI_SUBJECT: &str = "oci-subject";

/// Referrers API support, learnt once per store.
const API_UNKNOWN: u8 = 0;
const API_YES: u8 = 1;
const API_NO: u8 = 2;

/// A store in one repository of an OCI distribution registry.
pub struct RegistryStore {
    http: reqwest::Client,
    /// `scheme://api-host/`
    base: Url,
    /// Registry as the user wrote it (messages, credentials).
    registry: String,
    repository: String,
    auth: Authenticator,
    max_attempts: u32,
    backoff_base: Duration,
    /// Longest silence accepted while reading (see [`StoreOptions::idle_timeout`]).
    idle_timeout: Duration,
    referrers_api: AtomicU8,
    /// Serializes this store's own read-modify-write of referrers fallback tags.
    pub(crate) fallback_lock: tokio::sync::Mutex<()>,
}

/// One failed attempt: the error, and how long the server asked us to wait.
pub(crate) struct Attempt {
    pub error: StoreError,
    retry_after: Option<Duration>,
    /// The credentials were refreshed mid-request (a streamed body cannot be resent): start
    /// the operation again without counting an attempt.
    reauth: bool,
    /// A registry-side race that clears by itself: retried like a transient error.
    race: bool,
}

impl From<StoreError> for Attempt {
    fn from(error: StoreError) -> Self {
        Attempt {
            error,
            retry_after: None,
            reauth: false,
            race: false,
        }
    }
}

/// A manifest as fetched, with the registry's `ETag` (for conditional writes).
pub(crate) struct Fetched {
    pub raw: RawManifest,
    pub etag: Option<String>,
}

/// A body stream that fails (`TimedOut`, so the read is retried) when the registry sends
/// nothing for `idle` while we wait for it. Only waiting counts: a consumer that takes long to
/// come back for the next chunk (a slow disk) does not make the registry late.
struct IdleLimited<S> {
    inner: S,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The timer runs for the current wait (armed when a poll finds nothing ready).
    waiting: bool,
    message: String,
    done: bool,
}

impl<S> IdleLimited<S> {
    fn new(inner: S, idle: Duration, message: String) -> Self {
        IdleLimited {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            message,
            done: false,
        }
    }
}

impl<S> futures::Stream for IdleLimited<S>
where
    S: futures::Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            this.waiting = false;
            this.done = item.is_none();
            return Poll::Ready(item);
        }
        if !this.waiting {
            this.waiting = true;
            let deadline = tokio::time::Instant::now() + this.idle;
            this.timer.as_mut().reset(deadline);
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.done = true;
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    this.message.clone(),
                ))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The network error for a body that stopped arriving.
fn stalled(url: &Url, idle: Duration) -> StoreError {
    StoreError::Network {
        url: shown(url),
        reason: format!(
            "no data for {} while reading the response (see --timeout)",
            human_secs(idle)
        ),
    }
}

fn human_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn network(url: &Url, e: &reqwest::Error) -> StoreError {
    StoreError::Network {
        url: shown(url),
        reason: error_chain(e),
    }
}

/// Resolve an upload `Location` (absolute, or relative to the request URL).
pub(crate) fn resolve_location(request_url: &Url, location: &str) -> Result<Url> {
    request_url.join(location.trim()).map_err(|e| {
        StoreError::invalid(
            format!("upload location {location:?} from {}", shown(request_url)),
            e.to_string(),
        )
    })
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

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let value = value.to_str().ok()?;
        for part in value.split(',') {
            let (target, params) = match part.split_once(';') {
                Some(x) => x,
                None => continue,
            };
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                let t = target.trim();
                if let Some(inner) = t.strip_prefix('<').and_then(|t| t.strip_suffix('>')) {
                    return Some(inner.to_string());
                }
            }
        }
    }
    None
}

/// `Retry-After`: seconds or an HTTP date, capped.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
        (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(d.min(RETRY_AFTER_CAP))
}

/// `base · 2^(n-1)`, capped, plus up to 25 % jitter.
fn backoff(base: Duration, attempt: u32) -> Duration {
    use rand::Rng;
    let exp = base
        .saturating_mul(1u32 << (attempt - 1).min(16))
        .min(BACKOFF_CAP);
    let jitter = rand::thread_rng().gen_range(0..=exp.as_millis() as u64 / 4);
    exp + Duration::from_millis(jitter)
}

/// The error after the last attempt: the same error, saying how many attempts were made.
fn gave_up(error: StoreError, attempts: u32) -> StoreError {
    let note = format!(" (gave up after {attempts} attempts)");
    match error {
        StoreError::Network { url, reason } => StoreError::Network {
            url,
            reason: reason + &note,
        },
        StoreError::Http {
            method,
            url,
            status,
            body,
        } => StoreError::Http {
            method,
            url,
            status,
            body: body + &note,
        },
        StoreError::Io { what, source } => StoreError::Io {
            what: what + &note,
            source,
        },
        other => StoreError::Other(format!("{other}{note}")),
    }
}

/// `"CODE: message"` from an OCI error body, else a snippet of the body.
fn error_detail(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<OciError>,
    }
    #[derive(serde::Deserialize)]
    struct OciError {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_str::<Errors>(body) {
        let parts: Vec<String> = e
            .errors
            .iter()
            .map(|e| match (e.code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{}: {}", e.code, e.message),
                (false, true) => e.code.clone(),
                _ => e.message.clone(),
            })
            .collect();
        if !parts.is_empty() {
            return snippet(&parts.join("; "));
        }
    }
    snippet(body)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The media type a manifest response declares: `Content-Type` unless generic, else the
/// document's own `mediaType`, else OCI image manifest.
fn manifest_media_type(content_type: Option<&str>, bytes: &[u8]) -> String {
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
    if let Some(ct) = ct {
        return ct;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes)
        .ok()
        .and_then(|p| p.media_type)
        .unwrap_or_else(|| mt::OCI_MANIFEST.to_string())
}

struct UploadState {
    hasher: crate::digest::Hasher,
    eof: bool,
    too_long: bool,
    source_error: Option<(std::io::ErrorKind, String)>,
    /// When the body last moved (or the upload started).
    moved_at: std::time::Instant,
}

impl UploadState {
    fn new() -> Self {
        UploadState {
            hasher: Default::default(),
            eof: false,
            too_long: false,
            source_error: None,
            moved_at: std::time::Instant::now(),
        }
    }
}

/// Returns when the upload body has not moved for `idle` (the registry stopped taking data).
/// Once the whole body is sent it never returns: a registry may take long to answer then.
async fn upload_stalled(state: &Mutex<UploadState>, size: u64, idle: Duration) {
    let tick = (idle / 4).min(Duration::from_secs(1));
    loop {
        tokio::time::sleep(tick).await;
        let (sent_all, quiet_for) = {
            let st = state.lock().unwrap_or_else(|p| p.into_inner());
            (st.eof || st.hasher.len() >= size, st.moved_at.elapsed())
        };
        if sent_all {
            return futures::future::pending().await;
        }
        if quiet_for >= idle {
            return;
        }
    }
}

/// The source's bytes as a body stream, hashed as they pass; fails the request as soon as the
/// source turns out shorter or longer than it said.
struct Hashing {
    inner: ReaderStream<BoxReader>,
    state: Arc<Mutex<UploadState>>,
    size: u64,
    done: bool,
}

impl Stream for Hashing {
    type Item = std::io::Result<Bytes>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut this.inner).poll_next(cx);
        let mut st = this.state.lock().unwrap_or_else(|p| p.into_inner());
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                st.hasher.update(&chunk);
                st.moved_at = std::time::Instant::now();
                if st.hasher.len() > this.size {
                    st.too_long = true;
                    this.done = true;
                    return Poll::Ready(Some(Err(std::io::Error::other(format!(
                        "source is longer than its declared {} bytes",
                        this.size
                    )))));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                st.source_error = Some((e.kind(), e.to_string()));
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                st.eof = true;
                this.done = true;
                if st.hasher.len() != this.size {
                    return Poll::Ready(Some(Err(std::io::Error::other(format!(
                        "source ended after {} of its declared {} bytes",
                        st.hasher.len(),
                        this.size
                    )))));
                }
                Poll::Ready(None)
            }
        }
    }
}

impl RegistryStore {
    pub fn new(r: &RegistryRef, options: &StoreOptions) -> Result<Self> {
        Self::build(
            &r.registry,
            r.api_host(),
            r.is_loopback(),
            &r.repository,
            options,
        )
    }

    fn build(
        registry: &str,
        api_host: &str,
        loopback: bool,
        repository: &str,
        options: &StoreOptions,
    ) -> Result<Self> {
        let plain = loopback || options.plain_http;
        let scheme = if plain { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{api_host}/")).map_err(|e| {
            StoreError::invalid(format!("registry host {api_host:?}"), e.to_string())
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("oci-model/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(options.insecure)
            .connect_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| {
                StoreError::Other(format!(
                    "cannot set up the HTTP client: {}",
                    error_chain(&e)
                ))
            })?;
        Ok(RegistryStore {
            http,
            base,
            registry: registry.to_string(),
            repository: repository.to_string(),
            auth: Authenticator::new(registry, options.credentials.clone(), plain),
            max_attempts: if options.max_attempts == 0 {
                DEFAULT_ATTEMPTS
            } else {
                options.max_attempts
            },
            backoff_base: BACKOFF_BASE,
            idle_timeout: options.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            referrers_api: AtomicU8::new(API_UNKNOWN),
            fallback_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Shorter waits between attempts (tests).
    pub fn with_backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// Authenticate as the challenges to a request for `url` ask (a token request must not
    /// stay silent longer than the idle timeout either).
    async fn answer_challenge(
        &self,
        url: &Url,
        challenges: &[auth::Challenge],
        scope: Option<&str>,
        sent: Option<&reqwest::header::HeaderValue>,
    ) -> Result<()> {
        tokio::time::timeout(
            self.idle_timeout,
            self.auth.on_challenge(&self.http, challenges, scope, sent),
        )
        .await
        .map_err(|_| self.silent(url, "getting an access token"))?
    }

    /// The network error for a registry that went quiet while `doing` `url`.
    fn silent(&self, url: &Url, doing: &str) -> StoreError {
        StoreError::Network {
            url: shown(url),
            reason: format!(
                "no answer for {} while {doing} (see --timeout)",
                human_secs(self.idle_timeout)
            ),
        }
    }

    /// Check that the registry accepts `options.credentials` (`GET /v2/`, with token exchange).
    pub async fn check_login(registry: &str, options: &StoreOptions) -> Result<()> {
        let r = RegistryRef {
            registry: registry.to_string(),
            repository: String::new(),
            tag: None,
            digest: None,
        };
        let store = Self::build(&r.registry, r.api_host(), r.is_loopback(), "", options)?;
        let url = store
            .base
            .join("v2/")
            .map_err(|e| StoreError::invalid("registry URL", e.to_string()))?;
        let url = &url;
        let store = &store;
        store
            .retrying(&format!("log in to {registry}"), move || async move {
                let resp = store
                    .send(Access::Ping, || store.http.get(url.clone()))
                    .await?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(store
                        .status_error(&Method::GET, url, resp, &format!("registry {registry}"))
                        .await)
                }
            })
            .await
    }

    fn url(&self, tail: &str) -> Result<Url> {
        self.base
            .join(&format!("v2/{}/{tail}", self.repository))
            .map_err(|e| StoreError::invalid(format!("URL for {tail}"), e.to_string()))
    }

    fn scope(&self, access: Access) -> Option<String> {
        auth::scope_for(&self.repository, access)
    }

    /// One HTTP exchange, answering authentication challenges (the request is rebuilt by
    /// `make` for each round). Any status but an unresolved 401 is returned to the caller.
    async fn send(
        &self,
        access: Access,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Attempt> {
        let scope = self.scope(access);
        let mut round = 0;
        loop {
            let mut builder = make();
            let sent = self.auth.authorization(scope.as_deref());
            if let Some(h) = &sent {
                builder = builder.header(AUTHORIZATION, h.clone());
            }
            let request = builder.build().map_err(|e| {
                StoreError::Other(format!("cannot build request: {}", error_chain(&e)))
            })?;
            let (method, url) = (request.method().clone(), request.url().clone());
            tracing::debug!("{method} {}", shown(&url));
            // Reads must answer within the idle timeout; requests carrying a body may take as
            // long as the upload does.
            let reads = method == Method::GET || method == Method::HEAD;
            let resp = if reads {
                tokio::time::timeout(self.idle_timeout, self.http.execute(request))
                    .await
                    .map_err(|_| self.silent(&url, "waiting for the response"))?
            } else {
                self.http.execute(request).await
            }
            .map_err(|e| network(&url, &e))?;
            let challenges = challenges(resp.headers());
            let status = resp.status();
            let insufficient = challenges.iter().any(|c| c.is_insufficient_scope());
            if status != StatusCode::UNAUTHORIZED
                && !(status == StatusCode::FORBIDDEN && insufficient)
            {
                return Ok(resp);
            }
            round += 1;
            if round > AUTH_ROUNDS {
                return Err(self
                    .auth
                    .unauthorized(format!(
                        "{method} {} still answered HTTP {} after authenticating",
                        shown(&url),
                        status.as_u16()
                    ))
                    .into());
            }
            self.answer_challenge(&url, &challenges, scope.as_deref(), sent.as_ref())
                .await?;
        }
    }

    /// The error for an unexpected status, with the registry's own explanation.
    async fn status_error(
        &self,
        method: &Method,
        url: &Url,
        mut resp: Response,
        what: &str,
    ) -> Attempt {
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match tokio::time::timeout(self.idle_timeout, resp.chunk()).await {
                Ok(Ok(Some(c))) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        let detail = self
            .auth
            .redact(&error_detail(&String::from_utf8_lossy(&body)));
        let error = match status {
            StatusCode::UNAUTHORIZED => self.auth.unauthorized(format!(
                "{method} {} answered HTTP 401{}",
                shown(url),
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            )),
            StatusCode::FORBIDDEN => StoreError::Denied {
                registry: self.registry.clone(),
                what: what.to_string(),
                reason: if detail.is_empty() {
                    "HTTP 403".into()
                } else {
                    format!("HTTP 403: {detail}")
                },
            },
            StatusCode::NOT_FOUND => StoreError::NotFound {
                what: what.to_string(),
                location: self.location(),
            },
            _ => StoreError::Http {
                method: method.to_string(),
                url: shown(url),
                status: status.as_u16(),
                body: if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                },
            },
        };
        Attempt {
            error,
            retry_after: wait,
            reauth: false,
            race: false,
        }
    }

    /// Run `op` until it succeeds, fails for good, or `max_attempts` transient failures.
    async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let mut attempt = 1;
        let mut reauths = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(a) if a.reauth && reauths < AUTH_ROUNDS => reauths += 1,
                Err(a) if (a.error.is_transient() || a.race) && attempt < self.max_attempts => {
                    let wait = a
                        .retry_after
                        .unwrap_or_else(|| backoff(self.backoff_base, attempt));
                    tracing::warn!(
                        "{what}: attempt {attempt} of {} failed: {}; retrying in {} ms",
                        self.max_attempts,
                        a.error,
                        wait.as_millis()
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(a) if (a.error.is_transient() || a.race) && attempt > 1 => {
                    return Err(gave_up(a.error, attempt))
                }
                Err(a) => return Err(a.error),
            }
        }
    }

    /// GET a manifest (any kind) by tag or digest: size-capped, with its `ETag` (unchecked:
    /// see [`super::checked::check_fetched`]).
    pub(crate) async fn get_manifest(
        &self,
        reference: &Reference,
        access: Access,
    ) -> Result<Fetched> {
        let url = self.url(&format!("manifests/{reference}"))?;
        let what = format!("manifest {reference}");
        let (url, what) = (&url, &what);
        self.retrying(&format!("fetch {what} from {}", self.location()), move || async move {
            let resp = self
                .send(access, || {
                    self.http.get(url.clone()).header(ACCEPT, mt::MANIFEST_ACCEPT)
                })
                .await?;
            if !resp.status().is_success() {
                return Err(self.status_error(&Method::GET, url, resp, what).await);
            }
            let headers = resp.headers().clone();
            let bytes = read_capped(resp, mt::MAX_MANIFEST_SIZE, what, url, self.idle_timeout).await?;
            let digest = Digest::of(&bytes);
            if let Some(hint) = header_str(&headers, DOCKER_CONTENT_DIGEST) {
                if hint != digest.as_str() {
                    tracing::warn!(
                        "{what}: the registry says {hint} but the bytes hash to {digest}; using {digest}"
                    );
                }
            }
            let media_type = manifest_media_type(header_str(&headers, CONTENT_TYPE.as_str()), &bytes);
            Ok(Fetched {
                raw: RawManifest {
                    descriptor: Descriptor::new(media_type, digest, bytes.len() as u64),
                    bytes,
                },
                etag: header_str(&headers, ETAG.as_str()).map(str::to_string),
            })
        })
        .await
    }

    /// PUT manifest bytes at `reference` (tag or digest), optionally `If-Match: etag`.
    /// Returns the response headers (`OCI-Subject`, `Docker-Content-Digest`).
    pub(crate) async fn put_manifest(
        &self,
        manifest: &SizedManifest,
        media_type: &str,
        reference: &Reference,
        if_match: Option<&str>,
    ) -> Result<HeaderMap> {
        let (bytes, digest) = (manifest.bytes(), manifest.digest());
        let url = self.url(&format!("manifests/{reference}"))?;
        let what = format!("manifest {reference}");
        let (url, what) = (&url, &what);
        self.retrying(
            &format!("push {what} to {}", self.location()),
            move || async move {
                let resp = self
                    .send(Access::Push, || {
                        let mut b = self
                            .http
                            .put(url.clone())
                            .header(CONTENT_TYPE, media_type)
                            .body(bytes.clone());
                        if let Some(tag) = if_match {
                            b = b.header("If-Match", tag);
                        }
                        b
                    })
                    .await?;
                if !resp.status().is_success() {
                    let mut failed = self.status_error(&Method::PUT, url, resp, what).await;
                    // distribution 2.8 answers MANIFEST_BLOB_UNKNOWN while a concurrent upload
                    // of the same blob (e.g. the shared empty config of referrers) rewrites its
                    // repository link: the blob is there a moment later.
                    failed.race = matches!(&failed.error,
                        StoreError::Http { status: 400, body, .. } if body.contains("MANIFEST_BLOB_UNKNOWN"));
                    return Err(failed);
                }
                let headers = resp.headers().clone();
                if let Some(said) = header_str(&headers, DOCKER_CONTENT_DIGEST) {
                    if said != digest.as_str() {
                        return Err(StoreError::DigestMismatch {
                            what: format!("{what} as stored by {}", self.location()),
                            expected: digest.clone(),
                            actual: said.parse().map_err(|_| {
                                StoreError::invalid(
                                    format!("Docker-Content-Digest for {what}"),
                                    format!("{said:?} is not a sha256 digest"),
                                )
                            })?,
                        }
                        .into());
                    }
                }
                Ok(headers)
            },
        )
        .await
    }

    /// `GET /v2/<name>/referrers/<digest>`: `Some(index)` when the registry has the API
    /// (following pagination), `None` when it does not.
    pub(crate) async fn referrers_api(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<serde_json::Value>>> {
        if self.referrers_api.load(Ordering::Relaxed) == API_NO {
            return Ok(None);
        }
        let mut url = self.url(&format!("referrers/{subject}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let what = format!("referrers of {subject}");
        let mut entries = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) {
                break;
            }
            let (u, what) = (&url, &what);
            let page = self
                .retrying(
                    &format!("list {what} in {}", self.location()),
                    move || async move {
                        let resp = self
                            .send(Access::Pull, || {
                                self.http.get(u.clone()).header(ACCEPT, mt::OCI_INDEX)
                            })
                            .await?;
                        let status = resp.status();
                        if status.is_success() {
                            let headers = resp.headers().clone();
                            let bytes = read_capped(
                                resp,
                                mt::MAX_MANIFEST_SIZE,
                                what,
                                u,
                                self.idle_timeout,
                            )
                            .await?;
                            return Ok(Some((headers, bytes)));
                        }
                        if matches!(status.as_u16(), 400 | 404 | 405 | 406 | 501) {
                            return Ok(None);
                        }
                        Err(self.status_error(&Method::GET, u, resp, what).await)
                    },
                )
                .await?;
            let Some((headers, bytes)) = page else {
                self.referrers_api.store(API_NO, Ordering::Relaxed);
                return Ok(None);
            };
            let index: serde_json::Value = match serde_json::from_slice(&bytes) {
                Ok(v @ serde_json::Value::Object(_)) => v,
                _ => {
                    tracing::debug!("{what}: the answer is not an image index: no referrers API");
                    self.referrers_api.store(API_NO, Ordering::Relaxed);
                    return Ok(None);
                }
            };
            self.referrers_api.store(API_YES, Ordering::Relaxed);
            if let Some(list) = index.get("manifests").and_then(|m| m.as_array()) {
                entries.extend(list.iter().cloned());
            }
            next = match next_link(&headers) {
                Some(l) => Some(resolve_location(&url, &l)?),
                None => None,
            };
        }
        Ok(Some(entries))
    }

    pub(crate) fn referrers_api_known(&self) -> Option<bool> {
        match self.referrers_api.load(Ordering::Relaxed) {
            API_YES => Some(true),
            API_NO => Some(false),
            _ => None,
        }
    }

    pub(crate) fn mark_referrers_api(&self, supported: bool) {
        self.referrers_api
            .store(if supported { API_YES } else { API_NO }, Ordering::Relaxed);
    }

    /// HEAD a blob: its size when present.
    async fn head_blob(&self, digest: &Digest, access: Access) -> Result<Option<Option<u64>>> {
        let url = self.url(&format!("blobs/{digest}"))?;
        let what = format!("blob {digest}");
        let (url, what) = (&url, &what);
        self.retrying(
            &format!("check {what} in {}", self.location()),
            move || async move {
                let resp = self.send(access, || self.http.head(url.clone())).await?;
                match resp.status() {
                    s if s.is_success() => Ok(Some(
                        header_str(resp.headers(), CONTENT_LENGTH.as_str())
                            .and_then(|v| v.parse().ok()),
                    )),
                    StatusCode::NOT_FOUND => Ok(None),
                    _ => Err(self.status_error(&Method::HEAD, url, resp, what).await),
                }
            },
        )
        .await
    }

    /// One upload attempt: POST a session, ONE streamed PATCH while hashing, PUT ?digest=.
    async fn upload_once(&self, source: &dyn BlobSource) -> Result<(Digest, u64), Attempt> {
        let size = source.size();
        let start_url = self.url("blobs/uploads/")?;
        let resp = self
            .send(Access::Push, || {
                self.http.post(start_url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await?;
        if !resp.status().is_success() {
            let what = format!("upload of {}", source.describe());
            return Err(self
                .status_error(&Method::POST, &start_url, resp, &what)
                .await);
        }
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
        let reader = source.open().await?;
        let state = Arc::new(Mutex::new(UploadState::new()));
        let body = reqwest::Body::wrap_stream(Hashing {
            inner: ReaderStream::with_capacity(reader, UPLOAD_CHUNK),
            state: state.clone(),
            size,
            done: false,
        });
        let scope = self.scope(Access::Push);
        let sent = self.auth.authorization(scope.as_deref());
        let mut builder = self
            .http
            .patch(location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(body);
        if let Some(h) = &sent {
            builder = builder.header(AUTHORIZATION, h.clone());
        }
        tracing::debug!("PATCH {} ({size} bytes)", shown(&location));
        let result = tokio::select! {
            result = builder.send() => result,
            () = upload_stalled(&state, size, self.idle_timeout) => {
                self.cancel_upload(&location).await;
                return Err(StoreError::Network {
                    url: shown(&location),
                    reason: format!(
                        "the upload of {} made no progress for {} (see --timeout)",
                        source.describe(),
                        human_secs(self.idle_timeout)
                    ),
                }
                .into());
            }
        };
        let (hashed, source_error, too_long, eof) = {
            let st = state.lock().unwrap_or_else(|p| p.into_inner());
            (
                st.hasher.clone(),
                st.source_error.clone(),
                st.too_long,
                st.eof,
            )
        };
        if let Some((kind, msg)) = source_error {
            self.cancel_upload(&location).await;
            return Err(StoreError::io(
                format!("read {}", source.describe()),
                std::io::Error::new(kind, msg),
            )
            .into());
        }
        if too_long || (eof && hashed.len() != size) {
            self.cancel_upload(&location).await;
            return Err(StoreError::SizeMismatch {
                what: source.describe(),
                expected: size,
                actual: hashed.len(),
            }
            .into());
        }
        let resp = result.map_err(|e| network(&location, &e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            // The token expired mid-upload: renew it, then start the upload again.
            let challenges = challenges(resp.headers());
            self.answer_challenge(&location, &challenges, scope.as_deref(), sent.as_ref())
                .await?;
            return Err(Attempt {
                error: self
                    .auth
                    .unauthorized("upload interrupted by re-authentication".into()),
                retry_after: None,
                reauth: true,
                race: false,
            });
        }
        if !resp.status().is_success() {
            let what = format!("upload of {}", source.describe());
            return Err(self
                .status_error(&Method::PATCH, &location, resp, &what)
                .await);
        }
        if hashed.len() != size {
            return Err(StoreError::SizeMismatch {
                what: source.describe(),
                expected: size,
                actual: hashed.len(),
            }
            .into());
        }
        let digest = hashed.finish();
        if let Some(known) = source.known_digest() {
            if known != digest {
                self.cancel_upload(&location).await;
                return Err(StoreError::DigestMismatch {
                    what: source.describe(),
                    expected: known,
                    actual: digest,
                }
                .into());
            }
        }
        // The registry's upload state moves with each request: use its latest Location.
        let location = match header_str(resp.headers(), LOCATION.as_str()) {
            Some(l) if !l.is_empty() => resolve_location(&location, l)?,
            _ => location,
        };

        let put_url = with_digest_query(&location, &digest);
        let resp = self
            .send(Access::Push, || {
                self.http
                    .put(put_url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, 0)
            })
            .await?;
        if !resp.status().is_success() {
            let what = format!("blob {digest} from {}", source.describe());
            return Err(self.status_error(&Method::PUT, &put_url, resp, &what).await);
        }
        if let Some(said) = header_str(resp.headers(), DOCKER_CONTENT_DIGEST) {
            if said != digest.as_str() {
                return Err(StoreError::Other(format!(
                    "{} stored the blob from {} as {said}, but its content is {digest}",
                    self.location(),
                    source.describe()
                ))
                .into());
            }
        }
        Ok((digest, size))
    }

    /// Best-effort: drop an upload session we will not finish.
    async fn cancel_upload(&self, location: &Url) {
        let mut b = self.http.delete(location.clone());
        if let Some(h) = self.auth.authorization(self.scope(Access::Push).as_deref()) {
            b = b.header(AUTHORIZATION, h);
        }
        // Best effort, and never a wait on a registry that stopped answering.
        let _ = tokio::time::timeout(self.idle_timeout, b.send()).await;
    }
}

fn challenges(headers: &HeaderMap) -> Vec<auth::Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(auth::parse_www_authenticate)
        .collect()
}

/// Read a whole (small) response body, refusing more than `limit` bytes (checked against
/// `Content-Length` first, then while reading).
async fn read_capped(
    mut resp: Response,
    limit: u64,
    what: &str,
    url: &Url,
    idle: Duration,
) -> Result<Bytes, Attempt> {
    let declared =
        header_str(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared {
        if len > limit {
            return Err(StoreError::TooLarge {
                what: what.to_string(),
                size: len,
                limit,
            }
            .into());
        }
    }
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
    loop {
        let chunk = match tokio::time::timeout(idle, resp.chunk()).await {
            Err(_) => return Err(stalled(url, idle).into()),
            Ok(next) => match next.map_err(|e| network(url, &e))? {
                Some(chunk) => chunk,
                None => break,
            },
        };
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(StoreError::TooLarge {
                what: what.to_string(),
                size: (buf.len() + chunk.len()) as u64,
                limit,
            }
            .into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

#[async_trait]
impl Store for RegistryStore {
    fn location(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    async fn resolve_reference(&self, reference: &Reference) -> Result<Descriptor> {
        let by_digest = reference.digest();
        let url = self.url(&format!("manifests/{reference}"))?;
        let what = format!("manifest {reference}");
        let (u, w) = (&url, &what);
        let head = self
            .retrying(
                &format!("resolve {what} in {}", self.location()),
                move || async move {
                    let resp = self
                        .send(Access::Pull, || {
                            self.http
                                .head(u.clone())
                                .header(ACCEPT, mt::MANIFEST_ACCEPT)
                        })
                        .await?;
                    if !resp.status().is_success() {
                        return Err(self.status_error(&Method::HEAD, u, resp, w).await);
                    }
                    Ok(resp.headers().clone())
                },
            )
            .await?;
        let digest =
            header_str(&head, DOCKER_CONTENT_DIGEST).and_then(|d| d.parse::<Digest>().ok());
        let size = header_str(&head, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
        let media_type = header_str(&head, CONTENT_TYPE.as_str())
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain");
        match (digest, size, media_type) {
            (Some(d), Some(size), Some(media_type)) if by_digest.is_none_or(|want| *want == d) => {
                Ok(Descriptor::new(media_type, d, size))
            }
            // No usable digest (or one that disagrees): read the manifest and hash it.
            _ => {
                let raw = self.read_manifest(reference).await?;
                Ok(checked::check_fetched(reference, raw, &self.location())?.descriptor)
            }
        }
    }

    async fn read_manifest(&self, reference: &Reference) -> Result<RawManifest> {
        Ok(self.get_manifest(reference, Access::Pull).await?.raw)
    }

    async fn write_manifest(
        &self,
        manifest: &SizedManifest,
        media_type: &str,
        tag: Option<&Tag>,
    ) -> Result<()> {
        let reference = match tag {
            Some(t) => Reference::Tag(t.clone()),
            None => Reference::Digest(manifest.digest().clone()),
        };
        self.put_manifest(manifest, media_type, &reference, None)
            .await?;
        Ok(())
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.head_blob(digest, Access::Pull).await?.is_some())
    }

    async fn fetch_blob_raw(&self, descriptor: &Descriptor) -> Result<BoxReader> {
        let chunks = self.fetch_blob_chunks(descriptor).await?;
        Ok(Box::pin(StreamReader::new(chunks)))
    }

    async fn fetch_blob_chunks(&self, descriptor: &Descriptor) -> Result<BoxChunks> {
        let digest = &descriptor.digest;
        let url = self.url(&format!("blobs/{digest}"))?;
        let what = format!("blob {digest}");
        let (u, w) = (&url, &what);
        let resp = self
            .retrying(
                &format!("fetch {what} from {}", self.location()),
                move || async move {
                    let resp = self.send(Access::Pull, || self.http.get(u.clone())).await?;
                    if !resp.status().is_success() {
                        return Err(self.status_error(&Method::GET, u, resp, w).await);
                    }
                    Ok(resp)
                },
            )
            .await?;
        let shown_url = shown(&url);
        let stream = resp.bytes_stream().map_err(move |e| {
            std::io::Error::other(format!("reading {shown_url}: {}", error_chain(&e)))
        });
        Ok(Box::pin(IdleLimited::new(
            stream,
            self.idle_timeout,
            stalled(&url, self.idle_timeout).to_string(),
        )))
    }

    async fn push_blob(&self, source: &dyn BlobSource) -> Result<(Digest, u64)> {
        if let Some(known) = source.known_digest() {
            if let Some(remote_size) = self.head_blob(&known, Access::Push).await? {
                if let Some(rs) = remote_size.filter(|rs| *rs != source.size()) {
                    return Err(StoreError::SizeMismatch {
                        what: format!(
                            "{} (blob {known} in {})",
                            source.describe(),
                            self.location()
                        ),
                        expected: source.size(),
                        actual: rs,
                    });
                }
                tracing::debug!("blob {known} exists in {}: skipped", self.location());
                return Ok((known, source.size()));
            }
        }
        self.retrying(
            &format!("upload {} to {}", source.describe(), self.location()),
            move || self.upload_once(source),
        )
        .await
    }

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        super::referrers::registry_referrers(self, subject, artifact_type).await
    }

    async fn write_referrer(&self, referrer: &Referrer) -> Result<()> {
        super::referrers::registry_push_referrer(self, referrer).await
    }

    fn mount(&self) -> Option<&dyn Mount> {
        Some(self)
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(self.url("tags/list")?);
        let what = format!("tag list of {}", self.location());
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) {
                break;
            }
            let (u, w) = (&url, &what);
            let page = self
                .retrying(
                    &format!("list tags in {}", self.location()),
                    move || async move {
                        let resp = self.send(Access::Pull, || self.http.get(u.clone())).await?;
                        if resp.status() == StatusCode::NOT_FOUND {
                            // Unknown repository: no tags.
                            return Ok(None);
                        }
                        if !resp.status().is_success() {
                            return Err(self.status_error(&Method::GET, u, resp, w).await);
                        }
                        let headers = resp.headers().clone();
                        let bytes =
                            read_capped(resp, mt::MAX_MANIFEST_SIZE, w, u, self.idle_timeout)
                                .await?;
                        Ok(Some((headers, bytes)))
                    },
                )
                .await?;
            let Some((headers, bytes)) = page else { break };
            let list: TagList = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::invalid(&what, e.to_string()))?;
            tags.extend(list.tags.unwrap_or_default());
            next = match next_link(&headers) {
                Some(l) => Some(resolve_location(&url, &l)?),
                None => None,
            };
        }
        Ok(tags)
    }
}

#[async_trait]
impl Mount for RegistryStore {
    fn registry_repository(&self) -> (String, String) {
        (self.base.to_string(), self.repository.clone())
    }

    async fn mount_blob(&self, digest: &Digest, from_repository: &str) -> Result<bool> {
        let mut url = self.url("blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from_repository);
        let resp = match self
            .send(Access::Push, || {
                self.http.post(url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await
        {
            Ok(resp) => resp,
            // Not mountable (e.g. no pull access to the source): upload instead.
            Err(a) => {
                tracing::debug!(
                    "mount of {digest} from {from_repository} failed: {}",
                    a.error
                );
                return Ok(false);
            }
        };
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry opened an upload session instead: close it, upload as usual.
                if let Some(Ok(loc)) =
                    header_str(resp.headers(), LOCATION.as_str()).map(|l| resolve_location(&url, l))
                {
                    let _ = self
                        .send(Access::Push, || self.http.delete(loc.clone()))
                        .await;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }
}

/// Headers a manifest PUT answered with: did the registry index the subject itself?
pub(crate) fn has_oci_subject(headers: &HeaderMap) -> bool {
    headers.contains_key(OCI_SUBJECT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use reqwest::header::HeaderValue;

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

    #[test]
    fn finds_the_next_link() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("</v2/m/tags/list?n=2&last=b>; rel=\"next\""),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/v2/m/tags/list?n=2&last=b"));
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static("<https://x/prev>; rel=\"prev\", <https://x/next>; rel=next"),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://x/next"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_and_backoff() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("100000"));
        assert_eq!(retry_after(&h), Some(RETRY_AFTER_CAP));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let b1 = backoff(BACKOFF_BASE, 1);
        let b3 = backoff(BACKOFF_BASE, 3);
        assert!(
            b1 >= Duration::from_millis(200) && b1 <= Duration::from_millis(250),
            "{b1:?}"
        );
        assert!(
            b3 >= Duration::from_millis(800) && b3 <= Duration::from_millis(1000),
            "{b3:?}"
        );
        assert!(backoff(BACKOFF_BASE, 40) <= BACKOFF_CAP + BACKOFF_CAP / 4);
    }

    #[test]
    fn explains_oci_error_bodies() {
        let body =
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_detail(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(error_detail("404 page not found\n"), "404 page not found");
    }

    #[test]
    fn gives_up_naming_the_attempts_and_the_cause() {
        let e = gave_up(
            StoreError::Http {
                method: "PUT".into(),
                url: "http://h/v2/m/manifests/v1".into(),
                status: 503,
                body: ": busy".into(),
            },
            4,
        );
        let msg = e.to_string();
        assert!(
            msg.contains("HTTP 503") && msg.contains("busy") && msg.contains("4 attempts"),
            "{msg}"
        );
    }

    #[test]
    fn media_type_from_header_or_document() {
        assert_eq!(
            manifest_media_type(
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                b"{}"
            ),
            mt::OCI_INDEX
        );
        assert_eq!(
            manifest_media_type(
                Some("application/json"),
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            mt::DOCKER_MANIFEST_V2
        );
        assert_eq!(manifest_media_type(None, b"{}"), mt::OCI_MANIFEST);
    }

    #[test]
    fn scheme_follows_loopback_and_plain_http() {
        let store = |s: &str, plain: bool| {
            let r = match crate::reference::Target::parse(s).unwrap() {
                crate::reference::Target::Registry(r) => r,
                _ => unreachable!(),
            };
            RegistryStore::new(
                &r,
                &StoreOptions {
                    plain_http: plain,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert_eq!(
            store("127.0.0.1:5000/m", false).base.as_str(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(
            store("localhost/m", false).base.as_str(),
            "http://localhost/"
        );
        assert_eq!(
            store("ghcr.io/o/m", false).base.as_str(),
            "https://ghcr.io/"
        );
        assert_eq!(
            store("reg.internal:5000/m", true).base.as_str(),
            "http://reg.internal:5000/"
        );
        assert_eq!(
            store("docker.io/library/m", false).base.as_str(),
            "https://registry-1.docker.io/"
        );
        assert_eq!(store("ghcr.io/o/m", false).max_attempts, DEFAULT_ATTEMPTS);
    }

    #[tokio::test]
    async fn a_body_times_out_only_while_we_wait_for_it() {
        let idle = Duration::from_millis(50);
        let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<Bytes>>();
        let mut body = IdleLimited::new(rx, idle, "quiet".into());
        tx.unbounded_send(Ok(Bytes::from_static(b"one"))).unwrap();
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"one");
        // A slow consumer: three idle periods pass before it asks again.
        tokio::time::sleep(idle * 3).await;
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            late.unbounded_send(Ok(Bytes::from_static(b"two"))).unwrap();
        });
        assert_eq!(&body.next().await.unwrap().unwrap()[..], b"two");
        // Then the registry goes quiet.
        let started = std::time::Instant::now();
        let err = body.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "quiet");
        assert!(started.elapsed() >= idle, "{:?}", started.elapsed());
        assert!(body.next().await.is_none());
        drop(tx);
    }
}
