#include "daemon/options.h"

#include <getopt.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace palisade {
namespace {

bool ParseUnsigned(const std::string& s, unsigned long max, unsigned long* out) {
  if (s.empty() || s.size() > 9 || !std::all_of(s.begin(), s.end(), ::isdigit)) return false;
  *out = std::strtoul(s.c_str(), nullptr, 10);
  return *out <= max;
}

bool ValidInstance(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
}

unsigned LastAllowedCpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  unsigned last = 0;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (unsigned c = 0; c < CPU_SETSIZE; c++) {
      if (CPU_ISSET(c, &set)) last = c;
    }
  }
  return last;
}

// ADDR:PORT for a TCP listener: a host name or IPv4 address, an IPv6 address in brackets, or
// * (every address); a port from 1 to 65535.
bool ValidListenAddress(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  unsigned long port;
  if (!ParseUnsigned(text.substr(colon + 1), 65535, &port) || port == 0) return false;
  const std::string host = text.substr(0, colon);
  if (host.front() == '[') return host.size() > 2 && host.back() == ']';
  return host.find_first_of(":[] /") == std::string::npos;
}

}  // namespace

const char* Usage() {
  return "Usage: palisaded [OPTIONS]\n"
         "Palisade virtual switch daemon: vhost-user guest ports, uplinks, an L2 bridge and a\n"
         "filter chain on every port.\n"
         "\n"
         "  --instance NAME       name of this switch (default: default); keeps its DPDK files\n"
         "                        (/var/run/dpdk/palisade-NAME) apart from other instances\n"
         "  --socket PATH         control socket (Cap'n Proto RPC, mode 0600) for palisadectl and\n"
         "                        managers (default: /run/palisade/NAME.sock)\n"
         "  --rpc-tls-listen HOST:PORT  also serve RPC on TCP with TLS; clients must present a\n"
         "                        certificate signed by --tls-ca\n"
         "  --metrics-listen ADDR:PORT  serve Prometheus metrics over HTTP at /metrics there,\n"
         "                        e.g. 127.0.0.1:9464 (off by default)\n"
         "  --tls-cert FILE, --tls-key FILE, --tls-ca FILE   PEM files for --rpc-tls-listen and\n"
         "                        for migrating ports to other switches' HOST:PORT\n"
         "  --tls-operators CN[,CN...]  client certificate names that may change the switch\n"
         "  --tls-peers CN[,CN...]      other switches' certificate names: they may only migrate a\n"
         "                        port here; any other certificate from --tls-ca reads only\n"
         "  --cores LIST          CPUs for datapath workers, one worker each, e.g. 1 or 2-3\n"
         "                        (default: the last CPU this process may use)\n"
         "  --hugepages MODE      auto (use them when mounted and free; default), on (require\n"
         "                        them), off (shareable anonymous memory)\n"
         "  --memory MB           packet memory without hugepages (default: 512)\n"
         "  --acl-above-mb MB|off  a rule table whose bit-vector classifier would take more than\n"
         "                        MB classifies with DPDK's rte_acl instead (default: 64)\n"
         "  --config FILE         control commands to run at start, one per line\n"
         "  --state-dir DIR       the configuration accepted at run time, saved (synced) before each\n"
         "                        change is answered, restored at start (default: /var/lib/palisade/NAME)\n"
         "  --conn-dir DIR        each port's connection table, kept in files in DIR (tmpfs) as it\n"
         "                        changes, so that a crash loses none; read back at start\n"
         "                        (default: /dev/shm/palisade/NAME; none: private memory)\n"
         "  --state-file FILE     what port security learned (and the connections, on a clean stop\n"
         "                        or without --conn-dir), restored at start\n"
         "                        (default: /run/palisade/NAME.state)\n"
         "  --log-dir DIR         write the log to DIR/palisaded-NAME.log and the firewall's\n"
         "                        packet log to DIR/packets-NAME.log instead of stderr\n"
         "  --etcd ENDPOINTS      take policy from the cluster in etcd (host:port, comma-separated):\n"
         "                        ports of VMs that cluster policies apply to get their rules\n"
         "                        from there, and this host publishes its VMs (needs --host)\n"
         "  --host NAME           this host's name in the cluster\n"
         "  --etcd-cert FILE, --etcd-key FILE, --etcd-ca FILE   TLS to etcd (PEM)\n"
         "  --cluster-snapshot FILE  the last cluster view, used at start when etcd cannot be\n"
         "                        reached (default: /var/lib/palisade/NAME.cluster)\n"
         "  --cluster-lease SECONDS  how long this host's VMs stay published after it dies\n"
         "                        (default: 10)\n"
         "  --help                show this help\n";
}

