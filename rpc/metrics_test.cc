// The scrape's text from sampled values (no EAL, no server): names, labels, units and the
// families that must always be there. The HTTP endpoint and the gathering from a live switch are
// tested end to end by tests/integration/test_metrics.py.
#include "rpc/metrics.h"

#include <gtest/gtest.h>

#include <string>

namespace palisade::rpc {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

SwitchSample TwoPorts() {
  SwitchSample s;
  PortInfo web{};
  web.name = "vm-web";
  web.index = 0;
  web.spec.name = "vm-web";
  web.spec.vm = "web-01";
  web.link_up = true;
  web.queue_pairs = 1;
  web.totals.rx_packets = 10;
  web.totals.rx_bytes = 1000;
  web.totals.tx_packets = 7;
  web.totals.tx_bytes = 700;
  web.totals.drops[static_cast<size_t>(DropReason::kSpoofGuard)] = 3;
  PortInfo up{};
  up.name = "up0";
  up.index = 1;
  up.spec.name = "up0";
  up.spec.kind = PortKind::kUplink;
  up.cluster_revision = 42;
  s.ports = {web, up};
  SwitchSample::FilterSample f;
  f.port = "vm-web";
  f.connections = 2;
  f.connection_limit = 100000;
  f.table_bytes = 4096;
  f.classifier = "rte_acl";
  f.classifier_bytes = 3000000;
  fw::RuleStats r;
  r.evals = 2;
  r.pkts[0] = 5;
  r.pkts[1] = 6;
  r.bytes[0] = 500;
  r.bytes[1] = 600;
  f.rules = {{1006, r}};
  s.filters = {f};
  WorkerStats w;
  w.busy_cycles = 2000000000;
  w.idle_cycles = 1000000000;
  w.control_cycles = 3000000;
  w.rx_packets = 1000;
  w.tx_packets = 900;
  w.loops = 50;
  s.workers = {w};
  s.tsc_hz = 1e9;
  s.log_lines = {{"vm-web", 4}, {"up0", 0}};
  s.log_written = 4;
  return s;
}

TEST(Metrics, PortsFiltersWorkersAndProcess) {
  ProcessSample process{"0.1.0", 1764064931.5, 2.25, 1 << 20};
  std::string text;
  Status s = FormatMetrics(TwoPorts(), {}, {}, nullptr, process, &text);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_TRUE(Has(text, "palisade_build_info{version=\"0.1.0\"} 1")) << text;
  EXPECT_TRUE(Has(text, "process_start_time_seconds 1764064931.5"));
  EXPECT_TRUE(Has(text, "# TYPE palisade_port_rx_packets_total counter"));
  EXPECT_TRUE(Has(text, "palisade_port_rx_packets_total{port=\"vm-web\"} 10"));
  EXPECT_TRUE(Has(text, "palisade_port_tx_bytes_total{port=\"vm-web\"} 700"));
  EXPECT_TRUE(Has(text, "palisade_port_info{port=\"up0\",kind=\"uplink\",vm=\"\",worker=\"0\"} 1"));
  EXPECT_TRUE(Has(text, "palisade_port_up{port=\"vm-web\"} 1"));
  // Every reason for every port, zero or not, named as `port stats` names them.
  EXPECT_TRUE(
      Has(text, "palisade_port_dropped_packets_total{port=\"vm-web\",reason=\"SpoofGuard\"} 3"));
  EXPECT_TRUE(Has(text, "palisade_port_dropped_packets_total{port=\"up0\",reason=\"tx-full\"} 0"));
  EXPECT_EQ(text.find("reason=\"none\""), std::string::npos);
  EXPECT_TRUE(Has(text, "palisade_port_log_lines_total{port=\"vm-web\"} 4"));
  EXPECT_TRUE(Has(text, "palisade_port_cluster_revision{port=\"up0\"} 42"));
  EXPECT_EQ(text.find("palisade_port_cluster_revision{port=\"vm-web\"}"), std::string::npos)
      << "only ports whose rules come from the cluster";
  EXPECT_TRUE(Has(text, "palisade_filter_connections{port=\"vm-web\"} 2"));
  EXPECT_TRUE(Has(text, "palisade_filter_connection_limit{port=\"vm-web\"} 100000"));
  EXPECT_TRUE(Has(text, "palisade_filter_classifier_bytes{port=\"vm-web\",engine=\"rte_acl\"} 3000000"));
  EXPECT_TRUE(Has(text, "palisade_rule_evaluations_total{port=\"vm-web\",rule=\"1006\"} 2"));
  EXPECT_TRUE(
      Has(text, "palisade_rule_packets_total{port=\"vm-web\",rule=\"1006\",direction=\"in\"} 5"));
  EXPECT_TRUE(
      Has(text, "palisade_rule_bytes_total{port=\"vm-web\",rule=\"1006\",direction=\"out\"} 600"));
  EXPECT_TRUE(Has(text, "palisade_worker_busy_cycles_total{worker=\"0\"} 2000000000"));
  EXPECT_TRUE(Has(text, "palisade_worker_control_cycles_total{worker=\"0\"} 3000000"));
  EXPECT_TRUE(Has(text, "palisade_worker_busy_seconds_total{worker=\"0\"} 2"));
  EXPECT_TRUE(Has(text, "palisade_worker_idle_seconds_total{worker=\"0\"} 1"));
  EXPECT_TRUE(Has(text, "palisade_worker_cycles_per_packet{worker=\"0\"} 2000000"));
  EXPECT_TRUE(Has(text, "palisade_log_lines_total 4"));
  // Without --etcd there is no cluster to speak of.
  EXPECT_EQ(text.find("palisade_cluster_"), std::string::npos);
}

TEST(Metrics, MigrationsEveryPhaseAndSummaries) {
  migration::MigrationTotals totals;
  totals.started["out"] = 3;
  totals.ended[{"out", "completed"}] = 1;
  totals.ended[{"out", "failed"}] = 1;
  totals.bulk_copies = 2;
  totals.bulk_connections = 600000;
  totals.bulk_us = 1500000;
  totals.final_deltas = 1;
  totals.final_delta_entries = 2;
  totals.pause_us = 250;
  migration::MigrationInfo copying;
  copying.port = "vm-a";
  copying.direction = "out";
  copying.phase = "copied";
  std::string text;
  ASSERT_TRUE(FormatMetrics({}, totals, {copying}, nullptr, {}, &text).ok());
  EXPECT_TRUE(Has(text, "palisade_migrations_started_total{direction=\"out\"} 3")) << text;
  EXPECT_TRUE(Has(text, "palisade_migrations_started_total{direction=\"in\"} 0"));
  EXPECT_TRUE(
      Has(text, "palisade_migrations_ended_total{direction=\"out\",phase=\"completed\"} 1"));
  EXPECT_TRUE(Has(text, "palisade_migrations_ended_total{direction=\"in\",phase=\"discarded\"} 0"));
  EXPECT_TRUE(Has(text, "palisade_migrations_active{direction=\"out\",phase=\"copied\"} 1"));
  EXPECT_TRUE(Has(text, "palisade_migrations_active{direction=\"in\",phase=\"incoming\"} 0"));
  EXPECT_TRUE(Has(text, "# TYPE palisade_migration_bulk_seconds summary"));
  EXPECT_TRUE(Has(text, "palisade_migration_bulk_seconds_sum 1.5"));
  EXPECT_TRUE(Has(text, "palisade_migration_bulk_seconds_count 2"));
  EXPECT_TRUE(Has(text, "palisade_migration_bulk_connections_sum 600000"));
  EXPECT_TRUE(Has(text, "palisade_migration_final_pause_seconds_sum 0.00025"));
  EXPECT_TRUE(Has(text, "palisade_migration_final_delta_entries_count 1"));
}

TEST(Metrics, ClusterWhenRunningWithEtcd) {
  cluster::AgentStatus status;
  status.connected = true;
  status.revision = 1234;
  status.last_contact_ms_ago = 1500;
  status.updates = 9;
  status.published = 2;
  std::string text;
  ASSERT_TRUE(FormatMetrics({}, {}, {}, &status, {}, &text).ok());
  EXPECT_TRUE(Has(text, "palisade_cluster_connected 1")) << text;
  EXPECT_TRUE(Has(text, "palisade_cluster_revision 1234"));
  EXPECT_TRUE(Has(text, "palisade_cluster_last_contact_age_seconds 1.5"));
  EXPECT_TRUE(Has(text, "palisade_cluster_updates_total 9"));
  EXPECT_TRUE(Has(text, "palisade_cluster_published_vms 2"));
  status.last_contact_ms_ago = -1;  // never: no sample rather than a made-up age
  ASSERT_TRUE(FormatMetrics({}, {}, {}, &status, {}, &text).ok());
  EXPECT_TRUE(Has(text, "# TYPE palisade_cluster_last_contact_age_seconds gauge"));
  EXPECT_EQ(text.find("\npalisade_cluster_last_contact_age_seconds "), std::string::npos);
}

}  // namespace
}  // namespace palisade::rpc
