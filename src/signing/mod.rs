//! Keys, DSSE, the OpenSSF model-signing statement, keyless signing.
//!
//! - [`keys`]: load/generate private and public keys (PEM, PKCS#8, encrypted PKCS#8, SPKI).
//! - [`dsse`]: the DSSE pre-authentication encoding and envelope.
//! - [`oms`]: the `model_signing` 1.x statement (build from a local model's file digests or from
//!   an OCI manifest's layers, parse, compare) and the cosign-style statement.
//! - [`bundle`]: the [`Signer`] interface and key-based Sigstore bundles.
//!
//! Verification of bundles lives in `crate::verify`, not here.

pub mod bundle;
pub mod dsse;
pub mod keyless;
pub mod keys;
pub mod oidc;
pub mod oms;
pub mod signing_config;

pub use bundle::{KeySigner, SignedBundle, Signer};
pub use keys::{KeyError, KeyKind, PrivateKey, PublicKey};
pub use oms::{ModelStatement, OmsError};

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Statement(#[from] OmsError),
    /// A Sigstore service (OIDC, Fulcio, Rekor, TSA) failed or its answer was refused: keyless
    /// signing, and key signing with a transparency log entry. The error names the service.
    #[error(transparent)]
    Keyless(Box<keyless::KeylessError>),
}

impl SigningError {
    /// A key or a model statement is the caller's input; keyless errors say for themselves.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            SigningError::Key(e) => e.kind(),
            SigningError::Statement(_) => crate::error::ErrorKind::Input,
            SigningError::Keyless(e) => e.kind(),
        }
    }
}
