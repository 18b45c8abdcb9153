//! Integration tests: one binary, one module per area. The harness starts the real registry.

mod attest;
mod attest_lib;
mod cli_edges;
mod conformance;
mod fakes;
mod harness;
mod interop;
mod json_output;
mod key_tlog;
mod keyless;
mod layout;
mod local;
mod newcomer;

mod push_pull;
mod registry;
mod sign_verify;
mod smoke;
mod store_contract;
mod support;
mod verify_bundle;
