// Classifier lookups at 1, 100, 1,000 and 10,000 rules, against the baseline of a linear
// first-match scan over the same rules in the same run. The accepting rule sits at the end
// (the worst case for a scan), preceded by rules that each allow one service to one host.
#include <benchmark/benchmark.h>

#include <random>

#include "firewall/classifier.h"

namespace palisade::fw {
namespace {

std::vector<Rule> Table(int n) {
  std::vector<Rule> rules;
  for (int i = 0; i < n - 1; i++) {
    Rule r;
    r.id = static_cast<uint32_t>(1000 + i);
    r.pos = static_cast<uint32_t>(i + 1);
    r.proto = 6;
    r.src.kind = Endpoint::Kind::kIp;
    r.src.prefix = IpPrefix{IpAddr::V4(0x0a000000u + static_cast<uint32_t>(i) * 256), 96 + 24};
    r.dst.kind = Endpoint::Kind::kIp;
    r.dst.prefix = IpPrefix::Host(IpAddr::V4(0xac100000u + static_cast<uint32_t>(i)));
    r.dst.ports.push_back({static_cast<uint16_t>(1000 + i % 20000), static_cast<uint16_t>(1000 + i % 20000)});
    r.action = Action::kAccept;
    rules.push_back(r);
  }
  Rule last;
  last.id = 1;
  last.pos = static_cast<uint32_t>(n);
  last.proto = 6;
  last.dst.ports.push_back({80, 80});
  rules.push_back(last);
  return rules;
}

std::vector<ClassifyKey> Keys() {
  std::vector<ClassifyKey> keys;
  std::mt19937 rng(1);
  for (int i = 0; i < 1024; i++) {
    keys.push_back(ClassifyKey{false, false, 6, IpAddr::V4(0xc0a80000u + rng() % 65536),
                               IpAddr::V4(0xc0a90000u + rng() % 65536),
                               static_cast<uint16_t>(1024 + rng() % 60000), 80});
  }
  return keys;
}

int LinearLookup(const std::vector<Rule>& rules, const ClassifyKey& k) {
  for (size_t i = 0; i < rules.size(); i++) {
    const Rule& r = rules[i];
    if (r.proto != kAny && r.proto != k.proto) continue;
    if (r.src.kind == Endpoint::Kind::kIp && !r.src.prefix.Contains(k.src)) continue;
    if (r.dst.kind == Endpoint::Kind::kIp && !r.dst.prefix.Contains(k.dst)) continue;
    bool port_ok = r.dst.ports.empty();
    for (const PortRange& p : r.dst.ports) port_ok |= k.dport >= p.lo && k.dport <= p.hi;
    if (!port_ok) continue;
    return static_cast<int>(i);
  }
  return -1;
}

void BM_Classifier(benchmark::State& state) {
  const std::vector<Rule> rules = Table(static_cast<int>(state.range(0)));
  std::unique_ptr<const Classifier> c;
  if (!Classifier::Build(rules, {}, &c).ok()) state.SkipWithError("build failed");
  const std::vector<ClassifyKey> keys = Keys();
  size_t i = 0;
  for (auto _ : state) {
    int r = c->Lookup(keys[i++ & 1023]);
    benchmark::DoNotOptimize(r);
  }
  state.counters["memory_KiB"] = static_cast<double>(c->memory_bytes()) / 1024;
}

void BM_LinearBaseline(benchmark::State& state) {
  const std::vector<Rule> rules = Table(static_cast<int>(state.range(0)));
  const std::vector<ClassifyKey> keys = Keys();
  size_t i = 0;
  for (auto _ : state) {
    int r = LinearLookup(rules, keys[i++ & 1023]);
    benchmark::DoNotOptimize(r);
  }
}

BENCHMARK(BM_Classifier)->Arg(1)->Arg(100)->Arg(1000)->Arg(10000);
BENCHMARK(BM_LinearBaseline)->Arg(1)->Arg(100)->Arg(1000)->Arg(10000);

}  // namespace
}  // namespace palisade::fw

BENCHMARK_MAIN();
