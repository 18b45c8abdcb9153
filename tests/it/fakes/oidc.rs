//! Fake OIDC issuer: mints ES256 JWTs (iss = its URL, aud = sigstore), serves OIDC discovery,
//! an OAuth 2.0 authorization endpoint (code + PKCE S256, redirect or out-of-band) and token
//! endpoint, and a GitHub Actions ID-token endpoint (`GET …/gha/token?audience=sigstore` with
//! `Authorization: bearer <request token>`).

use super::{b64, error_response, now_secs, sha256, Shared};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The email the fake's browser login signs in as.
pub const BROWSER_USER_EMAIL: &str = "browser-user@example.com";

pub struct Issuer {
    pub url: String,
    key: EcdsaKeyPair,
    request_token: String,
    codes: Mutex<HashMap<String, PendingCode>>,
    /// Every authorization request seen (query pairs), for assertions.
    pub authorize_requests: Mutex<Vec<HashMap<String, String>>>,
}

struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
}

impl Issuer {
    pub fn new(url: &str, request_token: &str) -> Issuer {
        Issuer {
            url: url.to_string(),
            key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            request_token: request_token.to_string(),
            codes: Mutex::new(HashMap::new()),
            authorize_requests: Mutex::new(Vec::new()),
        }
    }

    /// Mint an ES256 JWT; `iss`, `aud`, `iat`, `exp` default to this issuer, `sigstore`,
    /// now, now + 10 min unless `claims` sets them.
    pub fn mint(&self, claims: serde_json::Value) -> String {
        let mut full = serde_json::json!({
            "iss": self.url,
            "aud": "sigstore",
            "iat": now_secs(),
            "exp": now_secs() + 600,
        });
        for (k, v) in claims.as_object().expect("claims object") {
            full[k] = v.clone();
        }
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "fake-oidc"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(full.to_string())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .unwrap();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// Check a JWT's ES256 signature with this issuer's key; return its claims.
    pub fn verify(&self, jwt: &str) -> Result<serde_json::Value, String> {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [h, p, s] = parts.as_slice() else {
            return Err("not a JWT".into());
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("bad JWT header")?;
        if header["alg"] != "ES256" {
            return Err(format!("unsupported JWT alg {}", header["alg"]));
        }
        let sig = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "bad JWT signature encoding")?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(format!("{h}.{p}").as_bytes(), &sig)
            .map_err(|_| "JWT signature does not verify with the issuer's key".to_string())?;
        URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| "bad JWT payload".to_string())
    }
}

pub fn router(s: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/gha/token", get(github_token))
        .with_state(s)
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let u = &s.oidc.url;
    Json(serde_json::json!({
        "issuer": u,
        "authorization_endpoint": format!("{u}/authorize"),
        "token_endpoint": format!("{u}/token"),
        "jwks_uri": format!("{u}/keys"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    s.oidc.authorize_requests.lock().unwrap().push(q.clone());
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code" {
        return error_response(400, "response_type must be code");
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").len() != 43 {
        return error_response(400, "PKCE S256 challenge required");
    }
    if get("client_id") != "sigstore" {
        return error_response(400, "unknown client_id");
    }
    let redirect = get("redirect_uri");
    let oob = redirect == "urn:ietf:wg:oauth:2.0:oob";
    if !oob
        && !redirect.starts_with("http://localhost:")
        && !redirect.starts_with("http://127.0.0.1:")
    {
        return error_response(400, "redirect_uri must be on localhost");
    }
    let code = hex::encode(&sha256(format!("{}{}", get("state"), now_secs()).as_bytes())[..12]);
    s.oidc.codes.lock().unwrap().insert(
        code.clone(),
        PendingCode {
            client_id: get("client_id"),
            redirect_uri: redirect.clone(),
            challenge: get("code_challenge"),
            nonce: q.get("nonce").cloned(),
        },
    );
    if oob {
        return format!("Your code: {code}").into_response();
    }
    let mut target = url::Url::parse(&redirect).unwrap();
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    Redirect::to(target.as_str()).into_response()
}

async fn token(State(s): State<Arc<Shared>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return error_response(400, "unsupported grant_type");
    }
    let Some(pending) = s.oidc.codes.lock().unwrap().remove(&get("code")) else {
        return error_response(400, "invalid_grant: unknown code");
    };
    if pending.client_id != get("client_id") || pending.redirect_uri != get("redirect_uri") {
        return error_response(400, "invalid_grant: client_id or redirect_uri differ");
    }
    let challenge = URL_SAFE_NO_PAD.encode(sha256(get("code_verifier").as_bytes()));
    if challenge != pending.challenge {
        return error_response(400, "invalid_grant: PKCE verifier does not match");
    }
    let mut claims = serde_json::json!({
        "sub": "browser-user",
        "email": BROWSER_USER_EMAIL,
        "email_verified": true,
    });
    if let Some(n) = pending.nonce {
        claims["nonce"] = n.into();
    }
    let id_token = s.oidc.mint(claims);
    Json(serde_json::json!({
        "access_token": b64(&sha256(id_token.as_bytes())),
        "token_type": "Bearer",
        "id_token": id_token,
    }))
    .into_response()
}

/// The claims of the fake GitHub Actions workload token.
pub const GITHUB_WORKFLOW_REF: &str =
    "octo-org/models/.github/workflows/release.yml@refs/heads/main";

async fn github_token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let expected = format!("bearer {}", s.oidc.request_token);
    if !auth.eq_ignore_ascii_case(&expected) {
        return error_response(401, "bad request token");
    }
    if q.get("api-version").map(String::as_str) != Some("2.0") {
        return error_response(400, "api-version lost");
    }
    let audience = q.get("audience").cloned().unwrap_or_default();
    let value = s.oidc.mint(serde_json::json!({
        "aud": audience,
        "sub": "repo:octo-org/models:ref:refs/heads/main",
        "repository": "octo-org/models",
        "job_workflow_ref": GITHUB_WORKFLOW_REF,
    }));
    Json(serde_json::json!({"count": 1, "value": value})).into_response()
}
