"""Palisade demo: one palisaded with two guests behind port security and a stateful firewall
policy, traffic across the switch, and the operator's views; then (with QEMU) a live migration
of the db VM to a second switch, its open connection with it.

The guests are QEMU virtual machines (TCG) booted from the test image, attached through
vhost-user. Where QEMU is missing (or PALISADE_DEMO_GUESTS=netns), they are network namespaces
with real Linux stacks, attached by a dpdk-testpmd virtio-user peer."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from palisade_testlib import (Daemon, NamespaceGuests, Session, Workdir, del_link,  # noqa: E402
                              ping_until_answered, tcp_transfer, veth, wait_for)
from qemu_guest import QEMU, QemuGuest  # noqa: E402

GUESTS = [("web", "web-01", "10.20.0.1", "02:00:00:00:10:01"),
          ("db", "db-01", "10.20.0.2", "02:00:00:00:11:01")]


class VmGuests:
    """The two demo guests as QEMU VMs; db listens (TCP echo) on 5001."""
    kind = "QEMU virtual machines"

    def __init__(self, work):
        # db's RAM is a shared file, so that it can migrate with x-ignore-shared (qemu_guest.py).
        self.mem = f"/dev/shm/palisade-demo-{os.getpid()}-db.ram"
        self.vms = {n: QemuGuest(n, work.path, work.join(n + ".sock"), mac, ip + "/24",
                                 listen=[5001] if n == "db" else [],
                                 mem_path=self.mem if n == "db" else None)
                    for n, _, ip, mac in GUESTS}
        for vm in self.vms.values():
            vm.start()
        for vm in self.vms.values():
            vm.wait_ready()

    def ping(self, src, ip):
        self.vms[src].ping(ip)
        return self.vms[src].run(f"ping -c 3 {ip}")[1].strip()

    def stream(self, src, dst, port, size):
        vm = self.vms[src]
        rc, out = vm.run(f"dd if=/dev/urandom of=/tmp/tx bs=1024 count={size // 1024} 2>/dev/null && "
                         f"nc -w 3 {self.vms[dst].ip} {port} < /tmp/tx > /tmp/rx; sha256sum /tmp/tx /tmp/rx",
                         timeout=300)
        sums = [line.split()[0] for line in out.splitlines() if "/tmp/" in line]
        return f"{size} bytes to db's echo service and back; sha256 " + (
            "matches" if len(sums) == 2 and sums[0] == sums[1] else "DIFFERS: " + out)

    def connect(self, src, ip, port):
        return self.vms[src].run(f"nc -w 5 {ip} {port} </dev/null")[1].strip() or "connected"

    def migrate(self, work, sw, sw2):
        """db moves to sw2 while web counts on one TCP connection to db's echo service."""
        web = self.vms["web"]
        web.run("(i=0; while true; do i=$((i+1)); echo $i; sleep 0.2; done) 2>/dev/null | "
                "nc 10.20.0.2 5001 > /tmp/count 2>&1 &")
        time.sleep(2)
        count = lambda: web.run("tail -n 1 /tmp/count")[1].strip()
        print(f"web counts on one connection to db:5001, echoed so far: {count()}")
        for args in (("migrate", "vm-db", "--to", sw2.socket, "--socket", work.join("db2.sock")),
                     ("migrate", "list")):
            print("> palisadectl " + " ".join(args))
            print(sw.cli(*args)[1].rstrip())
        _, _, ip, mac = GUESTS[1]
        dest = QemuGuest("db-dst", work.path, work.join("db2.sock"), mac, ip + "/24", listen=[5001],
                         mem_path=self.mem, incoming=True).start()
        self.vms["db-dst"] = dest
        dest.migrate_incoming(f"unix:{work.join('mig.sock')}")
        print("> QMP migrate (x-ignore-shared: both QEMUs map db's RAM file)")
        self.vms["db"].migrate(f"unix:{work.join('mig.sock')}", shared=True)
        result = self.vms["db"].wait_migration(60)
        print(f"QEMU: {result['status']}, total {result.get('total-time')} ms, downtime {result.get('downtime')} ms")
        wait_for(lambda: "vm-db" not in [p["name"] for p in sw.ctl("port list")["ports"]], 20)
        dest.wait_ready(60)
        time.sleep(2)
        print(f"web's connection carries on: echoed so far {count()} (no reset, no new handshake)")
        for h, args in ((sw, ("migrate", "list")), (sw2, ("migrate", "list")), (sw2, ("getflows", "-f", "vm-db"))):
            print(f"> palisadectl -s {h.socket} " + " ".join(args))
            print(h.cli(*args)[1].rstrip())

    def close(self):
        for vm in self.vms.values():
            vm.stop()


class NsGuests:
    """The two demo guests as network namespaces."""
    kind = "network namespaces"

    def __init__(self, work):
        self.g = NamespaceGuests("pdemo", [(n, work.join(n + ".sock"), ip + "/24") for n, _, ip, _ in GUESTS])

    def ping(self, src, ip):
        ping_until_answered(self.g[src], ip)
        return self.g[src].run("ping", "-c", "3", "-i", "0.2", ip, check=False).stdout.strip()

    def stream(self, src, dst, port, size):
        got, got_sha, sent, sent_sha = tcp_transfer(self.g[dst], self.g[src], port, size)
        return f"sent {sent} bytes, db received {got}; sha256 {'matches' if got_sha == sent_sha else 'DIFFERS'}"

    def connect(self, src, ip, port):
        session = Session(self.g[src])
        try:
            return session.do(f"connect {ip} {port} 5")
        finally:
            session.close()

    def close(self):
        self.g.close()

