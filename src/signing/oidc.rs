//! OIDC identity tokens for keyless signing: where a token comes from, what it claims, and the
//! interactive browser login (OAuth 2.0 authorization code + PKCE).
//!
//! The library reads no environment: the caller (the CLI's settings) passes every source in
//! [`TokenSources`], and [`obtain_token`] tries them in the documented order:
//! 1. an explicit token (`--identity-token TOKEN`, or `@path` to read it from a file);
//! 2. `SIGSTORE_ID_TOKEN` (also what GitLab's `id_tokens:` sets);
//! 3. GitHub Actions ambient credentials (`ACTIONS_ID_TOKEN_REQUEST_URL` + `_TOKEN`,
//!    audience `sigstore`);
//! 4. an interactive browser login, only when the caller says a terminal is attached.
//!
//! Token claims are decoded without verifying the signature: Fulcio authenticates the token;
//! the claims here only name the identity in messages and predict the certificate's identity.

use crate::secret::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The HTTP client type used for every keyless call (the one the sigstore crates use).
pub type HttpClient = sigstore_sign::reqwest::Client;

/// The audience Sigstore's Fulcio expects in identity tokens.
pub const SIGSTORE_AUDIENCE: &str = "sigstore";
/// The OAuth client id of Sigstore's public-good identity provider.
pub const SIGSTORE_CLIENT_ID: &str = "sigstore";
/// The out-of-band redirect: the provider shows the code for the user to paste.
pub const OOB_REDIRECT_URI: &str = "urn:ietf:wg:oauth:2.0:oob";

const BROWSER_CALLBACK_TIMEOUT: Duration = Duration::from_secs(300);
/// The most of one answer from an identity provider (token, discovery document, GitHub's
/// token endpoint) that is read; [`read_answer`] enforces it.
const MAX_PROVIDER_ANSWER: usize = 1024 * 1024;

/// An identity provider's answer, read up to [`MAX_PROVIDER_ANSWER`] (more is refused: an
/// endless answer costs at most that much memory).
async fn read_answer(mut response: sigstore_sign::reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_PROVIDER_ANSWER {
            return Err(format!(
                "answer from {} is larger than {MAX_PROVIDER_ANSWER} bytes",
                response.url()
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("no OIDC identity token: pass --identity-token TOKEN or @FILE, set SIGSTORE_ID_TOKEN, run in GitHub Actions with `permissions: id-token: write`, or run in a terminal for a browser login")]
    NoToken,
    #[error("identity token from {origin} is not a JWT (header.payload.signature): {reason}")]
    Malformed { origin: String, reason: String },
    #[error("identity token from {origin} expired at {expired} (unix seconds); get a fresh one")]
    Expired { origin: String, expired: i64 },
    #[error("identity token from {origin} has audience {actual:?}, expected {expected:?}")]
    Audience {
        origin: String,
        expected: String,
        actual: Vec<String>,
    },
    #[error("read identity token file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("identity token file {0} is empty")]
    EmptyFile(PathBuf),
    #[error("GitHub Actions OIDC token request to {url} failed: {reason}")]
    GitHub { url: String, reason: String },
    #[error("browser login with {issuer} failed: {reason}")]
    Login { issuer: String, reason: String },
}

impl OidcError {
    /// A token service that fails is remote; a missing or unusable token is the caller's input.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            OidcError::GitHub { .. } | OidcError::Login { .. } => crate::error::ErrorKind::Remote,
            _ => crate::error::ErrorKind::Input,
        }
    }
}

/// Where the token came from (for messages; never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenOrigin {
    Explicit,
    File(PathBuf),
    SigstoreIdTokenEnv,
    GitHubActions,
    Browser,
}

impl std::fmt::Display for TokenOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenOrigin::Explicit => f.write_str("--identity-token"),
            TokenOrigin::File(p) => write!(f, "file {}", p.display()),
            TokenOrigin::SigstoreIdTokenEnv => f.write_str("SIGSTORE_ID_TOKEN"),
            TokenOrigin::GitHubActions => f.write_str("GitHub Actions OIDC"),
            TokenOrigin::Browser => f.write_str("browser login"),
        }
    }
}

/// The claims we read (unverified; Fulcio verifies the token).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    #[serde(default)]
    pub aud: Option<serde_json::Value>,
    #[serde(default)]
    pub exp: Option<i64>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub federated_claims: Option<FederatedClaims>,
    /// GitHub Actions: `owner/repo/.github/workflows/x.yml@refs/heads/main`.
    #[serde(default)]
    pub job_workflow_ref: Option<String>,
    /// GitLab CI: `gitlab.com/group/project//.gitlab-ci.yml@refs/heads/main`.
    #[serde(default)]
    pub ci_config_ref_uri: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct FederatedClaims {
    #[serde(default)]
    pub connector_id: Option<String>,
}

