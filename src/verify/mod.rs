//! Trusted roots, policy, the checks, and the report. Pure: bytes in, report out; never touches
//! the network (no TUF refresh, no Rekor lookups) and writes nothing.
//!
//! - [`TrustedRoot`]: a Sigstore `trusted_root.json`, by default the embedded public-good root.
//! - [`SignerPolicy`]: trusted keys and keyless identities; [`Policy`] adds n-of-m, required
//!   attestation types and provenance requirements; [`PolicyFile`] reads them per repository
//!   from YAML.
//! - [`verify_bundle`]: one Sigstore bundle → [`VerifiedBundle`] (the only way to get one) or a
//!   [`VerifyError`] naming what failed.
//! - [`evaluate`]: several verified bundles against a [`Policy`] → [`PolicyOutcome`].
//! - [`Report`]: the checks and the verdict, for text and JSON output.

mod bundle;
mod error;
mod keyed;
pub mod policy;
pub mod policy_file;
pub mod report;
#[cfg(test)]
mod testutil;
pub mod trust;

pub use bundle::{
    verify_bundle, verify_bundle_with, Artifact, BundleKind, Check, Signer, Statement, Subject,
    VerifiedBundle, VerifyOptions,
};
pub use error::VerifyError;
pub use policy::{
    canonical_pem, evaluate, IdentityRule, Matcher, Policy, PolicyError, PolicyOutcome,
    ProvenanceRequirements, SignatureKinds, SignerEntry, SignerPolicy, TrustedKey,
};
pub use policy_file::PolicyFile;
pub use report::{BundleReport, Report};
pub use trust::{TrustedRoot, TrustedRootSummary};
