#!/usr/bin/env bash
# Benchmark: push and pull a 1 GiB model (random data) against its own local registry and compare
# with curl's plain upload/download of the same bytes in the same run. Each measurement runs
# RUNS times; the median time and the largest peak RSS (/usr/bin/time -v) are
# printed. Not a test: the numbers go into the README. Defaults to 5 runs: this machine's
# timings are noisy (a VM sharing its host), and the median of 5 is steadier than of 3.
#   scripts/bench.sh [SIZE_MIB] [RUNS]     (defaults 1024 5)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
size_mib="${1:-1024}"
runs="${2:-5}"

bash scripts/deps.sh
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/oci-model"

work="$root/.work/bench"
# The benchmark's own registry (own storage, a free port): the user's registry
# (scripts/registry.sh start) and what they pushed to it are left alone.
export OCI_MODEL_REGISTRY_STATE="$work/registry"
bash scripts/registry.sh stop >/dev/null 2>&1 || true
rm -rf "$work"; mkdir -p "$work/model"
bash scripts/registry.sh start "$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')" >/dev/null
trap 'bash scripts/registry.sh stop >/dev/null 2>&1 || true' EXIT
reg="$(bash scripts/registry.sh addr)"

echo "creating a ${size_mib} MiB model (random data); $runs runs per measurement after a warm-up run"
head -c $((size_mib * 1048576)) /dev/urandom > "$work/model/model.safetensors"
printf '{"hidden_size":768}\n' > "$work/model/config.json"
bytes=$(stat -c %s "$work/model/model.safetensors")
digest="sha256:$(sha256sum "$work/model/model.safetensors" | cut -d' ' -f1)"

# once NAME CMD...: one run under /usr/bin/time -v; appends "seconds rss_kb" to NAME.runs.
# Dirty pages left by the previous step are written out first (sync), so that no measurement
# pays for another's disk writeback.
once() {
  local name="$1"; shift
  sync
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time"
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$work/$name.time" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$work/$name.time" | awk '{print $NF}')
  echo "$wall" | awk -F: -v rss="$rss" '{ s = (NF==3) ? $1*3600+$2*60+$3 : $1*60+$2; print s, rss }' >>"$work/$name.runs"
}

# report NAME: median seconds, MB/s, max peak RSS.
report() {
  local name="$1" med rss
  med=$(sort -n "$work/$name.runs" | awk '{ a[NR]=$1 } END { print a[int((NR+1)/2)] }')
  rss=$(sort -n -k2 "$work/$name.runs" | tail -1 | awk '{ print $2 }')
  echo "$med" > "$work/$name.secs"
  printf '%-16s %7.2f s %9.1f MB/s %7.1f MB peak RSS   (runs: %s)\n' "$name" "$med" \
    "$(awk -v b="$bytes" -v s="$med" 'BEGIN { printf "%.1f", b/1048576/s }')" \
    "$(awk -v r="$rss" 'BEGIN { printf "%.1f", r/1024 }')" \
    "$(awk '{ printf "%s ", $1 }' "$work/$name.runs")"
}

curl_upload() {
  local repo="$1" loc sep
  loc=$(curl -fsS -D - -o /dev/null -X POST "http://$reg/v2/$repo/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
  case "$loc" in *\?*) sep='&' ;; *) sep='?' ;; esac
  once curl-upload curl -fsS -H "Content-Type: application/octet-stream" -T "$work/model/model.safetensors" "${loc}${sep}digest=${digest}"
}

# Run 0 is a warm-up, not counted: on this VM the first write into never-used memory (the first
# 1 GiB downloaded) is much slower, and it would fall on whichever step comes first.
for i in $(seq 0 "$runs"); do
  # Each run pushes into a new repository with an empty digest cache, so every byte is sent.
  curl_upload "bench/curl$i"
  once oci-model-push env XDG_CACHE_HOME="$work/cache$i" "$bin" push -q "$work/model" "$reg/bench/model$i:v1"
  rm -f "$work/curl.bin"; rm -rf "$work/pulled"
  once curl-download curl -fsS -o "$work/curl.bin" "http://$reg/v2/bench/curl$i/blobs/$digest"
  once oci-model-pull "$bin" pull -q "$reg/bench/model$i:v1" "$work/pulled"
  cmp "$work/model/model.safetensors" "$work/pulled/model.safetensors"
  if [ "$i" = 0 ]; then rm -f "$work"/*.runs; fi
done
rm -f "$work/curl.bin"

report curl-upload
report oci-model-push
report curl-download
report oci-model-pull
ratio() { awk -v a="$(cat "$work/$1.secs")" -v b="$(cat "$work/$2.secs")" 'BEGIN { printf "%.2f", a/b }'; }
echo "push/curl-upload   = $(ratio oci-model-push curl-upload)x  (goal <= 1.10)"
echo "pull/curl-download = $(ratio oci-model-pull curl-download)x  (goal <= 1.15)"
