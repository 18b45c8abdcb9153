//! Keyless signing: OIDC identity token → short-lived Fulcio certificate → DSSE signature →
//! Rekor entry (v1: `dsse` 0.0.1; v2: `hashedrekord` 0.0.2 over the PAE) + RFC 3161 timestamp
//! (optional with v1, required with v2) → Sigstore bundle v0.3.
//!
//! One [`KeylessSigner`] is one token exchange and one Fulcio certificate (for one ephemeral
//! P-256 key), reused for every bundle it signs in a run: `sign` writes two bundles, `attest`
//! may write several, all under the same certificate.
//!
//! Nothing leaves this module unchecked: the certificate must name the identity and issuer the
//! token predicts (checked before anything is logged), the Rekor entry body must be the one we
//! sent, and every finished bundle is run through the project's verifier
//! ([`crate::verify::verify_bundle`]) against the trusted root with that identity (certificate
//! chain to a trusted Fulcio CA, embedded SCT from a trusted CT log, inclusion proof with a
//! signed checkpoint, signed entry timestamp, TSA timestamp) before it is returned, so a caller
//! never publishes a bundle a verifier would reject.
//!
//! The Rekor and TSA side ([`TransparencyLog`], [`TimestampAuthority`], [`LogVerifier`],
//! [`verify_before_publishing`], and [`ServiceFlags`] for the config flags) is shared with
//! key-based signing under
//! `--tlog-upload=true` ([`crate::signing::bundle::key_signer_with_tlog`]), whose entries name the public key instead
//! of a certificate.
//!
//! Built on the lower-level crates re-exported by `sigstore-sign` 0.15.1 (`sigstore-fulcio`,
//! `sigstore-rekor`, `sigstore-tsa`, `sigstore-bundle`): `sigstore_sign::Signer` asks Fulcio
//! for a new certificate for each bundle, which would break "one certificate per run".

pub use super::error::KeylessError;
use super::oidc::{HttpClient, IdentityToken};
use super::signing_config::Services;
use crate::verify::{Artifact, Matcher, SignerPolicy, TrustedRoot};
use sigstore_sign::bundle::BundleV03;
use sigstore_sign::crypto::{parse_certificate_info, KeyPair};
use sigstore_sign::fulcio::{FulcioClient, SigningCertificate};
use sigstore_sign::rekor::{
    DsseEntry, HashedRekordV2, RekorClient, RekorEntryBody, RekorV2Client, RekorV2KeyDetails,
};
use sigstore_sign::tsa::TimestampClient;
use sigstore_sign::types::{
    DerCertificate, DerPublicKey, DsseEnvelope, DsseSignature, KeyId, KindVersion, PayloadBytes,
    Sha256Hash, Statement, TransparencyLogEntry,
};
use std::time::Duration;

/// The payload type of every bundle we sign (in-toto Statement v1).
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where keyless signing goes and what its results must verify against.
#[derive(Clone, Debug)]
pub struct KeylessOptions {
    pub services: Services,
    /// The trusted root every finished bundle must verify against.
    pub trusted_root: TrustedRoot,
    /// A caller-configured HTTP client; default: 60 s timeout.
    pub http: Option<HttpClient>,
}

impl KeylessOptions {
    /// The public-good instance with its embedded trusted root.
    pub fn public_good() -> Result<Self, KeylessError> {
        Ok(KeylessOptions {
            services: Services::public_good(),
            trusted_root: TrustedRoot::production()
                .map_err(|e| KeylessError::Bundle(e.to_string()))?,
            http: None,
        })
    }
}

