// Rule tables at hypervisor scale, through RuleTable::Compile as the switch compiles them:
//  - compile time and classifier memory at 1,000, 10,000 and 30,000 rules (one host and one
//    service per rule: every rule cuts the address fields, the classifier's worst case);
//  - 500 ports with the same 10,000-rule table (content-addressed: compiled once, shared),
//    against the baseline of tables that differ by one rule (nothing to share), measured on
//    20 of them and scaled to 500: the process's resident memory and the time to load them all.
// Medians of the repetitions; ratios shared / baseline.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "firewall/rule_table.h"
#include "firewall/rule_text.h"

namespace palisade::fw {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double RssMb() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e6;
}

// n rules, each letting one port of one host through; `variant` changes the last rule's port.
RuleFile Rules(int n, int variant = 0) {
  std::string text = "ruleset t {\n";
  for (int i = 0; i < n - 1; i++) {
    text += "  rule " + std::to_string(i + 1) + " at " + std::to_string(i + 1) + " in protocol tcp from any to ip 10." +
            std::to_string(i / 65536 % 256) + "." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256) +
            " port " + std::to_string(1000 + i % 50000) + " accept;\n";
  }
  text += "  rule " + std::to_string(n) + " at " + std::to_string(n) + " out protocol udp from any to any port " +
          std::to_string(53 + variant) + " accept;\n}\n";
  RuleFile f;
  if (!ParseRuleFile(text, &f).ok()) std::abort();
  return f;
}

std::shared_ptr<const RuleTable> Compile(const RuleFile& f, uint32_t generation) {
  std::shared_ptr<const RuleTable> t;
  if (!RuleTable::Compile(f, nullptr, generation, &t).ok()) std::abort();
  return t;
}

void Run() {
  std::printf("compile, one table:\n");
  for (int n : {1000, 10000, 30000}) {
    const RuleFile f = Rules(n, 1000 + n);  // a content no other run has compiled
    const double rss0 = RssMb();
    const auto t0 = Clock::now();
    auto t = Compile(f, 1);
    const double ms = Ms(t0);
    std::printf("  %6d rules: %8.1f ms, classifier %7.1f MB (process +%.1f MB)\n", n, ms,
                static_cast<double>(t->classifier().memory_bytes()) / 1e6, RssMb() - rss0);
  }

  constexpr int kPorts = 500, kDistinct = 20;
  std::vector<RuleFile> files;
  for (int v = 0; v < kDistinct; v++) files.push_back(Rules(10000, v));
  // Shared first: memory the baseline frees stays in the process and would hide the shared cost.
  std::vector<std::shared_ptr<const RuleTable>> tables;
  double rss0 = RssMb();
  auto t0 = Clock::now();
  for (int p = 0; p < kPorts; p++) tables.push_back(Compile(files[0], static_cast<uint32_t>(p + 1)));
  const double shared_ms = Ms(t0);
  const double shared_mb = RssMb() - rss0;
  bool all_shared = true;
  for (const auto& t : tables) all_shared &= t->SharesWith(*tables[0]);
  std::vector<std::shared_ptr<const RuleTable>> distinct;
  rss0 = RssMb();
  t0 = Clock::now();
  for (int v = 1; v <= kDistinct; v++) distinct.push_back(Compile(files[v % kDistinct], 1));
  const double distinct_ms = Ms(t0) * kPorts / kDistinct;
  const double distinct_mb = (RssMb() - rss0) * kPorts / kDistinct;
  std::printf("%d ports x 10,000 rules: the same table %.0f MB in %.0f ms (%s); distinct tables %.0f MB in "
              "%.0f ms (from %d); memory %.3fx, time %.3fx\n",
              kPorts, shared_mb, shared_ms, all_shared ? "compiled once" : "NOT SHARED", distinct_mb,
              distinct_ms, kDistinct, shared_mb / distinct_mb, shared_ms / distinct_ms);
}

}  // namespace
}  // namespace palisade::fw

int main() {
  palisade::fw::Run();
  return 0;
}
