//! Registry credentials: command line, `~/.docker/config.json` (auths, credsStore,
//! credHelpers), Basic and bearer-token challenges.
//!
//! The flow follows the distribution token spec: a request answered `401` carries a
//! `WWW-Authenticate` challenge. `Basic` → the request is repeated with the user's credentials.
//! `Bearer realm=…,service=…,scope=…` → a token is requested from the realm for the scopes the
//! request needs (`repository:<name>:pull` or `pull,push`), cached per scope until it expires,
//! and the request is repeated with it. `error="insufficient_scope"` asks for a token with the
//! scope the registry named.
//!
//! Who gets credentials is decided by the transport (`registry/transport.rs`): only requests
//! to the registry's own origin, and only challenges answered from that origin reach this
//! module; the token realm such a challenge names gets them too. Token requests never follow
//! redirects (the client handed to [`Authenticator::on_challenge`] must not), so a refresh
//! token or a password is never re-sent to a host the registry's challenge did not name.
//!
//! Passwords and tokens live in [`Secret`] and never appear in logs or error messages: every
//! text a server sends back goes through [`Authenticator::redact`] first.

use super::error::{error_chain, shown, snippet, StoreError};
use super::limits;
use crate::secret::Secret;
use base64::Engine as _;
use reqwest::header::{HeaderValue, AUTHORIZATION};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Credentials for one registry.
#[derive(Clone, Debug)]
pub enum Credentials {
    Basic {
        username: String,
        password: Secret,
    },
    /// An identity token / registry token used as a bearer token or refresh token.
    Token(Secret),
}

impl Credentials {
    /// The secret part (for redaction of anything echoed back by a server).
    fn secret(&self) -> &Secret {
        match self {
            Credentials::Basic { password, .. } => password,
            Credentials::Token(t) => t,
        }
    }
    fn basic_header(username: &str, password: &Secret) -> HeaderValue {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{}", password.expose()));
        let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
            .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
        v.set_sensitive(true);
        v
    }
    fn describe(&self) -> String {
        match self {
            Credentials::Basic { username, .. } => format!("user {username:?}"),
            Credentials::Token(_) => "the identity token".to_string(),
        }
    }
}

/// One authentication challenge from a `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased scheme: `basic`, `bearer`, …
    pub scheme: String,
    /// Parameters with lower-cased names (`realm`, `service`, `scope`, `error`).
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
    pub fn is_insufficient_scope(&self) -> bool {
        self.param("error") == Some("insufficient_scope")
    }
}

/// Parse every challenge in a `WWW-Authenticate` header value (RFC 7235: `scheme param=value,
/// param="quoted, value", …` possibly followed by further challenges), with the `http-auth`
/// crate's parser. Input after a syntax error is ignored; the challenges before it are kept.
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    http_auth::parser::ChallengeParser::new(header)
        .map_while(Result::ok)
        .map(|c| Challenge {
            scheme: c.scheme.to_ascii_lowercase(),
            params: c
                .params
                .iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_unescaped()))
                .collect(),
        })
        .collect()
}

/// Access a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `/v2/` only (login check): no repository scope.
    Ping,
    Pull,
    Push,
}

/// The token scope string for `repository` and `access`.
pub fn scope_for(repository: &str, access: Access) -> Option<String> {
    match access {
        Access::Ping => None,
        Access::Pull => Some(format!("repository:{repository}:pull")),
        Access::Push => Some(format!("repository:{repository}:pull,push")),
    }
}

/// Merge the scopes a challenge asks for with ours (same resource: union of actions).
pub fn merge_scopes(ours: Option<&str>, challenge: Option<&str>) -> Vec<String> {
    let mut by_resource: Vec<(String, Vec<String>)> = Vec::new();
    let scopes = ours
        .into_iter()
        .chain(challenge.into_iter().flat_map(|c| c.split(' ')))
        .filter(|s| !s.is_empty());
    for scope in scopes {
        let (resource, actions) = match scope.rsplit_once(':') {
            Some((r, a)) => (r.to_string(), a),
            None => (scope.to_string(), ""),
        };
        let entry = match by_resource.iter_mut().find(|(r, _)| *r == resource) {
            Some(e) => e,
            None => {
                by_resource.push((resource, Vec::new()));
                by_resource.last_mut().expect("just pushed")
            }
        };
        for a in actions.split(',').filter(|a| !a.is_empty()) {
            if !entry.1.iter().any(|x| x == a) {
                entry.1.push(a.to_string());
            }
        }
    }
    by_resource
        .into_iter()
        .map(|(r, mut actions)| {
            // Stable order: pull before push, then the rest.
            actions.sort_by_key(|a| match a.as_str() {
                "pull" => (0, String::new()),
                "push" => (1, String::new()),
                other => (2, other.to_string()),
            });
            format!("{r}:{}", actions.join(","))
        })
        .collect()
}

