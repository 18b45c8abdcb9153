//! Keys, DSSE, the OpenSSF model-signing statement, keyless signing.
//!
//! - [`keys`]: load/generate private and public keys (PEM, PKCS#8, encrypted PKCS#8, SPKI).
//! - [`dsse`]: the DSSE pre-authentication encoding and envelope.
//! - [`oms`]: the `model_signing` 1.x statement (build from a local model's file digests or from
//!   an OCI manifest's layers, parse, compare) and the cosign-style statement.
//! - [`signer`]: the [`Signer`] interface; [`bundle`]: key-based Sigstore bundles.
//! - [`error`]: [`SigningError`] and [`KeylessError`] (leaf).
//!
//! Verification of bundles lives in `crate::verify`, not here.

pub mod bundle;
pub mod dsse;
pub mod error;
pub mod keyless;
pub mod keys;
pub mod oidc;
pub mod oms;
pub mod signer;
pub mod signing_config;

pub use bundle::KeySigner;
pub use error::{KeylessError, SigningError};
pub use keys::{KeyError, KeyKind, PrivateKey, PublicKey};
pub use oms::{ModelStatement, OmsError};
pub use signer::{SignedBundle, Signer};
