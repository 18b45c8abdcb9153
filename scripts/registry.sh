#!/usr/bin/env bash
# Start or stop a local registry (Debian's docker-registry, the program behind registry:2).
#
#   scripts/registry.sh start [PORT]   # PORT busy: refused. No PORT: 5000, or a free port when
#                                      # 5000 is taken. Prints the address and writes it to
#                                      # $STATE/addr, where the other scripts read it.
#   scripts/registry.sh stop           # stops the registry this script started, nothing else
#   scripts/registry.sh addr           # prints host:port of the running registry
#
# State (config, storage, log, pid, addr) lives in .work/registry, or in
# $OCI_MODEL_REGISTRY_STATE (the benchmark uses its own so it never touches yours).
# docker-compose.yml serves the same registry on the same port 5000: use one or the other.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${OCI_MODEL_REGISTRY_STATE:-$root/.work/registry}"
mkdir -p "$state"

# listening PORT: something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ours PID: PID is alive and is the docker-registry serving this state's config.
ours() {
  [ -n "${1:-}" ] && [ -r "/proc/$1/cmdline" ] &&
    tr '\0' ' ' <"/proc/$1/cmdline" | grep -qF "serve $state/config.yml"
}

# answers ADDR NONCE: the registry at ADDR is the one started with NONCE (it echoes it in a
# response header), not another program on the same port.
answers() {
  curl -fsS -D - -o /dev/null --max-time 2 "http://$1/v2/" 2>/dev/null | tr -d '\r' |
    grep -qi "^x-oci-model-registry: $2\$"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
  start)
    if [ -f "$state/pid" ] && ours "$(cat "$state/pid")" &&
      answers "$(cat "$state/addr")" "$(cat "$state/nonce")"; then
      echo "registry already running on $(cat "$state/addr") (pid $(cat "$state/pid"))"
      exit 0
    fi
    rm -f "$state/pid" "$state/addr"
    port="${2:-${OCI_MODEL_REGISTRY_PORT:-}}"
    if [ -n "$port" ]; then
      if listening "$port"; then
        echo "registry.sh: port $port is already in use on 127.0.0.1 (another registry, or docker compose up?);" \
          "stop that program, or choose another port: scripts/registry.sh start PORT (or omit PORT for a free one)" >&2
        exit 1
      fi
    else
      port=5000
      if listening "$port"; then
        port="$(free_port)"
        echo "port 5000 is in use; using free port $port instead" >&2
      fi
    fi
    nonce="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
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
  headers:
    X-Oci-Model-Registry: [$nonce]
YAML
    nohup docker-registry serve "$state/config.yml" >"$state/registry.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "registry.sh: the registry exited at start:" >&2
        tail -n 5 "$state/registry.log" >&2
        exit 1
      fi
      if answers "127.0.0.1:$port" "$nonce"; then
        echo "$pid" > "$state/pid"
        echo "$nonce" > "$state/nonce"
        echo "127.0.0.1:$port" > "$state/addr"
        echo "registry running on 127.0.0.1:$port (pid $pid, storage $state/storage, log $state/registry.log)"
        exit 0
      fi
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    echo "registry.sh: the registry did not answer on 127.0.0.1:$port within 10 s; see $state/registry.log" >&2
    exit 1
    ;;
  stop)
    if [ ! -f "$state/pid" ]; then
      echo "no registry started by this script is running"
      exit 0
    fi
    pid="$(cat "$state/pid")"
    if ours "$pid"; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      echo "registry stopped (pid $pid)"
    else
      echo "the recorded pid $pid is no longer the registry this script started; nothing killed"
    fi
    rm -f "$state/pid" "$state/addr" "$state/nonce"
    ;;
  addr)
    if [ -f "$state/pid" ] && ours "$(cat "$state/pid")"; then
      cat "$state/addr"
    else
      echo "registry.sh: no registry started by this script is running (scripts/registry.sh start)" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 start [PORT] | stop | addr" >&2
    exit 2
    ;;
esac
