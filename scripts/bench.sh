#!/usr/bin/env bash
# Runs the firewall microbenchmarks (each beside its baseline, in the same run) and prints the
# numbers with their ratios to the baselines. Usage: scripts/bench.sh [MIN_TIME_SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-debian.sh >/dev/null
min_time=${1:-0.5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for b in classifier conntrack; do
  build/bench/${b}_bench --benchmark_min_time="$min_time" --benchmark_format=json >"$out/$b.json"
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
runs = {}
for f in os.listdir(d):
    for b in json.load(open(os.path.join(d, f)))["benchmarks"]:
        runs[b["name"]] = b
def ns(name): return runs[name]["real_time"] if runs[name]["time_unit"] == "ns" else runs[name]["real_time"] * 1000
print("Classifier, first match at the last of N rules (ns per packet)")
print(f"{'rules':>8} {'palisade':>10} {'linear scan':>12} {'speed-up':>9} {'memory KiB':>11}")
for n in (1, 100, 1000, 10000):
    c, l = ns(f"BM_Classifier/{n}"), ns(f"BM_LinearBaseline/{n}")
    print(f"{n:>8} {c:>10.1f} {l:>12.1f} {l / c:>8.2f}x {runs[f'BM_Classifier/{n}']['memory_KiB']:>11.0f}")
print()
print("Connection table lookup (ns per lookup)")
print(f"{'entries':>8} {'palisade':>10} {'unordered_map':>14} {'speed-up':>9} {'bytes/entry':>12}")
for n in (10000, 1000000):
    c, m = ns(f"BM_ConnTableLookup/{n}"), ns(f"BM_UnorderedMapBaseline/{n}")
    print(f"{n:>8} {c:>10.1f} {m:>14.1f} {m / c:>8.2f}x {runs[f'BM_ConnTableLookup/{n}']['bytes_per_entry']:>12.1f}")
print(f"(a Conn entry is {runs['BM_ConnTableLookup/10000']['sizeof_Conn']:.0f} bytes; the rest is the hash index and pool slack)")
print()
r = runs["BM_NewConnections"]["items_per_second"]
print(f"New connections through the stateful filter: {r / 1e6:.2f} M/s on one core (target 2 M/s: {r / 2e6:.2f}x)")
PY
