#!/usr/bin/env bash
# Benchmark: push and pull a 1 GiB model (random data) against the local registry and compare
# with curl's plain upload/download of the same bytes in the same run. Prints time, MB/s and
# peak RSS (from /usr/bin/time -v). Not a test: numbers go into the README.
#   scripts/bench.sh [SIZE_MIB]     (default 1024)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
size_mib="${1:-1024}"

bash scripts/deps.sh
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/oci-model"

work="$root/.work/bench"
rm -rf "$work"; mkdir -p "$work/model"
bash scripts/registry.sh stop >/dev/null 2>&1 || true
rm -rf "$root/.work/registry/storage"
bash scripts/registry.sh start 5000 >/dev/null
reg="$(cat .work/registry/addr)"

echo "creating a ${size_mib} MiB model (random data)"
head -c $((size_mib * 1048576)) /dev/urandom > "$work/model/model.safetensors"
printf '{"hidden_size":768}\n' > "$work/model/config.json"
bytes=$(stat -c %s "$work/model/model.safetensors")

# measure NAME CMD...: runs CMD under /usr/bin/time -v, prints seconds and peak RSS.
measure() {
  local name="$1"; shift
  local tlog="$work/$name.time"
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$tlog"
  local wall rss secs
  wall=$(grep 'Elapsed (wall clock)' "$tlog" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$tlog" | awk '{print $NF}')
  secs=$(echo "$wall" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  printf '%-22s %8.2f s %9.1f MB/s %8.1f MB peak RSS\n' "$name" "$secs" \
    "$(echo "$bytes $secs" | awk '{ printf "%.1f", $1/1048576/$2 }')" \
    "$(echo "$rss" | awk '{ printf "%.1f", $1/1024 }')"
  echo "$secs" > "$work/$name.secs"
}

echo "== curl baseline (upload session + one PUT of the file, download to a file)"
digest="sha256:$(sha256sum "$work/model/model.safetensors" | cut -d' ' -f1)"
loc=$(curl -fsS -D - -o /dev/null -X POST "http://$reg/v2/bench/curl/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
measure curl-upload curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$work/model/model.safetensors" "${loc}${sep}digest=${digest}"
measure curl-download curl -fsS -o "$work/curl-download.bin" "http://$reg/v2/bench/curl/blobs/$digest"
rm -f "$work/curl-download.bin"

echo "== oci-model"
rm -rf "$work/cache"
measure oci-model-push env XDG_CACHE_HOME="$work/cache" "$bin" push -q "$work/model" "$reg/bench/model:v1"
measure oci-model-pull "$bin" pull -q "$reg/bench/model:v1" "$work/pulled"
cmp "$work/model/model.safetensors" "$work/pulled/model.safetensors"

ratio() { awk -v a="$(cat "$work/$1.secs")" -v b="$(cat "$work/$2.secs")" 'BEGIN { printf "%.2f", a/b }'; }
echo "push/curl-upload   = $(ratio oci-model-push curl-upload)x  (goal <= 1.10)"
echo "pull/curl-download = $(ratio oci-model-pull curl-download)x  (goal <= 1.15)"
