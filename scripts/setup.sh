#!/usr/bin/env bash
# One command from a fresh Debian machine: install what is needed, build oci-model, start a
# local registry on 127.0.0.1:5000 and run a short demo (push a generated model, pull it
# elsewhere, show it is identical).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash scripts/deps.sh
echo "==> building oci-model (release)"
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/oci-model"

bash scripts/registry.sh start 5000
reg="$(cat .work/registry/addr)"

demo="$root/.work/demo"
rm -rf "$demo"
mkdir -p "$demo/model/tokenizer"
head -c 8388608 /dev/urandom > "$demo/model/model.safetensors"
printf '{"architectures":["BertModel"],"hidden_size":768}\n' > "$demo/model/config.json"
printf '{"version":"1.0"}\n' > "$demo/model/tokenizer/tokenizer.json"
printf '# demo-bert\nA generated model for the oci-model demo.\n' > "$demo/model/README.md"

echo "==> oci-model push $demo/model $reg/demo/bert:v1"
"$bin" push "$demo/model" "$reg/demo/bert:v1"
echo "==> oci-model inspect $reg/demo/bert:v1"
"$bin" inspect "$reg/demo/bert:v1"
echo "==> oci-model pull $reg/demo/bert:v1 $demo/pulled"
"$bin" pull "$reg/demo/bert:v1" "$demo/pulled"
echo "==> diff -r model pulled"
diff -r "$demo/model" "$demo/pulled"
echo "identical: the pulled model matches the pushed one byte for byte"
echo "registry still running on $reg (stop it with: scripts/registry.sh stop)"
