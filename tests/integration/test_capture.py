"""palisadectl capture: a port's packets before (pre) and after (post) its filters, as pcapng
that tshark reads; namespace guests behind port security and the stateful firewall, whose rules
drop TCP to port 5001 and allow ping."""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (PALISADECTL, Daemon, NamespaceGuests, Workdir,  # noqa: E402
                              ping_until_answered, wait_for)

MAC_A, MAC_B = "02:00:00:00:10:01", "02:00:00:00:11:01"
IP_A, IP_B = "10.17.0.1", "10.17.0.2"
N = 5

B_RULES = """ruleset capture-b {
  rule 3001 at 1 inout protocol tcp from any to any port 5001 drop;
  rule 3002 at 2 inout protocol icmp icmptype 8 from any to any accept;
  rule 3003 at 3 inout protocol any from any to any accept;
}
"""
A_RULES = """ruleset capture-a {
  rule 3100 at 1 out protocol tcp from any to any port 5002 drop;
  rule 3101 at 2 inout protocol any from any to any accept;
}
"""

# N SYNs to B's port, one each: a socket closed while its SYN is unanswered sends nothing more.
SYNS = """
import socket, sys, time
for _ in range(int(sys.argv[2])):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((sys.argv[1], int(sys.argv[3])))
    time.sleep(0.2)
    s.close()
"""

PING = "icmp.type == 8"
SYN = "tcp.dstport == 5001 && tcp.flags.syn == 1"


def tshark(path, display_filter, fields=("frame.comment",), stdin=None):
    """The given fields of the packets matching display_filter, one tuple per packet."""
    argv = ["tshark", "-r", path, "-Y", display_filter, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    r = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=60, check=True)
    return [tuple(line.split("\t")) for line in r.stdout.splitlines() if line]


class CaptureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("cap")
        cls.sw = Daemon("cap", cls.work.path).start()
        cls.sw.add_protected_port("vm-a", cls.work.join("a.sock"), "cap-a", MAC_A, IP_A)
        cls.sw.add_protected_port("vm-b", cls.work.join("b.sock"), "cap-b", MAC_B, IP_B)
        for port, text in (("vm-a", A_RULES), ("vm-b", B_RULES)):
            path = cls.work.join(f"{port}.rules")
            with open(path, "w") as f:
                f.write(text)
            cls.sw.ctl(f"rules load {port} {path}")
        cls.guests = NamespaceGuests("pcap", [("a", cls.work.join("a.sock"), IP_A + "/24"),
                                              ("b", cls.work.join("b.sock"), IP_B + "/24")])
        wait_for(lambda: all(p["link"] for p in cls.sw.ctl("port list")["ports"]))
        assert ping_until_answered(cls.guests["a"], IP_B)

    @classmethod
    def tearDownClass(cls):
        cls.guests.close()
        rc = cls.sw.stop()
        cls.work.remove()
        assert rc == 0

    def start(self, *args, out=None):
        """palisadectl capture in the background; returns once its file has its headers."""
        argv = [PALISADECTL, "-s", self.sw.socket, "capture", *args]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE if out is None else out,
                                stderr=subprocess.PIPE, text=True)
        if out is None and "-w" in args and args[args.index("-w") + 1] != "-":
            path = args[args.index("-w") + 1]
            wait_for(lambda: proc.poll() is not None or (os.path.exists(path) and os.path.getsize(path) >= 68),
                     what="capture file headers")
            self.assertIsNone(proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
        return proc

    def traffic(self, syn_port=5001):
        a = self.guests["a"]
        a.run("ping", "-c", str(N), "-i", "0.2", "-W", "1", IP_B)
        a.run("/usr/bin/python3", "-c", SYNS, IP_B, str(N), str(syn_port))
        time.sleep(0.3)  # the last packets reach the capture file

    def interrupt(self, proc):
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 0, err)
        return err

    def test_1_pre_and_post_around_the_chain(self):
        pre, post = self.work.join("pre.pcapng"), self.work.join("post.pcapng")
        proc = self.start("vm-b", "--point", "pre", "--dir", "in", "-w", pre)
        # One capture per port at a time, and the refusal says so.
        rc, _, err = self.sw.cli("capture", "vm-b", "--point", "post", "-w", self.work.join("x.pcapng"))
        self.assertEqual(rc, 1)
        self.assertIn("one capture per port", err)
        self.traffic()
        err = self.interrupt(proc)
        self.assertRegex(err, r"\d+ packets captured, 0 lost")

        proc = self.start("vm-b", "--point", "post", "--dir", "in", "-w", post)
        self.traffic()
        self.interrupt(proc)

        pre_pings = tshark(pre, PING, ("frame.comment", "frame.interface_name"))
        self.assertEqual(len(pre_pings), N)
        for comment, iface in pre_pings:
            self.assertEqual(iface, "vm-b")
            self.assertEqual(comment, "port=vm-b dir=in point=pre verdict=pass")
        pre_syns = tshark(pre, SYN)
        self.assertEqual(len(pre_syns), N)
        for (comment,) in pre_syns:
            self.assertEqual(comment, "port=vm-b dir=in point=pre verdict=drop reason=rule")

        post_pings = tshark(post, PING)
        self.assertEqual(len(post_pings), N)
        for (comment,) in post_pings:
            self.assertEqual(comment, "port=vm-b dir=in point=post verdict=pass")
        self.assertEqual(tshark(post, SYN), [])
        # Only what went toward the VM: no echo replies.
        self.assertEqual(tshark(pre, "icmp.type == 0") + tshark(post, "icmp.type == 0"), [])
        # Timestamps are wall-clock time.
        stamps = [float(t) for (t,) in tshark(pre, PING, ("frame.time_epoch",))]
        for t in stamps:
            self.assertLess(abs(t - time.time()), 120)

    def test_2_after_a_slot(self):
        # vm-a's own rules (slot 2) drop its SYNs to 5002: after slot 1 (port security, first
        # from the VM) they are there, with the chain's verdict; after slot 2 they are not.
        syn_5002 = "tcp.dstport == 5002 && tcp.flags.syn == 1"
        slot1, slot2 = self.work.join("slot1.pcapng"), self.work.join("slot2.pcapng")
        proc = self.start("vm-a", "--point", "post:1", "--dir", "out", "-w", slot1)
        self.traffic(syn_port=5002)
        self.interrupt(proc)
        syns = tshark(slot1, syn_5002)
        self.assertEqual(len(syns), N)
        for (comment,) in syns:
            self.assertEqual(comment, "port=vm-a dir=out point=post:1 verdict=drop reason=rule")

        proc = self.start("vm-a", "--point", "post:2", "--dir", "both", "-w", slot2)
        self.traffic(syn_port=5002)
        self.interrupt(proc)
        self.assertEqual(tshark(slot2, syn_5002), [])
        requests, replies = tshark(slot2, PING), tshark(slot2, "icmp.type == 0")
        self.assertEqual((len(requests), len(replies)), (N, N))
        self.assertTrue(all(c == "port=vm-a dir=out point=post:2 verdict=pass" for (c,) in requests))
        self.assertTrue(all(c == "port=vm-a dir=in point=post:2 verdict=pass" for (c,) in replies))

        rc, _, err = self.sw.cli("capture", "vm-b", "--point", "post:7", "-w", slot2)
        self.assertEqual(rc, 1)
        self.assertIn("no slot 7", err)

    def test_3_count_and_snaplen(self):
        path = self.work.join("count.pcapng")
        proc = self.start("vm-b", "--point", "pre", "--dir", "in", "-c", "3", "--snaplen", "40", "-w", path)
        self.traffic()
        _, err = proc.communicate(timeout=20)  # it stops by itself
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("3 packets captured", err)
        rows = tshark(path, "frame", ("frame.cap_len", "frame.len"))
        self.assertEqual(len(rows), 3)
        for cap_len, length in rows:
            self.assertLessEqual(int(cap_len), 40)
            self.assertGreaterEqual(int(length), int(cap_len))
        self.assertTrue(any(int(length) > 40 for _, length in rows))

    def test_4_standard_output_into_tshark(self):
        capture = self.start("vm-b", "--point", "post", "--dir", "in", "-c", str(N), "-w", "-")
        reader = subprocess.Popen(["tshark", "-r", "-", "-T", "fields", "-e", "frame.comment"],
                                  stdin=capture.stdout, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True)
        capture.stdout.close()
        time.sleep(0.5)  # the capture is on before the pings
        self.guests["a"].run("ping", "-c", str(N + 2), "-i", "0.2", "-W", "1", IP_B)
        out, _ = reader.communicate(timeout=30)
        capture.wait(timeout=20)
        err = capture.stderr.read()
        capture.stderr.close()
        self.assertEqual(capture.returncode, 0, err)
        self.assertIn(f"{N} packets captured", err)
        lines = out.splitlines()
        self.assertEqual(len(lines), N, out)
        self.assertTrue(all(line.startswith("port=vm-b dir=in point=post verdict=pass") for line in lines))

    def test_5_a_vanished_client_ends_its_capture(self):
        proc = self.start("vm-b", "--point", "pre", "-w", self.work.join("killed.pcapng"))
        proc.kill()
        proc.communicate(timeout=20)
        # The switch turned it off: the port can be captured again.
        wait_for(self.capture_free, what="the killed client's capture to stop")

    def capture_free(self):
        """True when vm-b can be captured again (a capture started and stopped at once)."""
        proc = subprocess.Popen([PALISADECTL, "-s", self.sw.socket, "capture", "vm-b", "--point", "pre",
                                 "-w", self.work.join("probe.pcapng")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        if proc.poll() is not None:
            proc.communicate()
            return False
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        return proc.returncode == 0

    def test_6_usage_errors(self):
        rc, _, err = self.sw.cli("capture", "vm-b", "--point", "middle", "-w", self.work.join("u.pcapng"))
        self.assertEqual(rc, 1)
        self.assertIn("pre, post or post:SLOT", err)
        rc, _, err = self.sw.cli("capture", "vm-b", "--point", "pre")
        self.assertEqual(rc, 2)
        rc, _, err = self.sw.cli("capture", "nope", "--point", "pre", "-w", self.work.join("u.pcapng"))
        self.assertEqual(rc, 1)
        self.assertIn("no port 'nope'", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
