//! Keyless signing: OIDC identity token → short-lived Fulcio certificate → DSSE signature →
//! Rekor v1 `dsse` entry (+ optional RFC 3161 timestamp) → Sigstore bundle v0.3.
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
//! Built on the lower-level crates re-exported by `sigstore-sign` 0.15.1 (`sigstore-fulcio`,
//! `sigstore-rekor`, `sigstore-tsa`, `sigstore-bundle`): `sigstore_sign::Signer` asks Fulcio
//! for a new certificate for each bundle, which would break "one certificate per run".

use super::oidc::{HttpClient, IdentityToken};
use super::signing_config::Services;
use crate::verify::{Artifact, Matcher, SignerPolicy, TrustedRoot};
use sigstore_sign::bundle::BundleV03;
use sigstore_sign::crypto::{parse_certificate_info, KeyPair};
use sigstore_sign::fulcio::{FulcioClient, SigningCertificate};
use sigstore_sign::rekor::{DsseEntry, RekorClient, RekorEntryBody};
use sigstore_sign::tsa::TimestampClient;
use sigstore_sign::types::{
    DerCertificate, DsseEnvelope, DsseSignature, KeyId, KindVersion, PayloadBytes, Sha256Hash,
    Statement,
};
use std::time::Duration;

/// The payload type of every bundle we sign (in-toto Statement v1).
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum KeylessError {
    #[error(transparent)]
    Token(#[from] super::oidc::OidcError),
    #[error(transparent)]
    Config(#[from] super::signing_config::SigningConfigError),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("ephemeral key: {0}")]
    Key(String),
    #[error("Fulcio {url}: certificate request for {identity} failed: {reason}")]
    Fulcio {
        url: String,
        identity: String,
        reason: String,
    },
    #[error("Fulcio {url} issued a certificate for {actual}, but the identity token (from {origin}) is for {expected}; refusing to sign")]
    WrongIdentity {
        url: String,
        origin: String,
        expected: String,
        actual: String,
    },
    #[error("Rekor {url}: {reason}")]
    Rekor { url: String, reason: String },
    #[error("Rekor {url} returned a log entry that does not match the submitted DSSE entry: {reason}; refusing to publish")]
    RekorBodyMismatch { url: String, reason: String },
    #[error("timestamp authority {url}: {reason}")]
    Tsa { url: String, reason: String },
    #[error("payload: {0}")]
    Payload(String),
    /// A combination of options keyless signing does not allow.
    #[error("{0}")]
    Usage(String),
    #[error("refusing to publish: the keyless bundle does not verify against the trusted root ({trusted_root}): {reason}")]
    Unverified {
        trusted_root: String,
        reason: String,
    },
    #[error("bundle serialization: {0}")]
    Bundle(String),
}

impl KeylessError {
    /// Exit code class: a service answer that fails our checks is a verification failure (1),
    /// bad input 2, a service that cannot be reached or refuses the request 3.
    pub fn exit_class(&self) -> u8 {
        match self {
            KeylessError::WrongIdentity { .. }
            | KeylessError::RekorBodyMismatch { .. }
            | KeylessError::Unverified { .. } => 1,
            KeylessError::Fulcio { .. }
            | KeylessError::Rekor { .. }
            | KeylessError::Tsa { .. }
            | KeylessError::Http(_) => 3,
            KeylessError::Token(
                super::oidc::OidcError::GitHub { .. } | super::oidc::OidcError::Login { .. },
            ) => 3,
            _ => 2,
        }
    }
}

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
    rekor: RekorClient,
    tsa: Option<TimestampClient>,
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

        let rekor = RekorClient::builder(&services.rekor)
            .with_http_client(http.clone())
            .build()
            .map_err(|e| KeylessError::Rekor {
                url: services.rekor.clone(),
                reason: e.to_string(),
            })?;
        let tsa = match &services.tsa {
            Some(url) => Some(
                TimestampClient::builder(url)
                    .with_http_client(http.clone())
                    .build()
                    .map_err(|e| KeylessError::Tsa {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?,
            ),
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
        if payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(KeylessError::Payload(format!(
                "payload type {payload_type:?} is not {IN_TOTO_PAYLOAD_TYPE:?}"
            )));
        }
        let statement: Statement = serde_json::from_slice(payload)
            .map_err(|e| KeylessError::Payload(format!("not an in-toto statement: {e}")))?;
        let subject_digest: Sha256Hash = statement
            .subject
            .iter()
            .find_map(|s| s.digest.sha256)
            .ok_or_else(|| {
                KeylessError::Payload("the statement has no subject with a sha256 digest".into())
            })?;

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

        // Rekor v1 dsse 0.0.1 entry.
        let rekor_err = |reason: String| KeylessError::Rekor {
            url: self.services.rekor.clone(),
            reason,
        };
        let request =
            DsseEntry::new(&envelope, &self.leaf).map_err(|e| rekor_err(e.to_string()))?;
        let log_entry = self
            .rekor
            .create_dsse_entry(request)
            .await
            .map_err(|e| rekor_err(format!("upload of the dsse entry failed: {e}")))?;
        let verification = log_entry.verification.as_ref();
        if verification
            .and_then(|v| v.inclusion_proof.as_ref())
            .is_none()
        {
            return Err(rekor_err(format!(
                "log entry {} has no inclusion proof",
                log_entry.log_index
            )));
        }
        if verification
            .and_then(|v| v.signed_entry_timestamp.as_ref())
            .is_none()
        {
            return Err(rekor_err(format!(
                "log entry {} has no signed entry timestamp",
                log_entry.log_index
            )));
        }
        check_entry_body(log_entry.body.as_bytes(), &envelope, &self.leaf).map_err(|reason| {
            KeylessError::RekorBodyMismatch {
                url: self.services.rekor.clone(),
                reason,
            }
        })?;
        let tlog_entry = log_entry
            .to_bundle_entry(KindVersion::DsseV001)
            .map_err(|e| rekor_err(format!("malformed log entry: {e}")))?;

        let mut bundle = BundleV03::with_certificate_and_dsse(self.leaf.clone(), envelope)
            .with_tlog_entry(tlog_entry);
        if let (Some(tsa), Some(url)) = (&self.tsa, &self.services.tsa) {
            let token =
                tsa.timestamp_signature(&signature)
                    .await
                    .map_err(|e| KeylessError::Tsa {
                        url: url.clone(),
                        reason: e.to_string(),
                    })?;
            bundle = bundle.with_rfc3161_timestamp(token);
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
        let digest: crate::digest::Digest =
            format!("sha256:{}", subject_digest.to_hex())
                .parse()
                .map_err(|e: crate::digest::InvalidDigest| KeylessError::Payload(e.to_string()))?;
        crate::verify::verify_bundle(
            json.as_bytes(),
            Some(&Artifact::Digest(digest)),
            &policy,
            &self.trusted_root,
        )
        .map_err(|e| KeylessError::Unverified {
            trusted_root: self.trusted_root.source().to_string(),
            reason: e.to_string(),
        })?;
        serde_json::from_str(&json).map_err(|e| KeylessError::Bundle(e.to_string()))
    }
}

/// The log entry body must be the `dsse` 0.0.1 entry Rekor derives from what we sent: the
/// payload hash of our payload, exactly our one signature with our certificate.
fn check_entry_body(
    body: &[u8],
    envelope: &DsseEnvelope,
    leaf: &DerCertificate,
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
    match sig.parse_certificate() {
        Ok(cert) if cert.as_bytes() == leaf.as_bytes() => Ok(()),
        Ok(_) => Err("the logged verifier is not our certificate".into()),
        Err(e) => Err(format!("the logged verifier is unreadable: {e}")),
    }
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

/// Everything `sign --keyless` / `attest --keyless` resolve from flags and the environment
/// (the CLI fills it; the library reads no environment).
#[derive(Default)]
pub struct KeylessSetup {
    /// `--signing-config FILE`: a signing config v0.2 or a ClientTrustConfig.
    pub signing_config: Option<std::path::PathBuf>,
    pub fulcio_url: Option<String>,
    pub rekor_url: Option<String>,
    pub tsa_url: Option<String>,
    /// `--trusted-root FILE`; else the ClientTrustConfig's root; else the public-good root.
    pub trusted_root: Option<std::path::PathBuf>,
    /// `--tlog-upload` (keyless signing requires true).
    pub tlog_upload: bool,
    /// Token sources (explicit flag, SIGSTORE_ID_TOKEN, GitHub Actions, interactive login).
    /// For the interactive login, `issuer` may be left empty: the signing config's OIDC URL
    /// is used.
    pub sources: super::oidc::TokenSources,
}

/// Resolve services and trust, obtain the identity token (once) and the certificate (once).
pub async fn start(setup: KeylessSetup) -> Result<KeylessSigner, KeylessError> {
    if !setup.tlog_upload {
        return Err(KeylessError::Usage(
            "--tlog-upload=false is only allowed with --key: a keyless certificate expires in minutes, and only the transparency log entry proves it was valid when the signature was made".into(),
        ));
    }
    let (services, ctc_root) = match &setup.signing_config {
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
    let services = services.with_overrides(setup.fulcio_url, setup.rekor_url, setup.tsa_url);
    let trust_err = |e: crate::verify::VerifyError| {
        KeylessError::Config(super::signing_config::SigningConfigError {
            source_name: "trusted root".into(),
            reason: e.to_string(),
        })
    };
    let trusted_root = match (&setup.trusted_root, ctc_root) {
        (Some(path), _) => TrustedRoot::from_file(path).map_err(trust_err)?,
        (None, Some((json, name))) => {
            TrustedRoot::from_json(&json, &format!("{name} (trustedRoot)")).map_err(trust_err)?
        }
        (None, None) => TrustedRoot::production().map_err(trust_err)?,
    };
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
