//! Key-based bundles with no transparency log entry and no timestamp (what
//! `model_signing sign key` writes): `sigstore-verify` refuses them for lack of a time source,
//! so the signature is checked here with the trusted key. The key is the root of trust; there
//! is no signing time.

use super::error::VerifyError;
use super::policy::TrustedKey;
use super::types::{digest_artifact, Artifact};
use sigstore_types::{Bundle, HashAlgorithm, SignatureContent};

pub(crate) fn verify_without_log(
    bundle: &Bundle,
    key: &TrustedKey,
    artifact: &Artifact,
) -> Result<(), VerifyError> {
    match &bundle.content {
        SignatureContent::DsseEnvelope(env) => {
            // Exactly one signature: sigstore-types refuses other counts at parse time.
            let scheme = key.algorithm.default_signing_scheme();
            sigstore_crypto::verify_signature(&key.der, &env.pae(), &env.signature.sig, scheme)
                .map_err(|e| {
                    VerifyError::SignatureInvalid(format!(
                        "DSSE signature over the PAE does not verify ({}): {e}",
                        scheme.name()
                    ))
                })?;
            let statement: sigstore_types::Statement =
                serde_json::from_slice(env.payload.as_bytes()).map_err(|e| {
                    VerifyError::MalformedBundle(format!(
                        "DSSE payload is not an in-toto statement: {e}"
                    ))
                })?;
            let digests = digest_artifact(artifact)?;
            let hash = sigstore_types::Sha256Hash::new(digests.sha256);
            if !statement.matches_sha256(&hash) {
                let subjects = statement
                    .subject
                    .iter()
                    .map(|s| match &s.digest.sha256 {
                        Some(h) => format!("sha256:{}", h.to_hex()),
                        None => "(no sha256)".to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(VerifyError::SubjectMismatch(format!(
                    "artifact is sha256:{}, statement subject(s): {subjects}",
                    hex::encode(digests.sha256)
                )));
            }
            Ok(())
        }
        SignatureContent::MessageSignature(msg) => {
            let scheme = match &msg.message_digest {
                Some(d) => key
                    .algorithm
                    .resolve_signing_scheme(d.algorithm)
                    .map_err(|e| VerifyError::UnsupportedBundle(e.to_string()))?,
                None => key.algorithm.default_signing_scheme(),
            };
            let digests = digest_artifact(artifact)?;
            let digest_for = |alg: HashAlgorithm| -> Result<Vec<u8>, VerifyError> {
                match alg {
                    HashAlgorithm::Sha2256 => Ok(digests.sha256.to_vec()),
                    HashAlgorithm::Sha2384 => digests.sha384.clone().ok_or_else(|| {
                        VerifyError::Artifact(
                            "this signature uses SHA-384: give the artifact file, not its sha256 digest".into(),
                        )
                    }),
                    other => Err(VerifyError::UnsupportedBundle(format!(
                        "{other:?} message digests are not supported"
                    ))),
                }
            };
            if let Some(d) = &msg.message_digest {
                if digest_for(d.algorithm)? != d.digest.as_bytes() {
                    return Err(VerifyError::SubjectMismatch(
                        "messageDigest in the bundle does not match the artifact".into(),
                    ));
                }
            }
            let verified = match scheme.hash_algorithm() {
                Some(alg) => sigstore_crypto::verify_signature_prehashed(
                    &key.der,
                    &digest_for(alg)?,
                    &msg.signature,
                    scheme,
                ),
                None => {
                    let bytes = artifact.whole_message(scheme.name())?;
                    sigstore_crypto::verify_signature(&key.der, &bytes, &msg.signature, scheme)
                }
            };
            verified.map_err(|e| {
                VerifyError::SignatureInvalid(format!(
                    "signature over the artifact does not verify ({}): {e}",
                    scheme.name()
                ))
            })
        }
        _ => Err(VerifyError::UnsupportedBundle(
            "neither a DSSE envelope nor a message signature".into(),
        )),
    }
}