/// An OIDC identity token: the raw JWT (a [`Secret`]) and its decoded, unverified claims.
#[derive(Clone)]
pub struct IdentityToken {
    raw: Secret,
    claims: Claims,
    origin: TokenOrigin,
}

impl std::fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityToken")
            .field("iss", &self.claims.iss)
            .field("identity", &self.identity())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl IdentityToken {
    /// Decode a JWT's payload (no signature check) and check expiry and audience.
    pub fn parse(raw: Secret, origin: TokenOrigin) -> Result<Self, OidcError> {
        let malformed = |reason: String| OidcError::Malformed {
            origin: origin.to_string(),
            reason,
        };
        let text = raw.expose().trim();
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(malformed(format!("{} part(s)", parts.len())));
        }
        let payload = URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .map_err(|e| malformed(format!("payload is not base64url: {e}")))?;
        let claims: Claims = serde_json::from_slice(&payload)
            .map_err(|e| malformed(format!("payload claims: {e}")))?;
        if claims.iss.is_empty() {
            return Err(malformed("no `iss` claim".into()));
        }
        if claims.sub.is_empty() && claims.email.is_none() {
            return Err(malformed("neither `sub` nor `email` claim".into()));
        }
        if let Some(exp) = claims.exp {
            if exp < chrono::Utc::now().timestamp() {
                return Err(OidcError::Expired {
                    origin: origin.to_string(),
                    expired: exp,
                });
            }
        }
        let audiences: Vec<String> = match &claims.aud {
            None => vec![],
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(_) => vec![],
        };
        if !audiences.is_empty() && !audiences.iter().any(|a| a == SIGSTORE_AUDIENCE) {
            return Err(OidcError::Audience {
                origin: origin.to_string(),
                expected: SIGSTORE_AUDIENCE.into(),
                actual: audiences,
            });
        }
        Ok(IdentityToken {
            raw: Secret::new(text),
            claims,
            origin,
        })
    }

    pub fn raw(&self) -> &Secret {
        &self.raw
    }
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
    pub fn origin(&self) -> &TokenOrigin {
        &self.origin
    }
    /// The token's `iss`.
    pub fn issuer(&self) -> &str {
        &self.claims.iss
    }
    /// What Fulcio's proof of possession signs and what messages show: `email`, else `sub`.
    pub fn identity(&self) -> &str {
        self.claims.email.as_deref().unwrap_or(&self.claims.sub)
    }

    /// The OIDC issuer the certificate should name: the upstream issuer for a federated
    /// (Dex) token, else `iss`.
    pub fn expected_certificate_issuer(&self) -> &str {
        self.claims
            .federated_claims
            .as_ref()
            .and_then(|f| f.connector_id.as_deref())
            .filter(|c| c.starts_with("https://") || c.starts_with("http://"))
            .unwrap_or(&self.claims.iss)
    }

    /// The certificate identities (SAN) Fulcio may issue for this token: the email for email
    /// tokens, the workflow URI for GitHub Actions / GitLab CI, else the subject.
    pub fn expected_certificate_identities(&self) -> Vec<String> {
        if let Some(email) = &self.claims.email {
            return vec![email.clone()];
        }
        let mut out = Vec::new();
        if let Some(w) = &self.claims.job_workflow_ref {
            out.push(format!("https://github.com/{w}"));
        }
        if let Some(c) = &self.claims.ci_config_ref_uri {
            out.push(format!("https://{c}"));
        }
        if !self.claims.sub.is_empty() {
            out.push(self.claims.sub.clone());
        }
        out
    }
}

/// An explicit `--identity-token` value: the token itself, or `@path` of a file holding it.
pub fn explicit_token(value: &str) -> Result<IdentityToken, OidcError> {
    if let Some(path) = value.strip_prefix('@') {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path).map_err(|source| OidcError::File {
            path: path.clone(),
            source,
        })?;
        let text = text.trim();
        if text.is_empty() {
            return Err(OidcError::EmptyFile(path));
        }
        IdentityToken::parse(Secret::new(text), TokenOrigin::File(path))
    } else {
        IdentityToken::parse(Secret::new(value), TokenOrigin::Explicit)
    }
}

