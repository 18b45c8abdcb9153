//! Fake Rekor v1 (`POST /api/v1/log/entries`, kind `dsse` 0.0.1 with `proposedContent`):
//! verifies the envelope signature against the submitted certificate or P-256 public key,
//! canonicalizes the entry body as Rekor does, appends it to a real RFC 6962 Merkle tree and
//! answers with the entry, its signed entry timestamp (SET over the canonical
//! `{body, integratedTime, logID, logIndex}`) and an inclusion proof with a checkpoint in the
//! signed-note format.

use super::{
    b64, canonical_json, ecdsa_verify, error_response, now_secs, pem, sha256, unb64, unpem, EcKey,
    Fault, Shared,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use der::{Decode as _, Encode as _};
use std::sync::{Arc, Mutex};

pub const TREE_ID: u64 = 1_193_050_959_916_656_506;
pub const ORIGIN_NAME: &str = "fake-rekor.oci-model.test";
/// The checkpoint origin of the fake Rekor v2 log (a v2 log's origin is its name alone).
pub const ORIGIN_NAME_V2: &str = "fake-rekor-v2.oci-model.test";

pub fn hash_leaf(data: &[u8]) -> [u8; 32] {
    let mut v = vec![0u8];
    v.extend_from_slice(data);
    sha256(&v)
}

fn hash_children(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut v = vec![1u8];
    v.extend_from_slice(l);
    v.extend_from_slice(r);
    sha256(&v)
}

/// Largest power of two strictly below n (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// RFC 6962 §2.1 Merkle tree hash.
pub fn root(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => sha256(b""),
        1 => leaves[0],
        n => {
            let k = split(n);
            hash_children(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// RFC 6962 §2.1.1 audit path for leaf m.
pub fn path(m: usize, leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return vec![];
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(root(&leaves[..k]));
        p
    }
}

pub struct Log {
    pub key: EcKey,
    /// Signs checkpoints and SETs under fault `BadLogSignature`.
    rogue: EcKey,
    leaves: Mutex<Vec<[u8; 32]>>,
}

impl Log {
    pub fn new() -> Log {
        // A log is never empty in practice; seed it so inclusion proofs have hashes.
        let leaves = (0..5u8).map(|i| hash_leaf(&[b's', i])).collect();
        Log {
            key: EcKey::generate(),
            rogue: EcKey::generate(),
            leaves: Mutex::new(leaves),
        }
    }

    pub fn size(&self) -> usize {
        self.leaves.lock().unwrap().len()
    }

    /// A checkpoint (signed note) for this tree head.
    pub fn checkpoint(&self, size: usize, root: &[u8; 32], signer: &EcKey) -> String {
        self.note(
            &format!("{ORIGIN_NAME} - {TREE_ID}"),
            ORIGIN_NAME,
            size,
            root,
            signer,
        )
    }

    /// A signed note `origin / size / root`, signed as `name` with the key hint of our key.
    fn note(
        &self,
        origin: &str,
        name: &str,
        size: usize,
        root: &[u8; 32],
        signer: &EcKey,
    ) -> String {
        let note = format!("{origin}\n{size}\n{}\n", b64(root));
        let mut sig = self.key.key_id()[..4].to_vec();
        sig.extend_from_slice(&signer.sign(note.as_bytes()));
        format!("{note}\n\u{2014} {name} {}\n", b64(&sig))
    }
}

pub fn router(s: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/log/entries", post(create_entry))
        .with_state(s)
}

/// The fake Rekor v2 log (its own URL, key and tree: `Shared::rekor_v2`).
pub fn router_v2(s: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v2/log/entries", post(create_entry_v2))
        .with_state(s)
}

/// The certificate or public key in a `verifiers` item (base64 of PEM): its canonical PEM (as
/// Rekor re-encodes it in the entry body) and the SubjectPublicKeyInfo that checks signatures.
fn parse_verifier(v: &str) -> Option<(String, Vec<u8>)> {
    let pem_text = String::from_utf8(unb64(v)?).ok()?;
    if let Some(spki) = unpem("PUBLIC KEY", &pem_text) {
        spki::SubjectPublicKeyInfoRef::from_der(&spki).ok()?;
        return Some((pem("PUBLIC KEY", &spki), spki));
    }
    let cert_der = unpem("CERTIFICATE", &pem_text)?;
    let cert = x509_cert::Certificate::from_der(&cert_der).ok()?;
    let spki = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
    Some((pem("CERTIFICATE", &cert_der), spki))
}

fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    v.extend_from_slice(payload);
    v
}

async fn create_entry(
    State(s): State<Arc<Shared>>,
    Json(req): Json<serde_json::Value>,
) -> Response {
    if req["kind"] != "dsse" || req["apiVersion"] != "0.0.1" {
        return error_response(400, "this log accepts dsse 0.0.1 entries");
    }
    let content = &req["spec"]["proposedContent"];
    let Some(envelope_text) = content["envelope"].as_str() else {
        return error_response(400, "spec.proposedContent.envelope must be a string");
    };
    let Ok(envelope) = serde_json::from_str::<serde_json::Value>(envelope_text) else {
        return error_response(400, "the envelope is not JSON");
    };
    let verifiers: Vec<&str> = content["verifiers"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let [verifier] = verifiers.as_slice() else {
        return error_response(400, "exactly one verifier expected");
    };
    let Some((verifier_pem, spki)) = parse_verifier(verifier) else {
        return error_response(
            400,
            "the verifier is not a base64 PEM certificate or public key",
        );
    };
    let payload_type = envelope["payloadType"].as_str().unwrap_or_default();
    let Some(payload) = envelope["payload"].as_str().and_then(unb64) else {
        return error_response(400, "envelope payload is not base64");
    };
    let sigs: Vec<Vec<u8>> = envelope["signatures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["sig"].as_str().and_then(unb64))
                .collect()
        })
        .unwrap_or_default();
    if sigs.is_empty() {
        return error_response(400, "the envelope has no signatures");
    }
    let message = pae(payload_type, &payload);
    for sig in &sigs {
        if !ecdsa_verify(&spki, &message, sig) {
            return error_response(
                400,
                "an envelope signature does not verify with the verifier",
            );
        }
    }

    let fault = s.fault();
    let payload_hash = if fault == Some(Fault::BodyMismatch) {
        sha256(b"some other payload")
    } else {
        sha256(&payload)
    };
    let verifier_canonical = b64(verifier_pem.as_bytes());
    let body = serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hex::encode(sha256(envelope_text.as_bytes()))},
            "payloadHash": {"algorithm": "sha256", "value": hex::encode(payload_hash)},
            "signatures": sigs.iter().map(|sig| serde_json::json!({
                "signature": b64(sig),
                "verifier": verifier_canonical,
            })).collect::<Vec<_>>(),
        },
    });
    let body = canonical_json(&body);
    let leaf = hash_leaf(body.as_bytes());
    let (index, size, tree_root, mut proof) = {
        let mut leaves = s.rekor.leaves.lock().unwrap();
        leaves.push(leaf);
        let index = leaves.len() - 1;
        (index, leaves.len(), root(&leaves), path(index, &leaves))
    };
    let signer = if fault == Some(Fault::BadLogSignature) {
        &s.rekor.rogue
    } else {
        &s.rekor.key
    };
    if fault == Some(Fault::BrokenInclusionProof) {
        proof[0][0] ^= 0x01;
    }
    let log_id = hex::encode(s.rekor.key.key_id());
    let integrated_time = now_secs();
    let body_b64 = b64(body.as_bytes());
    let set_payload = canonical_json(&serde_json::json!({
        "body": body_b64,
        "integratedTime": integrated_time,
        "logID": log_id,
        "logIndex": index,
    }));
    let set = signer.sign(set_payload.as_bytes());
    let uuid = format!("{TREE_ID:016x}{}", hex::encode(leaf));
    let entry = serde_json::json!({
        uuid: {
            "body": body_b64,
            "integratedTime": integrated_time,
            "logID": log_id,
            "logIndex": index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": s.rekor.checkpoint(size, &tree_root, signer),
                    "hashes": proof.iter().map(hex::encode).collect::<Vec<_>>(),
                    "logIndex": index,
                    "rootHash": hex::encode(tree_root),
                    "treeSize": size,
                },
                "signedEntryTimestamp": b64(&set),
            },
        }
    });
    (StatusCode::CREATED, Json(entry)).into_response()
}

