// Connection tracking: lookups in tables of 10,000 and 1,000,000 entries against a
// std::unordered_map baseline holding the same keys, new connections per second through the
// whole stateful filter (parse, classify, insert), bytes of memory per entry, and established
// packets through one filter and through the pair a switched packet meets.
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <unordered_map>

#include "firewall/conn_table.h"
#include "firewall/packet_builder.h"
#include "firewall/parsed.h"
#include "firewall/rule_text.h"
#include "firewall/stateful_filter.h"

namespace palisade::fw {
namespace {

std::vector<ConnKey> Keys(size_t n) {
  std::vector<ConnKey> keys;
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < n; i++) {
    Tuple t;
    t.src = IpAddr::V4(static_cast<uint32_t>(0x0a000000u + (rng() & 0xffffff)));
    t.dst = IpAddr::V4(static_cast<uint32_t>(0xac100000u + (rng() & 0xffff)));
    t.sport = static_cast<uint16_t>(rng());
    t.dport = 443;
    t.proto = kProtoTcp;
    bool lo;
    keys.push_back(MakeKey(t, &lo));
  }
  return keys;
}

// What the control tick does for a table that filled since the last: its index grown to fit.
void GrowAsTheTickWould(ConnTable& table) {
  std::vector<uint32_t> index = ConnTable::Index(table.IndexWanted(table.size()));
  table.GrowIndex(&index);
  (void)table.RebuildStep(ConnTable::kNil);  // all of it
}

struct KeyHash {
  size_t operator()(const ConnKey& k) const { return HashKey(k, 0x5eed); }
};

void BM_ConnTableLookup(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::vector<ConnKey> keys = Keys(n);
  ConnTable table(static_cast<uint32_t>(n), 0x5eed);
  for (const ConnKey& k : keys) table.Insert(k);
  GrowAsTheTickWould(table);
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(table.Find(keys[(i++ * 7919) % n]));
  }
  state.counters["entries"] = static_cast<double>(table.size());
  state.counters["bytes_per_entry"] = static_cast<double>(table.memory_bytes()) / static_cast<double>(table.size());
  state.counters["entry_bytes"] = sizeof(ConnEntry);
}

void BM_UnorderedMapBaseline(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::vector<ConnKey> keys = Keys(n);
  std::unordered_map<ConnKey, Conn, KeyHash> map;
  map.reserve(n);
  for (const ConnKey& k : keys) map[k] = Conn{};
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(map.find(keys[(i++ * 7919) % n]));
  }
}

