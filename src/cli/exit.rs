//! Exit codes scripts can trust: 0 success, 1 verification failed, 2 usage or input error,
//! 3 registry or network error.

use oci_model::store::StoreError;

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
        Failure { code: VERIFY_FAILED, message: message.into() }.into()
    }
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Failure { code: USAGE, message: message.into() }.into()
    }
}

/// The exit code for an error: the first classified error in its chain decides.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return f.code;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return match e {
                StoreError::DigestMismatch { .. } | StoreError::SizeMismatch { .. } => VERIFY_FAILED,
                StoreError::Invalid { .. } | StoreError::TooLarge { .. } => VERIFY_FAILED,
                StoreError::Io { .. } => USAGE,
                _ => REGISTRY,
            };
        }
        if cause.downcast_ref::<oci_model::model::ModelError>().is_some() {
            return oci_model::model::ModelError::exit_class(cause.downcast_ref().unwrap());
        }
        if cause.downcast_ref::<oci_model::verify::VerifyError>().is_some() {
            return VERIFY_FAILED;
        }
    }
    USAGE
}
