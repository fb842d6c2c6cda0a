"""Test library for Palisade integration tests: starts real palisaded instances, dpdk-testpmd
peers (virtio-user guests), network namespaces and veth pairs, and always cleans up what it
started (processes by PID, sockets, namespaces, /var/run/dpdk prefixes)."""

import json
import os
import pty
import random
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PALISADE_BUILD", os.path.join(ROOT, "build"))
PALISADED = os.path.join(BUILD, "daemon", "palisaded")
PALISADECTL = os.path.join(BUILD, "cli", "palisadectl")
DPDK_RUN = "/var/run/dpdk"
NCPU = os.cpu_count() or 1
# The switch's worker takes the last CPU; peers (testpmd) run on the first.
SWITCH_CPU = NCPU - 1
PEER_CPU = 0


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class ControlError(Exception):
    pass


def control(sock_path, line, timeout=10.0):
    """Runs one config-language command line through palisadectl (the Cap'n Proto control
    plane) and returns the decoded JSON reply."""
    r = subprocess.run([PALISADECTL, "-s", sock_path, "exec"] + line.split(), capture_output=True,
                       text=True, timeout=timeout)
    if r.returncode not in (0, 1) or not r.stdout.startswith("{"):
        raise ControlError(f"{line!r}: palisadectl exited {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


class Daemon:
    """One palisaded instance, standing for one hypervisor host."""

    def __init__(self, instance, workdir, cores=None, config=None, extra=(), hugepages="off", env=None):
        self.instance = instance
        self.workdir = workdir
        self.socket = os.path.join(workdir, f"{instance}.sock")
        self.state_file = os.path.join(workdir, f"{instance}.state")
        self.state_dir = os.path.join(workdir, f"{instance}.d")
        self.conn_dir = os.path.join(workdir, f"{instance}.conns")
        self.log_dir = os.path.join(workdir, "log")
        self.cores = str(SWITCH_CPU) if cores is None else cores
        self.config = config
        self.extra = list(extra)
        self.hugepages = hugepages
        self.env = env  # added to the environment, e.g. {"PALISADE_FAULT": point} (common/fault_point.h)
        self.proc = None

    @property
    def log_path(self):
        return os.path.join(self.log_dir, f"palisaded-{self.instance}.log")

    def argv(self):
        args = [PALISADED, "--instance", self.instance, "--socket", self.socket,
                "--state-file", self.state_file, "--state-dir", self.state_dir, "--conn-dir", self.conn_dir,
                "--cores", self.cores, "--hugepages", self.hugepages, "--memory", "256",
                "--log-dir", self.log_dir]
        if self.config:
            args += ["--config", self.config]
        return args + self.extra

    def start(self, timeout=20):
        """timeout: for the control socket (a restart compiles the stored rule tables first)."""
        env = {**os.environ, **self.env} if self.env else None
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(lambda: self.proc.poll() is not None or self._answers(), timeout,
                     what=f"palisaded {self.instance} control socket")
        except TimeoutError:
            self.kill()
            raise
        if self.proc.poll() is not None:
            out = self.proc.stdout.read().decode(errors="replace")
            raise RuntimeError(f"palisaded {self.instance} exited {self.proc.returncode}: {out}")
        return self

    def _answers(self):
        try:
            return control(self.socket, "help", timeout=1)["ok"]
        except (OSError, ControlError, ValueError):
            return False

    def ctl(self, line):
        reply = control(self.socket, line)
        if not reply.get("ok"):
            raise ControlError(f"{line!r}: {reply.get('error')}")
        return reply

    def try_ctl(self, line):
        return control(self.socket, line)

    def add_protected_port(self, name, sock, vm, mac, ip, client=False):
        """A VM's vhost-user port bound to its MAC and address, behind port security (slot 1)
        and the stateful firewall (slot 2), which stays closed until rules load. client: the
        switch connects to the guest's socket (which then outlives a restart of the switch)."""
        self.ctl(f"port add {name} --vhost-user {sock}{' --client' if client else ''} --vm {vm} --mac {mac} --ip {ip}")
        self.ctl(f"filter attach {name} --slot 1 --agent swsec")
        self.ctl(f"filter attach {name} --slot 2 --agent sfw")

    def cli(self, *args, json_out=False, stdin=None):
        """Runs palisadectl against this instance; returns (exit status, stdout, stderr)."""
        argv = [PALISADECTL, "-s", self.socket] + (["--json"] if json_out else []) + list(args)
        r = subprocess.run(argv, capture_output=True, text=True, input=stdin, timeout=60)
        return r.returncode, r.stdout, r.stderr

    def port(self, name):
        return self.ctl(f"port stats {name}")["ports"][0]

    def ports(self):
        return [p["name"] for p in self.ctl("port list")["ports"]]

    def migration(self, port, direction="out"):
        """This switch's view of the migration of `port` out of it, or into it (direction "in"),
        from palisadectl migrate list; None if there is none."""
        rc, out, err = self.cli("migrate", "list", json_out=True)
        if rc != 0:
            raise ControlError(err)
        for m in json.loads(out).get("migrations", []):
            if m["port"] == port and m["direction"] == direction:
                return m
        return None

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        rc = self.proc.returncode
        self.proc.stdout.close()
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
        shutil.rmtree(os.path.join(DPDK_RUN, f"palisade-{self.instance}"), ignore_errors=True)

    def packet_log(self):
        try:
            with open(os.path.join(self.log_dir, f"packets-{self.instance}.log")) as f:
                return f.read()
        except OSError:
            return ""

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""


_PROMPT = b"testpmd> "


class Testpmd:
    """An interactive dpdk-testpmd on a pty (so its output is unbuffered): the guests.

    vdevs: list of --vdev arguments, e.g. net_virtio_user0,path=SOCK. Port ids follow that order.
    """

    def __init__(self, prefix, vdevs, args=(), cpu=PEER_CPU, mbufs=8192, lcores=None):
        self.prefix = prefix
        self.vdevs = list(vdevs)
        lcores = lcores or f"0@{cpu},1@{cpu}"
        argv = ["dpdk-testpmd", "--no-huge", "-m", "1024", "--no-pci", "--file-prefix", prefix,
                f"--lcores={lcores}", "--log-level=lib.eal:warning"]
        for v in self.vdevs:
            argv += ["--vdev", v]
        argv += ["--", "-i", f"--total-num-mbufs={mbufs}", "--nb-cores=1"] + list(args)
        self.argv = argv
        self.output = b""
        pid, fd = pty.fork()
        if pid == 0:
            os.execvp(argv[0], argv)
        self.pid, self.fd = pid, fd
        self._read_until(_PROMPT, 60)

    def _read_until(self, marker, timeout):
        start = len(self.output)
        deadline = time.monotonic() + timeout
        while marker not in self.output[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"testpmd: no {marker!r}; output: {self.output[-2000:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise RuntimeError(f"testpmd exited; output: {self.output[-3000:]!r}")
                self.output += chunk
        return self.output[start:].decode(errors="replace")

    def cmd(self, line, timeout=30):
        os.write(self.fd, (line + "\n").encode())
        out = self._read_until(_PROMPT, timeout)
        return out

    def port_stats(self):
        """{port: {"rx": n, "tx": n}} from 'show port stats all' (cumulative)."""
        out = self.cmd("show port stats all")
        stats = {}
        for block in re.split(r"#+ NIC statistics for port", out)[1:]:
            port = int(re.match(r"\s*(\d+)", block).group(1))
            rx = int(re.search(r"RX-packets:\s*(\d+)", block).group(1))
            tx = int(re.search(r"TX-packets:\s*(\d+)", block).group(1))
            stats[port] = {"rx": rx, "tx": tx}
        return stats

    def mac(self, port):
        out = self.cmd(f"show port info {port}")
        return re.search(r"MAC address: ([0-9A-Fa-f:]{17})", out).group(1).lower()

    def close(self):
        if self.pid is None:
            return
        try:
            os.write(self.fd, b"quit\n")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    break
                try:
                    select.select([self.fd], [], [], 0.2)
                    os.read(self.fd, 65536)
                except OSError:
                    pass
            else:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        except (OSError, ChildProcessError):
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.pid = None
        shutil.rmtree(os.path.join(DPDK_RUN, self.prefix), ignore_errors=True)


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, **kw)


class Netns:
    """A network namespace standing for a guest's network stack."""

    def __init__(self, name):
        self.name = name
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "netns", "add", name)
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *args, check=True, **kw):
        return sh("ip", "netns", "exec", self.name, *args, check=check, **kw)

    def popen(self, *args, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name] + list(args), **kw)

    def delete(self):
        sh("ip", "netns", "del", self.name, check=False)


