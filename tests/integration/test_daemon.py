"""palisaded as a process: its command line, config errors, refusing to start twice, hugepages,
multiqueue guests. A failed start must say why and leave nothing behind."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import PALISADED, Daemon, Testpmd, Workdir, sh, wait_for  # noqa: E402


def run(*args, timeout=60):
    return subprocess.run([PALISADED, *args], capture_output=True, text=True, timeout=timeout)


def hugepages_free():
    total = 0
    base = "/sys/kernel/mm/hugepages"
    for d in os.listdir(base) if os.path.isdir(base) else []:
        with open(os.path.join(base, d, "free_hugepages")) as f:
            total += int(f.read())
    with open("/proc/mounts") as f:
        mounted = any(line.split()[2] == "hugetlbfs" for line in f)
    return mounted and total > 0


class CommandLineTest(unittest.TestCase):
    def setUp(self):
        self.work = Workdir("cli")

    def tearDown(self):
        self.work.remove()

    def kept(self, instance):
        """What the instance keeps goes under the test's directory, not the machine's defaults."""
        return ["--state-dir", self.work.join(f"{instance}.d"), "--state-file", self.work.join(f"{instance}.state"),
                "--conn-dir", self.work.join(f"{instance}.conns")]

    def assertLeftNothing(self, instance, sock):
        self.assertFalse(os.path.exists(sock), "no control socket left")
        self.assertFalse(os.path.exists(f"/var/run/dpdk/palisade-{instance}"), "no EAL files left")

    def test_help_lists_every_option(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0)
        for opt in ["--instance", "--socket", "--cores", "--hugepages", "--config", "--log-dir",
                    "--help"]:
            self.assertIn(opt, r.stdout)

    def test_bad_arguments_exit_2_with_a_message(self):
        for args, message in [
            (["--bogus"], "unknown option '--bogus'"),
            (["--hugepages", "sometimes"], "--hugepages: 'sometimes' is not auto, on or off"),
            (["--cores", "999"], "--cores: '999' is not a CPU or range below"),
            (["--instance"], "--instance needs a value"),
        ]:
            r = run(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(message, r.stderr, args)
            self.assertIn("Try 'palisaded --help'", r.stderr)

    def test_bad_config_names_line_and_column_and_starts_nothing(self):
        conf = self.work.join("bad.conf")
        with open(conf, "w") as f:
            f.write(f"port add a --vhost-user {self.work.join('a.sock')}\n\nport add b --vhost-usr /x\n")
        sock = self.work.join("cfg.sock")
        r = run("--instance", "cfg", "--socket", sock, "--hugepages", "off", "--config", conf, *self.kept("cfg"))
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{conf}:3:12: unknown option '--vhost-usr'", r.stderr)
        self.assertLeftNothing("cfg", sock)
        self.assertFalse(os.path.exists(self.work.join("a.sock")), "no port was created")

    def test_config_command_that_fails_stops_the_start_cleanly(self):
        conf = self.work.join("fail.conf")
        with open(conf, "w") as f:
            f.write(f"port add a --vhost-user {self.work.join('a.sock')}\n")
            f.write("port add b --vhost-user /nonexistent-dir/b.sock\n")
        sock = self.work.join("cfg2.sock")
        r = run("--instance", "cfg2", "--socket", sock, "--hugepages", "off", "--memory", "256",
                "--config", conf, *self.kept("cfg2"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("command 2 failed", r.stderr)
        self.assertIn("/nonexistent-dir/b.sock", r.stderr)
        self.assertLeftNothing("cfg2", sock)
        self.assertFalse(os.path.exists(self.work.join("a.sock")), "the first port was removed")

    def test_missing_config_file(self):
        r = run("--config", self.work.join("nope.conf"), "--socket", self.work.join("x.sock"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope.conf: cannot open the config file", r.stderr)

    def test_second_daemon_on_the_same_socket_is_refused(self):
        first = Daemon("first", self.work.path).start()
        try:
            r = run("--instance", "second", "--socket", first.socket, "--hugepages", "off", *self.kept("second"))
            self.assertEqual(r.returncode, 1)
            self.assertIn(f"{first.socket} is in use by another process", r.stderr)
            self.assertTrue(first.ctl("port list")["ok"], "the first one is untouched")
        finally:
            self.assertEqual(first.stop(), 0)

    def test_stale_control_socket_is_replaced(self):
        d = Daemon("stale", self.work.path).start()
        d.proc.kill()  # leaves its socket and EAL files behind
        d.proc.wait()
        d.proc.stdout.close()
        d.proc = None
        self.assertTrue(os.path.exists(d.socket))
        d.start()
        self.assertTrue(d.ctl("port list")["ok"])
        self.assertEqual(d.stop(), 0)

    def test_hugepages_on_without_hugepages_is_a_clear_error(self):
        if hugepages_free():
            self.skipTest("this machine has hugepages")
        sock = self.work.join("huge.sock")
        r = run("--instance", "nohuge", "--socket", sock, "--hugepages", "on", *self.kept("nohuge"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("--hugepages on: no hugetlbfs mount with free pages", r.stderr)
        self.assertLeftNothing("nohuge", sock)


class HugepagesTest(unittest.TestCase):
    """Reserves 2 MiB hugepages and mounts hugetlbfs for the test, then restores the machine."""

    def test_uses_hugepages_when_mounted(self):
        work = Workdir("huge")
        nr = "/proc/sys/vm/nr_hugepages"
        with open(nr) as f:
            before = int(f.read())
        mnt = work.join("hugetlbfs")
        os.makedirs(mnt)
        mounted = False
        try:
            with open(nr, "w") as f:
                f.write(str(before + 256))
            sh("mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "none", mnt)
            mounted = True
            if not hugepages_free():
                self.skipTest("could not reserve hugepages here")
            d = Daemon("huge", work.path, hugepages="auto").start()
            try:
                d.ctl(f"port add a --vhost-user {work.join('a.sock')}")
                self.assertIn("hugepages", d.log().split("ready:")[1].splitlines()[0])
                self.assertNotIn("no hugepages", d.log())
            finally:
                self.assertEqual(d.stop(), 0)
        finally:
            if mounted:
                sh("umount", mnt, check=False)
            with open(nr, "w") as f:
                f.write(str(before))
            work.remove()


class MultiqueueTest(unittest.TestCase):
    def test_guest_with_two_queue_pairs(self):
        work = Workdir("mq")
        d = Daemon("mq", work.path).start()
        tp = None
        try:
            socks = [work.join("a.sock"), work.join("b.sock")]
            for n, s in zip("ab", socks):
                d.ctl(f"port add {n} --vhost-user {s}")
            tp = Testpmd("mq-guests", [f"net_virtio_user{i},path={s},queues=2,queue_size=1024"
                                       for i, s in enumerate(socks)],
                         ["--rxq=2", "--txq=2", "--forward-mode=rxonly", "--port-topology=loop"])
            wait_for(lambda: all(p["queue_pairs"] == 2 for p in d.ctl("port list")["ports"]),
                     what="both queue pairs enabled")
            tp.cmd("set eth-peer 0 ff:ff:ff:ff:ff:ff")
            tp.cmd("set portlist 0")
            tp.cmd("start tx_first")  # one burst of 32 on each of port 0's two TX queues
            wait_for(lambda: d.port("a")["rx_packets"] == 64, what="both queues polled")
            wait_for(lambda: d.port("b")["tx_packets"] == 64, what="forwarded to b")
            tp.cmd("stop")
            tp.cmd("set portlist 0,1")
            tp.cmd("start")
            wait_for(lambda: tp.port_stats()[1]["rx"] == 64, what="b received all 64")
            tp.cmd("stop")
        finally:
            if tp:
                tp.close()
            self.assertEqual(d.stop(), 0)
            work.remove()


if __name__ == "__main__":
    unittest.main(verbosity=2)
