"""Live migration of a QEMU guest between two switches, end to end: palisaded h1 and h2 as two
hosts joined only through uplinks on a veth pair (RPC between them over a unix socket), guest A
on h1 behind a default-reject policy with a `strict` TCP rule (a mid-stream segment passes only
on a tracked connection), guest B on h2. A holds a TCP connection to B's echo service while QEMU
migrates A to h2 (QMP migrate; both QEMUs share A's RAM file with x-ignore-shared, so the
vhost-user stop/start hand-over happens in full but no RAM is copied, see qemu_guest.py):

- first a migration cancelled half-way (RAM copied slowly, then migrate_cancel, and the
  orchestrator's `palisadectl migrate cancel`): the source is as it was, h2 has nothing;
- then a completed one: the same connection carries on (same nc process, same socket, no gap in
  the echoed count), h2's getflows shows it with its flow id and continued counters, B's ping
  loses at most a few packets, h1 has removed the port.
"""

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import Daemon, Workdir, del_link, veth, wait_for  # noqa: E402
from qemu_guest import QEMU, QemuGuest  # noqa: E402

MAC = {"a": "02:00:00:00:50:01", "b": "02:00:00:00:50:02"}
IP = {"a": "10.50.0.1", "b": "10.50.0.2"}

POLICY = """ruleset mig {
  # Filter rules
  rule 1001 at 1 out protocol tcp strict from addrset ip-vm-a to any port 7 accept with log;
  rule 1002 at 2 in protocol icmp icmptype 8 from any to addrset ip-vm-a accept;
  rule 1003 at 3 inout protocol any from any to any reject with log;
}
addrset ip-vm-a {
vm vm-a,
}
"""

# A counts on one TCP connection to B's echo service; nc exits on a reset (no reconnect).
TICKER = ("(i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done) 2>/dev/null | "
          "nc {ip} 7 > /tmp/out 2>/tmp/nc.err &")


def tcp_state(guest):
    """A's connection as A sees it: the nc process, its socket, the echoed count and gaps."""
    _, out = guest.run("ps | awk '$3 == \"nc\" && $4 ~ /^10\\./ {print $1}'; echo ---; "
                       f"netstat -tn | grep '{IP['b']}:7 '; echo ---; "
                       "awk 'BEGIN{p=0;bad=0} {if ($1!=p+1) bad++; p=$1} END{print NR, p, bad}' /tmp/out; "
                       "echo ---; cat /tmp/nc.err")
    pids, conn, count, err = [x.strip() for x in out.split("---")]
    _, last, gaps = (int(x) for x in count.split())
    return {"pids": pids.split(), "conn": " ".join(conn.split()[3:6]), "last": last, "gaps": gaps,
            "err": err}


def ping_loss(guest, tag, count, interval):
    """Waits for a background ping's summary in the guest; returns (sent, lost sequence numbers)."""
    text = wait_for(lambda: (lambda r: "packet loss" in r[1] and r[1])(guest.run(f"cat /tmp/{tag}")),
                    count * interval + 20, 0.5, what="the ping's summary")
    sent = int(re.search(r"(\d+) packets transmitted", text).group(1))
    seen = {int(s) for s in re.findall(r"seq=(\d+)", text)}
    return sent, sorted(set(range(sent)) - seen)


def flow(sw):
    flows = sw.ctl("flows show vm-a --dport 7")["flows"]
    return flows[0] if len(flows) == 1 else flows


