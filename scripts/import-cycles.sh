#!/usr/bin/env bash
# Prints every import cycle between the files of src/ and exits 1 when there is one.
#
# The graph: one node per file; an edge A → B when A names an item of B through a
# `crate::…`, `super::…` or `self::…` path (in `use` lines or inline) or through a module it
# imported. The module tree comes from the `mod` declarations. A path that ends at a `pub use`
# re-export is followed to the file that defines the item, so a facade `mod.rs` makes no edge
# by re-exporting (only by using the item itself). The library (src/lib.rs) and the binary
# (src/main.rs, src/cli/**) are two crates; `oci_model::…` paths from the binary cannot close a
# cycle and are not followed. Glob re-exports (`pub use x::*`) are not followed.
#
# Usage: scripts/import-cycles.sh [SRC_DIR]   (default: src next to this script)
set -euo pipefail
src="${1:-$(cd "$(dirname "$0")/.." && pwd)/src}"
exec python3 - "$src" <<'PY'
import os, re, sys

SRC = sys.argv[1]
IDENT = r"[A-Za-z_][A-Za-z0-9_]*"

RAW = re.compile(r'b?r(#*)"')

def strip(text):
    """Source without comments, string and char literals (keeps line structure)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i): depth, i = depth + 1, i + 2
                elif text.startswith("*/", i): depth, i = depth - 1, i + 2
                else:
                    if text[i] == "\n": out.append("\n")
                    i += 1
        elif c in "br" and RAW.match(text, i) and not (i and re.match(r"\w", text[i - 1])):
            m = RAW.match(text, i)
            end = text.find('"' + m.group(1), m.end())
            end = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""' + "\n" * text.count("\n", i, end)); i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j)); i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x[0-9a-fA-F]{2}'", text[i:i + 12]):
            m = re.match(r"'(\\.|[^\\'])'|'\\u\{[0-9a-fA-F]+\}'|'\\x[0-9a-fA-F]{2}'", text[i:i + 12])
            out.append("' '"); i += len(m.group(0))
        else:
            out.append(c); i += 1
    return "".join(out)

# --- module tree ------------------------------------------------------------------------------
files = {}   # (crate, module path tuple) -> file (relative to SRC)
texts = {}   # file -> stripped text
def load(crate, path, rel):
    full = os.path.join(SRC, rel)
    if not os.path.exists(full):
        return
    files[(crate, path)] = rel
    texts[rel] = strip(open(full, encoding="utf-8").read())
    base = os.path.dirname(rel) if (rel.endswith("mod.rs") or path == ()) else rel[:-3]
    for m in re.finditer(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", texts[rel], re.M):
        name = m.group(1)
        for cand in (os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")):
            if os.path.exists(os.path.join(SRC, cand)):
                load(crate, path + (name,), cand)
                break
load("lib", (), "lib.rs")
load("bin", (), "main.rs")
file_of = dict(files)
mod_of = {f: k for k, f in files.items()}

def split_use_tree(tree):
    """`a::{b, c::{d as e}, f::*}` -> [["a","b"], ["a","c","d"], ["a","f","*"]] (aliases dropped)."""
    tree = re.sub(r"\s+", "", tree)
    def parse(s):
        items, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                items.append(cur); cur = ""
                continue
            depth += ch == "{"; depth -= ch == "}"
            cur += ch
        if cur: items.append(cur)
        res = []
        for it in items:
            if "{" in it:
                head, body = it.split("{", 1)
                prefix = [p for p in head.split("::") if p]
                for sub in parse(body[:-1]):
                    res.append(prefix + sub)
            else:
                it = re.sub(r"as" + IDENT + "$", "", it) if "as" in it and re.search(r"[A-Za-z0-9_]as[A-Za-z_]", it) else it
                res.append([p for p in it.split("::") if p])
        return res
    return parse(tree)

# re-exports: (crate, module) -> {name: target path (absolute segments)}
reexports = {}

def absolute(crate, here, segs):
    """Resolve a path's leading crate/super/self against module `here`; None if external."""
    segs = list(segs)
    if not segs: return None
    if segs[0] == "crate":
        return segs[1:]
    if segs[0] in ("self", "super"):
        cur = list(here)
        while segs and segs[0] in ("self", "super"):
            if segs.pop(0) == "super":
                if not cur: return None
                cur.pop()
        return cur + segs
    return None

def file_module(crate, mpath):
    """Longest prefix of mpath that is a file module: (file, rest)."""
    for k in range(len(mpath), -1, -1):
        f = file_of.get((crate, tuple(mpath[:k])))
        if f: return f, list(mpath[k:])
    return None, []

def inline_mods(text):
    """For each line, the names of the inline `mod x { … }` blocks it sits in."""
    stack, depth, per_line = [], 0, []   # stack of (name, brace depth of its block)
    for line in text.split("\n"):
        per_line.append(tuple(n for n, _ in stack))
        m = re.match(r"\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*\{", line)
        pending = m.group(1) if m else None
        for ch in line:
            if ch == "{":
                depth += 1
                if pending:
                    stack.append((pending, depth))
                    pending = None
            elif ch == "}":
                if stack and stack[-1][1] == depth:
                    stack.pop()
                depth -= 1
    return per_line

