// palisaded: the Palisade switch daemon. Parses its options and config, starts the EAL, the
// switch (restoring the state a previous palisaded saved) and its workers, serves the Cap'n Proto control plane (its own kj thread, handing every
// call to the libev control loop), and on SIGTERM/SIGINT stops in order: control plane, saving
// the ports' filter state, workers, ports (vhost sockets removed), EAL (runtime files removed).
#include <ev.h>
#include <rte_log.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>

#include "daemon/cluster_glue.h"
#include "migration/port_state.h"
#include "vswitch/control_queue.h"
#include "rpc/server.h"
#include "vswitch/control.h"
#include "daemon/eal.h"
#include "daemon/log.h"
#include "daemon/options.h"
#include "common/socket_path.h"
#include "vswitch/switch.h"

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
};

void OnTick(struct ev_loop*, ev_timer* w, int) {
  auto* t = static_cast<Ticked*>(w->data);
  t->sw->Tick();
  if (t->cluster) t->cluster->Tick();
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

Status RestoreState(Switch& sw, const std::string& path) {
  if (access(path.c_str(), F_OK) != 0) return Status::Ok();
  std::vector<PortExport> ports;
  if (Status s = migration::LoadSwitchState(path, &ports); !s.ok()) {
    return Status::Invalid("cannot restore the saved state (move it away to start without it): " +
                           s.message());
  }
  size_t conns = 0;
  for (const PortExport& p : ports) {
    if (Status s = sw.ImportPort(p); !s.ok()) {
      return Status::Invalid(path + ": cannot restore port '" + p.spec.name + "': " + s.message());
    }
    conns += p.conns.size();
  }
  // Restored once: a later start must not bring back connections that have since ended.
  std::filesystem::rename(path, path + ".restored");
  Log(LogLevel::kInfo, "restored %zu port(s) and %zu connection(s) from %s", ports.size(), conns,
      path.c_str());
  return Status::Ok();
}

void SaveState(Switch& sw, const std::string& path) {
  std::vector<PortExport> ports;
  size_t conns = 0;
  for (const std::string& name : sw.PortNames()) {
    PortExport e;
    if (Status s = sw.ExportPort(name, &e); !s.ok()) {
      Log(LogLevel::kInfo, "not saving %s", s.message().c_str());
      continue;
    }
    if (e.spec.kind != PortKind::kVhostUser) continue;
    conns += e.conns.size();
    ports.push_back(std::move(e));
  }
  if (Status s = migration::SaveSwitchState(path, ports); !s.ok()) {
    Log(LogLevel::kError, "cannot save the switch state: %s", s.message().c_str());
    return;
  }
  Log(LogLevel::kInfo, "saved %zu port(s) and %zu connection(s) to %s", ports.size(), conns,
      path.c_str());
}

// Everything after the EAL is up; returns the exit code.
int Serve(const Options& options, const EalInfo& eal, const std::vector<Command>& config,
          std::FILE* packet_log, const rpc::TlsConfig* tls) {
  std::unique_ptr<Switch> sw;
  Switch::Options sw_options;
  sw_options.worker_lcores = eal.worker_lcores;
  sw_options.packet_log = packet_log;
  if (Status s = Switch::Create(sw_options, &sw); !s.ok()) return Fail(s.message());

  for (size_t i = 0; i < config.size(); i++) {
    std::string reply = Execute(*sw, config[i]);
    if (reply.rfind("{\"ok\":false", 0) == 0) {
      return Fail(options.config + ": command " + std::to_string(i + 1) + " failed: " + reply);
    }
  }

  // A previous palisaded's saved state: its ports and their connections carry on.
  if (Status s = RestoreState(*sw, options.state_file); !s.ok()) return Fail(s.message());

  struct ev_loop* loop = ev_default_loop(EVFLAG_AUTO);
  // RPC calls arrive on the RPC thread and run here, on this loop, through the queue.
  ControlQueue queue(loop);
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
    cluster = std::make_unique<ClusterGlue>(sw.get(), &queue);
    if (Status s = cluster->Start(std::move(agent)); !s.ok()) return Fail("cluster: " + s.message());
  }
  std::unique_ptr<rpc::RpcServer> rpc;
  if (Status s = rpc::RpcServer::Start(options.socket, tls, sw.get(), &queue,
                                       cluster ? cluster->agent() : nullptr, &rpc);
      !s.ok()) {
    return Fail("control socket: " + s.message());
  }
  if (Status s = sw->Start(); !s.ok()) return Fail(s.message());

  ev_signal sigint, sigterm;
  ev_signal_init(&sigint, OnSignal, SIGINT);
  ev_signal_init(&sigterm, OnSignal, SIGTERM);
  ev_signal_start(loop, &sigint);
  ev_signal_start(loop, &sigterm);
  ev_timer tick;
  ev_timer_init(&tick, OnTick, 0.02, 0.02);  // MAC learning waits for it
  Ticked ticked{sw.get(), cluster.get()};
  tick.data = &ticked;
  ev_timer_start(loop, &tick);

  Log(LogLevel::kInfo, "instance %s ready: control socket %s%s%s, %zu worker(s) on CPUs %s, %s",
      options.instance.c_str(), options.socket.c_str(), tls ? ", TLS " : "",
      tls ? tls->listen.c_str() : "", eal.worker_lcores.size(),
      [&] {
        std::string s;
        for (unsigned c : options.cores) s += (s.empty() ? "" : ",") + std::to_string(c);
        return s;
      }().c_str(),
      eal.hugepages ? "hugepages" : "no hugepages");
  ev_run(loop, 0);
  rpc.reset();  // stop serving calls before the switch goes
  cluster.reset();
  SaveState(*sw, options.state_file);
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
  std::vector<std::string> files = {options.socket, options.state_file};
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
