#include "vswitch/mac_table.h"

namespace palisade {
namespace {

uint64_t Word(uint64_t mac, uint16_t port) { return (mac << 16) | (uint64_t{port} + 1); }

}  // namespace

MacTable::MacTable(uint32_t max_entries) : max_entries_(max_entries ? max_entries : 1) {
  slots_ = 16;
  while (slots_ < 2 * max_entries_) slots_ *= 2;
  mask_ = slots_ - 1;
  words_ = std::make_unique<std::atomic<uint64_t>[]>(slots_);
  last_seen_ = std::make_unique<std::atomic<uint32_t>[]>(slots_);
  for (uint32_t i = 0; i < slots_; i++) {
    words_[i].store(kEmpty, std::memory_order_relaxed);
    last_seen_[i].store(0, std::memory_order_relaxed);
  }
}

MacTable::Hit MacTable::Lookup(uint64_t mac) const {
  uint32_t slot = Home(mac);
  for (uint32_t probes = 0; probes < slots_; probes++, slot = (slot + 1) & mask_) {
    uint64_t w = words_[slot].load(std::memory_order_acquire);
    if (w == kEmpty) break;
    if (w != kTombstone && (w >> 16) == mac) {
      return Hit{static_cast<uint16_t>((w & 0xffff) - 1), slot};
    }
  }
  return Hit{};
}

bool MacTable::Learn(uint64_t mac, uint16_t port, uint32_t now_s) {
  uint32_t slot = Home(mac);
  uint32_t free_slot = slots_;  // first tombstone on the probe path, if any
  for (uint32_t probes = 0; probes < slots_; probes++, slot = (slot + 1) & mask_) {
    uint64_t w = words_[slot].load(std::memory_order_relaxed);
    if (w == kTombstone) {
      if (free_slot == slots_) free_slot = slot;
      continue;
    }
    if (w == kEmpty) {
      if (free_slot == slots_) free_slot = slot;
      break;
    }
    if ((w >> 16) == mac) {  // known: refresh, and follow a station move
      last_seen_[slot].store(now_s, std::memory_order_relaxed);
      if (w != Word(mac, port)) words_[slot].store(Word(mac, port), std::memory_order_release);
      return true;
    }
  }
  if (free_slot == slots_ || size_ >= max_entries_) return false;
  if (words_[free_slot].load(std::memory_order_relaxed) == kTombstone) tombstones_--;
  last_seen_[free_slot].store(now_s, std::memory_order_relaxed);
  words_[free_slot].store(Word(mac, port), std::memory_order_release);
  size_++;
  return true;
}

void MacTable::Erase(uint32_t slot) {
  // A tombstone keeps later entries of the same probe chain reachable for concurrent readers.
  words_[slot].store(kTombstone, std::memory_order_release);
  size_--;
  tombstones_++;
}

size_t MacTable::Age(uint32_t now_s, uint32_t max_age_s) {
  size_t removed = 0;
  for (uint32_t i = 0; i < slots_; i++) {
    uint64_t w = words_[i].load(std::memory_order_relaxed);
    if (w == kEmpty || w == kTombstone) continue;
    uint32_t seen = last_seen_[i].load(std::memory_order_relaxed);
    if (now_s > seen && now_s - seen > max_age_s) {
      Erase(i);
      removed++;
    }
  }
  return removed;
}

size_t MacTable::RemovePort(uint16_t port) {
  size_t removed = 0;
  for (uint32_t i = 0; i < slots_; i++) {
    uint64_t w = words_[i].load(std::memory_order_relaxed);
    if (w == kEmpty || w == kTombstone || (w & 0xffff) != uint64_t{port} + 1) continue;
    Erase(i);
    removed++;
  }
  return removed;
}

size_t MacTable::RemoveAll() {
  size_t removed = 0;
  for (uint32_t i = 0; i < slots_; i++) {
    uint64_t w = words_[i].load(std::memory_order_relaxed);
    if (w == kEmpty || w == kTombstone) continue;
    Erase(i);
    removed++;
  }
  return removed;
}

std::unique_ptr<MacTable> MacTable::Rebuilt() const {
  auto table = std::make_unique<MacTable>(max_entries_);
  for (const Entry& e : Dump()) table->Learn(e.mac, e.port, e.last_seen_s);
  return table;
}

std::vector<MacTable::Entry> MacTable::Dump() const {
  std::vector<Entry> entries;
  for (uint32_t i = 0; i < slots_; i++) {
    uint64_t w = words_[i].load(std::memory_order_acquire);
    if (w == kEmpty || w == kTombstone) continue;
    entries.push_back(Entry{w >> 16, static_cast<uint16_t>((w & 0xffff) - 1),
                            last_seen_[i].load(std::memory_order_relaxed)});
  }
  return entries;
}

}  // namespace palisade