/// The key docker config uses for a registry: Docker Hub's legacy URL, else `host[:port]`.
pub fn docker_config_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".to_string()
        }
        other => other.to_string(),
    }
}

/// Look the registry up in the docker config (auths, credsStore, credHelpers). Blocking: the
/// crate reads files and may run a credential helper.
fn docker_config_credentials(registry: &str) -> Option<Credentials> {
    let key = docker_config_key(registry);
    match docker_credential::get_credential(&key) {
        Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
            tracing::debug!(registry, "using credentials from docker config");
            Some(Credentials::Basic {
                username,
                password: Secret::new(password),
            })
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            tracing::debug!(registry, "using identity token from docker config");
            Some(Credentials::Token(Secret::new(token)))
        }
        Err(e) => {
            // Only the kind: helper output could hold anything.
            let kind = match e {
                docker_credential::CredentialRetrievalError::HelperFailure { helper, .. } => {
                    format!("credential helper {helper} failed")
                }
                other => other.to_string(),
            };
            tracing::debug!(registry, "no docker config credentials: {kind}");
            None
        }
    }
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    expires: Instant,
}

#[derive(Default)]
struct State {
    /// The registry asked for Basic: send it with every request.
    basic: bool,
    tokens: HashMap<String, CachedToken>,
    /// Every token issued to us (most recent [`ISSUED_KEPT`]), for redaction.
    issued: Vec<Secret>,
}

/// Issued tokens remembered for redaction.
const ISSUED_KEPT: usize = 32;

#[derive(serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Per-registry authentication state shared by every request to that registry.
pub struct Authenticator {
    /// Registry as the user wrote it (messages, docker config lookup).
    registry: String,
    explicit: Option<Credentials>,
    resolved: tokio::sync::OnceCell<Option<Credentials>>,
    /// Plain-http token realms are acceptable (loopback or `--plain-http`).
    allow_http_realm: bool,
    state: Mutex<State>,
    fetch_lock: tokio::sync::Mutex<()>,
}

