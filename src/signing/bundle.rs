//! Sigstore bundle v0.3 for key-based signing, and the [`Signer`] interface shared by key and
//! keyless signing (`sign`, `sign-local` and `attest` all go through it).
//!
//! Key-based bundles are written exactly as `model_signing` 1.1.1 writes them (compact JSON,
//! this key order): `{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
//! "verificationMaterial": {"publicKey": {"hint": HEX}, "tlogEntries": []},
//! "dsseEnvelope": {"payload", "payloadType", "signatures": [{"sig", "keyid": ""}]}}`.
//! `timestampVerificationData` is left out, as `model_signing` does; readers (ours included)
//! treat it as empty. With `--tlog-upload=true` the same layout carries the Rekor entry in
//! `tlogEntries` (see [`KeySigner::with_tlog`]).

use super::dsse::{self, Envelope};
use super::error::KeylessError;
use super::keyless::{self, LogVerifier, TransparencyLog};
use super::keys::PrivateKey;
use super::signer::{SignedBundle, Signer};
use super::SigningError;
use crate::media_types::SIGSTORE_BUNDLE_V03;
use crate::verify::{SignerPolicy, TrustedKey, TrustedRoot};
use base64::Engine as _;
use serde_json::json;

/// Key-based signer: DSSE signature with a local private key, public key hint in the bundle.
///
/// By default ([`KeySigner::new`]) nothing is logged: the bundle has empty `tlogEntries`,
/// exactly as `model_signing` writes it, and signing needs no network. With
/// [`KeySigner::with_tlog`] (`--key K --tlog-upload=true`) every signature is also recorded in
/// a Rekor v1 log as a `dsse` 0.0.1 entry whose verifier is the public key; the bundle keeps
/// the hint and carries that entry (inclusion proof, checkpoint, SET), which gives verifiers a
/// signed time and transparency. Such a bundle is verified with the signer's own key against
/// the trusted root before it is returned.
#[derive(Debug)]
pub struct KeySigner {
    key: PrivateKey,
    tlog: Option<KeyTlog>,
}

#[derive(Debug)]
struct KeyTlog {
    log: TransparencyLog,
    trusted_root: TrustedRoot,
}

impl KeySigner {
    /// Sign offline: no transparency log entry (`model_signing`'s bundles).
    pub fn new(key: PrivateKey) -> Self {
        KeySigner { key, tlog: None }
    }

    /// Sign and record each signature in `log`; bundles must verify against `trusted_root`
    /// (which must know that log's key) before they are returned.
    pub fn with_tlog(key: PrivateKey, log: TransparencyLog, trusted_root: TrustedRoot) -> Self {
        KeySigner {
            key,
            tlog: Some(KeyTlog { log, trusted_root }),
        }
    }

    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// The Rekor URL signatures are logged in, if any.
    pub fn tlog_url(&self) -> Option<&str> {
        self.tlog.as_ref().map(|t| t.log.url())
    }

    /// Log the envelope, add the entry to the bundle, and verify the bundle with our own key.
    async fn sign_logged(
        &self,
        tlog: &KeyTlog,
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
        let logged = sigstore_types::DsseEnvelope::new(
            payload_type,
            sigstore_types::PayloadBytes::new(payload.to_vec()),
            sigstore_types::DsseSignature::new(
                sigstore_types::SignatureBytes::new(signature),
                sigstore_types::KeyId::default(),
            ),
        );
        let public = self.key.public_key();
        let verifier = LogVerifier::PublicKey(sigstore_types::DerPublicKey::new(
            public.spki_der().to_vec(),
        ));
        let entry = tlog.log.log_dsse(&logged, &verifier).await?;
        let entry =
            serde_json::to_value(&entry).map_err(|e| KeylessError::Bundle(e.to_string()))?;
        let json = key_bundle_json_with_log(&public.hint(), envelope, vec![entry]);

        let trusted = TrustedKey::from_pem(public.to_pem().as_bytes(), "the signing key")
            .map_err(|e| KeylessError::Key(e.to_string()))?;
        keyless::verify_before_publishing(
            &json,
            &subject,
            &SignerPolicy::new().with_key(trusted),
            &tlog.trusted_root,
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
        text
    }

    async fn sign_dsse(
        &self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<SignedBundle, SigningError> {
        let envelope = dsse::sign(&self.key, payload_type, payload)?;
        let json = match &self.tlog {
            None => key_bundle_json(&self.key.public_key().hint(), &envelope),
            Some(tlog) => self
                .sign_logged(tlog, payload_type, payload, &envelope)
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
    key_bundle_json_with_log(hint, envelope, Vec::new())
}

/// The same layout with transparency log entries (bundle v0.3 `TransparencyLogEntry` JSON).
fn key_bundle_json_with_log(
    hint: &str,
    envelope: &Envelope,
    tlog_entries: Vec<serde_json::Value>,
) -> Vec<u8> {
    let v = json!({
        "mediaType": SIGSTORE_BUNDLE_V03,
        "verificationMaterial": {
            "publicKey": {"hint": hint},
            "tlogEntries": tlog_entries,
        },
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
    let (services, trusted_root) = flags.resolve()?;
    let log = TransparencyLog::new(&services.rekor, keyless::http_client()?)?;
    Ok(KeySigner::with_tlog(key, log, trusted_root))
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
