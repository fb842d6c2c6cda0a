// Export and import of 1,000,000 connection entries, each way through the whole path: the
// filter's table walk, the PortState message and its packed bytes; then parse, re-check against
// the destination's rules and insert. Baseline in the same run: a memcpy of the same entries,
// the floor any export must stand on.
#include <benchmark/benchmark.h>

#include <cstring>

#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <kj/io.h>

#include "firewall/rule_text.h"
#include "firewall/stateful_filter.h"
#include "migration/port_state.h"

namespace palisade {
namespace {

constexpr uint32_t kEntries = 1000000;

std::shared_ptr<const fw::RuleTable> Table() {
  fw::RuleFile f;
  (void)fw::ParseRuleFile("ruleset t { rule 1 out protocol udp from any to any port 53 accept; }", &f);
  std::shared_ptr<const fw::RuleTable> t;
  (void)fw::RuleTable::Compile(f, nullptr, 1, &t);
  return t;
}

std::vector<fw::Conn> Entries() {
  std::vector<fw::Conn> conns(kEntries);
  for (uint32_t i = 0; i < kEntries; i++) {
    fw::Conn& c = conns[i];
    c = fw::Conn{};
    c.lo = fw::IpAddr::V4(0x0a000000u + i);
    c.hi = fw::IpAddr::V4(0xc0a80001u);
    c.lo_port = static_cast<uint16_t>(1024 + i % 60000);
    c.hi_port = 53;
    c.proto = 17;
    c.state = fw::ConnState::kMultiple;
    c.flags = fw::kConnOrigIsLo;
    c.rule_id = 1;
    c.rule_pos = 1;
    c.generation = 1;
    c.flow_id = i;
    c.pkts[0] = c.pkts[1] = 3;
    c.bytes[0] = c.bytes[1] = 300;
    c.expires_s = 50;
  }
  return conns;
}

std::unique_ptr<fw::StatefulFilter> Filled(const std::vector<fw::Conn>& conns) {
  fw::FirewallOptions o;
  o.conn_limit = kEntries;
  auto f = std::make_unique<fw::StatefulFilter>(1, nullptr, o, 0x5eed);
  f->SetTable(Table());
  f->ImportConns(conns, 0);
  return f;
}

// The export path: walk the table, build the PortState message, pack it into bytes.
kj::Array<kj::byte> Export(fw::StatefulFilter& filter) {
  PortExport e;
  e.spec.name = "p";
  e.spec.path = "/p.sock";
  uint32_t cursor = 0;
  while (cursor != fw::ConnTable::kNil) cursor = filter.ExportConns(cursor, 65536, 0, &e.conns);
  capnp::MallocMessageBuilder message;
  migration::Write(e, message.initRoot<migration::PortState>());
  kj::VectorOutputStream out;
  capnp::writePackedMessage(out, message);
  return kj::heapArray(out.getArray());
}

void BM_Export(benchmark::State& state) {
  auto filter = Filled(Entries());
  size_t bytes = 0;
  for (auto _ : state) {
    bytes = Export(*filter).size();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["entries"] = kEntries;
  state.counters["message_MB"] = static_cast<double>(bytes) / 1e6;
}

void BM_Import(benchmark::State& state) {
  const kj::Array<kj::byte> wire = Export(*Filled(Entries()));
  for (auto _ : state) {
    state.PauseTiming();
    fw::FirewallOptions o;
    o.conn_limit = kEntries;
    auto dest = std::make_unique<fw::StatefulFilter>(2, nullptr, o, 0x1234);
    dest->SetTable(Table());
    state.ResumeTiming();
    kj::ArrayInputStream in(wire);
    capnp::ReaderOptions ro;
    ro.traversalLimitInWords = uint64_t{1} << 31;
    capnp::PackedMessageReader reader(in, ro);
    PortExport got;
    (void)migration::Read(reader.getRoot<migration::PortState>(), &got);
    size_t n = dest->ImportConns(got.conns, 0);
    benchmark::DoNotOptimize(n);
    state.PauseTiming();
    dest.reset();
    state.ResumeTiming();
  }
  state.counters["entries"] = kEntries;
}

void BM_MemcpyBaseline(benchmark::State& state) {
  const std::vector<fw::Conn> conns = Entries();
  std::vector<fw::Conn> copy(conns.size());
  for (auto _ : state) {
    std::memcpy(copy.data(), conns.data(), conns.size() * sizeof(fw::Conn));
    benchmark::DoNotOptimize(copy.data());
  }
}

BENCHMARK(BM_Export)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_Import)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_MemcpyBaseline)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace palisade

BENCHMARK_MAIN();
