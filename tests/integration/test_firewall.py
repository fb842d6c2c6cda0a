"""The stateful firewall and port security through the real daemon, with namespace guests
running real Linux TCP: a FORMATS.md-style policy between two address sets of VMs."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (Daemon, NamespaceGuests, Session, Workdir,  # noqa: E402
                              echo_server, ping_until_answered, stop_all, wait_for)

MAC_A, MAC_B = "02:00:00:00:10:01", "02:00:00:00:11:01"
IP_A, IP_B = "10.13.0.1", "10.13.0.2"

DB_RULES = """ruleset db-tier {
  # Filter rules
  rule 1010 at 1 inout protocol tcp from addrset web to addrset db port 5001 accept with log;
  rule 1011 at 2 inout protocol tcp from any to any port 5003 drop;
  rule 1012 at 3 inout protocol icmp icmptype 8 from any to any accept;
  rule 1002 at 4 inout protocol any from any to any reject with log;
}
addrset web {
vm web-01,
}
addrset db {
vm db-01,
}
"""

WEB_RULES = """ruleset web-tier {
  rule 2001 at 1 out protocol any from any to any accept;
  rule 2002 at 2 in protocol any from any to any reject;
}
"""


class FirewallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("fw")
        cls.sw = Daemon("fw", cls.work.path).start()
        cls.sw.add_protected_port("vm-a", cls.work.join("a.sock"), "web-01", MAC_A, IP_A)
        cls.sw.add_protected_port("vm-b", cls.work.join("b.sock"), "db-01", MAC_B, IP_B)
        cls.guests = NamespaceGuests("pfw", [("a", cls.work.join("a.sock"), IP_A + "/24"),
                                             ("b", cls.work.join("b.sock"), IP_B + "/24")])
        wait_for(lambda: all(p["link"] for p in cls.sw.ctl("port list")["ports"]))
        cls.server = echo_server(cls.guests["b"], 5001)
        cls.rules = {}
        for name, text in (("db", DB_RULES), ("web", WEB_RULES)):
            cls.rules[name] = cls.work.join(f"{name}.rules")
            with open(cls.rules[name], "w") as f:
                f.write(text)

    @classmethod
    def tearDownClass(cls):
        assert stop_all(cls.sw, cls.work, cls.guests, cls.server) == 0

    def load(self):
        self.sw.ctl(f"rules load nic-1-vm-b-palisade-sfw.2 {self.rules['db']}")
        self.sw.ctl(f"rules load vm-a {self.rules['web']}")

    def test_1_fail_closed_until_rules_arrive(self):
        a, b = self.guests["a"], self.guests["b"]
        before = self.sw.port("vm-a")["drops"]["fail-closed"]
        self.assertFalse(ping_until_answered(a, b.ip, tries=2))
        self.assertGreater(self.sw.port("vm-a")["drops"]["fail-closed"], before)
        self.load()
        self.assertTrue(ping_until_answered(a, b.ip), "ICMP echo is allowed")

    def test_2_rules_read_back_and_sets_resolve_to_the_vms(self):
        text = self.sw.ctl("rules show vm-b")["text"]
        self.assertIn("rule 1010 at 1 inout protocol tcp from addrset web to addrset db port 5001 accept with log;", text)
        sets = self.sw.ctl("addrsets show vm-b")["text"]
        self.assertIn("vm web-01,  # now: 10.13.0.1", sets)
        self.assertIn("vm db-01,  # now: 10.13.0.2", sets)
        slots = {p["port"]: p["slots"] for p in self.sw.ctl("filter list")["ports"]}
        self.assertEqual([(s["slot"], s["name"], s["failurePolicy"]) for s in slots["vm-b"]],
                         [(1, "nic-1-vm-b-palisade-swsec.1", "failClosed"),
                          (2, "nic-1-vm-b-palisade-sfw.2", "failClosed")])

    def test_3_allowed_rejected_and_dropped_ports(self):
        a, b = self.guests["a"], self.guests["b"]
        s = Session(a)
        try:
            self.assertEqual(s.do(f"connect {b.ip} 5001 5"), "connected")
            self.assertEqual(s.do("send hello"), "echo hello")
            reply = s.do(f"connect {b.ip} 5002 5")
            self.assertTrue(reply.startswith("refused"), reply)
            self.assertLess(float(reply.split()[1]), 1.0, "a reject answers at once")
            self.assertEqual(s.do(f"connect {b.ip} 5003 2"), "timeout", "a drop stays silent")
        finally:
            s.close()
        flows = self.sw.ctl("flows show vm-b --proto tcp --dport 5001")["flows"]
        self.assertTrue(flows)
        f = flows[0]
        self.assertEqual((f["rule"], f["src"], f["dst"], f["direction"]), (1010, IP_A, IP_B, 0))
        self.assertGreater(f["orig_pkts"], 2)
        self.assertGreater(f["reply_bytes"], 0)
        stats = {r["rule"]: r for r in self.sw.ctl("rules show vm-b --stats")["stats"]}
        self.assertGreater(stats[1010]["in_pkts"], 0)
        self.assertGreater(stats[1002]["evals"], 0)
        drops = self.sw.port("vm-a")["drops"]
        self.assertGreater(self.sw.port("vm-b")["drops"]["reject"] + drops["reject"], 0)
        wait_for(lambda: "INET match PASS db-tier/1010 IN" in self.sw.packet_log(), 5,
                 what="a log line for the admitted connection")
        self.assertIn("INET match REJECT db-tier/1002 IN", self.sw.packet_log())

    def test_4_established_connection_survives_a_reload_that_still_admits_it(self):
        a, b = self.guests["a"], self.guests["b"]
        s = Session(a)
        try:
            self.assertEqual(s.do(f"connect {b.ip} 5001 5"), "connected")
            self.assertEqual(s.do("send before"), "echo before")
            with open(self.rules["db"] + ".v2", "w") as f:
                f.write(DB_RULES.replace("port 5003 drop", "port 5004 drop"))
            self.sw.ctl(f"rules load vm-b {self.rules['db']}.v2")
            self.assertEqual(s.do("send after"), "echo after")
            # A table that no longer admits it closes it at its next packet.
            with open(self.rules["db"] + ".v3", "w") as f:
                f.write(DB_RULES.replace("port 5001 accept", "port 5009 accept"))
            self.sw.ctl(f"rules load vm-b {self.rules['db']}.v3")
            self.assertNotEqual(s.do("send gone"), "echo gone")
        finally:
            s.close()
            self.load()

    def test_5_malformed_rule_file_is_refused_and_the_old_table_keeps_working(self):
        bad = self.work.join("bad.rules")
        with open(bad, "w") as f:
            f.write("ruleset db-tier {\n  rule 1 at 1 inout protocol tcp from any to any port 70000 accept;\n}\n")
        reply = self.sw.try_ctl(f"rules load vm-b {bad}")
        self.assertFalse(reply["ok"])
        self.assertEqual(reply["error"], f"{bad}: line 2, column 55: expected a port or range "
                                         "(P or P-Q, 0-65535, P <= Q), got '70000'")
        self.assertIn("rule 1010", self.sw.ctl("rules show vm-b")["text"])
        self.assertTrue(ping_until_answered(self.guests["a"], self.guests["b"].ip))

    def test_5b_ping_follows_the_icmp_rules(self):
        a, b = self.guests["a"], self.guests["b"]
        no_icmp = self.work.join("no-icmp.rules")
        with open(no_icmp, "w") as f:
            f.write(DB_RULES.replace("protocol icmp icmptype 8", "protocol icmp icmptype 13"))
        self.sw.ctl(f"rules load vm-b {no_icmp}")
        self.sw.ctl("flows flush vm-b --proto icmp")
        try:
            self.assertFalse(ping_until_answered(a, b.ip, tries=2), "echo is no longer allowed")
        finally:
            self.load()
        self.assertTrue(ping_until_answered(a, b.ip))

    def test_5c_firewall_options_change_at_run_time(self):
        self.sw.ctl("firewall set nic-1-vm-b-palisade-sfw.2 --limit 5000 --timeout udp_first=7 --recheck off")
        shown = self.sw.ctl("firewall show vm-b")
        self.assertEqual((shown["limit"], shown["recheck"]), (5000, False))
        self.assertIn("udp_first=7", shown["timeouts"])
        self.assertGreater(shown["table_bytes"], 0)
        self.assertGreater(shown["packet_log"]["written"], 0)
        self.sw.ctl("firewall set vm-b --limit 100000 --timeout udp_first=30 --recheck on")
        self.assertEqual(self.sw.try_ctl("firewall show nosuch")["error"],
                         "no stateful firewall 'nosuch' (give a port with an sfw filter attached, or its filter name)")
        self.assertEqual(self.sw.ctl("flows show vm-a --count")["count"],
                         len(self.sw.ctl("flows show vm-a")["flows"]))

    def test_6_spoofing_guest_reaches_nobody(self):
        a, b = self.guests["a"], self.guests["b"]
        before = self.sw.port("vm-a")["drops"]["SpoofGuard"]
        a.run("ip", "addr", "flush", "dev", a.dev)
        a.run("ip", "addr", "add", "10.13.0.3/24", "dev", a.dev)  # an address it is not bound to
        try:
            self.assertFalse(ping_until_answered(a, b.ip, tries=2))
        finally:
            a.run("ip", "addr", "flush", "dev", a.dev)
            a.run("ip", "addr", "add", IP_A + "/24", "dev", a.dev)
        a.run("ip", "link", "set", a.dev, "address", MAC_B)  # another VM's MAC
        try:
            a.run("ip", "neigh", "flush", "all")
            self.assertFalse(ping_until_answered(a, b.ip, tries=2))
        finally:
            a.run("ip", "link", "set", a.dev, "address", MAC_A)
        self.assertGreater(self.sw.port("vm-a")["drops"]["SpoofGuard"], before)
        wait_for(lambda: "SpoofGuard DROP" in self.sw.packet_log(), 5, what="SpoofGuard log line")
        a.run("ip", "neigh", "flush", "all")
        self.assertTrue(ping_until_answered(a, b.ip), "back to its own addresses, it works again")


if __name__ == "__main__":
    unittest.main(verbosity=2)
