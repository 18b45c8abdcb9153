//! Sigstore bundle v0.3 for key-based signing, and the [`Signer`] interface shared by key and
//! keyless signing (`sign`, `sign-local` and `attest` all go through it).
//!
//! Key-based bundles are written exactly as `model_signing` 1.1.1 writes them (compact JSON,
//! this key order): `{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
//! "verificationMaterial": {"publicKey": {"hint": HEX}, "tlogEntries": []},
//! "dsseEnvelope": {"payload", "payloadType", "signatures": [{"sig", "keyid": ""}]}}`.
//! `timestampVerificationData` is left out, as `model_signing` does; readers (ours included)
//! treat it as empty. With `--tlog-upload=true` the same layout carries the Rekor entry in
//! `tlogEntries`, and with `--timestamp-server` an RFC 3161 timestamp in
//! `timestampVerificationData` (see [`KeySigner::with_services`]).

use super::dsse::{self, Envelope};
use super::error::KeylessError;
use super::keyless::{self, LogVerifier, TimestampAuthority, TransparencyLog};
use super::keys::PrivateKey;
use super::signer::{SignedBundle, Signer};
use super::SigningError;
use crate::media_types::SIGSTORE_BUNDLE_V03;
use crate::verify::{SignerPolicy, TrustedKey, TrustedRoot};
use base64::Engine as _;
use serde_json::json;

/// Key-based signer: DSSE signature with a local private key, public key hint in the bundle.
///
/// By default ([`KeySigner::new`]) nothing is logged or timestamped: the bundle has empty
/// `tlogEntries` and no `timestampVerificationData`, exactly as `model_signing` writes it, and
/// signing needs no network. [`KeySigner::with_services`] adds either or both of:
/// - a Rekor v1 log (`--key K --tlog-upload=true`): every signature is recorded as a `dsse`
///   0.0.1 entry whose verifier is the public key, and the bundle carries that entry
///   (inclusion proof, checkpoint, SET): a signed time and transparency;
/// - an RFC 3161 timestamp authority (`--timestamp-server URL`, or the signing config's TSA):
///   the bundle carries a timestamp over the signature in
///   `timestampVerificationData.rfc3161Timestamps`, so the signature can later be checked
///   against the key's validity period.
///
/// Such a bundle is verified with the signer's own key against the trusted root (which must
/// know the log and the TSA) before it is returned.
#[derive(Debug)]
pub struct KeySigner {
    key: PrivateKey,
    services: Option<KeyServices>,
}

#[derive(Debug)]
struct KeyServices {
    log: Option<TransparencyLog>,
    tsa: Option<TimestampAuthority>,
    trusted_root: TrustedRoot,
}

impl KeySigner {
    /// Sign offline: no transparency log entry, no timestamp (`model_signing`'s bundles).
    pub fn new(key: PrivateKey) -> Self {
        KeySigner {
            key,
            services: None,
        }
    }

    /// Sign and record each signature in `log`; bundles must verify against `trusted_root`
    /// (which must know that log's key) before they are returned.
    pub fn with_tlog(key: PrivateKey, log: TransparencyLog, trusted_root: TrustedRoot) -> Self {
        Self::with_services(key, Some(log), None, trusted_root)
    }

    /// Sign, record each signature in `log` and/or timestamp it with `tsa`; bundles must
    /// verify against `trusted_root` before they are returned. With neither, this is
    /// [`KeySigner::new`].
    pub fn with_services(
        key: PrivateKey,
        log: Option<TransparencyLog>,
        tsa: Option<TimestampAuthority>,
        trusted_root: TrustedRoot,
    ) -> Self {
        let services = (log.is_some() || tsa.is_some()).then_some(KeyServices {
            log,
            tsa,
            trusted_root,
        });
        KeySigner { key, services }
    }

    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// The Rekor URL signatures are logged in, if any.
    pub fn tlog_url(&self) -> Option<&str> {
        self.services.as_ref()?.log.as_ref().map(|l| l.url())
    }

