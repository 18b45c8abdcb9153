#!/usr/bin/env bash
# Creates .venv (at the repository root) with the interop peers listed in
# scripts/requirements-interop.txt: the OpenSSF reference signing tool `model_signing` 1.1.1
# (with pyOpenSSL) and sigstore-python 4.5.1.
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
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/scripts/requirements-interop.txt"
"$venv/bin/model_signing" --help >/dev/null
"$venv/bin/sigstore" --version >/dev/null
echo "ready: $venv ($("$venv/bin/python" -m pip show model-signing sigstore 2>/dev/null | sed -n 's/^\(Name\|Version\): //p' | paste -sd' '))"
