//! Integration tests: one binary, one module per area. The harness starts the real registry.

mod attest;
mod attest_lib;
mod binding;
mod cli_edges;
mod conformance;
mod deploy;
mod ecosystem;
mod fakes;
mod foreign_fields;
mod fuzz;
mod harness;
mod hostile;
mod image;
mod integrations;
mod interop;
mod json_output;
mod key_tlog;
mod keyless;
mod layout;
mod local;
mod newcomer;

mod push_pull;
mod referrers_race;
mod registry;
mod rekor_v2;
mod sign_verify;
mod signals;
mod smoke;
mod store_contract;
mod support;
mod timestamps;
mod transaction;
mod tuf;
mod verify_bundle;
