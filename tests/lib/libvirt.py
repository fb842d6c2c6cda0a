"""A real libvirtd for tests, started by hand (no systemd) and isolated from the host's libvirt.

libvirtd runs as root in a private mount namespace (unshare) in which /etc/libvirt,
/var/lib/libvirt, /var/log/libvirt and /var/cache/libvirt are directories of a temporary root and
/run is a fresh tmpfs whose /run/libvirt is one more: it reads our configuration and hooks at
their real paths (/etc/libvirt/hooks/...), and leaves nothing in the host's libvirt directories.
The QEMU processes it spawns share that namespace; everything else (the test's sockets under
/tmp, the guest image) is the host's. Clients reach it through ROOT/run/libvirt-sock.

Configuration: QEMU runs as root (dynamic_ownership off, so libvirt chowns nothing of ours), its
output goes to a file (no virtlogd), and neither cgroups nor a /dev namespace are used, which a
container may not allow."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

LIBVIRTD = shutil.which("libvirtd", path=os.environ.get("PATH", "") + ":/usr/sbin")
VIRSH = shutil.which("virsh")
DIRS = {"etc": "/etc/libvirt", "lib": "/var/lib/libvirt", "log": "/var/log/libvirt",
        "cache": "/var/cache/libvirt"}

LIBVIRTD_CONF = """unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

QEMU_CONF = """user = "root"
group = "root"
dynamic_ownership = 0
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
"""


class LibvirtError(Exception):
    pass


class Libvirtd:
    def __init__(self, hooks=None, path=()):
        """hooks: {path under /etc/libvirt/hooks: file to install there}, e.g.
        {"qemu.d/palisade": HOOK}. path: directories put first in libvirtd's PATH, which its
        hooks and QEMU inherit."""
        self.root = tempfile.mkdtemp(prefix="palisade-libvirt-")
        self.hooks = dict(hooks or {})
        self.path = list(path)
        self.proc = None
        self.uri = f"qemu:///system?socket={self.root}/run/libvirt-sock"

    def join(self, *p):
        return os.path.join(self.root, *p)

    @property
    def log_path(self):
        return self.join("log", "libvirtd.log")

    def start(self, timeout=30):
        for d in list(DIRS) + ["run"]:
            os.makedirs(self.join(d), exist_ok=True)
        with open(self.join("etc", "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF)
        with open(self.join("etc", "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
        for rel, src in self.hooks.items():
            dst = self.join("etc", "hooks", rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(src, dst)
            os.chmod(dst, 0o755)
        mounts = ["mount -t tmpfs palisade-libvirt /run", "mkdir /run/libvirt",
                  f"mount --bind {self.join('run')} /run/libvirt"]
        mounts += [f"mount --bind {self.join(d)} {target}" for d, target in DIRS.items()]
        script = " && ".join(mounts) + f" && exec {LIBVIRTD} --pid-file {self.join('libvirtd.pid')}"
        env = dict(os.environ)
        env["PATH"] = ":".join(self.path + [env.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")])
        self.out = open(self.join("libvirtd.out"), "w")
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                                     stdout=self.out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise LibvirtError(f"libvirtd exited {self.proc.returncode}: {self._output()}")
            if os.path.exists(self.join("run", "libvirt-sock")) and \
                    self.virsh("version", check=False).returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise LibvirtError(f"libvirtd did not answer within {timeout}s: {self._output()}")
            time.sleep(0.1)

    def _output(self):
        out = ""
        for p in (self.join("libvirtd.out"), self.log_path):
            try:
                with open(p) as f:
                    out += f.read()[-3000:]
            except OSError:
                pass
        return out

    def virsh(self, *args, check=True, stdin=None, timeout=120):
        r = subprocess.run([VIRSH, "-q", "-c", self.uri] + list(args), capture_output=True, text=True,
                           input=stdin, timeout=timeout)
        if check and r.returncode != 0:
            raise LibvirtError(f"virsh {' '.join(args)}: {r.stderr.strip()}")
        return r

    def define(self, xml):
        path = self.join("define.xml")
        with open(path, "w") as f:
            f.write(xml)
        self.virsh("define", path)

    def state(self, domain):
        return self.virsh("domstate", domain).stdout.strip()

    def qemu_log(self, domain):
        try:
            with open(self.join("log", "qemu", f"{domain}.log")) as f:
                return f.read()
        except OSError:
            return ""

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        """Destroys every running domain, stops libvirtd (SIGTERM) and removes its root. A QEMU
        that outlived its destroy (its pid file is still there) is killed."""
        if self.proc is not None and self.proc.poll() is None:
            for name in self.virsh("list", "--name", check=False).stdout.split():
                self.virsh("destroy", name, check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        qemu_run = self.join("run", "qemu")
        for f in os.listdir(qemu_run) if os.path.isdir(qemu_run) else []:
            if f.endswith(".pid"):
                try:
                    with open(os.path.join(qemu_run, f)) as pf:
                        pid = int(pf.read().strip())
                    with open(f"/proc/{pid}/cmdline", "rb") as cf:
                        if b"qemu-system" in cf.read():
                            os.kill(pid, signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        if self.proc is not None:
            self.out.close()
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