// The owner's share of growing a table's index fourfold (as the tick does once the entries
// fill it): the new index is made on the caller (outside the timing), the entries
// move into it on the owner in slices of StatefulFilter::kRebuildSlice. The time is the whole
// rebuild's; slice_us_max is the longest a worker waits at once.
void BM_GrowIndex(benchmark::State& state) {
  const uint32_t n = static_cast<uint32_t>(state.range(0));
  const std::vector<ConnKey> keys = Keys(n);
  double slice_max = 0;
  for (auto _ : state) {
    state.PauseTiming();
    ConnTable table(4 * n, 0x5eed);
    std::vector<uint32_t> index = ConnTable::Index(n);  // as the tick left it: one bucket an entry
    table.GrowIndex(&index);
    (void)table.RebuildStep(ConnTable::kNil);  // all of it
    for (const ConnKey& k : keys) table.Insert(k);
    index = ConnTable::Index(4 * n);
    state.ResumeTiming();
    table.GrowIndex(&index);
    for (bool done = false; !done;) {
      const auto start = std::chrono::steady_clock::now();
      done = table.RebuildStep(StatefulFilter::kRebuildSlice);
      slice_max = std::max(slice_max, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    }
  }
  state.counters["slice_us_max"] = slice_max;
}

// Packet i of burst b as flow `flow` of its frame (24 bits: the source address's two low bytes
// and the source port's low byte), with a cleared scratch, as a worker starts a burst.
void SetFlow(std::vector<uint8_t>* frame, uint32_t flow, uint16_t i, FilterBatch* b,
             std::vector<PacketScratch>* scratch) {
  uint8_t* p = frame->data();
  p[28] = static_cast<uint8_t>(flow >> 16);
  p[29] = static_cast<uint8_t>(flow >> 8);
  p[35] = static_cast<uint8_t>(flow);
  b->pkts[i] = PacketRef{p, static_cast<uint32_t>(frame->size())};
  b->verdict[i] = Verdict::kPass;
  b->scratch[i] = &(*scratch)[i];
  (*scratch)[i].tag = 0;
}

// Every packet a SYN of a new connection, 32 per batch, through parse, classifier and insert,
// with a scratch per packet as a worker gives them (the burst's lookups prefetched). Every 625
// bursts (20,000 connections: a 20 ms control tick at a million a second) the tick's work for
// the table runs too, timed: its index grows as it fills. Arg 0: from an empty table, whose
// index grows meanwhile; 1: the table filled to 2,097,152 and flushed first (untimed), as a
// port that has been busy before.
void BM_NewConnections(benchmark::State& state) {
  RuleFile f;
  (void)ParseRuleFile("ruleset t { rule 1 inout protocol tcp from any to any port 443 accept; }", &f);
  std::shared_ptr<const RuleTable> table;
  (void)RuleTable::Compile(f, nullptr, 1, &table);
  FirewallOptions o;
  o.conn_limit = 1 << 22;
  auto filter = std::make_unique<StatefulFilter>(1, nullptr, o, 0x5eed);
  filter->SetTable(table);
  FrameSpec s;
  s.dport = 443;
  const std::vector<uint8_t> syn = BuildFrame(s);
  std::vector<std::vector<uint8_t>> frames(kBurstSize, syn);
  uint32_t flow = 0;
  uint64_t bursts = 0;
  FilterBatch b{};
  b.dir = Direction::kOut;
  b.count = kBurstSize;
  std::vector<PacketScratch> scratch(kBurstSize);
  auto burst = [&] {
    for (uint16_t i = 0; i < kBurstSize; i++, flow++) SetFlow(&frames[i], flow, i, &b, &scratch);
    filter->Process(b);
    if (++bursts % 625 == 0) (void)filter->CommitAhead(0, 0);
  };
  if (state.range(0) == 1) {
    while (filter->flow_count() < (1u << 21)) burst();
    filter->Flush(FlowSelector{}, 0);
  }
  for (auto _ : state) {
    burst();
    if (filter->flow_count() >= (1u << 21)) {
      state.PauseTiming();
      filter->Flush(FlowSelector{}, 0);
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBurstSize);
}

// New connections in a table at steady state, as under a flood of short connections: half a
// million a second (of the fake clock), each timing out after a second, so that every new
// entry's sweep step closes about one expired entry in a table of 500,000-750,000. The
// tick's work (CommitAhead and an expiry slice) runs every 20 ms of that clock. Untimed first
// until the table is at its steady size.
void BM_Turnover(benchmark::State& state) {
  RuleFile f;
  (void)ParseRuleFile("ruleset t { rule 1 inout protocol tcp from any to any port 443 accept; }", &f);
  std::shared_ptr<const RuleTable> table;
  (void)RuleTable::Compile(f, nullptr, 1, &table);
  FirewallOptions o;
  o.conn_limit = 1 << 20;
  o.timeouts.tcp_syn_sent = 1;
  auto filter = std::make_unique<StatefulFilter>(1, nullptr, o, 0x5eed);
  filter->SetTable(table);
  FrameSpec s;
  s.dport = 443;
  std::vector<std::vector<uint8_t>> frames(kBurstSize, BuildFrame(s));
  uint32_t flow = 0;
  FilterBatch b{};
  b.dir = Direction::kOut;
  b.count = kBurstSize;
  std::vector<PacketScratch> scratch(kBurstSize);
  constexpr uint64_t kNsPerBurst = kBurstSize * 2000;  // 500,000 connections a second
  uint64_t now = 1000000000000ull;
  auto burst = [&] {
    for (uint16_t i = 0; i < kBurstSize; i++, flow++) SetFlow(&frames[i], flow & 0xffffff, i, &b, &scratch);
    b.now_ns = now += kNsPerBurst;
    filter->Process(b);
    if (now % 20000000 < kNsPerBurst) {
      (void)filter->CommitAhead(now, 0);
      (void)filter->Expire(now, StatefulFilter::kSweepSlice);
    }
  };
  while (flow < 2000000) burst();
  for (auto _ : state) burst();
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBurstSize);
  state.counters["entries"] = filter->flow_count();
}

std::shared_ptr<const RuleTable> ThousandRules() {
  std::string text = "ruleset t {\n";
  for (int i = 0; i < 999; i++) {
    text += "rule " + std::to_string(2000 + i) + " inout protocol udp from ip 10." + std::to_string(i / 250) +
            "." + std::to_string(i % 250) + ".1 to any port " + std::to_string(1000 + i) + " accept;\n";
  }
  text += "rule 1000 inout protocol any from any to any accept;\n}\n";
  RuleFile f;
  (void)ParseRuleFile(text, &f);
  std::shared_ptr<const RuleTable> table;
  (void)RuleTable::Compile(f, nullptr, 1, &table);
  return table;
}

std::vector<std::vector<uint8_t>> UdpFrames(uint32_t n) {
  std::vector<std::vector<uint8_t>> frames;
  for (uint32_t i = 0; i < n; i++) {
    FrameSpec s;
    s.proto = kProtoUdp;
    s.src = IpAddr::V4(0xc6120000u + i);
    s.dst = IpAddr::V4(0xc6120002u);
    s.sport = s.dport = 9;
    s.payload.assign(18, 0);
    frames.push_back(BuildFrame(s));
  }
  return frames;
}

// The next burst of the frames, round-robin from *next, with cleared scratch (as a worker
// starts a burst).
void NextBurst(const std::vector<std::vector<uint8_t>>& frames, size_t* next, FilterBatch* b,
               std::vector<PacketScratch>* scratch) {
  for (uint16_t i = 0; i < kBurstSize; i++, (*next)++) {
    const auto& fr = frames[*next % frames.size()];
    b->pkts[i] = PacketRef{fr.data(), static_cast<uint32_t>(fr.size())};
    b->verdict[i] = Verdict::kPass;
    b->scratch[i] = &(*scratch)[i];
    (*scratch)[i].tag = 0;
  }
}

// Packets of established UDP flows (512 of them, as the switch benchmark's guests send) through
// the stateful filter with a 1,000-rule table, parsed here: the per-packet cost of one filter.
void BM_EstablishedPackets(benchmark::State& state) {
  StatefulFilter filter(1, nullptr, FirewallOptions{}, 0x5eed);
  filter.SetTable(ThousandRules());
  const auto frames = UdpFrames(512);
  FilterBatch b{};
  b.dir = Direction::kOut;
  b.count = kBurstSize;
  std::vector<PacketScratch> scratch(kBurstSize);
  size_t next = 0;
  for (auto _ : state) {
    NextBurst(frames, &next, &b, &scratch);
    filter.Process(b);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBurstSize);
}

// What the switch does with each established packet it forwards: the sender's OUT filter, then
// the receiver's IN filter, both with the 1,000-rule table and sharing the burst's scratch (one
// parse, one hash), as a worker runs them. Per packet: the pair's cost.
void BM_EstablishedPair(benchmark::State& state) {
  const auto table = ThousandRules();
  StatefulFilter out(1, nullptr, FirewallOptions{}, 0x5eed, 0x5eed);
  StatefulFilter in(2, nullptr, FirewallOptions{}, 0x7eed, 0x5eed);
  out.SetTable(table);
  in.SetTable(table);
  const auto frames = UdpFrames(static_cast<uint32_t>(state.range(0)));
  FilterBatch b{};
  b.count = kBurstSize;
  std::vector<PacketScratch> scratch(kBurstSize);
  size_t next = 0;
  // The flows set up, then a control tick (the indexes grown to fit), before the timing.
  for (size_t i = 0; i < frames.size(); i += kBurstSize) {
    NextBurst(frames, &next, &b, &scratch);
    b.dir = Direction::kOut;
    out.Process(b);
    b.dir = Direction::kIn;
    in.Process(b);
  }
  (void)out.CommitAhead(0, 0);
  (void)in.CommitAhead(0, 0);
  for (auto _ : state) {
    NextBurst(frames, &next, &b, &scratch);
    b.dir = Direction::kOut;
    out.Process(b);
    b.dir = Direction::kIn;
    in.Process(b);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBurstSize);
}

// The control tick's expiry slice (kSweepSlice), for which the table's worker waits, on a table
// of 1,000,000 slots of which 1% hold connections: the rest were freed by sweeps before, as
// after a wave of short connections.
void BM_ExpireSlice(benchmark::State& state) {
  FirewallOptions o;
  o.conn_limit = 1 << 20;
  StatefulFilter filter(1, nullptr, o, 0x5eed);
  filter.SetTable(ThousandRules());
  const std::vector<uint8_t> frame = UdpFrames(1)[0];
  FilterBatch b{};
  b.dir = Direction::kOut;
  std::vector<PacketScratch> scratch(kBurstSize);
  constexpr uint64_t kS = 1000000000ull;
  constexpr uint32_t kFlows = 1000000;
  auto open = [&](uint32_t first, uint32_t step, uint64_t now) {
    b.now_ns = now;
    std::vector<std::vector<uint8_t>> frames(kBurstSize, frame);
    uint32_t f = first;
    for (uint64_t bursts = 0; f < kFlows; bursts++) {
      uint16_t n = 0;
      for (; n < kBurstSize && f < kFlows; n++, f += step) SetFlow(&frames[n], f, n, &b, &scratch);
      b.count = n;
      filter.Process(b);
      if (bursts % 128 == 0) (void)filter.CommitAhead(now, 0);
    }
  };
  open(0, 1, 1000 * kS);
  open(0, 100, 1020 * kS);  // every hundredth flow again: it lives 20 s longer
  const uint64_t now = 1031 * kS;
  (void)filter.Expire(now, ~0u);  // the other 99% go
  for (auto _ : state) benchmark::DoNotOptimize(filter.Expire(now, StatefulFilter::kSweepSlice));
  state.counters["live"] = filter.flow_count();
}

BENCHMARK(BM_EstablishedPackets);
BENCHMARK(BM_EstablishedPair)->Arg(512)->Arg(100000);
BENCHMARK(BM_ConnTableLookup)->Arg(10000)->Arg(1000000);
BENCHMARK(BM_UnorderedMapBaseline)->Arg(10000)->Arg(1000000);
BENCHMARK(BM_NewConnections)->Arg(0)->Arg(1);
BENCHMARK(BM_Turnover);
BENCHMARK(BM_ExpireSlice)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GrowIndex)->Arg(1u << 17)->Arg(1u << 20)->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace palisade::fw

BENCHMARK_MAIN();