POLICY = """ruleset db-tier {
  # Filter rules
  rule 1006 at 1 inout protocol tcp from addrset web to addrset db port 5001 accept with log;
  rule 1004 at 2 inout protocol icmp icmptype 8 from any to any accept;
  rule 1003 at 3 inout protocol ipv6-icmp icmptype 135 from any to any accept;
  rule 1003 at 4 inout protocol ipv6-icmp icmptype 136 from any to any accept;
  rule 1003 at 5 inout protocol ipv6-icmp icmptype 143 from any to any accept;
  rule 1002 at 6 inout protocol any from any to any reject with log;
}

ruleset db-tier_L2 {
  # Filter rules
  rule 1001 at 1 inout ethertype any from any to any accept;
}
addrset web {
vm web-01,
}
addrset db {
vm db-01,
}
"""
WEB_POLICY = """ruleset web-tier {
  rule 2001 at 1 out protocol any from any to any accept;
  rule 2003 at 2 in protocol ipv6-icmp from any to any accept;
  rule 2002 at 3 in protocol any from any to any reject;
}
"""


def step(text):
    print(f"\n== {text}")


def main():
    work = Workdir("demo")
    sw = Daemon("demo", work.path)
    guests = sw2 = None
    try:
        step("starting palisaded (instance 'demo', no hugepages needed)")
        sw.start()
        print(f"control socket {sw.socket}; log {sw.log_path}")
        def run(*args, stdin=None):
            print("> palisadectl " + " ".join(args))
            rc, out, err = sw.cli(*args, stdin=stdin)
            if rc != 0:
                raise RuntimeError(err)

        for name, vm, ip, mac in GUESTS:
            run("port", "add", f"vm-{name}", "--vhost-user", work.join(name + ".sock"), "--vm", vm,
                "--mac", mac, "--ip", ip)
            run("filter", "attach", f"vm-{name}", "--slot", "1", "--agent", "swsec")
            run("filter", "attach", f"vm-{name}", "--slot", "2", "--agent", "sfw")
        for name, text in (("db", POLICY), ("web", WEB_POLICY)):
            run("setrules", "-f", f"vm-{name}", "-", stdin=text)

        use_vms = QEMU is not None and os.environ.get("PALISADE_DEMO_GUESTS") != "netns"
        step("booting two guests: web 10.20.0.1 and db 10.20.0.2 (" +
             ("QEMU virtual machines" if use_vms else "network namespaces, QEMU is missing") + ")")
        guests = VmGuests(work) if use_vms else NsGuests(work)
        wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]))

        step("web pings db (rule 1004 allows ICMP echo)")
        print(guests.ping("web", "10.20.0.2"))

        size = (4 << 20) if use_vms else (32 << 20)
        step(f"web streams {size >> 20} MiB to db over TCP port 5001 (rule 1006 allows it)")
        start = time.monotonic()
        result = guests.stream("web", "db", 5001, size)
        print(f"{result} ({time.monotonic() - start:.1f} s)")

        step("web tries db's port 5002 (rule 1002 rejects it: a TCP RST comes back at once)")
        print(f"connect 10.20.0.2:5002 -> {guests.connect('web', '10.20.0.2', 5002)}")

        def palisadectl(*args):
            step("palisadectl " + " ".join(args))
            rc, out, err = sw.cli(*args)
            print((out or err).rstrip())

        palisadectl("summarize-dvfilter")
        palisadectl("getrules", "-f", "nic-1-vm-db-palisade-sfw.2", "-s")
        palisadectl("getaddrsets", "-f", "vm-db")
        palisadectl("getflows", "-f", "vm-db")
        step("packet log (LOG_DIR/packets-demo.log)")
        wait_for(lambda: "/5002" in sw.packet_log(), 5)
        print(sw.packet_log().rstrip())
        palisadectl("port", "list")
        palisadectl("port", "stats")
        palisadectl("mac", "show")
        palisadectl("worker", "stats")

        if use_vms:
            step("live migration: db moves to a second switch (instance 'demo2'; the two switches "
                 "are joined by uplinks on a veth pair)")
            sw2 = Daemon("demo2", work.path).start()
            veth("pdemo0", "pdemo1")
            sw.ctl("port add uplink --uplink net_af_packet_demo1,iface=pdemo0")
            sw2.ctl("port add uplink --uplink net_af_packet_demo2,iface=pdemo1")
            guests.migrate(work, sw, sw2)
    finally:
        step("stopping")
        if guests:
            guests.close()
        if sw2:
            sw2.stop()
            del_link("pdemo0")
        rc = sw.stop()
        print(f"palisaded exited {rc}; control socket removed: {not os.path.exists(sw.socket)}")
        work.remove()


if __name__ == "__main__":
    main()
