"""Palisade demo: one palisaded with two guests, traffic across the switch, and the counters.

The guests are network namespaces with real Linux stacks, attached through vhost-user by a
dpdk-testpmd virtio-user peer (QEMU guests arrive with the end-to-end issue)."""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from palisade_testlib import (Daemon, NamespaceGuests, Workdir, ping_until_answered,  # noqa: E402
                              tcp_transfer, wait_for)


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
        for name in ("web", "db"):
            line = f"port add vm-{name} --vhost-user {work.join(name + '.sock')}"
            print(f"> {line}")
            sw.ctl(line)
            line = f"filter attach vm-{name} --slot 3 --agent counting"
            print(f"> {line}")
            sw.ctl(line)

        step("attaching two guests (namespaces web 10.20.0.1 and db 10.20.0.2)")
        guests = NamespaceGuests("pdemo", [("web", work.join("web.sock"), "10.20.0.1/24"),
                                           ("db", work.join("db.sock"), "10.20.0.2/24")])
        wait_for(lambda: all(p["link"] for p in sw.ctl("port list")["ports"]))

        step("web pings db")
        ok = ping_until_answered(guests["web"], guests["db"].ip)
        print(guests["web"].run("ping", "-c", "3", "-i", "0.2", guests["db"].ip,
                                check=False).stdout.strip() if ok else "no answer")

        step("web streams 32 MiB to db over TCP")
        start = time.monotonic()
        got, got_sha, sent, sent_sha = tcp_transfer(guests["db"], guests["web"], 5001, 32 << 20)
        secs = time.monotonic() - start
        print(f"sent {sent} bytes, db received {got} bytes in {secs:.2f} s "
              f"({got * 8 / secs / 1e6:.0f} Mbit/s); sha256 {'matches' if got_sha == sent_sha else 'DIFFERS'}")

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
            for s in p["slots"]:
                print(f"  vNic slot {s['slot']}\n   name: {s['name']}\n   agentName: {s['agent']}"
                      f"\n   state: {s['state']}\n   failurePolicy: {s['failurePolicy']}"
                      f"\n   counted: out {s['out_packets']} pkts / in {s['in_packets']} pkts")

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
