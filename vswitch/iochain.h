// IOChain: the ordered filter slots of one port.
//
// Slot numbers count outward from the vNIC, as on a hypervisor: slot 1 (port security) sits
// next to the VM, slot 2 (stateful firewall) after it. A packet from the VM (OUT) passes the
// slots in ascending order; a packet toward the VM (IN) in descending order. A packet leaves
// the chain at the first slot that does not pass it.
//
// Every slot has a failure policy applied when it cannot decide: no filter attached yet, or the
// filter answers kUndecided. failClosed drops (reason fail-closed), failOpen passes.
//
// Thread-safety: an IOChain is immutable once built. Control code builds a new chain with
// With()/Without() and publishes it (see switch.h); workers call Run() concurrently.
// A capture (vswitch/capture.h) records on the calling worker's own ring.
#pragma once

#include <memory>
#include <vector>

#include "slot/filter.h"
#include "vswitch/capture.h"

namespace palisade {

enum class FailurePolicy : uint8_t { kFailClosed, kFailOpen };

const char* FailurePolicyName(FailurePolicy policy);

struct FilterSlot {
  uint8_t slot = 0;
  FailurePolicy policy = FailurePolicy::kFailClosed;
  std::shared_ptr<Filter> filter;  // null: the slot exists but cannot decide yet
};

class IOChain {
 public:
  IOChain() = default;
  explicit IOChain(std::vector<FilterSlot> slots);

  // A copy of this chain with `slot` added or replaced (same slot number).
  std::shared_ptr<const IOChain> With(FilterSlot slot) const;
  // A copy without the given slot number; the same slots if it is absent.
  std::shared_ptr<const IOChain> Without(uint8_t slot) const;

  const std::vector<FilterSlot>& slots() const { return slots_; }
  const FilterSlot* Find(uint8_t slot) const;
  bool empty() const { return slots_.empty(); }

  // Runs the slots over batch (count, pkts, dir, worker, now_ns set by the caller) and leaves
  // each packet's final verdict: kPass, kDrop with a reason, or kConsumed.
  // capture: the port's active capture (vswitch/capture.h), or null (the usual case: one branch).
  void Run(FilterBatch& batch, Capture* capture = nullptr) const;

 private:
  // Runs the slots; with mark, sets *mark to the packets that passed every slot up to
  // mark_after (in the direction's order; 0: all slots).
  void RunSlots(FilterBatch& batch, uint8_t mark_after, uint32_t* mark) const;

  std::vector<FilterSlot> slots_;  // ascending slot numbers
};

}  // namespace palisade
