//! Trusted roots, policy, the checks, and the report. Pure: bytes in, report out.

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Failed(String),
}
