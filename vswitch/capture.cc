#include "vswitch/capture.h"

#include <algorithm>
#include <cstring>

namespace palisade {

Capture::Capture(CaptureSpec spec, uint16_t workers) : spec_(std::move(spec)) {
  for (uint16_t i = 0; i < workers; i++) workers_.push_back(std::make_unique<PerWorker>());
}

void Capture::Record(const FilterBatch& batch, uint32_t mask) {
  if (batch.worker >= workers_.size()) return;
  PerWorker& w = *workers_[batch.worker];
  for (; mask != 0; mask &= mask - 1) {
    const unsigned i = static_cast<unsigned>(__builtin_ctz(mask));
    CaptureRecord* r = w.ring.Reserve();
    if (r == nullptr) {
      w.lost.store(w.lost.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      continue;
    }
    const PacketRef& p = batch.pkts[i];
    r->now_ns = batch.now_ns;
    r->len = p.len;
    r->caplen = static_cast<uint16_t>(std::min(p.len, spec_.snaplen));
    r->dir = batch.dir;
    r->verdict = batch.verdict[i];
    r->reason = batch.reason[i];
    std::memcpy(r->data, p.data, r->caplen);
    w.ring.Publish();
  }
}

void Capture::Drain(size_t max, std::vector<CaptureRecord>* out) {
  const size_t first = out->size();
  for (auto& w : workers_) {
    while (out->size() - first < max) {
      const CaptureRecord* r = w->ring.Front();
      if (r == nullptr) break;
      out->push_back(*r);
      w->ring.Release();
    }
  }
  std::stable_sort(out->begin() + static_cast<std::ptrdiff_t>(first), out->end(),
                   [](const CaptureRecord& a, const CaptureRecord& b) { return a.now_ns < b.now_ns; });
}

uint64_t Capture::lost() const {
  uint64_t n = 0;
  for (const auto& w : workers_) n += w->lost.load(std::memory_order_relaxed);
  return n;
}

}  // namespace palisade
