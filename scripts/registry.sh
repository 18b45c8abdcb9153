#!/usr/bin/env bash
# Start or stop a local registry (Debian's docker-registry, the program behind registry:2).
#   scripts/registry.sh start [PORT]   # default 5000; storage in .work/registry
#   scripts/registry.sh stop
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="$root/.work/registry"
port="${2:-5000}"
mkdir -p "$state"

case "${1:-}" in
  start)
    if [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "registry already running (pid $(cat "$state/pid")) on $(cat "$state/addr")"
      exit 0
    fi
    cat > "$state/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $state/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: oci-model-local
YAML
    nohup docker-registry serve "$state/config.yml" >"$state/registry.log" 2>&1 &
    echo $! > "$state/pid"
    echo "127.0.0.1:$port" > "$state/addr"
    for _ in $(seq 1 100); do
      if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
        echo "registry running on 127.0.0.1:$port (pid $(cat "$state/pid"), log $state/registry.log)"
        exit 0
      fi
      sleep 0.1
    done
    echo "registry did not start; see $state/registry.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$state/pid" ]; then
      kill "$(cat "$state/pid")" 2>/dev/null || true
      rm -f "$state/pid"
      echo "registry stopped"
    fi
    ;;
  *)
    echo "usage: $0 start [PORT] | stop" >&2
    exit 2
    ;;
esac