    /// The timestamp authority signatures are timestamped by, if any.
    pub fn tsa_url(&self) -> Option<&str> {
        self.services.as_ref()?.tsa.as_ref().map(|t| t.url())
    }

    /// Log and/or timestamp the signature, add them to the bundle, and verify the bundle with
    /// our own key.
    async fn sign_with_services(
        &self,
        services: &KeyServices,
        payload_type: &str,
        payload: &[u8],
        envelope: &Envelope,
    ) -> Result<Vec<u8>, KeylessError> {
        let subject = keyless::in_toto_subject(payload_type, payload)?;
        let signature = envelope
            .signatures
            .first()
            .and_then(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(&s.sig)
                    .ok()
            })
            .ok_or_else(|| KeylessError::Bundle("the DSSE envelope has no signature".into()))?;
        let signature = sigstore_types::SignatureBytes::new(signature);
        let public = self.key.public_key();
        let mut entries = Vec::new();
        if let Some(log) = &services.log {
            let logged = sigstore_types::DsseEnvelope::new(
                payload_type,
                sigstore_types::PayloadBytes::new(payload.to_vec()),
                sigstore_types::DsseSignature::new(
                    signature.clone(),
                    sigstore_types::KeyId::default(),
                ),
            );
            let verifier = LogVerifier::PublicKey(sigstore_types::DerPublicKey::new(
                public.spki_der().to_vec(),
            ));
            let entry = log.log_dsse(&logged, &verifier).await?;
            entries.push(
                serde_json::to_value(&entry).map_err(|e| KeylessError::Bundle(e.to_string()))?,
            );
        }
        let mut timestamps = Vec::new();
        if let Some(tsa) = &services.tsa {
            let token = tsa.timestamp(&signature).await?;
            timestamps.push(
                serde_json::to_value(sigstore_types::Rfc3161Timestamp::new(token))
                    .map_err(|e| KeylessError::Bundle(e.to_string()))?,
            );
        }
        let json = key_bundle_json_with(&public.hint(), envelope, entries, timestamps);

        let trusted = TrustedKey::from_pem(public.to_pem().as_bytes(), "the signing key")
            .map_err(|e| KeylessError::Key(e.to_string()))?;
        keyless::verify_before_publishing(
            &json,
            &subject,
            &SignerPolicy::new().with_key(trusted),
            &services.trusted_root,
        )?;
        Ok(json)
    }
}

#[async_trait::async_trait]
impl Signer for KeySigner {
    fn describe(&self) -> String {
        let mut text = format!(
            "{} key, hint {}",
            self.key.kind().name(),
            self.key.public_key().hint()
        );
        if let Some(url) = self.tlog_url() {
            text.push_str(&format!(", logged in {url}"));
        }
        if let Some(url) = self.tsa_url() {
            text.push_str(&format!(", timestamped by {url}"));
        }
        text
    }

