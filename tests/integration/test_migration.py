"""Live migration of a port between two switches (palisadectl migrate): two palisaded instances
as two hosts joined only by uplinks on a veth pair, guests as network namespaces behind
testpmd's virtio-user. Guests A and B start on h1, each behind rules naming the other VM; A
holds TCP connections to B under a `strict` rule (no pickup of mid-stream segments, so only a
migrated entry lets them on). A's port goes over while A runs;
A's device stops at the source (the final delta; a connection opened after the bulk copy goes
over in a round while A runs) and starts at the destination (the port opens, the source removes its own); the same
connections carry on with their flow ids and counters. Then: a cancelled migration and one
whose guest resumes at the source leave the source as it was; the destination over TLS."""

import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (BUILD, Daemon, NamespaceGuests, Session, Workdir, del_link,  # noqa: E402
                              echo_server, make_certs, server_mode_guests, stop_process, veth, wait_for)

# Each guest's rules name the other by VM (dynamic address sets): after A moves, h2 must still
# know B's addresses and h1 A's, though neither VM has a port there any more.
RULES_A = """ruleset web {
  rule 10 at 1 out protocol tcp strict from any to addrset db port 22 accept with log;
  rule 11 at 2 inout protocol any from any to any drop;
}
addrset db {
vm db-01,
}
"""
RULES_B = """ruleset db {
  rule 20 at 1 in protocol tcp from addrset web to any port 22 accept;
  rule 21 at 2 inout protocol any from any to any drop;
}
addrset web {
vm web-01,
}
"""


MAC_A = "02:00:00:00:10:01"  # NamespaceGuests' first guest


class RarpSniffer:
    """Collects the sender MACs of RARP frames (ethertype 0x8035) arriving on a link."""

    def __init__(self, link):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x8035))
        self.sock.bind((link, 0))
        self.sock.setblocking(False)
        self.macs = set()

    def seen(self):
        while True:
            try:
                frame = self.sock.recv(128)
            except BlockingIOError:
                return self.macs
            if len(frame) >= 28 and frame[12:14] == b"\x80\x35":
                self.macs.add(":".join(f"{b:02x}" for b in frame[22:28]))

    def close(self):
        self.sock.close()


def flow_ids(sw, port):
    return {f["flow_id"]: f for f in sw.ctl(f"flows show {port} --dport 22")["flows"]}


def tear_down(sessions, server, guests, h1, h2, link, work):
    """Stops what a two-host test started; returns the switches' exit statuses."""
    for s in sessions:
        s.close()
    if server:
        stop_process(server)
    for g in guests:
        if g:
            g.close()
    rcs = h1.stop(), h2.stop()
    del_link(link)
    work.remove()
    return rcs


def two_hosts(h1, h2, work, up1, up2, net, b_client=False):
    """Uplinks (name, link) on each switch; A's and B's ports on h1 with their rules (B's with
    --client when its guest owns the socket)."""
    for sw, (name, link) in ((h1, up1), (h2, up2)):
        sw.ctl(f"port add uplink --uplink net_af_packet_{name},iface={link}")
    h1.ctl(f"port add vm-a --vhost-user {work.join('a.sock')} --vm web-01 --ip {net}.1 --mac {MAC_A}")
    client = " --client" if b_client else ""
    h1.ctl(f"port add vm-b --vhost-user {work.join('b.sock')}{client} --vm db-01 --ip {net}.2")
    for port, text in (("vm-a", RULES_A), ("vm-b", RULES_B)):
        with open(work.join(port + ".rules"), "w") as f:
            f.write(text)
        h1.ctl(f"filter attach {port} --slot 2 --agent sfw")
        h1.ctl(f"rules load {port} {work.join(port + '.rules')}")


