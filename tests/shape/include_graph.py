#!/usr/bin/env python3
"""Keeps Kyso's module shape: every `#include "kyso/<module>/..."` is of a module the including
file's target links, and no module includes (or links) one above it.

The modules, lowest first, and what each may use:

    core
    pkcs11, formats              core
    remote (remote-sign/client)  core
    firmware-config              core, pkcs11
    appliance                    core, pkcs11, remote, firmware-config
    verifyd (formats/verifyd)    core, pkcs11, formats, firmware-config
    agent                        core, pkcs11, formats, remote, firmware-config
    cli                          any module

The link graph comes from CMake: the build writes, for every target, its source directory,
sources, direct link libraries and interface link libraries (tests/shape/CMakeLists.txt). A
file belongs to the target that lists it, or (a header under include/) to the targets of its
module. A target "links" a module when the module's library is in its link closure (direct
dependencies, then each one's public interface).

Usage: include_graph.py --graph FILE --root DIR
Exit 0 when the shape holds; 1 with one line per violation otherwise.
"""

import argparse
import os
import re
import sys

# module: (folder, header directory under include/kyso/, the modules it may use)
MODULES = {
    "core": ("core", "core", set()),
    "pkcs11": ("pkcs11", "pkcs11", {"core"}),
    "formats": ("formats", "formats", {"core"}),
    "remote": ("remote-sign/client", "remote", {"core"}),
    "firmware-config": ("firmware-config", "firmware_config", {"core", "pkcs11"}),
    "appliance": ("remote-sign/appliance", "appliance",
                  {"core", "pkcs11", "remote", "firmware-config"}),
    "verifyd": ("formats/verifyd", "verifyd", {"core", "pkcs11", "formats", "firmware-config"}),
    "agent": ("agent", "agent", {"core", "pkcs11", "formats", "remote", "firmware-config"}),
    "cli": ("cli", None, {"core", "pkcs11", "formats", "remote", "firmware-config", "appliance",
                          "verifyd", "agent"}),
}
HEADER_DIR_TO_MODULE = {h: m for m, (_, h, _) in MODULES.items() if h}
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"kyso/([A-Za-z0-9_]+)/[^"]+"', re.M)
SOURCE_EXT = (".cpp", ".hpp", ".h", ".c", ".cpp.in", ".hpp.in")


def module_of_path(rel):
    """The module whose folder holds `rel` (longest folder first), or None (tests, bench)."""
    best = None
    for m, (folder, _, _) in MODULES.items():
        if rel == folder or rel.startswith(folder + "/"):
            if best is None or len(folder) > len(MODULES[best][0]):
                best = m
    return best


def read_graph(path):
    """target -> {dir, sources, link, interface} from the file CMake wrote."""
    targets = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            name, src_dir, sources, link, interface = line.split("\t")
            split = lambda s: [x for x in s.split(";") if x]
            targets[name] = {"dir": src_dir, "sources": split(sources), "link": split(link),
                             "interface": split(interface)}
    return targets


def target_name(lib, targets):
    """kyso::core -> kyso_core; a target name as is; None for system libraries."""
    if lib.startswith("$<LINK_ONLY:"):
        return None  # a static library's private dependency: no headers for its users
    if lib.startswith("kyso::"):
        lib = "kyso_" + lib[len("kyso::"):]
    return lib if lib in targets else None


def link_closure(name, targets):
    seen = set()
    todo = [t for t in (target_name(l, targets) for l in targets[name]["link"]) if t]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        todo.extend(x for x in (target_name(l, targets) for l in targets[t]["interface"]) if x)
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--graph", required=True)
    ap.add_argument("--root", required=True, help="the source tree to read")
    args = ap.parse_args()
    targets = read_graph(args.graph)
    root = os.path.abspath(args.root)

    target_module = {t: module_of_path(v["dir"]) for t, v in targets.items()}
    linked_modules = {}
    for t in targets:
        mods = {target_module[x] for x in link_closure(t, targets)} - {None}
        if target_module[t]:
            mods.add(target_module[t])
        linked_modules[t] = mods

    problems = []

    # The link graph itself points down.
    for t, v in sorted(targets.items()):
        m = target_module[t]
        if not m:
            continue
        for lib in v["link"]:
            d = target_name(lib, targets)
            dm = target_module.get(d) if d else None
            if dm and dm != m and dm not in MODULES[m][2]:
                problems.append(f"{v['dir']}: target {t} ({m}) links {d} ({dm}), a module "
                                f"{m} may not use")

    # Which targets each file belongs to: those that list it, else (headers) its module's.
    file_targets = {}
    for t, v in targets.items():
        for s in v["sources"]:
            rel = s if not os.path.isabs(s) else None
            if rel is None:
                continue
            file_targets.setdefault(os.path.normpath(os.path.join(v["dir"], rel)), set()).add(t)
    module_targets = {}
    for t, m in target_module.items():
        if m:
            module_targets.setdefault(m, set()).add(t)

    walked = [os.path.join(root, d) for d in
              ("core", "pkcs11", "formats", "remote-sign", "firmware-config", "agent", "cli",
               "tests", "bench")]
    for dirpath, dirnames, filenames in (w for top in walked for w in os.walk(top)):
        rel_dir = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames
                       if not d.startswith(".") and d not in ("build", "node_modules")]
        for fn in filenames:
            if not fn.endswith(SOURCE_EXT):
                continue
            rel = os.path.normpath(os.path.join(rel_dir, fn))
            m = module_of_path(rel)
            owners = file_targets.get(rel)
            if owners is None:
                owners = module_targets.get(m, set()) if m else set()
            if not owners:
                continue  # not built (a fuzz corpus, a hardware-only test): nothing to check
            with open(os.path.join(dirpath, fn), encoding="utf-8", errors="replace") as f:
                text = f.read()
            for lineno, hdr in ((text.count("\n", 0, mt.start()) + 1, mt.group(1))
                                for mt in INCLUDE_RE.finditer(text)):
                hm = HEADER_DIR_TO_MODULE.get(hdr)
                if hm is None:
                    problems.append(f"{rel}:{lineno}: includes kyso/{hdr}/, which is no module")
                    continue
                if m and hm != m and hm not in MODULES[m][2]:
                    problems.append(f"{rel}:{lineno}: {m} includes kyso/{hdr}/ ({hm}), a module "
                                    f"above it or beside it")
                    continue
                # A header is shared by its module's targets: one that links is enough.
                if not any(hm in linked_modules[t] for t in owners):
                    problems.append(f"{rel}:{lineno}: includes kyso/{hdr}/ ({hm}) but its "
                                    f"target {'/'.join(sorted(owners))} does not link {hm}")

    for p in problems:
        print(p)
    if problems:
        print(f"include graph: {len(problems)} violation(s)")
        return 1
    print(f"include graph: {len(targets)} targets, shape holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
