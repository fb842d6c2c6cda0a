"""A real etcd cluster on loopback for tests: N members (Debian's etcd-server 3.4), each with
its own data directory and client and peer ports, started, stopped, killed and restarted by
the test, and always removed at the end. With tls (a directory holding ca.pem, server.pem,
server.key, client.pem and client.key, as palisade_testlib.make_certs writes them) members
serve clients over TLS and ask for a client certificate from that CA."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdCluster:
    def __init__(self, members=3, tag="etcd", tls=None):
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.dir = tempfile.mkdtemp(prefix=f"palisade-{tag}-")
        self.names = [f"m{i}" for i in range(members)]
        self.client = {n: free_port() for n in self.names}
        self.peer = {n: free_port() for n in self.names}
        self.procs = {}
        self.initial = ",".join(f"{n}=http://127.0.0.1:{self.peer[n]}" for n in self.names)
        for n in self.names:
            self.start(n, new=True)
        self.wait_healthy()

    def endpoints(self, names=None):
        return ",".join(f"127.0.0.1:{self.client[n]}" for n in (names or self.names))

    def start(self, name, new=False):
        log = open(os.path.join(self.dir, f"{name}.log"), "a")
        self.procs[name] = subprocess.Popen(
            [ETCD, "--name", name, "--data-dir", os.path.join(self.dir, name),
             "--listen-client-urls", f"{self.scheme}://127.0.0.1:{self.client[name]}",
             "--advertise-client-urls", f"{self.scheme}://127.0.0.1:{self.client[name]}",
             "--listen-peer-urls", f"http://127.0.0.1:{self.peer[name]}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[name]}",
             "--initial-cluster", self.initial, "--initial-cluster-state", "new",
             "--initial-cluster-token", os.path.basename(self.dir),
             "--heartbeat-interval", "100", "--election-timeout", "1000", "--logger", "zap",
             "--log-outputs", "stderr"] + self.server_tls(),
            stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def server_tls(self):
        if not self.tls:
            return []
        j = lambda f: os.path.join(self.tls, f)
        return ["--cert-file", j("server.pem"), "--key-file", j("server.key"), "--client-cert-auth",
                "--trusted-ca-file", j("ca.pem")]

    def client_tls(self):
        """etcdctl's flags for the client certificate."""
        if not self.tls:
            return []
        j = lambda f: os.path.join(self.tls, f)
        return ["--cacert", j("ca.pem"), "--cert", j("client.pem"), "--key", j("client.key")]

    def stop(self, name, kill=False):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            (p.kill if kill else p.terminate)()
            p.wait(20)

    def ctl(self, *args, names=None, check=True):
        env = dict(os.environ, ETCDCTL_API="3")
        r = subprocess.run([ETCDCTL, "--endpoints", self.endpoints(names), "--command-timeout=5s"] + self.client_tls() + list(args),
                           capture_output=True, text=True, env=env, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def revision(self, names=None):
        import json
        out = self.ctl("endpoint", "status", "-w", "json", names=names)
        return max(e["Status"]["header"]["revision"] for e in json.loads(out))

    def wait_healthy(self, names=None, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run([ETCDCTL, "--endpoints", self.endpoints(names), "endpoint", "health"] + self.client_tls(),
                               capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"))
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"etcd not healthy: {r.stderr.strip()}")
            time.sleep(0.2)

    def close(self):
        for n in list(self.procs):
            self.stop(n, kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)
