//! Sigstore bundle v0.3 for key-based signing, and the [`Signer`] interface shared by key and
//! keyless signing (`sign`, `sign-local` and `attest` all go through it).
//!
//! Key-based bundles are written exactly as `model_signing` 1.1.1 writes them (compact JSON,
//! this key order): `{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
//! "verificationMaterial": {"publicKey": {"hint": HEX}, "tlogEntries": []},
//! "dsseEnvelope": {"payload", "payloadType", "signatures": [{"sig", "keyid": ""}]}}`.
//! `timestampVerificationData` is left out, as `model_signing` does; readers (ours included)
//! treat it as empty.

use super::dsse::{self, Envelope};
use super::keys::PrivateKey;
use super::SigningError;
use crate::media_types::SIGSTORE_BUNDLE_V03;
use serde_json::json;

/// A signed Sigstore bundle.
#[derive(Clone, Debug)]
pub struct SignedBundle {
    /// The bundle JSON, as written to a file or a referrer layer.
    pub json: Vec<u8>,
    /// Who signed, for reports (e.g. `key sha256 hint 1a2b…` or a certificate identity).
    pub signer: String,
}

/// Signs DSSE payloads into Sigstore bundles. Implemented by [`KeySigner`] here and by the
/// keyless signer (`signing::keyless`).
#[async_trait::async_trait]
pub trait Signer: Send + Sync {
    /// Who signs, for reports and logs (never secret).
    fn describe(&self) -> String;
    /// Sign `payload` (of DSSE `payload_type`) and wrap it in a Sigstore bundle v0.3.
    async fn sign_dsse(
        &self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<SignedBundle, SigningError>;
}

/// Key-based signer: DSSE signature with a local private key, public key hint in the bundle,
/// no transparency log entry.
#[derive(Debug)]
pub struct KeySigner {
    key: PrivateKey,
}

impl KeySigner {
    pub fn new(key: PrivateKey) -> Self {
        KeySigner { key }
    }

    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// Synchronous form of [`Signer::sign_dsse`] (key signing needs no I/O).
    pub fn sign_dsse_now(
        &self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<SignedBundle, SigningError> {
        let envelope = dsse::sign(&self.key, payload_type, payload)?;
        Ok(SignedBundle {
            json: key_bundle_json(&self.key.public_key().hint(), &envelope),
            signer: self.describe(),
        })
    }
}

#[async_trait::async_trait]
impl Signer for KeySigner {
    fn describe(&self) -> String {
        format!(
            "{} key, hint {}",
            self.key.kind().name(),
            self.key.public_key().hint()
        )
    }

    async fn sign_dsse(
        &self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<SignedBundle, SigningError> {
        self.sign_dsse_now(payload_type, payload)
    }
}

/// The key-based bundle JSON (compact, `model_signing`'s layout).
pub fn key_bundle_json(hint: &str, envelope: &Envelope) -> Vec<u8> {
    let v = json!({
        "mediaType": SIGSTORE_BUNDLE_V03,
        "verificationMaterial": {
            "publicKey": {"hint": hint},
            "tlogEntries": [],
        },
        "dsseEnvelope": envelope,
    });
    serde_json::to_vec(&v).expect("JSON value serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_types::IN_TOTO_PAYLOAD_TYPE;
    use crate::signing::keys::KeyKind;
    use base64::Engine as _;

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
