"""Policy from an etcd that speaks only TLS and asks for client certificates: one member on
loopback, one palisaded host with --etcd-cert/--etcd-key/--etcd-ca, palisadectl --etcd with the
same flags. The policy written over TLS reaches the host's port; a client without a certificate,
or with one from another CA, is refused and writes nothing."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from etcd import EtcdCluster  # noqa: E402
from palisade_testlib import PALISADECTL, Daemon, Workdir, make_certs, wait_for  # noqa: E402

POLICY = """ruleset db {
  rule 10 at 1 in protocol tcp from any to any port 5432 accept;
  rule 11 at 2 inout protocol any from any to any drop;
}
"""


class ClusterTlsTest(unittest.TestCase):
    def test_policy_over_tls(self):
        work = Workdir("cluster-tls")
        make_certs(work.path)
        etcd = EtcdCluster(1, tag="tls-etcd", tls=work.path)
        endpoints = "https://" + etcd.endpoints()
        tls = lambda name: ["--etcd-cert", work.join(f"{name}.pem"), "--etcd-key", work.join(f"{name}.key"),
                            "--etcd-ca", work.join("ca.pem")]
        host = Daemon("cltls", work.path, extra=["--etcd", endpoints, "--host", "host1", "--cluster-snapshot",
                                                 work.join("h.cluster")] + tls("client"))

        def ctl(*args, certs="client", stdin=None):
            flags = tls(certs) if certs else []
            return subprocess.run([PALISADECTL, "--etcd", endpoints] + flags + list(args), capture_output=True,
                                  text=True, input=stdin, timeout=60)
        try:
            host.start()
            host.ctl(f"port add vm-db --vhost-user {work.join('db.sock')} --vm db-01 --ip 10.19.0.2")
            r = ctl("policy", "apply", "db-in", "--applied-to", "vm:db-01", "-", stdin=POLICY)
            self.assertEqual(r.returncode, 0, r.stderr)
            wait_for(lambda: "rule 10 " in host.try_ctl("rules show vm-db").get("text", ""), 20, what="the policy over TLS")
            rc, out, err = host.cli("cluster", "status")
            self.assertEqual(rc, 0, err)
            self.assertIn("connected: yes", out)
            wait_for(lambda: "db-01" in ctl("vm", "list").stdout, 10, what="host 1 publishing over TLS")
            self.assertRegex(ctl("vm", "list").stdout, r"db-01\s+host1\s+10\.19\.0\.2")

            # Without a certificate, and with one from another CA: refused, nothing written.
            for certs in (None, "rogue"):
                r = ctl("policy", "apply", "other", "--applied-to", "vm:db-01", "-", certs=certs, stdin=POLICY)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertIn("the TLS handshake failed", r.stderr)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
            self.assertNotIn("other", ctl("policy", "list").stdout)
        finally:
            host.stop()
            etcd.close()
            work.remove()


if __name__ == "__main__":
    unittest.main()
