#include "vswitch/iochain.h"

#include <algorithm>

namespace palisade {

const char* FailurePolicyName(FailurePolicy policy) {
  return policy == FailurePolicy::kFailOpen ? "failOpen" : "failClosed";
}

IOChain::IOChain(std::vector<FilterSlot> slots) : slots_(std::move(slots)) {
  std::sort(slots_.begin(), slots_.end(),
            [](const FilterSlot& a, const FilterSlot& b) { return a.slot < b.slot; });
}

std::shared_ptr<const IOChain> IOChain::With(FilterSlot slot) const {
  std::vector<FilterSlot> slots;
  for (const FilterSlot& s : slots_) {
    if (s.slot != slot.slot) slots.push_back(s);
  }
  slots.push_back(std::move(slot));
  return std::make_shared<const IOChain>(std::move(slots));
}

std::shared_ptr<const IOChain> IOChain::Without(uint8_t slot) const {
  std::vector<FilterSlot> slots;
  for (const FilterSlot& s : slots_) {
    if (s.slot != slot) slots.push_back(s);
  }
  return std::make_shared<const IOChain>(std::move(slots));
}

const FilterSlot* IOChain::Find(uint8_t slot) const {
  for (const FilterSlot& s : slots_) {
    if (s.slot == slot) return &s;
  }
  return nullptr;
}

void IOChain::Run(FilterBatch& batch) const {
  for (uint16_t i = 0; i < batch.count; i++) {
    batch.verdict[i] = Verdict::kPass;
    batch.reason[i] = DropReason::kNone;
  }
  if (slots_.empty() || batch.count == 0) return;

  // Each slot sees only the packets every earlier slot passed, compacted into `sub`.
  FilterBatch sub;
  sub.dir = batch.dir;
  sub.worker = batch.worker;
  sub.now_ns = batch.now_ns;
  sub.emit = batch.emit;
  uint16_t live[kBurstSize];
  uint16_t nlive = batch.count;
  for (uint16_t i = 0; i < nlive; i++) live[i] = i;

  const size_t n = slots_.size();
  for (size_t k = 0; k < n && nlive > 0; k++) {
    const FilterSlot& slot = slots_[batch.dir == Direction::kOut ? k : n - 1 - k];
    sub.count = nlive;
    for (uint16_t j = 0; j < nlive; j++) {
      sub.pkts[j] = batch.pkts[live[j]];
      sub.scratch[j] = batch.scratch[live[j]];
      sub.verdict[j] = slot.filter ? Verdict::kPass : Verdict::kUndecided;
      sub.reason[j] = DropReason::kNone;
    }
    if (slot.filter) slot.filter->Process(sub);

    uint16_t kept = 0;
    for (uint16_t j = 0; j < nlive; j++) {
      Verdict v = sub.verdict[j];
      DropReason reason = sub.reason[j] == DropReason::kNone ? DropReason::kFilter : sub.reason[j];
      if (v == Verdict::kUndecided) {
        if (slot.policy == FailurePolicy::kFailOpen) {
          v = Verdict::kPass;
        } else {
          v = Verdict::kDrop;
          reason = DropReason::kFailClosed;
        }
      }
      if (v == Verdict::kPass) {
        live[kept++] = live[j];
      } else {
        batch.verdict[live[j]] = v;
        batch.reason[live[j]] = v == Verdict::kDrop ? reason : DropReason::kNone;
      }
    }
    nlive = kept;
  }
}

}  // namespace palisade
