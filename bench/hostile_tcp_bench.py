"""Goodput of real TCP through strict rules under a hostile network, against the firewall off.

Two namespace guests on one palisaded; guest a's frames cross a seeded relay that loses 1%,
reorders 5% and duplicates 1% of them (tests/lib/impair.py). Each round streams SIZE bytes from
a to b twice, back to back with the same seed: once with port security and the stateful
firewall (strict rules) on both ports, once with no filters. Prints each round's goodputs and
their ratio, the median of the paired ratios with their range (the machine's speed swings
between rounds, so ratios are taken within a round), and the tcp-invalid drops (0 expected).

Usage (root): /usr/bin/python3 bench/hostile_tcp_bench.py [--rounds N] [--mib SIZE]"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from impair import HOSTILE, STRICT_RULES as RULES  # noqa: E402
from palisade_testlib import Daemon, NamespaceGuests, Workdir, tcp_transfer, wait_for  # noqa: E402

IP4 = {"a": "10.17.0.1", "b": "10.17.0.2"}
MAC = {"a": "02:00:00:00:10:01", "b": "02:00:00:00:11:01"}


def run(rounds, size, seed):
    work = Workdir("hostile-bench")
    sw = Daemon("hostilebench", work.path).start()
    try:
        for n in "ab":
            sw.ctl(f"port add vm-{n} --vhost-user {work.join(n + '.sock')} --mac {MAC[n]} --ip {IP4[n]}")
            with open(work.join(n + ".rules"), "w") as f:
                f.write(RULES[n])
        ratios, invalid = [], 0
        print(f"{'round':>5} {'firewall MB/s':>14} {'no filter MB/s':>15} {'ratio':>7}")
        for r in range(rounds):
            goodput = {}
            for firewall in (True, False):
                for n in "ab":
                    if firewall:
                        sw.ctl(f"filter attach vm-{n} --slot 1 --agent swsec")
                        sw.ctl(f"filter attach vm-{n} --slot 2 --agent sfw")
                        sw.ctl(f"rules load vm-{n} {work.join(n + '.rules')}")
                before = sum(sw.port(f"vm-{n}")["drops"]["tcp-invalid"] for n in "ab")
                guests = NamespaceGuests("phb", [(n, work.join(n + ".sock"), IP4[n] + "/24") for n in "ab"],
                                         impair={"a": dict(HOSTILE, seed=seed + r)})
                try:
                    wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]))
                    t0 = time.monotonic()
                    got, got_sha, sent, sent_sha = tcp_transfer(guests["b"], guests["a"], 5001, size)
                    seconds = time.monotonic() - t0
                    if (got, got_sha) != (sent, sent_sha):
                        raise RuntimeError("the stream arrived damaged")
                finally:
                    guests.close()
                invalid += sum(sw.port(f"vm-{n}")["drops"]["tcp-invalid"] for n in "ab") - before
                goodput[firewall] = size / seconds / 1e6
                if firewall:
                    for n in "ab":
                        sw.ctl(f"filter detach vm-{n} --slot 2")
                        sw.ctl(f"filter detach vm-{n} --slot 1")
            ratio = goodput[True] / goodput[False]
            ratios.append(ratio)
            print(f"{r + 1:>5} {goodput[True]:>14.2f} {goodput[False]:>15.2f} {ratio:>7.2f}", flush=True)
        print(f"goodput with the firewall / without, median of paired ratios: {statistics.median(ratios):.2f} "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}; target >= 0.90)")
        print(f"tcp-invalid drops of the streams' own segments: {invalid} (expected 0)")
    finally:
        sw.stop()
        work.remove()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--mib", type=int, default=8)
    p.add_argument("--seed", type=int, default=11)
    a = p.parse_args()
    run(a.rounds, a.mib << 20, a.seed)


if __name__ == "__main__":
    main()