/// GitHub Actions: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=sigstore` with
/// `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answer `{"value": JWT}`.
pub async fn github_actions_token(
    http: &HttpClient,
    request_url: &str,
    request_token: &Secret,
) -> Result<IdentityToken, OidcError> {
    let fail = |reason: String| OidcError::GitHub {
        url: request_url.to_string(),
        reason,
    };
    let mut url = url::Url::parse(request_url).map_err(|e| fail(format!("bad URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("audience", SIGSTORE_AUDIENCE);
    let response = http
        .get(url)
        .header(
            "Authorization",
            format!("bearer {}", request_token.expose()),
        )
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!(
            "HTTP {status} (does the job have `permissions: id-token: write`?)"
        )));
    }
    #[derive(Deserialize)]
    struct Answer {
        value: String,
    }
    let body = read_answer(response).await.map_err(fail)?;
    let answer: Answer =
        serde_json::from_slice(&body).map_err(|e| fail(format!("answer is not {{value}}: {e}")))?;
    IdentityToken::parse(Secret::new(answer.value), TokenOrigin::GitHubActions)
}

/// Everything a token may come from, resolved by the caller (the CLI reads the environment).
#[derive(Default)]
pub struct TokenSources {
    /// `--identity-token` (TOKEN or @FILE).
    pub explicit: Option<String>,
    /// `SIGSTORE_ID_TOKEN` (GitLab `id_tokens:` too).
    pub sigstore_id_token: Option<Secret>,
    /// GitHub Actions: (request URL, request token).
    pub github_actions: Option<(String, Secret)>,
    /// Interactive login; only set when a terminal is attached.
    pub interactive: Option<InteractiveLogin>,
}

/// Find a token from the sources, in order (see the module documentation).
pub async fn obtain_token(
    http: &HttpClient,
    sources: TokenSources,
) -> Result<IdentityToken, OidcError> {
    if let Some(value) = &sources.explicit {
        return explicit_token(value);
    }
    if let Some(token) = sources.sigstore_id_token {
        return IdentityToken::parse(token, TokenOrigin::SigstoreIdTokenEnv);
    }
    if let Some((url, token)) = &sources.github_actions {
        return github_actions_token(http, url, token).await;
    }
    if let Some(login) = &sources.interactive {
        return browser_login(http, login).await;
    }
    Err(OidcError::NoToken)
}

// ---------------------------------------------------------------------------------------------
// Interactive login: OAuth 2.0 authorization code flow with PKCE (RFC 7636).
// ---------------------------------------------------------------------------------------------

/// How the user takes part in a browser login (the CLI prints to stderr and reads stdin).
pub trait LoginUi: Send + Sync {
    /// The URL to open. `redirect` is true when a localhost listener waits for the redirect
    /// (the browser was asked to open it); false when the user must paste the code.
    fn show_url(&self, url: &str, redirect: bool);
    /// Paste-the-code fallback: read the code the provider showed.
    fn prompt_code(&self) -> std::io::Result<Secret>;
    /// Try to open the URL in a browser; false when that is not possible.
    fn open_browser(&self, url: &str) -> bool;
}

/// An interactive login with an OIDC provider (Sigstore's Dex by default).
#[derive(Clone)]
pub struct InteractiveLogin {
    /// The provider's issuer URL (signing config `oidcUrls`, e.g. https://oauth2.sigstore.dev/auth).
    pub issuer: String,
    pub client_id: String,
    pub ui: Arc<dyn LoginUi>,
    /// Skip the localhost redirect and go straight to paste-the-code.
    pub force_oob: bool,
}

/// The provider's endpoints (OIDC discovery, or Dex's layout when discovery fails).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderEndpoints {
    pub authorization: String,
    pub token: String,
}

/// A prepared authorization request: the URL to open and what the code exchange needs.
#[derive(Debug)]
pub struct AuthorizationRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub redirect_uri: String,
    pub code_verifier: Secret,
    pub code_challenge: String,
}

