"""Real Linux network stacks through palisaded: namespace guests (veth + testpmd io forwarding
to a virtio-user port) exchange ping and TCP on one switch, and across two switches whose
uplinks are the two ends of a veth pair (two hosts on one wire)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (Daemon, NamespaceGuests, Workdir, del_link, ping_until_answered,  # noqa: E402
                              tcp_transfer, veth, wait_for)

MB = 1 << 20


class OneSwitchTest(unittest.TestCase):
    def test_two_namespaces_exchange_tcp_through_the_switch(self):
        work = Workdir("ns1")
        sw = Daemon("ns1", work.path).start()
        guests = None
        try:
            for n in "ab":
                sw.ctl(f"port add vm-{n} --vhost-user {work.join(n + '.sock')}")
            guests = NamespaceGuests("pns1", [("a", work.join("a.sock"), "10.11.0.1/24"),
                                              ("b", work.join("b.sock"), "10.11.0.2/24")])
            wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]))
            self.assertTrue(ping_until_answered(guests["a"], guests["b"].ip), "ping a -> b")

            got, got_sha, sent, sent_sha = tcp_transfer(guests["b"], guests["a"], 5001, 8 * MB)
            self.assertEqual((got, got_sha), (sent, sent_sha))

            ports = {p["name"]: p for p in sw.ctl("port stats")["ports"]}
            # 8 MB in frames of at most 1514 bytes, plus handshakes and ACKs the other way.
            self.assertGreater(ports["vm-a"]["rx_bytes"], 8 * MB)
            self.assertGreater(ports["vm-b"]["tx_bytes"], 8 * MB)
            self.assertGreater(ports["vm-a"]["tx_packets"], 0)
            macs = {m["mac"]: m["port"] for m in sw.ctl("mac show")["macs"]}
            self.assertEqual(macs.get("02:00:00:00:10:01"), "vm-a")
            self.assertEqual(macs.get("02:00:00:00:11:01"), "vm-b")
            workers = sw.ctl("worker stats")["workers"]
            self.assertGreater(workers[0]["rx_packets"], 0)
            self.assertGreater(workers[0]["cycles_per_packet"], 0)
        finally:
            if guests:
                guests.close()
            rc = sw.stop()
            work.remove()
        self.assertEqual(rc, 0)


class TwoHostsTest(unittest.TestCase):
    """Two palisaded instances, each with one guest, joined only by af_packet uplinks on the two
    ends of a veth pair."""

    def test_guest_on_one_switch_reaches_guest_on_the_other(self):
        work = Workdir("hosts")
        veth("pwire0", "pwire1")
        h1 = Daemon("host1", work.path).start()
        h2 = Daemon("host2", work.path).start()
        guests = None
        try:
            h1.ctl(f"port add vm-a --vhost-user {work.join('a.sock')}")
            h1.ctl("port add uplink --uplink net_af_packet_h1,iface=pwire0")
            h2.ctl(f"port add vm-b --vhost-user {work.join('b.sock')}")
            h2.ctl("port add uplink --uplink net_af_packet_h2,iface=pwire1")
            guests = NamespaceGuests("pnh", [("a", work.join("a.sock"), "10.12.0.1/24"),
                                             ("b", work.join("b.sock"), "10.12.0.2/24")])
            self.assertTrue(ping_until_answered(guests["a"], guests["b"].ip), "ping across hosts")
            got, got_sha, sent, sent_sha = tcp_transfer(guests["b"], guests["a"], 5002, 4 * MB)
            self.assertEqual((got, got_sha), (sent, sent_sha))

            for host, local in ((h1, "vm-a"), (h2, "vm-b")):
                macs = {m["mac"]: m["port"] for m in host.ctl("mac show")["macs"]}
                remote = "02:00:00:00:11:01" if local == "vm-a" else "02:00:00:00:10:01"
                self.assertEqual(macs.get(remote), "uplink", "the remote guest is behind the uplink")
                up = host.port("uplink")
                self.assertGreater(up["rx_bytes"], 0)
                self.assertGreater(up["tx_bytes"], 0)
            self.assertGreater(h1.port("uplink")["tx_bytes"], 4 * MB)
            self.assertGreater(h2.port("uplink")["rx_bytes"], 4 * MB)
        finally:
            if guests:
                guests.close()
            rc1, rc2 = h1.stop(), h2.stop()
            del_link("pwire0")
            work.remove()
        self.assertEqual((rc1, rc2), (0, 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
