#!/usr/bin/env python3
"""Keeps the folders layered: each folder includes only folders below it.

Reads every #include "folder/..." in C++ sources and every import "/folder/..." in Cap'n Proto
schemas under ROOT (default: the tree this script is in), and fails naming the file and line
when a folder uses one it may not. Folders without DPDK (the firewall library, the slot API,
cluster/, cli/) must not include DPDK's headers either. Run by the test command.
"""
import os
import re
import sys

# Bottom up. A folder may use the folders listed for it, and itself.
ALLOWED = {
    "common": [],
    "slot": ["common"],
    "firewall": ["slot", "common"],
    "vswitch": ["firewall", "slot", "common"],
    "migration": ["vswitch", "firewall", "slot", "common"],
    # The cluster's view in etcd: no DPDK, so it can run many times in one process.
    "cluster": ["firewall", "slot", "common"],
    "rpc": ["migration", "vswitch", "cluster", "firewall", "slot", "common"],
    "daemon": ["rpc", "cluster", "migration", "vswitch", "firewall", "slot", "common"],
    # palisadectl: a client of the control plane's schema (and of cluster intent), apart.
    "cli": ["rpc", "cluster", "firewall", "slot", "common"],
}
TOP = ["bench", "tests"]  # may use everything
NO_DPDK = ["common", "slot", "firewall", "cluster", "cli"]
IGNORED = {"build", "build-fuzz", "build-san", "scripts", ".git", ".ci", ".cache"}

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^">]+)[">]')
IMPORT = re.compile(r'import\s+"/([^"]+)"')
SOURCES = (".h", ".cc", ".capnp")


def check(root):
    errors = []
    folders = set(ALLOWED) | set(TOP)
    for entry in sorted(os.listdir(root)):
        path = os.path.join(root, entry)
        if entry in IGNORED or entry.startswith(".") or not os.path.isdir(path):
            continue
        if os.path.exists(os.path.join(path, "build.ninja")):  # a meson build directory
            continue
        has_code = any(f.endswith(SOURCES) for _, _, files in os.walk(path) for f in files)
        if entry not in folders and has_code:
            errors.append(f"{entry}/: a folder with code that has no layer; add it to "
                          f"scripts/check_layers.py")
    for folder in sorted(ALLOWED):
        base = os.path.join(root, folder)
        for dirpath, _, files in os.walk(base):
            for name in sorted(files):
                if not name.endswith(SOURCES):
                    continue
                file = os.path.join(dirpath, name)
                rel = os.path.relpath(file, root)
                with open(file, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        errors += check_line(folder, rel, lineno, line, folders)
    return errors


def check_line(folder, rel, lineno, line, folders):
    if rel.endswith(".capnp"):
        m = IMPORT.search(line)
        target = m.group(1) if m else None
    else:
        m = INCLUDE.match(line)
        target = m.group(1) if m else None
    if target is None:
        return []
    if folder in NO_DPDK and re.match(r"(rte_|dpdk/)", target):
        return [f"{rel}:{lineno}: {folder}/ includes DPDK's {target}; {folder}/ builds without DPDK"]
    used = target.split("/", 1)[0]
    if "/" not in target or used not in folders or used == folder or used in ALLOWED[folder]:
        return []
    allowed = ", ".join(ALLOWED[folder]) or "nothing else"
    return [f"{rel}:{lineno}: {folder}/ includes {target}, from a layer it may not use "
            f"({folder}/ may use: {allowed})"]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    errors = check(root)
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        print(f"check_layers: {len(errors)} include(s) against the layers", file=sys.stderr)
        return 1
    print("check_layers: every folder uses only the layers below it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
