//! The [`Signer`] interface shared by key and keyless signing (`sign`, `sign-local` and
//! `attest` all go through it), and what it returns.

use super::SigningError;

/// A signed Sigstore bundle.
#[derive(Clone, Debug)]
pub struct SignedBundle {
    /// The bundle JSON, as written to a file or a referrer layer.
    pub json: Vec<u8>,
    /// Who signed, for reports (e.g. `key sha256 hint 1a2b…` or a certificate identity).
    pub signer: String,
}

/// Signs DSSE payloads into Sigstore bundles. Implemented by [`KeySigner`] here and by the
/// keyless signer (`signing::keyless`).
#[async_trait::async_trait]
pub trait Signer: Send + Sync {
    /// Who signs, for reports and logs (never secret).
    fn describe(&self) -> String;
    /// Sign `payload` (of DSSE `payload_type`) and wrap it in a Sigstore bundle v0.3.
    async fn sign_dsse(
        &self,
        payload_type: &str,
        payload: &[u8],
    ) -> Result<SignedBundle, SigningError>;
}
