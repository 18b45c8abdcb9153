//! HTTP to one registry: the one place requests get credentials (the `Authorization` header
//! is attached in [`Transport::authorize`] and nowhere else), authentication rounds on 401,
//! status → [`StoreError`] mapping with the registry's own explanation, capped reads of small
//! bodies, and the idle timeout on everything we wait for.

use super::body::IdleLimited;
use crate::store::auth::{self, Authenticator};
use crate::store::error::{error_chain, shown, snippet, StoreError};
use crate::store::retry::{Failed, RetryPolicy};
use crate::store::BoxChunks;
use bytes::Bytes;
use futures::TryStreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use std::time::{Duration, SystemTime};
use url::Url;

/// Rounds of 401 → authenticate → resend before giving up.
const AUTH_ROUNDS: u32 = 3;
const ERROR_BODY_LIMIT: usize = 8 * 1024;
const RETRY_AFTER_CAP: Duration = Duration::from_secs(60);

/// See the module documentation.
pub(super) struct Transport {
    http: reqwest::Client,
    auth: Authenticator,
    /// Registry as the user wrote it (messages).
    registry: String,
    /// `registry/repository` (messages).
    location: String,
    /// Longest silence accepted while waiting (see `StoreOptions::idle_timeout`).
    pub idle: Duration,
    pub retry: RetryPolicy,
}

impl Transport {
    pub fn new(
        registry: &str,
        location: String,
        auth: Authenticator,
        insecure: bool,
        idle: Duration,
        retry: RetryPolicy,
    ) -> Result<Self, StoreError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("oci-model/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(insecure)
            .connect_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| {
                StoreError::Other(format!(
                    "cannot set up the HTTP client: {}",
                    error_chain(&e)
                ))
            })?;
        Ok(Transport {
            http,
            auth,
            registry: registry.to_string(),
            location,
            idle,
            retry,
        })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Attach the credentials known for `scope`; returns what was sent (to tell a stale token
    /// from a fresh one when the registry answers 401).
    pub fn authorize(
        &self,
        builder: RequestBuilder,
        scope: Option<&str>,
    ) -> (RequestBuilder, Option<HeaderValue>) {
        match self.auth.authorization(scope) {
            Some(h) => (builder.header(AUTHORIZATION, h.clone()), Some(h)),
            None => (builder, None),
        }
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
            self.auth.on_challenge(&self.http, &challenges, scope, sent),
        )
        .await
        .map_err(|_| self.silent(url, "getting an access token"))?
    }

    /// One HTTP exchange, answering authentication challenges (the request is rebuilt by
    /// `make` for each round). Any status but an unresolved 401 is returned to the caller.
    pub async fn send(
        &self,
        scope: Option<&str>,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, Failed> {
        let mut round = 0;
        loop {
            let (builder, sent) = self.authorize(make(), scope);
            let request = builder.build().map_err(|e| {
                StoreError::Other(format!("cannot build request: {}", error_chain(&e)))
            })?;
            let (method, url) = (request.method().clone(), request.url().clone());
            tracing::debug!("{method} {}", shown(&url));
            // Reads must answer within the idle timeout; requests carrying a body may take as
            // long as the upload does.
            let reads = method == Method::GET || method == Method::HEAD;
            let resp = if reads {
                tokio::time::timeout(self.idle, self.http.execute(request))
                    .await
                    .map_err(|_| self.silent(&url, "waiting for the response"))?
            } else {
                self.http.execute(request).await
            }
            .map_err(|e| network(&url, &e))?;
            let status = resp.status();
            let insufficient = challenges(resp.headers())
                .iter()
                .any(|c| c.is_insufficient_scope());
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
        let resp = self.send(scope, &make).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let (method, url) = match make().build() {
            Ok(r) => (r.method().clone(), r.url().clone()),
            Err(_) => (Method::GET, resp.url().clone()),
        };
        Err(self.status_error(&method, &url, resp, what).await)
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
        let (b, _) = self.authorize(self.http.delete(url.clone()), scope);
        let _ = tokio::time::timeout(self.idle, b.send()).await;
    }

    /// The error for an unexpected status, with the registry's own explanation, and the wait
    /// it asked for (`Retry-After`).
    pub async fn status_error(
        &self,
        method: &Method,
        url: &Url,
        mut resp: Response,
        what: &str,
    ) -> Failed {
        let status = resp.status();
        let wait = retry_after(resp.headers());
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match tokio::time::timeout(self.idle, resp.chunk()).await {
                Ok(Ok(Some(c))) => body.extend_from_slice(&c),
                _ => break,
            }
        }
        let detail = self
            .auth
            .redact(&error_detail(&String::from_utf8_lossy(&body)));
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
        mut resp: Response,
        limit: u64,
        what: &str,
    ) -> Result<Bytes, Failed> {
        let url = resp.url().clone();
        let too_large = |size| StoreError::TooLarge {
            what: what.to_string(),
            size,
            limit,
        };
        let declared =
            header_str(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared.filter(|len| *len > limit) {
            return Err(too_large(len).into());
        }
        let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(0) as usize);
        loop {
            let chunk = match tokio::time::timeout(self.idle, resp.chunk()).await {
                Err(_) => return Err(self.stalled(&url).into()),
                Ok(next) => match next.map_err(|e| network(&url, &e))? {
                    Some(chunk) => chunk,
                    None => break,
                },
            };
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(too_large((buf.len() + chunk.len()) as u64).into());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// A response body as chunks, failing like a lost connection when it stops arriving.
    pub fn chunks(&self, resp: Response) -> BoxChunks {
        let url = resp.url().clone();
        let shown_url = shown(&url);
        let stream = resp.bytes_stream().map_err(move |e| {
            std::io::Error::other(format!("reading {shown_url}: {}", error_chain(&e)))
        });
        Box::pin(IdleLimited::new(
            stream,
            self.idle,
            self.stalled(&url).to_string(),
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

pub(super) fn network(url: &Url, e: &reqwest::Error) -> StoreError {
    StoreError::Network {
        url: shown(url),
        reason: error_chain(e),
    }
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
    Some(d.min(RETRY_AFTER_CAP))
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
        assert_eq!(retry_after(&h), Some(RETRY_AFTER_CAP));
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
