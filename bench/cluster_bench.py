"""Cluster policy at scale (bench/cluster_bench.cc) against a real etcd: starts a one-member
etcd on loopback (tests/lib/etcd.py), runs the simulated hosts beside raw etcd watchers (the
baseline), and reports etcd's memory and keys after the run.

Usage (root not needed): /usr/bin/python3 bench/cluster_bench.py [--hosts 50,200] [--vms 20000]
       [--groups 100] [--rounds 5]"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from etcd import EtcdCluster  # noqa: E402

BUILD = os.environ.get("PALISADE_BUILD", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--hosts", default="50,200")
    p.add_argument("--vms", type=int, default=20000)
    p.add_argument("--groups", type=int, default=100)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    etcd = EtcdCluster(1, tag="bench-etcd")
    try:
        subprocess.run([os.path.join(BUILD, "bench", "cluster_bench"), etcd.endpoints(), "--hosts", a.hosts,
                        "--vms", str(a.vms), "--groups", str(a.groups), "--rounds", str(a.rounds)], check=True)
        pid = etcd.procs["m0"].pid
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
        keys = etcd.ctl("get", "--prefix", "/palisade/", "--keys-only", "-w", "fields")
        count = next((line.split(":")[1].strip() for line in keys.splitlines() if '"Count"' in line), "?")
        print(f"etcd: {rss / 1024:.0f} MiB resident, {count} keys under /palisade/")
    finally:
        etcd.close()


if __name__ == "__main__":
    main()
