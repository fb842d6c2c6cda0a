"""Side-by-side switch benchmark: the same guest traffic, interleaved round by round, through

  1. the limit: dpdk-testpmd forwarding between two vhost ports (io mode);
  2. Open vSwitch 3.1 with DPDK, (a) plain in_port -> output flows, (b) stateful conntrack flows;
  3. Palisade, (a) as an L2 switch with no rules, (b) with the stateful firewall on both ports and
     a 1,000-rule table whose accepting rule sits at the end, on established flows, (c) the same
     while the control plane compiles 30,000-rule tables for a third port without a break
     (alternating two tables, so that none is shared): the worker's cycles per packet beside
     (b)'s show what big recompiles cost the datapath; (d) the same as (b) while control calls
     that run on the worker (a page of flows, the rule counters, the firewall's state: each
     goes through the worker that owns the port, slot/owner.h) come back to back: what
     operators' reads cost the datapath, and how long a call takes under traffic.

Traffic: one dpdk-testpmd on CPU 0 holding both virtio-user guest ports, request/reply
(5tswap, loop topology, multi-flow, seeded with tx_first 8): replies carry swapped tuples, so
stateful paths see established connections. Every switch forwards on CPU 1. Each switch's own
counters give its core's cycles per packet (testpmd --record-core-cycles, OVS pmd-stats-show,
palisadectl's worker stats: polls that moved packets and the control calls the worker ran); the
guests' counters give Mpps.

Prints medians and ranges, the ratios Palisade/limit and Palisade/OVS, flags rounds disturbed
by other load, and writes every round to a JSON-lines file.

With --flows N[,N...], a second series: OVS conntrack against the Palisade firewall at N
concurrent flows each (the guests' testpmd in flowgen mode, UDP to N destinations round-robin
from both ports, so every flow stays live and each port's table holds N entries), with cycles
per packet, and memory per connection (Palisade: the table's committed bytes over its entries;
OVS: ovs-vswitchd's resident growth over its conntrack entries).

With --setups, a third series: TCP connection setups through the whole switch. The guests are
bench/conngen (both virtio-user ports on CPU 0): the client opens connections (SYN), the server
answers (SYN/ACK), the client completes each (ACK) and closes it at once (RST), so every
connection is four packets that create, establish and close an entry in each port's table. It
prints connections per second, the switch core's cycles per connection (its cycles per packet
times packets per connection), the connections per second one core would set up at that cost,
and the paired ratios against the limit and OVS conntrack."""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# The release build (scripts/bench.sh builds it) unless PALISADE_BUILD names another: the tests'
# build/ is debugoptimized, and its cycles are not the ones to compare with OVS and testpmd.
if "PALISADE_BUILD" not in os.environ and os.path.isfile(os.path.join(ROOT, "build-release", "daemon", "palisaded")):
    os.environ["PALISADE_BUILD"] = os.path.join(ROOT, "build-release")
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from palisade_testlib import BUILD, Daemon, Testpmd, Workdir  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_jiffies(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, all threads
    except (OSError, IndexError, ValueError):
        return 0


def cpu_jiffies():
    """(busy, steal) jiffies of all CPUs: busy excludes idle, iowait and steal."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    steal = v[7] if len(v) > 7 else 0
    return sum(v[:8]) - v[3] - v[4] - steal, steal


def busy_jiffies():
    return cpu_jiffies()[0]


class Limit:
    name = "testpmd io (limit)"

    def start(self, work):
        self.socks = [work.join("lim0.sock"), work.join("lim1.sock")]
        self.tp = Testpmd("bench-limit", [f"net_vhost{i},iface={s},queues=1" for i, s in enumerate(self.socks)],
                          ["--forward-mode=io", "--port-topology=paired", "--record-core-cycles"],
                          lcores="0@0,1@1", mbufs=16384)
        return self.socks

    def connected(self):
        self.tp.cmd("start")

    def _cycles(self):
        out = self.tp.cmd("show fwd stats all")
        # testpmd counts every cycle of its forwarding loop, empty polls included.
        m = re.search(r"total cycles=(\d+) / total \w+ packets=(\d+)", out)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    def begin(self):
        self.c0 = self._cycles()

    def end(self):
        c1 = self._cycles()
        return (c1[0] - self.c0[0]) / max(1, c1[1] - self.c0[1])

    def pids(self):
        return [self.tp.pid]

    def stop(self):
        self.tp.close()


class Ovs:
    def __init__(self, conntrack):
        self.conntrack = conntrack
        self.name = "OVS-DPDK " + ("conntrack" if conntrack else "plain flows")

    def _env(self):
        return dict(os.environ, OVS_RUNDIR=self.dir, OVS_LOGDIR=self.dir, OVS_DBDIR=self.dir)

    def _run(self, *args):
        return subprocess.run(list(args), env=self._env(), check=True, capture_output=True, text=True).stdout

    def start(self, work):
        self.dir = work.join("ovs")
        os.makedirs(self.dir)
        db = os.path.join(self.dir, "conf.db")
        self._run("ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema")
        self._run("taskset", "-c", "0", "ovsdb-server", f"--remote=punix:{self.dir}/db.sock",
                  f"--pidfile={self.dir}/ovsdb-server.pid", "--detach", f"--log-file={self.dir}/ovsdb.log", db)
        vsctl = ["ovs-vsctl", f"--db=unix:{self.dir}/db.sock", "--no-wait"]
        self._run(*vsctl, "init")
        self._run(*vsctl, "set", "Open_vSwitch", ".", "other_config:dpdk-init=true",
                  'other_config:dpdk-extra="--no-huge -m 2048 --no-pci --legacy-mem --file-prefix palisade-bench-ovs"',
                  "other_config:per-port-memory=true", "other_config:pmd-cpu-mask=0x2",
                  "other_config:dpdk-lcore-mask=0x1")
        self._run("taskset", "-c", "0", "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk",
                  f"unix:{self.dir}/db.sock", f"--pidfile={self.dir}/ovs-vswitchd.pid", "--detach",
                  f"--log-file={self.dir}/vswitchd.log")
        vsctl = ["ovs-vsctl", f"--db=unix:{self.dir}/db.sock"]
        self._run(*vsctl, "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev")
        for i in (0, 1):
            self._run(*vsctl, "add-port", "br0", f"vhu{i}", "--", "set", "Interface", f"vhu{i}",
                      "type=dpdkvhostuser", f"ofport_request={i + 1}")
        self._run("ovs-ofctl", "del-flows", "br0")
        if self.conntrack:
            flows = ["table=0,priority=10,ip,ct_state=-trk,actions=ct(table=1)",
                     "table=0,priority=1,in_port=1,actions=output:2",
                     "table=0,priority=1,in_port=2,actions=output:1"]
            for a, b in ((1, 2), (2, 1)):
                flows += [f"table=1,priority=10,ct_state=+trk+new,ip,in_port={a},actions=ct(commit),output:{b}",
                          f"table=1,priority=10,ct_state=+trk+est,ip,in_port={a},actions=output:{b}"]
        else:
            flows = ["in_port=1,actions=output:2", "in_port=2,actions=output:1"]
        for f in flows:
            self._run("ovs-ofctl", "add-flow", "br0", f)
        return [os.path.join(self.dir, "vhu0"), os.path.join(self.dir, "vhu1")]

    def _appctl(self, *args):
        pid = open(os.path.join(self.dir, "ovs-vswitchd.pid")).read().strip()
        return self._run("ovs-appctl", "-t", os.path.join(self.dir, f"ovs-vswitchd-dpdk.{pid}.ctl"), *args)

    def rss_kib(self):
        pid = open(os.path.join(self.dir, "ovs-vswitchd.pid")).read().strip()
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

    def connected(self):
        self.rss0 = self.rss_kib()

    def bytes_per_conn(self):
        n = int(self._appctl("dpctl/ct-get-nconns").strip() or 0)
        return ((self.rss_kib() - self.rss0) * 1024 / n if n else float("nan")), n

    def begin(self):
        self._appctl("dpif-netdev/pmd-stats-clear")

    def end(self):
        out = self._appctl("dpif-netdev/pmd-stats-show")
        m = re.search(r"avg processing cycles per packet: ([\d.]+)", out)
        return float(m.group(1)) if m else float("nan")

    def pids(self):
        return [int(open(os.path.join(self.dir, f)).read()) for f in ("ovs-vswitchd.pid", "ovsdb-server.pid")]

    def stop(self):
        for f in ("ovs-vswitchd.pid", "ovsdb-server.pid"):
            try:
                pid = int(open(os.path.join(self.dir, f)).read())
                os.kill(pid, 15)
                for _ in range(50):
                    if not os.path.exists(f"/proc/{pid}"):
                        break
                    time.sleep(0.1)
            except (OSError, ValueError):
                pass
        shutil.rmtree("/var/run/dpdk/palisade-bench-ovs", ignore_errors=True)


def thousand_rules():
    lines = ["ruleset bench {"]
    for i in range(999):
        lines.append(f"  rule {2000 + i} at {i + 1} inout protocol udp from ip 10.{i // 250}.{i % 250}.1 "
                     f"to any port {1000 + i} accept;")
    lines.append("  rule 1000 at 1000 inout protocol any from any to any accept;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def big_rules(variant):
    lines = ["ruleset big {"]
    for i in range(30000):
        lines.append(f"  rule {100000 + i} at {i + 1} in protocol tcp from ip 172.{16 + i // 65536 % 16}."
                     f"{i // 256 % 256}.{i % 256} to any port {variant * 1000 + i % 1000 + 1} accept;")
    lines.append("}")
    return "\n".join(lines) + "\n"


class Palisade:
    def __init__(self, firewall, recompile=False, setups=False, control=False):
        self.firewall = firewall
        self.recompile = recompile
        self.control = control
        self.setups = setups  # the setups series: closed entries leave within a second
        self.name = "Palisade " + ("firewall, 1,000 rules" if firewall else "L2, no rules")
        if recompile:
            self.name = "Palisade fw, 30k-rule recompiles"
        if control:
            self.name = "Palisade fw, control calls"

    flows = 0  # the flowgen series: the table's limit must hold them

    def start(self, work):
        self.sw = Daemon("bench-" + ("fw" if self.firewall else "l2"), work.path, cores="1").start()
        if self.recompile:
            self.big = []
            for v in (0, 1):
                self.big.append(work.join(f"big{v}.rules"))
                with open(self.big[-1], "w") as f:
                    f.write(big_rules(v))
            self.sw.ctl(f"port add p2 --vhost-user {work.join('pal2.sock')}")
            self.sw.ctl("filter attach p2 --slot 2 --agent sfw")
        socks = [work.join("pal0.sock"), work.join("pal1.sock")]
        for i, s in enumerate(socks):
            self.sw.ctl(f"port add p{i} --vhost-user {s}")
        if self.firewall:
            rules = work.join("bench.rules")
            with open(rules, "w") as f:
                f.write(thousand_rules())
            for i in (0, 1):
                self.sw.ctl(f"filter attach p{i} --slot 2 --agent sfw")
                self.sw.ctl(f"rules load p{i} {rules}")
                if self.flows:
                    self.sw.ctl(f"firewall set p{i} --limit {max(100000, self.flows + self.flows // 4)}")
                if self.setups:
                    self.sw.ctl(f"firewall set p{i} --limit 1000000 --timeout tcp_closed=1")
        return socks

    def bytes_per_conn(self):
        fws = [self.sw.ctl(f"firewall show p{i}") for i in (0, 1)]
        n = sum(f["flows"] for f in fws)
        return (sum(f["table_bytes"] for f in fws) / n if n else float("nan")), n

    def connected(self):
        pass

    def _worker(self):
        return self.sw.ctl("worker stats")["workers"][0]

    def _recompile(self):
        while not self.stop_recompiling.is_set():
            self.sw.ctl(f"rules load p2 {self.big[self.loads % 2]}")
            self.loads += 1

    def _control(self):
        # Back to back. Each command is a palisadectl process (a call's time includes its start),
        # kept on CPU 0 with the guests so that starting them does not take the worker's CPU.
        os.sched_setaffinity(0, {0})
        while not self.stop_control.is_set():
            t0 = time.monotonic()
            self.sw.ctl("flows show p0")
            self.sw.ctl("rules show p0 --stats")
            self.sw.ctl("firewall show p1")
            self.control_s.append(time.monotonic() - t0)

    def begin(self):
        if self.control:
            self.control_s, self.stop_control = [], threading.Event()
            self.controller = threading.Thread(target=self._control)
            self.controller.start()
        if self.recompile:
            self.loads, self.stop_recompiling = 0, threading.Event()
            self.recompiler = threading.Thread(target=self._recompile)
            self.recompiler.start()
        self.w0 = self._worker()

    def end(self):
        w1 = self._worker()
        if self.recompile:
            self.stop_recompiling.set()
            self.recompiler.join()
            print(f"  ({self.loads} loads of a 30,000-rule table during the window)", flush=True)
        if self.control:
            self.stop_control.set()
            self.controller.join()
            n = len(self.control_s)
            print(f"  ({3 * n} control calls during the window, 3 in {statistics.median(self.control_s) * 1e3:.1f} ms "
                  f"median, {max(self.control_s) * 1e3:.1f} ms at most, each a palisadectl process)", flush=True)
        # The control calls the worker ran (the tick's expiry and commit, operators' reads) are
        # its cost too: they take the cycles its polls could have had.
        spent = sum(w1.get(k, 0) - self.w0.get(k, 0) for k in ("busy_cycles", "control_cycles"))
        return spent / max(1, w1["rx_packets"] - self.w0["rx_packets"])

    def pids(self):
        return [self.sw.proc.pid]

    def stop(self):
        self.sw.stop()


def wait_idle(limit_cpus=0.2, timeout=20):
    """Waits (up to timeout) until the machine's busy time over half a second stays under limit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        b0 = busy_jiffies()
        time.sleep(0.5)
        if (busy_jiffies() - b0) / CLK_TCK / 0.5 < limit_cpus:
            return True
    return False


def run_one(cfg, seconds, warmup, flows=0):
    work = Workdir("bench")
    guests = None
    try:
        socks = cfg.start(work)
        macs = ["02:00:00:00:00:01", "02:00:00:00:00:02"]
        vdevs = [f"net_virtio_user{i},path={s},queue_size=1024,mac={macs[i]}" for i, s in enumerate(socks)]
        if flows:
            mode = ["--forward-mode=flowgen", f"--flowgen-flows={flows}", "--port-topology=paired",
                    f"--eth-peer=0,{macs[1]}", f"--eth-peer=1,{macs[0]}"]
        else:
            mode = ["--forward-mode=5tswap", "--port-topology=loop", "--txonly-multi-flow"]
        guests = Testpmd("bench-guests", vdevs, mode, lcores="0@0,1@0", mbufs=16384)
        cfg.connected()
        guests.cmd("start" if flows else "start tx_first 8")
        # Every flow seen at least a few times before the window (about 1 Mpps at the least).
        time.sleep(max(warmup, 3 * flows / 1e6))
        pids = cfg.pids() + [guests.pid, os.getpid()]
        cfg.begin()
        s0, t0 = guests.port_stats(), time.monotonic()
        j0, (b0, st0) = sum(proc_jiffies(p) for p in pids), cpu_jiffies()
        time.sleep(seconds)
        j1, (b1, st1) = sum(proc_jiffies(p) for p in pids), cpu_jiffies()
        s1, t1 = guests.port_stats(), time.monotonic()
        cpp = cfg.end()
        rx = sum(s1[p]["rx"] - s0[p]["rx"] for p in s1)
        other = ((b1 - b0) - (j1 - j0)) / CLK_TCK / (t1 - t0)  # CPUs' worth used by others
        steal = (st1 - st0) / CLK_TCK / (t1 - t0)  # CPUs' worth the hypervisor took away
        res = {"config": cfg.name, "mpps": rx / (t1 - t0) / 1e6, "cycles_per_packet": cpp,
               "other_load_cpus": round(other, 3), "steal_cpus": round(steal, 3),
               "disturbed": other > 0.05 or steal > 0.05}
        if flows:
            res["flows"] = flows
            res["bytes_per_conn"], res["entries"] = cfg.bytes_per_conn()
        guests.cmd("stop")
        return res
    finally:
        if guests:
            guests.close()
        cfg.stop()
        work.remove()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0, help="measurement window per run")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--raw", default="bench-switch-rounds.jsonl", help="file for every round's numbers")
    ap.add_argument("--only", default="limit,ovs,ovs-ct,l2,fw,fw-recompile,fw-control",
                    help="configurations to run, comma-separated (ratios need all of them)")
    ap.add_argument("--setups", action="store_true",
                    help="also TCP connection setups through the limit, OVS conntrack and Palisade (L2, firewall)")
    ap.add_argument("--flows", default="",
                    help="also OVS conntrack against the Palisade firewall at these counts of concurrent "
                         "flows, e.g. 10000,100000,1000000 (--only '' runs this series alone)")
    args = ap.parse_args()
    if args.only and any(w not in KNOWN for w in args.only.split(",")):
        ap.error(f"--only takes {', '.join(KNOWN)}")
    buildtype = build_type(BUILD)
    print(f"Palisade: {os.path.realpath(BUILD)} (buildtype {buildtype})")
    if buildtype != "release":
        print("  warning: not a release build; scripts/bench.sh measures build-release/", file=sys.stderr)
    if args.only:
        main_series(args)
    if args.flows:
        flows_series(args, [int(n) for n in args.flows.split(",")])
    if args.setups:
        setups_series(args)


