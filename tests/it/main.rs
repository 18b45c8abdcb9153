//! Integration tests: one binary, one module per area. The harness starts the real registry.

mod harness;
mod smoke;
mod registry;
mod attest_lib;
mod fakes;
mod keyless;
mod conformance;
mod verify_bundle;
mod layout;
mod push_pull;
mod interop;
mod local;
mod sign_verify;
mod attest;
