"""palisadectl against the real daemon over Cap'n Proto RPC: the FORMATS.md views, rule and
address-set round trips, per-rule counters and flows under real guest traffic, errors and exit
codes."""

import json
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (Daemon, NamespaceGuests, PALISADECTL, Session, Workdir, make_certs,  # noqa: E402
                              echo_server, stop_process, wait_for)

# The getrules example of FORMATS.md (shared with the rule text's unit test) and its
# getaddrsets example with this test's guests' addresses.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "formats-web-tier.rules")) as f:
    FORMATS_RULES = f.read()
FORMATS_ADDRSETS = """addrset ip-ipset-2 {
ip 192.168.110.10,
}
addrset ip-vm-33 {
ip 10.14.0.1,
ip fe80::250:56ff:fe9a:1,
}
addrset ip-vm-36 {
ip 10.14.0.2,
}
"""
FILTER = "nic-1-vm-b-palisade-sfw.2"


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("cli")
        cls.sw = Daemon("cli", cls.work.path).start()
        for n, ip in (("a", "10.14.0.1"), ("b", "10.14.0.2")):
            rc, out, err = cls.sw.cli("port", "add", f"vm-{n}", "--vhost-user", cls.work.join(f"{n}.sock"),
                                      "--vm", f"vm-{n}", "--ip", ip)
            assert rc == 0, err
        cls.sw.cli("filter", "attach", "vm-b", "--slot", "2", "--agent", "sfw")
        cls.guests = NamespaceGuests("pcli", [("a", cls.work.join("a.sock"), "10.14.0.1/24"),
                                              ("b", cls.work.join("b.sock"), "10.14.0.2/24")])
        wait_for(lambda: all(p["link"] for p in cls.sw.ctl("port list")["ports"]))
        cls.server = echo_server(cls.guests["b"], 22)

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.server)
        cls.guests.close()
        rc = cls.sw.stop()
        cls.work.remove()
        assert rc == 0

    def ok(self, *args, stdin=None):
        rc, out, err = self.sw.cli(*args, stdin=stdin)
        self.assertEqual(rc, 0, f"{args}: {err}")
        return out

    def test_1_formats_rules_and_sets_round_trip(self):
        self.ok("setrules", "-f", FILTER, "-", stdin=FORMATS_ADDRSETS + FORMATS_RULES)
        self.assertEqual(self.ok("getrules", "-f", FILTER), FORMATS_RULES)
        self.assertEqual(self.ok("getaddrsets", "-f", "vm-b"), FORMATS_ADDRSETS)
        # What getrules prints loads back unchanged.
        printed = self.ok("getrules", "-f", FILTER)
        self.ok("setrules", "-f", FILTER, "-", stdin=printed)
        self.assertEqual(self.ok("getrules", "-f", FILTER), FORMATS_RULES)

    def test_2_counters_and_flows_move_under_traffic(self):
        a, b = self.guests["a"], self.guests["b"]
        s = Session(a)
        try:
            self.assertEqual(s.do(f"connect {b.ip} 22 5"), "connected")
            self.assertEqual(s.do("send hello"), "echo hello")
            stats = self.ok("getrules", "-f", FILTER, "-s")
            line = [l for l in stats.splitlines() if l.startswith("rule 1006:")][0]
            evals = int(line.split()[2])
            self.assertGreaterEqual(evals, 1, line)
            self.assertNotIn("in 0 out 0 pkts", line)
            flows = self.ok("getflows", "-f", FILTER, "-p", "tcp", "-y", "22")
            lines = flows.splitlines()
            self.assertTrue(lines[0].startswith("Count retrieved from kernel active(L3,L4)=1,"), flows)
            fields = lines[1].split()
            self.assertEqual(fields[1:6], ["Active", "tcp", "0800", "0", "1006"])
            self.assertEqual(fields[9], "10.14.0.2:ssh(22)")
            self.assertTrue(fields[8].startswith("10.14.0.1:Unknown("))
            self.assertEqual(fields[11], "EST")
            count = self.ok("getflows", "-f", FILTER, "-n")
            self.assertIn("active(L3,L4)=", count)
            js = json.loads(self.sw.cli("getflows", "-f", FILTER, "-y", "22", json_out=True)[1])
            self.assertEqual(js["flows"][0]["ruleId"], 1006)
        finally:
            s.close()
        wait_for(lambda: "INET match PASS web-tier/1006 IN" in self.ok("log", "tail", "-n", "5"), 5,
                 what="the log line of the admitted connection in log tail")
        out = self.ok("getflows", "-f", FILTER, "-y", "22", "-F")
        self.assertIn("flushed 1", out)
        self.assertIn("active(L3,L4)=0", self.ok("getflows", "-f", FILTER, "-y", "22", "-n"))

    def test_3_malformed_rules_refused_with_line_and_column(self):
        rc, out, err = self.sw.cli("setrules", "-f", FILTER, "-",
                                   stdin="ruleset web-tier {\n  rule 1 at 1 sideways protocol tcp from any to any accept;\n}\n")
        self.assertEqual(rc, 1)
        self.assertIn("line 2, column 15: expected a direction (in, out, inout), got 'sideways'", err)
        self.assertIn("rule 1006", self.ok("getrules", "-f", FILTER), "the old table stays")

    def test_4_views(self):
        summary = self.ok("summarize-dvfilter")
        self.assertIn(" port 1 vm-b\n  vNic slot 2\n   name: nic-1-vm-b-palisade-sfw.2\n"
                      "   agentName: palisade-sfw\n   state: IOChain Attached\n   vmState: Attached\n"
                      "   failurePolicy: failClosed\n", summary)
        self.assertIn("vm-a", self.ok("port", "list"))
        self.assertIn("CYCLES/PKT", self.ok("worker", "stats"))
        listing = self.ok("connection", "list")
        self.assertIn("ESTABLISHED", listing)
        self.assertRegex(listing, r"cli +palisadectl \d+", "the CLI says who it is")
        self.assertIn("connection limit: 100000", self.ok("firewall", "show", "-f", FILTER))
        self.ok("firewall", "set", "-f", FILTER, "--limit", "2000", "--timeout", "udp_first=9")
        shown = self.ok("firewall", "show", "-f", FILTER)
        self.assertIn("connection limit: 2000", shown)
        self.assertIn("udp_first 9", shown)
        self.ok("setaddrset", "-f", FILTER, "extra", "10.9.0.0/16")
        self.assertIn("addrset extra {\nip 10.9.0.0/16,\n}", self.ok("getaddrsets", "-f", FILTER))

    def test_5_errors_and_exit_codes(self):
        for args, code, text in [
            (["getrules", "-f", "nosuch"], 1, "no stateful firewall 'nosuch'"),
            (["port", "del", "nosuch"], 1, "no port 'nosuch'"),
            (["port", "add", "x", "--vhost-user", "/nonexistent-dir/x.sock"], 1, "/nonexistent-dir/x.sock"),
            (["getrules"], 2, "expected -f FILTER"),
            (["getflows", "-f", FILTER, "-y", "70000"], 2, "expected a port (0-65535), got '70000'"),
            (["frobnicate"], 2, "unknown command 'frobnicate'"),
            (["firewall", "set", "-f", FILTER, "--timeout", "udp_forever=3"], 1, "unknown timeout 'udp_forever'"),
        ]:
            rc, out, err = self.sw.cli(*args)
            self.assertEqual(rc, code, f"{args}: {err}")
            self.assertIn(text, err, args)
        r = subprocess.run([PALISADECTL, "-s", self.work.join("nothing.rpc"), "port", "list"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("palisadectl:", r.stderr)
        for cmd in ["getflows", "getrules", "summarize-dvfilter", "port", "worker", "mac", "cluster"]:
            rc, out, err = self.sw.cli(cmd, "--help")
            self.assertEqual(rc, 0)
            self.assertIn("Usage: palisadectl " + cmd, out)
        # An unknown command is a usage error, with --help or without.
        for args in (["frobnicate"], ["frobnicate", "--help"]):
            rc, out, err = self.sw.cli(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn("unknown command 'frobnicate'", err)


class TlsTest(unittest.TestCase):
    def test_tls_needs_a_client_certificate_from_the_ca(self):
        work = Workdir("tls")
        make_certs(work.path)
        port = 47000 + os.getpid() % 1000
        cert = lambda n: work.join(n)
        sw = Daemon("tls", work.path, extra=["--rpc-tls-listen", f"localhost:{port}",
                                              "--tls-cert", cert("server.pem"), "--tls-key", cert("server.key"),
                                              "--tls-ca", cert("ca.pem"), "--tls-operators", "client",
                                              "--tls-peers", "server"]).start()
        try:
            def ctl(client, *args):
                return subprocess.run([PALISADECTL, "-c", f"localhost:{port}", "--tls-cert", cert(client + ".pem"),
                                       "--tls-key", cert(client + ".key"), "--tls-ca", cert("ca.pem"), *args],
                                      capture_output=True, text=True, timeout=30)
            r = ctl("client", "port", "add", "a", "--vhost-user", work.join("a.sock"))
            self.assertEqual(r.returncode, 0, r.stderr)
            r = ctl("client", "port", "list")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(work.join("a.sock"), r.stdout)
            r = ctl("rogue", "port", "list")
            self.assertEqual(r.returncode, 1, "a certificate from another CA gets nothing")
            self.assertNotIn("a.sock", r.stdout)
            self.assertEqual(ctl("client", "port", "list").returncode, 0, "the server still serves")
            # Roles by certificate: CN=viewer (not listed) reads; CN=server (a peer switch) may
            # only migrate a port here. Neither changes anything.
            r = ctl("viewer", "port", "list")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("a.sock", r.stdout)
            for who, args in (("viewer", ["port", "add", "b", "--vhost-user", work.join("b.sock")]),
                              ("viewer", ["exec", "port", "del", "a"]),
                              ("viewer", ["setrules", "-f", "a", "/dev/null"]),
                              ("server", ["port", "add", "b", "--vhost-user", work.join("b.sock")]),
                              ("server", ["port", "list"])):
                r = ctl(who, *args)
                self.assertEqual(r.returncode, 1, f"{who} {args}: {r.stdout}")
                self.assertIn("certificate makes it a " + ("reader" if who == "viewer" else "peer"), r.stderr)
            self.assertEqual(sorted(p["name"] for p in sw.ctl("port list")["ports"]), ["a"])
            r = ctl("client", "connection", "list")
            self.assertIn("tls CN=client (operator)", r.stdout)
            # A connection that never starts its handshake is dropped after 10 s, not held (a
            # recv still waiting at 30 s raises).
            silent = socket.create_connection(("localhost", port))
            silent.settimeout(30)
            self.assertEqual(silent.recv(1), b"", "the switch closed the silent connection")
            silent.close()
        finally:
            self.assertEqual(sw.stop(), 0)
            work.remove()


if __name__ == "__main__":
    unittest.main(verbosity=2)