def build_type(build):
    """The meson buildtype of a build directory, or "unknown"."""
    try:
        with open(os.path.join(build, "meson-info", "intro-buildoptions.json")) as f:
            return next(o["value"] for o in json.load(f) if o["name"] == "buildtype")
    except (OSError, ValueError, StopIteration, KeyError):
        return "unknown"


def run_setups(cfg, seconds, warmup):
    """One switch with bench/conngen as its guests; connections per second and the switch
    core's cycles per connection over the window."""
    work = Workdir("bench")
    gen = None
    try:
        socks = cfg.start(work)
        argv = [os.path.join(BUILD, "bench", "conngen"), "--no-huge", "-m", "512", "--no-pci",
                "--file-prefix", "bench-conngen", "--lcores=0@0", "--log-level=lib.*:error"]
        for i, s in enumerate(socks):
            argv += ["--vdev", f"net_virtio_user{i},path={s},queue_size=1024"]
        argv += ["--", "--seconds", str(seconds), "--warmup", str(warmup), "--hold", "1"]
        gen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        cfg.connected()
        while (line := gen.stdout.readline()) and line.strip() != "window":
            pass
        pids = cfg.pids() + [gen.pid, os.getpid()]
        cfg.begin()
        j0, (b0, st0), t0 = sum(proc_jiffies(p) for p in pids), cpu_jiffies(), time.monotonic()
        out = json.loads(gen.stdout.readline())
        j1, (b1, st1), t1 = sum(proc_jiffies(p) for p in pids), cpu_jiffies(), time.monotonic()
        cpp = cfg.end()
        gen.stdin.close()  # its ports go down only now, after the switch's counters were read
        gen.wait(10)
        other = ((b1 - b0) - (j1 - j0)) / CLK_TCK / (t1 - t0)
        steal = (st1 - st0) / CLK_TCK / (t1 - t0)
        conns = max(1, out["connections"])
        cpc = cpp * out["tx"] / conns  # every packet the guests sent crossed the switch's core
        return {"config": cfg.name, "setups_per_s": out["connections"] / out["seconds"], "cycles_per_conn": cpc,
                "per_core": out["tsc_hz"] / cpc, "packets_per_conn": out["tx"] / conns,
                "other_load_cpus": round(other, 3), "steal_cpus": round(steal, 3),
                "disturbed": other > 0.05 or steal > 0.05}
    finally:
        if gen and gen.poll() is None:
            gen.kill()
            gen.wait()
        cfg.stop()
        shutil.rmtree("/var/run/dpdk/bench-conngen", ignore_errors=True)
        work.remove()


