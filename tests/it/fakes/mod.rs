//! A fake Sigstore instance for offline tests: an OIDC issuer, Fulcio, Rekor v1, Rekor v2 and an
//! RFC 3161 timestamp authority, each an in-process axum server on its own 127.0.0.1 port, speaking
//! the real wire formats with keys minted fresh per instance. It writes a `trusted_root.json`,
//! a `signing_config.json` (v0.2) and a `ClientTrustConfig` (sigstore-python `--trust-config`)
//! naming its URLs and keys.
//!
//! Strict on input: Fulcio checks the token's signature against the issuer's key, its
//! audience and expiry, and the proof of possession; Rekor checks the DSSE signature against
//! the submitted certificate. Fault switches ([`Fault`]) make one service misbehave in one way.

#![allow(dead_code)]

pub mod fulcio;
pub mod oidc;
pub mod rekor;
pub mod tsa;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// One way for the fake to misbehave. Each must make signing refuse to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fulcio embeds an SCT whose signature does not verify with the CT log key.
    BadSct,
    /// Rekor signs the checkpoint and the SET with a key the trusted root does not know.
    BadLogSignature,
    /// Fulcio issues from a CA that is not in the trusted root.
    UntrustedCa,
    /// Fulcio issues the certificate for another identity than the token's.
    OtherIdentity,
    /// Rekor returns an inclusion proof that does not lead to the (signed) root.
    BrokenInclusionProof,
    /// Rekor logs (and returns, consistently signed) a body for another payload.
    BodyMismatch,
    /// The TSA signs its timestamp with a key the trusted root does not know.
    BadTimestamp,
}

/// An ECDSA P-256 key with its SubjectPublicKeyInfo.
pub struct EcKey {
    pair: EcdsaKeyPair,
    pub spki: Vec<u8>,
}

/// DER prefix of a P-256 SubjectPublicKeyInfo before the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl EcKey {
    pub fn generate() -> EcKey {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("P-256 key");
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        EcKey { pair, spki }
    }
    /// ECDSA-SHA256 signature, ASN.1 DER.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        self.pair
            .sign(&SystemRandom::new(), msg)
            .expect("sign")
            .as_ref()
            .to_vec()
    }
    /// sha256 of the SPKI DER: the log ID of a Rekor or CT log key.
    pub fn key_id(&self) -> [u8; 32] {
        sha256(&self.spki)
    }
}

/// Verify an ECDSA P-256 SHA-256 DER signature with a SubjectPublicKeyInfo.
pub fn ecdsa_verify(spki_der: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    use der::Decode as _;
    let Ok(spki) = spki::SubjectPublicKeyInfoRef::from_der(spki_der) else {
        return false;
    };
    let point = spki.subject_public_key.raw_bytes();
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point,
    )
    .verify(msg, sig)
    .is_ok()
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim()).ok()
}

/// PEM with 64-column lines and a trailing newline (Go's and OpenSSL's layout).
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = b64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside the first PEM block of `text` with this label.
pub fn unpem(label: &str, text: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = text[start..].find(&end)? + start;
    let body: String = text[start..stop].split_whitespace().collect();
    B64.decode(body).ok()
}

/// JSON with object keys sorted and no whitespace (RFC 8785 for the values used here).
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn sort(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sort(&m[k]));
                }
                serde_json::Value::Object(out)
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string(&sort(v)).unwrap()
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// RFC 3339 UTC time for trusted-root `validFor`.
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// State shared by the fake's servers.
pub struct Shared {
    pub fault: Mutex<Option<Fault>>,
    pub oidc: oidc::Issuer,
    pub fulcio: fulcio::Ca,
    pub rekor: rekor::Log,
    /// The Rekor v2 log (own URL, key and tree).
    pub rekor_v2: rekor::Log,
    pub tsa: tsa::Authority,
}

impl Shared {
    pub fn fault(&self) -> Option<Fault> {
        *self.fault.lock().unwrap()
    }
}

