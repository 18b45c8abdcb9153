//! What kind of failure an error is, for callers that must act on it (the CLI maps each kind
//! to one exit code, in one place). Every library error type answers `kind()`; a wrapper
//! error delegates to what it wraps. Leaf module: no dependencies inside the crate.

/// The kind of a library error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Content is not what it claims to be: a digest or size mismatch, a hostile or
    /// oversized document, a signature or certificate that does not verify.
    Integrity,
    /// The caller's input is wrong: a bad flag, reference, path, key or local file.
    Input,
    /// A registry, token service or Sigstore service failed or could not be reached.
    Remote,
    /// The thing asked for does not exist (tag, manifest, blob, repository).
    NotFound,
}