def setups_series(args):
    """TCP setups through the limit, OVS conntrack and Palisade (L2, firewall), paired by round."""
    with open(args.raw, "a" if (args.only or args.flows) else "w") as raw:
        rows = run_rounds(args, raw, lambda: (Limit(), Ovs(True), Palisade(False, setups=True), Palisade(True, setups=True)),
                          lambda cfg: run_setups(cfg, args.seconds, args.warmup),
                          lambda res: f"{res['setups_per_s'] / 1e3:8.1f} k/s {res['cycles_per_conn']:8.0f} cycles/conn "
                                      f"({res['packets_per_conn']:.2f} pkts)",
                          tag="setups ")
    med = lambda xs: statistics.median(xs) if xs else float("nan")
    print()
    print(f"{'configuration':<32} {'setups/s':>10} {'cycles/conn':>12} {'per core at that cost':>22}")
    names = []
    for x in rows:
        if x["config"] not in names:
            names.append(x["config"])
    for n in names:
        rs = [x for x in rows if x["config"] == n]
        print(f"{n:<32} {med([x['setups_per_s'] for x in rs]) / 1e3:9.1f}k {med([x['cycles_per_conn'] for x in rs]):12.0f} "
              f"{med([x['per_core'] for x in rs]) / 1e6:20.2f}M/s")
    by_round = {}
    for x in rows:
        by_round.setdefault(x["round"], {})[x["config"]] = x["cycles_per_conn"]
    fw, l2, lim, ct = "Palisade firewall, 1,000 rules", "Palisade L2, no rules", "testpmd io (limit)", "OVS-DPDK conntrack"
    print(f"{'ratio (cycles per connection)':<48} {'paired median':>13} {'range':>13}")
    for a, b, label in ((fw, lim, "Palisade firewall / limit"), (fw, l2, "Palisade firewall / Palisade L2"),
                        (ct, fw, "OVS conntrack / Palisade firewall (setups per cycle)")):
        paired = [r[a] / r[b] for r in by_round.values() if r.get(a) and r.get(b)]
        if paired:
            print(f"{label:<48} {med(paired):12.2f}x {min(paired):6.2f}-{max(paired):<5.2f}x")
    print("(A connection is four packets: SYN, SYN/ACK, ACK, RST. Per core: the TSC rate over the cycles")
    print(" per connection; target for the firewall at least 2 M/s. The guests, on the other CPU, bound")
    print(" the setups per second; the switch's cycles per connection do not depend on them.)")


