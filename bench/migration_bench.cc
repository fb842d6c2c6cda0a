// Export and import of 1,000,000 connection entries, each way through the whole path: the
// filter's table walk, the PortState message and its packed bytes; then parse, re-check against
// the destination's rules and insert. Baseline in the same run: a memcpy of the same entries,
// the floor any export must stand on.
//
// The final delta's added pause at cut-over, with 1,000,000 entries of which N carried packets
// since the bulk copy: take the delta, write and pack it, unpack and read it, apply it at the
// destination. Baseline in the same run: copying the whole table at cut-over instead (export +
// import), printed as the ratio full_copy_over_delta. (The daemon adds one RPC round trip over
// its socket; `palisadectl migrate list` shows the whole pause it measured.)
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>

#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <capnp/serialize.h>
#include <kj/io.h>

#include <functional>

#include "firewall/conn_fixture.h"
#include "firewall/packet_builder.h"
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

std::vector<fw::Conn> Entries() { return fw::UdpConns(kEntries, 50); }

// A filter with the rule table and room for kEntries connections.
std::unique_ptr<fw::StatefulFilter> Empty(uint64_t seed) {
  fw::FirewallOptions o;
  o.conn_limit = kEntries;
  auto f = std::make_unique<fw::StatefulFilter>(1, nullptr, o, seed);
  f->SetTable(Table());
  return f;
}

std::unique_ptr<fw::StatefulFilter> Filled(const std::vector<fw::Conn>& conns) {
  auto f = Empty(0x5eed);
  f->ImportConns(conns, 0);
  return f;
}

capnp::ReaderOptions LargeMessages() {
  capnp::ReaderOptions ro;
  ro.traversalLimitInWords = uint64_t{1} << 31;
  return ro;
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

// The import path: unpack the PortState bytes, read them, re-check and insert the entries.
size_t Import(const kj::Array<kj::byte>& wire, fw::StatefulFilter& dest) {
  kj::ArrayInputStream in(wire);
  capnp::PackedMessageReader reader(in, LargeMessages());
  PortExport got;
  (void)migration::Read(reader.getRoot<migration::PortState>(), &got);
  return dest.ImportConns(got.conns, 0);
}

void BM_Import(benchmark::State& state) {
  const kj::Array<kj::byte> wire = Export(*Filled(Entries()));
  for (auto _ : state) {
    state.PauseTiming();
    auto dest = Empty(0x1234);
    state.ResumeTiming();
    benchmark::DoNotOptimize(Import(wire, *dest));
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

// UDP packets from the VM (OUT) on the first n of the Entries() flows.
std::vector<std::vector<uint8_t>> Packets(uint32_t n) {
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < n; i++) {
    fw::FrameSpec s;
    s.proto = 17;
    s.src = fw::IpAddr::V4(0x0a000000u + i);
    s.dst = fw::IpAddr::V4(0xc0a80001u);
    s.sport = static_cast<uint16_t>(1024 + i % 60000);
    s.dport = 53;
    frames.push_back(fw::BuildFrame(s));
  }
  return frames;
}

void Send(fw::StatefulFilter& f, const std::vector<std::vector<uint8_t>>& frames) {
  for (size_t start = 0; start < frames.size(); start += kBurstSize) {
    FilterBatch b{};
    b.dir = Direction::kOut;
    b.count = static_cast<uint16_t>(std::min<size_t>(kBurstSize, frames.size() - start));
    for (uint16_t i = 0; i < b.count; i++) {
      b.pkts[i] = PacketRef{frames[start + i].data(), static_cast<uint32_t>(frames[start + i].size())};
      b.verdict[i] = Verdict::kPass;
    }
    f.Process(b);
  }
}

double MillisOf(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

void BM_FinalDelta(benchmark::State& state) {
  const uint32_t changed = static_cast<uint32_t>(state.range(0));
  const std::vector<fw::Conn> conns = Entries();
  auto source = Filled(conns);
  auto dest = Empty(0x1234);
  // The baseline: the whole table at cut-over.
  const double full_ms = MillisOf([&] { Import(Export(*source), *dest); });
  const auto frames = Packets(changed);
  source->StartTracking();
  double total_ms = 0;
  size_t wire_bytes = 0;
  for (auto _ : state) {
    Send(*source, frames);  // the VM's traffic since the bulk copy (not part of the pause)
    const double ms = MillisOf([&] {
      migration::Delta d;
      d.name = "p";
      d.final = true;
      source->TakeDelta(0, &d.changed, &d.removed);
      capnp::MallocMessageBuilder message;
      migration::WriteDelta(d, message.initRoot<migration::PortDelta>());
      // Unpacked, as the RPC carries it.
      const kj::Array<capnp::word> wire = capnp::messageToFlatArray(message);
      wire_bytes = wire.asBytes().size();
      capnp::FlatArrayMessageReader reader(wire, LargeMessages());
      migration::Delta got;
      (void)migration::ReadDelta(reader.getRoot<migration::PortDelta>(), &got);
      dest->RemoveConns(got.removed);
      benchmark::DoNotOptimize(dest->ImportConns(got.changed, 0));
    });
    state.SetIterationTime(ms / 1000);
    total_ms += ms;
  }
  const double delta_ms = total_ms / static_cast<double>(state.iterations());
  state.counters["changed"] = changed;
  state.counters["delta_KB"] = static_cast<double>(wire_bytes) / 1e3;
  state.counters["full_copy_ms"] = full_ms;
  state.counters["full_copy_over_delta"] = full_ms / delta_ms;
}

BENCHMARK(BM_FinalDelta)->Arg(100)->Arg(1000)->Arg(10000)->Arg(100000)
    ->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_Export)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_Import)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_MemcpyBaseline)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace palisade

BENCHMARK_MAIN();
