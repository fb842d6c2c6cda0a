// ConnTable: a filter's connection entries in a pool of 96-byte slots (ConnEntry: one per
// IPv4 connection, two per IPv6 one) with index-linked hash chains, bounded by a limit on
// connections. The pool is a ConnSegment (a file that outlives the process, or private
// memory) with room for the limit (SlotsFor), backed ahead of use by CommitAhead on the
// control thread: inserting never allocates. Walkable with a cursor (getflows, the migration exporter)
// in pages, and swept for expired entries a slice at a time. During a live migration it tracks
// changes (a bit per slot plus a list), so that the final delta costs what changed, not what
// the table holds.
//
// Thread-safety: none of its own. The stateful filter that owns it serialises access (see
// stateful_filter.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/status.h"
#include "firewall/conn_entry.h"
#include "firewall/conn_segment.h"

namespace palisade::fw {

class ConnTable {
 public:
  static constexpr uint32_t kNil = ~0u;
  // Slots for `limit` connections, IPv6 ones included (address space: pages back what is used).
  static uint32_t SlotsFor(uint32_t limit) {
    return static_cast<uint32_t>(std::min<uint64_t>(uint64_t{limit} * 2, kNil - 1));
  }

  // segment: where the entries live (null: private memory), grown to SlotsFor(limit) if smaller.
  ConnTable(uint32_t limit, uint64_t seed, std::unique_ptr<ConnSegment> segment = nullptr);

  uint32_t Find(const ConnKey& k) const { return Find(k, Hash(k)); }
  // With the key's hash already known (Hash(k) under this table's seed): the datapath hashes a
  // packet's key once and both ports' tables use it when they share the seed. Inline: once per
  // packet.
  uint32_t Find(const ConnKey& k, uint64_t hash) const {
    const uint32_t lo4 = Last4(k.lo), hi4 = Last4(k.hi);
    for (uint32_t i = *BucketOf(hash); i != kNil; i = entries_[i].next) {
      const ConnEntry& c = entries_[i];
      if (c.lo4 == lo4 && c.hi4 == hi4 && c.lo_port == k.lo_port && c.hi_port == k.hi_port &&
          c.proto == k.proto && SameEnds(i, k)) {
        return i;
      }
    }
    return kNil;
  }
  uint64_t Hash(const ConnKey& k) const { return HashKey(k, seed_); }
  uint64_t seed() const { return seed_; }

  // Bulk lookups (a burst of packets, an import, a delta) run ahead of Find: first the bucket,
  // then, once the bucket is in cache, the chain's first entry, so that a large table's cache
  // and TLB misses overlap instead of queueing.
  void PrefetchBucket(uint64_t hash) const { __builtin_prefetch(BucketOf(hash)); }
  // Both of the entry's cache lines: a lookup reads the key in the first and the chain link in
  // the second, and the packet's accounting writes the second.
  void PrefetchEntry(uint64_t hash) const {
    const uint32_t i = *BucketOf(hash);
    if (i == kNil) return;
    __builtin_prefetch(&entries_[i]);
    __builtin_prefetch(reinterpret_cast<const char*>(&entries_[i]) + 64);
  }
  void PrefetchBucket(const ConnKey& k) const { PrefetchBucket(Hash(k)); }
  void PrefetchEntry(const ConnKey& k) const { PrefetchEntry(Hash(k)); }
  void PrefetchSlot(uint32_t idx) const { __builtin_prefetch(&entries_[idx]); }

  // A zeroed entry holding k (flags: kConnWide or none), or kNil when the limit is reached.
  uint32_t Insert(const ConnKey& k);
  void Remove(uint32_t idx);
  // The entry at idx changed (counters, state, timeout): remembered once per round while
  // tracking. Insert counts as a change.
  void Touch(uint32_t idx) {
    if (!tracking_) return;
    const uint64_t bit = uint64_t{1} << (idx & 63);
    uint64_t& word = dirty_bits_[idx >> 6];
    if (word & bit) return;
    word |= bit;
    dirty_.push_back(idx);
  }
  ConnEntry& at(uint32_t idx) { return entries_[idx]; }
  const ConnEntry& at(uint32_t idx) const { return entries_[idx]; }
  ConnKey Key(uint32_t idx) const;
  // The original direction's tuple (source = originator).
  Tuple OrigTuple(uint32_t idx) const;
  // The entry as exported (expires_s as stored).
  Conn Get(uint32_t idx) const;