@unittest.skipIf(QEMU is None, "qemu-system-x86_64 is not installed")
class QemuMigrationTest(unittest.TestCase):
    def start_hosts(self, mode):
        """h1 and h2 joined by uplinks on a veth pair; guest A on h1 behind POLICY (its RAM a
        shared file, self.mem), guest B on h2; A counts on one TCP connection to B's echo
        service. mode "server": the switches own the vhost-user sockets; "client": QEMU does,
        and the ports connect to it. Everything is stopped and removed after the test (and the
        switches must exit cleanly)."""
        client = mode == "client"
        tag = "qmigc" if client else "qmig"
        self.work = work = Workdir(tag)
        self.mem = f"/dev/shm/palisade-{tag}-{os.getpid()}-a.ram"
        self.link = f"p{tag[-2:]}0"
        veth(self.link, f"p{tag[-2:]}1")
        self.h1 = Daemon(f"{tag}1", work.path).start()
        self.h2 = Daemon(f"{tag}2", work.path).start()
        self.guests = []
        self.addCleanup(self.stop_hosts)
        self.h1.ctl(f"port add uplink --uplink net_af_packet_{tag}1,iface={self.link}")
        self.h2.ctl(f"port add uplink --uplink net_af_packet_{tag}2,iface=p{tag[-2:]}1")
        self.b = QemuGuest("b", work.path, work.join("b.sock"), MAC["b"], IP["b"] + "/24", mode=mode)
        self.a = QemuGuest("a", work.path, work.join("a.sock"), MAC["a"], IP["a"] + "/24", mode=mode,
                           mem_path=self.mem)
        self.guests += [self.b, self.a]
        ports = [(self.h1, "a"), (self.h2, "b")]
        if client:  # QEMU listens first; the ports connect to it
            for g in (self.b, self.a):
                g.start()
        for h, n in ports:
            h.ctl(f"port add vm-{n} --vhost-user {work.join(n + '.sock')}{' --client' if client else ''} "
                  f"--vm vm-{n} --mac {MAC[n]} --ip {IP[n]}")
        with open(work.join("mig.rules"), "w") as f:
            f.write(POLICY)
        self.h1.ctl("filter attach vm-a --slot 2 --agent sfw")
        self.h1.ctl(f"rules load vm-a {work.join('mig.rules')}")
        if not client:
            for g in (self.b, self.a):
                g.start()
        self.b.wait_ready()
        self.a.wait_ready()

    def start_counting(self):
        """A's connection to B, counting: returns its state once the count runs."""
        self.a.run(TICKER.format(ip=IP["b"]))
        wait_for(lambda: tcp_state(self.a)["last"] > 3, 30, what="A's connection to B")
        return tcp_state(self.a)

    def destination(self, name, mem_path=None):
        """A's destination QEMU on h2, incoming, its NIC on a2.sock."""
        d = QemuGuest(name, self.work.path, self.work.join("a2.sock"), MAC["a"], IP["a"] + "/24",
                      mode=self.a.mode, mem_path=mem_path, incoming=True)
        self.guests.append(d)
        return d.start()

    def stop_hosts(self):
        for g in reversed(self.guests):
            g.stop()
        rcs = (self.h1.stop(), self.h2.stop())
        del_link(self.link)
        self.work.remove()
        if os.path.exists(self.mem):
            os.unlink(self.mem)
        self.assertEqual(rcs, (0, 0), "the switches exit cleanly")

    def test_connection_survives_live_migration_and_cancel_leaves_the_source(self):
        self.start_hosts("server")
        work, h1, h2, a, b = self.work, self.h1, self.h2, self.a, self.b
        self.assertTrue(b.ping(IP["a"]), "B pings A (rule 1002)")
        start = self.start_counting()
        self.assertEqual(len(start["pids"]), 1, start)
        self.assertIn("ESTABLISHED", start["conn"])
        before = flow(h1)
        self.assertEqual(before["state"], "EST")
        self.assertEqual(before["rule"], 1001)

        # A migration cancelled half-way: RAM is copied (memfd at the destination) slowly.
        rc, out, err = h1.cli("migrate", "vm-a", "--to", h2.socket, "--socket", work.join("a2.sock"))
        self.assertEqual(rc, 0, err)
        d1 = self.destination("a-dst1")
        d1.migrate_incoming(f"unix:{work.join('mig1.sock')}")
        a.migrate(f"unix:{work.join('mig1.sock')}", shared=False, max_bandwidth=4 << 20)
        time.sleep(2)
        self.assertEqual(a.query_migrate()["status"], "active", "half-way")
        self.assertEqual(a.migrate_cancel()["status"], "cancelled")
        rc, _, err = h1.cli("migrate", "cancel", "vm-a")  # as the orchestrator does
        self.assertEqual(rc, 0, err)
        wait_for(lambda: "vm-a" not in h2.ports(), 10, what="h2 to discard its copy")
        self.assertEqual(h2.migration("vm-a", "in")["phase"], "discarded")
        d1.stop()
        self.assertEqual(a.run_state(), "running")
        time.sleep(1)
        after_cancel = tcp_state(a)
        self.assertEqual((after_cancel["pids"], after_cancel["conn"], after_cancel["gaps"]),
                         (start["pids"], start["conn"], 0), "the same connection, unbroken")
        self.assertGreater(after_cancel["last"], start["last"])
        self.assertEqual(flow(h1)["flow_id"], before["flow_id"])
        self.assertTrue(h1.port("vm-a")["link"])

        # The completed migration, with B pinging A throughout (loss counted by B).
        rc, out, err = h1.cli("migrate", "vm-a", "--to", h2.socket, "--socket", work.join("a2.sock"))
        self.assertEqual(rc, 0, err)
        d2 = self.destination("a-dst2", mem_path=self.mem)
        d2.migrate_incoming(f"unix:{work.join('mig2.sock')}")
        b.run(f"ping -i 0.1 -c 60 -W 1 {IP['a']} > /tmp/ping 2>&1 &")
        time.sleep(2)
        counted = flow(h1)
        a.migrate(f"unix:{work.join('mig2.sock')}", shared=True)
        result = a.wait_migration(60)
        self.assertEqual(result["status"], "completed", result)
        wait_for(lambda: h1.migration("vm-a")["phase"] == "completed", 20,
                 what="h1 to see A start on h2")
        wait_for(lambda: "vm-a" not in h1.ports(), 10, what="h1 to remove A's port")
        view = h1.migration("vm-a")
        self.assertEqual(h2.migration("vm-a", "in")["phase"], "running")
        d2.wait_ready(60)
        time.sleep(2)
        moved = tcp_state(d2)
        self.assertEqual((moved["pids"], moved["conn"], moved["gaps"], moved["err"]),
                         (start["pids"], start["conn"], 0, ""), "no reset, no new handshake")
        self.assertGreater(moved["last"], after_cancel["last"] + 5, "the count goes on")
        there = flow(h2)
        self.assertEqual(there["flow_id"], before["flow_id"])
        self.assertEqual(there["state"], "EST")
        self.assertGreater(there["orig_pkts"], counted["orig_pkts"], "counters continue")
        sent, lost = ping_loss(b, "ping", 60, 0.1)
        print(f"\nmigration: QEMU total {result.get('total-time')} ms, downtime "
              f"{result.get('downtime')} ms; final delta {view['deltaChanged']} changed / "
              f"{view['deltaRemoved']} removed, pause {view['pauseMicros']} us; bulk "
              f"{view['bulkMillis']} ms; B's ping lost {len(lost)} of {sent}: {lost}", file=sys.stderr)
        self.assertLessEqual(len(lost), 5, f"lost {lost}")
        self.assertTrue(b.ping(IP["a"], tries=3), "B reaches A at its new host")

    def test_client_mode_port_migrates_too(self):
        """QEMU owns the vhost-user sockets (server=on) and the switches connect to them, as with
        guests that must survive switch restarts: the port arrives in client mode and connects
        to the destination QEMU's socket."""
        self.start_hosts("client")
        work, h1, h2, a = self.work, self.h1, self.h2, self.a
        start = self.start_counting()
        before = flow(h1)

        d = self.destination("a-dst", mem_path=self.mem)  # owns a2.sock before the port arrives
        rc, _, err = h1.cli("migrate", "vm-a", "--to", h2.socket, "--socket", work.join("a2.sock"))
        self.assertEqual(rc, 0, err)
        self.assertEqual(h2.port("vm-a")["mode"], "client")
        d.migrate_incoming(f"unix:{work.join('mig.sock')}")
        a.migrate(f"unix:{work.join('mig.sock')}", shared=True)
        self.assertEqual(a.wait_migration(60)["status"], "completed")
        wait_for(lambda: h1.migration("vm-a")["phase"] == "completed", 20, what="h1 to see A start on h2")
        d.wait_ready(60)
        time.sleep(2)
        moved = tcp_state(d)
        self.assertEqual((moved["pids"], moved["conn"], moved["gaps"], moved["err"]),
                         (start["pids"], start["conn"], 0, ""), "no reset, no new handshake")
        self.assertGreater(moved["last"], start["last"] + 5)
        self.assertEqual(flow(h2)["flow_id"], before["flow_id"])
        wait_for(lambda: "vm-a" not in h1.ports(), 10, what="h1 to remove A's port")

if __name__ == "__main__":
    unittest.main(verbosity=2)
