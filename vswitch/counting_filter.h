// CountingFilter: a filter that passes everything and counts packets and bytes per direction.
// It proves the IOChain mechanics on a live switch before the firewall's filters exist, and it
// is a cheap probe an operator can attach to any slot.
//
// Thread-safety: Process() may run on several workers at once; each worker writes its own
// cache line. Totals() may be called from any thread at any time.
#pragma once

#include <atomic>
#include <memory>

#include "slot/filter.h"

namespace palisade {

class CountingFilter : public Filter {
 public:
  static constexpr unsigned kMaxWorkers = 64;

  struct Totals {
    uint64_t packets[2] = {0, 0};  // indexed by Direction
    uint64_t bytes[2] = {0, 0};
  };

  std::string_view agent() const override { return "palisade-count"; }
  void Process(FilterBatch& batch) override;
  Totals totals() const;

 private:
  struct alignas(64) PerWorker {
    std::atomic<uint64_t> packets[2] = {0, 0};
    std::atomic<uint64_t> bytes[2] = {0, 0};
  };
  PerWorker per_worker_[kMaxWorkers];
};

}  // namespace palisade
