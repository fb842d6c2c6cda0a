// Snapshot: the immutable view of the switch that datapath workers read: ports by index with
// their IOChains, the flood list, and which worker polls which port (and runs its chains).
//
// Thread-safety: immutable after publication. The control thread builds a new one for every
// change, swaps the pointer, and frees the old one after an RCU grace period (switch.h); the
// shared_ptrs it holds keep removed ports alive until then.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "vswitch/bridge.h"
#include "vswitch/iochain.h"
#include "vswitch/port.h"

namespace palisade {

struct Snapshot {
  struct Entry {
    std::shared_ptr<Port> port;  // null: no port at this index
    std::shared_ptr<const IOChain> chain;
  };
  uint64_t generation = 0;
  std::array<Entry, kMaxPorts> ports;
  std::vector<uint16_t> in_use;                // indices of all ports, for flooding
  std::vector<std::vector<uint16_t>> polls;    // per worker: the ports it receives from
  std::array<uint16_t, kMaxPorts> owner{};     // per port: the worker that polls it
};

}  // namespace palisade