def run_rounds(args, raw, configs, run, describe, tag=""):
    """Every configuration configs() gives, once a round, each on an idle machine; every result
    goes to the raw file and is printed (tag, round, name, describe(result)). Returns them."""
    rows = []
    for r in range(args.rounds):
        for cfg in configs():
            wait_idle()
            res = run(cfg)
            res["round"] = r + 1
            rows.append(res)
            raw.write(json.dumps(res) + "\n")
            raw.flush()
            flag = "  DISTURBED" if res["disturbed"] else ""
            print(f"{tag}round {r + 1} {cfg.name:<32} {describe(res)}{flag}", flush=True)
    return rows


def flows_series(args, counts):
    """OVS conntrack and the Palisade firewall at each count of concurrent flows, paired by round."""
    rows = []
    with open(args.raw, "a" if args.only else "w") as raw:
        for n in counts:
            def configs(n=n):
                ovs, pal = Ovs(True), Palisade(True)
                ovs.flows = pal.flows = n
                return (ovs, pal)
            rows += run_rounds(args, raw, configs, lambda cfg, n=n: run_one(cfg, args.seconds, args.warmup, flows=n),
                               lambda res: f"{res['mpps']:6.2f} Mpps {res['cycles_per_packet']:8.1f} cycles/pkt "
                                           f"{res['bytes_per_conn']:7.0f} B/conn ({res['entries']} entries)",
                               tag=f"{n:>8} flows ")
    print()
    print(f"{'flows':>8} {'OVS ct cycles/pkt':>18} {'Palisade fw':>12} {'OVS/Palisade paired':>20} {'range':>12} "
          f"{'B/conn OVS':>11} {'Palisade':>9}")
    for n in counts:
        ovs = {x["round"]: x for x in rows if x["flows"] == n and x["config"].startswith("OVS")}
        pal = {x["round"]: x for x in rows if x["flows"] == n and x["config"].startswith("Palisade")}
        paired = [ovs[r]["cycles_per_packet"] / pal[r]["cycles_per_packet"] for r in ovs if r in pal]
        med = lambda xs: statistics.median(xs) if xs else float("nan")
        print(f"{n:>8} {med([x['cycles_per_packet'] for x in ovs.values()]):18.1f} "
              f"{med([x['cycles_per_packet'] for x in pal.values()]):12.1f} {med(paired):19.2f}x "
              f"{min(paired, default=0):5.2f}-{max(paired, default=0):<5.2f}x "
              f"{med([x['bytes_per_conn'] for x in ovs.values()]):11.0f} {med([x['bytes_per_conn'] for x in pal.values()]):9.0f}")
    print("(OVS/Palisade: packets per cycle, Palisade's over OVS's; target at least 2.5x at 100,000 flows.")
    print(" Bytes per connection, target at most 128: Palisade's table bytes over its entries, both ports;")
    print(" OVS's resident growth since its start over its conntrack entries.)")