_next_ifindex = [random.randrange(1, 20000)]


def _ifindex():
    """An interface index for a link we create: n << 16 | k << 12 | 7, k cycling 1..15.

    DPDK's af_packet driver joins each socket to the fanout group (pid ^ ifindex) & 0xffff, and
    a group cannot span two interfaces: a collision fails the probe (EPERM). With consecutive
    kernel ifindexes, two processes with nearby pids collide often. Here the links one process
    binds differ in k, and two processes collide only if their pids differ by a multiple of
    4096 with equal low 12 bits."""
    _next_ifindex[0] += 1
    n = _next_ifindex[0]
    return str((n << 16) | ((n % 15 + 1) << 12) | 7)


def veth(a, b, netns_b=None, mac_b=None):
    """Creates a veth pair a<->b with b optionally moved into a namespace; both links up."""
    sh("ip", "link", "del", a, check=False)
    for attempt in range(20):
        r = sh("ip", "link", "add", a, "index", _ifindex(), "type", "veth", "peer", "name", b,
               "index", _ifindex(), check=attempt == 19)
        if r.returncode == 0:
            break
    if mac_b:
        sh("ip", "link", "set", b, "address", mac_b)
    if netns_b:
        sh("ip", "link", "set", b, "netns", netns_b.name)
        netns_b.run("ip", "link", "set", b, "up")
    else:
        sh("ip", "link", "set", b, "up")
    sh("ip", "link", "set", a, "up")
    # The host side only carries frames for DPDK's af_packet: keep the kernel quiet on it.
    sh("sysctl", "-qw", f"net.ipv6.conf.{a}.disable_ipv6=1", check=False)


