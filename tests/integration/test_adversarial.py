"""A hostile guest gets nothing, through the real daemon: hand-built frames (scapy) sent from a
namespace guest's interface, and real Linux TCP beside them. Each case says what must happen to
the attack (dropped, under which reason, on which port) and checks it both on the receiving
guests' interfaces and on the switch's counters; the good traffic around it must carry on.

Guests: a (the attacker, 10.15.0.1), b (the victim, 10.15.0.2), c (10.15.0.3, whose rules let
everything in, so whatever leaves a's filters would be seen there). Every port has port
security (slot 1) and the stateful firewall (slot 2)."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (Daemon, NamespaceGuests, Session, Workdir,  # noqa: E402
                              echo_server, ping_until_answered, stop_all, wait_for)
from rawlink import Sniffer, send  # noqa: E402
from scapy.all import (ARP, BOOTP, DHCP, ICMP, IP, TCP, UDP, Dot1AD, Dot1Q, Ether, ICMPv6ND_NA,  # noqa: E402
                       ICMPv6ND_RA, ICMPv6ND_Redirect, ICMPv6NDOptDstLLAddr, IPv6, IPv6ExtHdrFragment,
                       Raw, conf)

conf.verb = 0
MAC = {"a": "02:00:00:00:10:01", "b": "02:00:00:00:11:01", "c": "02:00:00:00:12:01"}
IP4 = {"a": "10.15.0.1", "b": "10.15.0.2", "c": "10.15.0.3"}
SETTLE = 0.5  # seconds for frames to cross testpmd, the switch and testpmd again

RULES = {
    "a": """ruleset attacker {
  rule 101 at 1 out protocol tcp from any to any port 5001 accept;
  rule 102 at 2 out protocol udp from any to any port 53 accept;
  rule 103 at 3 out protocol icmp icmptype 8 from any to any accept;
  rule 104 at 4 inout protocol any from any to any drop;
}
""",
    "b": """ruleset victim {
  rule 201 at 1 in protocol tcp from any to any port 5001 accept;
  rule 202 at 2 in protocol udp from any to any port 53 accept;
  rule 203 at 3 in protocol icmp icmptype 8 from any to any accept;
  rule 204 at 4 inout protocol any from any to any drop;
}
""",
    "c": """ruleset open {
  rule 301 at 1 inout protocol any from any to any accept;
}
""",
}


def marked(tag):
    """A payload that identifies one attack frame wherever it arrives."""
    return Raw(load=b"PALISADE-ATTACK-" + tag.encode())


def carries(frames, tag):
    needle = b"PALISADE-ATTACK-" + tag.encode()
    return [f for f in frames if needle in f]


class AdversarialTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("adv")
        cls.sw = Daemon("adv", cls.work.path).start()
        for n in "abc":
            cls.sw.add_protected_port(f"vm-{n}", cls.work.join(n + ".sock"), n, MAC[n], IP4[n])
            path = cls.work.join(f"{n}.rules")
            with open(path, "w") as f:
                f.write(RULES[n])
            cls.sw.ctl(f"rules load vm-{n} {path}")
        cls.guests = NamespaceGuests("padv", [(n, cls.work.join(n + ".sock"), IP4[n] + "/24") for n in "abc"])
        wait_for(lambda: all(p["link"] for p in cls.sw.ctl("port list")["ports"]))
        cls.server = echo_server(cls.guests["b"], 5001)
        # Neighbours resolved and MACs learned before the attacks.
        assert ping_until_answered(cls.guests["a"], IP4["b"])
        assert ping_until_answered(cls.guests["c"], IP4["b"])

    @classmethod
    def tearDownClass(cls):
        stop_all(cls.sw, cls.work, cls.guests, cls.server)

    def drops(self):
        return {p["name"]: p["drops"] for p in self.sw.ctl("port stats")["ports"]}

    def attack(self, frames, sniff=("b", "c")):
        """Sends frames from a; returns (what each sniffed guest received, the drops it added)."""
        before = self.drops()
        sniffers = {n: Sniffer(self.guests[n]) for n in sniff}
        send(self.guests["a"], frames)
        time.sleep(SETTLE)
        got = {n: s.stop() for n, s in sniffers.items()}
        after = self.drops()
        added = {}
        for port, reasons in after.items():
            for reason, n in reasons.items():
                if n != before[port][reason]:
                    added[(port, reason)] = n - before[port][reason]
        return got, added

    def assertNothingArrived(self, got, tag):
        for guest, frames in got.items():
            self.assertEqual(carries(frames, tag), [], f"{tag} reached {guest}")

    def test_arp_and_na_in_every_spoofing_variant_are_spoofguard(self):
        eth = Ether(src=MAC["a"], dst="ff:ff:ff:ff:ff:ff")
        claim_b = dict(op=2, hwsrc=MAC["a"], psrc=IP4["b"], hwdst="ff:ff:ff:ff:ff:ff", pdst=IP4["b"])
        frames = [
            eth / ARP(hwtype=6, **claim_b),                        # IEEE 802, which Linux takes
            eth / ARP(hwtype=1, ptype=0x86dd, plen=4, **claim_b),  # another protocol type
            eth / ARP(hwlen=8, **claim_b),                         # another address length
            eth / ARP(op=9, hwsrc=MAC["a"], psrc=IP4["a"], pdst=IP4["b"]),  # InARP
            bytes(eth / ARP(**claim_b))[:30],                      # cut short
            eth / ARP(**claim_b),                                  # plainly claiming b's address
            eth / ARP(op=1, hwsrc=MAC["b"], psrc=IP4["a"], pdst=IP4["c"]),  # b's MAC inside
            # Neighbour advertisements for an address a does not hold, from its own link-local
            # address and from b's.
            Ether(src=MAC["a"], dst="33:33:00:00:00:01") / IPv6(src="fe80::ff:fe00:1001", dst="ff02::1") /
            ICMPv6ND_NA(tgt="2001:db8::2", R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr=MAC["a"]),
            Ether(src=MAC["a"], dst="33:33:00:00:00:01") / IPv6(src="fe80::ff:fe00:1101", dst="ff02::1") /
            ICMPv6ND_NA(tgt="fe80::ff:fe00:1101", R=0, S=0, O=1),
        ]
        got, added = self.attack(frames)
        self.assertEqual(added, {("vm-a", "SpoofGuard"): len(frames)})
        for guest, received in got.items():
            arp_from_a = [f for f in received if f[12:14] == b"\x08\x06" and f[6:12] == bytes.fromhex(MAC["a"].replace(":", ""))]
            self.assertEqual(arp_from_a, [], f"a's ARP reached {guest}")
        # The honest request still works.
        got, added = self.attack([eth / ARP(op=1, hwsrc=MAC["a"], psrc=IP4["a"], pdst=IP4["c"])])
        self.assertEqual(added, {})
        self.assertEqual(len([f for f in got["c"] if f[12:14] == b"\x08\x06" and f[6:12] == bytes.fromhex("020000001001")]), 1)

    def test_a_malformed_frame_with_the_victims_mac_teaches_the_bridge_nothing(self):
        frame = Ether(src=MAC["b"], dst=MAC["c"]) / IP(src=IP4["b"], dst=IP4["c"], len=4000) / UDP() / marked("badlen")
        got, added = self.attack([frame, Ether(src=MAC["a"], dst=MAC["c"]) / IP(src=IP4["a"], dst=IP4["c"], ihl=3) / marked("ihl")])
        self.assertEqual(added, {("vm-a", "SpoofGuard"): 1, ("vm-a", "malformed"): 1})
        self.assertNothingArrived(got, "badlen")
        self.assertNothingArrived(got, "ihl")
        macs = {m["mac"]: m["port"] for m in self.sw.ctl("mac show")["macs"]}
        self.assertEqual(macs.get(MAC["b"]), "vm-b", "b's MAC stays on b's port")

    def test_a_guest_is_neither_a_router_nor_a_dhcp_server(self):
        ll = "fe80::ff:fe00:1001"  # a's own link-local address
        frames = [
            Ether(src=MAC["a"], dst="33:33:00:00:00:01") / IPv6(src=ll, dst="ff02::1") / ICMPv6ND_RA() / marked("ra"),
            Ether(src=MAC["a"], dst=MAC["b"]) / IPv6(src=ll, dst="fe80::ff:fe00:1101") /
            ICMPv6ND_Redirect(tgt="fe80::1", dst="2001:db8::9") / marked("redirect6"),
            Ether(src=MAC["a"], dst=MAC["b"]) / IP(src=IP4["a"], dst=IP4["b"]) /
            ICMP(type=5, code=1, gw=IP4["a"]) / IP(src=IP4["b"], dst="192.0.2.9") / UDP(dport=53) / marked("redirect"),
            Ether(src=MAC["a"], dst="ff:ff:ff:ff:ff:ff") / IP(src=IP4["a"], dst="255.255.255.255") /
            UDP(sport=67, dport=68) / BOOTP(op=2, yiaddr=IP4["b"], chaddr=bytes.fromhex("020000001101")) /
            DHCP(options=[("message-type", "offer"), ("router", IP4["a"]), "end"]) / marked("offer"),
            Ether(src=MAC["a"], dst="33:33:00:01:00:02") / IPv6(src=ll, dst="ff02::1:2") / UDP(sport=547, dport=546) / marked("dhcp6"),
        ]
        got, added = self.attack(frames)
        self.assertEqual(added, {("vm-a", "RAGuard"): 3, ("vm-a", "DHCPGuard"): 2})
        for tag in ("ra", "redirect6", "redirect", "offer", "dhcp6"):
            self.assertNothingArrived(got, tag)

    def test_vlan_tagged_frames_from_a_vm_stay_out_of_trunks(self):
        inner = IP(src=IP4["a"], dst=IP4["c"]) / UDP(dport=53) / marked("vlan")
        frames = [Ether(src=MAC["a"], dst=MAC["c"]) / Dot1Q(vlan=5) / inner,
                  Ether(src=MAC["a"], dst=MAC["c"]) / Dot1AD(vlan=5) / Dot1Q(vlan=6) / inner,
                  Ether(src=MAC["a"], dst=MAC["c"]) / Dot1Q(vlan=5) / Dot1Q(vlan=6) / Dot1Q(vlan=7) / inner]
        got, added = self.attack(frames)
        self.assertEqual(added, {("vm-a", "vlan-tagged"): 3})
        self.assertNothingArrived(got, "vlan")

    def test_icmp_errors_pass_as_related_only_when_they_fit(self):
        # A real error first: b has no DNS server, so its kernel answers a's query with a port
        # unreachable, which both filters pass as related and a receives.
        sniff_a = Sniffer(self.guests["a"])
        self.guests["a"].run("/usr/bin/python3", "-c",
                             "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                             "s.bind(('0.0.0.0', 40053)); s.sendto(b'q', ('%s', 53))" % IP4["b"])
        time.sleep(SETTLE)
        errors = [f for f in sniff_a.stop() if f[12:14] == b"\x08\x00" and f[23] == 1 and f[34] == 3]
        self.assertEqual(len(errors), 1, "b's port unreachable reached a")
        # a's rules let no ICMP error out; one quoting its live flow to b, sent to c with a
        # payload of a's choosing, once passed as "related".
        quoted = IP(src=IP4["a"], dst=IP4["b"]) / UDP(sport=40053, dport=53)
        forged = Ether(src=MAC["a"], dst=MAC["c"]) / IP(src=IP4["a"], dst=IP4["c"]) / ICMP(type=3, code=3) / quoted / marked("exfil")
        # Quoting b's reply direction, which never carried anything, toward b.
        reply = IP(src=IP4["b"], dst=IP4["a"]) / UDP(sport=53, dport=40053)
        unseen = Ether(src=MAC["a"], dst=MAC["b"]) / IP(src=IP4["a"], dst=IP4["b"]) / ICMP(type=3, code=3) / reply / marked("unseen")
        got, added = self.attack([forged, unseen])
        self.assertEqual(added, {("vm-a", "rule"): 2})
        self.assertNothingArrived(got, "exfil")
        self.assertNothingArrived(got, "unseen")

    def test_icmp_type_rules_apply_to_every_packet(self):
        # An echo with identifier 0 admitted (and answered); a timestamp request then used to
        # ride on its entry, since non-echo ICMP was tracked as (a, b, icmp, 0, 0).
        echo = Ether(src=MAC["a"], dst=MAC["b"]) / IP(src=IP4["a"], dst=IP4["b"]) / ICMP(type=8, id=0, seq=1) / marked("echo0")
        got, added = self.attack([echo], sniff=("b",))
        self.assertEqual(len(carries(got["b"], "echo0")), 1)
        self.assertEqual(added, {})
        stamp = Ether(src=MAC["a"], dst=MAC["b"]) / IP(src=IP4["a"], dst=IP4["b"]) / ICMP(type=13, id=0) / marked("stamp")
        got, added = self.attack([stamp], sniff=("b",))
        self.assertEqual(added, {("vm-a", "rule"): 1})
        self.assertNothingArrived(got, "stamp")

    def test_fragments_that_overlap_the_admitted_header_are_dropped(self):
        # IPv6: the guests' af_packet path (DPDK joins a fanout group with the kernel's defrag
        # flag) reassembles IPv4 before the switch could see the fragments.
        eth = Ether(src=MAC["a"], dst=MAC["b"])
        ip6 = IPv6(src="fe80::ff:fe00:1001", dst="fe80::ff:fe00:1101")
        first = eth / ip6 / IPv6ExtHdrFragment(id=4242, m=1, offset=0, nh=6) / \
            Raw(load=bytes(TCP(sport=41000, dport=5001, flags="S")) + b"PALISADE-ATTACK-first")
        # Offset 8: rewrites the sequence numbers, flags and window of the admitted SYN.
        overlap = eth / ip6 / IPv6ExtHdrFragment(id=4242, m=1, offset=1, nh=6) / marked("overlap")
        rest = eth / ip6 / IPv6ExtHdrFragment(id=4242, m=0, offset=5, nh=6) / marked("rest")
        orphan = eth / ip6 / IPv6ExtHdrFragment(id=4343, m=0, offset=5, nh=6) / marked("orphan")
        got, added = self.attack([first, overlap, rest, orphan], sniff=("b",))
        self.assertEqual(added, {("vm-a", "fragment"): 2})
        self.assertEqual(len(carries(got["b"], "first")), 1)
        self.assertEqual(len(carries(got["b"], "rest")), 1)
        self.assertNothingArrived(got, "overlap")
        self.assertNothingArrived(got, "orphan")

    def test_a_new_syn_on_a_live_connection_reaches_the_server(self):
        # a holds a real connection from port 40001; a SYN on the same ports (a client that
        # rebooted and reuses its port) was dropped as tcp-invalid for the entry's 12 hours.
        s = Session(self.guests["a"])
        try:
            self.assertEqual(s.do(f"connect {IP4['b']} 5001 5 40001"), "connected")
            self.assertEqual(s.do("send hello"), "echo hello")
            syn = Ether(src=MAC["a"], dst=MAC["b"]) / IP(src=IP4["a"], dst=IP4["b"]) / \
                TCP(sport=40001, dport=5001, flags="S", seq=123456789)
            got, added = self.attack([syn], sniff=("b",))
            self.assertEqual({k: v for k, v in added.items() if k[1] == "tcp-invalid"}, {})
            syns = [f for f in got["b"] if f[12:14] == b"\x08\x00" and f[23] == 6 and f[34:36] == (40001).to_bytes(2, "big") and f[47] & 0x3f == 0x02]
            self.assertEqual(len(syns), 1, "the SYN reached b")
            self.assertEqual(s.do("send still-here"), "echo still-here", "the old connection is intact")
            # A RST far outside the window (a's own connection, its own address) ends nothing.
            rst = Ether(src=MAC["a"], dst=MAC["b"]) / IP(src=IP4["a"], dst=IP4["b"]) / \
                TCP(sport=40001, dport=5001, flags="R", seq=(123456789 + (1 << 31)) % (1 << 32))
            got, added = self.attack([rst], sniff=("b",))
            self.assertEqual(added, {("vm-a", "tcp-invalid"): 1})
            self.assertEqual(s.do("send after-rst"), "echo after-rst")
        finally:
            s.close()

    def test_a_syn_flood_against_one_port_leaves_the_others_connections_alone(self):
        self.sw.ctl("firewall set vm-b --limit 300")
        c = Session(self.guests["c"])
        try:
            self.assertEqual(c.do(f"connect {IP4['b']} 5001 5"), "connected")
            self.assertEqual(c.do("send before"), "echo before")
            flood = [Ether(src=MAC["a"], dst=MAC["b"]) / IP(src=IP4["a"], dst=IP4["b"]) /
                     TCP(sport=10000 + i, dport=5001, flags="S", seq=i) for i in range(3000)]
            _, added = self.attack(flood, sniff=())
            self.assertGreater(added.get(("vm-b", "state-limit"), 0), 0, added)
            self.assertEqual(c.do("send during"), "echo during", "c's connection to b carries on")
            ports = {p["name"]: p for p in self.sw.ctl("port stats")["ports"]}
            self.assertEqual(ports["vm-c"]["drops"]["tcp-invalid"], 0)
        finally:
            c.close()
            # b's kernel resends the SYN-ACK of each half-open connection whose SYN-ACK or
            # whose RST from a was lost in the flood, for a minute. The resends must meet the
            # flood's entries (a answers them with a RST), not the flush: after it, b's drop
            # rule counts them during the next tests.
            wait_for(lambda: not self.guests["b"].run("ss", "-Htn", "state", "syn-recv").stdout.strip(),
                     timeout=20, what="b's half-open connections to end")
            self.sw.ctl("firewall set vm-b --limit 100000")
            self.sw.ctl("flows flush vm-b --src 10.15.0.1")
            self.sw.ctl("flows flush vm-a --dst 10.15.0.2 --dport 5001")


if __name__ == "__main__":
    unittest.main()
