// MacTable: the bridge's forwarding database, MAC -> port, with last-seen times for ageing.
//
// Open addressing over a fixed array of 64-bit words, each holding (mac << 16 | port + 1), so a
// reader always sees a consistent MAC and port in one atomic load.
//
// Thread-safety: one writer (the control thread: Learn, Age, RemovePort) and any number of
// lock-free readers (workers: Lookup, Touch). A reader racing a removal may miss an entry
// (the frame floods once) but never sees a MAC paired with another MAC's port. Removed slots
// become tombstones that Learn reuses; NeedsRebuild() says when the owner should build a
// compact copy with Rebuilt() and publish it instead.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace palisade {

class MacTable {
 public:
  static constexpr uint16_t kNoPort = 0xffff;

  struct Hit {
    uint16_t port = kNoPort;  // kNoPort on a miss
    uint32_t slot = 0;        // for Touch()
  };
  struct Entry {
    uint64_t mac;
    uint16_t port;
    uint32_t last_seen_s;
  };

  // Holds up to `max_entries` MACs; uses 2x that many slots (rounded up to a power of two).
  explicit MacTable(uint32_t max_entries);

  // Readers.
  Hit Lookup(uint64_t mac) const;
  // Marks the entry found by Lookup as seen now. Stores only when the second changes, so a busy
  // flow does not write a shared cache line per packet.
  void Touch(uint32_t slot, uint32_t now_s) {
    if (last_seen_[slot].load(std::memory_order_relaxed) != now_s) {
      last_seen_[slot].store(now_s, std::memory_order_relaxed);
    }
  }

  // Writer. Learn returns false when the table is full (the frame still floods).
  bool Learn(uint64_t mac, uint16_t port, uint32_t now_s);
  // Removes entries not seen for more than max_age_s; returns how many.
  size_t Age(uint32_t now_s, uint32_t max_age_s);
  size_t RemovePort(uint16_t port);
  size_t RemoveAll();
  bool NeedsRebuild() const { return tombstones_ > slots_ / 4; }
  std::unique_ptr<MacTable> Rebuilt() const;

  // Any thread; a snapshot that may be slightly stale.
  std::vector<Entry> Dump() const;
  uint32_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = 0;
  static constexpr uint64_t kTombstone = ~uint64_t{0};

  uint32_t Home(uint64_t mac) const {
    return static_cast<uint32_t>((mac * 0x9e3779b97f4a7c15ull) >> 32) & mask_;
  }
  void Erase(uint32_t slot);

  uint32_t max_entries_;
  uint32_t slots_;
  uint32_t mask_;
  uint32_t size_ = 0;        // writer only
  uint32_t tombstones_ = 0;  // writer only
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  std::unique_ptr<std::atomic<uint32_t>[]> last_seen_;
};

}  // namespace palisade
