"""A switch restart (or upgrade) under running guests: palisaded saves its ports' filter state on
a clean stop and restores it at start, so an established connection survives. The guests own
their vhost-user sockets (client-mode ports) and are not restarted."""

import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (Daemon, Session, Workdir, echo_server, server_mode_guests,  # noqa: E402
                              stop_process, wait_for)

# `strict`: a segment in the middle of a connection opens nothing, so after the restart only a
# restored connection entry can carry the session on.
RULES = """ruleset db {
  rule 10 at 1 in protocol tcp strict from any to any port 22 accept with log;
  rule 11 at 2 inout protocol any from any to any drop;
}
"""


class RestartTest(unittest.TestCase):
    def test_established_connection_survives_a_switch_restart(self):
        work = Workdir("restart")
        rules = work.join("db.rules")
        with open(rules, "w") as f:
            f.write(RULES)
        conf = work.join("palisade.conf")
        with open(conf, "w") as f:
            f.write(f"port add vm-a --vhost-user {work.join('a.sock')} --client\n")
            f.write(f"port add vm-b --vhost-user {work.join('b.sock')} --client\n")
        sw = Daemon("restart", work.path, config=conf)
        guests = server = session = None
        try:
            sw.start()
            sw.ctl("filter attach vm-b --slot 2 --agent sfw")
            sw.ctl(f"rules load vm-b {rules}")
            guests = server_mode_guests("prst", [("a", work.join("a.sock"), "10.15.0.1/24"),
                                                 ("b", work.join("b.sock"), "10.15.0.2/24")])
            wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]), 30)
            server = echo_server(guests["b"], 22)
            session = Session(guests["a"])
            self.assertEqual(session.do(f"connect {guests['b'].ip} 22 5"), "connected")
            self.assertEqual(session.do("send before"), "echo before")
            flow = sw.ctl("flows show vm-b --dport 22")["flows"][0]

            self.assertEqual(sw.stop(), 0)
            self.assertTrue(os.path.exists(sw.state_file), "the state was saved")
            sw.start()
            self.assertIn("restored 2 port(s) and 1 connection(s)", sw.log())
            wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]), 30,
                     what="the switch reconnected to the guests")
            restored = sw.ctl("flows show vm-b --dport 22")["flows"]
            self.assertEqual(len(restored), 1)
            self.assertEqual(restored[0]["flow_id"], flow["flow_id"], "the same flow, not a new one")
            self.assertEqual(restored[0]["state"], "EST")
            self.assertEqual(sw.ctl("rules show vm-b")["text"].count("rule 10 "), 1)

            self.assertEqual(session.do("send after"), "echo after", "the connection carried on")
            after = sw.ctl("flows show vm-b --dport 22")["flows"][0]
            self.assertGreater(after["orig_pkts"], flow["orig_pkts"], "counters continue")
            # The control: restarted without its saved connections (the configuration is kept),
            # the switch has no entry for the connection, and the strict rule refuses its
            # mid-stream segments.
            self.assertEqual(sw.stop(), 0)
            os.unlink(sw.state_file)
            sw.start()
            wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]), 30)
            self.assertEqual(sw.ctl("rules show vm-b")["text"].count("rule 10 "), 1)
            self.assertEqual(sw.ctl("flows show vm-b --dport 22")["flows"], [])
            session.do("timeout 3")
            self.assertNotEqual(session.do("send lost"), "echo lost")
            self.assertGreater(sw.port("vm-b")["drops"]["tcp-invalid"], 0)
        finally:
            if session:
                session.close()
            if server:
                stop_process(server)
            if guests:
                guests.close()
            sw.stop()
            work.remove()


if __name__ == "__main__":
    unittest.main(verbosity=2)
