"""The Debian package (scripts/build-deb.sh, the release configuration): its files, control
fields and maintainer scripts; the palisaded@.service unit under systemd-analyze verify; then on
this machine dpkg -i, the switch palisaded@test started as systemd starts it (by systemctl when
systemd runs, else by this test following the installed unit: its directories, environment
file and ExecStart line), driven with the installed palisadectl, stopped with SIGTERM within
the unit's TimeoutStopSec and started again with what it kept, and dpkg --purge leaving nothing
but the operator's own files. Needs root; skipped when a palisade package is already installed,
whose purge would take this machine's switches with it."""

import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import DPDK_RUN, ROOT, wait_for  # noqa: E402

UNIT = "/lib/systemd/system/palisaded@.service"
INSTANCE = "test"
CONF_DIR = "/etc/palisade"
STATE_DIR = "/var/lib/palisade"
RUN_DIR = "/run/palisade"
CONN_DIR = "/dev/shm/palisade"  # each instance's connection tables
CTL = "/usr/bin/palisadectl"
SOCK = f"{RUN_DIR}/{INSTANCE}.sock"
STATE_FILE = f"{RUN_DIR}/{INSTANCE}.state"
PACKAGE_FILES = {
    "/usr/sbin/palisaded", "/usr/bin/palisadectl", UNIT,
    "/usr/share/doc/palisade/copyright", "/usr/share/doc/palisade/README.md",
}
SYSTEMD_RUNS = os.path.isdir("/run/systemd/system")


def run(*args, check=True, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=600, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r


def installed(package):
    r = run("dpkg-query", "-W", "-f=${Status}", package, check=False)
    return r.returncode == 0 and "install ok installed" in r.stdout


def read_unit(path):
    """{section: {key: [values]}} of a unit file (comments, continuation lines)."""
    sections, current, pending = {}, None, ""
    with open(path) as f:
        for raw in f:
            line = pending + raw.rstrip("\n")
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), {})
                continue
            key, value = line.split("=", 1)
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value):
    m = re.fullmatch(r"(\d+)\s*(s|sec|min)?", value)
    return int(m.group(1)) * (60 if m.group(2) == "min" else 1)


