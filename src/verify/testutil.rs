//! Test helpers: real keys (aws-lc-rs) and key-based bundles signed with them.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine as _;

pub(crate) enum Alg {
    P256,
    P384,
    Ed25519,
}

pub(crate) enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub(crate) struct TestKey {
    pair: Pair,
    pub pem: String,
}

impl TestKey {
    pub fn new(alg: Alg) -> Self {
        let rng = SystemRandom::new();
        let pair = match alg {
            Alg::P256 | Alg::P384 => {
                let a = if matches!(alg, Alg::P256) {
                    &signature::ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &signature::ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(a, &rng).unwrap();
                Pair::Ecdsa(EcdsaKeyPair::from_pkcs8(a, pkcs8.as_ref()).unwrap())
            }
            Alg::Ed25519 => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
                Pair::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
            }
        };
        let der = match &pair {
            Pair::Ecdsa(p) => p.public_key().as_der().unwrap().as_ref().to_vec(),
            Pair::Ed(p) => p.public_key().as_der().unwrap().as_ref().to_vec(),
        };
        let pem = super::types::canonical_pem(&der);
        TestKey { pair, pem }
    }

    pub fn sign(&self, data: &[u8]) -> Vec<u8> {
        match &self.pair {
            Pair::Ecdsa(p) => p
                .sign(&SystemRandom::new(), data)
                .unwrap()
                .as_ref()
                .to_vec(),
            Pair::Ed(p) => p.sign(data).as_ref().to_vec(),
        }
    }

    pub fn trusted(&self, name: &str) -> super::policy::TrustedKey {
        super::policy::TrustedKey::from_pem(self.pem.as_bytes(), name).unwrap()
    }

    pub fn hint(&self) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(self.pem.as_bytes()))
    }
}

/// An in-toto Statement v1 about one subject.
pub(crate) fn statement(subject_hex: &str, predicate_type: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": subject_hex}}],
        "predicateType": predicate_type,
        "predicate": {"k": "v"},
    }))
    .unwrap()
}

/// A key-based DSSE bundle (no log, no timestamp), as model_signing writes it.
pub(crate) fn key_bundle(key: &TestKey, payload: &[u8], media_type: &str) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let pae = sigstore_types::pae("application/vnd.in-toto+json", payload);
    serde_json::to_vec(&serde_json::json!({
        "mediaType": media_type,
        "verificationMaterial": {"publicKey": {"hint": key.hint()}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": b64.encode(payload),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"sig": b64.encode(key.sign(&pae)), "keyid": ""}],
        },
    }))
    .unwrap()
}

/// The test keys against the hint and key id rules of [`TrustedKey`] (kept here, beside the
/// keys, so that `policy` does not import its own test helpers).
#[cfg(test)]
mod tests {
    use super::{Alg, TestKey};
    use crate::verify::policy::TrustedKey;
    use sha2::{Digest as _, Sha256};

    #[test]
    fn key_hint_is_sha256_of_canonical_pem() {
        let pem = TestKey::new(Alg::P384).pem;
        let k = TrustedKey::from_pem(pem.as_bytes(), "k.pub").unwrap();
        assert_eq!(k.algorithm_name(), "ECDSA P-384");
        assert_eq!(k.hint, hex::encode(Sha256::digest(pem.as_bytes())));
        // Same key with text around it (certtool writes a preamble): same hint and key id.
        let k2 = TrustedKey::from_pem(
            format!("Public Key Info:\n\tEC\n\n{pem}\n").as_bytes(),
            "k2.pub",
        )
        .unwrap();
        assert_eq!(k.hint, k2.hint);
        assert_eq!(k.key_id, k2.key_id);
        let ed = TestKey::new(Alg::Ed25519).pem;
        assert_eq!(
            TrustedKey::from_pem(ed.as_bytes(), "ed")
                .unwrap()
                .algorithm_name(),
            "Ed25519"
        );
        assert!(TrustedKey::from_pem(b"not a key", "x").is_err());
    }
}
