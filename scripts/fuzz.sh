#!/usr/bin/env bash
# The long fuzzing run: the property-based fuzz tests of tests/it/fuzz.rs (every parser of
# untrusted input must never panic, and round-trip where it serialises) with many more cases
# than the test command's short budget. A failure is shrunk and its seed kept in
# tests/proptest-regressions/fuzz.txt: commit that file so the case is replayed in every run.
#
#   scripts/fuzz.sh [CASES]     (default 20000 cases per property; the test command runs 256)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
cases="${1:-20000}"
echo "==> fuzzing every parser with $cases cases per property"
PROPTEST_CASES="$cases" cargo test --release --test it -- fuzz:: --test-threads 2
