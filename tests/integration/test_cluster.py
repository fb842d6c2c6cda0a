"""Policy for a cluster of hosts, kept in etcd: a real etcd cluster of three members on loopback
and two palisaded hosts joined by uplinks on a veth pair, a namespace guest on each. web-01 runs
on host 1, db-01 on host 2; db-01's policy admits TCP 5001 only from the group `web`, written
once with palisadectl --etcd and enforced on host 2 with addresses host 1 publishes.

The steps run in order, each on what the previous left: the cross-host group (connection
admitted, refused after web-01 leaves the group), an address learned on host 1 reaching host 2's
table, a member killed, all members stopped (verdicts unchanged, host 2 restarted from its
snapshot during the outage), a half-open connection to etcd noticed within 15 s, compaction
while host 2 is cut off (a relist, deletes included), web-01's live migration to host 2 and
back (the destination renders its policy while the port is still incoming, the endpoint key
hands over at cut-over, the connection carries on), and host 1's death (its VM leaves the group
when its lease expires)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from etcd import EtcdCluster  # noqa: E402
from palisade_testlib import (PALISADECTL, Daemon, NamespaceGuests, Session, Workdir, del_link,  # noqa: E402
                              echo_server, server_mode_guests, stop_process, veth, wait_for)

WEB_IP, WEB_IP2, DB_IP = "10.18.0.1", "10.18.0.11", "10.18.0.2"
DB_MAC = "02:00:00:00:21:01"

DB_POLICY = """ruleset db {
  rule 10 at 1 in protocol tcp from addrset web to any port 5001 accept;
  rule 11 at 2 inout protocol any from any to any drop;
}
addrset web {
group web,
}
"""
WEB_POLICY = """ruleset web {
  rule 20 at 1 out protocol any from any to any accept;
  rule 21 at 2 in protocol any from any to any drop;
}
"""
EXTRA_POLICY = """ruleset extra {
  rule 30 at 1 in protocol tcp from any to any port 5003 accept;
}
"""


class ClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("cluster")
        cls.etcd = EtcdCluster(3, tag="cluster-etcd")
        veth("pcl0", "pcl1")
        cluster = ["--cluster-lease", "4"]
        # The uplinks come from config files, so that a restart brings them back.
        for n, iface in (("1", "pcl0"), ("2", "pcl1")):
            with open(cls.work.join(f"h{n}.conf"), "w") as f:
                f.write(f"port add uplink --uplink net_af_packet_c{n},iface={iface}\n")
        cls.h1 = Daemon("clh1", cls.work.path, config=cls.work.join("h1.conf"),
                        extra=["--etcd", cls.etcd.endpoints(), "--host", "host1",
                               "--cluster-snapshot", cls.work.join("h1.cluster")] + cluster)
        # Host 2 talks to member m2 only, so that stopping m2 cuts it off alone.
        cls.h2 = Daemon("clh2", cls.work.path, config=cls.work.join("h2.conf"),
                        extra=["--etcd", cls.etcd.endpoints(["m2"]), "--host", "host2",
                               "--cluster-snapshot", cls.work.join("h2.cluster")] + cluster)
        cls.h1.start()
        cls.h2.start()
        cls.h1.ctl(f"port add vm-web --vhost-user {cls.work.join('web.sock')} --vm web-01")
        cls.h1.ctl("filter attach vm-web --slot 1 --agent swsec")  # learns web-01's addresses
        cls.h2.ctl(f"port add vm-db --vhost-user {cls.work.join('db.sock')} --client --vm db-01 --mac {DB_MAC} --ip {DB_IP}")
        cls.h2.ctl("filter attach vm-db --slot 1 --agent swsec")
        cls.intent("group", "set", "web", "vm:web-01")
        cls.apply("db-in", "vm:db-01", DB_POLICY)
        cls.apply("web-out", "vm:web-01", WEB_POLICY)
        cls.web = NamespaceGuests("pclw", [("web", cls.work.join("web.sock"), WEB_IP + "/24")])
        # Host 2's guest owns its socket (client-mode port), so host 2 can restart.
        cls.db = server_mode_guests("pcld", [("db", cls.work.join("db.sock"), DB_IP + "/24")], mac_index=0x11)
        for h in (cls.h1, cls.h2):
            wait_for(lambda h=h: all(p["link"] for p in h.ctl("port list")["ports"]), 30)
        cls.server = echo_server(cls.db["db"], 5001)
        cls.session = None

    @classmethod
    def tearDownClass(cls):
        if cls.session:
            cls.session.close()
        stop_process(cls.server)
        cls.web.close()
        cls.db.close()
        for h in (cls.h1, cls.h2):
            h.stop()
        del_link("pcl0")
        cls.etcd.close()
        cls.work.remove()

    @classmethod
    def intent(cls, *args, members=None, stdin=None):
        endpoints = cls.etcd.endpoints(members or [n for n in cls.etcd.names if n in cls.etcd.procs])
        r = subprocess.run([PALISADECTL, "--etcd", endpoints] + list(args), capture_output=True, text=True,
                           input=stdin, timeout=60)
        if r.returncode != 0:
            raise AssertionError(f"palisadectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    @classmethod
    def apply(cls, name, target, text, members=None):
        return cls.intent("policy", "apply", name, "--applied-to", target, "-", stdin=text, members=members)

    def addrsets(self, host):
        return host.ctl("addrsets show vm-db")["text"] if host is self.h2 else ""

    def rules(self):
        return self.h2.ctl("rules show vm-db")["text"]

    def status(self, host):
        rc, out, err = host.cli("cluster", "status")
        self.assertEqual(rc, 0, err)
        return out

    def snapshot_revision(self, host):
        m = re.search(r"\n  snapshot: .*, (?:revision (\d+)|none written yet)\n", self.status(host))
        self.assertIsNotNone(m, "cluster status shows the snapshot")
        return int(m.group(1) or 0)

    def connect(self, timeout=2):
        s = Session(self.web["web"])
        return s, s.do(f"connect {DB_IP} 5001 {timeout}")

    def test_1_a_group_resolves_across_hosts(self):
        rc, out, err = self.h2.cli("summarize-dvfilter")
        self.assertIn("filter source: Cluster Policy (etcd revision", out)
        # web-01's address is learned on host 1 (its first ARP), published, and reaches host 2.
        self.web["web"].run("ping", "-c", "1", "-W", "1", DB_IP, check=False)
        wait_for(lambda: f"group web,  # now: {WEB_IP}" in self.addrsets(self.h2), 15,
                 what="web-01's address in host 2's table")
        s, result = self.connect()
        self.assertEqual(result, "connected")
        self.assertEqual(s.do("send one"), "echo one")
        type(self).session = s
        # web-01 leaves the group: its connection is closed at its next packet, a new one refused.
        self.intent("group", "set", "web")
        wait_for(lambda: "now: no addresses" in self.addrsets(self.h2), 15, what="the group emptied on host 2")
        self.assertEqual(s.do("send two"), "timeout")
        refused, result = self.connect()
        refused.close()
        self.assertEqual(result, "timeout")
        # Local changes to a cluster-managed port are refused, naming where the policy lives.
        rc, out, err = self.h2.cli("setrules", "-f", "vm-db", "-", stdin="ruleset x {\n}\n")
        self.assertEqual(rc, 1)
        self.assertIn("takes its rules from the cluster's policies in etcd", err)
        self.intent("group", "set", "web", "vm:web-01")
        wait_for(lambda: f"now: {WEB_IP}" in self.addrsets(self.h2), 15)
        s.close()
        s, result = self.connect()
        self.assertEqual(result, "connected")
        type(self).session = s

    def test_2_an_address_learned_on_one_host_reaches_the_other(self):
        self.web["web"].run("ip", "addr", "add", WEB_IP2 + "/24", "dev", self.web["web"].dev)
        # Port security learns it from the guest's ARP, sent from the new address.
        self.web["web"].run("ip", "neigh", "flush", "dev", self.web["web"].dev)
        self.web["web"].run("ping", "-c", "1", "-W", "1", "-I", WEB_IP2, DB_IP, check=False)
        wait_for(lambda: WEB_IP2 in self.addrsets(self.h2), 15, what="the second address on host 2")
        out = self.intent("vm", "list")
        self.assertRegex(out, r"web-01\s+host1\s+\S*" + re.escape(WEB_IP2))
        vms = {v["name"]: v for v in json.loads(self.intent("--json", "vm", "list"))["vms"]}
        self.assertEqual(vms["web-01"]["hosts"], ["host1"])
        self.assertIn(WEB_IP2, vms["web-01"]["addresses"])
        policies = json.loads(self.intent("--json", "policy", "list"))
        self.assertEqual(policies["unreadable"], [])
        for p in policies["policies"]:
            self.assertIsInstance(p["priority"], int)
            self.assertIsInstance(p["rules"], int)
            self.assertTrue(p["appliedTo"], p["name"])
        groups = json.loads(self.intent("--json", "group", "list"))["groups"]
        for g in groups:
            self.assertEqual(json.loads(self.intent("--json", "group", "get", g["name"]))["members"], g["members"])

    def test_3_one_member_killed_everything_converges(self):
        self.etcd.stop("m0", kill=True)
        try:
            self.etcd.wait_healthy(["m1", "m2"])
            self.apply("extra", "vm:db-01", EXTRA_POLICY, members=["m1", "m2"])
            wait_for(lambda: "rule 30 " in self.rules(), 20, what="the new policy on host 2")
            self.assertEqual(self.session.do("send three"), "echo three")
        finally:
            self.etcd.start("m0")
            self.etcd.wait_healthy()

    def test_4_outage_keeps_verdicts_and_a_restart_starts_from_the_snapshot(self):
        # Two changes back to back: the second may arrive while the first is being written, and
        # is written after it. Status says which revision is on disk; the restart below finds
        # that one.
        for rule in (40, 41):
            self.apply("burst", "vm:db-01", f"ruleset burst {{\n  rule {rule} at 1 in protocol tcp from any to any port {rule * 100} accept;\n}}\n")
        wait_for(lambda: "rule 41 " in self.rules(), 20, what="host 2 has the second change")
        revision = int(re.search(r"revision: (\d+)", self.status(self.h2)).group(1))
        wait_for(lambda: self.snapshot_revision(self.h2) >= revision, 5, what=f"host 2's snapshot at revision {revision}")
        for n in list(self.etcd.procs):
            self.etcd.stop(n)
        try:
            self.outage()
        finally:
            for n in self.etcd.names:
                if n not in self.etcd.procs:
                    self.etcd.start(n)
            self.etcd.wait_healthy()
        wait_for(lambda: "connected: yes" in self.status(self.h2), 30, what="host 2 back in touch")
        self.intent("policy", "delete", "extra")
        self.intent("policy", "delete", "burst")
        wait_for(lambda: "rule 30 " not in self.rules() and "rule 41 " not in self.rules(), 20,
                 what="host 2 converged")

    def outage(self):
        wait_for(lambda: "connected: no" in self.status(self.h2), 20, what="host 2 noticed the outage")
        self.assertEqual(self.session.do("send four"), "echo four", "the connection carries on")
        s, result = self.connect()
        s.close()
        self.assertEqual(result, "connected", "new connections the policy admits still are")
        # Host 2 crashes and restarts during the outage: its snapshot, on disk, rules before it
        # forwards (SIGKILL: only what it wrote while running counts).
        self.h2.kill()
        self.h2.start()
        self.assertIn("starting from the snapshot of revision", self.h2.log())
        self.assertIn("rule 10 ", self.rules())
        self.assertIn("rule 41 ", self.rules(), "the last change before the outage")
        wait_for(lambda: all(p["link"] for p in self.h2.ctl("port list")["ports"]), 30)
        self.assertEqual(self.session.do("send five"), "echo five", "and after the restart too")

    def test_5_compaction_while_a_host_is_cut_off_relists(self):
        # A half-open connection: host 2's member stops answering without closing anything
        # (SIGSTOP); keepalive pings notice within 15 s.
        self.etcd.procs["m2"].send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: "connected: no" in self.status(self.h2), 15, what="the silence noticed")
        finally:
            self.etcd.procs["m2"].send_signal(signal.SIGCONT)
        wait_for(lambda: "connected: yes" in self.status(self.h2), 30, what="host 2 back in touch")
        self.apply("extra", "vm:db-01", EXTRA_POLICY)
        wait_for(lambda: "rule 30 " in self.rules(), 20)
        relists = int(re.search(r"relists: (\d+)", self.status(self.h2)).group(1))
        self.etcd.stop("m2")  # host 2's only member
        others = ["m0", "m1"]
        self.intent("policy", "delete", "extra", members=others)
        self.intent("vm", "label", "db-01", "tier=db", members=others)
        self.etcd.ctl("compact", str(self.etcd.revision(names=others)), names=others)
        self.etcd.start("m2")
        wait_for(lambda: "rule 30 " not in self.rules(), 30, what="the delete reached host 2")
        self.assertGreater(int(re.search(r"relists: (\d+)", self.status(self.h2)).group(1)), relists)
        self.assertEqual(self.session.do("send six"), "echo six")

    def endpoints(self, vm):
        """host -> state of the endpoint keys etcd holds for `vm`."""
        out = self.etcd.ctl("get", "--prefix", f"/palisade/v1/net/endpoints/{vm}/", "-w", "json")
        import base64
        kvs = json.loads(out).get("kvs", [])
        return {base64.b64decode(kv["key"]).decode().rsplit("/", 1)[1]:
                json.loads(base64.b64decode(kv["value"]))["state"] for kv in kvs}

    def migrate_web(self, src, dst, sock):
        rc, out, err = src.cli("migrate", "vm-web", "--to", dst.socket, "--socket", self.work.join(sock))
        self.assertEqual(rc, 0, err)
        # The bulk copy is in: the destination publishes web-01 as incoming and already renders
        # its policy, while the port waits closed; the source still runs it.
        src_host, dst_host = ("host1", "host2") if src is self.h1 else ("host2", "host1")
        wait_for(lambda: self.endpoints("web-01") == {src_host: "active", dst_host: "incoming"}, 10,
                 what="web-01 incoming at the destination")
        wait_for(lambda: "rule 20 " in dst.ctl("rules show vm-web")["text"], 10, what="the policy rendered")
        self.assertIn("# from the cluster's policies for VM web-01", dst.ctl("rules show vm-web")["text"])
        self.assertIn("vm-web-palisade-migration.0", dst.cli("summarize-dvfilter")[1])
        self.web.move("web", self.work.join(sock))
        wait_for(lambda: (src.migration("vm-web") or {}).get("phase") == "completed", 30,
                 what="the migration complete")
        # The cut-over: the destination's key active, the source's gone.
        wait_for(lambda: self.endpoints("web-01") == {dst_host: "active"}, 10, what="the endpoint handed over")
        self.assertNotIn("vm-web", src.ports())
        wait_for(lambda: dst.port("vm-web")["link"], 30, what="web-01 attached at the destination")
        out = self.intent("vm", "list")
        self.assertRegex(out, r"web-01\s+" + dst_host)

    def test_6_a_live_migration_hands_the_endpoint_over(self):
        self.assertEqual(self.endpoints("web-01"), {"host1": "active"})
        self.migrate_web(self.h1, self.h2, "web2.sock")
        # The group still resolves (host 2 publishes web-01's addresses now): no re-check closed
        # the connection, and it carries on through host 2 alone.
        self.assertIn(f"now: {WEB_IP}", self.addrsets(self.h2))
        self.assertEqual(self.session.do("send seven"), "echo seven")
        self.migrate_web(self.h2, self.h1, "web3.sock")
        self.assertEqual(self.session.do("send eight"), "echo eight")
        s, result = self.connect()
        s.close()
        self.assertEqual(result, "connected")

    def test_7_a_dead_host_leaves_every_group(self):
        self.h1.kill()
        # Its lease (4 s) expires: web-01's endpoint goes, and with it the group's addresses.
        wait_for(lambda: "now: no addresses" in self.addrsets(self.h2), 20, what="web-01 gone from host 2")

    def test_8_a_policy_on_a_label_group_follows_its_own_changes(self):
        # db-01 is in the group by its label only: a change of the policy alone (no group or
        # label moves) reaches its table, as does the policy's delete.
        self.intent("vm", "label", "db-01", "tier=db")
        self.intent("group", "set", "dbs", "label:tier=db")
        tiered = "ruleset tiered {{\n  rule {} at 1 in protocol tcp from any to any port 5004 accept;\n}}\n"
        self.apply("tiered", "group:dbs", tiered.format(40))
        wait_for(lambda: "rule 40 " in self.rules(), 20, what="the policy of the label group")
        self.apply("tiered", "group:dbs", tiered.format(41))
        wait_for(lambda: "rule 41 " in self.rules() and "rule 40 " not in self.rules(), 20, what="its change")
        self.intent("policy", "delete", "tiered")
        wait_for(lambda: "rule 41 " not in self.rules(), 20, what="its delete")

    def test_9_a_large_policy_compiles_while_the_switch_answers(self):
        # 12,000 rules for db-01 take host 2 about a second to compile: off its control loop,
        # which answers calls meanwhile (the port still on its last table), then installs it;
        # the same when an address of a group its sets name changes.
        n = 12000
        lines = ["ruleset big {"] + [
            f"  rule {100000 + i} at {i + 1} in protocol tcp from ip 10.{200 + (i >> 16)}.{(i >> 8) & 255}.{i & 255} "
            f"to any port {1000 + i % 50000} accept;" for i in range(n)] + ["}"]
        self.apply("big", "vm:db-01", "\n".join(lines) + "\n")
        kv = json.loads(self.etcd.ctl("get", "/palisade/v1/intent/policies/big", "-w", "json"))["kvs"][0]
        committed = kv["mod_revision"]
        def table_revision():  # vm-db's, from the control loop
            rc, out, err = self.h2.cli("summarize-dvfilter")
            self.assertEqual(rc, 0, err)
            return int(re.search(r"etcd revision (\d+)", out).group(1))

        answered = 0
        deadline = time.monotonic() + 120
        while table_revision() < committed:
            self.assertLess(time.monotonic(), deadline, "the large table never came")
            seen = int(re.search(r"revision: (\d+)", self.status(self.h2)).group(1))  # the agent's, not the loop's
            if seen >= committed and table_revision() < committed:
                answered += 1  # a call the control loop answered while the table compiled
        print(f"host 2 answered {answered} calls while the {n}-rule table compiled", file=sys.stderr)
        self.assertGreater(answered, 0, "the control loop answered nothing while the table compiled")
        self.assertIn(f"rule {100000 + n - 1} ", self.rules())

        # The group `web` that the table's sets name gets an address: the same table compiles
        # again for it, also off the loop.
        self.intent("group", "set", "web", "ip:10.99.0.1")
        kv = json.loads(self.etcd.ctl("get", "/palisade/v1/intent/groups/web", "-w", "json"))["kvs"][0]
        changed = kv["mod_revision"]
        answered = 0
        deadline = time.monotonic() + 120
        while "10.99.0.1" not in self.addrsets(self.h2):
            self.assertLess(time.monotonic(), deadline, "the new address never reached the table")
            seen = int(re.search(r"revision: (\d+)", self.status(self.h2)).group(1))
            if seen >= changed and "10.99.0.1" not in self.addrsets(self.h2):
                answered += 1
        print(f"host 2 answered {answered} calls while the table compiled for the new address", file=sys.stderr)
        self.assertGreater(answered, 0, "the control loop answered nothing while the table compiled again")
        self.assertIn(f"rule {100000 + n - 1} ", self.rules())
        self.intent("group", "set", "web", "vm:web-01")
        self.intent("policy", "delete", "big")
        wait_for(lambda: "rule 100000 " not in self.rules(), 60, what="the large policy gone")


if __name__ == "__main__":
    unittest.main()
