"""Prometheus metrics (--metrics-listen): the scrape of a switch that carried namespace-guest
traffic (a TCP connection through the stateful firewall, a rejected one, a spoofing guest) is
valid text format 0.0.4 (promtool's strict parser and lint, and prometheus_client's parser with
every sample in a typed family, no series twice), its values equal what palisadectl --json
reports, and a real Prometheus server scraping it every second answers queries with them. Then
the HTTP endpoint's errors, a bad or taken --metrics-listen failing the start, a cancelled
migration counted on both switches, and the cluster's state with --etcd."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from palisade_testlib import (ROOT, Daemon, NamespaceGuests, Session, Workdir,  # noqa: E402
                              echo_server, ping_until_answered, stop_all, wait_for)

MAC_A, MAC_B = "02:00:00:00:10:01", "02:00:00:00:11:01"
IP_A, IP_B = "10.17.0.1", "10.17.0.2"
RULES = """ruleset db {
  rule 1010 at 1 inout protocol tcp from any to any port 5001 accept with log;
  rule 1012 at 2 inout protocol icmp icmptype 8 from any to any accept;
  rule 1002 at 3 inout protocol any from any to any reject with log;
}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, method="GET"):
    """(status, headers, body) of an HTTP request; errors are answers too."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def parse_strictly(text):
    """{(sample name, frozenset of labels): value} of a scrape, and its families by name. Fails
    unless promtool (Prometheus's own parser, and its lint of names and units) accepts it, every
    sample sits in a family with HELP and TYPE, and no family or series comes twice."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, f"promtool check metrics: {r.returncode} {r.stdout}{r.stderr}"
    samples, families = {}, {}
    for family in text_string_to_metric_families(text):
        assert family.type != "untyped", f"{family.name}: a sample outside a typed family"
        assert family.documentation, f"{family.name}: no HELP"
        assert family.name not in families, f"family {family.name} twice"
        families[family.name] = family
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"series {key} twice"
            samples[key] = s.value
    return samples, families


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = Workdir("metrics")
        cls.metrics_port = free_port()
        cls.url = f"http://127.0.0.1:{cls.metrics_port}/metrics"
        cls.sw = Daemon("metrics", cls.work.path,
                        extra=["--metrics-listen", f"127.0.0.1:{cls.metrics_port}"]).start()
        cls.sw.ctl(f"port add vm-a --vhost-user {cls.work.join('a.sock')} --vm web-01 --mac {MAC_A} --ip {IP_A}")
        cls.sw.ctl(f"port add vm-b --vhost-user {cls.work.join('b.sock')} --vm db-01 --mac {MAC_B} --ip {IP_B}")
        cls.sw.ctl("filter attach vm-a --slot 1 --agent swsec")
        cls.sw.ctl("filter attach vm-b --slot 2 --agent sfw")
        rc, _, err = cls.sw.cli("setrules", "-f", "vm-b", "-", stdin=RULES)
        assert rc == 0, err
        cls.guests = NamespaceGuests("pmet", [("a", cls.work.join("a.sock"), IP_A + "/24"),
                                              ("b", cls.work.join("b.sock"), IP_B + "/24")])
        wait_for(lambda: all(p["link"] for p in cls.sw.ctl("port list")["ports"]))
        cls.server = echo_server(cls.guests["b"], 5001)
        cls.traffic()

    @classmethod
    def traffic(cls):
        """An admitted connection (rule 1010, logged), a rejected one (rule 1002: reject drops,
        logged), ping (rule 1012), and guest A using an address it is not bound to (SpoofGuard)."""
        a, b = cls.guests["a"], cls.guests["b"]
        assert ping_until_answered(a, b.ip)
        s = Session(a)
        try:
            assert s.do(f"connect {b.ip} 5001 5") == "connected"
            assert s.do("send hello") == "echo hello"
            assert s.do(f"connect {b.ip} 5003 5").startswith("refused")
        finally:
            s.close()
        a.run("ip", "addr", "flush", "dev", a.dev)
        a.run("ip", "addr", "add", "10.17.0.3/24", "dev", a.dev)
        try:
            assert not ping_until_answered(a, b.ip, tries=2)
        finally:
            a.run("ip", "addr", "flush", "dev", a.dev)
            a.run("ip", "addr", "add", IP_A + "/24", "dev", a.dev)
        assert cls.sw.port("vm-a")["drops"]["SpoofGuard"] > 0

    @classmethod
    def tearDownClass(cls):
        assert stop_all(cls.sw, cls.work, cls.guests, cls.server) == 0

    def cli_json(self, *args):
        rc, out, err = self.sw.cli(*args, json_out=True)
        self.assertEqual(rc, 0, f"{args}: {err}")
        return json.loads(out)

    def scrape(self):
        status, headers, body = get(self.url)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        return body

    def cli_view(self):
        """What palisadectl --json says, in the scrape's terms: {(name, labels): value}."""
        view = {}
        for p in self.cli_json("port", "stats")["ports"]:
            port = p["spec"]["name"]
            for field, name in (("rxPackets", "rx_packets"), ("rxBytes", "rx_bytes"),
                                ("txPackets", "tx_packets"), ("txBytes", "tx_bytes"),
                                ("consumed", "consumed_packets")):
                view[(f"palisade_port_{name}_total", frozenset({"port": port}.items()))] = float(p.get(field, 0))
            for d in p["drops"]:
                view[("palisade_port_dropped_packets_total",
                      frozenset({"port": port, "reason": d["reason"]}.items()))] = float(d.get("packets", 0))
        for w in self.cli_json("worker", "stats")["workers"]:
            labels = frozenset({"worker": str(w.get("worker", 0))}.items())
            for field, name in (("busyCycles", "busy_cycles"), ("rxPackets", "rx_packets"),
                                ("txPackets", "tx_packets")):
                view[(f"palisade_worker_{name}_total", labels)] = float(w.get(field, 0))
        for r in self.cli_json("getrules", "-f", "vm-b", "-s")["stats"]:
            if not (r.get("evals") or r.get("inPackets") or r.get("outPackets")):
                continue  # a rule that has matched nothing has no series yet
            rule = {"port": "vm-b", "rule": str(r["ruleId"])}
            view[("palisade_rule_evaluations_total", frozenset(rule.items()))] = float(r.get("evals", 0))
            for d in ("in", "out"):
                labels = frozenset(dict(rule, direction=d).items())
                view[("palisade_rule_packets_total", labels)] = float(r.get(f"{d}Packets", 0))
                view[("palisade_rule_bytes_total", labels)] = float(r.get(f"{d}Bytes", 0))
        fw = self.cli_json("firewall", "show", "-f", "vm-b")["options"]
        view[("palisade_filter_connections", frozenset({"port": "vm-b"}.items()))] = float(fw.get("flows", 0))
        view[("palisade_filter_connection_limit", frozenset({"port": "vm-b"}.items()))] = float(fw["connectionLimit"])
        engine = frozenset({"port": "vm-b", "engine": fw["classifier"]}.items())
        view[("palisade_filter_classifier_bytes", engine)] = float(fw["classifierBytes"])
        log = self.cli_json("log", "tail", "-n", "1")
        view[("palisade_log_lines_total", frozenset())] = float(log.get("written", 0))
        view[("palisade_log_lines_suppressed_total", frozenset())] = float(log.get("suppressed", 0))
        view[("palisade_log_events_lost_total", frozenset())] = float(log.get("lost", 0))
        return view

    def quiet_comparison(self):
        """A scrape, palisadectl's view, and another scrape; retried until the counters held
        still between the two scrapes (a TERM log line or an expiring entry may land between)."""
        for _ in range(10):
            before, families = parse_strictly(self.scrape())
            view = self.cli_view()
            after, _ = parse_strictly(self.scrape())
            if all(before.get(k) == after.get(k) for k in view):
                return before, after, view, families
            time.sleep(0.5)
        self.fail("the counters never held still between two scrapes")

    def test_1_scrape_is_strict_text_format_and_equals_palisadectl(self):
        before, after, view, families = self.quiet_comparison()
        for key, v in view.items():
            self.assertIn(key, before, f"{key} missing from the scrape")
            self.assertEqual(before[key], v, key)
        # The traffic shows where it should.
        self.assertGreater(value(before, "palisade_port_dropped_packets_total", port="vm-a", reason="SpoofGuard"), 0)
        self.assertGreater(value(before, "palisade_port_dropped_packets_total", port="vm-b", reason="reject"), 0)
        self.assertGreater(value(before, "palisade_rule_packets_total", port="vm-b", rule="1010", direction="in"), 0)
        self.assertGreater(value(before, "palisade_rule_evaluations_total", port="vm-b", rule="1002"), 0)
        self.assertGreater(value(before, "palisade_port_rx_packets_total", port="vm-a"), 0)
        # Log lines per port add up to the switch's (port security's SpoofGuard lines on vm-a,
        # the firewall's on vm-b).
        per_port = {p: value(before, "palisade_port_log_lines_total", port=p) for p in ("vm-a", "vm-b")}
        self.assertEqual(sum(per_port.values()), value(before, "palisade_log_lines_total"))
        self.assertGreater(per_port["vm-a"], 0)
        self.assertGreater(per_port["vm-b"], 0)
        # Idle and control time only grow; cycles per packet is busy cycles over packets received.
        w = {"worker": "0"}
        for name in ("palisade_worker_idle_cycles_total", "palisade_worker_control_cycles_total"):
            self.assertLessEqual(value(before, name, **w), value(after, name, **w))
        busy = value(before, "palisade_worker_busy_cycles_total", **w)
        rx = value(before, "palisade_worker_rx_packets_total", **w)
        self.assertAlmostEqual(value(before, "palisade_worker_cycles_per_packet", **w), busy / rx, delta=busy / rx * 1e-6)
        self.assertGreater(value(before, "palisade_worker_busy_seconds_total", **w), 0)
        # Types, and the process.
        self.assertEqual(families["palisade_port_rx_packets"].type, "counter")
        self.assertEqual(families["palisade_filter_connections"].type, "gauge")
        self.assertEqual(families["palisade_migration_final_pause_seconds"].type, "summary")
        with open(os.path.join(ROOT, "meson.build")) as f:
            version = re.search(r"version : '([^']+)'", f.read()).group(1)
        self.assertEqual(value(before, "palisade_build_info", version=version), 1)
        self.assertLess(abs(value(before, "process_start_time_seconds") - time.time()), 600)
        self.assertEqual(value(before, "palisade_port_up", port="vm-a"), 1)
        self.assertEqual(value(before, "palisade_port_info", port="vm-b", kind="vhost-user", vm="db-01", worker="0"), 1)
        self.assertEqual(value(before, "palisade_migrations_started_total", direction="out"), 0)
        self.assertFalse([k for k in before if k[0].startswith("palisade_cluster_")], "no --etcd, no cluster metrics")

    def test_2_prometheus_scrapes_and_answers_queries(self):
        tmp = tempfile.mkdtemp(prefix="palisade-prometheus-")
        port = free_port()
        api = f"http://127.0.0.1:{port}/api/v1"
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: palisade\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{self.metrics_port}']\n")
        log = open(os.path.join(tmp, "prometheus.log"), "w")
        prom = subprocess.Popen(["prometheus", f"--config.file={tmp}/prometheus.yml",
                                 f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{port}",
                                 "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
        try:
            def query(q):
                status, _, body = get(f"{api}/query?" + urllib.parse.urlencode({"query": q}))
                if status != 200:
                    return None
                result = json.loads(body)["data"]["result"]
                return {frozenset((k, v) for k, v in r["metric"].items() if k not in ("job", "instance")):
                        float(r["value"][1]) for r in result}

            def scraped():
                try:
                    up = query('up{job="palisade"}')
                except OSError:
                    return False
                return up and list(up.values()) == [1.0]
            wait_for(scraped, 60, interval=0.5, what="Prometheus to scrape palisaded")
            _, _, body = get(f"{api}/targets")
            target = json.loads(body)["data"]["activeTargets"][0]
            self.assertEqual((target["health"], target["lastError"]), ("up", ""))

            # The switch is quiet: what Prometheus holds equals palisadectl's counters.
            rx = float(self.sw.port("vm-b")["rx_packets"])
            spoofed = float(self.sw.port("vm-a")["drops"]["SpoofGuard"])
            rejected = float(self.sw.port("vm-b")["drops"]["reject"])
            want = {'palisade_port_rx_packets_total{port="vm-b"}': rx,
                    'palisade_port_dropped_packets_total{port="vm-a",reason="SpoofGuard"}': spoofed,
                    'palisade_port_dropped_packets_total{port="vm-b",reason="reject"}': rejected}
            for q, v in want.items():
                wait_for(lambda: list((query(q) or {}).values()) == [v], 10, interval=0.5,
                         what=f"{q} == {v} in Prometheus (last: {query(q)})")
            self.assertGreater(spoofed, 0)
            # Series with every label: all drop reasons of a port are there.
            reasons = query('palisade_port_dropped_packets_total{port="vm-a"}')
            self.assertEqual(len(reasons), len(self.sw.port("vm-a")["drops"]))
            hits = query('palisade_rule_packets_total{port="vm-b",rule="1010"}')
            self.assertEqual(set(dict(k)["direction"] for k in hits), {"in", "out"})
            # A rate over the scrapes: worker 0 is never busier than all the time.
            wait_for(lambda: query("rate(palisade_worker_busy_seconds_total[5s])"), 15, interval=0.5,
                     what="a rate over two scrapes")
            load = list(query("rate(palisade_worker_busy_seconds_total[5s])").values())[0]
            self.assertGreaterEqual(load, 0)
            self.assertLessEqual(load, 1.05)
        finally:
            prom.terminate()
            try:
                prom.wait(15)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
            log.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_3_http_errors(self):
        base = f"http://127.0.0.1:{self.metrics_port}"
        self.assertEqual(get(base + "/")[0], 404)
        self.assertEqual(get(base + "/metricsx")[0], 404)
        status, headers, _ = get(self.url, method="POST")
        self.assertEqual(status, 405)
        self.assertEqual(headers["Allow"], "GET, HEAD")
        status, headers, body = get(self.url, method="HEAD")
        self.assertEqual((status, body), (200, ""))
        self.assertEqual(get(self.url + "?x=1")[0], 200)

    def test_4_bad_or_taken_metrics_listen_fails_the_start(self):
        other = Daemon("metrics2", self.work.path, extra=["--metrics-listen", "127.0.0.1:99999"])
        r = subprocess.run(other.argv(), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--metrics-listen: '127.0.0.1:99999' is not ADDR:PORT", r.stderr)
        taken = Daemon("metrics2", self.work.path, extra=["--metrics-listen", f"127.0.0.1:{self.metrics_port}"])
        r = subprocess.run(taken.argv(), capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"palisaded: --metrics-listen: cannot listen on 127.0.0.1:{self.metrics_port}: "
                      "Address already in use", r.stderr)
        self.assertFalse(os.path.exists(taken.socket), "nothing stays half-started")
        self.assertFalse(os.path.exists("/var/run/dpdk/palisade-metrics2"))
        self.assertEqual(get(self.url)[0], 200, "the first switch still serves")

    def test_5_migrations_counted_on_both_sides(self):
        """A migration of vm-b (its connections with it) to a second switch, cancelled after
        the bulk copy: counted begun, active, then ended on each side, with the bulk copy's
        connections and time as `migrate list` reports them."""
        dst_port = free_port()
        dst = Daemon("metrics-dst", self.work.path, extra=["--metrics-listen", f"127.0.0.1:{dst_port}"]).start()
        dst_url = f"http://127.0.0.1:{dst_port}/metrics"
        try:
            rc, _, err = self.sw.cli("migrate", "vm-b", "--to", dst.socket, "--socket", self.work.join("b2.sock"))
            self.assertEqual(rc, 0, err)
            out = self.sw.migration("vm-b")
            self.assertEqual(out["phase"], "copied")
            src, _ = parse_strictly(self.scrape())
            self.assertEqual(value(src, "palisade_migrations_started_total", direction="out"), 1)
            self.assertEqual(value(src, "palisade_migrations_active", direction="out", phase="copied"), 1)
            self.assertEqual(value(src, "palisade_migration_bulk_seconds_count"), 1)
            self.assertEqual(value(src, "palisade_migration_bulk_connections_sum"), float(out.get("connections", 0)))
            self.assertAlmostEqual(value(src, "palisade_migration_bulk_seconds_sum"),
                                   float(out.get("bulkMillis", 0)) / 1000, delta=0.0011)
            arrived, _ = parse_strictly(get(dst_url)[2])
            self.assertEqual(value(arrived, "palisade_migrations_started_total", direction="in"), 1)
            self.assertEqual(value(arrived, "palisade_migrations_active", direction="in", phase="incoming"), 1)
            self.assertEqual(value(arrived, "palisade_port_dropped_packets_total", port="vm-b", reason="migrating"), 0)

            rc, _, err = self.sw.cli("migrate", "cancel", "vm-b")
            self.assertEqual(rc, 0, err)
            src, _ = parse_strictly(self.scrape())
            self.assertEqual(value(src, "palisade_migrations_ended_total", direction="out", phase="cancelled"), 1)
            self.assertEqual(value(src, "palisade_migrations_active", direction="out", phase="copied"), 0)
            self.assertEqual(value(src, "palisade_migration_final_pause_seconds_count"), 0, "no final delta")

            def discarded():
                m, _ = parse_strictly(get(dst_url)[2])
                return value(m, "palisade_migrations_ended_total", direction="in", phase="discarded") == 1 and m
            m = wait_for(discarded, 10, what="the destination to count its discarded copy")
            self.assertEqual(value(m, "palisade_migrations_active", direction="in", phase="incoming"), 0)
            self.assertFalse([k for k in m if k[0] == "palisade_port_info"], "the port is gone there")
        finally:
            self.assertEqual(dst.stop(), 0)

    def test_6_cluster_status_with_etcd_unreachable(self):
        """With --etcd the cluster's state is there, as `cluster status` says it: here etcd
        never answers, so not connected, revision 0, no contact age, reconnects counting."""
        port = free_port()
        sw = Daemon("metrics-etcd", self.work.path,
                    extra=["--metrics-listen", f"127.0.0.1:{port}", "--etcd", f"127.0.0.1:{free_port()}",
                           "--host", "h1", "--cluster-snapshot", self.work.join("h1.cluster")]).start()
        try:
            m, families = parse_strictly(get(f"http://127.0.0.1:{port}/metrics")[2])
            rc, out, err = sw.cli("cluster", "status", json_out=True)
            self.assertEqual(rc, 0, err)
            status = json.loads(out)["status"]
            self.assertTrue(status["enabled"])
            self.assertEqual(value(m, "palisade_cluster_connected"), 0)
            self.assertEqual(value(m, "palisade_cluster_revision"), float(status.get("revision", 0)))
            self.assertEqual(value(m, "palisade_cluster_published_vms"), float(status.get("published", 0)))
            self.assertEqual(value(m, "palisade_cluster_snapshot_revision"), float(status.get("snapshotRevision", 0)))
            self.assertEqual(value(m, "palisade_cluster_snapshot_failing"), 0)
            self.assertIn("palisade_cluster_last_contact_age_seconds", families)
            self.assertNotIn(("palisade_cluster_last_contact_age_seconds", frozenset()), m, "never answered")
            for name in ("relists", "reconnects", "updates"):
                self.assertIn((f"palisade_cluster_{name}_total", frozenset()), m)
        finally:
            self.assertEqual(sw.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