impl Authenticator {
    pub fn new(registry: &str, credentials: Option<Credentials>, allow_http_realm: bool) -> Self {
        Authenticator {
            registry: registry.to_string(),
            explicit: credentials,
            resolved: tokio::sync::OnceCell::new(),
            allow_http_realm,
            state: Mutex::new(State::default()),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Credentials: the explicit ones, else docker config, else none (looked up once, lazily:
    /// an anonymous registry never runs a credential helper).
    pub async fn credentials(&self) -> Option<Credentials> {
        if let Some(c) = &self.explicit {
            return Some(c.clone());
        }
        let registry = self.registry.clone();
        self.resolved
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || docker_config_credentials(&registry))
                    .await
                    .unwrap_or(None)
            })
            .await
            .clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `Authorization` header to send for a request needing `scope`, if any is known yet.
    pub fn authorization(&self, scope: Option<&str>) -> Option<HeaderValue> {
        let state = self.state();
        if state.basic {
            let creds = self
                .explicit
                .as_ref()
                .or_else(|| self.resolved.get()?.as_ref());
            if let Some(Credentials::Basic { username, password }) = creds {
                return Some(Credentials::basic_header(username, password));
            }
        }
        let now = Instant::now();
        let pick = |key: &str| {
            state
                .tokens
                .get(key)
                .filter(|t| t.expires > now)
                .map(|t| t.token.clone())
        };
        let token = match scope {
            Some(s) => pick(s).or_else(|| {
                // A pull,push token also serves pulls.
                s.strip_suffix(":pull")
                    .and_then(|base| pick(&format!("{base}:pull,push")))
            }),
            None => pick(""),
        };
        token.map(|t| bearer_header(&t))
    }

    /// Handle a `401` (or a `403` with `insufficient_scope`) for a request that needed `scope`
    /// and was sent with `sent`. `Ok` means new authorization is ready: send the request again.
    pub async fn on_challenge(
        &self,
        http: &reqwest::Client,
        challenges: &[Challenge],
        scope: Option<&str>,
        sent: Option<&HeaderValue>,
    ) -> Result<(), StoreError> {
        let bearer = challenges.iter().find(|c| c.scheme == "bearer");
        let basic = challenges.iter().find(|c| c.scheme == "basic");
        if let Some(ch) = bearer {
            return self.bearer(http, ch, scope, sent).await;
        }
        if basic.is_some() {
            return match self.credentials().await {
                Some(Credentials::Basic { username, .. }) => {
                    let mut state = self.state();
                    if state.basic && sent.is_some() {
                        Err(self.unauthorized(format!(
                            "the registry rejected the password of user {username:?}"
                        )))
                    } else {
                        state.basic = true;
                        Ok(())
                    }
                }
                Some(Credentials::Token(_)) => Err(self.unauthorized(
                    "the registry asks for a user name and password (Basic auth), but only a \
                     token was given: pass --username with --password-stdin"
                        .to_string(),
                )),
                None => Err(self.unauthorized(self.no_credentials_reason())),
            };
        }
        let schemes: Vec<&str> = challenges.iter().map(|c| c.scheme.as_str()).collect();
        Err(self.unauthorized(if schemes.is_empty() {
            "HTTP 401 without a WWW-Authenticate challenge".to_string()
        } else {
            format!(
                "unsupported authentication scheme(s): {}",
                schemes.join(", ")
            )
        }))
    }

    fn no_credentials_reason(&self) -> String {
        format!(
            "the registry requires credentials and none were given or found in the docker \
             config; run `oci-model login {}` or pass --username with --password-stdin",
            self.registry
        )
    }

    pub fn unauthorized(&self, reason: String) -> StoreError {
        StoreError::Unauthorized {
            registry: self.registry.clone(),
            reason,
        }
    }

    async fn bearer(
        &self,
        http: &reqwest::Client,
        ch: &Challenge,
        scope: Option<&str>,
        sent: Option<&HeaderValue>,
    ) -> Result<(), StoreError> {
        let realm = ch
            .param("realm")
            .ok_or_else(|| self.unauthorized("Bearer challenge without a realm".to_string()))?;
        let service = ch.param("service");
        let scopes = if ch.is_insufficient_scope() || scope.is_none() {
            merge_scopes(scope, ch.param("scope"))
        } else {
            merge_scopes(scope, None)
        };
        let key = scope.unwrap_or("").to_string();
        let _guard = self.fetch_lock.lock().await;
        // Another request may have fetched a fresh token meanwhile.
        if let Some(current) = self.authorization(scope) {
            if sent != Some(&current) && !ch.is_insufficient_scope() {
                return Ok(());
            }
        }
        let rejected_before = sent.is_some() && !ch.is_insufficient_scope();
        if rejected_before {
            // The token we had was refused: do not loop on it.
            self.state().tokens.remove(&key);
        }
        let token = self.fetch_token(http, realm, service, &scopes).await?;
        if let Some(prev) = sent {
            if *prev == bearer_header(&token.token) {
                return Err(self.unauthorized(format!(
                    "the registry refused the token issued by {} for {}",
                    realm_host(realm),
                    scopes.join(" ")
                )));
            }
        }
        let mut state = self.state();
        if state.issued.len() >= ISSUED_KEPT {
            state.issued.remove(0);
        }
        state.issued.push(token.token.clone());
        state.tokens.insert(key, token);
        Ok(())
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<CachedToken, StoreError> {
        let mut url = url::Url::parse(realm)
            .map_err(|e| self.unauthorized(format!("token realm {realm:?} is not a URL: {e}")))?;
        let creds = self.credentials().await;
        if url.scheme() != "https" && !self.allow_http_realm && creds.is_some() {
            return Err(self.unauthorized(format!(
                "refusing to send credentials to the plain-http token service {}; use --plain-http \
                 only if you trust the network",
                realm_host(realm)
            )));
        }
        let start = Instant::now();
        let response = match &creds {
            Some(Credentials::Token(refresh)) => {
                // OAuth2 refresh-token grant (docker identity tokens).
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose()),
                    ("client_id", "oci-model"),
                ];
                let joined = scopes.join(" ");
                if let Some(s) = service {
                    form.push(("service", s));
                }
                if !joined.is_empty() {
                    form.push(("scope", &joined));
                }
                let resp = http.post(url.clone()).form(&form).send().await;
                match resp {
                    Ok(r) if r.status().is_success() => r,
                    other => {
                        // Not an OAuth2 endpoint or not a refresh token: use the token as is.
                        tracing::debug!(
                            "refresh-token grant at {} failed ({}); using the token directly",
                            realm_host(realm),
                            other
                                .as_ref()
                                .map(|r| r.status().to_string())
                                .unwrap_or_else(|e| e.to_string())
                        );
                        return Ok(CachedToken {
                            token: refresh.clone(),
                            expires: start + Duration::from_secs(300),
                        });
                    }
                }
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                if url.query() == Some("") {
                    url.set_query(None);
                }
                let mut req = http.get(url.clone());
                if let Some(Credentials::Basic { username, password }) = &creds {
                    req = req.header(AUTHORIZATION, Credentials::basic_header(username, password));
                }
                req.send().await.map_err(|e| StoreError::Network {
                    url: shown(&url),
                    reason: error_chain(&e),
                })?
            }
        };
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(self.unauthorized(match &creds {
                Some(c) => format!(
                    "the token service {} rejected the credentials of {} (HTTP {})",
                    realm_host(realm),
                    c.describe(),
                    status.as_u16()
                ),
                None => format!(
                    "the token service {} refused anonymous access (HTTP {}); {}",
                    realm_host(realm),
                    status.as_u16(),
                    self.no_credentials_reason()
                ),
            }));
        }
        if !status.is_success() {
            let body = limits::read_error_body(response, Duration::from_secs(10)).await;
            return Err(StoreError::Http {
                method: "GET".into(),
                url: shown(&url),
                status: status.as_u16(),
                body: format!(
                    ": {}",
                    self.redact(&snippet(&String::from_utf8_lossy(&body)))
                ),
            });
        }
        let what = format!("the answer of the token service {}", realm_host(realm));
        let body = limits::read_capped(
            response,
            limits::MAX_TOKEN_RESPONSE,
            Duration::from_secs(30),
            &what,
            || StoreError::Network {
                url: shown(&url),
                reason: "the token service stopped sending its answer".into(),
            },
        )
        .await?;
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            self.unauthorized(format!(
                "the token service {} answered with something that is not a token response: {e}",
                realm_host(realm)
            ))
        })?;
        let token = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                self.unauthorized(format!(
                    "the token service {} answered without a token",
                    realm_host(realm)
                ))
            })?;
        // The spec's default lifetime is 60 s; renew a little early (clamped: see limits).
        Ok(CachedToken {
            token: Secret::new(token),
            expires: limits::token_renewal(start, parsed.expires_in),
        })
    }

    /// Remove every credential form we know from text a server sent back (it should never
    /// echo one, but be sure): the password, base64 of `user:password`, the identity token,
    /// every token issued to us; see [`crate::store::error::redact`].
    pub fn redact(&self, text: &str) -> String {
        let mut secrets = Vec::new();
        let configured = self
            .explicit
            .iter()
            .chain(self.resolved.get().and_then(Option::as_ref));
        for c in configured {
            secrets.push(c.secret().expose().to_string());
            if let Credentials::Basic { username, password } = c {
                let pair = format!("{username}:{}", password.expose());
                for engine in [
                    &base64::engine::general_purpose::STANDARD,
                    &base64::engine::general_purpose::STANDARD_NO_PAD,
                    &base64::engine::general_purpose::URL_SAFE,
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                ] {
                    secrets.push(engine.encode(&pair));
                }
            }
        }
        secrets.extend(self.state().issued.iter().map(|t| t.expose().to_string()));
        super::error::redact(text, &secrets)
    }
}

