"""QEMU guests for end-to-end tests: boots the cached test image (guest_image.py) under TCG with
its NIC on a palisaded vhost-user port, and drives its console (tests/guest/console).

Facts this relies on (QEMU 7.2, TCG): guest memory must be shared with the switch
(memory-backend-memfd, share=on); virtio-net-pci needs vectors=0 with vhost-user under TCG
(with MSI-X QEMU crashes when the driver starts the device; INTx works)."""

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
from palisade_testlib import BUILD

QEMU = shutil.which("qemu-system-x86_64")


def image():
    return guest_image.build(os.path.join(BUILD, "guest"))


class QemuGuest:
    """One VM. mode "server": the switch owns the vhost-user socket (QEMU connects);
    mode "client": QEMU owns it (server=on) and the switch's port connects to it."""

    _ids = itertools.count(1)

    def __init__(self, name, workdir, vhost_socket, mac, ip, mode="server", listen=(), memory=256):
        self.name = name
        self.workdir = workdir
        self.vhost_socket = vhost_socket
        self.mac = mac
        self.ip = ip.split("/")[0]
        self.cidr = ip
        self.mode = mode
        self.listen = list(listen)
        self.memory = memory
        self.console_path = os.path.join(workdir, f"{name}.console")
        self.qmp_path = os.path.join(workdir, f"{name}.qmp")
        self.log_path = os.path.join(workdir, f"{name}.qemu.log")
        self.proc = None
        self.sock = None
        self.buf = b""

    def argv(self):
        kernel, initrd = image()
        append = f"console=ttyS0 quiet loglevel=1 panic=-1 palisade.ip={self.cidr}"
        if self.listen:
            append += " palisade.listen=" + ",".join(str(p) for p in self.listen)
        server = ",server=on,wait=off" if self.mode == "client" else ""
        return [QEMU, "-machine", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "1",
                "-m", f"{self.memory}M", "-nodefaults", "-display", "none", "-no-reboot",
                "-object", f"memory-backend-memfd,id=mem,size={self.memory}M,share=on",
                "-numa", "node,memdev=mem",
                "-kernel", kernel, "-initrd", initrd, "-append", append,
                "-chardev", f"socket,id=ser0,path={self.console_path},server=on,wait=off",
                "-serial", "chardev:ser0",
                "-qmp", f"unix:{self.qmp_path},server=on,wait=off",
                "-chardev", f"socket,id=nic0,path={self.vhost_socket}{server}",
                "-netdev", "vhost-user,id=net0,chardev=nic0",
                "-device", f"virtio-net-pci,netdev=net0,mac={self.mac},vectors=0"]

    def start(self):
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.console_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
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
        for p in (self.console_path, self.qmp_path):
            try:
                os.unlink(p)
            except OSError:
                pass
        if self.mode == "client":
            try:
                os.unlink(self.vhost_socket)
            except OSError:
                pass
