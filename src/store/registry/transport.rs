//! HTTP to one registry: the one place requests get credentials (the `Authorization` header
//! is attached in [`Transport::authorize`] and nowhere else), authentication rounds on 401,
//! status → [`StoreError`] mapping with the registry's own explanation, capped reads of small
//! bodies, and the idle timeout on everything we wait for.
//!
//! The origin rule: credentials go only to the registry's own origin (scheme, host, port) and
//! to the token realm named by a challenge that origin sent. A request to another origin (an
//! upload `Location` elsewhere, a redirect to blob storage) is sent bare, and a challenge from
//! another origin (a redirect target asking for a token) is refused, never answered. Token
//! requests never follow redirects. Text from the registry enters errors only through
//! [`Authenticator::redact`].
//!
//! Connection and TLS failures are told apart here: nothing listening (on the first request),
//! https to a plain-http registry, plain http to an https registry, an untrusted certificate;
//! none of them is retried, and each message names the flag that fixes it.

use super::body::{IdleLimited, MIN_RATE_SHOWN};
use crate::store::auth::{self, Authenticator};
use crate::store::error::{error_chain, shown, snippet, StoreError};
use crate::store::limits;
use crate::store::retry::{Failed, RetryPolicy};
use crate::store::BoxChunks;
use bytes::Bytes;
use futures::TryStreamExt;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use url::Url;

/// A registry that has a whole blob may take 1 s per this many bytes of it to answer (it may
/// digest or copy it first): see [`Transport::commit_wait`].
pub(super) const COMMIT_RATE: u64 = 1 << 20;

/// Rounds of 401 → authenticate → resend before giving up.
const AUTH_ROUNDS: u32 = 3;

/// See the module documentation.
pub(super) struct Transport {
    http: reqwest::Client,
    /// For token requests: same TLS settings, never follows a redirect.
    token_http: reqwest::Client,
    auth: Authenticator,
    /// The registry's origin: the only one that gets credentials.
    origin: url::Origin,
    /// Some request got an answer (a refused connection after that is transient).
    answered: AtomicBool,
    /// Registry as the user wrote it (messages).
    registry: String,
    /// `registry/repository` (messages).
    location: String,
    /// Longest silence accepted while waiting (see `StoreOptions::idle_timeout`).
    pub idle: Duration,
    pub retry: RetryPolicy,
}