class UnitRunner:
    """Starts and stops one instance of the installed template unit as systemd does, without
    systemd: the runtime and state directories with their modes, AssertPathExists, the
    environment file, ExecStart with %i and $VARIABLES expanded, the main process's output kept
    (the journal's part), SIGTERM to the main process alone (KillMode=mixed), the runtime
    directory removed on stop unless RuntimeDirectoryPreserve=yes."""

    def __init__(self, unit, instance):
        self.instance = instance
        self.unit = {s: {k: [self.specifiers(v) for v in vs] for k, vs in keys.items()}
                     for s, keys in unit.items()}
        self.service = self.unit["Service"]
        self.proc = None
        self.output = []

    def specifiers(self, value):
        value = value.replace("%i", self.instance).replace("%%", "\0")
        if "%" in value:
            raise AssertionError(f"a specifier this test does not know in {value!r}")
        return value.replace("\0", "%")

    def one(self, key, default=None):
        values = self.service.get(key, [])
        return values[-1] if values else default

    def environment(self):
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        for line in self.service.get("Environment", []):
            for item in shlex.split(line):
                key, value = item.split("=", 1)
                env[key] = value
        for name in self.service.get("EnvironmentFile", []):
            optional = name.startswith("-")
            name = name.lstrip("-")
            if optional and not os.path.exists(name):
                continue
            with open(name) as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith(("#", ";")):
                        key, value = line.split("=", 1)
                        env[key.strip()] = " ".join(shlex.split(value))
        return env

    def argv(self, env):
        (line,) = self.service["ExecStart"]
        argv = []
        for word in shlex.split(line.lstrip("-@:+!")):
            m = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
            if m:  # $VAR: split at whitespace into zero or more arguments
                argv += env.get(m.group(1), "").split()
            else:  # ${VAR}: one argument
                argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda v: env.get(v.group(1), ""), word))
        return argv

    def start(self):
        for path in self.unit["Unit"].get("AssertPathExists", []):
            if not os.path.exists(path):
                raise AssertionError(f"start refused: AssertPathExists={path} was not met")
        for kind, base in [("Runtime", "/run"), ("State", "/var/lib")]:
            mode = int(self.one(f"{kind}DirectoryMode", "0755"), 8)
            for name in self.service.get(f"{kind}Directory", []):
                for d in name.split():
                    os.makedirs(os.path.join(base, d), exist_ok=True)
                    os.chmod(os.path.join(base, d), mode)
        env = self.environment()
        self.output = []
        self.proc = subprocess.Popen(self.argv(env), env=env, cwd="/", stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=lambda: self.output.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def stop(self):
        """SIGTERM, then SIGKILL after TimeoutStopSec; returns (exit status, seconds taken)."""
        timeout = seconds(self.one("TimeoutStopSec", "90"))
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        taken = time.monotonic() - started
        self.reader.join(5)
        self.proc.stdout.close()
        self.proc = None
        if self.one("RuntimeDirectoryPreserve", "no") != "yes":
            for name in self.service.get("RuntimeDirectory", []):
                shutil.rmtree(os.path.join("/run", name), ignore_errors=True)
        return rc, taken

    def log(self):
        return b"".join(self.output).decode(errors="replace")

    def kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc.stdout.close()


class SystemdRunner:
    """The same through systemctl, where systemd runs."""

    def __init__(self, unit, instance):
        self.name = f"palisaded@{instance}.service"
        timeout = (unit["Service"].get("TimeoutStopSec") or ["90"])[-1]
        self.timeout = seconds(timeout)

    def start(self):
        run("systemctl", "start", self.name)  # a failed assertion: "Assertion failed on job"

    def stop(self):
        started = time.monotonic()
        run("systemctl", "stop", self.name)
        taken = time.monotonic() - started
        show = run("systemctl", "show", "-p", "ExecMainStatus", "-p", "Result", self.name).stdout
        props = dict(line.split("=", 1) for line in show.split())
        return (0 if props["Result"] == "success" else int(props["ExecMainStatus"]) or 1), taken

    def log(self):
        return run("journalctl", "-u", self.name, "-o", "cat", "--no-pager", check=False).stdout

    def kill(self):
        run("systemctl", "kill", "-s", "KILL", self.name, check=False)
        run("systemctl", "reset-failed", self.name, check=False)


def ctl(*args, check=True):
    return run(CTL, "-s", SOCK, *args, check=check)


def ports():
    return sorted(p["name"] for p in json.loads(ctl("exec", "port", "list").stdout)["ports"])


def answers():
    return ctl("exec", "help", check=False).returncode == 0


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if installed("palisade"):
            raise unittest.SkipTest("a palisade package is installed here; its purge would remove it")
        started = time.monotonic()
        r = run(os.path.join(ROOT, "scripts", "build-deb.sh"), cwd=ROOT)
        cls.deb = os.path.join(ROOT, r.stdout.split()[-1])
        print(f"build-deb.sh: {time.monotonic() - started:.1f} s; {cls.deb}: "
              f"{os.path.getsize(cls.deb) // 1024} KiB", flush=True)
        cls.extracted = tempfile.mkdtemp(prefix="palisade-deb-")
        run("dpkg-deb", "-x", cls.deb, cls.extracted)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.extracted, ignore_errors=True)

    def control(self):
        fields = {}
        for line in run("dpkg-deb", "-f", self.deb).stdout.splitlines():
            if not line.startswith(" "):
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        return fields

    def test_contents(self):
        listing = run("dpkg-deb", "-c", self.deb).stdout.splitlines()
        files = {}
        for line in listing:
            mode, owner, _size, _date, _time, path = line.split(None, 5)
            self.assertEqual(owner, "root/root", line)
            if not mode.startswith("d"):
                files[path[1:]] = mode
        self.assertEqual(set(files), PACKAGE_FILES, "exactly the daemon, the client, the unit and the docs")
        self.assertEqual(files["/usr/sbin/palisaded"], "-rwxr-xr-x")
        self.assertEqual(files["/usr/bin/palisadectl"], "-rwxr-xr-x")
        self.assertEqual(files[UNIT], "-rw-r--r--")
        info = run("dpkg-deb", "-I", self.deb).stdout
        for script in ["postinst", "prerm", "postrm"]:
            self.assertRegex(info, rf"\d+ bytes,\s+\d+ lines\s+\*\s+{script}\s+#!/bin/sh")
        fields = self.control()
        self.assertEqual(fields["Package"], "palisade")
        self.assertEqual(fields["Architecture"], run("dpkg", "--print-architecture").stdout.strip())
        project = json.loads(run("meson", "introspect", "--projectinfo", os.path.join(ROOT, "build-release")).stdout)
        self.assertEqual(fields["Version"], project["version"])

    def test_depends_on_the_packages_of_every_library_linked(self):
        """Every shared library the binaries name (DT_NEEDED) comes from a package in Depends,
        and Depends names nothing else: the release binaries really need each of them."""
        depends = {d.strip().split()[0] for d in self.control()["Depends"].split(",")}
        needed_packages = set()
        for binary in ["usr/sbin/palisaded", "usr/bin/palisadectl"]:
            path = os.path.join(self.extracted, binary)
            needed = re.findall(r"NEEDED\s+(\S+)", run("objdump", "-p", path).stdout)
            resolved = {}  # "libx.so.1 => /path (0x...)", and the loader as "/path (0x...)"
            for line in run("ldd", path).stdout.splitlines():
                m = re.match(r"\s*(\S+) => (/\S+)", line) or re.match(r"\s*(/\S+) \(", line)
                if m:
                    resolved[os.path.basename(m.group(1))] = m.group(m.lastindex)
            for lib in needed:
                self.assertTrue(lib in resolved, f"{binary}: ldd does not find {lib}")
                real = os.path.realpath(resolved[lib])
                owners = run("dpkg", "-S", real, check=False)
                if owners.returncode != 0:  # usrmerge: the package may name /lib, not /usr/lib
                    owners = run("dpkg", "-S", real.replace("/usr/lib/", "/lib/", 1))
                package = owners.stdout.split(":")[0]
                needed_packages.add(package)
                self.assertIn(package, depends, f"{binary} needs {lib} from {package}")
        self.assertEqual(depends, needed_packages)
        for expected in ["libcapnp-", "libev4", "librte-vhost", "librte-eal", "libgrpc++", "libc6"]:
            self.assertTrue(any(d.startswith(expected) for d in depends), f"{expected}* in {depends}")

    def test_maintainer_scripts_parse(self):
        control = tempfile.mkdtemp(prefix="palisade-control-")
        try:
            run("dpkg-deb", "-e", self.deb, control)
            for script in ["postinst", "prerm", "postrm"]:
                run("sh", "-n", os.path.join(control, script))
        finally:
            shutil.rmtree(control)

    def test_install_run_purge(self):
        moved = self.move_aside([CONF_DIR, STATE_DIR, RUN_DIR, CONN_DIR])
        runner = None
        try:
            run("dpkg", "-i", self.deb)
            self.assertTrue(installed("palisade"))
            for path in PACKAGE_FILES:
                self.assertTrue(os.path.isfile(path), path)
            self.assertTrue(os.access("/usr/sbin/palisaded", os.X_OK))
            self.assertTrue(os.path.isdir(CONF_DIR), "postinst made the configuration folder")

            verify = run("systemd-analyze", "verify", f"palisaded@{INSTANCE}.service", check=False)
            self.assertEqual((verify.returncode, verify.stdout + verify.stderr), (0, ""))
            unit = read_unit(UNIT)
            service = unit["Service"]
            self.assertNotIn("ExecReload", service, "palisaded has no reload signal")
            self.assertEqual(service["KillMode"], ["mixed"])
            self.assertEqual(service["RuntimeDirectoryPreserve"], ["yes"])
            self.assertEqual(service["StateDirectory"], ["palisade"])
            self.assertEqual(service["RuntimeDirectory"], ["palisade"])
            self.assertIn("--config /etc/palisade/%i.conf", service["ExecStart"][0])
            self.assertNotIn("StandardOutput", service, "the journal takes stdout and stderr")
            self.enable()

            runner = (SystemdRunner if SYSTEMD_RUNS else UnitRunner)(unit, INSTANCE)
            self.assertEqual(unit["Unit"]["AssertPathExists"], ["/etc/palisade/%i.conf"])
            with self.assertRaisesRegex(AssertionError, "AssertPathExists|Assertion failed",
                                        msg="no config file, no start"):
                runner.start()
            with open(f"{CONF_DIR}/{INSTANCE}.conf", "w") as f:
                f.write(f"# the package test's switch\nport add vm1 --vhost-user {RUN_DIR}/test-vm1.sock\n"
                        "filter attach vm1 --slot 2 --agent sfw\n")
            with open(f"{CONF_DIR}/{INSTANCE}.env", "w") as f:
                f.write('PALISADED_OPTIONS="--hugepages off --memory 256"\n')

            runner.start()
            wait_for(answers, 30, what="palisaded@test's control socket")
            self.assertEqual(ports(), ["vm1"], "the config file's port")
            self.assertTrue(os.path.exists(f"{RUN_DIR}/test-vm1.sock"))
            ctl("port", "add", "vm2", "--vhost-user", f"{RUN_DIR}/test-vm2.sock")
            with open(f"{STATE_DIR}/{INSTANCE}/config", "rb") as f:
                self.assertIn(b"vm2", f.read(), "a run-time change is kept in the state directory")
            rc, taken = runner.stop()
            self.assertEqual(rc, 0, runner.log())
            self.assertLess(taken, seconds(service["TimeoutStopSec"][0]))
            self.assertIn("instance test ready", runner.log(), "the log reaches stdout/stderr")
            self.assertIn("instance test stopped", runner.log())
            for gone in [SOCK, f"{RUN_DIR}/test-vm1.sock", f"{RUN_DIR}/test-vm2.sock",
                         f"{DPDK_RUN}/palisade-{INSTANCE}"]:
                self.assertFalse(os.path.exists(gone), f"a clean stop removes {gone}")
            self.assertTrue(os.path.isfile(STATE_FILE), "connections saved on the way down")

            runner.start()  # what the last run kept comes back
            wait_for(answers, 30, what="palisaded@test's control socket after a restart")
            self.assertEqual(ports(), ["vm1", "vm2"])
            self.assertTrue(os.path.isfile(STATE_FILE + ".restored"))
            rc, taken = runner.stop()
            self.assertEqual(rc, 0, runner.log())
            runner = None

            purge = run("dpkg", "--purge", "palisade")
            self.assertFalse(installed("palisade"))
            for path in PACKAGE_FILES | {"/usr/share/doc/palisade", STATE_DIR, RUN_DIR, CONN_DIR,
                                         f"/etc/systemd/system/multi-user.target.wants/palisaded@{INSTANCE}.service"}:
                self.assertFalse(os.path.lexists(path), f"purge left {path}")
            self.assertEqual(sorted(os.listdir(CONF_DIR)), [f"{INSTANCE}.conf", f"{INSTANCE}.env"],
                             "the operator's files stay")
            self.assertIn("/etc/palisade is kept", purge.stderr)
        finally:
            if runner is not None:
                runner.kill()
            if installed("palisade"):
                run("dpkg", "--purge", "palisade", check=False)
            shutil.rmtree(f"{DPDK_RUN}/palisade-{INSTANCE}", ignore_errors=True)
            self.restore(moved)

    def enable(self):
        """systemctl enable, which works on files when systemd does not run."""
        run("systemctl", "enable", f"palisaded@{INSTANCE}.service")
        self.assertTrue(os.path.lexists(
            f"/etc/systemd/system/multi-user.target.wants/palisaded@{INSTANCE}.service"))

    @staticmethod
    def move_aside(paths):
        """What this machine already had at the package's paths (a hand-run palisaded's state)
        goes aside for the test and comes back after it."""
        moved = {}
        for path in paths:
            if os.path.isdir(path):
                aside = tempfile.mkdtemp(prefix=os.path.basename(path) + ".", dir=os.path.dirname(path))
                os.rmdir(aside)
                os.rename(path, aside)
                moved[path] = aside
        return moved

    @staticmethod
    def restore(moved):
        for path in [CONF_DIR, STATE_DIR, RUN_DIR, CONN_DIR]:
            shutil.rmtree(path, ignore_errors=True)
        for link in glob.glob(f"/etc/systemd/system/*.wants/palisaded@{INSTANCE}.service"):
            os.unlink(link)
        for path, aside in moved.items():
            os.rename(aside, path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
