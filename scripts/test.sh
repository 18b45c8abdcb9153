#!/usr/bin/env bash
# The whole test suite: installs what the tests need (system packages, the Python venv with
# the interop peers), checks formatting and lints, and runs every test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

mkdir -p .work
# A clean clone gains nothing from incremental compilation, and its cache is gigabytes.
if [ -n "${CI:-}" ]; then
  export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
echo "==> disk: $(df -h --output=avail "$root" | tail -1 | tr -d ' ') free where the build goes (a clean build takes about 1.5 GB)"
bash scripts/deps.sh
bash scripts/venv.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> scripts/import-cycles.sh (no import cycles between files of src/)"
bash scripts/import-cycles.sh
echo "==> cargo test --no-run (builds the tests and the oci-model binary they run)"
cargo test --all-targets --no-run --quiet
echo "==> scripts/walkthrough.sh (the README walkthrough, run as written)"
# The binary the tests built: a plain `cargo build` would build the crate a second time
# (dev-dependencies change the feature set), for nothing.
bash scripts/walkthrough.sh "${CARGO_TARGET_DIR:-$root/target}/debug/oci-model"
echo "==> cargo test"
cargo test --all-targets --no-fail-fast 2>&1 | tee .work/test.log