class MigrationTest(unittest.TestCase):
    def test_live_migration_cut_over_cancel_and_resume(self):
        work = Workdir("mig")
        make_certs(work.path)
        tls_port = 46000 + os.getpid() % 1000
        tls = lambda name: ["--tls-cert", work.join(f"{name}.pem"), "--tls-key", work.join(f"{name}.key"),
                            "--tls-ca", work.join("ca.pem")]
        veth("pmig0", "pmig1")
        # h2 dials h1 with the certificate CN=client: a peer switch there, limited to migration.
        h1 = Daemon("mig1", work.path, extra=["--rpc-tls-listen", f"localhost:{tls_port}", *tls("server"),
                                              "--tls-peers", "client"]).start()
        h2 = Daemon("mig2", work.path, extra=tls("client")).start()
        a = b = server = None
        sessions = []
        try:
            two_hosts(h1, h2, work, ("m1", "pmig0"), ("m2", "pmig1"), "10.16.0")
            b = NamespaceGuests("pmb", [("b", work.join("b.sock"), "10.16.0.2/24")], mac_index=1)
            a = NamespaceGuests("pma", [("a", work.join("a.sock"), "10.16.0.1/24")])
            server = echo_server(b["b"], 22)

            def connect():
                s = Session(a["a"])
                sessions.append(s)
                self.assertEqual(s.do("connect 10.16.0.2 22 10"), "connected")
                return s

            first = connect()
            self.assertEqual(first.do("send one"), "echo one")

            # Errors first: nothing starts.
            rc, _, err = h1.cli("migrate", "nosuch", "--to", h2.socket)
            self.assertEqual(rc, 1)
            self.assertIn("no port 'nosuch'", err)
            rc, _, err = h1.cli("migrate", "vm-a", "--to", work.join("nobody.sock"))
            self.assertEqual(rc, 1)
            self.assertEqual(h1.migration("vm-a")["phase"], "failed")
            self.assertIn("vm-a", h1.ports(), "a failed migration leaves the port")

            # Bulk copy while A runs: the port waits closed at the destination.
            rc, out, err = h1.cli("migrate", "vm-a", "--to", h2.socket, "--socket", work.join("a2.sock"))
            self.assertEqual(rc, 0, err)
            self.assertIn("migrating vm-a", out)
            self.assertEqual(h1.migration("vm-a")["phase"], "copied")
            self.assertEqual(h2.migration("vm-a", "in")["phase"], "incoming")
            self.assertEqual(len(flow_ids(h2, "vm-a")), 1)
            self.assertIn("vm-a-palisade-migration.0", h2.cli("summarize-dvfilter")[1], "closed until the cut-over")
            rc, out, _ = h1.cli("migrate", "vm-a", "--to", h2.socket)
            self.assertEqual(rc, 1, "one migration per port at a time")
            rc, out, _ = h2.cli("connection", "list")
            self.assertRegex(out, "switch +" + h1.socket, "the source switch holds a connection to h2")

            # Changes after the bulk copy: data on the first connection, a second connection.
            self.assertEqual(first.do("send two"), "echo two")
            second = connect()
            self.assertEqual(second.do("send three"), "echo three")
            before = flow_ids(h1, "vm-a")
            self.assertEqual(len(before), 2)
            # While A runs, changes go over in rounds (every 200 ms).
            wait_for(lambda: h1.migration("vm-a")["roundEntries"] >= 2, 10, what="a delta round")
            self.assertGreaterEqual(h2.migration("vm-a", "in")["roundEntries"], 2)

            # The guest moves: its device stops here (final delta), starts there (port opens and
            # h2 announces A's MAC: a RARP out of its uplink, seen here on the wire between them).
            rarps = RarpSniffer("pmig0")
            a.move("a", work.join("a2.sock"))
            wait_for(lambda: (h1.migration("vm-a") or {}).get("phase") == "completed", 30,
                     what="the source to see the migration complete")
            out_view = h1.migration("vm-a")
            self.assertLessEqual(out_view["deltaChanged"], 2, "the final delta: the last round's changes")
            self.assertGreater(out_view["pauseMicros"], 0)
            wait_for(lambda: "vm-a" not in h1.ports(), 10, what="the source port removed")
            self.assertEqual(h2.migration("vm-a", "in")["phase"], "running")
            wait_for(lambda: MAC_A in rarps.seen(), 10, what="h2's RARP for A on the uplink")
            rarps.close()
            wait_for(lambda: h2.port("vm-a")["link"], 30, what="A attached to the second switch")
            for s, word in ((first, "four"), (second, "five")):
                self.assertEqual(s.do(f"send {word}"), f"echo {word}", "the same connection, no new handshake")
            after = flow_ids(h2, "vm-a")
            self.assertEqual(set(after), set(before), "both flows, with their ids (one came in the delta)")
            for fid, f in after.items():
                self.assertEqual(f["state"], "EST")
                self.assertGreater(f["orig_pkts"], before[fid]["orig_pkts"], "counters continue")
            self.assertNotIn("palisade-migration", h2.cli("summarize-dvfilter")[1])

            # A cancelled migration (to h1 over TLS): h1 discards its copy, h2 did not change.
            before = flow_ids(h2, "vm-a")
            rc, _, err = h2.cli("migrate", "vm-a", "--to", f"localhost:{tls_port}", "--socket", work.join("a3.sock"))
            self.assertEqual(rc, 0, err)
            self.assertIn("vm-a", h1.ports())
            rc, out, err = h2.cli("migrate", "cancel", "vm-a")
            self.assertEqual(rc, 0, err)
            self.assertEqual(h2.migration("vm-a")["phase"], "cancelled")
            wait_for(lambda: "vm-a" not in h1.ports(), 10, what="the destination to discard its copy")
            self.assertEqual(h1.migration("vm-a", "in")["phase"], "discarded")
            self.assertEqual(first.do("send six"), "echo six")
            self.assertEqual(set(flow_ids(h2, "vm-a")), set(before))
            rc, _, err = h2.cli("migrate", "cancel", "vm-a")
            self.assertEqual(rc, 1)
            self.assertIn("no migration of port 'vm-a' is in progress", err)

            # A migration whose guest starts again at the source (QEMU's migration failed after
            # the device stopped): the destination discards its copy; the source carries on.
            rc, _, err = h2.cli("migrate", "vm-a", "--to", f"localhost:{tls_port}")
            self.assertEqual(rc, 1, "the destination's socket path is taken (by the source)")
            self.assertIn("destination: ", err)
            self.assertIn("a2.sock is in use by another process", err)
            self.assertNotIn("vm-a", h1.ports())
            rc, _, err = h2.cli("migrate", "vm-a", "--to", f"localhost:{tls_port}", "--socket", work.join("a4.sock"))
            self.assertEqual(rc, 0, err)
            a.move("a", work.join("a2.sock"))  # stop and start again on the same switch
            wait_for(lambda: h2.migration("vm-a")["phase"] == "resumed", 30, what="the source to see the guest resume")
            wait_for(lambda: "vm-a" not in h1.ports(), 10, what="the destination to discard its copy")
            wait_for(lambda: h2.port("vm-a")["link"], 30, what="A attached again")
            self.assertEqual(second.do("send seven"), "echo seven")
        finally:
            rc1, rc2 = tear_down(sessions, server, (a, b), h1, h2, "pmig0", work)
        self.assertEqual((rc1, rc2), (0, 0))

    def test_a_table_past_the_rpc_reading_limit_streams_over(self):
        """600,000 connections (a whole PortState of them would exceed the RPC's reading limit,
        about 400,000): the bulk copy goes in pieces and every entry arrives. Then either side
        killed with SIGKILL during the migration: the other rolls back, no half port anywhere,
        and a retry works."""
        n = 600000
        work = Workdir("migbig")
        h1 = Daemon("migb1", work.path)
        h2 = Daemon("migb2", work.path)
        try:
            subprocess.run([os.path.join(BUILD, "tests", "state_writer"), h1.state_file, "vm-big",
                            work.join("big.sock"), str(n)], check=True)
            h1.start()
            self.assertIn(f"restored 1 port(s) and {n} connection(s)", h1.log())
            h2.start()
            rc, out, err = h1.cli("migrate", "vm-big", "--to", h2.socket, "--socket", work.join("big2.sock"))
            self.assertEqual(rc, 0, err)
            self.assertEqual(h1.migration("vm-big")["phase"], "copied")
            self.assertEqual(h1.migration("vm-big")["connections"], n)
            self.assertEqual(h2.migration("vm-big", "in")["connections"], n)
            self.assertEqual(h2.ctl("flows show vm-big --count")["count"], n)
            rc, _, err = h1.cli("migrate", "cancel", "vm-big")
            self.assertEqual(rc, 0, err)
            wait_for(lambda: "vm-big" not in h2.ports(), 10, what="the destination to discard its copy")

            # Faults: the destination killed (SIGKILL) after the copy: the source sees it fail and
            # keeps its port and every connection; a retry to the restarted destination works.
            rc, _, err = h1.cli("migrate", "vm-big", "--to", h2.socket, "--socket", work.join("big2.sock"))
            self.assertEqual(rc, 0, err)
            h2.kill()
            wait_for(lambda: h1.migration("vm-big")["phase"] == "failed", 15, what="the source to see the failure")
            self.assertEqual(h1.ctl("flows show vm-big --count")["count"], n)
            h2.start()
            self.assertNotIn("vm-big", h2.ports(), "no half port comes back with the destination")
            rc, _, err = h1.cli("migrate", "vm-big", "--to", h2.socket, "--socket", work.join("big2.sock"))
            self.assertEqual(rc, 0, err)
            self.assertEqual(h2.ctl("flows show vm-big --count")["count"], n)
            # The source killed in turn: the destination discards its copy, no closed port stays.
            h1.kill()
            wait_for(lambda: "vm-big" not in h2.ports(), 15, what="the destination to discard the orphan")
            self.assertEqual(h2.migration("vm-big", "in")["phase"], "discarded")
            # The source restarts with its port and connections (its state file is kept).
            h1.start()
            self.assertEqual(h1.ctl("flows show vm-big --count")["count"], n)
        finally:
            rc1, rc2 = h1.stop(), h2.stop()
            work.remove()
        self.assertEqual((rc1, rc2), (0, 0))

    def test_killed_at_the_cut_over(self):
        """Each switch killed (SIGKILL, by a fault point: common/fault_point.h) at the cut-over.
        The destination, right after applying the final delta and before answering: the source
        sees the migration fail, the guest resumes at the source (as when QEMU's own migration
        fails) and its connection carries on; the restarted destination has no half port, and a
        retry works. The source, right after the destination acknowledged the final delta: the
        guest runs on at the destination with its connection; the restarted source brings the
        port back closed (the cut-over was in its configuration), asks the destination where the
        guest is, and removes the port as after a completed migration."""
        work = Workdir("migcut")
        veth("pcut0", "pcut1")
        h1 = Daemon("cut1", work.path, env={"PALISADE_FAULT": "final-delta-acked"}).start()
        h2 = Daemon("cut2", work.path, env={"PALISADE_FAULT": "final-delta-applied"}).start()
        a = b = server = session = None
        try:
            two_hosts(h1, h2, work, ("c1", "pcut0"), ("c2", "pcut1"), "10.18.0", b_client=True)
            # B owns its socket, so it reattaches to a restarted h1 by itself.
            b = server_mode_guests("pcb", [("b", work.join("b.sock"), "10.18.0.2/24")], mac_index=1)
            a = NamespaceGuests("pca", [("a", work.join("a.sock"), "10.18.0.1/24")])
            wait_for(lambda: h1.port("vm-a")["link"] and h1.port("vm-b")["link"], 30)
            server = echo_server(b["b"], 22)
            session = Session(a["a"])
            self.assertEqual(session.do("connect 10.18.0.2 22 10"), "connected")
            self.assertEqual(session.do("send one"), "echo one")

            # The destination dies applying the final delta; the guest starts again at the source.
            rc, _, err = h1.cli("migrate", "vm-a", "--to", h2.socket, "--socket", work.join("a2.sock"))
            self.assertEqual(rc, 0, err)
            a.move("a", work.join("a.sock"))
            wait_for(lambda: h2.proc.poll() is not None, 15, what="the destination to die at its fault point")
            wait_for(lambda: h1.migration("vm-a")["phase"] in ("failed", "resumed"), 15,
                     what="the source to see the migration end")
            wait_for(lambda: h1.port("vm-a")["link"], 30, what="A attached again at the source")
            self.assertEqual(session.do("send two"), "echo two")
            self.assertNotIn("palisade-migration", h1.cli("summarize-dvfilter")[1])
            h2.env = None
            h2.start()
            self.assertNotIn("vm-a", h2.ports(), "no half port comes back with the destination")

            # A retry, to its end; the source dies once the destination has the final delta.
            rc, _, err = h1.cli("migrate", "vm-a", "--to", h2.socket, "--socket", work.join("a2.sock"))
            self.assertEqual(rc, 0, err)
            a.move("a", work.join("a2.sock"))
            wait_for(lambda: h1.proc.poll() is not None, 15, what="the source to die at its fault point")
            wait_for(lambda: h2.migration("vm-a", "in")["phase"] == "running", 30, what="the port to open at h2")
            h1.env = None
            h1.start()
            self.assertIn("port vm-a: its guest was being handed over to", h1.log())
            # Restored closed; h2 says the guest runs there, so the port goes, as after a completed
            # migration.
            wait_for(lambda: "vm-a" not in h1.ports(), 15, what="the source to settle the cut-over with h2")
            self.assertEqual(h1.migration("vm-a")["phase"], "completed")
            wait_for(lambda: h1.port("vm-b")["link"] and h2.port("vm-a")["link"], 30, what="both guests attached")
            self.assertEqual(session.do("send three"), "echo three", "the same connection, from the destination")
        finally:
            rc1, rc2 = tear_down([session] if session else [], server, (a, b), h1, h2, "pcut0", work)
        self.assertEqual((rc1, rc2), (0, 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