fn bearer_header(token: &Secret) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    v.set_sensitive(true);
    v
}

fn realm_host(realm: &str) -> String {
    url::Url::parse(realm)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| realm.chars().take(100).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenge_with_commas_in_quotes() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push",error="insufficient_scope""#;
        let c = parse_www_authenticate(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(
            c[0].param("scope"),
            Some("repository:samalba/my-app:pull,push")
        );
        assert!(c[0].is_insufficient_scope());
    }

    #[test]
    fn parses_basic_unquoted_escaped_and_multiple_challenges() {
        let c = parse_www_authenticate(r#"Basic realm="Registry \"Realm\"", charset=UTF-8"#);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some(r#"Registry "Realm""#));
        assert_eq!(c[0].param("charset"), Some("UTF-8"));

        let c = parse_www_authenticate(
            r#"Basic realm="x", BEARER realm="https://a/t", service=reg ,scope="repository:a:pull""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("service"), Some("reg"));
        assert_eq!(c[1].param("scope"), Some("repository:a:pull"));

        assert!(parse_www_authenticate("").is_empty());
        let c = parse_www_authenticate("Negotiate");
        assert_eq!(c[0].scheme, "negotiate");
        assert!(c[0].params.is_empty());
        // Malformed input never panics.
        for bad in [
            r#"Bearer realm=""#,
            "Bearer =,=",
            "=",
            r#"Bearer realm="\"#,
            "Bearer realm=é,x=\"ü\"",
        ] {
            let _ = parse_www_authenticate(bad);
        }
    }

    #[test]
    fn merges_scopes_per_resource() {
        assert_eq!(
            merge_scopes(Some("repository:a:pull"), Some("repository:a:push")),
            vec!["repository:a:pull,push"]
        );
        assert_eq!(
            merge_scopes(
                Some("repository:a:pull,push"),
                Some("repository:b:pull registry:catalog:*")
            ),
            vec![
                "repository:a:pull,push",
                "repository:b:pull",
                "registry:catalog:*"
            ]
        );
        assert!(merge_scopes(None, None).is_empty());
        assert_eq!(
            scope_for("m", Access::Push).unwrap(),
            "repository:m:pull,push"
        );
        assert_eq!(scope_for("m", Access::Ping), None);
    }

    #[test]
    fn docker_hub_uses_its_legacy_config_key() {
        assert_eq!(
            docker_config_key("docker.io"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(docker_config_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[tokio::test]
    async fn basic_header_and_redaction_keep_the_password_out_of_text() {
        let auth = Authenticator::new(
            "r.example",
            Some(Credentials::Basic {
                username: "alice".into(),
                password: Secret::new("s3cret-pw"),
            }),
            false,
        );
        assert!(auth.authorization(Some("repository:m:pull")).is_none());
        let basic = Challenge {
            scheme: "basic".into(),
            params: BTreeMap::new(),
        };
        let http = reqwest::Client::new();
        auth.on_challenge(
            &http,
            std::slice::from_ref(&basic),
            Some("repository:m:pull"),
            None,
        )
        .await
        .unwrap();
        let h = auth.authorization(Some("repository:m:pull")).unwrap();
        assert!(h.is_sensitive());
        let expected = base64::engine::general_purpose::STANDARD.encode("alice:s3cret-pw");
        assert_eq!(h.to_str().unwrap(), format!("Basic {expected}"));
        // Sent and refused again: a clear error without the password.
        let err = match auth
            .on_challenge(&http, &[basic], Some("repository:m:pull"), Some(&h))
            .await
        {
            Err(e) => e,
            Ok(_) => panic!("second refusal accepted"),
        };
        let msg = err.to_string();
        assert!(msg.contains("alice") && !msg.contains("s3cret-pw"), "{msg}");
        assert_eq!(auth.redact("echo s3cret-pw"), "echo <redacted>");
        assert!(!format!("{auth_creds:?}", auth_creds = auth.explicit).contains("s3cret"));
    }

    #[tokio::test]
    async fn anonymous_basic_challenge_explains_how_to_log_in() {
        let auth = Authenticator::new(
            "r.example",
            Some(Credentials::Token(Secret::new("t"))),
            false,
        );
        let basic = parse_www_authenticate(r#"Basic realm="r""#);
        let http = reqwest::Client::new();
        let err = match auth.on_challenge(&http, &basic, None, None).await {
            Err(e) => e,
            Ok(_) => panic!("accepted"),
        };
        assert!(err.to_string().contains("--username"), "{err}");
    }
}
