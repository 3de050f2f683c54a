#!/usr/bin/env python3
"""Check that broker/ includes point down its layers and form no loop.

The broker's folders are layers, top to bottom:
ssh > admin > session > targets > kube > storage > policy > base; main.c
sits above them all. A file may include headers of its own layer and of
layers below it, never of one above (nor a header beside main.c).

Within the tree, X.c and X.h are one module "X", and X -> Y when X.c or X.h
includes Y.h. The modules must form a hierarchy: no loop, however long.
The only exceptions are the modules split over a public and a private
header, listed in ONE_MODULE: each pair is one module with two headers.

Prints what is wrong and exits 1, or exits 0 when all is well.
Usage: tests/check-layers.py [BROKER_DIR]
"""

from __future__ import annotations

import pathlib
import re
import sys

ORDER = ["ssh", "admin", "session", "targets", "kube", "storage", "policy", "base"]

# One module over two files: the public header and the private one its
# .c files share. The private one may include the public one back.
ONE_MODULE = {
    frozenset({"policy/config", "policy/config-parse"}),
    frozenset({"policy/redact", "policy/redact-detect"}),
    frozenset({"kube/kube-client", "kube/kube-client-int"}),
    frozenset({"admin/peer-client", "admin/peer-client-int"}),
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def includes(path: pathlib.Path) -> list[str]:
    return INCLUDE.findall(path.read_text(errors="replace"))


def upward(root: pathlib.Path) -> list[str]:
    bad = []
    for f in sorted(root.rglob("*.[ch]")):
        rel = f.relative_to(root)
        if len(rel.parts) < 2:
            continue  # main.c: above every layer
        layer = rel.parts[0]
        if layer not in ORDER:
            bad.append(f"{rel}: in a folder that is not a layer")
            continue
        for inc in includes(f):
            parts = inc.split("/")
            if (len(parts) == 2 and parts[0] in ORDER and
                    ORDER.index(parts[0]) < ORDER.index(layer)) or \
                    (len(parts) == 1 and (root / inc).exists()):
                bad.append(f"{rel} includes {inc}, a layer above its own")
    return bad


def modules(root: pathlib.Path) -> dict[str, set[str]]:
    merge = {}
    for pair in ONE_MODULE:
        name = min(pair, key=len)
        for m in pair:
            merge[m] = name
    graph: dict[str, set[str]] = {}
    for f in sorted(root.rglob("*.[ch]")):
        m = str(f.relative_to(root).with_suffix(""))
        m = merge.get(m, m)
        graph.setdefault(m, set())
        for inc in includes(f):
            if (root / inc).exists():
                t = merge.get(inc[:-2], inc[:-2])
                if t != m:
                    graph[m].add(t)
    return graph


def loops(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    top = pathlib.Path(__file__).resolve().parent.parent
    root = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else top / "broker"
    problems = upward(root)
    graph = modules(root)
    for comp in loops(graph):
        members = set(comp)
        edges = "; ".join(f"{v} -> {', '.join(sorted(graph[v] & members))}" for v in comp)
        problems.append(f"modules include each other in a loop: {edges}")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
