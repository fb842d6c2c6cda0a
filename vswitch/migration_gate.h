// MigrationGate: the filter in slot 0 of a port that is arriving by live migration. It drops
// everything, both ways, until the port's final delta is in and its device has started here;
// then the switch removes it (Switch::OpenPort). Until then the port is failClosed: no packet
// meets a table that is not yet complete.
// Thread-safety: stateless; Process() from any worker.
#pragma once

#include "slot/filter.h"

namespace palisade {

class MigrationGate : public Filter {
 public:
  static constexpr uint8_t kSlot = 0;
  std::string_view agent() const override { return "palisade-migration"; }
  void Process(FilterBatch& b) override {
    for (uint16_t i = 0; i < b.count; i++) {
      b.verdict[i] = Verdict::kDrop;
      b.reason[i] = DropReason::kMigrating;
    }
  }
};

}  // namespace palisade
