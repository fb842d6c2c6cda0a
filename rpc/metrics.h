// Metrics: the switch's counters as a Prometheus scrape (text format 0.0.4, written by
// common/prometheus_text.h), served over HTTP at /metrics (kj-http) on the control plane's RPC
// thread when palisaded runs with --metrics-listen.
//
// A scrape reads the switch in one job on its control thread, through the ControlQueue as
// every RPC does (ports with their drops by reason, stateful filters with their rule counters,
// workers, the packet log), and on the RPC thread the migrations and the cluster agent's
// status. It only reads counters the datapath keeps anyway: scraping costs the workers nothing.
// The metric names and labels are listed in README.md ("Metrics").
//
// Thread-safety: MetricsServer and ScrapeMetrics on the RPC thread; SampleSwitch on the control
// thread; FormatMetrics is a pure function.
#pragma once

#include <kj/async-io.h>
#include <kj/compat/http.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cluster/agent.h"
#include "common/status.h"
#include "firewall/stateful_filter.h"
#include "migration/migration_service.h"
#include "vswitch/control_queue.h"
#include "vswitch/switch.h"

namespace palisade::rpc {

// What a scrape reads on the control thread, as plain values.
struct SwitchSample {
  struct RuleCounters {
    uint32_t rule_id;
    fw::RuleStats stats;  // summed over the rules that share the id
  };
  struct FilterSample {
    std::string port;
    uint32_t connections = 0, connection_limit = 0;
    uint64_t table_bytes = 0;
    std::string classifier;  // the rule table's engine (empty: no rules yet)
    uint64_t classifier_bytes = 0;
    std::vector<RuleCounters> rules;  // by rule id
  };
  std::vector<PortInfo> ports;
  std::vector<FilterSample> filters;  // ports with a stateful filter
  std::vector<WorkerStats> workers;
  double tsc_hz = 0;                          // cycles per second of the workers' counters
  std::map<std::string, uint64_t> log_lines;  // port -> packet log lines written for it
  uint64_t log_written = 0, log_suppressed = 0, log_lost = 0;
};

// The process itself.
struct ProcessSample {
  std::string version;
  double start_time_s = 0;  // Unix time
  double cpu_s = 0;         // user + system
  uint64_t resident_bytes = 0;
};

// The switch's part of a scrape; on the control thread.
SwitchSample SampleSwitch(const Switch& sw);
ProcessSample SampleProcess();

// The scrape's text; cluster is null without --etcd. Fails only for a bug in the names
// written (the writer refuses what Prometheus would).
Status FormatMetrics(const SwitchSample& sw, const migration::MigrationTotals& migration_totals,
                     const std::vector<migration::MigrationInfo>& migrations,
                     const cluster::AgentStatus* cluster, const ProcessSample& process,
                     std::string* out);

// Everything a scrape reads. The pointers outlive the server; migrations and cluster may be null.
struct MetricsSources {
  Switch* sw = nullptr;
  ControlQueue* queue = nullptr;
  const migration::MigrationService* migrations = nullptr;
  const cluster::ClusterAgent* cluster = nullptr;
};

// One scrape, from the RPC thread.
kj::Promise<std::string> ScrapeMetrics(const MetricsSources& sources);

// The HTTP endpoint: GET or HEAD /metrics answers the scrape (text/plain; version=0.0.4);
// other paths 404, other methods 405; a scrape that fails 500 with its reason.
class MetricsServer {
 public:
  MetricsServer(kj::Timer& timer, MetricsSources sources);
  // Serves the listener's connections until the promise is dropped.
  kj::Promise<void> Listen(kj::ConnectionReceiver& listener) { return http_.listenHttp(listener); }

 private:
  class Service final : public kj::HttpService {
   public:
    Service(const kj::HttpHeaderTable& table, MetricsSources sources)
        : table_(table), sources_(sources) {}
    kj::Promise<void> request(kj::HttpMethod method, kj::StringPtr url,
                              const kj::HttpHeaders& headers, kj::AsyncInputStream& body,
                              Response& response) override;

   private:
    const kj::HttpHeaderTable& table_;
    MetricsSources sources_;
  };

  kj::HttpHeaderTable table_;
  Service service_;
  kj::HttpServer http_;
};

}  // namespace palisade::rpc