fn random_b64(len: usize) -> String {
    use rand::RngCore as _;
    let mut bytes = vec![0u8; len];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 PKCE challenge for a verifier: base64url(sha256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Build the authorization URL with a fresh PKCE verifier, state and nonce.
pub fn authorization_request(
    endpoints: &ProviderEndpoints,
    client_id: &str,
    redirect_uri: &str,
) -> Result<AuthorizationRequest, url::ParseError> {
    let verifier = random_b64(32);
    let challenge = pkce_challenge(&verifier);
    let state = random_b64(16);
    let nonce = random_b64(16);
    let mut url = url::Url::parse(&endpoints.authorization)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid email")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce);
    Ok(AuthorizationRequest {
        url: url.to_string(),
        state,
        nonce,
        redirect_uri: redirect_uri.to_string(),
        code_verifier: Secret::new(verifier),
        code_challenge: challenge,
    })
}

/// OIDC discovery (`/.well-known/openid-configuration`), falling back to Dex's layout
/// (`<issuer>/auth`, `<issuer>/token`) when the document cannot be had.
pub async fn discover(http: &HttpClient, issuer: &str) -> ProviderEndpoints {
    let base = issuer.trim_end_matches('/');
    #[derive(Deserialize)]
    struct Doc {
        authorization_endpoint: String,
        token_endpoint: String,
    }
    let url = format!("{base}/.well-known/openid-configuration");
    if let Ok(resp) = http.get(&url).send().await {
        if resp.status().is_success() {
            let doc = read_answer(resp)
                .await
                .ok()
                .and_then(|body| serde_json::from_slice::<Doc>(&body).ok());
            if let Some(doc) = doc {
                return ProviderEndpoints {
                    authorization: doc.authorization_endpoint,
                    token: doc.token_endpoint,
                };
            }
        }
    }
    ProviderEndpoints {
        authorization: format!("{base}/auth"),
        token: format!("{base}/token"),
    }
}

/// The browser login: a localhost redirect listener when the browser opens, else (or when
/// forced) the out-of-band flow where the user pastes the code.
pub async fn browser_login(
    http: &HttpClient,
    login: &InteractiveLogin,
) -> Result<IdentityToken, OidcError> {
    let fail = |reason: String| OidcError::Login {
        issuer: login.issuer.clone(),
        reason,
    };
    let endpoints = discover(http, &login.issuer).await;
    if !login.force_oob {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| fail(format!("start the localhost redirect listener: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| fail(e.to_string()))?
            .port();
        let redirect_uri = format!("http://localhost:{port}/auth/callback");
        let request = authorization_request(&endpoints, &login.client_id, &redirect_uri)
            .map_err(|e| fail(format!("authorization URL: {e}")))?;
        if login.ui.open_browser(&request.url) {
            login.ui.show_url(&request.url, true);
            let code = tokio::time::timeout(
                BROWSER_CALLBACK_TIMEOUT,
                wait_for_callback(&listener, &request.state),
            )
            .await
            .map_err(|_| fail("no browser redirect within 5 minutes".into()))?
            .map_err(fail)?;
            return exchange_code(http, &endpoints, &login.client_id, &request, code.expose())
                .await
                .map_err(fail);
        }
    }
    let request = authorization_request(&endpoints, &login.client_id, OOB_REDIRECT_URI)
        .map_err(|e| fail(format!("authorization URL: {e}")))?;
    login.ui.show_url(&request.url, false);
    let code = login
        .ui
        .prompt_code()
        .map_err(|e| fail(format!("read the code: {e}")))?;
    exchange_code(
        http,
        &endpoints,
        &login.client_id,
        &request,
        code.expose().trim(),
    )
    .await
    .map_err(fail)
}

/// Accept redirects on the listener until one carries our `state`; answer the browser.
pub async fn wait_for_callback(listener: &TcpListener, state: &str) -> Result<Secret, String> {
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept the redirect: {e}"))?;
        let mut reader = BufReader::new(stream.take(16 * 1024));
        let mut line = String::new();
        if reader.read_line(&mut line).await.is_err() {
            continue;
        }
        // Drain the headers (bounded by `take`).
        let mut header = String::new();
        while reader
            .read_line(&mut header)
            .await
            .map(|n| n > 2)
            .unwrap_or(false)
        {
            header.clear();
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next(), parts.next().unwrap_or(""));
        let Ok(url) = url::Url::parse(&format!("http://localhost{target}")) else {
            continue;
        };
        if method != Some("GET") || url.path() != "/auth/callback" {
            let _ = respond(reader.get_mut().get_mut(), "404 Not Found", "not found").await;
            continue;
        }
        let get = |k: &str| {
            url.query_pairs()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.into_owned())
        };
        let stream = reader.get_mut().get_mut();
        if let Some(err) = get("error") {
            let desc = get("error_description").unwrap_or_default();
            let _ = respond(stream, "400 Bad Request", "Login failed; see the terminal.").await;
            return Err(format!("the provider answered {err}: {desc}"));
        }
        if get("state").as_deref() != Some(state) {
            let _ = respond(stream, "400 Bad Request", "State mismatch; ignored.").await;
            continue;
        }
        let Some(code) = get("code") else {
            let _ = respond(stream, "400 Bad Request", "No code.").await;
            return Err("redirect without a code".into());
        };
        let _ = respond(
            stream,
            "200 OK",
            "oci-model: login complete. You can close this window.",
        )
        .await;
        return Ok(Secret::new(code));
    }
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: &str,
    text: &str,
) -> std::io::Result<()> {
    let body = format!("<!doctype html><title>oci-model</title><p>{text}</p>");
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes()).await?;
    stream.shutdown().await
}

/// Exchange the authorization code (with the PKCE verifier) for an ID token.
pub async fn exchange_code(
    http: &HttpClient,
    endpoints: &ProviderEndpoints,
    client_id: &str,
    request: &AuthorizationRequest,
    code: &str,
) -> Result<IdentityToken, String> {
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", request.redirect_uri.as_str()),
        ("client_id", client_id),
        ("code_verifier", request.code_verifier.expose()),
    ];
    let response = http
        .post(&endpoints.token)
        .form(&params)
        .send()
        .await
        .map_err(|e| format!("token request to {}: {e}", endpoints.token))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!(
            "token endpoint {} answered HTTP {status}",
            endpoints.token
        ));
    }
    let body = read_answer(response).await?;
    #[derive(Deserialize)]
    struct TokenResponse {
        id_token: Option<String>,
    }
    let answer: TokenResponse =
        serde_json::from_slice(&body).map_err(|e| format!("token response: {e}"))?;
    let id_token = answer
        .id_token
        .ok_or_else(|| "token response has no id_token".to_string())?;
    IdentityToken::parse(Secret::new(id_token), TokenOrigin::Browser).map_err(|e| e.to_string())
}

