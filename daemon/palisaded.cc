// palisaded: the Palisade switch daemon. Parses its options and config, starts the EAL, the
// switch (restoring what a previous palisaded kept: daemon/state_store.h, then the config
// file on top) and its workers, serves the Cap'n Proto control plane (its own kj thread, handing
// every call to the libev control loop, which saves each change before answering) and, with
// --metrics-listen, Prometheus metrics over HTTP on that thread (rpc/metrics.h), and on
// SIGTERM/SIGINT stops in order: control plane, saving the configuration and connections,
// workers, ports (vhost sockets removed), EAL (runtime files removed).
#include <ev.h>
#include <rte_log.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>

#include "daemon/cluster_glue.h"
#include "vswitch/acl_classifier.h"
#include "vswitch/control_queue.h"
#include "rpc/server.h"
#include "vswitch/control.h"
#include "daemon/eal.h"
#include "daemon/log.h"
#include "daemon/options.h"
#include "daemon/state_store.h"
#include "common/socket_path.h"
#include "vswitch/switch.h"
#include "vswitch/table_compiler.h"

namespace palisade {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "palisaded: %s\n", message.c_str());
  Log(LogLevel::kError, "%s", message.c_str());
  return 1;
}

void OnSignal(struct ev_loop* loop, ev_signal* w, int) {
  Log(LogLevel::kInfo, "signal %d: shutting down", w->signum);
  ev_break(loop, EVBREAK_ALL);
}

struct Ticked {
  Switch* sw;
  ClusterGlue* cluster;  // null without --etcd
  StateStore* store;
};

void OnTick(struct ev_loop* loop, ev_timer* w, int) {
  auto* t = static_cast<Ticked*>(w->data);
  t->sw->Tick();
  if (t->cluster) t->cluster->Tick();
  t->store->Tick(static_cast<uint64_t>(ev_now(loop) * 1000));
}

// The PEM file at `path` into *pem; false with a message on stderr when it is not one.
bool ReadPem(const std::string& path, std::string* pem) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in || text.str().find("-----BEGIN") == std::string::npos) {
    std::fprintf(stderr, "palisaded: %s: cannot read a PEM file\n", path.c_str());
    return false;
  }
  *pem = text.str();
  return true;
}

// The config file's commands, on top of what the store restored: the file is applied last and
// wins. A port or slot it declares that came back from the store unchanged is kept as it is
// (with its connections); one that differs is replaced by the file's.
Status ApplyConfig(Switch& sw, const std::string& file, const std::vector<Command>& config) {
  for (size_t i = 0; i < config.size(); i++) {
    const Command& cmd = config[i];
    PortInfo port;
    if (cmd.verb == Command::Verb::kPortAdd && sw.GetPort(cmd.port.name, &port).ok()) {
      if (port.spec == cmd.port) continue;
      Log(LogLevel::kWarning, "%s: command %zu: port %s differs from the stored one: the file's replaces it",
          file.c_str(), i + 1, cmd.port.name.c_str());
      if (Status s = sw.RemovePort(cmd.port.name); !s.ok()) return s;
    }
    if (cmd.verb == Command::Verb::kFilterAttach && sw.GetPort(cmd.target, &port).ok()) {
      auto same = std::find_if(port.slots.begin(), port.slots.end(), [&](const SlotInfo& slot) {
        return slot.slot == cmd.filter.slot && slot.agent == "palisade-" + cmd.filter.agent &&
               slot.policy == cmd.filter.policy;
      });
      if (same != port.slots.end()) continue;
    }
    std::string reply = Execute(sw, cmd);
    if (reply.rfind("{\"ok\":false", 0) == 0) {
      return Status::Invalid(file + ": command " + std::to_string(i + 1) + " failed: " + reply);
    }
  }
  return Status::Ok();
}