  // How many slots should be backed by memory for n more slots to be filled (a bulk import)
  // or, with n = 0, for the datapath to go on inserting until the next call: the caller backs
  // them with segment()->Commit outside its lock (control thread), as the pages may take time.
  // The headroom follows what the table needed since the last call (see the .cc).
  uint32_t CommitTarget(size_t n = 0);
  static constexpr uint32_t kMinAhead = 1024, kMaxAhead = 16384;
  // At its limit: an Insert refused otherwise found no slot backed yet (state-headroom).
  bool full() const { return size_ >= limit_; }
  ConnSegment* segment() const { return segment_.get(); }
  uint32_t size() const { return size_; }
  uint32_t used() const { return used_; }  // slots ever used (live or free)
  uint32_t limit() const { return limit_; }  // connections
  // A lower limit refuses new entries until the table has shrunk below it; a higher one than
  // the segment has room for grows it (the entries may move: run it where the datapath cannot
  // meet it).
  Status set_limit(uint32_t limit);

  // The hash index grows with the table, so that an idle port costs 16 KB of it, not an index
  // sized for its limit. IndexWanted says how many buckets it should have for `entries` (0: it
  // has enough, or a rebuild runs): eight times as many as entries once they are more than
  // half its buckets, at most the limit's (so an entry moves about 1.14 times as a table
  // fills). Index(n) makes it, on the caller, so that the owner never allocates; GrowIndex
  // starts a rebuild into it (finishing a running one first; the caller gets back what that
  // one left). The rebuild goes on in steps (RebuildStep: a million entries take ~100 ms,
  // which a worker must not wait for at once), and lookups, inserts and removals find every
  // entry meanwhile: an old bucket not yet moved is looked up in the old index. Once done,
  // TakeOldIndex hands the old one over, to be freed by the caller.
  uint32_t IndexWanted(size_t entries) const;
  static std::vector<uint32_t> Index(uint32_t buckets) { return std::vector<uint32_t>(buckets, kNil); }
  void GrowIndex(std::vector<uint32_t>* buckets);
  // Moves whole old buckets until at least `entries` entries moved; true when the rebuild is
  // done (or none runs).
  bool RebuildStep(uint32_t entries);
  bool rebuilding() const { return rebuild_next_ != kNil; }
  void TakeOldIndex(std::vector<uint32_t>* out) {  // *out empty
    if (!rebuilding() && out->empty()) old_buckets_.swap(*out);
  }
  size_t buckets() const { return buckets_.size(); }
  size_t memory_bytes() const;

  // Change tracking. Its memory is made by the caller (Tracking::For(tracking_slots()), a bit
  // and a list entry per slot, room for 4,096 removed keys), so the owner and the datapath never
  // allocate. StartTracking begins a round with nothing changed (false, nothing taken: `t` was
  // made for fewer slots than the table has now). SwapChanges hands over the slots touched
  // (inserted, changed, or removed once the removed keys' room is full) and the keys of entries
  // removed since, in exchange for the caller's lists, which must be empty with the same room:
  // O(1), a pair of swaps. A handed slot still holds a change while TakeTouched(idx) says so (it
  // clears the mark); it does not for a slot removed since (with room for its key), or listed
  // twice after a re-use. A touched slot in state kGone is a removal that found no room: its key
  // stays in the slot, which is not reused until ReleaseGone(idx) frees it. An entry removed and
  // re-created shows in both lists (apply removals first). StopTracking frees the slots still
  // gone and hands the memory back, to be freed by the caller.
  static constexpr size_t kRemovedRoom = 4096;
  struct Tracking {
    std::vector<uint64_t> bits;
    std::vector<uint32_t> touched;
    std::vector<ConnKey> removed;
    static Tracking For(uint32_t slots);
  };
  uint32_t tracking_slots() const { return segment_->capacity(); }  // at least used()
  bool StartTracking(Tracking* t);
  void StopTracking(Tracking* t);
  bool tracking() const { return tracking_; }
  void SwapChanges(std::vector<uint32_t>* touched, std::vector<ConnKey>* removed) {
    dirty_.swap(*touched);
    removed_.swap(*removed);
  }
  bool TakeTouched(uint32_t idx) {
    uint64_t& word = dirty_bits_[idx >> 6];
    const uint64_t bit = uint64_t{1} << (idx & 63);
    const bool touched = word & bit;
    word &= ~bit;
    return touched;
  }
  void ReleaseGone(uint32_t idx) { Free(idx); }

