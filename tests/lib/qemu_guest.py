"""QEMU guests for end-to-end tests: boots the cached test image (guest_image.py) under TCG with
its NIC on a palisaded vhost-user port, and drives its console (tests/guest/console).

Facts this relies on (QEMU 7.2, TCG): guest memory must be shared with the switch
(memory-backend-memfd, share=on); virtio-net-pci needs vectors=0 with vhost-user under TCG
(with MSI-X QEMU crashes when the driver starts the device; INTx works).

Live migration (migrate_incoming, migrate, wait_migration, migrate_cancel): the source and the
destination QEMU (incoming=True, i.e. -incoming defer) share the guest's RAM through one file on
tmpfs (mem_path: memory-backend-file, share=on, which the vhost-user backend needs anyway) and
both set the x-ignore-shared capability, so RAM is not copied: pre-copy of RAM under QEMU 7.2
TCG corrupts guests now and then. Device state still migrates, so the vhost-user hand-over (the
source stops its device, the destination starts its own on its own socket) happens in full.
QEMU 7.2's x-ignore-shared skips every shared RAM block, memfd included: it is refused here
without mem_path. The migration stream goes over a unix socket (uri "unix:PATH")."""

import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import guest_image
from palisade_testlib import BUILD, wait_for

QEMU = shutil.which("qemu-system-x86_64")


def image():
    return guest_image.build(os.path.join(BUILD, "guest"))


