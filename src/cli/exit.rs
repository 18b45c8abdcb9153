//! Exit codes scripts can trust: 0 success, 1 verification failed, 2 usage or input error,
//! 3 registry or network error. Every library error type is classified here, in one place.

use oci_model::model::ModelError;
use oci_model::signing::keyless::KeylessError;
use oci_model::signing::SigningError;
use oci_model::sigstore_ops::OpsError;
use oci_model::store::StoreError;
use std::error::Error;

pub const OK: u8 = 0;
pub const VERIFY_FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const REGISTRY: u8 = 3;

/// Raised by commands to choose the exit code explicitly.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn verify(message: impl Into<String>) -> anyhow::Error {
        Failure {
            code: VERIFY_FAILED,
            message: message.into(),
        }
        .into()
    }
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Failure {
            code: USAGE,
            message: message.into(),
        }
        .into()
    }
}

/// The exit code for an error: the first classified error in its chain decides.
pub fn code_for(err: &anyhow::Error) -> u8 {
    err.chain().find_map(classify).unwrap_or(USAGE)
}

fn store_class(e: &StoreError) -> u8 {
    match e {
        // Content that is not what its digest says, or hostile/oversized data: integrity.
        StoreError::DigestMismatch { .. }
        | StoreError::SizeMismatch { .. }
        | StoreError::Invalid { .. }
        | StoreError::TooLarge { .. } => VERIFY_FAILED,
        StoreError::Io { .. } => USAGE,
        _ => REGISTRY,
    }
}

fn signing_class(e: &SigningError) -> u8 {
    match e {
        SigningError::Keyless(k) => keyless_class(k),
        _ => USAGE,
    }
}

fn keyless_class(e: &KeylessError) -> u8 {
    e.exit_class()
}

fn classify(cause: &(dyn Error + 'static)) -> Option<u8> {
    if let Some(f) = cause.downcast_ref::<Failure>() {
        return Some(f.code);
    }
    if let Some(e) = cause.downcast_ref::<StoreError>() {
        return Some(store_class(e));
    }
    if let Some(e) = cause.downcast_ref::<ModelError>() {
        return Some(e.exit_class());
    }
    if let Some(e) = cause.downcast_ref::<SigningError>() {
        return Some(signing_class(e));
    }
    if let Some(e) = cause.downcast_ref::<KeylessError>() {
        return Some(keyless_class(e));
    }
    if let Some(e) = cause.downcast_ref::<OpsError>() {
        return Some(match e {
            OpsError::Store(s) => store_class(s),
            OpsError::Model(m) => m.exit_class(),
            OpsError::Signing(s) => signing_class(s),
        });
    }
    if cause
        .downcast_ref::<oci_model::verify::VerifyError>()
        .is_some()
    {
        return Some(VERIFY_FAILED);
    }
    if cause
        .downcast_ref::<oci_model::attest::AttestError>()
        .is_some()
    {
        return Some(USAGE);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_store_errors_keep_their_class() {
        let net = StoreError::Network {
            url: "https://r/v2/".into(),
            reason: "refused".into(),
        };
        let e = anyhow::Error::new(OpsError::Store(net)).context("sign r/m:v1");
        assert_eq!(code_for(&e), REGISTRY);
        let bad = StoreError::DigestMismatch {
            what: "blob".into(),
            expected: oci_model::digest::Digest::of(b"a"),
            actual: oci_model::digest::Digest::of(b"b"),
        };
        let e = anyhow::Error::new(ModelError::Store(bad)).context("pull");
        assert_eq!(code_for(&e), VERIFY_FAILED);
    }

    #[test]
    fn keyless_refusals_are_verification_failures() {
        let refused = KeylessError::Unverified {
            trusted_root: "test".into(),
            reason: "bad SCT".into(),
        };
        let e = anyhow::Error::new(SigningError::Keyless(Box::new(refused)));
        assert_eq!(code_for(&e), VERIFY_FAILED);
        let down = KeylessError::Rekor {
            url: "http://rekor".into(),
            reason: "503".into(),
        };
        let e = anyhow::Error::new(OpsError::Signing(SigningError::Keyless(Box::new(down))));
        assert_eq!(code_for(&e), REGISTRY);
        assert_eq!(code_for(&anyhow::anyhow!("plain")), USAGE);
    }
}
