#include "vswitch/iochain.h"

#include <algorithm>

namespace palisade {
namespace {

// Whether all n verdicts are kPass (0): one vectorised pass, where the usual burst would
// otherwise go through the per-packet bookkeeping below for nothing.
bool AllPass(const Verdict* v, uint16_t n) {
  static_assert(static_cast<uint8_t>(Verdict::kPass) == 0);
  uint8_t any = 0;
  for (uint16_t j = 0; j < n; j++) any |= static_cast<uint8_t>(v[j]);
  return any == 0;
}

uint32_t Live(const uint16_t* live, uint16_t n) {
  uint32_t mask = 0;
  for (uint16_t j = 0; j < n; j++) mask |= 1u << live[j];
  return mask;
}

}  // namespace

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

void IOChain::Run(FilterBatch& batch, Capture* capture) const {
  if (capture == nullptr || !capture->wants(batch.dir)) {
    RunSlots(batch, 0, nullptr);
    return;
  }
  // Packets do not change in the chain, so the pre point records them after it has run, with
  // the verdict it gave them: one pass.
  const CaptureSpec& spec = capture->spec();
  uint32_t mask = batch.count == 32 ? ~0u : (1u << batch.count) - 1;
  if (spec.point == CapturePoint::kPre) {
    RunSlots(batch, 0, nullptr);
  } else {
    RunSlots(batch, spec.after_slot, &mask);
  }
  capture->Record(batch, mask);
}

void IOChain::RunSlots(FilterBatch& batch, uint8_t mark_after, uint32_t* mark) const {
  static_assert(kBurstSize <= 32, "capture masks hold one bit per packet");
  for (uint16_t i = 0; i < batch.count; i++) {
    batch.verdict[i] = Verdict::kPass;
    batch.reason[i] = DropReason::kNone;
  }
  if (slots_.empty() || batch.count == 0) return;  // *mark: all passed

  // Each slot sees only the packets every earlier slot passed, compacted into `sub`; while all
  // pass (the usual case) the slot runs on the batch itself, without the copy.
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
    // The capture point lies before the first slot beyond mark_after in this direction.
    if (mark != nullptr && mark_after != 0 &&
        (batch.dir == Direction::kOut ? slot.slot > mark_after : slot.slot < mark_after)) {
      *mark = Live(live, nlive);
      mark = nullptr;
    }
    const bool all = nlive == batch.count;  // live[j] == j
    FilterBatch& run = all ? batch : sub;
    if (all) {
      if (!slot.filter) std::fill_n(batch.verdict, nlive, Verdict::kUndecided);
    } else {
      sub.count = nlive;
      for (uint16_t j = 0; j < nlive; j++) {
        sub.pkts[j] = batch.pkts[live[j]];
        sub.scratch[j] = batch.scratch[live[j]];
        sub.verdict[j] = slot.filter ? Verdict::kPass : Verdict::kUndecided;
        sub.reason[j] = DropReason::kNone;
      }
    }
    if (slot.filter) slot.filter->Process(run);
    if (all && AllPass(batch.verdict, nlive)) continue;  // every packet lives on, as it was

    uint16_t kept = 0;
    for (uint16_t j = 0; j < nlive; j++) {
      Verdict v = run.verdict[j];
      DropReason reason = run.reason[j] == DropReason::kNone ? DropReason::kFilter : run.reason[j];
      if (v == Verdict::kUndecided) {
        if (slot.policy == FailurePolicy::kFailOpen) {
          v = Verdict::kPass;
        } else {
          v = Verdict::kDrop;
          reason = DropReason::kFailClosed;
        }
      }
      if (v == Verdict::kPass) {
        batch.verdict[live[j]] = Verdict::kPass;  // an undecided one, failing open
        live[kept++] = live[j];
      } else {
        batch.verdict[live[j]] = v;
        batch.reason[live[j]] = v == Verdict::kDrop ? reason : DropReason::kNone;
      }
    }
    nlive = kept;
  }
  if (mark != nullptr) *mark = Live(live, nlive);
}

}  // namespace palisade
