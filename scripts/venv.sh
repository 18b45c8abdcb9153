#!/usr/bin/env bash
# Creates .venv (at the repository root) with the OpenSSF reference signing tool, used by the
# interop tests in tests/it/interop.rs: `model_signing` 1.1.1 (PyPI `model-signing`) plus
# pyOpenSSL, which it imports for key-based signing.
#
#   scripts/venv.sh            # create or update .venv
#   PYTHON=python3.12 scripts/venv.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="$root/.venv"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet 'model-signing==1.1.1' pyOpenSSL
"$venv/bin/model_signing" --help >/dev/null
echo "ready: $venv/bin/model_signing ($("$venv/bin/python" -m pip show model-signing | sed -n 's/^Version: //p'))"
