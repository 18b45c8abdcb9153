//! Why a verification failed. Every variant names what was checked and what was expected.

use crate::signing::oms::{Comparison, OmsError};

/// A verification failure (exit code 1 at the CLI).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The bundle is not valid JSON or not a Sigstore bundle.
    #[error("malformed bundle: {0}")]
    MalformedBundle(String),
    /// The bundle's media type is not one we accept here.
    #[error("unsupported bundle media type {found:?}: expected {expected}")]
    UnsupportedMediaType { found: String, expected: String },
    /// Well formed, but a shape we do not verify (content, payload type, key type …).
    #[error("unsupported bundle: {0}")]
    UnsupportedBundle(String),
    /// The signature does not verify with the signing key.
    #[error("signature invalid: {0}")]
    SignatureInvalid(String),
    /// A key-based bundle whose signature verifies with none of the trusted keys.
    #[error("signature does not verify with any trusted key (tried {tried}); the bundle's key hint is {hint:?}")]
    NoTrustedKey { tried: String, hint: String },
    /// The certificate identity (SAN) is not the one the policy requires.
    #[error("identity mismatch: expected {expected}, got {got:?}")]
    IdentityMismatch { expected: String, got: String },
    /// The identity matched but the OIDC issuer did not.
    #[error("issuer mismatch for identity {identity:?}: expected {expected}, got {got:?}")]
    IssuerMismatch {
        identity: String,
        expected: String,
        got: String,
    },
    /// A keyless bundle met a key-only policy, or a key-based bundle an identity-only policy.
    #[error("{bundle} bundle, but the policy trusts only {policy}")]
    KindMismatch {
        bundle: &'static str,
        policy: &'static str,
    },
    /// The policy has no key and no identity.
    #[error("empty policy: give at least one trusted key or certificate identity")]
    EmptyPolicy,
    /// The certificate does not chain to a trusted CA (or is outside its validity, or the SCT
    /// is invalid).
    #[error("untrusted certificate: {0}")]
    UntrustedCertificate(String),
    /// Transparency log inclusion proof, checkpoint, SET or entry consistency failed.
    #[error("transparency log verification failed: {0}")]
    TlogInvalid(String),
    /// No verified source of signing time (SET or RFC 3161 timestamp).
    #[error("no verified source of signing time: {0}")]
    NoTimeSource(String),
    /// An RFC 3161 timestamp did not verify.
    #[error("timestamp invalid: {0}")]
    TimestampInvalid(String),
    /// The artifact (or the statement subject) is not what was signed.
    #[error("subject digest mismatch: {0}")]
    SubjectMismatch(String),
    /// A model-signing statement that is not one (format, subject ≠ root digest, names).
    #[error(transparent)]
    ModelStatement(#[from] OmsError),
    /// The model's files are not the signed resources.
    #[error("{context}: {comparison}")]
    FilesDiffer {
        context: String,
        comparison: Comparison,
    },
    /// A referrer's predicate-type annotation is not what its signed statement says.
    #[error("the referrer is annotated with predicate type {annotated} but the signed statement says {signed}")]
    PredicateTypeMismatch { annotated: String, signed: String },
    /// The artifact could not be used (unreadable file, digest of the wrong kind, missing).
    #[error("artifact: {0}")]
    Artifact(String),
    /// The trusted root cannot be used.
    #[error("invalid trusted root {source_name}: {reason}")]
    InvalidTrustedRoot { source_name: String, reason: String },
    /// A policy file has no rule for the repository being verified (fail closed).
    #[error("policy file {file} has no rule matching repository {repository:?}")]
    NoPolicyRule { file: String, repository: String },
    /// The policy as a whole is not met (too few signers, a required attestation missing …).
    #[error("policy not satisfied: {0}")]
    PolicyNotSatisfied(String),
    /// Any other verification failure.
    #[error("{0}")]
    Failed(String),
}

impl VerifyError {
    /// Every verification failure is an integrity failure, whatever failed to verify.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Integrity
    }

    /// Translate a `sigstore-verify` error into ours (keeping its detail).
    pub(crate) fn from_sigstore(err: sigstore_verify::Error) -> Self {
        use sigstore_verify::{Error as E, TimestampError as T};
        let root_in_use = |reason| VerifyError::InvalidTrustedRoot {
            source_name: "in use".into(),
            reason,
        };
        match err {
            E::IdentityMismatch { expected, actual } => VerifyError::IdentityMismatch {
                expected: expected.to_string(),
                got: actual.map(|a| a.to_string()).unwrap_or_default(),
            },
            E::IssuerMismatch { expected, actual } => VerifyError::IssuerMismatch {
                identity: String::new(),
                expected,
                got: actual.unwrap_or_default(),
            },
            E::SignatureInvalid(d) => VerifyError::SignatureInvalid(d),
            E::ArtifactMismatch(d) => VerifyError::SubjectMismatch(d),
            E::UnsupportedArtifact(d) => VerifyError::Artifact(d),
            E::ArtifactRead(e) => VerifyError::Artifact(format!("read failed: {e}")),
            E::Certificate(c) => VerifyError::UntrustedCertificate(c.to_string()),
            E::TransparencyLog(t) => VerifyError::TlogInvalid(t.to_string()),
            E::Timestamp(T::NoVerifiedTimestamp(d)) => VerifyError::NoTimeSource(d),
            E::Timestamp(t) => VerifyError::TimestampInvalid(t.to_string()),
            E::InvalidBundle(d) => VerifyError::MalformedBundle(d),
            E::Bundle(b) => {
                use sigstore_verify::bundle::Error as B;
                match b {
                    B::MissingSigningTimeEvidence | B::MissingTimestamp => {
                        VerifyError::NoTimeSource(b.to_string())
                    }
                    B::MissingInclusionPromise(_)
                    | B::MissingInclusionProof(_)
                    | B::MissingCheckpoint
                    | B::LogIndexOutOfRange { .. }
                    | B::CheckpointRootMismatch => VerifyError::TlogInvalid(b.to_string()),
                    B::UnsupportedMediaType(m) => VerifyError::UnsupportedMediaType {
                        found: m.to_string(),
                        expected: "a Sigstore bundle v0.1, v0.2 or v0.3".into(),
                    },
                    other => VerifyError::MalformedBundle(other.to_string()),
                }
            }
            E::UnsupportedBundle(d) => VerifyError::UnsupportedBundle(d),
            E::InvalidTrustRoot(d) => root_in_use(d),
            E::TrustRoot(e) => root_in_use(e.to_string()),
            E::TrustedCertificate(e) => root_in_use(e.to_string()),
            E::Crypto(e) => VerifyError::SignatureInvalid(e.to_string()),
            E::Types(e) => VerifyError::MalformedBundle(e.to_string()),
            other => VerifyError::Failed(other.to_string()),
        }
    }
}
