"""Real TCP through strict rules under a hostile network: a Linux-to-Linux stream (window
scaling and SACK on) whose frames lose 1%, reorder 5% and duplicate 1% on the way
(tests/lib/impair.py, a seeded relay: this kernel has no netem), between two namespace guests
behind port security and the stateful firewall. The stream arrives whole and the firewall
drops none of its segments as tcp-invalid. Goodput against the firewall off is a benchmark
(bench/hostile_tcp_bench.py), not a test."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from impair import HOSTILE, STRICT_RULES as RULES  # noqa: E402
from palisade_testlib import Daemon, NamespaceGuests, Workdir, tcp_transfer, wait_for  # noqa: E402

MB = 1 << 20
IP4 = {"a": "10.16.0.1", "b": "10.16.0.2"}
MAC = {"a": "02:00:00:00:10:01", "b": "02:00:00:00:11:01"}
IMPAIR = dict(HOSTILE, seed=7)


class HostileNetworkTest(unittest.TestCase):
    def test_tcp_through_strict_rules_survives_loss_reordering_and_duplication(self):
        work = Workdir("hostile")
        sw = Daemon("hostile", work.path).start()
        guests = None
        try:
            for n in "ab":
                sw.ctl(f"port add vm-{n} --vhost-user {work.join(n + '.sock')} --mac {MAC[n]} --ip {IP4[n]}")
                sw.ctl(f"filter attach vm-{n} --slot 1 --agent swsec")
                sw.ctl(f"filter attach vm-{n} --slot 2 --agent sfw")
                with open(work.join(n + ".rules"), "w") as f:
                    f.write(RULES[n])
                sw.ctl(f"rules load vm-{n} {work.join(n + '.rules')}")
            guests = NamespaceGuests("phost", [(n, work.join(n + ".sock"), IP4[n] + "/24") for n in "ab"],
                                     impair={"a": IMPAIR})
            for n in "ab":
                for knob in ("tcp_window_scaling", "tcp_sack"):
                    guests[n].run("sysctl", "-qw", f"net.ipv4.{knob}=1")
            wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]))
            got, got_sha, sent, sent_sha = tcp_transfer(guests["b"], guests["a"], 5001, 4 * MB)
            self.assertEqual((got, got_sha), (sent, sent_sha), "the stream arrives whole")
            stats = guests.relay_stats("a")
            print("relay:", stats, file=sys.stderr)
            for what in ("lost", "reordered", "duplicated"):
                self.assertGreater(stats[what], 0, f"the network {what} frames")
            for n in "ab":
                drops = sw.port(f"vm-{n}")["drops"]
                self.assertEqual(drops["tcp-invalid"], 0, f"vm-{n}: {drops}")
            flows = sw.ctl("flows show vm-b")["flows"]
            self.assertEqual(len(flows), 1, flows)
        finally:
            if guests:
                guests.close()
            sw.stop()
            work.remove()


if __name__ == "__main__":
    unittest.main()
