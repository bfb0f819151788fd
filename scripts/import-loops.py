#!/usr/bin/env python3
"""Import loops between the files of a Rust crate.

Usage: scripts/import-loops.py CRATE_SRC_DIR [--quiet]

Each .rs file is a node. A file depends on another when it names an item of it through a path
(`crate::a::b`, `super::x`, `self::x`, or a child module's name after `mod x;`): the path is
resolved to the deepest file that defines the named module, following `pub use` re-exports of
lib.rs and mod.rs files. `mod x;` itself is not a dependency. Test modules (`#[cfg(test)] mod
tests { ... }` to the end of the file) are left out: a test may reach anywhere.

Prints each strongly connected component of more than one file (an import loop) and exits 1
if there is any; exits 0 otherwise.
"""
import os
import re
import sys


def module_files(src):
    """module path (tuple) -> file path"""
    mods = {}
    for dirpath, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            full = os.path.join(dirpath, f)
            rel = os.path.relpath(full, src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("lib", "main") and len(parts) == 1:
                parts = []
            elif parts[-1] == "mod":
                parts = parts[:-1]
            mods[tuple(parts)] = full
    return mods


def strip(text):
    # drop the test module (conventionally last) and comments and strings
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    if m:
        text = text[: m.start()]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return text


def use_paths(text):
    """Expand `use a::{b, c::{d}}` trees and collect bare paths like `crate::x::y`."""
    paths = []

    def expand(prefix, tree):
        tree = tree.strip()
        if not tree:
            return
        # split top-level commas
        depth, cur, parts = 0, "", []
        for ch in tree:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        parts.append(cur)
        for p in parts:
            p = p.strip()
            if not p:
                continue
            if "{" in p:
                head, rest = p.split("{", 1)
                head = head.strip().rstrip(":").strip()
                rest = rest.rsplit("}", 1)[0]
                expand(prefix + [x for x in head.split("::") if x], rest)
            else:
                p = re.sub(r"\s+as\s+\w+$", "", p)
                paths.append(prefix + [x.strip() for x in p.split("::") if x.strip()])

    for m in re.finditer(r"\buse\s+([^;]+);", text):
        expand([], m.group(1))
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        paths.append(m.group(1).split("::"))
    # Bare paths in code (`routes::login`, `api::router(…)`): kept when their first segment is
    # a child module (resolved by the caller).
    for m in re.finditer(r"(?<![:\w])(\w+(?:::\w+)+)", text):
        paths.append(m.group(1).split("::"))
    return paths


def main():
    src = sys.argv[1]
    quiet = "--quiet" in sys.argv
    mods = module_files(src)
    texts = {m: strip(open(f, encoding="utf-8").read()) for m, f in mods.items()}
    # re-exports: module -> {name: absolute path}
    reexports = {}
    children = {}
    for m, t in texts.items():
        children[m] = set(re.findall(r"\bmod\s+(\w+)\s*;", t))
    for m, t in texts.items():
        names = {}
        for m2 in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", t):
            for p in use_paths("use " + m2.group(1) + ";"):
                absolute = absolutize(m, p, children)
                if absolute:
                    names[p[-1]] = absolute
        reexports[m] = names

    def resolve(path, seen=0):
        """deepest module of an absolute path, following re-exports"""
        best = ()
        for i in range(len(path), -1, -1):
            if tuple(path[:i]) in mods:
                best = tuple(path[:i])
                break
        rest = path[len(best):]
        if rest and seen < 8 and rest[0] in reexports.get(best, {}):
            return resolve(list(reexports[best][rest[0]]) + rest[1:], seen + 1)
        return best

    edges = {m: set() for m in mods}
    for m, t in texts.items():
        for p in use_paths(t):
            absolute = absolutize(m, p, children)
            if absolute is None:
                continue
            target = resolve(absolute)
            if target != m and not (len(target) < len(m) and m[: len(target)] == target and not absolute[len(target):]):
                edges[m].add(target)
    loops = sccs(edges)
    name = lambda m: os.path.relpath(mods[m], src)
    if not quiet:
        for comp in loops:
            print(f"loop of {len(comp)} files: " + ", ".join(sorted(name(m) for m in comp)))
    if loops:
        total = len({m for c in loops for m in c})
        print(f"{src}: {len(loops)} import loop(s), {total} files in them")
        sys.exit(1)
    print(f"{src}: no import loops ({len(mods)} files)")


def absolutize(m, p, children):
    if not p:
        return None
    if p[0] == "crate":
        return p[1:]
    if p[0] in ("super", "self"):
        base = list(m)
        i = 0
        while i < len(p) and p[i] in ("super", "self"):
            if p[i] == "super":
                base = base[:-1]
            i += 1
        return base + p[i:]
    if p[0] in children.get(m, ()):
        return list(m) + p
    return None


def sccs(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
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
                out.append(comp)

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    main()