class QemuGuest:
    """One VM. mode "server": the switch owns the vhost-user socket (QEMU connects);
    mode "client": QEMU owns it (server=on) and the switch's port connects to it."""

    _ids = itertools.count(1)
    # mem_path -> the started QemuGuest objects mapping it (a migration source and its
    # destination share one file); the last of them to stop removes the file.
    _mem_users = {}
    # QEMU's default max-bandwidth, which migrate() sets when it is given none.
    DEFAULT_MAX_BANDWIDTH = 32 << 20

    def __init__(self, name, workdir, vhost_socket, mac, ip, mode="server", listen=(), memory=256,
                 mem_path=None, incoming=False):
        """mem_path: back the guest's RAM with this file (share=on; put it on tmpfs, /dev/shm)
        instead of a memfd, so that a migration destination can map the same RAM.
        incoming: start as a migration destination (-incoming defer); the guest runs once a
        migration into it (migrate_incoming here, then migrate on the source) has completed.
        A destination takes the source's memory, mac, ip, listen (and mem_path, for a shared
        migration) with a name (console and QMP sockets) and vhost_socket of its own."""
        self.name = name
        self.workdir = workdir
        self.vhost_socket = vhost_socket
        self.mac = mac
        self.ip = ip.split("/")[0]
        self.cidr = ip
        self.mode = mode
        self.listen = list(listen)
        self.memory = memory
        self.mem_path = mem_path
        self.incoming = incoming
        self.console_path = os.path.join(workdir, f"{name}.console")
        self.qmp_path = os.path.join(workdir, f"{name}.qmp")
        self.log_path = os.path.join(workdir, f"{name}.qemu.log")
        self.migration_sockets = []  # from migrate_incoming's unix: uris; stop() removes them
        self.migration_polls = []  # wait_migration's last polls
        self.proc = None
        self.sock = None
        self.buf = b""

    def kernel_cmdline(self):
        """The test image's kernel command line: its address and listeners (tests/guest/init)."""
        append = f"console=ttyS0 quiet loglevel=1 panic=-1 palisade.ip={self.cidr}"
        if self.listen:
            append += " palisade.listen=" + ",".join(str(p) for p in self.listen)
        return append

    def argv(self):
        kernel, initrd = image()
        append = self.kernel_cmdline()
        server = ",server=on,wait=off" if self.mode == "client" else ""
        return [QEMU, "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "1",
                "-m", f"{self.memory}M", "-nodefaults", "-display", "none", "-no-reboot",
                "-object", self._memory_backend(),
                "-numa", "node,memdev=mem",
                "-kernel", kernel, "-initrd", initrd, "-append", append,
                "-chardev", f"socket,id=ser0,path={self.console_path},server=on,wait=off",
                "-serial", "chardev:ser0",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-chardev", f"socket,id=nic0,path={self.vhost_socket}{server}",
                "-netdev", "vhost-user,id=net0,chardev=nic0",
                "-device", f"virtio-net-pci,netdev=net0,mac={self.mac},vectors=0"] + \
            (["-incoming", "defer"] if self.incoming else [])

    def _memory_backend(self):
        if self.mem_path:
            return f"memory-backend-file,id=mem,size={self.memory}M,mem-path={self.mem_path},share=on"
        return f"memory-backend-memfd,id=mem,size={self.memory}M,share=on"

    def start(self):
        if self.mem_path:
            QemuGuest._mem_users.setdefault(self.mem_path, set()).add(self)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        return self.connect_console()

    def connect_console(self, timeout=20):
        """Connects to the guest's serial console at console_path, which its QEMU listens on:
        the one start() runs, or one that another manager (libvirt) started with
        <serial type='unix'><source mode='bind' path=console_path/>."""
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.console_path):
            if (self.proc and self.proc.poll() is not None) or time.monotonic() > deadline:
                if not self.proc:
                    raise RuntimeError(f"qemu {self.name}: no console at {self.console_path} after {timeout}s")
                with open(self.log_path) as log:
                    raise RuntimeError(f"qemu {self.name} did not start: {log.read()}")
            time.sleep(0.05)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.console_path)
        return self

    def _read_until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.buf)
            if m:
                out = self.buf[:m.start()]
                self.buf = self.buf[m.end():]
                return out, m
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc and self.proc.poll() is not None):
                raise TimeoutError(f"guest {self.name}: no {pattern!r} after {timeout}s; "
                                   f"console: {self.buf[-1500:]!r}")
            self.sock.settimeout(min(left, 1.0))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                raise RuntimeError(f"guest {self.name}: console closed")
            self.buf += chunk

    def wait_ready(self, timeout=120):
        """Waits for the guest's console. A migration destination never prints the ready marker
        (the source did): for it, this waits until the incoming migration has completed and the
        console answers a command."""
        if self.incoming:
            wait_for(lambda: self.run_state() == "running", timeout, 0.05,
                     what=f"guest {self.name} running after its incoming migration")
            rc, _ = self.run("true", timeout=timeout)
            if rc != 0:
                raise RuntimeError(f"guest {self.name}: console answered {rc}")
            return self
        self._read_until(rb"PALISADE-GUEST-READY\r?\n", timeout)
        return self

    def run(self, cmd, timeout=60):
        """Runs a shell command in the guest; returns (exit status, output)."""
        cid = next(self._ids)
        self.sock.sendall(f"{cid} {cmd}\n".encode())
        out, m = self._read_until(rb"<<<%d (\d+)>>>\r?\n" % cid, timeout)
        return int(m.group(1)), out.decode(errors="replace").replace("\r", "")

    def ping(self, ip, tries=10):
        """The first ping after boot can take a second (ARP, learning): retries."""
        for _ in range(tries):
            rc, _ = self.run(f"ping -c 1 -W 2 {ip}", timeout=30)
            if rc == 0:
                return True
        return False

    def qmp(self, command, **arguments):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(self.qmp_path)
            f = s.makefile("rw")
            json.loads(f.readline())  # greeting
            f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
            f.flush()
            json.loads(f.readline())
            f.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply or "error" in reply:
                    return reply

    def _qmp_ok(self, command, **arguments):
        reply = self.qmp(command, **arguments)
        if "error" in reply:
            raise RuntimeError(f"qemu {self.name}: {command}: {reply['error'].get('desc', reply['error'])}")
        return reply["return"]

    def run_state(self):
        """The VM's run state (query-status): "running", "inmigrate", "postmigrate", ..."""
        return self._qmp_ok("query-status")["status"]

    def query_migrate(self):
        return self._qmp_ok("query-migrate")

    def _set_capabilities(self, shared, capabilities):
        if shared and not self.mem_path:
            # QEMU 7.2 would skip the memfd RAM as well: the destination would get none of it.
            raise ValueError(f"guest {self.name}: a shared migration needs mem_path")
        caps = {"x-ignore-shared": bool(shared)}
        caps.update(capabilities or {})
        self._qmp_ok("migrate-set-capabilities",
                     capabilities=[{"capability": c, "state": bool(v)} for c, v in caps.items()])

    def migrate_incoming(self, uri, shared=None, capabilities=None):
        """On a destination (incoming=True): sets the migration capabilities, which must match
        the source's (x-ignore-shared when shared; shared defaults to whether this guest has a
        mem_path; capabilities: more, {name: bool}), and listens on uri ("unix:PATH") for the
        source's migrate()."""
        if not self.incoming:
            raise RuntimeError(f"guest {self.name} was not started with incoming=True")
        self._set_capabilities(bool(self.mem_path) if shared is None else shared, capabilities)
        if uri.startswith("unix:"):
            self.migration_sockets.append(uri[len("unix:"):])
        self._qmp_ok("migrate-incoming", uri=uri)

    def migrate(self, uri, shared=True, max_bandwidth=None, downtime_limit=None, capabilities=None):
        """On the source: sets the capabilities (x-ignore-shared = shared: RAM is not copied, the
        destination maps the same mem_path; capabilities: more, {name: bool}) and the
        parameters (max_bandwidth in bytes/s, QEMU's default 32 MiB/s when None; downtime_limit
        in ms when given), then starts migrating to uri, where the destination's
        migrate_incoming listens. Returns at once: see wait_migration()."""
        self._set_capabilities(shared, capabilities)
        params = {"max-bandwidth": int(max_bandwidth or self.DEFAULT_MAX_BANDWIDTH)}
        if downtime_limit is not None:
            params["downtime-limit"] = int(downtime_limit)
        self._qmp_ok("migrate-set-parameters", **params)
        self._qmp_ok("migrate", uri=uri)

    def wait_migration(self, timeout=120, interval=0.05):
        """Polls query-migrate (on the source) until the migration is completed, failed or
        cancelled; returns the last reply: status, and when completed total-time, downtime,
        setup-time (ms) and ram counters; error-desc when failed. QEMU says "completed" a moment
        before it fills in the times: such a reply is polled again."""
        deadline = time.monotonic() + timeout
        self.migration_polls = []  # (monotonic time, status, total-time): what each poll saw
        while True:
            info = self.query_migrate()
            status = info.get("status")
            self.migration_polls.append((time.monotonic(), status, info.get("total-time")))
            if status in ("failed", "cancelled") or (status == "completed" and info.get("total-time")):
                return info
            if time.monotonic() > deadline:
                raise TimeoutError(f"guest {self.name}: migration not over after {timeout}s: {info}")
            time.sleep(interval)

    def migrate_cancel(self, wait=True, timeout=30):
        """Cancels the source's migration; the guest keeps running here. With wait, returns the
        final query-migrate reply (status "cancelled", or "completed" when it was too late)."""
        self._qmp_ok("migrate_cancel")
        return self.wait_migration(timeout) if wait else None

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.proc and self.proc.poll() is None:
            try:
                self.qmp("quit")
                self.proc.wait(10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        for p in [self.console_path, self.qmp_path] + self.migration_sockets:
            try:
                os.unlink(p)
            except OSError:
                pass
        self.migration_sockets = []
        if self.mode == "client":
            try:
                os.unlink(self.vhost_socket)
            except OSError:
                pass
        users = QemuGuest._mem_users.get(self.mem_path)
        if users is not None:
            users.discard(self)
            if not users:  # no QEMU of ours maps the RAM file any more
                del QemuGuest._mem_users[self.mem_path]
                try:
                    os.unlink(self.mem_path)
                except OSError:
                    pass