// Everything after the EAL is up; returns the exit code.
int Serve(const Options& options, const EalInfo& eal, const std::vector<Command>& config,
          std::FILE* packet_log, const rpc::TlsConfig* tls) {
  // Rule tables too large for bit vectors classify with rte_acl, whose contexts live in DPDK's
  // heap (EAL is up).
  static const AclClassifierEngine acl;
  fw::SetLargeTableEngine(options.acl_above_mb > 0 ? &acl : nullptr, size_t{options.acl_above_mb} << 20,
                          [](const std::string& what) { Log(LogLevel::kWarning, "%s", what.c_str()); });
  std::unique_ptr<Switch> sw;
  Switch::Options sw_options;
  sw_options.worker_lcores = eal.worker_lcores;
  sw_options.packet_log = packet_log;
  sw_options.conn_dir = options.conn_dir;
  sw_options.warn = [](const std::string& what) { Log(LogLevel::kError, "%s", what.c_str()); };
  if (Status s = Switch::Create(sw_options, &sw); !s.ok()) return Fail(s.message());

  // What a previous palisaded kept (its configuration, what its ports learned), then the config
  // file on top, whose result is the configuration from now on; then the connections the
  // previous process's tables held, judged by that configuration.
  StateStore store(sw.get(), options.state_dir + "/config", options.state_file, options.conn_dir);
  store.Restore();
  if (Status s = ApplyConfig(*sw, options.config, config); !s.ok()) return Fail(s.message());
  store.RestoreSegments();
  if (Status s = store.SaveConfig(); !s.ok()) return Fail(s.message());

  struct ev_loop* loop = ev_default_loop(EVFLAG_AUTO);
  // RPC calls arrive on the RPC thread and run here, on this loop, through the queue; each
  // change is saved before its answer goes back.
  ControlQueue queue(loop);
  queue.set_after([&store] { return store.SaveConfig(); });
  // Tables compiled again for addresses ports learned or forgot (and the cluster's) compile off
  // this loop.
  TableCompiler compiler(sw.get(), &queue);
  sw->set_recompile_later([&compiler](const std::string& port) {
    compiler.Recompile(port, [port](const Status& s) {
      if (!s.ok()) Log(LogLevel::kError, "port %s keeps the addresses it had: %s", port.c_str(), s.message().c_str());
    });
  });
  // The cluster's policies: its last snapshot is applied before the workers start.
  std::unique_ptr<ClusterGlue> cluster;
  if (!options.etcd.empty()) {
    cluster::AgentOptions agent;
    agent.etcd.endpoints = options.etcd;
    agent.host = options.host;
    agent.snapshot_path = options.cluster_snapshot;
    agent.lease_ttl_s = options.cluster_lease_s;
    for (auto [path, pem] : {std::pair{&options.etcd_cert, &agent.etcd.cert_pem},
                             std::pair{&options.etcd_key, &agent.etcd.key_pem},
                             std::pair{&options.etcd_ca, &agent.etcd.ca_pem}}) {
      if (!path->empty() && !ReadPem(*path, pem)) return 1;
    }
    cluster = std::make_unique<ClusterGlue>(sw.get(), &queue, &compiler);
    if (Status s = cluster->Start(std::move(agent)); !s.ok()) return Fail("cluster: " + s.message());
  }
  std::unique_ptr<rpc::RpcServer> rpc;
  if (Status s = rpc::RpcServer::Start({options.socket, tls, options.metrics_listen}, sw.get(), &queue,
                                       cluster ? cluster->agent() : nullptr, &rpc);
      !s.ok()) {
    return Fail(s.message());
  }
  if (Status s = sw->Start(); !s.ok()) return Fail(s.message());

  ev_signal sigint, sigterm;
  ev_signal_init(&sigint, OnSignal, SIGINT);
  ev_signal_init(&sigterm, OnSignal, SIGTERM);
  ev_signal_start(loop, &sigint);
  ev_signal_start(loop, &sigterm);
  ev_timer tick;
  ev_timer_init(&tick, OnTick, 0.02, 0.02);  // MAC learning waits for it
  Ticked ticked{sw.get(), cluster.get(), &store};
  tick.data = &ticked;
  ev_timer_start(loop, &tick);

  Log(LogLevel::kInfo, "instance %s ready: control socket %s%s%s%s%s, %zu worker(s) on CPUs %s, %s",
      options.instance.c_str(), options.socket.c_str(), tls ? ", TLS " : "",
      tls ? tls->listen.c_str() : "", options.metrics_listen.empty() ? "" : ", metrics http://",
      options.metrics_listen.empty() ? "" : (options.metrics_listen + "/metrics").c_str(),
      eal.worker_lcores.size(),
      [&] {
        std::string s;
        for (unsigned c : options.cores) s += (s.empty() ? "" : ",") + std::to_string(c);
        return s;
      }().c_str(),
      eal.hugepages ? "hugepages" : "no hugepages");
  ev_run(loop, 0);
  rpc.reset();  // stop serving calls before the switch goes
  cluster.reset();
  sw->set_recompile_later(nullptr);  // the compiler goes before the switch
  store.SaveAll();
  ev_timer_stop(loop, &tick);
  ev_signal_stop(loop, &sigint);
  ev_signal_stop(loop, &sigterm);
  return 0;
}

