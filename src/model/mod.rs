//! Directory ⇄ artifact: walk, roles → media types, config blob, pack/unpack.

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unsafe path {path:?} in {what}: {reason}")]
    UnsafePath { what: String, path: String, reason: String },
    #[error("{0}")]
    Input(String),
}

impl ModelError {
    /// Exit code class: a hostile artifact is a verification failure (1), bad local input 2.
    pub fn exit_class(&self) -> u8 {
        match self {
            ModelError::UnsafePath { .. } => 1,
            ModelError::Input(_) => 2,
        }
    }
}
