"""The switch core with real vhost-user peers: one palisaded and one dpdk-testpmd whose
virtio-user ports are the guests. testpmd runs rxonly; a guest "sends" with tx_first (one burst
of 32 UDP frames to its configured peer MAC) while only its own port is forwarding."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import Daemon, Testpmd, Workdir, wait_for  # noqa: E402

BROADCAST = "ff:ff:ff:ff:ff:ff"
BURST = 32


class Guests:
    """A testpmd process holding one virtio-user port per switch port."""

    def __init__(self, prefix, sockets, extra_vdev_args=""):
        vdevs = [f"net_virtio_user{i},path={s},queue_size=1024{extra_vdev_args}"
                 for i, s in enumerate(sockets)]
        self.n = len(sockets)
        self.tp = Testpmd(prefix, vdevs, ["--forward-mode=rxonly", "--port-topology=loop"])
        self.macs = [self.tp.mac(i) for i in range(self.n)]

    def send(self, port, dst_mac, daemon=None, port_name=None):
        """Port `port` sends one burst to dst_mac; then every port drains what it received."""
        before = daemon.port(port_name)["rx_packets"] if daemon else None
        self.tp.cmd(f"set eth-peer {port} {dst_mac}")
        self.tp.cmd(f"set portlist {port}")
        self.tp.cmd("start tx_first")
        if daemon:
            wait_for(lambda: daemon.port(port_name)["rx_packets"] >= before + BURST,
                     what="the switch to receive the burst")
        time.sleep(0.2)  # let the worker forward it (it polls at least every ~130 us)
        self.tp.cmd("stop")
        self.drain()

    def drain(self):
        self.tp.cmd("set portlist " + ",".join(str(i) for i in range(self.n)))
        self.tp.cmd("start")
        time.sleep(0.3)
        self.tp.cmd("stop")

    def rx(self):
        return {p: s["rx"] for p, s in self.tp.port_stats().items()}

    def close(self):
        self.tp.close()


class BridgeTest(unittest.TestCase):
    NAMES = ["a", "b", "c"]

    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("bridge")
        cls.sw = Daemon("bridge", cls.work.path).start()
        cls.sockets = [cls.work.join(f"{n}.sock") for n in cls.NAMES]
        for name, sock in zip(cls.NAMES, cls.sockets):
            cls.sw.ctl(f"port add {name} --vhost-user {sock}")
        cls.g = Guests("bridge-guests", cls.sockets)
        wait_for(lambda: all(p["link"] for p in cls.sw.ctl("port list")["ports"]),
                 what="all guests connected")

    @classmethod
    def tearDownClass(cls):
        cls.g.close()
        rc = cls.sw.stop()
        cls.work.remove()
        assert rc == 0, f"palisaded exited {rc}"

    def setUp(self):
        self.sw.ctl("mac flush")

    def stats(self):
        return {p["name"]: p for p in self.sw.ctl("port stats")["ports"]}

    def delta(self, before, after, key):
        return {n: after[n][key] - before[n][key] for n in self.NAMES}

    def learn(self, port):
        """Port sends a broadcast so the switch learns its MAC."""
        self.g.send(port, BROADCAST, self.sw, self.NAMES[port])
        wait_for(lambda: any(m["mac"] == self.g.macs[port] and m["port"] == self.NAMES[port]
                             for m in self.sw.ctl("mac show")["macs"]),
                 what=f"MAC of {self.NAMES[port]} learned")

    def test_broadcast_floods_to_all_other_ports(self):
        sw0, g0 = self.stats(), self.g.rx()
        self.g.send(0, BROADCAST, self.sw, "a")
        sw1, g1 = self.stats(), self.g.rx()
        self.assertEqual(self.delta(sw0, sw1, "rx_packets"), {"a": BURST, "b": 0, "c": 0})
        self.assertEqual(self.delta(sw0, sw1, "tx_packets"), {"a": 0, "b": BURST, "c": BURST})
        self.assertEqual({p: g1[p] - g0[p] for p in g0}, {0: 0, 1: BURST, 2: BURST})

    def test_unknown_unicast_floods_then_learned_unicast_reaches_only_its_destination(self):
        g0 = self.g.rx()
        self.g.send(0, self.g.macs[1], self.sw, "a")  # B not learned yet: flood
        g1 = self.g.rx()
        self.assertEqual({p: g1[p] - g0[p] for p in g0}, {0: 0, 1: BURST, 2: BURST})

        self.learn(1)
        g2 = self.g.rx()
        self.g.send(0, self.g.macs[1], self.sw, "a")
        g3 = self.g.rx()
        self.assertEqual({p: g3[p] - g2[p] for p in g2}, {0: 0, 1: BURST, 2: 0})

    def test_never_back_out_of_the_ingress_port(self):
        self.learn(2)
        sw0 = self.stats()
        self.g.send(2, self.g.macs[2], self.sw, "c")  # C to its own MAC
        sw1 = self.stats()
        self.assertEqual(self.delta(sw0, sw1, "tx_packets"), {"a": 0, "b": 0, "c": 0})
        self.assertEqual(sw1["c"]["drops"]["same-port"] - sw0["c"]["drops"]["same-port"], BURST)

    def test_failure_policy_and_counting_filter_in_the_chain(self):
        self.learn(1)
        # An empty slot on B with failClosed: nothing reaches B, drops counted on B.
        self.sw.ctl("filter attach b --slot 2 --agent none --policy failClosed")
        sw0, g0 = self.stats(), self.g.rx()
        self.g.send(0, self.g.macs[1], self.sw, "a")
        sw1, g1 = self.stats(), self.g.rx()
        self.assertEqual(g1[1] - g0[1], 0)
        self.assertEqual(sw1["b"]["drops"]["fail-closed"] - sw0["b"]["drops"]["fail-closed"], BURST)

        # failOpen on the same empty slot, plus a counting filter in slot 3: traffic passes and
        # is counted in the IN direction.
        self.sw.ctl("filter attach b --slot 2 --agent none --policy failOpen")
        self.sw.ctl("filter attach b --slot 3 --agent counting")
        g2 = self.g.rx()
        self.g.send(0, self.g.macs[1], self.sw, "a")
        g3 = self.g.rx()
        self.assertEqual(g3[1] - g2[1], BURST)
        slots = {p["port"]: p["slots"] for p in self.sw.ctl("filter list")["ports"]}
        counting = [s for s in slots["b"] if s["slot"] == 3][0]
        self.assertEqual(counting["in_packets"], BURST)
        self.assertEqual(counting["out_packets"], 0)
        self.assertEqual(counting["name"], "nic-1-b-palisade-count.3")
        self.sw.ctl("filter detach b --slot 2")
        self.sw.ctl("filter detach b --slot 3")
        self.assertEqual(self.sw.try_ctl("filter detach b --slot 3")["error"],
                         "port 'b' has no slot 3")

    def test_z_port_counters_agree_with_what_testpmd_sent_and_received(self):
        # Runs last (name order): compares the totals of everything the other tests sent.
        self.g.send(1, BROADCAST, self.sw, "b")
        tp = self.g.tp.port_stats()
        sw = self.stats()
        for i, name in enumerate(self.NAMES):
            self.assertEqual(sw[name]["rx_packets"], tp[i]["tx"], name)
            self.assertEqual(sw[name]["tx_packets"], tp[i]["rx"], name)
            self.assertEqual(sw[name]["drops"]["tx-full"], 0, name)

    def test_bad_control_requests_are_refused_and_change_nothing(self):
        ports = self.sw.ctl("port list")["ports"]
        for line, error in [
            ("port add a --vhost-user /tmp/other.sock", "port 'a' already exists"),
            (f"port add d --vhost-user {self.sockets[0]}", f"{self.sockets[0]} is in use by another process"),
            ("port del nosuch", "no port 'nosuch'"),
            ("filter attach a --slot 1 --agent magic", "unknown filter agent 'magic' (known: sfw, swsec, counting, none)"),
            ("port add bad/name --vhost-user /tmp/x.sock", "port name 'bad/name' may hold only letters, digits, '-', '_', '.'"),
            ("port add up --uplink net_nosuchdriver0", None),
        ]:
            reply = self.sw.try_ctl(line)
            self.assertFalse(reply["ok"], line)
            if error:
                self.assertEqual(reply["error"], error, line)
        self.assertEqual(self.sw.ctl("port list")["ports"], ports)


class PortRemovalTest(unittest.TestCase):
    """Removing and re-adding ports while a guest floods the switch."""

    def test_remove_ports_under_traffic(self):
        work = Workdir("removal")
        sw = Daemon("removal", work.path).start()
        try:
            names = ["a", "b", "c"]
            socks = [work.join(f"{n}.sock") for n in names]
            for n, s in zip(names, socks):
                sw.ctl(f"port add {n} --vhost-user {s}")
            g = Guests("removal-guests", socks)
            try:
                wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]))
                g.tp.cmd("set fwd txonly")
                g.tp.cmd("set eth-peer 0 ff:ff:ff:ff:ff:ff")
                g.tp.cmd("set portlist 0")
                g.tp.cmd("start")
                # Nobody drains b and c (only a is polled): once their rings are full, what the
                # switch forwards is counted as tx-full drops.
                forwarded = lambda n: sw.port(n)["tx_packets"] + sw.port(n)["drops"]["tx-full"]
                wait_for(lambda: forwarded("c") > 10000, what="flood reaching c")
                for _ in range(3):  # remove and re-add a receiving port mid-flood
                    sw.ctl("port del c")
                    self.assertNotIn("c", [p["name"] for p in sw.ctl("port list")["ports"]])
                    self.assertFalse(os.path.exists(socks[2]), "server socket removed with its port")
                    sw.ctl(f"port add c --vhost-user {socks[2]}")
                b0 = forwarded("b")
                wait_for(lambda: forwarded("b") > b0 + 10000, what="flood still reaching b")
                sw.ctl("port del a")  # the sending port itself
                self.assertEqual([p["name"] for p in sw.ctl("port list")["ports"]], ["b", "c"])
                g.tp.cmd("stop")
            finally:
                g.close()
            self.assertIsNone(sw.proc.poll(), "palisaded survived")
        finally:
            rc = sw.stop()
            work.remove()
        self.assertEqual(rc, 0)
        self.assertFalse(os.path.exists(sw.socket), "control socket removed on SIGTERM")
        self.assertFalse(os.path.exists("/var/run/dpdk/palisade-removal"), "EAL runtime dir removed")


class ClientModeTest(unittest.TestCase):
    """Client-mode ports: the guest (testpmd, virtio-user server=1) owns the sockets. The switch
    restarts under running guests and traffic resumes without restarting them."""

    def test_client_port_reconnects_after_daemon_restart(self):
        work = Workdir("client")
        socks = [work.join("a.sock"), work.join("b.sock")]
        config = work.join("palisade.conf")
        with open(config, "w") as f:
            f.write("# two guests whose QEMU owns the sockets\n")
            for n, s in zip("ab", socks):
                f.write(f"port add {n} --vhost-user {s} --client\n")
        # The switch starts first and keeps trying to connect: testpmd's virtio-user in server
        # mode waits at start-up until its client has connected.
        sw = Daemon("client", work.path, config=config).start()
        g = None
        try:
            g = Guests("client-guests", socks, extra_vdev_args=",server=1")
            wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]), 20,
                     what="switch connected to the guests")
            self.assertEqual({p["mode"] for p in sw.ctl("port list")["ports"]}, {"client"})
            g0 = g.rx()
            g.send(0, BROADCAST, sw, "a")
            self.assertEqual(g.rx()[1] - g0[1], BURST)

            self.assertEqual(sw.stop(), 0)
            self.assertTrue(os.path.exists(socks[0]), "the guest's socket stays: it owns it")
            sw.start()
            wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]), 30,
                     what="switch reconnected to the guests")
            g1 = g.rx()
            g.send(0, BROADCAST, sw, "a")
            self.assertEqual(g.rx()[1] - g1[1], BURST)
            g1 = g.rx()
            g.send(1, BROADCAST, sw, "b")
            self.assertEqual(g.rx()[0] - g1[0], BURST)
        finally:
            if g:
                g.close()
            sw.stop()
            work.remove()


if __name__ == "__main__":
    unittest.main(verbosity=2)