  // Calls f(idx, entry) for up to `max` live entries from `cursor` on, examining at most
  // max + kWalkSkip slots; returns the cursor to continue from, or kNil when the walk is
  // complete. Entries added or removed meanwhile are seen or not, but never twice. The bound
  // keeps one call (a page of flows, an export slice: its worker waits) short on a table of
  // mostly free slots, whose every slot it would otherwise read.
  static constexpr uint32_t kWalkSkip = 16384;
  template <typename F>
  uint32_t Walk(uint32_t cursor, uint32_t max, F&& f) {
    const uint32_t end = static_cast<uint32_t>(std::min<uint64_t>(used_, uint64_t{cursor} + max + kWalkSkip));
    uint32_t i = cursor;
    for (uint32_t seen = 0; i < end && seen < max; i++) {
      if (!IsConn(entries_[i].state)) continue;
      f(i, entries_[i]);
      seen++;
    }
    return i >= used_ ? kNil : i;
  }

 private:
  // Where the chain of a hash starts: in the old index while its bucket there is not moved yet.
  const uint32_t* BucketOf(uint64_t hash) const {
    const uint32_t old = static_cast<uint32_t>(hash) & old_mask_;
    if (old >= rebuild_next_) [[unlikely]] return &old_buckets_[old];
    return &buckets_[hash & mask_];
  }
  uint32_t* BucketOf(uint64_t hash) {
    return const_cast<uint32_t*>(static_cast<const ConnTable*>(this)->BucketOf(hash));
  }
  // Whether entry i, whose inline key fields match k's, has k's whole addresses.
  bool SameEnds(uint32_t i, const ConnKey& k) const {
    if (!(entries_[i].flags & kConnWide)) return !IsWide(k);
    IpAddr lo, hi;
    ReadEnds(&entries_[i + 1], &lo, &hi);
    return lo == k.lo && hi == k.hi;
  }
  // A free slot (two adjacent ones when wide), or kNil.
  uint32_t Allocate(bool wide);
  void Free(uint32_t idx);  // an unlinked slot (and its pair) back to the free lists

  uint32_t limit_;
  uint64_t seed_;
  uint32_t mask_;
  uint32_t size_ = 0;
  uint32_t free_ = kNil;       // free single slots, through ConnEntry::next
  uint32_t free_wide_ = kNil;  // free pairs of slots (a wide entry's), through the first's next
  uint32_t used_ = 0;          // slots ever used: entries_[used_...] have never held an entry
  uint32_t ahead_floor_ = kMinAhead;  // the least headroom CommitTarget keeps (grows with need)
  uint32_t used_at_target_ = 0;       // used_ at the last CommitTarget
  bool ran_short_ = false;            // an Insert found no backed slot since then
  std::vector<uint32_t> buckets_;
  // A rebuild: old buckets from rebuild_next_ on are still in old_buckets_ (kNil: none runs).
  std::vector<uint32_t> old_buckets_;
  uint32_t old_mask_ = 0;
  uint32_t rebuild_next_ = kNil;
  std::unique_ptr<ConnSegment> segment_;
  ConnEntry* entries_;  // segment_'s
  bool tracking_ = false;
  std::vector<uint64_t> dirty_bits_;  // one bit per slot of entries_
  std::vector<uint32_t> dirty_;       // slots in the order they were first touched
  std::vector<ConnKey> removed_;
};

}  // namespace palisade::fw
