// The firewall's two classifier engines on the same rule tables, as the filter calls them (one
// packet at a time): bit vectors (firewall/classifier.h) against the switch's rte_acl engine
// (vswitch/acl_classifier.h), at 1,000, 10,000, 30,000 and 100,000 rules: build time, memory,
// time per lookup, and whether every lookup found the same rule. Two shapes of table:
//  - hosts: each rule lets one TCP port of one host through (the address fields' worst case
//    for bit vectors);
//  - groups: security-group style, each rule a service from one of 50 address sets (five
//    prefixes each) to a port range, in or out, IPv4 and IPv6; groups-neg: the same with a
//    tenth of the sources negated.
// Then the engine palisaded chooses at its default --acl-above-mb (64) and its build time,
// the bit vectors' abandoned attempt included.
// Lookups are random, half of them aimed at a rule. Ratios are bit vectors / rte_acl.
#include <rte_eal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "firewall/classifier.h"
#include "vswitch/acl_classifier.h"

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade {
namespace {

using namespace fw;
using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

struct Table {
  std::vector<Rule> rules;
  ResolvedSets sets;
  std::vector<ClassifyKey> keys;
};

Table Hosts(int n, std::mt19937& rng) {
  Table t;
  auto host = [](int i) { return 0x0a000000u + static_cast<uint32_t>(i); };
  auto port = [](int i) { return static_cast<uint16_t>(1000 + i % 50000); };
  t.rules.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    Rule& r = t.rules[static_cast<size_t>(i)];
    r.id = r.pos = static_cast<uint32_t>(i + 1);
    r.dir = RuleDir::kIn;
    r.proto = 6;
    r.dst.kind = Endpoint::Kind::kIp;
    r.dst.prefix = IpPrefix::Host(IpAddr::V4(host(i)));
    r.dst.ports.push_back({port(i), port(i)});
  }
  for (int k = 0; k < 4096; k++) {
    const int i = static_cast<int>(rng() % static_cast<unsigned>(n));
    const uint32_t dst = rng() % 2 ? host(i) : host(i) + (1u << 20);
    t.keys.push_back({true, false, 6, IpAddr::V4(0xc0a80000u + rng() % 65536), IpAddr::V4(dst),
                      static_cast<uint16_t>(1024 + rng() % 60000), port(i)});
  }
  return t;
}

Table Groups(int n, unsigned negated_per_mille, std::mt19937& rng) {
  Table t;
  auto addr = [&](bool v6, uint32_t net) {
    return v6 ? IpAddr::FromValue((u128{0x20010db8} << 96) | (u128{net} << 64) | (rng() % 4096))
              : IpAddr::V4(0x0a000000u | (net << 12) | (rng() % 4096));
  };
  for (int s = 0; s < 50; s++) {
    std::vector<IpPrefix>& p = t.sets["g" + std::to_string(s)];
    for (int m = 0; m < 5; m++) {
      const bool v6 = m >= 3;
      const IpAddr a = addr(v6, static_cast<uint32_t>(s * 5 + m));
      const uint8_t len = static_cast<uint8_t>(v6 ? 120 : 124 + rng() % 5);
      const u128 mask = len >= 128 ? ~u128{0} : ~((~u128{0}) >> len);
      p.push_back(IpPrefix{IpAddr::FromValue(a.value() & mask), len});
    }
  }
  t.rules.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) {
    Rule& r = t.rules[static_cast<size_t>(i)];
    r.id = r.pos = static_cast<uint32_t>(i + 1);
    r.dir = rng() % 2 ? RuleDir::kIn : RuleDir::kOut;
    r.proto = rng() % 4 ? 6 : 17;
    r.src.kind = Endpoint::Kind::kAddrSet;
    r.src.set = "g" + std::to_string(rng() % 50);
    r.src.negate = rng() % 1000 < negated_per_mille;
    const auto lo = static_cast<uint16_t>(1 + rng() % 60000);
    r.dst.ports.push_back({lo, static_cast<uint16_t>(lo + rng() % 16)});
    r.action = rng() % 8 ? Action::kAccept : Action::kDrop;
  }
  for (int k = 0; k < 4096; k++) {
    const Rule& r = t.rules[rng() % static_cast<unsigned>(n)];
    const bool v6 = rng() % 2;
    const auto set_net = static_cast<uint32_t>(std::stoi(r.src.set.substr(1)) * 5 + (v6 ? 3 : 0));
    const bool aim = rng() % 2;
    t.keys.push_back({r.dir == RuleDir::kIn, v6, static_cast<uint8_t>(r.proto), addr(v6, aim ? set_net : 300),
                      addr(v6, 301), static_cast<uint16_t>(1024 + rng() % 60000),
                      static_cast<uint16_t>(aim ? r.dst.ports[0].lo : rng() % 65536)});
  }
  return t;
}

