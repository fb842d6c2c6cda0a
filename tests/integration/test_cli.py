"""palisadectl against the real daemon over Cap'n Proto RPC: the FORMATS.md views, rule and
address-set round trips, per-rule counters and flows under real guest traffic, errors and exit
codes, and --json: every value where `palisadectl help json` says, of the type it says."""

import json
import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (Daemon, NamespaceGuests, PALISADECTL, Session, Workdir, make_certs,  # noqa: E402
                              echo_server, stop_all, wait_for)

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
JSON_TYPES = {"number": int, "string": str, "bool": bool}


def help_json():
    """`palisadectl help json` as {command line: [(path, type, note)]}."""
    out = subprocess.run([PALISADECTL, "help", "json"], capture_output=True, text=True, check=True).stdout
    sections = {}
    for block in out.split("\n\n")[1:]:
        header, *rows = block.strip("\n").split("\n")
        sections[header] = [tuple(re.split(r"  +", r.strip()) + [""])[:3] for r in rows]
    return sections


def leaf_paths(doc, prefix=""):
    """The jq paths of every number, string and bool in doc, as help json writes them."""
    if isinstance(doc, dict):
        return set().union(*(leaf_paths(v, f"{prefix}.{k}") for k, v in doc.items()))
    if isinstance(doc, list):
        return set().union(*(leaf_paths(v, prefix + "[]") for v in doc))
    return {prefix}


