//! # oci-model
//!
//! Makes machine-learning models tamper-evident in OCI registries: a model directory becomes a
//! CNCF ModelPack artifact (one layer per file), signatures and attestations are Sigstore
//! bundles attached as OCI 1.1 referrers, and verification checks them against keys or keyless
//! identities before any file is released.
//!
//! ## Architecture and dependency rules
//! - [`digest`], [`error`], [`intoto`], [`media_types`], [`reference`]: leaf modules, no I/O
//!   ([`intoto`]: the one in-toto Statement v1 type, read and written).
//! - [`store`]: where artifacts live (registry, OCI layout, memory) behind the `Store` trait
//!   of primitives that take checked forms (`store::checked`: sized manifest, referrer whose
//!   subject was checked, valid tag); optional capabilities (mounts) discovered separately;
//!   streaming blob I/O checked for digest and size; referrers (API and fallback tag); copy
//!   between stores; one retry policy (`store::retry`); every cap on what a registry can make
//!   us read or wait for (`store::limits`). `store::error` is its leaf; the
//!   registry client is layered (transport → upload/pages → endpoints). Knows nothing of
//!   models or signatures.
//! - [`model`]: directory ⇄ artifact (model paths, walk, file hashing, roles → media types,
//!   config, pack/unpack, archive layers). Uses `store`.
//! - [`signing`]: keys, DSSE, the OpenSSF model-signing statement, keyless signing. No I/O
//!   except key files: the files and digests it signs come from `model`.
//! - [`attest`]: SLSA provenance v1 and predicate builders (materials hashed by `model`).
//! - [`verify`]: trusted roots, policy, the checks; pure (bytes in, report out), writes
//!   nothing, and alone builds the verified results: a signature becomes a bundle policy
//!   evaluation accepts only once its subject is bound to the artifact or the model's files
//!   (read with `signing::oms`).
//! - [`sigstore_ops`]: joins the above with a store: sign/attest a target (any manifest or
//!   index; a model also gets its per-file signature) (push referrers), gather and verify a
//!   target's referrers.
//! - [`trust_update`]: the trusted root that stays current: `trusted-root update` fetches it
//!   through TUF into the user's cache, and every command loads it from there (re-verified,
//!   offline) when it is not older than the embedded root. Uses `verify` (to parse roots) and
//!   leaves; the only TUF client.
//! - [`admission`]: the Kubernetes admission webhook: model references in workloads,
//!   verified through `sigstore_ops` with a deadline and a digest cache, AdmissionReview v1
//!   in and out, the HTTPS server. Uses everything above.
//! - [`progress`]: the `Reporter` trait the library calls; the CLI draws bars.
//! - [`untrusted`]: a leaf; the one escaping of registry-controlled strings for a terminal
//!   (`Untrusted<T>`), used by every text report and at the printing boundary.
//!
//! Nothing here depends on the CLI (`src/cli`, declared only by `main.rs`). Secrets live in
//! [`secret::Secret`], which never prints its content.

pub mod admission;
pub mod attest;
pub mod digest;
pub mod error;
pub mod intoto;
pub mod media_types;
pub mod model;
pub mod progress;
pub mod reference;
pub mod secret;
pub mod signing;
pub mod sigstore_ops;
pub mod store;
pub mod trust_update;
pub mod untrusted;
pub mod verify;
