#!/usr/bin/env bash
# Benchmark: admission latency of `oci-model admission` for a signed 10-file model on a local
# registry, as the API server sees it: one AdmissionReview v1 (a Pod with the model as an
# image volume) per request over HTTPS, on a kept-alive connection, timed from sending the
# request to reading the whole answer.
#   cached:   the default server (the digest verified once before the runs; each request
#             still resolves the tag with one HEAD to the registry)
#   uncached: a server with --cache-ttl 0 (each request resolves the tag, reads the manifest
#             and the referrers, and verifies both bundles)
# Prints p50, p99 and max per case. Goal: p99 < 50 ms cached, < 1 s uncached. Not a test.
#   scripts/bench-admission.sh [REQUESTS]     (default 200 per case)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
requests="${1:-200}"

bash scripts/deps.sh
cargo build --release --quiet
bin="${CARGO_TARGET_DIR:-$root/target}/release/oci-model"

work="$root/.work/bench-admission"
export OCI_MODEL_REGISTRY_STATE="$work/registry"
bash scripts/registry.sh stop >/dev/null 2>&1 || true
rm -rf "$work"; mkdir -p "$work/model" "$work/tls" "$work/home"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
bash scripts/registry.sh start "$(free_port)" >/dev/null
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bash scripts/registry.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
reg="$(bash scripts/registry.sh addr)"
export HOME="$work/home" DOCKER_CONFIG="$work/home/.docker" XDG_CACHE_HOME="$work/home/.cache"

# A signed 10-file model (9 weight shards of 1 MiB and a config).
for i in $(seq 1 9); do head -c 1048576 /dev/urandom > "$work/model/model-0000$i-of-00009.safetensors"; done
printf '{"hidden_size":768}\n' > "$work/model/config.json"
"$bin" generate-key-pair --no-password --output-key-prefix "$work/signer" >/dev/null
"$bin" push -q "$work/model" "$reg/bench/model:v1" >/dev/null
"$bin" sign -q "$reg/bench/model:v1" --key "$work/signer.key" >/dev/null
cat > "$work/policy.yaml" <<EOF
version: 1
policies:
  - repositories: ["$reg/bench/**"]
    signers:
      - key: $work/signer.pub
EOF

# A CA and the webhook's serving certificate for 127.0.0.1.
(
  cd "$work/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 1 -subj "/CN=bench CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr \
    -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > ext.cnf
  openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out tls.crt -days 1 \
    -extfile ext.cnf 2>/dev/null
)

# start NAME EXTRA…: a webhook on a free port, ready; sets $port.
start() {
  local name="$1"; shift
  port="$(free_port)"
  "$bin" admission --listen "127.0.0.1:$port" --tls-cert "$work/tls/tls.crt" \
    --tls-key "$work/tls/tls.key" --policy "$work/policy.yaml" "$@" >"$work/$name.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 1 100); do
    curl -fsS --cacert "$work/tls/ca.pem" "https://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "the $name webhook did not start: $(cat "$work/$name.log")" >&2
  exit 1
}
start cached; cached_port="$port"
start uncached --cache-ttl 0; uncached_port="$port"

echo "signed 10-file model $reg/bench/model:v1; $requests requests per case after 5 warm-up requests"
python3 - "$work/tls/ca.pem" "$reg/bench/model:v1" "$requests" "$cached_port" "$uncached_port" <<'PY'
import http.client, json, ssl, sys, time
ca, model, n, cached, uncached = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=ca)
pod = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "llm", "namespace": "ml"},
       "spec": {"containers": [{"name": "server", "image": "example/server:1",
                                "volumeMounts": [{"name": "model", "mountPath": "/models", "readOnly": True}]}],
                "volumes": [{"name": "model", "image": {"reference": model, "pullPolicy": "IfNotPresent"}}]}}
def review(i):
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    return json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": f"bench-{i}", "kind": gvk, "resource": gvr, "requestKind": gvk,
                    "requestResource": gvr, "name": "llm", "namespace": "ml", "operation": "CREATE",
                    "userInfo": {"username": "bench"}, "object": pod, "oldObject": None,
                    "dryRun": False, "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}}).encode()
def run(name, port, path):
    conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx, timeout=30)
    times = []
    for i in range(n + 5):
        body = review(i)
        t = time.perf_counter()
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        answer = json.loads(r.read())
        dt = time.perf_counter() - t
        assert r.status == 200 and answer["response"]["allowed"], answer
        if i >= 5:
            times.append(dt)
    times.sort()
    pct = lambda p: times[min(len(times) - 1, int(round(p / 100 * len(times))) - 1)] * 1000
    print(f"{name:<18} p50 {pct(50):8.1f} ms   p99 {pct(99):8.1f} ms   max {times[-1]*1000:8.1f} ms   ({len(times)} requests)")
run("cached /validate", cached, "/validate")
run("cached /mutate", cached, "/mutate")
run("uncached /validate", uncached, "/validate")
PY
curl -fsS --cacert "$work/tls/ca.pem" "https://127.0.0.1:$cached_port/metrics" |
  grep -E '^oci_model_admission_(cache_hits_total|cache_misses_total|verifications_total)'
