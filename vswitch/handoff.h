// Handoff: the packets one worker forwards to ports that another worker polls. A port's IN
// chain runs on the worker that polls the port, as its OUT chain does, so every filter runs on
// one worker only: a port's connection table is never shared between the worker that polls it
// and the workers that send to it (their filters' locks are taken by that one worker and, for
// short slices, by the control thread). The sender stages a burst per egress port as usual; a
// burst for another worker's port goes whole into the ring from the sender to that worker,
// which runs the port's IN chain and transmits. One ring per ordered pair of workers.
//
// Thread-safety: ring(from, to) has one producer (worker `from`) and one consumer (`to`).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "slot/filter.h"
#include "slot/spsc_ring.h"

struct rte_mbuf;

namespace palisade {

struct HandoffBurst {
  uint16_t port;      // the egress port's index
  uint16_t from;      // the ingress port's (a reject goes back there)
  uint64_t port_uid;  // Port::uid() of both, so that an index reused meanwhile is not mistaken
  uint64_t from_uid;
  uint16_t count;
  rte_mbuf* pkts[kBurstSize];
};

class Handoffs {
 public:
  // Bursts in flight per pair: a consumer that falls this far behind drops (tx-full).
  static constexpr size_t kRingBursts = 64;
  using Ring = SpscRing<HandoffBurst, kRingBursts>;

  explicit Handoffs(unsigned workers) : workers_(workers), rings_(workers * workers) {
    for (auto& r : rings_) r = std::make_unique<Ring>();
  }
  Ring& ring(unsigned from, unsigned to) { return *rings_[from * workers_ + to]; }
  unsigned workers() const { return workers_; }

 private:
  const unsigned workers_;
  std::vector<std::unique_ptr<Ring>> rings_;
};

}  // namespace palisade
