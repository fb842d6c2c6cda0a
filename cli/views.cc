#include "cli/views.h"

#include <cstdio>
#include <string>
#include <vector>

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade::cli {
namespace {

std::string S(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

// Left-aligned columns sized to their widest cell.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); i++) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); i++) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

const char* ProtoName(uint8_t p) {
  switch (p) {
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 58: return "ipv6-icmp";
  }
  return nullptr;
}

}  // namespace

std::string Service(uint16_t port) {
  static const std::pair<uint16_t, const char*> kNames[] = {
      {22, "ssh"}, {53, "domain"}, {67, "bootps"}, {68, "bootpc"}, {80, "http"},
      {123, "ntp"}, {443, "https"}, {3306, "mysql"}, {5432, "postgresql"}};
  for (const auto& [p, name] : kNames) {
    if (p == port) return std::string(name) + "(" + std::to_string(port) + ")";
  }
  return "Unknown(" + std::to_string(port) + ")";
}

std::string SummarizeDvfilter(capnp::List<rpc::PortFilters>::Reader ports) {
  std::string out;
  for (auto p : ports) {
    out += "world " + std::to_string(p.getIndex()) + " vmm0:" +
           (p.getVm().size() ? S(p.getVm()) : S(p.getPort())) + "\n";
    out += " port " + std::to_string(p.getIndex()) + " " + S(p.getPort()) + "\n";
    // Highest slot first, as hypervisors list them.
    std::vector<rpc::FilterSlot::Reader> slots;
    for (auto slot : p.getSlots()) slots.push_back(slot);
    for (auto it = slots.rbegin(); it != slots.rend(); ++it) {
      auto s = *it;
      out += "  vNic slot " + std::to_string(s.getSlot()) + "\n";
      out += "   name: " + S(s.getName()) + "\n";
      out += "   agentName: " + (s.getAgent().size() ? S(s.getAgent()) : std::string("none")) + "\n";
      out += std::string("   state: ") + (s.getAgent().size() ? "IOChain Attached" : "IOChain Empty") + "\n";
      out += "   vmState: Attached\n";
      out += std::string("   failurePolicy: ") + (s.getFailOpen() ? "failOpen" : "failClosed") + "\n";
      out += "   slowPathID: none\n";
      if (p.getClusterRevision() > 0 && S(s.getAgent()) == "palisade-sfw") {
        out += "   filter source: Cluster Policy (etcd revision " + std::to_string(p.getClusterRevision()) + ")\n";
      } else {
        out += "   filter source: Dynamic Filter Creation\n";
      }
    }
  }
  return out;
}

std::string RuleStatsLines(capnp::List<rpc::RuleStats>::Reader stats) {
  std::string out;
  for (auto r : stats) {
    out += "rule " + std::to_string(r.getRuleId()) + ": " + std::to_string(r.getEvals()) +
           " evals, in " + std::to_string(r.getInPackets()) + " out " +
           std::to_string(r.getOutPackets()) + " pkts, in " + std::to_string(r.getInBytes()) +
           " out " + std::to_string(r.getOutBytes()) + " bytes\n";
  }
  return out;
}

std::string FlowsHeader(size_t active) {
  return "Count retrieved from kernel active(L3,L4)=" + std::to_string(active) +
         ", active(L2)+inactive(L3,L4)=0, drop(L2,L3,L4)=0\n";
}

std::string FlowLine(rpc::Flow::Reader f) {
  char id[20];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(f.getFlowId()));
  const char* proto = ProtoName(f.getProto());
  const bool ports = f.getProto() == 6 || f.getProto() == 17;
  auto end = [&](capnp::Text::Reader a, uint16_t port) {
    std::string addr = f.getV6() ? "[" + S(a) + "]" : S(a);
    return ports ? addr + ":" + Service(port) : addr;
  };
  return std::string(id) + " Active " + (proto ? proto : std::to_string(f.getProto())) + " " +
         (f.getV6() ? "86dd" : "0800") + " " + (f.getTowardVm() ? "0" : "1") + " " +
         std::to_string(f.getRuleId()) + " 0 0 " + end(f.getSrc(), f.getSrcPort()) + " " +
         end(f.getDst(), f.getDstPort()) + " " +
         std::to_string(f.getOrigBytes() + f.getReplyBytes()) + " " + S(f.getState()) + " " +
         std::to_string(f.getOrigBytes()) + " " + std::to_string(f.getReplyBytes()) + " " +
         std::to_string(f.getOrigPackets()) + " " + std::to_string(f.getReplyPackets()) + "\n";
}

std::string PortTable(capnp::List<rpc::PortInfo>::Reader ports, bool stats) {
  std::vector<std::vector<std::string>> rows;
  if (stats) {
    rows.push_back({"PORT", "RX-PKTS", "RX-BYTES", "TX-PKTS", "TX-BYTES", "DROPS", "BY REASON"});
  } else {
    rows.push_back({"PORT", "INDEX", "TYPE", "WHERE", "MODE", "LINK", "QUEUES", "WORKER", "VM"});
  }
  for (auto p : ports) {
    auto spec = p.getSpec();
    if (stats) {
      uint64_t total = 0;
      std::string reasons;
      for (auto d : p.getDrops()) {
        total += d.getPackets();
        if (d.getPackets()) reasons += (reasons.empty() ? "" : " ") + S(d.getReason()) + "=" + std::to_string(d.getPackets());
      }
      rows.push_back({S(spec.getName()), std::to_string(p.getRxPackets()), std::to_string(p.getRxBytes()),
                      std::to_string(p.getTxPackets()), std::to_string(p.getTxBytes()),
                      std::to_string(total), reasons.empty() ? "-" : reasons});
    } else {
      const bool vhost = spec.isVhostUser();
      rows.push_back({S(spec.getName()), std::to_string(p.getIndex()), vhost ? "vhost-user" : "uplink",
                      vhost ? S(spec.getVhostUser()) : S(spec.getUplink()),
                      vhost ? (spec.getClient() ? "client" : "server") : "-", p.getLink() ? "up" : "down",
                      std::to_string(p.getQueuePairs()), std::to_string(p.getWorker()),
                      spec.getVm().size() ? S(spec.getVm()) : "-"});
    }
  }
  return Table(rows);
}

std::string PortDetail(rpc::PortInfo::Reader p) {
  auto spec = p.getSpec();
  const bool vhost = spec.isVhostUser();
  auto list = [](capnp::List<capnp::Text>::Reader items) {
    std::string out;
    for (auto t : items) out += (out.empty() ? "" : " ") + S(t);
    return out.empty() ? std::string("-") : out;
  };
  std::vector<std::vector<std::string>> rows = {
      {"port:", S(spec.getName())},
      {"index:", std::to_string(p.getIndex())},
      {"type:", vhost ? "vhost-user" : "uplink"},
      {vhost ? "socket:" : "devargs:", vhost ? S(spec.getVhostUser()) : S(spec.getUplink())}};
  if (vhost) {
    rows.push_back({"mode:", spec.getClient() ? "client (QEMU owns the socket)"
                                              : "server (the switch owns the socket)"});
  }
  rows.push_back({"link:", p.getLink() ? "up" : "down"});
  rows.push_back({"queues:", std::to_string(p.getQueuePairs())});
  rows.push_back({"worker:", std::to_string(p.getWorker())});
  rows.push_back({"vm:", spec.getVm().size() ? S(spec.getVm()) : "-"});
  rows.push_back({"mac:", spec.getMac().size() ? S(spec.getMac()) : "-"});
  rows.push_back({"ips:", list(spec.getIps())});
  rows.push_back({"allow:", list(spec.getAllow())});
  return Table(rows);
}

std::string WorkerTable(capnp::List<rpc::WorkerStats>::Reader workers) {
  std::vector<std::vector<std::string>> rows = {
      {"WORKER", "RX-PKTS", "TX-PKTS", "HANDOFF-PKTS", "BUSY-CYCLES", "IDLE-CYCLES", "CONTROL-CYCLES", "CYCLES/PKT", "BUSY"}};
  for (auto w : workers) {
    char cpp[32], busy[16];
    const double pkts = static_cast<double>(w.getRxPackets());
    std::snprintf(cpp, sizeof cpp, "%.1f", pkts > 0 ? static_cast<double>(w.getBusyCycles()) / pkts : 0.0);
    const double total = static_cast<double>(w.getBusyCycles() + w.getIdleCycles() + w.getControlCycles());
    std::snprintf(busy, sizeof busy, "%.1f%%", total > 0 ? 100.0 * static_cast<double>(w.getBusyCycles()) / total : 0.0);
    rows.push_back({std::to_string(w.getWorker()), std::to_string(w.getRxPackets()),
                    std::to_string(w.getTxPackets()), std::to_string(w.getHandoffPackets()),
                    std::to_string(w.getBusyCycles()),
                    std::to_string(w.getIdleCycles()), std::to_string(w.getControlCycles()), cpp, busy});
  }
  return Table(rows);
}

std::string MacTable(capnp::List<rpc::MacEntry>::Reader macs, uint32_t ageing) {
  std::vector<std::vector<std::string>> rows = {{"MAC", "PORT", "AGE"}};
  for (auto m : macs) rows.push_back({S(m.getMac()), S(m.getPort()), std::to_string(m.getAgeSeconds())});
  return Table(rows) + "ageing: " + std::to_string(ageing) + " s\n";
}

std::string FirewallView(const std::string& filter, rpc::FirewallOptions::Reader o) {
  std::string out = "filter: " + filter + "\n";
  out += "connection limit: " + std::to_string(o.getConnectionLimit()) + "\n";
  out += "connections: " + std::to_string(o.getFlows()) + " (" + std::to_string(o.getTableBytes()) + " bytes)\n";
  if (o.getClassifier().size()) {
    out += "rules: " + std::to_string(o.getRules()) + ", classified by " + S(o.getClassifier()) + " (" +
           std::to_string(o.getClassifierBytes()) + " bytes)\n";
  }
  out += std::string("re-check on rule change: ") + (o.getRecheck() ? "on" : "off") + "\n";
  out += "timeouts (s):\n";
  for (auto t : o.getTimeouts()) out += "  " + S(t.getName()) + " " + std::to_string(t.getSeconds()) + "\n";
  return out;
}

std::string MigrationTable(capnp::List<rpc::Migration>::Reader migrations) {
  if (migrations.size() == 0) return "no migrations\n";
  std::vector<std::vector<std::string>> rows = {
      {"Port", "Dir", "Peer", "Phase", "Started", "Bulk", "Bulk(ms)", "Rounds", "In-rounds", "Final",
       "Pause(us)", "Error"}};
  for (auto m : migrations) {
    rows.push_back({S(m.getPort()), S(m.getDirection()), S(m.getPeer()), S(m.getPhase()),
                    S(m.getStarted()), std::to_string(m.getConnections()),
                    std::to_string(m.getBulkMillis()), std::to_string(m.getRounds()),
                    std::to_string(m.getRoundEntries()),
                    "+" + std::to_string(m.getDeltaChanged()) + " -" + std::to_string(m.getDeltaRemoved()),
                    std::to_string(m.getPauseMicros()), S(m.getError())});
  }
  return Table(rows);
}

std::string ConnectionTable(const std::string& socket, capnp::List<rpc::Connection>::Reader conns) {
  std::vector<std::vector<std::string>> rows = {{"Proto", "Local Address", "Foreign Address", "State", "Since", "Kind", "Name"}};
  for (auto c : conns) {
    const std::string peer = S(c.getPeer());
    const bool tls = peer.rfind("tls", 0) == 0;
    rows.push_back({tls ? "tls" : "unix", tls ? "-" : socket, peer, "ESTABLISHED", S(c.getSince()), S(c.getKind()),
                    S(c.getName())});
  }
  return Table(rows);
}

}  // namespace palisade::cli
