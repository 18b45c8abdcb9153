#!/usr/bin/env bash
# The whole test suite: installs what the tests need (system packages, the Python venv with
# the interop peers), checks formatting and lints, and runs every test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

mkdir -p .work
bash scripts/deps.sh
bash scripts/venv.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> scripts/import-cycles.sh (no import cycles between files of src/)"
bash scripts/import-cycles.sh
echo "==> scripts/walkthrough.sh (the README walkthrough, run as written)"
bash scripts/walkthrough.sh
echo "==> cargo test"
cargo test --all-targets --no-fail-fast 2>&1 | tee .work/test.log