/// A running fake Sigstore instance. Dropping it stops the servers.
pub struct FakeSigstore {
    pub oidc_url: String,
    pub fulcio_url: String,
    pub rekor_url: String,
    /// The Rekor v2 log's base URL (`POST /api/v2/log/entries`).
    pub rekor_v2_url: String,
    pub tsa_url: String,
    /// GitHub Actions' `ACTIONS_ID_TOKEN_REQUEST_URL` (served by the OIDC fake).
    pub github_request_url: String,
    /// The request token the GitHub Actions endpoint accepts.
    pub github_request_token: String,
    pub trusted_root_path: PathBuf,
    pub signing_config_path: PathBuf,
    pub trust_config_path: PathBuf,
    /// A ClientTrustConfig whose signing config lists the Rekor v2 log first (`majorApiVersion`
    /// 2), then the v1 log, like the staging instance's: signing picks the v2 log.
    pub trust_config_v2_path: PathBuf,
    pub shared: Arc<Shared>,
    dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn bind() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.set_nonblocking(true).unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

impl FakeSigstore {
    pub fn start() -> FakeSigstore {
        let (oidc_l, oidc_url) = bind();
        let (fulcio_l, fulcio_url) = bind();
        let (rekor_l, rekor_url) = bind();
        let (rekor_v2_l, rekor_v2_url) = bind();
        let (tsa_l, tsa_base) = bind();
        let tsa_url = format!("{tsa_base}/api/v1/timestamp");
        let github_request_token = format!(
            "gha-request-{}",
            hex::encode(&sha256(oidc_url.as_bytes())[..8])
        );
        let shared = Arc::new(Shared {
            fault: Mutex::new(None),
            oidc: oidc::Issuer::new(&oidc_url, &github_request_token),
            fulcio: fulcio::Ca::new(&oidc_url),
            rekor: rekor::Log::new(),
            rekor_v2: rekor::Log::new(),
            tsa: tsa::Authority::new(),
        });

        let dir = tempfile::tempdir().unwrap();
        let trusted_root =
            trusted_root_json(&shared, &fulcio_url, &rekor_url, &rekor_v2_url, &tsa_url);
        let signing_config = signing_config_json(&oidc_url, &fulcio_url, &rekor_url, &tsa_url);
        let mut signing_config_v2 = signing_config.clone();
        let mut v2_log = signing_config_v2["rekorTlogUrls"][0].clone();
        v2_log["url"] = rekor_v2_url.clone().into();
        v2_log["majorApiVersion"] = 2.into();
        signing_config_v2["rekorTlogUrls"]
            .as_array_mut()
            .unwrap()
            .insert(0, v2_log);
        let trust_config_v2 = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": trusted_root,
            "signingConfig": signing_config_v2,
        });
        let trust_config = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": trusted_root,
            "signingConfig": signing_config,
        });
        let trusted_root_path = dir.path().join("trusted_root.json");
        let signing_config_path = dir.path().join("signing_config.json");
        let trust_config_path = dir.path().join("trust_config.json");
        let trust_config_v2_path = dir.path().join("trust_config_rekor_v2.json");
        std::fs::write(
            &trust_config_v2_path,
            serde_json::to_vec_pretty(&trust_config_v2).unwrap(),
        )
        .unwrap();
        std::fs::write(
            &trusted_root_path,
            serde_json::to_vec_pretty(&trusted_root).unwrap(),
        )
        .unwrap();
        std::fs::write(
            &signing_config_path,
            serde_json::to_vec_pretty(&signing_config).unwrap(),
        )
        .unwrap();
        std::fs::write(
            &trust_config_path,
            serde_json::to_vec_pretty(&trust_config).unwrap(),
        )
        .unwrap();

        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let serve = |l: std::net::TcpListener, router: axum::Router| {
                    let l = tokio::net::TcpListener::from_std(l).unwrap();
                    tokio::spawn(async move {
                        axum::serve(l, router).await.ok();
                    })
                };
                let tasks = [
                    serve(oidc_l, oidc::router(s.clone())),
                    serve(fulcio_l, fulcio::router(s.clone())),
                    serve(rekor_l, rekor::router(s.clone())),
                    serve(rekor_v2_l, rekor::router_v2(s.clone())),
                    serve(tsa_l, tsa::router(s.clone())),
                ];
                let _ = rx.await;
                for t in tasks {
                    t.abort();
                }
            });
        });
        FakeSigstore {
            github_request_url: format!("{oidc_url}/gha/token?api-version=2.0"),
            github_request_token,
            oidc_url,
            fulcio_url,
            rekor_url,
            rekor_v2_url,
            tsa_url,
            trusted_root_path,
            signing_config_path,
            trust_config_path,
            trust_config_v2_path,
            shared,
            dir,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn with_fault(fault: Fault) -> FakeSigstore {
        let f = Self::start();
        f.set_fault(Some(fault));
        f
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// The issuer URL (`iss` of minted tokens; the certificates' OIDC issuer).
    pub fn issuer(&self) -> &str {
        &self.oidc_url
    }

    /// A token for an email identity.
    pub fn token_for_email(&self, email: &str) -> String {
        self.shared.oidc.mint(serde_json::json!({
            "sub": format!("user-{}", hex::encode(&sha256(email.as_bytes())[..4])),
            "email": email,
            "email_verified": true,
        }))
    }

    /// A token without an `email` claim (a CI workload); the certificate SAN is the URI `sub`.
    pub fn token_for_workload(&self, sub_uri: &str) -> String {
        self.shared.oidc.mint(serde_json::json!({ "sub": sub_uri }))
    }

    /// A token with arbitrary extra claims (iss/aud/iat/exp are filled unless given).
    pub fn token_with(&self, claims: serde_json::Value) -> String {
        self.shared.oidc.mint(claims)
    }

    /// Entries in the fake Rekor log (including the seed entries).
    pub fn rekor_size(&self) -> usize {
        self.shared.rekor.size()
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The trusted root JSON text.
    pub fn trusted_root(&self) -> String {
        std::fs::read_to_string(&self.trusted_root_path).unwrap()
    }
}

impl Drop for FakeSigstore {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn public_key_json(spki: &[u8], start: i64) -> serde_json::Value {
    serde_json::json!({
        "rawBytes": b64(spki),
        "keyDetails": "PKIX_ECDSA_P256_SHA_256",
        "validFor": {"start": rfc3339(start)},
    })
}

fn trusted_root_json(
    s: &Shared,
    fulcio_url: &str,
    rekor_url: &str,
    rekor_v2_url: &str,
    tsa_url: &str,
) -> serde_json::Value {
    let start = now_secs() - 24 * 3600;
    serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [{
            "baseUrl": rekor_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": public_key_json(&s.rekor.key.spki, start),
            "logId": {"keyId": b64(&s.rekor.key.key_id())},
        }, {
            "baseUrl": rekor_v2_url,
            "hashAlgorithm": "SHA2_256",
            "publicKey": public_key_json(&s.rekor_v2.key.spki, start),
            "logId": {"keyId": b64(&s.rekor_v2.key.key_id())},
        }],
        "certificateAuthorities": [{
            "subject": {"organization": "oci-model-test", "commonName": "fake-fulcio"},
            "uri": fulcio_url,
            "certChain": {"certificates": [
                {"rawBytes": b64(&s.fulcio.trusted.intermediate.der)},
                {"rawBytes": b64(&s.fulcio.trusted.root.der)},
            ]},
            "validFor": {"start": rfc3339(start)},
        }],
        "ctlogs": [{
            "baseUrl": format!("{fulcio_url}/ct"),
            "hashAlgorithm": "SHA2_256",
            "publicKey": public_key_json(&s.fulcio.ct_key.spki, start),
            "logId": {"keyId": b64(&s.fulcio.ct_key.key_id())},
        }],
        "timestampAuthorities": [{
            "subject": {"organization": "oci-model-test", "commonName": "fake-tsa"},
            "uri": tsa_url,
            "certChain": {"certificates": [
                {"rawBytes": b64(&s.tsa.leaf_der)},
                {"rawBytes": b64(&s.tsa.root_der)},
            ]},
            "validFor": {"start": rfc3339(start)},
        }],
    })
}

fn signing_config_json(oidc: &str, fulcio: &str, rekor: &str, tsa: &str) -> serde_json::Value {
    let start = rfc3339(now_secs() - 24 * 3600);
    let endpoint = |url: &str| {
        serde_json::json!({
            "url": url, "majorApiVersion": 1,
            "validFor": {"start": start}, "operator": "oci-model-test",
        })
    };
    serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
        "caUrls": [endpoint(fulcio)],
        "oidcUrls": [endpoint(oidc)],
        "rekorTlogUrls": [endpoint(rekor)],
        "tsaUrls": [endpoint(tsa)],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    })
}

/// An axum error answer with a JSON `{code, message}` body, as Fulcio and Rekor send.
pub fn error_response(status: u16, message: impl Into<String>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let status = axum::http::StatusCode::from_u16(status).unwrap();
    (
        status,
        axum::Json(serde_json::json!({"code": status.as_u16(), "message": message.into()})),
    )
        .into_response()
}
