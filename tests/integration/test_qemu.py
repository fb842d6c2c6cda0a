"""End-to-end with real QEMU guests (TCG): real kernels and network stacks attached to palisaded
through vhost-user, in both socket modes, with and without the firewall."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import Daemon, Workdir, wait_for  # noqa: E402
from qemu_guest import QEMU, QemuGuest  # noqa: E402

MACS = {"a": "02:00:00:00:30:01", "b": "02:00:00:00:30:02"}
IPS = {"a": "10.30.0.1", "b": "10.30.0.2"}

POLICY = """ruleset web-tier {
  # Filter rules
  rule 1006 at 1 inout protocol tcp from addrset ip-vm-a to addrset ip-vm-b port 22 accept with log;
  rule 1003 at 2 inout protocol udp from any to any port {67, 68} accept;
  rule 1004 at 3 inout protocol ipv6-icmp icmptype 135 from any to any accept;
  rule 1004 at 4 inout protocol ipv6-icmp icmptype 136 from any to any accept;
  rule 1002 at 5 inout protocol any from any to any reject with log;
}
addrset ip-vm-a {
vm vm-a,
}
addrset ip-vm-b {
vm vm-b,
}
"""


@unittest.skipIf(QEMU is None, "qemu-system-x86_64 is not installed")
class ServerModeTest(unittest.TestCase):
    """The switch owns the sockets; QEMU connects."""

    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("qemu")
        cls.sw = Daemon("qemu", cls.work.path).start()
        cls.guests = {}
        try:
            for n in "ab":
                sock = cls.work.join(f"{n}.sock")
                cls.sw.ctl(f"port add vm-{n} --vhost-user {sock} --vm vm-{n} --mac {MACS[n]} --ip {IPS[n]}")
                cls.guests[n] = QemuGuest(n, cls.work.path, sock, MACS[n], IPS[n] + "/24",
                                          listen=[22, 5001]).start()
            for g in cls.guests.values():
                g.wait_ready()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for g in cls.guests.values():
            g.stop()
        rc = cls.sw.stop()
        cls.work.remove()
        assert rc == 0, f"palisaded exited {rc}"

    def test_1_guests_ping_and_carry_a_tcp_stream(self):
        a, b = self.guests["a"], self.guests["b"]
        self.assertTrue(a.ping(b.ip), "a pings b")
        self.assertTrue(b.ping(a.ip), "b pings a")
        # 1 MiB through b's TCP echo service and back, compared by digest.
        rc, out = a.run("dd if=/dev/urandom of=/tmp/tx bs=1024 count=1024 2>/dev/null && "
                        f"nc -w 3 {b.ip} 7 < /tmp/tx > /tmp/rx; sha256sum /tmp/tx /tmp/rx", timeout=120)
        sums = [line.split()[0] for line in out.strip().splitlines() if "/tmp/" in line]
        self.assertEqual(len(sums), 2, out)
        self.assertEqual(sums[0], sums[1], "the stream came back intact")
        ports = {p["name"]: p for p in self.sw.ctl("port stats")["ports"]}
        self.assertGreater(ports["vm-a"]["rx_bytes"], 1 << 20)
        self.assertGreater(ports["vm-b"]["rx_bytes"], 1 << 20)

    def test_2_firewall_policy(self):
        a, b = self.guests["a"], self.guests["b"]
        rules = self.work.join("policy.rules")
        with open(rules, "w") as f:
            f.write(POLICY)
        for n in "ab":
            self.sw.ctl(f"filter attach vm-{n} --slot 1 --agent swsec")
            self.sw.ctl(f"filter attach vm-{n} --slot 2 --agent sfw")
            self.sw.ctl(f"rules load vm-{n} {rules}")

        # The SSH-like port between the two sets works.
        rc, out = a.run(f"echo hello | nc -w 2 {b.ip} 22")
        self.assertIn("hello", out)
        # Anything else is refused at once (a TCP RST from the firewall), and logged.
        start = time.monotonic()
        rc, out = a.run(f"nc -w 5 {b.ip} 5001 </dev/null")
        self.assertNotEqual(rc, 0)
        self.assertIn("refused", out.lower())
        self.assertLess(time.monotonic() - start, 3.0)
        self.assertFalse(a.ping(b.ip, tries=2), "ICMP echo is rejected by rule 1002")

        # A live connection shows in getflows with its rule and counters.
        a.run(f"(sleep 30; echo bye) | nc {b.ip} 22 > /dev/null 2>&1 &")
        flows = wait_for(lambda: [f for f in self.sw.ctl("flows show vm-b --dport 22")["flows"]
                                  if f["state"] == "EST"], 10, what="the live connection")
        f = flows[0]
        self.assertEqual((f["rule"], f["src"], f["dst"], f["proto"]), (1006, IPS["a"], IPS["b"], "tcp"))
        self.assertGreater(f["orig_pkts"], 0)
        self.assertGreater(f["reply_pkts"], 0)
        log = wait_for(lambda: "REJECT web-tier/1002" in self.sw.packet_log() and self.sw.packet_log(), 5,
                       what="reject log lines")
        self.assertIn("INET match PASS web-tier/1006 IN", log)
        self.assertIn("INET match REJECT web-tier/1002", log)

    def test_3_port_security(self):
        a, b = self.guests["a"], self.guests["b"]
        before = self.sw.port("vm-a")["drops"]["SpoofGuard"]
        # a takes b's address: nothing it sends gets through.
        a.run(f"ip addr flush dev eth0 && ip addr add {IPS['b']}/24 dev eth0")
        try:
            rc, out = a.run(f"echo x | nc -w 2 10.30.0.9 22; arping -c 2 -w 3 -I eth0 10.30.0.9")
            self.assertNotEqual(rc, 0)
        finally:
            a.run(f"ip addr flush dev eth0 && ip addr add {IPS['a']}/24 dev eth0")
        # a takes b's MAC: the same.
        a.run(f"ip link set eth0 address {MACS['b']}")
        try:
            rc, out = a.run(f"ip neigh flush all; echo x | nc -w 2 {b.ip} 22")
            self.assertNotIn("x", out.replace("nc:", ""))
        finally:
            a.run(f"ip link set eth0 address {MACS['a']}")
        self.assertGreater(self.sw.port("vm-a")["drops"]["SpoofGuard"], before)
        self.assertIn("SpoofGuard DROP", self.sw.packet_log())
        a.run("ip neigh flush all")
        rc, out = a.run(f"echo back | nc -w 2 {b.ip} 22")
        self.assertIn("back", out, "with its own addresses again, a works")


@unittest.skipIf(QEMU is None, "qemu-system-x86_64 is not installed")
class ClientModeTest(unittest.TestCase):
    """QEMU owns the sockets (server=on); the switch restarts under running guests."""

    def test_switch_restart_under_running_guests(self):
        work = Workdir("qemuc")
        guests = {}
        conf = work.join("palisade.conf")
        with open(conf, "w") as f:
            for n in "ab":
                f.write(f"port add vm-{n} --vhost-user {work.join(n + '.sock')} --client\n")
        sw = Daemon("qemuc", work.path, config=conf)
        try:
            for n in "ab":
                guests[n] = QemuGuest(n, work.path, work.join(f"{n}.sock"), MACS[n], IPS[n] + "/24",
                                      mode="client").start()
            sw.start()
            for g in guests.values():
                g.wait_ready()
            a, b = guests["a"], guests["b"]
            self.assertTrue(a.ping(b.ip))
            self.assertEqual(sw.stop(), 0)
            self.assertFalse(a.ping(b.ip, tries=1), "no switch, no traffic")
            sw.start()
            wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]), 30,
                     what="the switch reconnected to both guests")
            self.assertTrue(a.ping(b.ip), "traffic resumes without restarting the guests")
            rc, out = a.run(f"echo again | nc -w 2 {b.ip} 7")
            self.assertIn("again", out)
        finally:
            for g in guests.values():
                g.stop()
            sw.stop()
            work.remove()


if __name__ == "__main__":
    unittest.main(verbosity=2)
