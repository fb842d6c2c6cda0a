"""A port's filter state moves to another switch (palisadectl migrate): two palisaded instances
as two hosts joined by uplinks on a veth pair; guest A holds a TCP connection to guest B under
a `strict` rule (no pickup of mid-stream segments); A's port moves to B's host and A's
attachment follows it; the same connection carries on with its flow id and counters.
(The QEMU live-migration cut-over with its delta is not here yet.)"""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (Daemon, NamespaceGuests, Session, Workdir, del_link,  # noqa: E402
                              echo_server, stop_process, veth, wait_for)

RULES = """ruleset web {
  rule 10 at 1 out protocol tcp strict from any to any port 22 accept with log;
  rule 11 at 2 inout protocol any from any to any drop;
}
"""


class MigrationTest(unittest.TestCase):
    def test_connection_follows_the_port_to_another_switch(self):
        work = Workdir("mig")
        veth("pmig0", "pmig1")
        h1 = Daemon("mig1", work.path).start()
        h2 = Daemon("mig2", work.path).start()
        a = b = server = session = None
        try:
            h1.ctl("port add uplink --uplink net_af_packet_m1,iface=pmig0")
            h2.ctl("port add uplink --uplink net_af_packet_m2,iface=pmig1")
            h1.ctl(f"port add vm-a --vhost-user {work.join('a.sock')} --vm web-01 --ip 10.16.0.1")
            h2.ctl(f"port add vm-b --vhost-user {work.join('b.sock')}")
            rules = work.join("web.rules")
            with open(rules, "w") as f:
                f.write(RULES)
            h1.ctl("filter attach vm-a --slot 2 --agent sfw")
            h1.ctl(f"rules load vm-a {rules}")
            b = NamespaceGuests("pmb", [("b", work.join("b.sock"), "10.16.0.2/24")])
            a = NamespaceGuests("pma", [("a", work.join("a.sock"), "10.16.0.1/24")])
            server = echo_server(b["b"], 22)
            session = Session(a["a"])
            self.assertEqual(session.do("connect 10.16.0.2 22 10"), "connected")
            self.assertEqual(session.do("send one"), "echo one")
            before = h1.ctl("flows show vm-a --dport 22")["flows"][0]

            rc, out, err = h1.cli("migrate", "vm-a", "--to", h2.socket, "--socket", work.join("a2.sock"))
            self.assertEqual(rc, 0, err)
            self.assertIn("migrated vm-a", out)
            self.assertNotIn("vm-a", [p["name"] for p in h1.ctl("port list")["ports"]])
            moved = h2.ctl("flows show vm-a --dport 22")["flows"]
            self.assertEqual(len(moved), 1)
            self.assertEqual(moved[0]["flow_id"], before["flow_id"])
            self.assertEqual(moved[0]["state"], "EST")
            self.assertIn("rule 10 at 1", h2.ctl("rules show vm-a")["text"])

            a.move("a", work.join("a2.sock"))  # the guest resumes on the other host
            wait_for(lambda: h2.port("vm-a")["link"], 30, what="A attached to the second switch")
            self.assertEqual(session.do("send two"), "echo two", "the same connection, no new handshake")
            after = h2.ctl("flows show vm-a --dport 22")["flows"][0]
            self.assertEqual(after["flow_id"], before["flow_id"])
            self.assertGreater(after["orig_pkts"], before["orig_pkts"], "counters continue")

            rc, out, err = h2.cli("migrate", "nosuch", "--to", h1.socket)
            self.assertEqual(rc, 1)
            self.assertIn("no port 'nosuch'", err)
        finally:
            if session:
                session.close()
            if server:
                stop_process(server)
            for g in (a, b):
                if g:
                    g.close()
            rc1, rc2 = h1.stop(), h2.stop()
            del_link("pmig0")
            work.remove()
        self.assertEqual((rc1, rc2), (0, 0))


if __name__ == "__main__":
    unittest.main(verbosity=2)
