#!/usr/bin/env bash
# One command from a fresh Debian machine: install what is needed, build oci-model, start a
# local registry and run the main job end to end: generate a key pair, push a generated model,
# sign it, attest SLSA provenance, verify, pull with verification, and show a tampered copy
# being refused.
#
#   scripts/setup.sh [--port PORT]     # or OCI_MODEL_REGISTRY_PORT=PORT
#
# Without a port the registry uses 5000, or a free port when 5000 is taken (printed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

port="${OCI_MODEL_REGISTRY_PORT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="${2:?--port needs a number}"; shift 2 ;;
    --port=*) port="${1#--port=}"; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup.sh: unknown argument $1 (usage: scripts/setup.sh [--port PORT])" >&2; exit 2 ;;
  esac
done

bash scripts/deps.sh
echo "==> building oci-model (release; the first build takes several minutes)"
cargo build --release
bin="${CARGO_TARGET_DIR:-$root/target}/release/oci-model"

# shellcheck disable=SC2086 # an empty $port means "pick one"
bash scripts/registry.sh start $port
reg="$(bash scripts/registry.sh addr)"

demo="$root/.work/demo"
rm -rf "$demo"
mkdir -p "$demo/model/tokenizer"
head -c 8388608 /dev/urandom > "$demo/model/model.safetensors"
printf '{"architectures":["BertModel"],"hidden_size":768}\n' > "$demo/model/config.json"
printf '{"version":"1.0"}\n' > "$demo/model/tokenizer/tokenizer.json"
printf '# demo-bert\nA generated model for the oci-model demo.\n' > "$demo/model/README.md"
ref="$reg/demo/bert:v1"

# step DESCRIPTION CMD...: print the command, run it.
step() {
  echo
  echo "==> $*"
  "$@"
}

cd "$demo"
step "$bin" generate-key-pair --no-password --output-key-prefix release
step "$bin" push model "$ref"
step "$bin" sign "$ref" --key release.key
step "$bin" attest "$ref" --provenance --key release.key --command "python train.py"
step "$bin" verify "$ref" --key release.pub --attestation-type slsaprovenance1
step "$bin" pull "$ref" pulled --key release.pub --attestation-type slsaprovenance1
echo
echo "==> diff -r model pulled"
diff -r model pulled
echo "identical: the pulled model matches the pushed one byte for byte"

# A tampered copy: copy the signed model (with its signatures) into an OCI layout, change one
# byte of the weights blob, and pull it with verification.
step "$bin" copy "$ref" oci:tampered:v1
weights="tampered/blobs/sha256/$(sha256sum model/model.safetensors | cut -d' ' -f1)"
chmod u+w "$weights"
printf 'X' | dd of="$weights" bs=1 seek=1000 conv=notrunc status=none
echo
echo "==> $bin pull oci:tampered:v1 pulled-tampered --key release.pub   (one byte of the weights changed)"
set +e
"$bin" pull oci:tampered:v1 pulled-tampered --key release.pub
code=$?
set -e
if [ "$code" = 0 ] || [ -e pulled-tampered/model.safetensors ]; then
  echo "setup.sh: the tampered copy was NOT refused (exit $code)" >&2
  exit 1
fi
echo "refused as it should be (exit $code); nothing was written to pulled-tampered/"

echo
echo "Done. The binary is $bin"
echo "  (put it on your PATH, or install it: cargo install --path $root)"
echo "The demo files are in $demo; the registry is still running on $reg"
echo "  (stop it with: scripts/registry.sh stop)"