impl Transport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        registry: &str,
        location: String,
        base: &Url,
        auth: Authenticator,
        insecure: bool,
        ca_file: Option<&Path>,
        idle: Duration,
        retry: RetryPolicy,
    ) -> Result<Self, StoreError> {
        let ca = match ca_file {
            Some(path) => Some(read_ca_file(path)?),
            None => None,
        };
        let client = |redirect: reqwest::redirect::Policy| {
            let mut b = reqwest::Client::builder()
                .user_agent(concat!("oci-model/", env!("CARGO_PKG_VERSION")))
                .danger_accept_invalid_certs(insecure)
                .connect_timeout(Duration::from_secs(30))
                .redirect(redirect);
            for cert in ca.iter().flatten() {
                b = b.add_root_certificate(cert.clone());
            }
            b.build().map_err(|e| {
                StoreError::Other(format!(
                    "cannot set up the HTTP client: {}",
                    error_chain(&e)
                ))
            })
        };
        Ok(Transport {
            http: client(reqwest::redirect::Policy::limited(10))?,
            token_http: client(reqwest::redirect::Policy::none())?,
            auth,
            origin: base.origin(),
            answered: AtomicBool::new(false),
            registry: registry.to_string(),
            location,
            idle,
            retry,
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Registry text on its way into a message or a log, without any credential
    /// ([`Authenticator::redact`]).
    pub fn redact(&self, text: &str) -> String {
        self.auth.redact(text)
    }

    /// Build `builder` and attach the credentials known for `scope` when the request goes to
    /// the registry's own origin (else it goes bare); returns the request and what was sent
    /// (to tell a stale token from a fresh one when the registry answers 401).
    pub fn authorize(
        &self,
        builder: RequestBuilder,
        scope: Option<&str>,
    ) -> Result<(reqwest::Request, Option<HeaderValue>), StoreError> {
        let mut request = builder
            .build()
            .map_err(|e| StoreError::Other(format!("cannot build request: {}", error_chain(&e))))?;
        if request.url().origin() != self.origin {
            return Ok((request, None));
        }
        let sent = self.auth.authorization(scope);
        if let Some(h) = &sent {
            request.headers_mut().insert(AUTHORIZATION, h.clone());
        }
        Ok((request, sent))
    }

    /// Execute a request built by [`Transport::authorize`], telling connection and TLS
    /// failures apart (see the module documentation).
    pub async fn execute(&self, request: reqwest::Request) -> Result<Response, StoreError> {
        let url = request.url().clone();
        match self.http.execute(request).await {
            Ok(resp) => {
                self.answered.store(true, Ordering::Relaxed);
                Ok(resp)
            }
            Err(e) => Err(self.connection_error(&url, &e)),
        }
    }

    /// A challenge answered from `url` may be answered only when `url` is our origin.
    fn challenge_from(&self, method: &Method, asked: &Url, url: &Url) -> Result<(), StoreError> {
        if url.origin() == self.origin {
            return Ok(());
        }
        let via = if asked.origin() == self.origin {
            format!(
                "{method} {} was redirected to {}, which",
                shown(asked),
                shown(url)
            )
        } else {
            format!("{method} {}, outside the registry,", shown(url))
        };
        Err(self.auth.unauthorized(format!(
            "{via} asks for credentials; they are only ever sent to {} (and the token service \
             its own challenge names)",
            self.origin.ascii_serialization()
        )))
    }

    /// Authenticate as the challenges to a request for `url` ask (a token request must not
    /// stay silent longer than the idle timeout either).
    async fn answer_challenge(
        &self,
        url: &Url,
        headers: &HeaderMap,
        scope: Option<&str>,
        sent: Option<&HeaderValue>,
    ) -> Result<(), StoreError> {
        let challenges = challenges(headers);
        tokio::time::timeout(
            self.idle,
            self.auth
                .on_challenge(&self.token_http, &challenges, scope, sent),
        )
        .await
        .map_err(|_| self.silent(url, "getting an access token"))?
    }

    /// One HTTP exchange, answering authentication challenges (the request is rebuilt by
    /// `make` for each round). Any status but an unresolved 401 is returned to the caller.
    /// The answer must come within the idle timeout (see [`Transport::send_within`]).
    pub async fn send(
        &self,
        scope: Option<&str>,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Failed> {
        self.send_within(scope, self.idle, make).await
    }

    /// [`Transport::send`] with the answer due within `wait`: every request made here carries
    /// a body that can be made again (small, or empty), so reads and writes alike answer within
    /// a bound; only a commit of a large blob gets more ([`Transport::commit_wait`]).
    pub async fn send_within(
        &self,
        scope: Option<&str>,
        wait: Duration,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Failed> {
        let mut round = 0;
        loop {
            let (request, sent) = self.authorize(make(), scope)?;
            let (method, url) = (request.method().clone(), request.url().clone());
            tracing::debug!("{method} {}", shown(&url));
            let resp = tokio::time::timeout(wait, self.execute(request))
                .await
                .map_err(|_| self.unanswered(&method, &url, wait))??;
            let status = resp.status();
            let insufficient = challenges(resp.headers())
                .iter()
                .any(|c| c.is_insufficient_scope());
            if status != StatusCode::UNAUTHORIZED
                && !(status == StatusCode::FORBIDDEN && insufficient)
            {
                return Ok(resp);
            }
            self.challenge_from(&method, &url, resp.url())?;
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
            self.answer_challenge(&url, resp.headers(), scope, sent.as_ref())
                .await?;
        }
    }

    /// [`Transport::send`], then any status but a success is an error about `what`.
    pub async fn request(
        &self,
        scope: Option<&str>,
        what: &str,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Failed> {
        self.request_within(scope, what, self.idle, make).await
    }

    /// [`Transport::request`] with the answer due within `wait` ([`Transport::send_within`]).
    pub async fn request_within(
        &self,
        scope: Option<&str>,
        what: &str,
        wait: Duration,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Failed> {
        let resp = self.send_within(scope, wait, &make).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let (method, url) = match make().build() {
            Ok(r) => (r.method().clone(), r.url().clone()),
            Err(_) => (Method::GET, resp.url().clone()),
        };
        Err(self.status_error(&method, &url, resp, what).await)
    }

    /// How long a registry may take to answer once a blob of `size` bytes is all sent (the
    /// answer to the upload, its commit): the idle timeout, plus the time to read the blob
    /// once more at [`COMMIT_RATE`] (a registry may digest or move it before answering).
    pub fn commit_wait(&self, size: u64) -> Duration {
        self.idle
            .saturating_add(Duration::from_secs(size / COMMIT_RATE))
    }

    /// A request whose body cannot be made again (a streamed upload) answered 401: renew the
    /// credentials; the operation then starts over.
    pub async fn renew(
        &self,
        url: &Url,
        resp: &Response,
        scope: Option<&str>,
        sent: Option<&HeaderValue>,
    ) -> Failed {
        if let Err(e) = self.challenge_from(&Method::PATCH, url, resp.url()) {
            return e.into();
        }
        match self
            .answer_challenge(url, resp.headers(), scope, sent)
            .await
        {
            Ok(()) => Failed::Renewed(
                self.auth
                    .unauthorized("upload interrupted by re-authentication".into()),
            ),
            Err(e) => e.into(),
        }
    }

    /// Best effort, never waiting on a registry that stopped answering: `DELETE url`.
    pub async fn discard(&self, url: &Url, scope: Option<&str>) {
        if let Ok((request, _)) = self.authorize(self.http.delete(url.clone()), scope) {
            let _ = tokio::time::timeout(self.idle, self.http.execute(request)).await;
        }
    }

    /// The error for an unexpected status, with the registry's own explanation, and the wait
    /// it asked for (`Retry-After`).
    pub async fn status_error(
        &self,
        method: &Method,
        url: &Url,
        resp: Response,
        what: &str,
    ) -> Failed {
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let body = limits::read_error_body(resp, self.idle).await;
        let body = String::from_utf8_lossy(&body);
        if status == StatusCode::BAD_REQUEST
            && url.scheme() == "http"
            && body.contains("HTTP request to an HTTPS server")
        {
            return StoreError::Tls {
                url: shown(url),
                reason: "the registry speaks https, but this request used plain http; drop \
                         --plain-http (or use https://)"
                    .into(),
            }
            .into();
        }
        let detail = self.auth.redact(&error_detail(&body));
        let with_detail = |prefix: &str| match (prefix.is_empty(), detail.is_empty()) {
            (_, true) => prefix.to_string(),
            (true, false) => format!(": {detail}"),
            (false, false) => format!("{prefix}: {detail}"),
        };
        let error = match status {
            StatusCode::UNAUTHORIZED => self.auth.unauthorized(format!(
                "{method} {} answered HTTP 401{}",
                shown(url),
                with_detail("")
            )),
            StatusCode::FORBIDDEN => StoreError::Denied {
                registry: self.registry.clone(),
                what: what.to_string(),
                reason: with_detail("HTTP 403"),
            },
            StatusCode::NOT_FOUND => StoreError::NotFound {
                what: what.to_string(),
                location: self.location.clone(),
            },
            _ => StoreError::Http {
                method: method.to_string(),
                url: shown(url),
                status: status.as_u16(),
                body: with_detail(""),
            },
        };
        Failed::Error { error, wait }
    }

    /// Read a whole (small) response body, refusing more than `limit` bytes (checked against
    /// `Content-Length` first, then while reading).
    pub async fn read_capped(
        &self,
        resp: Response,
        limit: u64,
        what: &str,
    ) -> Result<Bytes, Failed> {
        let url = resp.url().clone();
        Ok(limits::read_capped(resp, limit, self.idle, what, || self.stalled(&url)).await?)
    }

    /// A response body as chunks, failing like a lost connection when it stops arriving.
    pub fn chunks(&self, resp: Response) -> BoxChunks {
        let url = resp.url().clone();
        let shown_url = shown(&url);
        let length = resp.content_length();
        let stream = resp.bytes_stream().map_err(move |e| {
            std::io::Error::other(format!("reading {shown_url}: {}", error_chain(&e)))
        });
        Box::pin(IdleLimited::new(
            stream,
            self.idle,
            self.stalled(&url).to_string(),
            self.too_slow(&url).to_string(),
            length,
        ))
    }

    /// The network error for a registry that went quiet while `doing` `url`.
    pub fn silent(&self, url: &Url, doing: &str) -> StoreError {
        StoreError::Network {
            url: shown(url),
            reason: format!(
                "no answer for {} while {doing} (see --timeout)",
                human_secs(self.idle)
            ),
        }
    }

    /// The network error for a request that got no answer within `wait`.
    pub fn unanswered(&self, method: &Method, url: &Url, wait: Duration) -> StoreError {
        let bound = if wait == self.idle {
            "see --timeout".to_string()
        } else {
            format!(
                "--timeout plus 1 s per {} MiB of the blob",
                COMMIT_RATE >> 20
            )
        };
        StoreError::Network {
            url: shown(url),
            reason: format!(
                "no answer for {} while waiting for the response to {method} ({bound})",
                human_secs(wait)
            ),
        }
    }

    /// The network error for a body that arrives, but below the minimum rate.
    fn too_slow(&self, url: &Url) -> StoreError {
        StoreError::Network {
            url: shown(url),
            reason: format!(
                "the response arrived slower than {MIN_RATE_SHOWN} over {} of waiting (the \
                 minimum rate is measured over each --timeout)",
                human_secs(self.idle)
            ),
        }
    }

    /// The network error for a body that stopped arriving.
    fn stalled(&self, url: &Url) -> StoreError {
        StoreError::Network {
            url: shown(url),
            reason: format!(
                "no data for {} while reading the response (see --timeout)",
                human_secs(self.idle)
            ),
        }
    }
}

pub(super) fn human_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

impl Transport {
    /// The error for a request to `url` that got no HTTP answer: nothing listening (on the
    /// first request: fail fast, one line), a TLS mismatch or untrusted certificate (never
    /// transient), else a network error (transient).
    pub fn connection_error(&self, url: &Url, e: &reqwest::Error) -> StoreError {
        let chain = error_chain(e);
        let addr = match (url.host_str(), url.port_or_known_default()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => self.registry.clone(),
        };
        if let Some(reason) = tls_problem(url, &chain) {
            return StoreError::Tls {
                url: shown(url),
                reason,
            };
        }
        let refused = io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused)
            || chain.contains("Connection refused");
        if refused && e.is_connect() && !self.answered.load(Ordering::Relaxed) {
            let loopback = url.host().is_some_and(|h| match h {
                url::Host::Domain(d) => d == "localhost",
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
            });
            return StoreError::NotListening {
                addr,
                hint: if loopback {
                    "; start one with scripts/registry.sh start or docker compose up".into()
                } else {
                    " (connection refused); check the registry address and port".into()
                },
            };
        }
        StoreError::Network {
            url: shown(url),
            reason: chain,
        }
    }
}

/// The kind of the I/O error behind `e`, if any.
fn io_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = c.source();
    }
    None
}

/// What went wrong agreeing on TLS with `url`, from the error chain (rustls' messages), with
/// the flag that fixes it; `None` when it is not a TLS problem.
fn tls_problem(url: &Url, chain: &str) -> Option<String> {
    if url.scheme() != "https" {
        return None;
    }
    let host = url.host_str().unwrap_or("the registry");
    if chain.contains("InvalidContentType") || chain.contains("corrupt message") {
        return Some(format!(
            "{host} does not speak TLS (it answered https with plain http); use --plain-http \
             for a plain-http registry"
        ));
    }
    // The specific causes first, then any certificate problem.
    let cert = [
        "UnknownIssuer",
        "CaUsedAsEndEntity",
        "NotValidForName",
        "Expired",
        "invalid peer certificate",
        "certificate",
    ]
    .into_iter()
    .find(|p| chain.contains(p))?;
    let detail = match cert {
        "UnknownIssuer" => "it is signed by an unknown authority",
        "CaUsedAsEndEntity" => "it is a self-signed CA certificate used as a server certificate",
        "NotValidForName" => "it is not valid for this host name",
        "Expired" => "it has expired",
        _ => "it does not verify",
    };
    Some(format!(
        "the TLS certificate of {host} is not trusted ({detail}); pass --ca-file PEM to trust \
         the CA that issued it, or --insecure to skip certificate checks"
    ))
}

/// The certificates of a PEM file given with `--ca-file`.
fn read_ca_file(path: &Path) -> Result<Vec<reqwest::Certificate>, StoreError> {
    let what = format!("CA file {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| StoreError::io(format!("read {what}"), e))?;
    let certs = reqwest::Certificate::from_pem_bundle(&bytes).map_err(|e| StoreError::Io {
        what: what.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, error_chain(&e)),
    })?;
    if certs.is_empty() {
        return Err(StoreError::Io {
            what,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "no PEM certificate in it",
            ),
        });
    }
    Ok(certs)
}

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn challenges(headers: &HeaderMap) -> Vec<auth::Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(auth::parse_www_authenticate)
        .collect()
}

/// `Retry-After`: seconds or an HTTP date, capped.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = header_str(headers, RETRY_AFTER.as_str())?;
    let d = match v.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(v)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(limits::retry_after(d))
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

/// Resolve an upload `Location` (absolute, or relative to the request URL).
pub(crate) fn resolve_location(request_url: &Url, location: &str) -> Result<Url, StoreError> {
    request_url.join(location.trim()).map_err(|e| {
        StoreError::invalid(
            format!("upload location {location:?} from {}", shown(request_url)),
            e.to_string(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date_capped() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("100000"));
        assert_eq!(retry_after(&h), Some(limits::MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn explains_oci_error_bodies() {
        let body =
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_detail(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(error_detail("404 page not found\n"), "404 page not found");
    }
}