int Main(int argc, char** argv) {
  Options options;
  if (Status s = ParseOptions(argc, argv, &options); !s.ok()) {
    std::fprintf(stderr, "palisaded: %s\nTry 'palisaded --help'.\n", s.message().c_str());
    return 2;
  }
  if (options.help) {
    std::fputs(Usage(), stdout);
    return 0;
  }
  std::vector<Command> config;
  if (!options.config.empty()) {
    if (Status s = LoadConfig(options.config, &config); !s.ok()) {
      std::fprintf(stderr, "palisaded: %s\n", s.message().c_str());
      return 1;
    }
  }
  if (Status s = ClaimSocketPath(options.socket); !s.ok()) {
    std::fprintf(stderr, "palisaded: control socket: %s\n", s.message().c_str());
    return 1;
  }
  std::vector<std::string> files = {options.socket, options.state_file, options.state_dir + "/config"};
  if (!options.etcd.empty()) files.push_back(options.cluster_snapshot);
  for (const std::string& path : files) {
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::create_directories(dir, ec) && ec) {
      std::fprintf(stderr, "palisaded: cannot create %s: %s\n", dir.c_str(), ec.message().c_str());
      return 1;
    }
  }
  rpc::TlsConfig tls;
  if (!options.tls_cert.empty()) {
    tls.listen = options.tls_listen;
    tls.roles.operators = {options.tls_operators.begin(), options.tls_operators.end()};
    tls.roles.peers = {options.tls_peers.begin(), options.tls_peers.end()};
    for (auto [path, pem] : {std::pair{&options.tls_cert, &tls.cert_pem},
                             std::pair{&options.tls_key, &tls.key_pem},
                             std::pair{&options.tls_ca, &tls.ca_pem}}) {
      if (!ReadPem(*path, pem)) return 1;
    }
  }
  FILE* log_file = nullptr;
  if (!options.log_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.log_dir, ec);
    std::string path = options.log_dir + "/palisaded-" + options.instance + ".log";
    log_file = std::fopen(path.c_str(), "a");
    if (log_file == nullptr) {
      std::fprintf(stderr, "palisaded: --log-dir: cannot write %s\n", path.c_str());
      return 1;
    }
    setvbuf(log_file, nullptr, _IOLBF, 0);
    rte_openlog_stream(log_file);
  } else {
    // stderr alone (the journal, under systemd): DPDK's default stream also copies every line
    // to syslog, which the journal would take a second time.
    rte_openlog_stream(stderr);
  }
  // Firewall packet log lines (`with log` rules, state-limit, SpoofGuard).
  std::FILE* packet_log = stderr;
  if (!options.log_dir.empty()) {
    std::string path = options.log_dir + "/packets-" + options.instance + ".log";
    packet_log = std::fopen(path.c_str(), "a");
    if (packet_log == nullptr) {
      std::fprintf(stderr, "palisaded: --log-dir: cannot write %s\n", path.c_str());
      return 1;
    }
  }

  EalInfo eal;
  if (Status s = StartEal(options, &eal); !s.ok()) {
    int rc = Fail(s.message());
    StopEal(eal);
    return rc;
  }
  int rc = Serve(options, eal, config, packet_log, options.tls_cert.empty() ? nullptr : &tls);
  StopEal(eal);
  Log(LogLevel::kInfo, "instance %s stopped", options.instance.c_str());
  if (log_file != nullptr) {
    rte_openlog_stream(nullptr);
    std::fclose(log_file);
  }
  if (packet_log != stderr) std::fclose(packet_log);
  return rc;
}

}  // namespace
}  // namespace palisade

int main(int argc, char** argv) { return palisade::Main(argc, argv); }