Status ParseCpuList(const std::string& text, unsigned cpu_limit, std::vector<unsigned>* out) {
  std::vector<unsigned> cpus;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    std::string item = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t dash = item.find('-');
    unsigned long lo, hi;
    bool ok = dash == std::string::npos
                  ? ParseUnsigned(item, cpu_limit - 1, &lo) && (hi = lo, true)
                  : ParseUnsigned(item.substr(0, dash), cpu_limit - 1, &lo) &&
                        ParseUnsigned(item.substr(dash + 1), cpu_limit - 1, &hi) && lo <= hi;
    if (!ok) {
      return Status::Invalid("--cores: '" + item + "' is not a CPU or range below " +
                             std::to_string(cpu_limit) + " (expected e.g. 1 or 2-3,5)");
    }
    for (unsigned long c = lo; c <= hi; c++) cpus.push_back(static_cast<unsigned>(c));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  std::sort(cpus.begin(), cpus.end());
  if (std::adjacent_find(cpus.begin(), cpus.end()) != cpus.end()) {
    return Status::Invalid("--cores: a CPU is listed twice in '" + text + "'");
  }
  *out = std::move(cpus);
  return Status::Ok();
}

Status ParseOptions(int argc, char** argv, Options* out) {
  enum { kInstance = 1, kSocket, kStateFile, kStateDir, kConnDir, kTlsListen, kMetricsListen, kTlsCert, kTlsKey, kTlsCa, kTlsOperators, kTlsPeers, kCores,
         kHugepages, kMemory, kConfig, kLogDir, kEtcd, kHost, kEtcdCert, kEtcdKey, kEtcdCa,
         kClusterSnapshot, kClusterLease, kAclAboveMb, kHelp };
  static const option kLong[] = {
      {"instance", required_argument, nullptr, kInstance},
      {"socket", required_argument, nullptr, kSocket},
      {"state-file", required_argument, nullptr, kStateFile},
      {"state-dir", required_argument, nullptr, kStateDir},
      {"conn-dir", required_argument, nullptr, kConnDir},
      {"rpc-tls-listen", required_argument, nullptr, kTlsListen},
      {"metrics-listen", required_argument, nullptr, kMetricsListen},
      {"tls-cert", required_argument, nullptr, kTlsCert},
      {"tls-key", required_argument, nullptr, kTlsKey},
      {"tls-ca", required_argument, nullptr, kTlsCa},
      {"tls-operators", required_argument, nullptr, kTlsOperators},
      {"tls-peers", required_argument, nullptr, kTlsPeers},
      {"cores", required_argument, nullptr, kCores},
      {"hugepages", required_argument, nullptr, kHugepages},
      {"memory", required_argument, nullptr, kMemory},
      {"config", required_argument, nullptr, kConfig},
      {"log-dir", required_argument, nullptr, kLogDir},
      {"etcd", required_argument, nullptr, kEtcd},
      {"host", required_argument, nullptr, kHost},
      {"etcd-cert", required_argument, nullptr, kEtcdCert},
      {"etcd-key", required_argument, nullptr, kEtcdKey},
      {"etcd-ca", required_argument, nullptr, kEtcdCa},
      {"cluster-snapshot", required_argument, nullptr, kClusterSnapshot},
      {"cluster-lease", required_argument, nullptr, kClusterLease},
      {"acl-above-mb", required_argument, nullptr, kAclAboveMb},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  std::string cores;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, ":h", kLong, nullptr)) != -1) {
    const std::string arg = optarg ? optarg : "";
    switch (c) {
      case kInstance:
        if (!ValidInstance(arg)) {
          return Status::Invalid("--instance: '" + arg +
                                 "' must be 1-32 letters, digits, '-' or '_'");
        }
        o.instance = arg;
        break;
      case kSocket: o.socket = arg; break;
      case kTlsListen: o.tls_listen = arg; break;
      case kMetricsListen:
        if (!ValidListenAddress(arg)) {
          return Status::Invalid("--metrics-listen: '" + arg +
                                 "' is not ADDR:PORT (e.g. 127.0.0.1:9464, [::1]:9464 or *:9464)");
        }
        o.metrics_listen = arg;
        break;
      case kStateFile: o.state_file = arg; break;
      case kStateDir: o.state_dir = arg; break;
      case kConnDir: o.conn_dir = arg; break;
      case kTlsCert: o.tls_cert = arg; break;
      case kTlsKey: o.tls_key = arg; break;
      case kTlsCa: o.tls_ca = arg; break;
      case kTlsOperators:
      case kTlsPeers:
        for (size_t pos = 0; pos <= arg.size();) {
          size_t comma = arg.find(',', pos);
          if (comma == std::string::npos) comma = arg.size();
          if (comma > pos) (c == kTlsOperators ? o.tls_operators : o.tls_peers).push_back(arg.substr(pos, comma - pos));
          pos = comma + 1;
        }
        break;
      case kCores: cores = arg; break;
      case kHugepages:
        if (arg == "auto") o.hugepages = HugepageMode::kAuto;
        else if (arg == "on") o.hugepages = HugepageMode::kOn;
        else if (arg == "off") o.hugepages = HugepageMode::kOff;
        else return Status::Invalid("--hugepages: '" + arg + "' is not auto, on or off");
        break;
      case kMemory: {
        unsigned long mb;
        if (!ParseUnsigned(arg, 65536, &mb) || mb < 64) {
          return Status::Invalid("--memory: '" + arg + "' is not a size in MB from 64 to 65536");
        }
        o.memory_mb = static_cast<unsigned>(mb);
        break;
      }
      case kConfig: o.config = arg; break;
      case kLogDir: o.log_dir = arg; break;
      case kEtcd: o.etcd = arg; break;
      case kHost: o.host = arg; break;
      case kEtcdCert: o.etcd_cert = arg; break;
      case kEtcdKey: o.etcd_key = arg; break;
      case kEtcdCa: o.etcd_ca = arg; break;
      case kClusterSnapshot: o.cluster_snapshot = arg; break;
      case kClusterLease: {
        unsigned long s;
        if (!ParseUnsigned(arg, 3600, &s) || s < 2) {
          return Status::Invalid("--cluster-lease: '" + arg + "' is not a number of seconds from 2 to 3600");
        }
        o.cluster_lease_s = static_cast<unsigned>(s);
        break;
      }
      case kAclAboveMb: {
        unsigned long mb = 0;
        if (arg != "off" && (!ParseUnsigned(arg, 65536, &mb) || mb == 0)) {
          return Status::Invalid("--acl-above-mb: '" + arg + "' is not a size in MB from 1 to 65536, or off");
        }
        o.acl_above_mb = static_cast<unsigned>(mb);
        break;
      }
      case kHelp:
      case 'h': o.help = true; break;
      case ':': return Status::Invalid(std::string(argv[optind - 1]) + " needs a value");
      default: return Status::Invalid(std::string("unknown option '") + argv[optind - 1] + "'");
    }
  }
  if (optind < argc) return Status::Invalid(std::string("unexpected argument '") + argv[optind] + "'");
  if (o.socket.empty()) o.socket = "/run/palisade/" + o.instance + ".sock";
  if (o.socket.size() >= 108) return Status::Invalid("--socket: path longer than 107 characters");
  if (o.state_file.empty()) o.state_file = "/run/palisade/" + o.instance + ".state";
  if (o.state_dir.empty()) o.state_dir = "/var/lib/palisade/" + o.instance;
  if (o.conn_dir.empty()) o.conn_dir = "/dev/shm/palisade/" + o.instance;
  if (o.conn_dir == "none") o.conn_dir.clear();
  if (!o.tls_listen.empty() && (o.tls_cert.empty() || o.tls_key.empty() || o.tls_ca.empty())) {
    return Status::Invalid("--rpc-tls-listen needs --tls-cert, --tls-key and --tls-ca");
  }
  if ((o.tls_cert.empty() || o.tls_key.empty() || o.tls_ca.empty()) &&
      !(o.tls_cert.empty() && o.tls_key.empty() && o.tls_ca.empty())) {
    return Status::Invalid("--tls-cert, --tls-key and --tls-ca go together");
  }
  if (o.etcd.empty() != o.host.empty()) return Status::Invalid("--etcd and --host go together");
  if (o.etcd.empty() && !(o.etcd_cert.empty() && o.etcd_key.empty() && o.etcd_ca.empty())) {
    return Status::Invalid("--etcd-cert, --etcd-key and --etcd-ca need --etcd");
  }
  if (o.cluster_snapshot.empty()) o.cluster_snapshot = "/var/lib/palisade/" + o.instance + ".cluster";
  const unsigned ncpu = static_cast<unsigned>(sysconf(_SC_NPROCESSORS_CONF));
  if (cores.empty()) {
    o.cores = {LastAllowedCpu()};
  } else if (Status s = ParseCpuList(cores, ncpu, &o.cores); !s.ok()) {
    return s;
  }
  *out = std::move(o);
  return Status::Ok();
}

}  // namespace palisade