    async fn sign_dsse(
        &self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<SignedBundle, SigningError> {
        let envelope = dsse::sign(&self.key, payload_type, payload)?;
        let json = match &self.services {
            None => key_bundle_json(&self.key.public_key().hint(), &envelope),
            Some(services) => self
                .sign_with_services(services, payload_type, payload, &envelope)
                .await
                .map_err(|e| SigningError::Keyless(Box::new(e)))?,
        };
        Ok(SignedBundle {
            json,
            signer: self.describe(),
        })
    }
}

/// The key-based bundle JSON (compact, `model_signing`'s layout).
pub fn key_bundle_json(hint: &str, envelope: &Envelope) -> Vec<u8> {
    key_bundle_json_with(hint, envelope, Vec::new(), Vec::new())
}

/// The same layout with transparency log entries (bundle v0.3 `TransparencyLogEntry` JSON)
/// and RFC 3161 timestamps (`timestampVerificationData`, written only when there is one).
fn key_bundle_json_with(
    hint: &str,
    envelope: &Envelope,
    tlog_entries: Vec<serde_json::Value>,
    timestamps: Vec<serde_json::Value>,
) -> Vec<u8> {
    let mut material = json!({
        "publicKey": {"hint": hint},
        "tlogEntries": tlog_entries,
    });
    if !timestamps.is_empty() {
        material["timestampVerificationData"] = json!({ "rfc3161Timestamps": timestamps });
    }
    let v = json!({
        "mediaType": SIGSTORE_BUNDLE_V03,
        "verificationMaterial": material,
        "dsseEnvelope": envelope,
    });
    serde_json::to_vec(&v).expect("JSON value serializes")
}

/// A key-based signer that also records every DSSE signature in the Rekor log the flags
/// name (`--key` with `--tlog-upload=true`); its bundles must verify against the resolved
/// trusted root, with the signer's own public key, before they are returned.
pub fn key_signer_with_tlog(
    key: PrivateKey,
    flags: &keyless::ServiceFlags,
) -> Result<KeySigner, KeylessError> {
    key_signer_with_services(key, flags, true)
}

/// A key-based signer that uses the services the flags name: the Rekor log when `tlog` is
/// set (`--tlog-upload=true`), and the timestamp authority when one is named
/// (`--timestamp-server`, or a `--signing-config` that lists one). Without either it signs
/// offline. Its bundles must verify against the resolved trusted root before they are
/// returned.
pub fn key_signer_with_services(
    key: PrivateKey,
    flags: &keyless::ServiceFlags,
    tlog: bool,
) -> Result<KeySigner, KeylessError> {
    let (services, trusted_root) = flags.resolve()?;
    let http = keyless::http_client()?;
    let log = match tlog {
        true => Some(TransparencyLog::with_version(
            &services.rekor,
            services.rekor_version,
            http.clone(),
        )?),
        false => None,
    };
    if services.rekor_version == 2 && tlog && key.kind() != super::keys::KeyKind::P256 {
        return Err(KeylessError::Usage(format!(
            "the Rekor v2 log {} records ECDSA P-256 signatures only; this key is {}",
            services.rekor,
            key.kind().name()
        )));
    }
    let tsa = match &services.tsa {
        Some(url) if flags.signing_config.is_some() || flags.tsa_url.is_some() => {
            Some(TimestampAuthority::new(url, http)?)
        }
        _ => None,
    };
    Ok(KeySigner::with_services(key, log, tsa, trusted_root))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_types::IN_TOTO_PAYLOAD_TYPE;
    use crate::signing::keys::KeyKind;

    #[tokio::test]
    async fn key_bundle_has_model_signing_layout_and_verifies() {
        let signer = KeySigner::new(PrivateKey::generate(KeyKind::P256).unwrap());
        let b = signer
            .sign_dsse(IN_TOTO_PAYLOAD_TYPE, b"{\"x\":1}")
            .await
            .unwrap();
        let text = String::from_utf8(b.json.clone()).unwrap();
        let hint = signer.key().public_key().hint();
        let prefix = format!(
            "{{\"mediaType\":\"application/vnd.dev.sigstore.bundle.v0.3+json\",\"verificationMaterial\":{{\"publicKey\":{{\"hint\":\"{hint}\"}},\"tlogEntries\":[]}},\"dsseEnvelope\":{{\"payload\":\"eyJ4IjoxfQ==\",\"payloadType\":\"application/vnd.in-toto+json\",\"signatures\":[{{\"sig\":\""
        );
        assert!(text.starts_with(&prefix), "{text}");
        assert!(text.ends_with("\",\"keyid\":\"\"}]}}"), "{text}");
        assert!(b.signer.contains(&hint));

        // sigstore-types reads it (absent timestampVerificationData is the default).
        let parsed = sigstore_types::Bundle::from_json(&text).unwrap();
        assert!(parsed.verification_material.tlog_entries.is_empty());

        let v: serde_json::Value = serde_json::from_slice(&b.json).unwrap();
        let sig = base64::engine::general_purpose::STANDARD
            .decode(v["dsseEnvelope"]["signatures"][0]["sig"].as_str().unwrap())
            .unwrap();
        assert!(signer
            .key()
            .public_key()
            .verify_signature(&dsse::pae(IN_TOTO_PAYLOAD_TYPE, b"{\"x\":1}"), &sig));
    }
}
