#include "vswitch/port.h"

#include <atomic>

namespace palisade {
namespace {

uint64_t NextUid() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

uint64_t PortTotals::total_drops() const {
  uint64_t n = 0;
  for (uint64_t d : drops) n += d;
  return n;
}

Port::Port(std::string name, uint16_t index, unsigned workers)
    : name_(std::move(name)), index_(index), uid_(NextUid()), counters_(workers ? workers : 1) {}

PortTotals Port::Totals() const {
  PortTotals t;
  for (const PortCounters& c : counters_) {
    t.rx_packets += c.rx_packets.Get();
    t.rx_bytes += c.rx_bytes.Get();
    t.tx_packets += c.tx_packets.Get();
    t.tx_bytes += c.tx_bytes.Get();
    t.consumed += c.consumed.Get();
    for (size_t r = 0; r < static_cast<size_t>(DropReason::kCount); r++) {
      t.drops[r] += c.drops[r].Get();
    }
  }
  return t;
}

}  // namespace palisade
