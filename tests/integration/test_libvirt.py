"""libvirt: a real libvirtd (tests/lib/libvirt.py) starts two QEMU/TCG domains whose vhost-user
interfaces the Palisade hook (packaging/libvirt/palisade-qemu-hook) puts on ports of palisaded,
one in each socket mode, with no `palisadectl port add` by hand; they ping each other through
the firewall, a dropped connection stays dropped, and `virsh destroy` takes the ports away."""

import json
import os
import subprocess
import sys
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import PALISADECTL, ROOT, Daemon, Workdir, wait_for  # noqa: E402
from qemu_guest import QEMU, QemuGuest, image  # noqa: E402
import libvirt  # noqa: E402

HOOK = os.path.join(ROOT, "packaging", "libvirt", "palisade-qemu-hook")
NS = "https://palisade.example/xmlns/1"

MACS = {"a": "52:54:00:00:40:01", "b": "52:54:00:00:40:02"}
IPS = {"a": "10.40.0.1", "b": "10.40.0.2"}
# libvirt's socket mode is QEMU's side: a's QEMU connects to the switch's socket (a server-mode
# port), b's QEMU owns its socket and the switch's port connects to it (--client).
MODES = {"a": "client", "b": "server"}

RULES = """ruleset guests {
  rule 4001 at 1 inout protocol icmp from any to any accept;
  rule 4002 at 2 inout protocol tcp from any to any port 5001 drop;
  rule 4003 at 3 inout protocol any from any to any accept;
}
"""


def domain_xml(name, guest, mode, switch, port_name=None, rules=None, metadata=True,
               boot=("/boot/vmlinuz", "/boot/initrd.img")):
    """A QEMU/TCG domain booting a kernel and initramfs (boot: the test image's) directly, RAM
    in a shared memfd (vhost-user maps it), its serial console on guest.console_path, one
    vhost-user NIC on guest.vhost_socket, and the Palisade metadata that names its port."""
    kernel, initrd = boot
    meta = ""
    if metadata:
        extra = f" rules='{rules}'" if rules else ""
        meta = f"""  <metadata>
    <palisade:vm xmlns:palisade='{NS}' switch='{switch}'>
      <palisade:port name='{port_name or "vm-" + name}' vhost-user='{guest.vhost_socket}'
                     ips='{guest.ip}' security='on'{extra}/>
    </palisade:vm>
  </metadata>
"""
    # QEMU 7.2 under TCG crashes when the guest driver starts a vhost-user virtio-net device
    # with MSI-X: vectors=0 (INTx) on the device libvirt names net0.
    return f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
{meta}  <memory unit='MiB'>{guest.memory}</memory>
  <vcpu>1</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{guest.kernel_cmdline()}</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='unix'>
      <source mode='bind' path='{guest.console_path}'/>
      <target port='0'/>
    </serial>
    <interface type='vhostuser'>
      <mac address='{guest.mac}'/>
      <source type='unix' path='{guest.vhost_socket}' mode='{mode}'/>
      <model type='virtio'/>
    </interface>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <qemu:override>
    <qemu:device alias='net0'>
      <qemu:frontend>
        <qemu:property name='vectors' type='unsigned' value='0'/>
      </qemu:frontend>
    </qemu:device>
  </qemu:override>
