//! Why signing failed: [`SigningError`] and the keyless (Sigstore services) part of it,
//! [`KeylessError`]. Leaf of `signing`: every signer returns these, nothing here signs.

use super::keys::KeyError;
use super::oms::OmsError;
use crate::error::ErrorKind;

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
    Keyless(Box<KeylessError>),
}

impl SigningError {
    /// A key or a model statement is the caller's input; keyless errors say for themselves.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SigningError::Key(e) => e.kind(),
            SigningError::Statement(_) => ErrorKind::Input,
            SigningError::Keyless(e) => e.kind(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeylessError {
    #[error(transparent)]
    Token(#[from] super::oidc::OidcError),
    #[error(transparent)]
    Config(#[from] super::signing_config::SigningConfigError),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error("ephemeral key: {0}")]
    Key(String),
    #[error("Fulcio {url}: certificate request for {identity} failed: {reason}")]
    Fulcio {
        url: String,
        identity: String,
        reason: String,
    },
    #[error("Fulcio {url} issued a certificate for {actual}, but the identity token (from {origin}) is for {expected}; refusing to sign")]
    WrongIdentity {
        url: String,
        origin: String,
        expected: String,
        actual: String,
    },
    #[error("Rekor {url}: {reason}")]
    Rekor { url: String, reason: String },
    #[error("Rekor {url} returned a log entry that does not match the submitted DSSE entry: {reason}; refusing to publish")]
    RekorBodyMismatch { url: String, reason: String },
    #[error("timestamp authority {url}: {reason}")]
    Tsa { url: String, reason: String },
    #[error("payload: {0}")]
    Payload(String),
    /// A combination of options keyless signing does not allow.
    #[error("{0}")]
    Usage(String),
    #[error("refusing to publish: the signed bundle does not verify against the trusted root ({trusted_root}): {reason}")]
    Unverified {
        trusted_root: String,
        reason: String,
    },
    #[error("bundle serialization: {0}")]
    Bundle(String),
}

impl KeylessError {
    /// A service answer that fails our checks is an integrity failure; a service that cannot
    /// be reached or refuses the request is remote; the rest is the caller's input.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KeylessError::WrongIdentity { .. }
            | KeylessError::RekorBodyMismatch { .. }
            | KeylessError::Unverified { .. } => ErrorKind::Integrity,
            KeylessError::Fulcio { .. }
            | KeylessError::Rekor { .. }
            | KeylessError::Tsa { .. }
            | KeylessError::Http(_) => ErrorKind::Remote,
            KeylessError::Token(e) => e.kind(),
            KeylessError::Config(_)
            | KeylessError::Key(_)
            | KeylessError::Payload(_)
            | KeylessError::Usage(_)
            | KeylessError::Bundle(_) => ErrorKind::Input,
        }
    }
}
