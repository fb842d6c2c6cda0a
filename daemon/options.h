// Options: palisaded's command line. Parsing only; nothing is started here.
// Value type; not thread-safe to share while being filled.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace palisade {

enum class HugepageMode { kAuto, kOn, kOff };

struct Options {
  std::string instance = "default";
  std::string socket;               // the control plane (Cap'n Proto); /run/palisade/<instance>.sock
  std::string tls_listen;           // RPC over TCP with TLS, only when given: HOST:PORT
  std::string metrics_listen;       // Prometheus metrics over HTTP, only when given: ADDR:PORT
  std::string tls_cert, tls_key, tls_ca;  // PEM files: ours, our key, the CA of clients
  // Client certificate common names that may change the switch, and other switches' (live
  // migration into this one only); any other certificate from the CA reads only.
  std::vector<std::string> tls_operators, tls_peers;
  std::vector<unsigned> cores;      // worker CPUs; default: the last CPU we may run on
  HugepageMode hugepages = HugepageMode::kAuto;
  unsigned memory_mb = 512;         // without hugepages
  std::string config;
  std::string state_file;           // connections, saved while running; default
                                    // /run/palisade/<instance>.state
  std::string state_dir;            // the durable configuration; default /var/lib/palisade/<instance>
  std::string conn_dir;             // connection tables that outlive the process (tmpfs);
                                    // default /dev/shm/palisade/<instance>; "none": private memory
  std::string log_dir;
  std::string etcd, host;                      // the cluster (both or neither)
  std::string etcd_cert, etcd_key, etcd_ca;    // PEM files for TLS to etcd
  std::string cluster_snapshot;                // default /var/lib/palisade/<instance>.cluster
  unsigned cluster_lease_s = 10;
  unsigned acl_above_mb = 64;       // tables whose bit vectors would outgrow this use rte_acl; 0: never
  bool help = false;
};

// argv as main() gets it. Errors name the option and what was expected.
Status ParseOptions(int argc, char** argv, Options* out);
// "1", "0-3", "1,3,5-6" -> CPU numbers, each below cpu_limit.
Status ParseCpuList(const std::string& text, unsigned cpu_limit, std::vector<unsigned>* out);
const char* Usage();

}  // namespace palisade
