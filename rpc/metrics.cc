#include "rpc/metrics.h"

#include <rte_cycles.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/kj_errors.h"
#include "common/prometheus_text.h"

#ifndef PALISADE_VERSION
#define PALISADE_VERSION "unknown"
#endif

namespace palisade::rpc {
namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// The phases a migration ends in, and those it passes while active, per direction
// (migration/migration_service.h): every one is written, zero or not, so series never vanish.
constexpr std::pair<const char*, const char*> kEndPhases[] = {
    {"out", "completed"}, {"out", "cancelled"}, {"out", "failed"},
    {"out", "resumed"},   {"in", "running"},    {"in", "discarded"}};
constexpr std::pair<const char*, const char*> kActivePhases[] = {{"out", "copying"},
                                                                 {"out", "copied"},
                                                                 {"out", "cut-over"},
                                                                 {"in", "incoming"},
                                                                 {"in", "ready"}};

// Process start, Unix time: boot time plus the start's clock ticks after boot (as `ps` does).
double StartTime() {
  std::ifstream stat("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');  // the command name may hold spaces
  if (paren == std::string::npos) return 0;
  std::istringstream fields(text.substr(paren + 2));
  std::string field;
  for (int i = 3; i <= 22; i++) fields >> field;  // fields after the name; 22: starttime
  const double ticks = std::strtod(field.c_str(), nullptr);
  std::ifstream proc_stat("/proc/stat");
  std::string key;
  double btime = 0;
  while (proc_stat >> key) {
    if (key == "btime") {
      proc_stat >> btime;
      break;
    }
  }
  return btime + ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string PortKindName(PortKind kind) {
  return kind == PortKind::kUplink ? "uplink" : "vhost-user";
}

}  // namespace

SwitchSample SampleSwitch(const Switch& sw) {
  SwitchSample s;
  s.ports = sw.Ports();
  s.workers = sw.Workers();
  s.tsc_hz = static_cast<double>(rte_get_tsc_hz());
  const fw::PacketLog& log = sw.packet_log();
  s.log_written = log.written();
  s.log_suppressed = log.suppressed();
  s.log_lost = log.lost();
  for (const PortInfo& port : s.ports) {
    s.log_lines[port.name] = log.written_by(port.index);
    std::shared_ptr<fw::StatefulFilter> filter;
    if (!sw.StatefulFilterOf(port.name, &filter).ok() || !filter) continue;
    SwitchSample::FilterSample f;
    f.port = port.name;
    f.connections = filter->flow_count();
    f.connection_limit = filter->options().conn_limit;
    f.table_bytes = filter->memory_bytes();
    if (auto table = filter->table()) {
      f.classifier = table->classifier().engine();
      f.classifier_bytes = table->classifier().memory_bytes();
      const std::vector<fw::RuleStats> stats = filter->rule_stats();
      const std::vector<fw::Rule>& rules = table->rules();
      std::map<uint32_t, fw::RuleStats> by_id;  // ids are not checked unique: one series each
      for (size_t i = 0; i < rules.size() && i < stats.size(); i++) {
        // Rules that have matched nothing have no series yet: a 100,000-rule table would
        // otherwise give every scrape 500,000 of them.
        if (stats[i].evals == 0 && stats[i].pkts[0] == 0 && stats[i].pkts[1] == 0) continue;
        fw::RuleStats& sum = by_id[rules[i].id];
        sum.evals += stats[i].evals;
        for (int d = 0; d < 2; d++) {
          sum.pkts[d] += stats[i].pkts[d];
          sum.bytes[d] += stats[i].bytes[d];
        }
      }
      for (const auto& [id, st] : by_id) f.rules.push_back({id, st});
    }
    s.filters.push_back(std::move(f));
  }
  return s;
}

ProcessSample SampleProcess() {
  static const double start = StartTime();
  ProcessSample p;
  p.version = PALISADE_VERSION;
  p.start_time_s = start;
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    p.cpu_s = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
              static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
  std::ifstream statm("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (statm >> size >> resident)
    p.resident_bytes = resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return p;
}

Status FormatMetrics(const SwitchSample& sw, const migration::MigrationTotals& migration_totals,
                     const std::vector<migration::MigrationInfo>& migrations,
                     const cluster::AgentStatus* cluster, const ProcessSample& process,
                     std::string* out) {
  PrometheusText m;
  using T = MetricType;

  m.Family("palisade_build_info", T::kGauge, "Always 1; the label says which palisaded this is.");
  m.Sample({{"version", process.version}}, 1);
  m.Family("process_start_time_seconds", T::kGauge, "When palisaded started, Unix time.");
  m.Sample({}, process.start_time_s);
  m.Family("process_cpu_seconds_total", T::kCounter,
           "CPU time palisaded used, user and system (polling workers count in full).");
  m.Sample({}, process.cpu_s);
  m.Family("process_resident_memory_bytes", T::kGauge, "Resident memory of palisaded.");
  m.Sample({}, process.resident_bytes);

  // Ports.
  m.Family("palisade_port_info", T::kGauge, "Always 1, one per port: its kind, VM and worker.");
  for (const PortInfo& p : sw.ports) {
    m.Sample({{"port", p.name},
              {"kind", PortKindName(p.spec.kind)},
              {"vm", p.spec.vm},
              {"worker", std::to_string(p.worker)}},
             1);
  }
  m.Family("palisade_port_up", T::kGauge,
           "1 when a guest is connected (vhost-user) or the link is up.");
  for (const PortInfo& p : sw.ports) m.Sample({{"port", p.name}}, p.link_up);
  m.Family("palisade_port_queue_pairs", T::kGauge, "Queue pairs in use.");
  for (const PortInfo& p : sw.ports) m.Sample({{"port", p.name}}, p.queue_pairs);
  struct PortCounter {
    const char* name;
    const char* help;
    uint64_t PortTotals::*field;
  };
  for (const PortCounter& c :
       {PortCounter{"palisade_port_rx_packets_total", "Packets the switch received from the port.",
                    &PortTotals::rx_packets},
        PortCounter{"palisade_port_rx_bytes_total", "Bytes the switch received from the port.",
                    &PortTotals::rx_bytes},
        PortCounter{"palisade_port_tx_packets_total", "Packets the switch sent out of the port.",
                    &PortTotals::tx_packets},
        PortCounter{"palisade_port_tx_bytes_total", "Bytes the switch sent out of the port.",
                    &PortTotals::tx_bytes},
        PortCounter{"palisade_port_consumed_packets_total",
                    "Packets from the port that a filter dealt with itself (neither forwarded nor "
                    "dropped).",
                    &PortTotals::consumed}}) {
    m.Family(c.name, T::kCounter, c.help);
    for (const PortInfo& p : sw.ports) m.Sample({{"port", p.name}}, p.totals.*c.field);
  }
  m.Family("palisade_port_dropped_packets_total", T::kCounter,
           "Packets dropped at the port (received from it, or on their way out of it), by reason.");
  for (const PortInfo& p : sw.ports) {
    for (size_t r = 1; r < static_cast<size_t>(DropReason::kCount); r++) {
      m.Sample({{"port", p.name}, {"reason", DropReasonName(static_cast<DropReason>(r))}},
               p.totals.drops[r]);
    }
  }
  m.Family(
      "palisade_port_log_lines_total", T::kCounter,
      "Packet log lines written for the port's filters (port security and stateful firewall).");
  for (const auto& [port, lines] : sw.log_lines) m.Sample({{"port", port}}, lines);
  m.Family("palisade_port_cluster_revision", T::kGauge,
           "The etcd revision of the cluster policy the port's rules come from (ports managed by "
           "the cluster).");
  for (const PortInfo& p : sw.ports) {
    if (p.cluster_revision > 0) m.Sample({{"port", p.name}}, p.cluster_revision);
  }

  // Stateful filters.
  m.Family("palisade_filter_connections", T::kGauge, "Entries in the port's connection table.");
  for (const auto& f : sw.filters) m.Sample({{"port", f.port}}, f.connections);
  m.Family("palisade_filter_connection_limit", T::kGauge,
           "The connection table's limit; new connections past it are dropped (state-limit).");
  for (const auto& f : sw.filters) m.Sample({{"port", f.port}}, f.connection_limit);
  m.Family("palisade_filter_table_bytes", T::kGauge, "Memory of the port's connection table.");
  for (const auto& f : sw.filters) m.Sample({{"port", f.port}}, f.table_bytes);
  m.Family("palisade_filter_classifier_bytes", T::kGauge,
           "Memory of the port's compiled rule table, by its engine (bitvector or rte_acl); a table "
           "shared by ports counts for each.");
  for (const auto& f : sw.filters) {
    if (!f.classifier.empty()) m.Sample({{"port", f.port}, {"engine", f.classifier}}, f.classifier_bytes);
  }
  m.Family("palisade_rule_evaluations_total", T::kCounter,
           "First packets the classifier gave the rule (new connections, and stateless matches).");
  for (const auto& f : sw.filters) {
    for (const auto& r : f.rules)
      m.Sample({{"port", f.port}, {"rule", std::to_string(r.rule_id)}}, r.stats.evals);
  }
  for (const auto& [name, help, bytes] :
       {std::tuple{"palisade_rule_packets_total",
                   "Packets the rule passed or stopped, by direction (in: toward the VM).", false},
        std::tuple{"palisade_rule_bytes_total",
                   "Bytes the rule passed or stopped, by direction (in: toward the VM).", true}}) {
    m.Family(name, T::kCounter, help);
    for (const auto& f : sw.filters) {
      for (const auto& r : f.rules) {
        const std::string id = std::to_string(r.rule_id);
        for (int d = 0; d < 2; d++) {
          m.Sample({{"port", f.port}, {"rule", id}, {"direction", d == 0 ? "in" : "out"}},
                   bytes ? r.stats.bytes[d] : r.stats.pkts[d]);
        }
      }
    }
  }

  // Workers.
  const auto worker = [](size_t i) { return std::to_string(i); };
  struct WorkerCounter {
    const char* name;
    const char* help;
    uint64_t WorkerStats::*field;
  };
  for (const WorkerCounter& c :
       {WorkerCounter{"palisade_worker_busy_cycles_total",
                      "TSC cycles of poll loops that moved packets.", &WorkerStats::busy_cycles},
        WorkerCounter{"palisade_worker_idle_cycles_total",
                      "TSC cycles of empty poll loops and back-off sleeps.",
                      &WorkerStats::idle_cycles},
        WorkerCounter{"palisade_worker_control_cycles_total",
                      "TSC cycles of control calls the worker ran between its polls (the tick's expiry, "
                      "operators' reads, imports).",
                      &WorkerStats::control_cycles},
        WorkerCounter{"palisade_worker_rx_packets_total",
                      "Packets the worker received from its ports.", &WorkerStats::rx_packets},
        WorkerCounter{"palisade_worker_tx_packets_total", "Packets the worker sent.",
                      &WorkerStats::tx_packets},
        WorkerCounter{"palisade_worker_loops_total", "Poll loops.", &WorkerStats::loops},
        WorkerCounter{"palisade_worker_handoff_packets_total",
                      "Packets other workers handed over for this worker's ports (their IN chains run here).",
                      &WorkerStats::handoff_packets}}) {
    m.Family(c.name, T::kCounter, c.help);
    for (size_t i = 0; i < sw.workers.size(); i++)
      m.Sample({{"worker", worker(i)}}, sw.workers[i].*c.field);
  }
  m.Family("palisade_worker_busy_seconds_total", T::kCounter,
           "Time in poll loops that moved packets (its rate is the worker's load).");
  for (size_t i = 0; i < sw.workers.size(); i++) {
    m.Sample({{"worker", worker(i)}},
             sw.tsc_hz > 0 ? static_cast<double>(sw.workers[i].busy_cycles) / sw.tsc_hz : 0.0);
  }
  m.Family("palisade_worker_idle_seconds_total", T::kCounter,
           "Time in empty poll loops and back-off sleeps.");
  for (size_t i = 0; i < sw.workers.size(); i++) {
    m.Sample({{"worker", worker(i)}},
             sw.tsc_hz > 0 ? static_cast<double>(sw.workers[i].idle_cycles) / sw.tsc_hz : 0.0);
  }
  m.Family("palisade_worker_cycles_per_packet", T::kGauge,
           "Busy cycles per received packet since start (0 before the first packet).");
  for (size_t i = 0; i < sw.workers.size(); i++)
    m.Sample({{"worker", worker(i)}}, sw.workers[i].cycles_per_packet());

  // The packet log.
  m.Family("palisade_log_lines_total", T::kCounter, "Packet log lines written.");
  m.Sample({}, sw.log_written);
  m.Family("palisade_log_lines_suppressed_total", T::kCounter,
           "Packet log lines not written: over the switch's lines per second or a filter's share.");
  m.Sample({}, sw.log_suppressed);
  m.Family("palisade_log_events_lost_total", T::kCounter, "Packet log events lost to a full ring.");
  m.Sample({}, sw.log_lost);

  // Live migrations.
  m.Family("palisade_migrations_started_total", T::kCounter,
           "Live migrations begun: out (a port leaves this switch) or in (a port arrives).");
  for (const char* dir : {"out", "in"}) {
    auto it = migration_totals.started.find(dir);
    m.Sample({{"direction", dir}}, it == migration_totals.started.end() ? uint64_t{0} : it->second);
  }
  m.Family("palisade_migrations_ended_total", T::kCounter,
           "Live migrations ended, by the phase they ended in (out: completed, cancelled, failed, "
           "resumed; in: running, discarded).");
  for (const auto& [dir, phase] : kEndPhases) {
    auto it = migration_totals.ended.find({dir, phase});
    m.Sample({{"direction", dir}, {"phase", phase}},
             it == migration_totals.ended.end() ? uint64_t{0} : it->second);
  }
  m.Family("palisade_migrations_active", T::kGauge, "Live migrations in progress, by phase.");
  for (const auto& [dir, phase] : kActivePhases) {
    uint64_t n = 0;
    for (const auto& info : migrations) n += info.direction == dir && info.phase == phase;
    m.Sample({{"direction", dir}, {"phase", phase}}, n);
  }
  m.Family("palisade_migration_bulk_seconds", T::kSummary,
           "Bulk copies of migrations out of this switch: export, transfer and import.");
  m.Sample({}, static_cast<double>(migration_totals.bulk_us) / 1e6, "_sum");
  m.Sample({}, migration_totals.bulk_copies, "_count");
  m.Family("palisade_migration_bulk_connections", T::kSummary,
           "Connections the bulk copies carried.");
  m.Sample({}, migration_totals.bulk_connections, "_sum");
  m.Sample({}, migration_totals.bulk_copies, "_count");
  m.Family("palisade_migration_final_pause_seconds", T::kSummary,
           "The pause the final delta added to the guest's (device stopped to delta applied).");
  m.Sample({}, static_cast<double>(migration_totals.pause_us) / 1e6, "_sum");
  m.Sample({}, migration_totals.final_deltas, "_count");
  m.Family("palisade_migration_final_delta_entries", T::kSummary,
           "Connection entries (changed and removed) the final deltas carried.");
  m.Sample({}, migration_totals.final_delta_entries, "_sum");
  m.Sample({}, migration_totals.final_deltas, "_count");

  // The cluster (--etcd).
  if (cluster != nullptr) {
    m.Family("palisade_cluster_connected", T::kGauge, "1 while the switch watches etcd.");
    m.Sample({}, cluster->connected);
    m.Family("palisade_cluster_revision", T::kGauge,
             "The etcd revision of the cluster view applied.");
    m.Sample({}, cluster->revision);
    m.Family(
        "palisade_cluster_last_contact_age_seconds", T::kGauge,
        "Since etcd last answered: how stale the view may be (absent before the first answer).");
    if (cluster->last_contact_ms_ago >= 0)
      m.Sample({}, static_cast<double>(cluster->last_contact_ms_ago) / 1e3);
    m.Family("palisade_cluster_relists_total", T::kCounter, "Full reads of the watched range.");
    m.Sample({}, cluster->relists);
    m.Family("palisade_cluster_reconnects_total", T::kCounter,
             "Connections to etcd made again after a failure.");
    m.Sample({}, cluster->reconnects);
    m.Family("palisade_cluster_updates_total", T::kCounter, "Cluster views handed to the switch.");
    m.Sample({}, cluster->updates);
    m.Family("palisade_cluster_published_vms", T::kGauge, "VMs this host publishes in etcd.");
    m.Sample({}, static_cast<uint64_t>(cluster->published));
    m.Family("palisade_cluster_snapshot_revision", T::kGauge,
             "The revision the cluster snapshot on disk holds (0: none yet).");
    m.Sample({}, cluster->snapshot_revision);
    m.Family("palisade_cluster_snapshot_failing", T::kGauge,
             "1 while the cluster snapshot cannot be written (the last one on disk stays).");
    m.Sample({}, static_cast<uint64_t>(!cluster->snapshot_error.empty()));
  }

  if (!m.status().ok()) return m.status();
  *out = m.text();
  return Status::Ok();
}

kj::Promise<std::string> ScrapeMetrics(const MetricsSources& sources) {
  return sources.queue->Run<SwitchSample>([sw = sources.sw]() { return SampleSwitch(*sw); })
      .then([sources](SwitchSample sample) {
        const migration::MigrationTotals none;
        cluster::AgentStatus cluster;
        if (sources.cluster != nullptr) cluster = sources.cluster->status();
        std::string text;
        Check(FormatMetrics(sample, sources.migrations ? sources.migrations->Totals() : none,
                            sources.migrations ? sources.migrations->List()
                                               : std::vector<migration::MigrationInfo>{},
                            sources.cluster != nullptr ? &cluster : nullptr, SampleProcess(),
                            &text));
        return text;
      });
}

MetricsServer::MetricsServer(kj::Timer& timer, MetricsSources sources)
    : service_(table_, sources), http_(timer, table_, service_) {}

kj::Promise<void> MetricsServer::Service::request(kj::HttpMethod method, kj::StringPtr url,
                                                  const kj::HttpHeaders&, kj::AsyncInputStream&,
                                                  Response& response) {
  std::string_view path(url.cStr(), url.size());
  path = path.substr(0, path.find('?'));
  if (path != "/metrics") {
    return response.sendError(404, "Not Found", table_);
  }
  if (method != kj::HttpMethod::GET && method != kj::HttpMethod::HEAD) {
    kj::HttpHeaders headers(table_);
    headers.add("Allow", "GET, HEAD");
    return response.sendError(405, "Method Not Allowed", headers);
  }
  return ScrapeMetrics(sources_).then(
      [this, &response](std::string text) {
        kj::HttpHeaders headers(table_);
        headers.set(kj::HttpHeaderId::CONTENT_TYPE, kContentType);
        auto body = response.send(200, "OK", headers, text.size());
        auto heap = std::make_unique<std::string>(std::move(text));
        auto write = body->write(heap->data(), heap->size());
        return write.attach(kj::mv(body), kj::mv(heap));
      },
      [this, &response](kj::Exception&& e) {
        const std::string why = std::string("scrape failed: ") + e.getDescription().cStr() + "\n";
        kj::HttpHeaders headers(table_);
        headers.set(kj::HttpHeaderId::CONTENT_TYPE, "text/plain; charset=utf-8");
        auto body = response.send(500, "Internal Server Error", headers, why.size());
        auto heap = std::make_unique<std::string>(why);
        auto write = body->write(heap->data(), heap->size());
        return write.attach(kj::mv(body), kj::mv(heap));
      });
}

}  // namespace palisade::rpc
