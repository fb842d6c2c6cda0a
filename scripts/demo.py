"""Palisade demo: one palisaded with two guests behind port security and a stateful firewall
policy, traffic across the switch, and the operator's views.

The guests are QEMU virtual machines (TCG) booted from the test image, attached through
vhost-user. Where QEMU is missing (or PALISADE_DEMO_GUESTS=netns), they are network namespaces
with real Linux stacks, attached by a dpdk-testpmd virtio-user peer."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from palisade_testlib import (Daemon, NamespaceGuests, Session, Workdir,  # noqa: E402
                              ping_until_answered, tcp_transfer, wait_for)
from qemu_guest import QEMU, QemuGuest  # noqa: E402

GUESTS = [("web", "web-01", "10.20.0.1", "02:00:00:00:10:01"),
          ("db", "db-01", "10.20.0.2", "02:00:00:00:11:01")]


class VmGuests:
    """The two demo guests as QEMU VMs; db listens (TCP echo) on 5001."""
    kind = "QEMU virtual machines"

    def __init__(self, work):
        self.vms = {n: QemuGuest(n, work.path, work.join(n + ".sock"), mac, ip + "/24",
                                 listen=[5001] if n == "db" else [])
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
  rule 1002 at 3 inout protocol any from any to any reject with log;
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
  rule 2002 at 2 in protocol any from any to any reject;
}
"""


def table(rows, columns):
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    line = lambda cells: "  ".join(str(v).rjust(w) if isinstance(v, int) else str(v).ljust(w)
                                   for v, w in zip(cells, widths))
    print(line(columns))
    for r in rows:
        print(line(r))


def step(text):
    print(f"\n== {text}")


def main():
    work = Workdir("demo")
    sw = Daemon("demo", work.path)
    guests = None
    try:
        step("starting palisaded (instance 'demo', no hugepages needed)")
        sw.start()
        print(f"control socket {sw.socket}; log {sw.log_path}")
        for name, vm, ip, mac in GUESTS:
            for line in (f"port add vm-{name} --vhost-user {work.join(name + '.sock')} --vm {vm} --mac {mac} --ip {ip}",
                         f"filter attach vm-{name} --slot 1 --agent swsec",
                         f"filter attach vm-{name} --slot 2 --agent sfw"):
                print(f"> {line}")
                sw.ctl(line)
        for name, text in (("db", POLICY), ("web", WEB_POLICY)):
            path = work.join(name + ".rules")
            with open(path, "w") as f:
                f.write(text)
            line = f"rules load vm-{name} {path}"
            print(f"> {line}")
            sw.ctl(line)

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

        step("db's rules with their counters (rules show vm-db --stats)")
        reply = sw.ctl("rules show vm-db --stats")
        print(reply["text"].rstrip())
        for r in reply["stats"]:
            print(f"rule {r['rule']}: {r['evals']} evals, in {r['in_pkts']} out {r['out_pkts']} pkts, "
                  f"in {r['in_bytes']} out {r['out_bytes']} bytes")

        step("db's address sets (addrsets show vm-db)")
        print(sw.ctl("addrsets show vm-db")["text"].rstrip())

        step("db's connections (flows show vm-db)")
        flows = sw.ctl("flows show vm-db")["flows"]
        print(f"Count: {len(flows)}")
        for f in flows:
            print(f"{f['flow_id']} Active {f['proto']} {f['ethertype']} {f['direction']} {f['rule']} "
                  f"{f['src']}:{f['sport']} {f['dst']}:{f['dport']} {f['orig_bytes'] + f['reply_bytes']} "
                  f"{f['state']} {f['orig_bytes']} {f['reply_bytes']} {f['orig_pkts']} {f['reply_pkts']}")

        step("packet log (LOG_DIR/packets-demo.log)")
        wait_for(lambda: "REJECT" in sw.packet_log(), 5)
        print(sw.packet_log().rstrip())

        step("ports (port stats)")
        ports = sw.ctl("port stats")["ports"]
        table([[p["name"], p["type"], p["mode"], "up" if p["link"] else "down", p["rx_packets"],
                p["rx_bytes"], p["tx_packets"], p["tx_bytes"], p["dropped"]] for p in ports],
              ["port", "type", "mode", "link", "rx_pkts", "rx_bytes", "tx_pkts", "tx_bytes", "drops"])
        for p in ports:
            reasons = {r: n for r, n in p["drops"].items() if n}
            if reasons:
                print(f"  {p['name']} drops by reason: {reasons}")

        step("filter slots (filter list)")
        for p in sw.ctl("filter list")["ports"]:
            print(f" port {p['port']}")
            for s in sorted(p["slots"], key=lambda s: -s["slot"]):
                print(f"  vNic slot {s['slot']}\n   name: {s['name']}\n   agentName: {s['agent']}"
                      f"\n   state: {s['state']}\n   failurePolicy: {s['failurePolicy']}")

        step("learned MACs (mac show)")
        macs = sw.ctl("mac show")
        table([[m["mac"], m["port"], m["age_s"]] for m in macs["macs"]], ["mac", "port", "age_s"])

        step("datapath workers (worker stats)")
        table([[w["worker"], w["rx_packets"], w["tx_packets"], w["busy_cycles"], w["idle_cycles"],
                f"{w['cycles_per_packet']:.0f}"] for w in sw.ctl("worker stats")["workers"]],
              ["worker", "rx_pkts", "tx_pkts", "busy_cycles", "idle_cycles", "cycles/pkt"])
    finally:
        step("stopping")
        if guests:
            guests.close()
        rc = sw.stop()
        print(f"palisaded exited {rc}; control socket removed: {not os.path.exists(sw.socket)}")
        work.remove()


if __name__ == "__main__":
    main()