/// Rekor v2 `POST /api/v2/log/entries` with a `hashedRekordRequestV002` (the only kind a v2
/// log takes; a DSSE envelope comes as the digest of its PAE): checks the signature over the
/// digest with the P-256 certificate or public key, logs the canonical `hashedrekord` 0.0.2
/// body in the tree and answers with the protobuf-JSON `TransparencyLogEntry`: inclusion proof
/// and checkpoint, no SET, no integrated time.
async fn create_entry_v2(
    State(s): State<Arc<Shared>>,
    Json(req): Json<serde_json::Value>,
) -> Response {
    let request = &req["hashedRekordRequestV002"];
    if !request.is_object() {
        return error_response(400, "this log accepts hashedRekordRequestV002 entries");
    }
    let Some(digest) = request["digest"].as_str().and_then(unb64) else {
        return error_response(400, "digest must be base64");
    };
    let Some(signature) = request["signature"]["content"].as_str().and_then(unb64) else {
        return error_response(400, "signature.content must be base64");
    };
    let verifier = &request["signature"]["verifier"];
    if verifier["keyDetails"] != "PKIX_ECDSA_P256_SHA_256" || digest.len() != 32 {
        return error_response(
            400,
            "want a PKIX_ECDSA_P256_SHA_256 verifier and a sha256 digest",
        );
    }
    let (verifier_json, spki) = if let Some(cert) = verifier["x509Certificate"]["rawBytes"]
        .as_str()
        .and_then(unb64)
    {
        let Ok(parsed) = x509_cert::Certificate::from_der(&cert) else {
            return error_response(400, "x509Certificate is not a DER certificate");
        };
        let spki = parsed
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        (
            serde_json::json!({"x509Certificate": {"rawBytes": b64(&cert)}}),
            spki,
        )
    } else if let Some(key) = verifier["publicKey"]["rawBytes"].as_str().and_then(unb64) {
        if spki::SubjectPublicKeyInfoRef::from_der(&key).is_err() {
            return error_response(400, "publicKey is not a SubjectPublicKeyInfo");
        }
        (
            serde_json::json!({"publicKey": {"rawBytes": b64(&key)}}),
            key,
        )
    } else {
        return error_response(400, "the verifier has no certificate or public key");
    };
    let Ok(point) = spki::SubjectPublicKeyInfoRef::from_der(&spki) else {
        return error_response(400, "unreadable verifier key");
    };
    let prehashed =
        aws_lc_rs::digest::Digest::import_less_safe(&digest, &aws_lc_rs::digest::SHA256).unwrap();
    if aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        point.subject_public_key.raw_bytes(),
    )
    .verify_digest(&prehashed, &signature)
    .is_err()
    {
        return error_response(400, "the signature does not verify over the digest");
    }

    let fault = s.fault();
    let logged_digest = if fault == Some(Fault::BodyMismatch) {
        sha256(b"some other payload").to_vec()
    } else {
        digest
    };
    let mut verifier_body = verifier_json;
    verifier_body["keyDetails"] = "PKIX_ECDSA_P256_SHA_256".into();
    let body = canonical_json(&serde_json::json!({
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": {"hashedRekordV002": {
            "data": {"algorithm": "SHA2_256", "digest": b64(&logged_digest)},
            "signature": {"content": b64(&signature), "verifier": verifier_body},
        }},
    }));
    let log = &s.rekor_v2;
    let leaf = hash_leaf(body.as_bytes());
    let (index, size, tree_root, mut proof) = {
        let mut leaves = log.leaves.lock().unwrap();
        leaves.push(leaf);
        let index = leaves.len() - 1;
        (index, leaves.len(), root(&leaves), path(index, &leaves))
    };
    let signer = if fault == Some(Fault::BadLogSignature) {
        &log.rogue
    } else {
        &log.key
    };
    if fault == Some(Fault::BrokenInclusionProof) {
        proof[0][0] ^= 0x01;
    }
    let checkpoint = log.note(ORIGIN_NAME_V2, ORIGIN_NAME_V2, size, &tree_root, signer);
    let entry = serde_json::json!({
        "logIndex": index.to_string(),
        "logId": {"keyId": b64(&log.key.key_id())},
        "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
        "inclusionProof": {
            "logIndex": index.to_string(),
            "rootHash": b64(&tree_root),
            "treeSize": size.to_string(),
            "hashes": proof.iter().map(|h| b64(h)).collect::<Vec<_>>(),
            "checkpoint": {"envelope": checkpoint},
        },
        "canonicalizedBody": b64(body.as_bytes()),
    });
    (StatusCode::CREATED, Json(entry)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_paths_lead_to_the_root() {
        for n in 1..12usize {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| hash_leaf(&[i as u8])).collect();
            let r = root(&leaves);
            for m in 0..n {
                // Recompute the root from the leaf and its path (RFC 9162 §2.1.3.2).
                let p = path(m, &leaves);
                let (mut fnn, mut sn) = (m, n - 1);
                let mut h = leaves[m];
                for sib in &p {
                    if fnn % 2 == 1 || fnn == sn {
                        h = hash_children(sib, &h);
                        while fnn % 2 == 0 && fnn != 0 {
                            fnn >>= 1;
                            sn >>= 1;
                        }
                    } else {
                        h = hash_children(&h, sib);
                    }
                    fnn >>= 1;
                    sn >>= 1;
                }
                assert_eq!(h, r, "n={n} m={m}");
            }
        }
    }
}