use_re = re.compile(r"^\s*(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M)
for (crate, mpath), f in files.items():
    text = texts[f]
    scopes = inline_mods(text)
    for m in use_re.finditer(text):
        if not m.group(1):
            continue
        line = text.count("\n", 0, m.start(2))
        if scopes[line]:
            continue
        for segs in split_use_tree(m.group(2)):
            a = absolute(crate, mpath, segs)
            if a is None:
                # `pub use child::X` in a mod.rs is relative to the module itself
                a = list(mpath) + segs
            if a and a[-1] != "*":
                reexports.setdefault((crate, mpath), {})[a[-1]] = a

def resolve(crate, mpath, seen=None):
    """The file that defines the item at absolute path mpath (following pub-use re-exports)."""
    seen = seen or set()
    if mpath and mpath[-1] == "*":
        mpath = mpath[:-1]
    key = (crate, tuple(mpath))
    if key in seen: return None
    seen.add(key)
    f, rest = file_module(crate, mpath)
    if f is None: return None
    if rest:
        mod = mod_of[f][1]
        target = reexports.get((crate, mod), {}).get(rest[0])
        if target is not None:
            g = resolve(crate, target + rest[1:], seen)
            if g: return g
    return f

edges, why = {}, {}   # why[(a, b)] = (line, path) of the first reference making a -> b
for (crate, mpath), f in files.items():
    text = texts[f]
    scopes = inline_mods(text)
    aliases = {}   # local name -> absolute module path (from `use crate::a::b;`)
    lines = text.split("\n")
    def add(abs_path, line):
        g = resolve(crate, abs_path)
        if g and g != f:
            edges.setdefault(f, set()).add(g)
            why.setdefault((f, g), (line + 1, "::".join(["crate"] + list(abs_path))))
    body = use_re.sub("", text)
    body = re.sub(r"^\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*;", "", body, flags=re.M)
    for m in use_re.finditer(text):
        is_pub = bool(m.group(1))
        line = text.count("\n", 0, m.start(2))
        here = tuple(mpath) + scopes[line]
        for segs in split_use_tree(m.group(2)):
            a = absolute(crate, here, segs)
            if a is None and segs and (crate, tuple(mpath) + (segs[0],)) in file_of:
                a = list(mpath) + segs          # 2018-style path to a child module
            if a is None: continue
            glob = bool(a) and a[-1] == "*"
            if a and a[-1] in ("*", "self"): a = a[:-1]
            # A re-export only (the name is not used in the file; a method call `.name(`, a
            # path `Type::name`, a definition `fn name` or `mod name;` is not a use of it):
            # followed, not an edge.
            if is_pub and not scopes[line] and not (
                a and re.search(r"(?<![.\w:])(?<!fn )\b" + a[-1] + r"\b", body)
            ):
                continue
            if not glob and (crate, tuple(a)) in file_of:
                aliases[a[-1] if a else "crate"] = a
                continue                         # a module by name: its uses make the edges
            add(a + ["*"] if glob else a, line)
    # inline paths: crate::…, super::…, self::…, and alias::… / child::…
    children = {k[1][-1]: list(k[1]) for k in file_of if k[0] == crate and len(k[1]) == len(mpath) + 1 and tuple(k[1][:-1]) == tuple(mpath)}
    for i, line in enumerate(lines):
        if re.match(r"\s*(pub(\([^)]*\))?\s+)?use\s", line) or re.match(r"\s*(pub(\([^)]*\))?\s+)?mod\s", line):
            continue
        here = tuple(mpath) + scopes[i]
        for pm in re.finditer(r"(?<![A-Za-z0-9_:])((?:" + IDENT + r"::)+" + IDENT + ")", line):
            segs = pm.group(1).split("::")
            a = absolute(crate, here, segs)
            if a is None:
                base = aliases.get(segs[0]) or (children.get(segs[0]) if not scopes[i] else None)
                if base is None: continue
                a = base + segs[1:]
            add(a, i)

# --- cycles: strongly connected components, then one shortest cycle per back edge ----------
nodes = sorted(set(texts))
index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]
sys.setrecursionlimit(10000)
def strong(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in sorted(edges.get(v, ())):
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(sorted(comp))
for v in nodes:
    if v not in index: strong(v)

def shortest_cycle(start, comp):
    from collections import deque
    prev, q = {start: None}, deque([start])
    while q:
        v = q.popleft()
        for w in sorted(edges.get(v, ())):
            if w not in comp: continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None: path.append(prev[path[-1]])
                return list(reversed(path)) + [start]
            if w not in prev:
                prev[w] = v; q.append(w)
    return None

cycles = set()
for comp in sccs:
    cs = set(comp)
    for v in comp:
        for w in edges.get(v, ()):
            if w in cs and v in edges.get(w, ()):
                cycles.add(tuple(sorted((v, w))))
    for v in comp:
        c = shortest_cycle(v, cs)
        if c and len(c) > 3:
            i = c.index(min(c[:-1])); body = c[i:-1] + c[:i]
            cycles.add(tuple(body) if len(body) > 2 else tuple(sorted(body)))

for c in sorted(cycles, key=lambda c: (len(c), c)):
    print("src/" + c[0] + " -> " + " -> ".join("src/" + x for x in c[1:]) + " -> src/" + c[0]
          if len(c) > 2 else "src/" + c[0] + " <-> src/" + c[1])
    for a, b in zip(c, c[1:] + c[:1]):
        line, path = why[(a, b)]
        print(f"    src/{a}:{line} uses {path}")
if cycles:
    print(f"{len(cycles)} import cycle(s) between files of {SRC}", file=sys.stderr)
    sys.exit(1)
print("no import cycles between files")
PY