</domain>
"""


def libvirtd_unavailable():
    if QEMU is None:
        return "qemu-system-x86_64 is not installed"
    if libvirt.LIBVIRTD is None or libvirt.VIRSH is None:
        return "libvirtd or virsh is not installed (libvirt-daemon-system, libvirt-clients)"
    return None


@unittest.skipIf(libvirtd_unavailable(), libvirtd_unavailable())
class LibvirtTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("libvirt")
        cls.sw = Daemon("libvirt", cls.work.path).start()
        # A second hook, run after ours, records every call: which operations libvirt made.
        cls.calls = cls.work.join("hook-calls")
        recorder = cls.work.join("record-hook")
        with open(recorder, "w") as f:
            f.write(f'#!/bin/sh\ncat >/dev/null\necho "$1 $2 $3" >> {cls.calls}\n')
        cls.lv = libvirt.Libvirtd(hooks={"qemu.d/palisade": HOOK, "qemu.d/record": recorder},
                                  path=[os.path.dirname(PALISADECTL)])
        cls.guests = {}
        try:
            cls.boot = image()
            cls.lv.start()
            cls.rules = cls.work.join("guests.rules")
            with open(cls.rules, "w") as f:
                f.write(RULES)
            for n in "ab":
                g = QemuGuest(f"lv-{n}", cls.work.path, cls.work.join(f"{n}.sock"), MACS[n], IPS[n] + "/24",
                              listen=[5001])
                cls.guests[n] = g
                cls.lv.define(domain_xml(g.name, g, MODES[n], cls.sw.socket, port_name=f"vm-{n}",
                                         rules=cls.rules, boot=cls.boot))
            assert cls.sw.ports() == [], "no port before the domains start"
            # Both boot at once: b's `virsh start` waits for the switch to connect to its socket,
            # a's returns once QEMU runs; the consoles come up while the other starts.
            errors = []

            def start(n):
                try:
                    cls.lv.virsh("start", cls.guests[n].name)
                except Exception as e:  # reported below, from the main thread
                    errors.append(e)
            threads = [threading.Thread(target=start, args=(n,)) for n in "ab"]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
            for g in cls.guests.values():
                g.connect_console()
            for g in cls.guests.values():
                g.wait_ready()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for g in cls.guests.values():
            g.stop()
        cls.lv.stop()
        rc = cls.sw.stop()
        cls.work.remove()
        assert rc == 0, f"palisaded exited {rc}"

    def hook_calls(self):
        with open(self.calls) as f:
            return f.read().splitlines()

    def port_specs(self):
        rc, out, err = self.sw.cli("port", "list", json_out=True)
        self.assertEqual(rc, 0, err)
        return {p["spec"]["name"]: p for p in json.loads(out)["ports"]}

    def test_1_hook_added_the_ports(self):
        for n in "ab":
            self.assertIn(f"lv-{n} prepare begin", self.hook_calls())
        ports = self.port_specs()
        self.assertEqual(sorted(ports), ["vm-a", "vm-b"])
        for n in "ab":
            spec = ports[f"vm-{n}"]["spec"]
            self.assertEqual(spec["vhostUser"], self.guests[n].vhost_socket)
            self.assertEqual(spec.get("client", False), MODES[n] == "server", f"vm-{n}'s socket mode")
            self.assertEqual((spec["vm"], spec["mac"], spec["ips"]), (f"lv-{n}", MACS[n], [IPS[n]]))
            self.assertTrue(ports[f"vm-{n}"]["link"], f"lv-{n}'s QEMU is connected")
            rc, out, err = self.sw.cli("port", "show", f"vm-{n}")
            self.assertEqual(rc, 0, err)
            for line in (f"vm:\\s+lv-{n}", f"mac:\\s+{MACS[n]}", f"ips:\\s+{IPS[n]}",
                         f"socket:\\s+{self.guests[n].vhost_socket}",
                         "mode:\\s+" + ("client" if MODES[n] == "server" else "server"), "link:\\s+up"):
                self.assertRegex(out, line)
        rc, out, err = self.sw.cli("summarize-dvfilter")
        for n in "ab":
            self.assertIn(f"vmm0:lv-{n}", out)
        self.assertEqual(out.count("agentName: palisade-swsec"), 2, out)
        self.assertEqual(out.count("agentName: palisade-sfw"), 2, out)
        for n in "ab":
            rc, out, err = self.sw.cli("getrules", "-f", f"vm-{n}")
            self.assertIn("rule 4002 at 2 inout protocol tcp from any to any port 5001 drop;", out)

    def test_2_ping_through_the_firewall_and_a_dropped_port(self):
        a, b = self.guests["a"], self.guests["b"]
        self.assertTrue(a.ping(b.ip), "a pings b (rule 4001)")
        self.assertTrue(b.ping(a.ip), "b pings a")
        rc, out = a.run(f"echo through | nc -w 3 {b.ip} 7")
        self.assertIn("through", out, "TCP to the echo port passes (rule 4003)")
        drops_before = self.sw.port("vm-a")["drops"]["rule"]
        rc, out = a.run(f"echo dropped | nc -w 3 {b.ip} 5001")
        self.assertNotEqual(rc, 0, "TCP to 5001 is dropped (rule 4002): no connection")
        self.assertNotIn("dropped", out.replace("nc:", ""))
        self.assertGreater(self.sw.port("vm-a")["drops"]["rule"], drops_before)
        rc, out, err = self.sw.cli("getrules", "-f", "vm-a", "-s")
        stats = {int(line.split()[1].rstrip(":")): line for line in out.splitlines()
                 if line.startswith("rule ") and "evals" in line}
        self.assertRegex(stats[4001], r"in [1-9]\d* out [1-9]\d* pkts", "ICMP counted both ways")
        self.assertRegex(stats[4002], r"out [1-9]\d* pkts", "the dropped SYNs counted")

    def test_3_start_fails_with_the_switch_answer(self):
        """A domain whose rules do not parse does not start; the error names the domain, the
        port and the line; no port stays behind."""
        bad = self.work.join("bad.rules")
        with open(bad, "w") as f:
            f.write("ruleset x {\n  rule 1 at 1 inout protocol tcp from any to any port 5001 dorp;\n}\n")
        g = QemuGuest("lv-bad", self.work.path, self.work.join("bad.sock"), "52:54:00:00:40:09", "10.40.0.9/24")
        self.lv.define(domain_xml(g.name, g, "client", self.sw.socket, port_name="vm-bad", rules=bad,
                                  boot=self.boot))
        try:
            r = self.lv.virsh("start", g.name, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("palisade: domain 'lv-bad': port 'vm-bad' on " + self.sw.socket, r.stderr)
            self.assertIn(f"{bad}: line 2, column 60: expected an action", r.stderr,
                          "the rule file, line and column")
            self.assertIn("palisade: domain 'lv-bad'", self.lv.log(), "in libvirtd's log too")
            self.assertEqual(self.lv.state(g.name), "shut off")
            self.assertEqual(sorted(self.sw.ports()), ["vm-a", "vm-b"])
        finally:
            self.lv.virsh("undefine", g.name, check=False)

    def test_4_a_port_name_held_by_another_guest(self):
        """A domain naming a port that another VM holds does not start, and libvirt's cleanup
        (`release`) leaves the other VM's port alone."""
        g = QemuGuest("lv-dup", self.work.path, self.work.join("dup.sock"), "52:54:00:00:40:0a", "10.40.0.10/24")
        self.lv.define(domain_xml(g.name, g, "client", self.sw.socket, port_name="vm-a", boot=self.boot))
        try:
            r = self.lv.virsh("start", g.name, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("palisade: domain 'lv-dup': port 'vm-a'", r.stderr)
            self.assertIn("vm 'lv-a'", r.stderr)
            self.assertIn("lv-dup release end", self.hook_calls(), "libvirt cleaned up after the failure")
            self.assertEqual(self.port_specs()["vm-a"]["spec"]["vm"], "lv-a")
            self.assertTrue(self.guests["a"].ping(self.guests["b"].ip), "a still reaches b")
        finally:
            self.lv.virsh("undefine", g.name, check=False)

    def test_5_a_domain_without_palisade_metadata(self):
        """A domain without Palisade metadata, on a port added by hand, starts as before, and
        its port stays when it stops."""
        g = QemuGuest("lv-plain", self.work.path, self.work.join("plain.sock"), "52:54:00:00:40:0b",
                      "10.40.0.11/24")
        self.sw.ctl(f"port add vm-plain --vhost-user {g.vhost_socket}")
        self.lv.define(domain_xml(g.name, g, "client", self.sw.socket, metadata=False, boot=self.boot))
        try:
            self.lv.virsh("start", g.name)
            self.assertEqual(self.lv.state(g.name), "running")
            wait_for(lambda: self.sw.port("vm-plain")["link"], 30, what="lv-plain's QEMU connected")
            self.lv.virsh("destroy", g.name)
            self.assertEqual(sorted(self.sw.ports()), ["vm-a", "vm-b", "vm-plain"])
        finally:
            self.lv.virsh("destroy", g.name, check=False)
            self.lv.virsh("undefine", g.name, check=False)
            self.sw.try_ctl("port del vm-plain")

    def test_6_an_existing_port_of_the_domain_is_kept(self):
        """A port that is already there with the domain's socket, mode, VM, MAC and addresses
        (as one that arrived by `palisadectl migrate`) is kept as it is at `prepare`, and
        removed at `release` like one the hook added."""
        g = QemuGuest("lv-kept", self.work.path, self.work.join("kept.sock"), "52:54:00:00:40:0c",
                      "10.40.0.12/24")
        self.sw.ctl(f"port add vm-kept --vhost-user {g.vhost_socket} --vm lv-kept --mac {g.mac} --ip {g.ip}")
        self.sw.ctl("filter attach vm-kept --slot 3 --agent counting")
        index = self.port_specs()["vm-kept"]["index"]
        self.lv.define(domain_xml(g.name, g, "client", self.sw.socket, port_name="vm-kept", boot=self.boot))
        try:
            self.lv.virsh("start", g.name)
            port = self.port_specs()["vm-kept"]
            self.assertEqual(port["index"], index, "the same port, not a new one")
            rc, out, err = self.sw.cli("summarize-dvfilter")
            self.assertIn("nic-%d-vm-kept-palisade-count.3" % index, out, "its slots as they were")
            self.assertNotIn("nic-%d-vm-kept-palisade-swsec.1" % index, out)
            self.lv.virsh("destroy", g.name)
            self.assertEqual(sorted(self.sw.ports()), ["vm-a", "vm-b"])
        finally:
            self.lv.virsh("destroy", g.name, check=False)
            self.lv.virsh("undefine", g.name, check=False)
            self.sw.try_ctl("port del vm-kept")

    def test_9_destroy_removes_the_ports(self):
        for n in "ab":
            self.lv.virsh("destroy", self.guests[n].name)
            self.assertIn(f"lv-{n} release end", self.hook_calls())
        self.assertEqual(self.sw.ports(), [], "release removed both ports")
        for n in "ab":
            self.assertEqual(self.lv.state(self.guests[n].name), "shut off")


class HookTest(unittest.TestCase):
    """The hook alone, as libvirt calls it, where no switch is needed."""

    def hook(self, *args, xml=""):
        env = {**os.environ, "PATH": os.path.dirname(PALISADECTL) + ":" + os.environ.get("PATH", "")}
        return subprocess.run([HOOK] + list(args), input=xml, capture_output=True, text=True, timeout=30,
                              env=env)

    def test_other_domains_and_operations_pass_untouched(self):
        g = QemuGuest("x", "/nonexistent", "/nonexistent/x.sock", MACS["a"], IPS["a"] + "/24")
        plain = domain_xml("x", g, "client", "/nonexistent/sw.sock", metadata=False)
        ours = domain_xml("x", g, "client", "/nonexistent/sw.sock")
        for op in ("prepare", "start", "started", "stopped", "release", "migrate", "restore", "reconnect"):
            r = self.hook("x", op, "begin", "-", xml=plain)
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""), op)
        # migrate and restore filter the XML: empty output keeps it; the switch is not asked.
        for op in ("migrate", "restore", "start", "started", "stopped"):
            r = self.hook("x", op, "begin", "-", xml=ours)
            self.assertEqual((r.returncode, r.stdout, r.stderr), (0, "", ""), op)

    def test_metadata_errors_fail_prepare(self):
        g = QemuGuest("x", "/nonexistent", "/nonexistent/x.sock", MACS["a"], IPS["a"] + "/24")
        xml = domain_xml("x", g, "client", "/nonexistent/sw.sock").replace(
            "vhost-user='/nonexistent/x.sock'", "vhost-user='/nonexistent/typo.sock'")
        r = self.hook("x", "prepare", "begin", "-", xml=xml)
        self.assertEqual(r.returncode, 1)
        self.assertIn("palisade: domain 'x': port 'vm-x': no <interface type='vhostuser'> with "
                      "<source type='unix' path='/nonexistent/typo.sock'/>", r.stderr)
        r = self.hook("x", "prepare", "begin", "-", xml=domain_xml("x", g, "client", "/nonexistent/sw.sock"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("palisade: domain 'x': port 'vm-x' on /nonexistent/sw.sock: ", r.stderr)
        self.assertIn("cannot reach the switch", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