KNOWN = {"limit": Limit, "ovs": lambda: Ovs(False), "ovs-ct": lambda: Ovs(True),
         "l2": lambda: Palisade(False), "fw": lambda: Palisade(True),
         "fw-recompile": lambda: Palisade(True, recompile=True),
         "fw-control": lambda: Palisade(True, control=True)}


def main_series(args):

    configs = [KNOWN[w]() for w in args.only.split(",")]
    with open(args.raw, "w") as raw:
        results = run_rounds(args, raw, lambda: configs, lambda cfg: run_one(cfg, args.seconds, args.warmup),
                             lambda res: f"{res['mpps']:6.2f} Mpps {res['cycles_per_packet']:8.1f} cycles/pkt")

    print()
    print(f"{'configuration':<28} {'Mpps median':>11} {'min-max':>13} {'cycles/pkt':>11} {'disturbed':>9}")
    summary = {}
    for cfg in configs:
        rs = [x for x in results if x["config"] == cfg.name]
        clean = [x for x in rs if not x["disturbed"]] or rs
        mpps = statistics.median(x["mpps"] for x in clean)
        cpp = statistics.median(x["cycles_per_packet"] for x in clean)
        summary[cfg.name] = (mpps, cpp)
        print(f"{cfg.name:<28} {mpps:11.2f} {min(x['mpps'] for x in rs):6.2f}-{max(x['mpps'] for x in rs):<6.2f} "
              f"{cpp:11.1f} {sum(x['disturbed'] for x in rs):>6}/{len(rs)}")
    print("(medians over undisturbed rounds; a round is disturbed when other processes, or the hypervisor's")
    print(" steal time, took over 5% of a CPU.")
    print(" Cycles per packet: testpmd counts all cycles of its loop, empty polls included; OVS and")
    print(" Palisade count the cycles of polls that moved packets.)")
    # Each ratio within a round (its configurations ran back to back), then the median of those
    # paired ratios and their range, beside the ratio of the medians: this machine's speed swings
    # between rounds more than the differences measured.
    names = {"limit": "testpmd io (limit)", "ovs": "OVS-DPDK plain flows", "ovs-ct": "OVS-DPDK conntrack",
             "l2": "Palisade L2, no rules", "fw": "Palisade firewall, 1,000 rules",
             "fw-recompile": "Palisade fw, 30k-rule recompiles", "fw-control": "Palisade fw, control calls"}
    by_round = {}
    for x in results:
        by_round.setdefault(x["round"], {})[x["config"]] = x["cycles_per_packet"]
    print()
    print(f"{'ratio (cycles per packet)':<48} {'paired median':>13} {'range':>13} {'of medians':>10}")
    for a, b, label, target in (
            ("l2", "limit", "Palisade L2 / limit", "target: at most 1.10x"),
            ("fw", "limit", "Palisade firewall / limit", "target: at most 1.40x"),
            ("fw", "l2", "Palisade firewall / Palisade L2", ""),
            ("fw-recompile", "fw", "Palisade firewall during recompiles / without", ""),
            ("fw-control", "fw", "Palisade firewall during control calls / without", ""),
            ("ovs", "l2", "OVS plain / Palisade L2 (packets per cycle)", ""),
            ("ovs-ct", "fw", "OVS conntrack / Palisade firewall (packets per cycle)", "target: at least 2.5x")):
        if names[a] not in summary or names[b] not in summary:
            continue
        paired = [r[names[a]] / r[names[b]] for r in by_round.values()
                  if r.get(names[a]) and r.get(names[b])]
        if not paired:
            continue
        print(f"{label:<48} {statistics.median(paired):12.2f}x {min(paired):6.2f}-{max(paired):<5.2f}x "
              f"{summary[names[a]][1] / summary[names[b]][1]:9.2f}x  {target}")
    print(f"Raw rounds: {os.path.abspath(args.raw)}")


if __name__ == "__main__":
    main()