def values_at(doc, path):
    """The values at a jq path like .ports[].spec.ips[], and how many objects on the way lacked
    the key."""
    values, missing = [doc], 0
    for key, each in re.findall(r"\.(\w+)|(\[\])", path):
        step = []
        for v in values:
            if each:
                assert isinstance(v, list), f"{path}: {v!r} is not an array"
                step += v
            else:
                assert isinstance(v, dict), f"{path}: {v!r} is not an object"
                if key in v:
                    step.append(v[key])
                else:
                    missing += 1
        values = step
    return values, missing


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("cli")
        cls.sw = Daemon("cli", cls.work.path).start()
        for n, ip in (("a", "10.14.0.1"), ("b", "10.14.0.2")):
            # vm-b's --allow gives --json's .spec.allow[] a value to check.
            rc, out, err = cls.sw.cli("port", "add", f"vm-{n}", "--vhost-user", cls.work.join(f"{n}.sock"),
                                      "--vm", f"vm-{n}", "--ip", ip, *(["--allow", "vlan"] if n == "b" else []))
            assert rc == 0, err
        cls.sw.cli("filter", "attach", "vm-b", "--slot", "2", "--agent", "sfw")
        cls.guests = NamespaceGuests("pcli", [("a", cls.work.join("a.sock"), "10.14.0.1/24"),
                                              ("b", cls.work.join("b.sock"), "10.14.0.2/24")])
        wait_for(lambda: all(p["link"] for p in cls.sw.ctl("port list")["ports"]))
        cls.server = echo_server(cls.guests["b"], 22)

    @classmethod
    def tearDownClass(cls):
        assert stop_all(cls.sw, cls.work, cls.guests, cls.server) == 0

    def ok(self, *args, stdin=None, json_out=False):
        rc, out, err = self.sw.cli(*args, stdin=stdin, json_out=json_out)
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
            js = json.loads(self.ok("getflows", "-f", FILTER, "-y", "22", json_out=True))
            self.assertEqual(js["flows"][0]["ruleId"], 1006)
            self.assertEqual(js["flows"][0]["flowId"], fields[0], "the id as the text view prints it")
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

    def test_6_json_is_what_help_json_says(self):
        """Every command's --json against `help json` (generated from the schema): each path
        there with its type in every object on the way (but unused union members, and .flushed
        without -F), each path met at least once, counters numbers, ids strings."""
        a, b = self.guests["a"], self.guests["b"]
        dst = Daemon("cli-dst", self.work.path).start()
        s = Session(a)
        try:
            self.assertEqual(s.do(f"connect {b.ip} 22 5"), "connected")
            self.assertEqual(s.do("send hello"), "echo hello")
            runs = {
                "summarize-dvfilter": [["summarize-dvfilter"]],
                "getrules -f FILTER [-s]": [["getrules", "-f", FILTER, "-s"]],
                "getaddrsets -f FILTER": [["getaddrsets", "-f", FILTER]],
                "getflows -f FILTER [SELECTORS] [-F]": [["getflows", "-f", FILTER, "-y", "22"],
                                                        ["getflows", "-f", FILTER, "-y", "1", "-F"]],
                "getflows -f FILTER -n [SELECTORS] [-F]": [["getflows", "-f", FILTER, "-n"],
                                                           ["getflows", "-f", FILTER, "-n", "-y", "1", "-F"]],
                "firewall show -f FILTER": [["firewall", "show", "-f", FILTER]],
                "port list, port stats [NAME]": [["port", "list"], ["port", "stats"], ["port", "stats", "vm-b"]],
                "worker stats": [["worker", "stats"]],
                "mac show": [["mac", "show"]],
                "connection list": [["connection", "list"]],
                "log tail [-n N]": [["log", "tail"]],
                "migrate PORT --to SOCKET|HOST:PORT": [["migrate", "vm-b", "--to", dst.socket,
                                                        "--socket", self.work.join("b2.sock")]],
                "migrate list": [["migrate", "list"]],
                "cluster status": [["cluster", "status"]],
                "setrules, setaddrset, firewall set, port add, port del, filter attach, filter detach, migrate cancel":
                    [["setaddrset", "-f", FILTER, "extra", "10.9.0.0/16"],
                     ["port", "add", "vm-x", "--vhost-user", self.work.join("x.sock")], ["port", "del", "vm-x"],
                     ["migrate", "cancel", "vm-b"]],
            }
            sections = help_json()
            etcd_only = [h for h in sections if "(--etcd)" in h]
            self.assertEqual(sorted(set(sections) - set(etcd_only)), sorted(runs), "a run for every section")
            docs = {}
            for header, argvs in runs.items():
                section = [json.loads(self.ok(*argv, json_out=True)) for argv in argvs]
                docs.update({" ".join(argv): doc for argv, doc in zip(argvs, section)})
                if sections[header][0][0] == "{}":
                    self.assertEqual(section, [{}] * len(argvs), header)
                    continue
                for argv, doc in zip(argvs, section):
                    self.assertLessEqual(leaf_paths(doc), {path for path, _, _ in sections[header]},
                                         f"{argv}: values help json does not name")
                for path, kind, note in sections[header]:
                    met = []
                    for argv, doc in zip(argvs, section):
                        values, missing = values_at(doc, path)
                        if not note.startswith("one of") and not (note == "with -F only" and "-F" not in argv):
                            self.assertEqual(missing, 0, f"{argv}: {path} missing")
                        for v in values:
                            self.assertIs(type(v), JSON_TYPES[kind], f"{argv}: {path} = {v!r}, not a {kind}")
                            if note.startswith("id, "):
                                self.assertRegex(v, r"^[0-9a-f]{16}$" if "hex" in note else r"^[0-9]+$", path)
                        met += values
                    if note.startswith("one of"):  # exactly one member of the union in each object
                        parent, members = path.rsplit(".", 1)[0], note[len("one of "):].split(", ")
                        for doc in section:
                            for obj in values_at(doc, parent)[0]:
                                self.assertEqual(sum(m in obj for m in members), 1, f"{header}: {parent}")
                    else:
                        self.assertTrue(met, f"{header}: nothing at {path} (an empty array?)")
            # What the issue asked for, spelled out: counters are numbers, ids strings.
            ports = docs["port stats"]["ports"]
            self.assertIsInstance(ports[0]["rxPackets"], int)
            self.assertTrue(all(isinstance(d["packets"], int) for p in ports for d in p["drops"]))
            self.assertIsInstance(docs["worker stats"]["workers"][0]["busyCycles"], int)
            flow = docs["getflows -f " + FILTER + " -y 22"]["flows"][0]
            self.assertIsInstance(flow["origPackets"], int)
            self.assertRegex(flow["flowId"], r"^[0-9a-f]{16}$")
            self.assertIsInstance(docs["getrules -f " + FILTER + " -s"]["stats"][0]["inPackets"], int)
            migration = docs["migrate list"]["migrations"][0]
            self.assertIsInstance(migration["bulkMillis"], int)
            self.assertIsInstance(migration["pauseMicros"], int)
            self.assertIsInstance(docs["cluster status"]["status"]["lease"], str)
            self.assertEqual(docs["getflows -f " + FILTER + " -y 1 -F"]["flushed"], 0)
        finally:
            s.close()
            self.assertEqual(dst.stop(), 0)
        # jq reads the counters as numbers (with strings, `+ 0` fails and -e exits 5).
        stats = self.ok("port", "stats", json_out=True)
        for program in (".ports[0].rxPackets >= 0", "(.ports | map(.rxPackets) | add) + 0 > 0",
                        '[.ports[] | .rxPackets, .drops[].packets | type] | unique == ["number"]'):
            r = subprocess.run(["jq", "-e", program], input=stats, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"jq -e '{program}': {r.stderr}")
        r = subprocess.run(["jq", "-r", ".ports[] | select(.rxPackets > 0) | .spec.name"], input=stats,
                           capture_output=True, text=True)
        self.assertEqual(r.stdout.split(), ["vm-a", "vm-b"])

    def test_7_help_json(self):
        for args, code, text in [
            (["help", "json", "port"], 0, "\nport list, port stats [NAME]\n  .ports[].spec.name"),
            (["help", "json", "migrate"], 0, "\nmigrate list\n"),
            (["help", "json", "cancel"], 2, "no command 'cancel' prints JSON"),
            (["help", "getflows"], 0, "Usage: palisadectl getflows"),
            (["help"], 0, "help [json] [COMMAND]"),
        ]:
            r = subprocess.run([PALISADECTL, *args], capture_output=True, text=True)
            self.assertEqual(r.returncode, code, args)
            self.assertIn(text, r.stdout + r.stderr, args)
        self.assertRegex(subprocess.run([PALISADECTL, "help", "json", "getflows"], capture_output=True,
                                        text=True).stdout, r"\n  \.flows\[\]\.flowId +string  id, 16 hex digits\n")


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
