//! Exit codes scripts can trust: 0 success, 1 verification failed, 2 usage or input error,
//! 3 registry or network error, 4 not found (tag, manifest, blob, repository). Library errors
//! say what kind they are; the kind → code mapping is here, in one place.

use oci_model::attest::AttestError;
use oci_model::error::ErrorKind;
use oci_model::model::ModelError;
use oci_model::signing::keyless::KeylessError;
use oci_model::signing::oidc::OidcError;
use oci_model::signing::{KeyError, SigningError};
use oci_model::sigstore_ops::OpsError;
use oci_model::store::StoreError;
use oci_model::verify::VerifyError;
use std::error::Error;
use std::fmt;

pub const OK: u8 = 0;

/// The exit code for a kind of failure.
pub fn code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Integrity => 1,
        ErrorKind::Input => 2,
        ErrorKind::Remote => 3,
        // Its own code, so a script can tell "no such tag" from "registry down".
        ErrorKind::NotFound => 4,
    }
}

/// The exit code for an error: the first error in its chain that has a kind decides; an error
/// no library type classifies is a usage or input error.
pub fn code_for(err: &anyhow::Error) -> u8 {
    code(err.chain().find_map(kind_of).unwrap_or(ErrorKind::Input))
}

fn kind_of(cause: &(dyn Error + 'static)) -> Option<ErrorKind> {
    macro_rules! first_kind {
        ($($t:ty),*) => {$(
            if let Some(e) = cause.downcast_ref::<$t>() {
                return Some(e.kind());
            }
        )*};
    }
    first_kind!(
        Failure,
        StoreError,
        ModelError,
        SigningError,
        KeylessError,
        KeyError,
        OidcError,
        OpsError,
        VerifyError,
        AttestError
    );
    None
}

/// An error whose kind the command decides, e.g. an unusable `--trusted-root` file is the
/// user's input, not a failed verification. It reads as the error it wraps, whose sources stay
/// its sources.
#[derive(Debug)]
pub struct Failure {
    kind: ErrorKind,
    error: anyhow::Error,
}

impl Failure {
    pub fn classify(kind: ErrorKind, error: impl Into<anyhow::Error>) -> anyhow::Error {
        anyhow::Error::new(Failure {
            kind,
            error: error.into(),
        })
    }
    /// A usage or input mistake (exit 2).
    pub fn input(message: impl Into<String>) -> anyhow::Error {
        Self::classify(ErrorKind::Input, anyhow::Error::msg(message.into()))
    }
    /// A verification failure (exit 1).
    pub fn integrity(message: impl Into<String>) -> anyhow::Error {
        Self::classify(ErrorKind::Integrity, anyhow::Error::msg(message.into()))
    }
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The wrapped error's own message only: its causes are this error's causes.
        write!(f, "{}", self.error)
    }
}

impl Error for Failure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.source()
    }
}

/// Classify a result's error as the user's input (exit 2), keeping it as the source.
pub trait InputError<T> {
    fn input(self) -> anyhow::Result<T>;
    /// The same, read as `context: error`.
    fn input_context<C>(self, context: impl FnOnce() -> C) -> anyhow::Result<T>
    where
        C: fmt::Display + Send + Sync + 'static;
}

impl<T, E: Into<anyhow::Error>> InputError<T> for Result<T, E> {
    fn input(self) -> anyhow::Result<T> {
        self.map_err(|e| Failure::classify(ErrorKind::Input, e))
    }
    fn input_context<C>(self, context: impl FnOnce() -> C) -> anyhow::Result<T>
    where
        C: fmt::Display + Send + Sync + 'static,
    {
        self.map_err(|e| Failure::classify(ErrorKind::Input, e.into().context(context())))
    }
}

/// An error and its causes, `: `-separated, as `{:#}` shows them, except that a cause its
/// parent's message already ends with (an error that quotes its source) is not repeated.
pub fn message(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.is_empty() {
            out = text;
        } else if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
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
        assert_eq!(code_for(&e), 3);
        let bad = StoreError::DigestMismatch {
            what: "blob".into(),
            expected: oci_model::digest::Digest::of(b"a"),
            actual: oci_model::digest::Digest::of(b"b"),
        };
        let e = anyhow::Error::new(ModelError::Store(bad)).context("pull");
        assert_eq!(code_for(&e), 1);
    }

    #[test]
    fn not_found_is_not_a_network_error() {
        let missing = StoreError::NotFound {
            what: "manifest v2".into(),
            location: "r/m".into(),
        };
        let e = anyhow::Error::new(OpsError::Store(missing)).context("verify r/m:v2");
        assert_eq!(code_for(&e), 4);
        assert_ne!(code(ErrorKind::NotFound), code(ErrorKind::Remote));
    }

    #[test]
    fn keyless_refusals_are_verification_failures() {
        let refused = KeylessError::Unverified {
            trusted_root: "test".into(),
            reason: "bad SCT".into(),
        };
        let e = anyhow::Error::new(SigningError::Keyless(Box::new(refused)));
        assert_eq!(code_for(&e), 1);
        let down = KeylessError::Rekor {
            url: "http://rekor".into(),
            reason: "503".into(),
        };
        let e = anyhow::Error::new(OpsError::Signing(SigningError::Keyless(Box::new(down))));
        assert_eq!(code_for(&e), 3);
        assert_eq!(code_for(&anyhow::anyhow!("plain")), 2);
    }

    #[test]
    fn a_failure_decides_the_code_and_keeps_its_source() {
        let bad_root = VerifyError::InvalidTrustedRoot {
            source_name: "root.json".into(),
            reason: "no CA".into(),
        };
        let e: anyhow::Error = Err::<(), _>(bad_root).input().unwrap_err();
        assert_eq!(code_for(&e), 2);
        assert_eq!(message(&e), "invalid trusted root root.json: no CA");

        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = Err::<(), _>(io)
            .input_context(|| "cannot read x")
            .unwrap_err();
        assert_eq!(code_for(&e), 2);
        assert_eq!(message(&e), "cannot read x: gone");
        assert!(e
            .chain()
            .any(|c| c.downcast_ref::<std::io::Error>().is_some()));
    }

    #[test]
    fn a_quoted_cause_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(StoreError::io("read blob", io)).context("pull r/m:v1");
        assert_eq!(message(&e), "pull r/m:v1: read blob: gone");
        assert_eq!(code_for(&e), 2);
    }
}