def del_link(name):
    sh("ip", "link", "del", name, check=False)


class Workdir:
    def __init__(self, tag):
        self.path = tempfile.mkdtemp(prefix=f"palisade-{tag}-")

    def join(self, *p):
        return os.path.join(self.path, *p)

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class NamespaceGuests:
    """Guests with real Linux network stacks behind vhost-user ports, in seconds.

    Each guest is a network namespace holding one end of a veth pair; one dpdk-testpmd in io
    mode forwards between the veth's host end (net_af_packet) and a virtio-user port attached
    to a switch's vhost-user socket. guests: list of (name, socket, ip/len). Port ids in testpmd
    are ordered virtio0, afpacket0, virtio1, afpacket1, ... so the paired topology pairs them.
    """

    def __init__(self, prefix, guests, vhost_server=False, mac_index=0, impair=None):
        """vhost_server: the guests own the vhost-user sockets (the switch's ports are --client),
        as QEMU with server=on: the switch can restart under them. Guest i's MAC is
        02:00:00:00:(0x10 + mac_index + i):01; groups on one network need distinct mac_index.
        impair: {guest: Relay arguments}: that guest's frames cross an impairing relay
        (tests/lib/impair.py) between its veth and a second veth pair that testpmd reads."""
        from impair import Relay
        self.prefix = prefix
        self.ns = {}
        self.links = []
        self.dpdk_links = []  # what testpmd reads for each guest: its veth, or the relay's
        self.relays = {}
        self.guests = list(guests)
        self.vhost_server = vhost_server
        vdevs = []
        for i, (name, sock, addr) in enumerate(guests):
            ns = Netns(f"{prefix}-{name}")
            host, inner = f"{prefix[:6]}{i}h", f"{prefix[:6]}{i}g"
            veth(host, inner, netns_b=ns, mac_b=f"02:00:00:00:{i + 0x10 + mac_index:02x}:01")
            # Veth leaves checksums to be filled in later; af_packet would carry them unfilled.
            ns.run("ethtool", "-K", inner, "tx", "off")
            # IPv4 only: keeps router solicitations and ND out of the tests' counters.
            ns.run("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            ns.run("ip", "addr", "add", addr, "dev", inner)
            ns.ip = addr.split("/")[0]
            ns.dev = inner
            self.ns[name] = ns
            self.links.append(host)
            dpdk_link = host
            if impair and name in impair:
                relay, dpdk_link = f"{prefix[:6]}{i}r", f"{prefix[:6]}{i}d"
                veth(relay, dpdk_link)
                sh("sysctl", "-qw", f"net.ipv6.conf.{dpdk_link}.disable_ipv6=1", check=False)
                self.links.append(relay)
                self.relays[name] = Relay(host, relay, **impair[name])
            self.dpdk_links.append(dpdk_link)
            vdevs.append(f"net_virtio_user{i},path={sock},queue_size=1024" + (",server=1" if vhost_server else ""))
            vdevs.append(f"net_af_packet{i},iface={dpdk_link}")
        self.tp = Testpmd(prefix, vdevs, ["--forward-mode=io", "--port-topology=paired",
                                          "--auto-start"])

    def _vdevs(self):
        vdevs = []
        for i, (name, sock, addr) in enumerate(self.guests):
            vdevs.append(f"net_virtio_user{i},path={sock},queue_size=1024" +
                         (",server=1" if self.vhost_server else ""))
            vdevs.append(f"net_af_packet{i},iface={self.dpdk_links[i]}")
        return vdevs

    def move(self, name, socket_path):
        """The guest `name` leaves its switch port for the vhost-user socket at socket_path, as a
        VM moving to another host: its network stack (the namespace) and its state stay."""
        self.tp.close()
        self.guests = [(n, socket_path if n == name else s, a) for n, s, a in self.guests]
        self.tp = Testpmd(self.prefix, self._vdevs(), ["--forward-mode=io", "--port-topology=paired",
                                                       "--auto-start"])

    def __getitem__(self, name):
        return self.ns[name]

    def relay_stats(self, name):
        """Stops guest `name`'s impairing relay; returns what it did to the frames."""
        return self.relays.pop(name).stop()

    def close(self):
        self.tp.close()
        for relay in self.relays.values():
            relay.stop()
        for ns in self.ns.values():
            ns.delete()
        for link in self.links:
            del_link(link)


def server_mode_guests(prefix, guests, timeout=60, **kwargs):
    """NamespaceGuests that own their vhost-user sockets (the switch's ports are --client, so the
    switch can restart under them). testpmd's virtio-user in server mode waits at start until
    the switch connects: it starts on a thread, held to `timeout` seconds."""
    started = {}
    t = threading.Thread(target=lambda: started.setdefault(
        "g", NamespaceGuests(prefix, guests, vhost_server=True, **kwargs)))
    t.start()
    t.join(timeout)
    if "g" not in started:
        raise TimeoutError(f"guests {prefix} not attached within {timeout}s")
    return started["g"]


TCP_SINK = r"""
import hashlib, socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(1)
print("listening", flush=True)
conn, _ = srv.accept(); h = hashlib.sha256(); n = 0
while True:
    data = conn.recv(65536)
    if not data:
        break
    h.update(data); n += len(data)
conn.sendall(f"{n} {h.hexdigest()}".encode()); conn.close()
"""

TCP_SOURCE = r"""
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[3]))
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.sendall(data); s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
print(reply.decode(), len(data), hashlib.sha256(data).hexdigest())
"""


def tcp_transfer(server_ns, client_ns, port, size):
    """Streams `size` random bytes over TCP from client_ns to server_ns. Returns
    (bytes the server got, its sha256, bytes sent, their sha256)."""
    py = "/usr/bin/python3"
    srv = server_ns.popen(py, "-c", TCP_SINK, str(port), stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "listening"
        out = client_ns.run(py, "-c", TCP_SOURCE, server_ns.ip, str(port), str(size),
                            timeout=120).stdout.split()
        srv.wait(30)
        return int(out[0]), out[1], int(out[2]), out[3]
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
        srv.stdout.close()


ECHO_SERVER = r"""
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(16)
print("listening", flush=True)
def serve(c):
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            c.sendall(data)
    except OSError:
        pass  # reset by the firewall or the peer
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# Reads lines from stdin: "connect HOST PORT TIMEOUT", "send TEXT", "timeout SECONDS" (for
# replies), "close"; answers one line each.
SESSION_CLIENT = r"""
import socket, sys, time
s = None
for line in sys.stdin:
    cmd = line.split()
    try:
        if cmd[0] == "connect":
            start = time.monotonic()
            source = ("", int(cmd[4])) if len(cmd) > 4 else None  # connect IP PORT TIMEOUT [SPORT]
            s = socket.create_connection((cmd[1], int(cmd[2])), timeout=float(cmd[3]),
                                         source_address=source)
            s.settimeout(15)  # a path that moved may need a few retransmissions
            print("connected", flush=True)
        elif cmd[0] == "send":
            s.sendall(cmd[1].encode())
            print("echo " + s.recv(4096).decode(), flush=True)
        elif cmd[0] == "timeout":
            s.settimeout(float(cmd[1]))
            print("ok", flush=True)
        elif cmd[0] == "close":
            s.close()
            print("closed", flush=True)
    except ConnectionRefusedError:
        print("refused %.2f" % (time.monotonic() - start), flush=True)
    except (socket.timeout, TimeoutError):
        print("timeout", flush=True)
    except OSError as e:
        print("error " + type(e).__name__ + " " + str(e), flush=True)
"""


class Session:
    """A TCP client in a namespace that the test drives line by line."""

    def __init__(self, ns):
        self.proc = ns.popen("/usr/bin/python3", "-c", SESSION_CLIENT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)

    def do(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


def stop_process(proc):
    """Kills a helper process started with a stdout pipe and reaps it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if proc.stdout:
        proc.stdout.close()


def stop_all(sw, work, guests, server):
    """Takes down a test class's setup, last built first: the guest's server, the guests, the
    switch, the work directory. Returns the switch's exit code."""
    stop_process(server)
    guests.close()
    rc = sw.stop()
    work.remove()
    return rc


def echo_server(ns, port):
    srv = ns.popen("/usr/bin/python3", "-c", ECHO_SERVER, str(port), stdout=subprocess.PIPE, text=True)
    assert srv.stdout.readline().strip() == "listening"
    return srv


def ping_until_answered(ns, ip, tries=20):
    """The first ping can take a second (ARP, MAC learning); retries until one is answered."""
    for _ in range(tries):
        if ns.run("ping", "-c", "1", "-W", "1", ip, check=False).returncode == 0:
            return True
    return False


def make_certs(d):
    """A CA, a server certificate for localhost, client certificates from that CA (CN=client,
    CN=viewer), and a client certificate from another CA."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    for ca in ("ca", "rogue-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
            "-keyout", f"{ca}.key", "-out", f"{ca}.pem")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, ca in (("server", "ca"), ("client", "ca"), ("viewer", "ca"), ("rogue", "rogue-ca")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem")
