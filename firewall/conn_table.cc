#include "firewall/conn_table.h"

#include <bit>

namespace palisade::fw {

namespace {

// Buckets for n entries: a power of two at least n (chains of one entry on average), from
// 4,096 (16 KB, what an idle port's index costs) to 2^24.
uint32_t BucketsFor(uint64_t n) {
  uint32_t b = 4096;
  while (b < n && b < (1u << 24)) b *= 2;
  return b;
}

}  // namespace

ConnTable::ConnTable(uint32_t limit, uint64_t seed, std::unique_ptr<ConnSegment> segment)
    : limit_(limit), seed_(seed),
      segment_(segment ? std::move(segment) : ConnSegment::Private(SlotsFor(limit))) {
  if (segment_->capacity() < SlotsFor(limit_)) (void)segment_->Grow(SlotsFor(limit_));
  limit_ = std::min(limit_, segment_->capacity());
  entries_ = segment_->entries();
  (void)segment_->Commit(CommitTarget());  // a full tmpfs shows at the first CommitAhead
  buckets_ = Index(BucketsFor(0));
  mask_ = static_cast<uint32_t>(buckets_.size()) - 1;
}

uint32_t ConnTable::IndexWanted(size_t entries) const {
  const uint32_t most = BucketsFor(limit_);
  if (rebuilding() || entries * 2 <= buckets_.size() || buckets_.size() >= most) return 0;
  return std::min(most, BucketsFor(uint64_t{entries} * 8));
}

void ConnTable::GrowIndex(std::vector<uint32_t>* buckets) {
  if (buckets->size() <= buckets_.size()) return;
  (void)RebuildStep(kNil);  // all of a running one
  old_buckets_.swap(buckets_);
  buckets_.swap(*buckets);  // the caller gets the index a finished rebuild left, if any
  old_mask_ = mask_;
  mask_ = static_cast<uint32_t>(buckets_.size()) - 1;
  rebuild_next_ = 0;
}

bool ConnTable::RebuildStep(uint32_t entries) {
  // An old bucket's entries all go to new buckets of the same residue (the new size is a
  // multiple of the old): each moves whole, and a lookup picks the index by the old bucket.
  // Ahead of the move, two stages as in a burst's lookups: the chain's first entry, then (once
  // it is in cache) its new bucket; chains are about one entry long.
  constexpr uint32_t kAhead = 8;
  const uint32_t n = static_cast<uint32_t>(old_buckets_.size());
  uint32_t b = rebuild_next_, moved = 0;
  for (; b < n && moved < entries; b++) {
    if (b + 2 * kAhead < n) {
      if (const uint32_t i = old_buckets_[b + 2 * kAhead]; i != kNil) __builtin_prefetch(&entries_[i]);
    }
    if (b + kAhead < n) {
      if (const uint32_t i = old_buckets_[b + kAhead]; i != kNil) __builtin_prefetch(&buckets_[Hash(Key(i)) & mask_]);
    }
    for (uint32_t i = old_buckets_[b]; i != kNil; moved++) {
      ConnEntry& c = entries_[i];
      const uint32_t next = c.next;
      uint32_t& head = buckets_[Hash(Key(i)) & mask_];
      c.next = head;
      head = i;
      i = next;
    }
    old_buckets_[b] = kNil;
  }
  if (b >= n) b = kNil;
  rebuild_next_ = b;
  return !rebuilding();
}

uint32_t ConnTable::Allocate(bool wide) {
  uint32_t idx;
  if (!wide && free_ != kNil) {
    idx = free_;
    free_ = entries_[idx].next;
    return idx;
  }
  if (free_wide_ != kNil) {
    idx = free_wide_;
    free_wide_ = entries_[idx].next;
    if (!wide) {  // the pair's second slot becomes a single
      entries_[idx + 1].next = free_;
      free_ = idx + 1;
    }
    return idx;
  }
  const uint32_t n = wide ? 2 : 1;
  if (uint64_t{used_} + n > segment_->committed()) {  // the control thread commits ahead
    ran_short_ = true;
    return kNil;
  }
  idx = used_;
  used_ += n;
  segment_->set_used(used_);
  if (tracking_ && (used_ >> 6) >= dirty_bits_.size()) dirty_bits_.resize((used_ >> 6) + 1024, 0);
  return idx;
}

uint32_t ConnTable::Insert(const ConnKey& k) {
  if (size_ >= limit_) return kNil;
  const bool wide = IsWide(k);
  const uint32_t idx = Allocate(wide);
  if (idx == kNil) return kNil;
  ConnEntry& c = entries_[idx];
  c = ConnEntry{};
  c.lo4 = Last4(k.lo);
  c.hi4 = Last4(k.hi);
  c.lo_port = k.lo_port;
  c.hi_port = k.hi_port;
  c.proto = k.proto;
  c.state = ConnState::kNew;
  if (wide) {
    c.flags = kConnWide;
    WriteEnds(&entries_[idx + 1], k.lo, k.hi);
  }
  uint32_t* head = BucketOf(Hash(k));
  c.next = *head;
  *head = idx;
  size_++;
  Touch(idx);
  return idx;
}

void ConnTable::Remove(uint32_t idx) {
  ConnEntry& c = entries_[idx];
  const ConnKey k = Key(idx);
  uint32_t* link = BucketOf(Hash(k));
  while (*link != idx) link = &entries_[*link].next;
  *link = c.next;
  size_--;
  if (tracking_) {
    if (removed_.size() < removed_.capacity()) {
      dirty_bits_[idx >> 6] &= ~(uint64_t{1} << (idx & 63));
      removed_.push_back(k);
    } else {  // no room: the slot keeps the key until the delta lists it
      c.state = ConnState::kGone;
      Touch(idx);
      return;
    }
  }
  Free(idx);
}

void ConnTable::Free(uint32_t idx) {
  ConnEntry& c = entries_[idx];
  c.state = ConnState::kFree;
  if (c.flags & kConnWide) {
    entries_[idx + 1].state = ConnState::kFree;
    c.next = free_wide_;
    free_wide_ = idx;
  } else {
    c.next = free_;
    free_ = idx;
  }
}

ConnKey ConnTable::Key(uint32_t idx) const {
  const ConnEntry& c = entries_[idx];
  ConnKey k;
  EntryEnds(entries_, idx, &k.lo, &k.hi);
  k.lo_port = c.lo_port;
  k.hi_port = c.hi_port;
  k.proto = c.proto;
  return k;
}

Tuple ConnTable::OrigTuple(uint32_t idx) const {
  const ConnKey k = Key(idx);
  const bool orig_lo = entries_[idx].flags & kConnOrigIsLo;
  return orig_lo ? Tuple{k.lo, k.hi, k.lo_port, k.hi_port, k.proto}
                 : Tuple{k.hi, k.lo, k.hi_port, k.lo_port, k.proto};
}

Conn ConnTable::Get(uint32_t idx) const {
  Conn c;
  (void)ReadConn(entries_, used_, idx, &c);  // this table's own wide entries are whole
  return c;
}

ConnTable::Tracking ConnTable::Tracking::For(uint32_t slots) {
  Tracking t;
  t.bits.assign((size_t{slots} + 63) / 64 + 1, 0);
  t.touched.reserve(slots);
  t.removed.reserve(kRemovedRoom);
  return t;
}

bool ConnTable::StartTracking(Tracking* t) {
  if (tracking_ || t->touched.capacity() < tracking_slots() ||
      t->bits.size() * 64 < size_t{tracking_slots()} || t->removed.capacity() < kRemovedRoom) {
    return false;
  }
  tracking_ = true;
  dirty_bits_.swap(t->bits);
  dirty_.swap(t->touched);
  removed_.swap(t->removed);
  return true;
}

void ConnTable::StopTracking(Tracking* t) {
  // A slot gone is marked and listed (in the list here: a delta's slices took those they
  // handed out), so only this list's may remain.
  for (uint32_t idx : dirty_) {
    if (entries_[idx].state == ConnState::kGone && TakeTouched(idx)) Free(idx);
  }
  tracking_ = false;
  dirty_bits_.swap(t->bits);
  dirty_.swap(t->touched);
  removed_.swap(t->removed);
}

uint32_t ConnTable::CommitTarget(size_t n) {
  // Ahead of the high-water mark by an eighth of it, and at least a floor that follows need:
  // 1,024 slots (96 KiB) for a table that has not grown, twice its growth since the last call
  // (a control tick, 20 ms) for one that grows, and 16,384 (1.5 MiB, 800,000 new connections a
  // second) once one ran short (refused as state-headroom until this call). The floor never
  // shrinks: a port that was busy once stays ready. An idle port's table commits 96 KiB, not
  // 1.5 MiB (conn_headroom_bench: 500 idle ports, 51 MB of tmpfs against 838 MB).
  const uint32_t grew = used_ - std::min(used_, used_at_target_);
  const uint64_t need = ran_short_ ? kMaxAhead : std::bit_ceil(std::max<uint64_t>(2 * uint64_t{grew}, 1));
  ahead_floor_ = std::max(ahead_floor_, static_cast<uint32_t>(std::min<uint64_t>(need, kMaxAhead)));
  used_at_target_ = used_;
  ran_short_ = false;
  const size_t ahead = std::max<size_t>({n, used_ / 8, ahead_floor_});
  return static_cast<uint32_t>(std::min<size_t>(size_t{used_} + ahead, segment_->capacity()));
}

Status ConnTable::set_limit(uint32_t limit) {
  if (SlotsFor(limit) > segment_->capacity()) {
    // Tracking has a mark for each slot there is now.
    if (tracking_) return Status::Unavailable("the port is migrating: its connection limit can grow once it is done");
    if (Status s = segment_->Grow(SlotsFor(limit)); !s.ok()) return s;
    entries_ = segment_->entries();
  }
  limit_ = limit;
  return Status::Ok();
}

size_t ConnTable::memory_bytes() const {
  // A file's pages are allocated as committed; private ones as they are first used.
  const uint32_t backed = !segment_->shared() ? used_ : segment_->committed();
  return size_t{backed} * sizeof(ConnEntry) +
         (buckets_.size() + old_buckets_.size()) * sizeof(uint32_t);
}

}  // namespace palisade::fw
