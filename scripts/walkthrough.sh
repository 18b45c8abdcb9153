#!/usr/bin/env bash
# Runs the README's walkthrough exactly as written, against a fresh registry of its own, and
# checks it: every command must exit 0 (a command that prints its own `exit $?` is checked by
# that line instead), and every output line the README shows must appear in what the command
# printed. Digests, key hints and times differ from run to run and are compared by shape;
# lines holding "…" stand for elided output and are not compared. The test command runs this,
# so the README cannot drift from the tool.
#
#   scripts/walkthrough.sh [PATH-TO-oci-model]   (default: target/debug/oci-model, built here)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bin="${1:-}"
if [ -z "$bin" ]; then
  cargo build --quiet --bin oci-model
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/oci-model"
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

work="$root/.work/walkthrough"
export OCI_MODEL_REGISTRY_STATE="$work/registry"
bash scripts/registry.sh stop >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work/bin" "$work/run"
ln -s "$bin" "$work/bin/oci-model"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
bash scripts/registry.sh start "$port" >/dev/null
trap 'bash scripts/registry.sh stop >/dev/null 2>&1 || true' EXIT

# The README's commands and outputs, with localhost:5000 moved to this run's registry.
python3 - "$root/README.md" "$work" "$port" <<'PY'
import json, re, sys
readme, work, port = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(readme, encoding="utf-8").read()
section = text.split("\n## Walkthrough", 1)[1]
block = section.split("```console\n", 1)[1].split("\n```", 1)[0]
steps, cmd = [], None
for line in block.split("\n"):
    line = line.replace("localhost:5000", f"localhost:{port}")
    if cmd is not None and cmd["cmd"].endswith("\\"):
        cmd["cmd"] = cmd["cmd"] + "\n" + line
        continue
    if line.startswith("$ "):
        cmd = {"cmd": line[2:], "out": []}
        steps.append(cmd)
    elif cmd is not None and line.strip():
        cmd["out"].append(line)
if not steps:
    sys.exit("walkthrough.sh: no commands found in the README's walkthrough")
json.dump(steps, open(f"{work}/steps.json", "w"), ensure_ascii=False, indent=1)
with open(f"{work}/run.sh", "w") as f:
    f.write("set +e\n")
    for i, s in enumerate(steps):
        f.write(f"{{ {s['cmd']}\n}} >{work}/out.{i} 2>&1 </dev/null; echo $? >{work}/rc.{i}\n")
PY

(cd "$work/run" && PATH="$work/bin:$PATH" LC_ALL=C NO_COLOR=1 HOME="$work/home" \
  XDG_CACHE_HOME="$work/cache" DOCKER_CONFIG="$work/docker" bash "$work/run.sh")

python3 - "$work" <<'PY'
import json, re, sys
work = sys.argv[1]
steps = json.load(open(f"{work}/steps.json"))

def norm(line):
    line = re.sub(r"sha256:[0-9a-f]{64}", "sha256:<digest>", line)
    line = re.sub(r"\b[0-9a-f]{64}\b", "<hex>", line)
    line = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", "<time>", line)
    line = line.replace("├──", "─").replace("└──", "─")
    return line.rstrip()

failed = 0
for i, s in enumerate(steps):
    rc = int(open(f"{work}/rc.{i}").read())
    out = open(f"{work}/out.{i}", encoding="utf-8", errors="replace").read()
    got = {norm(l) for l in out.split("\n")}
    problems = []
    if rc != 0 and 'echo "exit $?"' not in s["cmd"]:
        problems.append(f"exited {rc}")
    for want in s["out"]:
        if "…" in want:
            continue
        if norm(want) not in got:
            problems.append(f"missing line: {want}")
    first = s["cmd"].split("\n")[0]
    if problems:
        failed += 1
        print(f"FAIL $ {first}")
        for p in problems:
            print(f"     {p}")
        print("     --- output ---")
        print("     " + out.rstrip().replace("\n", "\n     "))
    else:
        print(f"ok   $ {first}")
print(f"walkthrough: {len(steps) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
