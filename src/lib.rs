//! # oci-model
//!
//! Makes machine-learning models tamper-evident in OCI registries: a model directory becomes a
//! CNCF ModelPack artifact (one layer per file), signatures and attestations are Sigstore
//! bundles attached as OCI 1.1 referrers, and verification checks them against keys or keyless
//! identities before any file is released.
//!
//! ## Architecture and dependency rules
//! - [`digest`], [`error`], [`media_types`], [`reference`]: leaf modules, no I/O.
//! - [`store`]: where artifacts live (registry, OCI layout, memory) behind the `Store` trait
//!   of primitives that take checked forms (`store::checked`: sized manifest, referrer whose
//!   subject was checked, valid tag); optional capabilities (mounts) discovered separately;
//!   streaming blob I/O checked for digest and size; referrers (API and fallback tag); copy
//!   between stores; one retry policy (`store::retry`). `store::error` is its leaf; the
//!   registry client is layered (transport → upload/pages → endpoints). Knows nothing of
//!   models or signatures.
//! - [`model`]: directory ⇄ artifact (walk, roles → media types, config, pack/unpack). Uses
//!   `store`.
//! - [`signing`]: keys, DSSE, the OpenSSF model-signing statement, keyless signing. No I/O
//!   except key files.
//! - [`attest`]: in-toto Statement v1 and SLSA provenance v1 builders.
//! - [`verify`]: trusted roots, policy, the checks; pure (bytes in, report out), writes
//!   nothing, and alone builds the verified result.
//! - [`sigstore_ops`]: joins the above with a store: sign/attest a target (push referrers),
//!   gather and verify a target's referrers.
//! - [`progress`]: the `Reporter` trait the library calls; the CLI draws bars.
//!
//! Nothing here depends on the CLI (`src/cli`, declared only by `main.rs`). Secrets live in
//! [`secret::Secret`], which never prints its content.

pub mod attest;
pub mod digest;
pub mod error;
pub mod media_types;
pub mod model;
pub mod progress;
pub mod reference;
pub mod secret;
pub mod signing;
pub mod sigstore_ops;
pub mod store;
pub mod verify;