/// Ask the desktop to open `url` (xdg-open, open, or start); false when that failed.
pub fn open_in_browser(url: &str) -> bool {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    cmd.arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn claims_without_email_use_sub() {
        let t = IdentityToken::parse(
            Secret::new(jwt(serde_json::json!({
                "iss": "https://token.actions.githubusercontent.com",
                "sub": "repo:o/r:ref:refs/heads/main", "aud": "sigstore",
                "exp": 4_000_000_000i64,
                "job_workflow_ref": "o/r/.github/workflows/x.yml@refs/heads/main"
            }))),
            TokenOrigin::Explicit,
        )
        .unwrap();
        assert_eq!(t.identity(), "repo:o/r:ref:refs/heads/main");
        assert_eq!(
            t.expected_certificate_identities()[0],
            "https://github.com/o/r/.github/workflows/x.yml@refs/heads/main"
        );
        assert!(!format!("{t:?}").contains(t.raw().expose()));
    }

    #[test]
    fn email_and_federated_issuer() {
        let t = IdentityToken::parse(
            Secret::new(jwt(serde_json::json!({
                "iss": "https://oauth2.sigstore.dev/auth", "sub": "x", "aud": ["sigstore"],
                "exp": 4_000_000_000i64, "email": "a@b.c",
                "federated_claims": {"connector_id": "https://github.com/login/oauth"}
            }))),
            TokenOrigin::Explicit,
        )
        .unwrap();
        assert_eq!(t.identity(), "a@b.c");
        assert_eq!(t.expected_certificate_identities(), vec!["a@b.c"]);
        assert_eq!(
            t.expected_certificate_issuer(),
            "https://github.com/login/oauth"
        );
    }

    #[test]
    fn rejects_expired_wrong_audience_and_garbage() {
        let expired = jwt(serde_json::json!({"iss":"https://i","sub":"s","exp":1}));
        assert!(matches!(
            IdentityToken::parse(Secret::new(expired), TokenOrigin::Explicit),
            Err(OidcError::Expired { .. })
        ));
        let aud = jwt(serde_json::json!({"iss":"https://i","sub":"s","aud":"other"}));
        assert!(matches!(
            IdentityToken::parse(Secret::new(aud), TokenOrigin::Explicit),
            Err(OidcError::Audience { .. })
        ));
        let err = IdentityToken::parse(Secret::new("not-a-jwt"), TokenOrigin::Explicit)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a JWT"), "{err}");
        assert!(!err.contains("not-a-jwt"), "token leaked into error: {err}");
    }

    #[test]
    fn pkce_matches_rfc7636_example() {
        // RFC 7636 appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
