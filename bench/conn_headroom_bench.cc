// The connection tables of 500 idle ports with their files in tmpfs (--conn-dir, the default):
// what they commit, idle (the headroom backed ahead follows need, ConnTable::CommitTarget),
// against the same ports once each had a burst that outran it (the whole 16,384 slots, what
// every port committed before the headroom followed need).
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "firewall/conn_segment.h"
#include "firewall/packet_builder.h"
#include "firewall/rule_table.h"
#include "firewall/rule_text.h"
#include "firewall/stateful_filter.h"

namespace palisade::fw {
namespace {

// tmpfs bytes in use where dir is.
double ShmMb(const std::string& dir) {
  struct statvfs s{};
  if (statvfs(dir.c_str(), &s) != 0) return 0;
  return static_cast<double>(s.f_blocks - s.f_bfree) * static_cast<double>(s.f_frsize) / 1e6;
}

void ConnTables(int ports) {
  RuleFile file;
  (void)ParseRuleFile("ruleset r { rule 1 inout protocol any from any to any accept; }", &file);
  std::shared_ptr<const RuleTable> table;
  if (!RuleTable::Compile(file, nullptr, 1, &table).ok()) std::abort();
  const std::string dir = "/dev/shm/palisade-rule-scale-bench-" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const double shm0 = ShmMb(dir);
  std::vector<std::unique_ptr<StatefulFilter>> filters;
  for (int p = 0; p < ports; p++) {
    std::unique_ptr<ConnSegment> seg;
    FirewallOptions o;  // the default limit, 100,000
    if (!ConnSegment::Create(dir + "/port-" + std::to_string(p) + ".conns", ConnTable::SlotsFor(o.conn_limit),
                             "bench", &seg)
             .ok()) {
      std::printf("cannot make connection segments in %s\n", dir.c_str());
      std::filesystem::remove_all(dir);
      return;
    }
    filters.push_back(std::make_unique<StatefulFilter>(static_cast<uint32_t>(p + 1), nullptr, o, 7,
                                                       std::nullopt, std::move(seg)));
    filters.back()->SetTable(table);
    (void)filters.back()->CommitAhead(0, 0);
  }
  const double idle_mb = ShmMb(dir) - shm0;
  // A burst on every port: one UDP connection beyond the 1,024 slots backed, then a tick.
  FrameSpec s;
  s.proto = kProtoUdp;
  std::vector<uint8_t> frame = BuildFrame(s);
  for (auto& f : filters) {
    for (uint32_t i = 0; i <= ConnTable::kMinAhead; i++) {
      frame[28] = static_cast<uint8_t>(i >> 8);  // source address low bytes
      frame[29] = static_cast<uint8_t>(i);
      FilterBatch b{};
      b.dir = Direction::kOut;
      b.count = 1;
      b.pkts[0] = PacketRef{frame.data(), static_cast<uint32_t>(frame.size())};
      b.verdict[0] = Verdict::kPass;
      f->Process(b);
    }
    (void)f->CommitAhead(0, 0);
  }
  const double burst_mb = ShmMb(dir) - shm0;
  filters.clear();
  std::filesystem::remove_all(dir);
  std::printf("%d idle ports' connection tables in tmpfs: %.0f MB (%.0f KB a port); once each had a burst "
              "beyond its headroom (the 16,384 slots every port committed before): %.0f MB; idle / burst %.3fx\n",
              ports, idle_mb, idle_mb * 1e3 / ports, burst_mb, idle_mb / burst_mb);
}

}  // namespace
}  // namespace palisade::fw

int main() {
  palisade::fw::ConnTables(500);
  return 0;
}
