//! DSSE (Dead Simple Signing Envelope) v1: the pre-authentication encoding and the envelope.
//! <https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md>

use super::keys::{KeyError, PrivateKey};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let header = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut out = Vec::with_capacity(header.len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// One signature in an envelope. `keyid` is written even when empty (as `model_signing` does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Standard base64 of the signature bytes.
    pub sig: String,
    #[serde(default)]
    pub keyid: String,
}

/// A DSSE envelope as it appears in a Sigstore bundle's `dsseEnvelope` (field order as written
/// by `model_signing`: payload, payloadType, signatures).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Standard base64 of the payload bytes.
    pub payload: String,
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, thiserror::Error)]
pub enum DsseError {
    #[error("DSSE envelope {field} is not valid base64: {source}")]
    Base64 {
        field: &'static str,
        #[source]
        source: base64::DecodeError,
    },
}

impl Envelope {
    /// The decoded payload.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, DsseError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|source| DsseError::Base64 {
                field: "payload",
                source,
            })
    }
}

/// Sign `payload` with `key`: one signature over the PAE, `keyid` "".
pub fn sign(key: &PrivateKey, payload_type: &str, payload: &[u8]) -> Result<Envelope, KeyError> {
    let signature = key.sign(&pae(payload_type, payload))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Envelope {
        payload: b64.encode(payload),
        payload_type: payload_type.to_string(),
        signatures: vec![EnvelopeSignature {
            sig: b64.encode(signature),
            keyid: String::new(),
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::keys::KeyKind;

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn envelope_signature_verifies_over_pae_and_serializes_in_order() {
        let key = PrivateKey::generate(KeyKind::P384).unwrap();
        let env = sign(&key, "application/vnd.in-toto+json", b"{\"a\":1}").unwrap();
        assert_eq!(env.payload_bytes().unwrap(), b"{\"a\":1}");
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&env.signatures[0].sig)
            .unwrap();
        assert!(key
            .public_key()
            .verify_signature(&pae("application/vnd.in-toto+json", b"{\"a\":1}"), &sig));
        let json = serde_json::to_string(&env).unwrap();
        assert!(json.starts_with("{\"payload\":\"eyJhIjoxfQ==\",\"payloadType\":\"application/vnd.in-toto+json\",\"signatures\":[{\"sig\":\""), "{json}");
        assert!(json.ends_with("\",\"keyid\":\"\"}]}"), "{json}");
    }

    #[test]
    fn malformed_base64_payload_is_reported() {
        let env = Envelope {
            payload: "not base64!".into(),
            payload_type: "x".into(),
            signatures: vec![],
        };
        let err = env.payload_bytes().unwrap_err();
        assert!(
            err.to_string().contains("payload is not valid base64"),
            "{err}"
        );
    }
}
