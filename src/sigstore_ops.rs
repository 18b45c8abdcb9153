//! Sign, attest and verify targets: joins signing/verify with a store.