/// Build the HTTP client keyless signing uses (timeouts; rustls).
pub fn http_client() -> Result<HttpClient, KeylessError> {
    HttpClient::builder()
        .timeout(HTTP_TIMEOUT)
        .user_agent(concat!("oci-model/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| KeylessError::Http(e.to_string()))
}

/// A keyless signer holding one ephemeral key and its Fulcio certificate.
pub struct KeylessSigner {
    key: KeyPair,
    leaf: DerCertificate,
    /// The certificate's SAN (email or URI).
    identity: String,
    /// The certificate's OIDC issuer extension.
    issuer: String,
    services: Services,
    rekor: TransparencyLog,
    tsa: Option<TimestampAuthority>,
    trusted_root: TrustedRoot,
}

impl std::fmt::Debug for KeylessSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeylessSigner")
            .field("identity", &self.identity)
            .field("issuer", &self.issuer)
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl KeylessSigner {
    /// Exchange the token for a certificate (once). Checks that the certificate names the
    /// identity and issuer the token predicts before anything is signed or logged.
    pub async fn new(
        token: &IdentityToken,
        options: KeylessOptions,
    ) -> Result<KeylessSigner, KeylessError> {
        let http = match options.http {
            Some(h) => h,
            None => http_client()?,
        };
        let services = options.services;
        let fulcio_err = |reason: String| KeylessError::Fulcio {
            url: services.fulcio.clone(),
            identity: token.identity().to_string(),
            reason,
        };

        let key = KeyPair::generate_ecdsa_p256().map_err(|e| KeylessError::Key(e.to_string()))?;
        let sigstore_token = sigstore_sign::oidc::IdentityToken::from_jwt(token.raw().expose())
            .map_err(|e| fulcio_err(format!("identity token lacks claims Fulcio needs: {e}")))?;
        let fulcio = FulcioClient::builder(&services.fulcio)
            .with_http_client(http.clone())
            .build()
            .map_err(|e| fulcio_err(e.to_string()))?;
        let issued = fulcio
            .create_signing_certificate(&sigstore_token, &key)
            .await
            .map_err(|e| fulcio_err(e.to_string()))?;
        let leaf = match issued {
            SigningCertificate::EmbeddedSct { chain } => chain
                .into_iter()
                .next()
                .ok_or_else(|| fulcio_err("empty certificate chain".into()))?,
            SigningCertificate::DetachedSct { .. } => {
                return Err(fulcio_err(
                    "the certificate came with a detached SCT; Sigstore bundles need the SCT embedded in the certificate".into(),
                ))
            }
            other => return Err(fulcio_err(format!("unsupported answer {other:?}"))),
        };

        let info = parse_certificate_info(&leaf)
            .map_err(|e| fulcio_err(format!("unreadable certificate: {e}")))?;
        if info.public_key.as_bytes()
            != key
                .public_key_der()
                .map_err(|e| KeylessError::Key(e.to_string()))?
                .as_bytes()
        {
            return Err(fulcio_err(
                "the certificate is not for the public key we sent".into(),
            ));
        }
        let identity = info
            .identity
            .as_ref()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        let issuer = info.issuer.clone().unwrap_or_default();
        let expected = token.expected_certificate_identities();
        let expected_issuer = token.expected_certificate_issuer();
        if !expected.iter().any(|e| e == &identity) || issuer != expected_issuer {
            return Err(KeylessError::WrongIdentity {
                url: services.fulcio.clone(),
                origin: token.origin().to_string(),
                expected: format!("{} (issuer {expected_issuer})", expected.join(" or ")),
                actual: format!(
                    "{} (issuer {})",
                    if identity.is_empty() {
                        "no identity"
                    } else {
                        &identity
                    },
                    if issuer.is_empty() { "none" } else { &issuer }
                ),
            });
        }

        let rekor =
            TransparencyLog::with_version(&services.rekor, services.rekor_version, http.clone())?;
        let tsa = match &services.tsa {
            Some(url) => Some(TimestampAuthority::new(url, http.clone())?),
            None => None,
        };
        Ok(KeylessSigner {
            key,
            leaf,
            identity,
            issuer,
            services,
            rekor,
            tsa,
            trusted_root: options.trusted_root,
        })
    }

    /// The certificate identity (SAN: email or URI).
    pub fn identity(&self) -> &str {
        &self.identity
    }
    /// The certificate's OIDC issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
    /// The leaf certificate, PEM.
    pub fn certificate_pem(&self) -> String {
        self.leaf.to_pem()
    }
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Sign an in-toto statement as DSSE, log it in Rekor, timestamp it, build the bundle v0.3
    /// and verify it; returns the bundle JSON.
    pub async fn sign_dsse(
        &self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<serde_json::Value, KeylessError> {
        let subject = in_toto_subject(payload_type, payload)?;

        // DSSE signature over the PAE with the ephemeral key.
        let pae = sigstore_sign::types::pae(payload_type, payload);
        let signature = self
            .key
            .sign(&pae)
            .map_err(|e| KeylessError::Key(e.to_string()))?;
        let envelope = DsseEnvelope::new(
            payload_type,
            PayloadBytes::new(payload.to_vec()),
            DsseSignature::new(signature.clone(), KeyId::default()),
        );

        let tlog_entry = self
            .rekor
            .log_dsse(&envelope, &LogVerifier::Certificate(self.leaf.clone()))
            .await?;

        let mut bundle = BundleV03::with_certificate_and_dsse(self.leaf.clone(), envelope)
            .with_tlog_entry(tlog_entry);
        if let Some(tsa) = &self.tsa {
            bundle = bundle.with_rfc3161_timestamp(tsa.timestamp(&signature).await?);
        }
        let bundle = bundle.into_bundle();
        let json = bundle
            .to_json()
            .map_err(|e| KeylessError::Bundle(e.to_string()))?;

        // Verify what we are about to hand out, with the identity from the certificate (which
        // was checked against the token above).
        let policy = SignerPolicy::new().with_identity(
            Matcher::exact(self.identity.clone()),
            Matcher::exact(self.issuer.clone()),
        );
        verify_before_publishing(json.as_bytes(), &subject, &policy, &self.trusted_root)?;
        serde_json::from_str(&json).map_err(|e| KeylessError::Bundle(e.to_string()))
    }
}

/// The sha256 subject of the in-toto statement a signer is asked to sign (the verifier binds
/// the bundle to it before publishing).
pub fn in_toto_subject(
    payload_type: &str,
    payload: &[u8],
) -> Result<crate::digest::Digest, KeylessError> {
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(KeylessError::Payload(format!(
            "payload type {payload_type:?} is not {IN_TOTO_PAYLOAD_TYPE:?}"
        )));
    }
    let statement: Statement = serde_json::from_slice(payload)
        .map_err(|e| KeylessError::Payload(format!("not an in-toto statement: {e}")))?;
    let subject: Sha256Hash = statement
        .subject
        .iter()
        .find_map(|s| s.digest.sha256)
        .ok_or_else(|| {
            KeylessError::Payload("the statement has no subject with a sha256 digest".into())
        })?;
    format!("sha256:{}", subject.to_hex())
        .parse()
        .map_err(|e: crate::digest::InvalidDigest| KeylessError::Payload(e.to_string()))
}

/// Run a finished bundle through the project's verifier; a bundle a verifier would reject is
/// never handed out.
pub fn verify_before_publishing(
    bundle_json: &[u8],
    subject: &crate::digest::Digest,
    policy: &SignerPolicy,
    trusted_root: &TrustedRoot,
) -> Result<(), KeylessError> {
    crate::verify::verify_bundle(
        bundle_json,
        &Artifact::Digest(subject.clone()),
        policy,
        trusted_root,
    )
    .map(|_| ())
    .map_err(|e| KeylessError::Unverified {
        trusted_root: trusted_root.source().to_string(),
        reason: e.to_string(),
    })
}

/// An RFC 3161 timestamp authority that signatures are timestamped by (the token's message
/// imprint is the sha256 of the signature bytes). Shared by keyless signing and key signing
/// with `--timestamp-server`. The token is checked by the verifier the caller runs on the
/// finished bundle (TSA chain in the trusted root, imprint, time).
pub struct TimestampAuthority {
    url: String,
    client: TimestampClient,
}

impl std::fmt::Debug for TimestampAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimestampAuthority")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl TimestampAuthority {
    /// A client for the timestamp endpoint at `url` (full URL, e.g. `…/api/v1/timestamp`).
    pub fn new(url: &str, http: HttpClient) -> Result<Self, KeylessError> {
        let client = TimestampClient::builder(url)
            .with_http_client(http)
            .build()
            .map_err(|e| KeylessError::Tsa {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        Ok(TimestampAuthority {
            url: url.to_string(),
            client,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A timestamp token over `signature`.
    pub async fn timestamp(
        &self,
        signature: &sigstore_sign::types::SignatureBytes,
    ) -> Result<sigstore_sign::types::TimestampToken, KeylessError> {
        self.client
            .timestamp_signature(signature)
            .await
            .map_err(|e| KeylessError::Tsa {
                url: self.url.clone(),
                reason: e.to_string(),
            })
    }
}

/// Who a Rekor `dsse` entry names as the verifier of the envelope signature: the Fulcio
/// certificate (keyless) or the signer's public key (`--key` with `--tlog-upload=true`).
#[derive(Clone, Debug)]
pub enum LogVerifier {
    Certificate(DerCertificate),
    /// A SubjectPublicKeyInfo (DER).
    PublicKey(DerPublicKey),
}

impl LogVerifier {
    /// The PEM Rekor receives (base64-encoded once more on the wire).
    pub fn to_pem(&self) -> String {
        match self {
            LogVerifier::Certificate(c) => c.to_pem(),
            LogVerifier::PublicKey(k) => k.to_pem(),
        }
    }

    fn noun(&self) -> &'static str {
        match self {
            LogVerifier::Certificate(_) => "certificate",
            LogVerifier::PublicKey(_) => "public key",
        }
    }

    /// Does the verifier PEM in a logged entry body name this verifier (compared as DER)?
    fn check_logged(&self, logged_pem: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(logged_pem).map_err(|_| {
            format!(
                "the logged verifier is not PEM text (expected our {})",
                self.noun()
            )
        })?;
        let same = match self {
            LogVerifier::Certificate(c) => {
                DerCertificate::from_pem(text).map(|logged| logged.as_bytes() == c.as_bytes())
            }
            LogVerifier::PublicKey(k) => {
                DerPublicKey::from_pem(text).map(|logged| logged.as_bytes() == k.as_bytes())
            }
        }
        .map_err(|e| {
            format!(
                "the logged verifier is unreadable as a {}: {e}",
                self.noun()
            )
        })?;
        if same {
            Ok(())
        } else {
            Err(format!("the logged verifier is not our {}", self.noun()))
        }
    }
}

/// A Rekor log that DSSE envelopes are recorded in: a v1 log as `dsse` 0.0.1 entries, a v2
/// log as `hashedrekord` 0.0.2 entries over the sha256 of the envelope's PAE (how Rekor v2
/// records DSSE: it has no `dsse` type of its own), with the signature and its verifier. Shared
/// by keyless signing and key-based signing with `--tlog-upload=true`.
pub struct TransparencyLog {
    url: String,
    client: LogClient,
}

enum LogClient {
    V1(RekorClient),
    V2(RekorV2Client),
}

impl std::fmt::Debug for TransparencyLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransparencyLog")
            .field("url", &self.url)
            .field("api_version", &self.api_version())
            .finish_non_exhaustive()
    }
}

impl TransparencyLog {
    /// A client for the Rekor v1 instance at `url` (base URL).
    pub fn new(url: &str, http: HttpClient) -> Result<Self, KeylessError> {
        Self::with_version(url, 1, http)
    }

    /// A client for the Rekor log at `url` speaking `majorApiVersion` `version` (1 or 2).
    pub fn with_version(url: &str, version: u32, http: HttpClient) -> Result<Self, KeylessError> {
        let rekor_err = |reason: String| KeylessError::Rekor {
            url: url.to_string(),
            reason,
        };
        let client = match version {
            1 => LogClient::V1(
                RekorClient::builder(url)
                    .with_http_client(http)
                    .build()
                    .map_err(|e| rekor_err(e.to_string()))?,
            ),
            2 => LogClient::V2(
                RekorV2Client::builder(url)
                    .with_http_client(http)
                    .build()
                    .map_err(|e| rekor_err(e.to_string()))?,
            ),
            other => return Err(rekor_err(format!("Rekor API v{other} is not supported"))),
        };
        Ok(TransparencyLog {
            url: url.to_string(),
            client,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A failure of this log, naming it.
    fn error(&self, reason: String) -> KeylessError {
        KeylessError::Rekor {
            url: self.url.clone(),
            reason,
        }
    }

    /// The log's `majorApiVersion`.
    pub fn api_version(&self) -> u32 {
        match self.client {
            LogClient::V1(_) => 1,
            LogClient::V2(_) => 2,
        }
    }

    /// Upload `envelope` (one signature) with its `verifier` and return the bundle's log entry.
    /// Refuses an answer whose body is not the entry for our payload, signature and verifier,
    /// or that lacks what its version must carry (v1: inclusion proof and signed entry
    /// timestamp; v2: inclusion proof with a checkpoint, and no SET or integrated time). The
    /// proof, the checkpoint and the SET themselves are checked by the verifier the caller runs
    /// on the finished bundle.
    pub async fn log_dsse(
        &self,
        envelope: &DsseEnvelope,
        verifier: &LogVerifier,
    ) -> Result<TransparencyLogEntry, KeylessError> {
        match &self.client {
            LogClient::V1(client) => self.log_dsse_v1(client, envelope, verifier).await,
            LogClient::V2(client) => self.log_dsse_v2(client, envelope, verifier).await,
        }
    }

    async fn log_dsse_v2(
        &self,
        client: &RekorV2Client,
        envelope: &DsseEnvelope,
        verifier: &LogVerifier,
    ) -> Result<TransparencyLogEntry, KeylessError> {
        let rekor_err = |reason: String| self.error(reason);
        let pae = sigstore_sign::types::pae(&envelope.payload_type, envelope.payload.as_bytes());
        let digest = sigstore_sign::crypto::sha256(&pae);
        let signature = &envelope.signature.sig;
        // Rekor v2 takes a SHA-256 digest: P-256 keys only (the keyless ephemeral key is one).
        let request = match verifier {
            LogVerifier::Certificate(cert) => HashedRekordV2::new_with_certificate(
                &digest,
                signature,
                cert,
                RekorV2KeyDetails::PkixEcdsaP256Sha256,
            ),
            LogVerifier::PublicKey(key) => HashedRekordV2::new_with_public_key(
                &digest,
                signature,
                key,
                RekorV2KeyDetails::PkixEcdsaP256Sha256,
            ),
        };
        // The client refuses an answer whose body is not our digest, signature and verifier,
        // that carries a SET or an integrated time, or that has no inclusion proof/checkpoint.
        client.create_entry(request).await.map_err(|e| match e {
            sigstore_sign::rekor::Error::InvalidResponse(reason)
                if reason.contains("does not match") =>
            {
                KeylessError::RekorBodyMismatch {
                    url: self.url.clone(),
                    reason,
                }
            }
            other => rekor_err(format!(
                "upload of the hashedrekord v0.0.2 entry failed: {other}"
            )),
        })
    }

    async fn log_dsse_v1(
        &self,
        client: &RekorClient,
        envelope: &DsseEnvelope,
        verifier: &LogVerifier,
    ) -> Result<TransparencyLogEntry, KeylessError> {
        let rekor_err = |reason: String| self.error(reason);
        let request = dsse_entry(envelope, verifier).map_err(rekor_err)?;
        let log_entry = client
            .create_dsse_entry(request)
            .await
            .map_err(|e| rekor_err(format!("upload of the dsse entry failed: {e}")))?;
        let verification = log_entry.verification.as_ref();
        let missing =
            |what: &str| rekor_err(format!("log entry {} has no {what}", log_entry.log_index));
        if verification
            .and_then(|v| v.inclusion_proof.as_ref())
            .is_none()
        {
            return Err(missing("inclusion proof"));
        }
        if verification
            .and_then(|v| v.signed_entry_timestamp.as_ref())
            .is_none()
        {
            return Err(missing("signed entry timestamp"));
        }
        check_entry_body(log_entry.body.as_bytes(), envelope, verifier).map_err(|reason| {
            KeylessError::RekorBodyMismatch {
                url: self.url.clone(),
                reason,
            }
        })?;
        log_entry
            .to_bundle_entry(KindVersion::DsseV001)
            .map_err(|e| rekor_err(format!("malformed log entry: {e}")))
    }
}

/// The `dsse` 0.0.1 request (`proposedContent`: the envelope JSON and the verifier as base64
/// of PEM). `sigstore-rekor` builds it for a certificate only; for a public key the same
/// request is built from its documented JSON form.
fn dsse_entry(envelope: &DsseEnvelope, verifier: &LogVerifier) -> Result<DsseEntry, String> {
    use base64::Engine as _;
    match verifier {
        LogVerifier::Certificate(cert) => DsseEntry::new(envelope, cert).map_err(|e| e.to_string()),
        LogVerifier::PublicKey(_) => {
            let envelope_json = serde_json::to_string(envelope).map_err(|e| e.to_string())?;
            let pem_b64 = base64::engine::general_purpose::STANDARD.encode(verifier.to_pem());
            serde_json::from_value(serde_json::json!({
                "apiVersion": "0.0.1",
                "kind": "dsse",
                "spec": {"proposedContent": {"envelope": envelope_json, "verifiers": [pem_b64]}},
            }))
            .map_err(|e| format!("dsse entry request: {e}"))
        }
    }
}

/// The log entry body must be the `dsse` 0.0.1 entry Rekor derives from what we sent: the
/// payload hash of our payload, exactly our one signature with our verifier.
fn check_entry_body(
    body: &[u8],
    envelope: &DsseEnvelope,
    verifier: &LogVerifier,
) -> Result<(), String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    let version = value
        .get("apiVersion")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    if (kind, version) != ("dsse", "0.0.1") {
        return Err(format!(
            "entry kind is {kind} {version}, expected dsse 0.0.1"
        ));
    }
    let parsed = RekorEntryBody::from_json(body, "dsse", "0.0.1").map_err(|e| e.to_string())?;
    let RekorEntryBody::DsseV001(dsse) = parsed else {
        return Err("entry is not a dsse 0.0.1 body".into());
    };
    let want_payload = sigstore_sign::crypto::sha256(envelope.payload.as_bytes()).to_hex();
    if dsse.spec.payload_hash.value != want_payload {
        return Err(format!(
            "payloadHash is {}, expected sha256 {want_payload}",
            dsse.spec.payload_hash.value
        ));
    }
    let [sig] = dsse.spec.signatures.as_slice() else {
        return Err(format!(
            "{} signatures, expected exactly ours",
            dsse.spec.signatures.len()
        ));
    };
    if sig.signature.as_bytes() != envelope.signature.sig.as_bytes() {
        return Err("the logged signature is not ours".into());
    }
    verifier.check_logged(sig.verifier.as_bytes())
}

#[async_trait::async_trait]
impl super::Signer for KeylessSigner {
    fn describe(&self) -> String {
        format!("keyless: {} (issuer {})", self.identity, self.issuer)
    }

    async fn sign_dsse(
        &self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<super::SignedBundle, super::SigningError> {
        let bundle = KeylessSigner::sign_dsse(self, payload_type, payload)
            .await
            .map_err(|e| super::SigningError::Keyless(Box::new(e)))?;
        Ok(super::SignedBundle {
            json: serde_json::to_vec(&bundle).expect("JSON value serializes"),
            signer: super::Signer::describe(self),
        })
    }
}

/// Which Sigstore services a signer talks to and which trusted root its bundles must verify
/// against: `--signing-config`, the URL overrides and `--trusted-root`.
#[derive(Clone, Debug, Default)]
pub struct ServiceFlags {
    /// `--signing-config FILE`: a signing config v0.2 or a ClientTrustConfig.
    pub signing_config: Option<std::path::PathBuf>,
    pub fulcio_url: Option<String>,
    pub rekor_url: Option<String>,
    pub tsa_url: Option<String>,
    /// `--trusted-root FILE`; else the ClientTrustConfig's root; else `default_trusted_root`;
    /// else the embedded public-good root.
    pub trusted_root: Option<std::path::PathBuf>,
    /// The public-good root to use instead of the embedded one (the one `trusted-root update`
    /// cached, see `crate::trust_update::current`).
    pub default_trusted_root: Option<TrustedRoot>,
}

impl ServiceFlags {
    /// The services (signing config, default public-good, with the URL overrides applied)
    /// and the trusted root.
    pub fn resolve(&self) -> Result<(Services, TrustedRoot), KeylessError> {
        let (services, ctc_root) = match &self.signing_config {
            Some(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| {
                    super::signing_config::SigningConfigError {
                        source_name: name.clone(),
                        reason: e.to_string(),
                    }
                })?;
                let loaded = Services::from_json(&text, &name)?;
                (loaded.services, loaded.trusted_root_json.map(|j| (j, name)))
            }
            None => (Services::public_good(), None),
        };
        let services = services.with_overrides(
            self.fulcio_url.clone(),
            self.rekor_url.clone(),
            self.tsa_url.clone(),
        );
        let trust_err = |e: crate::verify::VerifyError| {
            KeylessError::Config(super::signing_config::SigningConfigError {
                source_name: "trusted root".into(),
                reason: e.to_string(),
            })
        };
        let trusted_root = match (&self.trusted_root, ctc_root) {
            (Some(path), _) => TrustedRoot::from_file(path).map_err(trust_err)?,
            (None, Some((json, name))) => {
                TrustedRoot::from_json(&json, &format!("{name} (trustedRoot)"))
                    .map_err(trust_err)?
            }
            (None, None) => match &self.default_trusted_root {
                Some(root) => root.clone(),
                None => TrustedRoot::production().map_err(trust_err)?,
            },
        };
        Ok((services, trusted_root))
    }
}

/// Everything `sign --keyless` / `attest --keyless` resolve from flags and the environment
/// (the CLI fills it; the library reads no environment).
#[derive(Default)]
pub struct KeylessSetup {
    pub services: ServiceFlags,
    /// `--tlog-upload`: unset or true (keyless signing always logs; false is refused).
    pub tlog_upload: Option<bool>,
    /// Token sources (explicit flag, SIGSTORE_ID_TOKEN, GitHub Actions, interactive login).
    /// For the interactive login, `issuer` may be left empty: the signing config's OIDC URL
    /// is used.
    pub sources: super::oidc::TokenSources,
}

/// Resolve services and trust, obtain the identity token (once) and the certificate (once).
pub async fn start(setup: KeylessSetup) -> Result<KeylessSigner, KeylessError> {
    if setup.tlog_upload == Some(false) {
        return Err(KeylessError::Usage(
            "--tlog-upload=false is refused with --keyless: a keyless certificate expires in minutes, and only the transparency log entry proves it was valid when the signature was made".into(),
        ));
    }
    let (services, trusted_root) = setup.services.resolve()?;
    let http = http_client()?;
    let mut sources = setup.sources;
    if let Some(login) = sources.interactive.as_mut() {
        if login.issuer.is_empty() {
            match &services.oidc {
                Some(url) => login.issuer = url.clone(),
                None => sources.interactive = None,
            }
        }
    }
    let token = super::oidc::obtain_token(&http, sources).await?;
    KeylessSigner::new(
        &token,
        KeylessOptions {
            services,
            trusted_root,
            http: Some(http),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::keys::{KeyKind, PrivateKey};
    use base64::Engine as _;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    fn signed(key: &PrivateKey) -> DsseEnvelope {
        let payload = br#"{"_type":"https://in-toto.io/Statement/v1"}"#;
        let sig = key
            .sign(&sigstore_sign::types::pae(IN_TOTO_PAYLOAD_TYPE, payload))
            .unwrap();
        DsseEnvelope::new(
            IN_TOTO_PAYLOAD_TYPE,
            PayloadBytes::new(payload.to_vec()),
            DsseSignature::new(sig.into(), KeyId::default()),
        )
    }

    fn key_verifier(key: &PrivateKey) -> LogVerifier {
        LogVerifier::PublicKey(DerPublicKey::new(key.public_key().spki_der().to_vec()))
    }

    /// A `dsse` 0.0.1 body as Rekor logs it, with these signatures and verifier PEMs.
    fn body(envelope: &DsseEnvelope, sigs: &[(&[u8], &str)]) -> Vec<u8> {
        let payload_hash = sigstore_sign::crypto::sha256(envelope.payload.as_bytes()).to_hex();
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "envelopeHash": {"algorithm": "sha256", "value": payload_hash},
                "payloadHash": {"algorithm": "sha256", "value": payload_hash},
                "signatures": sigs.iter().map(|(sig, pem)| serde_json::json!({
                    "signature": B64.encode(sig),
                    "verifier": B64.encode(pem),
                })).collect::<Vec<_>>(),
            },
        }))
        .unwrap()
    }

    #[test]
    fn public_key_dsse_request_carries_the_envelope_and_the_key_pem() {
        let key = PrivateKey::generate(KeyKind::P256).unwrap();
        let envelope = signed(&key);
        let request =
            serde_json::to_value(dsse_entry(&envelope, &key_verifier(&key)).unwrap()).unwrap();
        assert_eq!(request["kind"], "dsse");
        assert_eq!(request["apiVersion"], "0.0.1");
        let content = &request["spec"]["proposedContent"];
        let verifiers = content["verifiers"].as_array().unwrap();
        assert_eq!(verifiers.len(), 1);
        let pem = String::from_utf8(B64.decode(verifiers[0].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(
            DerPublicKey::from_pem(&pem).unwrap().as_bytes(),
            key.public_key().spki_der()
        );
        let sent: serde_json::Value =
            serde_json::from_str(content["envelope"].as_str().unwrap()).unwrap();
        assert_eq!(
            sent["signatures"][0]["sig"],
            B64.encode(envelope.signature.sig.as_bytes())
        );
        assert!(request["spec"].get("signatures").is_none());
    }

    #[test]
    fn entry_body_must_name_our_signature_and_public_key() {
        let key = PrivateKey::generate(KeyKind::P256).unwrap();
        let other = PrivateKey::generate(KeyKind::P256).unwrap();
        let envelope = signed(&key);
        let verifier = key_verifier(&key);
        let sig = envelope.signature.sig.as_bytes().to_vec();
        let ours = key.public_key().to_pem();

        check_entry_body(&body(&envelope, &[(&sig, &ours)]), &envelope, &verifier).unwrap();

        let err = check_entry_body(
            &body(&envelope, &[(&sig, &other.public_key().to_pem())]),
            &envelope,
            &verifier,
        )
        .unwrap_err();
        assert!(err.contains("not our public key"), "{err}");

        let cert_pem = "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n";
        let err = check_entry_body(&body(&envelope, &[(&sig, cert_pem)]), &envelope, &verifier)
            .unwrap_err();
        assert!(err.contains("unreadable as a public key"), "{err}");

        let err = check_entry_body(
            &body(&envelope, &[(&sig, &ours), (&sig, &ours)]),
            &envelope,
            &verifier,
        )
        .unwrap_err();
        assert!(err.contains("2 signatures"), "{err}");

        let err = check_entry_body(
            &body(&envelope, &[(b"forged", &ours)]),
            &envelope,
            &verifier,
        )
        .unwrap_err();
        assert!(err.contains("not ours"), "{err}");
    }
}
