#include "vswitch/counting_filter.h"

namespace palisade {

void CountingFilter::Process(FilterBatch& batch) {
  PerWorker& w = per_worker_[batch.worker % kMaxWorkers];
  const int d = static_cast<int>(batch.dir);
  uint64_t bytes = 0;
  for (uint16_t i = 0; i < batch.count; i++) bytes += batch.pkts[i].len;
  // Single writer per cache line: a relaxed load-add-store needs no locked instruction.
  w.packets[d].store(w.packets[d].load(std::memory_order_relaxed) + batch.count,
                     std::memory_order_relaxed);
  w.bytes[d].store(w.bytes[d].load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
}

CountingFilter::Totals CountingFilter::totals() const {
  Totals t;
  for (const PerWorker& w : per_worker_) {
    for (int d = 0; d < 2; d++) {
      t.packets[d] += w.packets[d].load(std::memory_order_relaxed);
      t.bytes[d] += w.bytes[d].load(std::memory_order_relaxed);
    }
  }
  return t;
}

}  // namespace palisade
