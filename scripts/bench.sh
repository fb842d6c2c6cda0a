#!/usr/bin/env bash
# The benchmarks, each beside its baseline in the same run, with ratios:
#  1. the switches side by side (bench/switch_bench.py): testpmd's limit, Open vSwitch with DPDK
#     (plain and conntrack), Palisade (L2, firewall, firewall during 30,000-rule recompiles),
#     interleaved over ROUNDS rounds, with ratios paired within each round; then OVS conntrack
#     against the firewall at 10,000 and 100,000 flows, and TCP connection setups through each;
#  2. real TCP through strict rules under a hostile network (loss, reordering, duplication),
#     goodput against the firewall off (bench/hostile_tcp_bench.py);
#  3. the firewall microbenchmarks: classifier, connection table, new connections;
#  4. cluster policy with simulated hosts against a real etcd (bench/cluster_bench.py), beside
#     raw etcd watch delivery;
#  5. durability: a change saved before its answer against the same change without it, and a
#     restart's restore of 100,000 and 1,000,000 connections against importing them from memory;
#  6. rule tables at scale: compile time and memory at 1,000-30,000 rules, and 500 ports sharing
#     one 10,000-rule table against as many distinct tables; 500 idle ports' connection tables in
#     tmpfs against the same after a burst each (conn_headroom_bench); the two classifier engines.
# Usage: scripts/bench.sh [--rounds N] [--seconds S] [--micro-only]   (needs root)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5 seconds=5 micro_only=0 min_time=0.5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --micro-only) micro_only=1; shift ;;
    *) echo "usage: scripts/bench.sh [--rounds N] [--seconds S] [--micro-only]" >&2; exit 2 ;;
  esac
done
scripts/setup-debian.sh >/dev/null
# What is measured is what ships: the release build (-O3), with its benchmarks.
if [ ! -f build-release/build.ninja ]; then
  meson setup build-release --buildtype=release -Dwerror=true --prefix=/usr >/dev/null
fi
ninja -C build-release >/dev/null
export PALISADE_BUILD=$PWD/build-release
if [ "$micro_only" -eq 0 ]; then
  if ! dpkg-query -W -f='${Status}' openvswitch-switch-dpdk 2>/dev/null | grep -q "install ok installed"; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends openvswitch-switch-dpdk
  fi
  /usr/bin/python3 bench/switch_bench.py --rounds "$rounds" --seconds "$seconds" \
    --flows 10000,100000 --setups --raw build/bench-switch-rounds.jsonl
  echo
  /usr/bin/python3 bench/hostile_tcp_bench.py --rounds "$rounds"
  echo
  /usr/bin/python3 bench/cluster_bench.py --rounds "$rounds"
  echo
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for b in classifier conntrack migration; do
  build-release/bench/${b}_bench --benchmark_min_time="$min_time" --benchmark_format=json >"$out/$b.json"
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
r0 = runs["BM_NewConnections/0"]["items_per_second"]
r1 = runs["BM_NewConnections/1"]["items_per_second"]
print(f"New connections through the stateful filter, on one core (target 2 M/s): {r1 / 1e6:.2f} M/s "
      f"({r1 / 2e6:.2f}x) into a table grown before; {r0 / 1e6:.2f} M/s ({r0 / 2e6:.2f}x) into a fresh one, "
      f"its index growing and its memory touched for the first time")
rt = runs["BM_Turnover"]
print(f"... and at steady state, each new entry's sweep closing an expired one in a table of "
      f"{rt['entries'] / 1e3:.0f} k: {rt['items_per_second'] / 1e6:.2f} M/s ({rt['items_per_second'] / 2e6:.2f}x)")
print()
ms = lambda n: runs[n]["real_time"] if runs[n]["time_unit"] == "ms" else runs[n]["real_time"] / 1e6
print(f"1,000,000 connection entries: export {ms('BM_Export/iterations:3'):.0f} ms, import "
      f"{ms('BM_Import/iterations:3'):.0f} ms (target: well under 1,000 ms each); a plain memcpy of "
      f"them takes {ms('BM_MemcpyBaseline/iterations:3'):.1f} ms")
print("The final delta's added pause at cut-over, 1,000,000 entries, N changed since the bulk copy")
print(f"{'changed':>8} {'pause ms':>9} {'vs whole-table copy':>20}")
for n in (100, 1000, 10000, 100000):
    r = runs[f"BM_FinalDelta/{n}/iterations:5/manual_time"]
    print(f"{n:>8} {ms(r['name']):>9.2f} {r['full_copy_over_delta']:>19.0f}x")
print("(target: under 5 ms)")
e0 = runs["BM_EstablishedPackets"]["items_per_second"]
p1 = runs["BM_EstablishedPair/512"]["items_per_second"]
p2 = runs["BM_EstablishedPair/100000"]["items_per_second"]
print(f"Established packets through the stateful filter (1,000 rules): {1e9 / e0:.1f} ns per packet; "
      f"through the pair a switched packet meets (sender's OUT, receiver's IN): {1e9 / p1:.1f} ns "
      f"at 512 flows, {1e9 / p2:.1f} ns at 100,000")
PY
echo
echo "Durability (daemon/state_store.h): each change saved before its answer, connections kept in segments"
build-release/bench/durability_bench 2>/dev/null
echo
echo "Rule tables at scale (firewall/rule_table.h): compile time and memory, 500 ports sharing one table"
build-release/bench/rule_scale_bench
echo
echo "Connection tables of idle ports (firewall/conn_table.h): the memory backed ahead follows need"
build-release/bench/conn_headroom_bench
echo
echo "The two classifier engines (bit vectors, rte_acl) on host and security-group tables, 1,000-100,000 rules"
build-release/bench/acl_bench