struct Result {
  double build_ms, mb, ns;
  std::vector<int> found;
  std::string engine;
};

// `budget`: the bit vectors' size above which the engine takes the table (0: every table).
Result Measure(const Table& t, const ClassifierEngine* engine, size_t budget = 0) {
  SetLargeTableEngine(engine, budget);
  Result r;
  auto t0 = Clock::now();
  std::unique_ptr<const Classifier> c;
  if (!Classifier::Build(t.rules, t.sets, &c).ok()) std::abort();
  r.build_ms = Ms(t0);
  r.mb = static_cast<double>(c->memory_bytes()) / 1e6;
  r.engine = c->engine();
  constexpr int kPasses = 50;
  int sink = 0;
  t0 = Clock::now();
  for (int p = 0; p < kPasses; p++) {
    for (const ClassifyKey& k : t.keys) sink += c->Lookup(k);
  }
  r.ns = Ms(t0) * 1e6 / (kPasses * static_cast<double>(t.keys.size()));
  for (const ClassifyKey& k : t.keys) r.found.push_back(c->Lookup(k));
  if (sink == 42) std::puts("");
  return r;
}

void Run(const char* shape, int n) {
  std::mt19937 rng(static_cast<unsigned>(n));
  const std::string s = shape;
  const Table t = s == "hosts" ? Hosts(n, rng) : Groups(n, s == "groups" ? 0 : 100, rng);
  static const AclClassifierEngine acl;
  const Result bits = Measure(t, nullptr);
  const Result a = Measure(t, &acl);
  const Result chosen = Measure(t, &acl, size_t{64} << 20);  // palisaded's default --acl-above-mb
  std::printf("%-10s %7d rules: bit vectors %8.1f ms %8.1f MB %6.1f ns | %-9s %8.1f ms %8.1f MB %6.1f ns | "
              "lookup %5.2fx, build %5.2fx, memory %6.2fx | chosen %s in %.1f ms%s\n",
              shape, n, bits.build_ms, bits.mb, bits.ns, a.engine.c_str(), a.build_ms, a.mb, a.ns, bits.ns / a.ns,
              bits.build_ms / a.build_ms, bits.mb / a.mb, chosen.engine.c_str(), chosen.build_ms,
              bits.found == a.found && bits.found == chosen.found ? "" : "  RESULTS DIFFER");
  SetLargeTableEngine(nullptr, 0);
}

}  // namespace
}  // namespace palisade

int main(int argc, char** argv) {
  std::string prefix = "--file-prefix=palisade-acl-" + std::to_string(getpid());
  std::vector<std::string> args = {"acl_bench", "--no-huge", "-m", "2048", "--no-pci", prefix,
                                   "--log-level=lib.*:error", "--no-telemetry"};
  std::vector<char*> eal;
  for (auto& a : args) eal.push_back(a.data());
  if (rte_eal_init(static_cast<int>(eal.size()), eal.data()) < 0) return 1;
  std::vector<int> sizes = {1000, 10000, 30000, 100000};
  if (argc > 1) sizes = {std::atoi(argv[1])};
  std::vector<const char*> shapes = {"hosts", "groups", "groups-neg"};
  if (argc > 2) shapes = {argv[2]};
  for (const char* shape : shapes) {
    for (int n : sizes) palisade::Run(shape, n);
  }
  std::string runtime = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::filesystem::remove_all(runtime);
  return 0;
}
