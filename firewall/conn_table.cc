#include "firewall/conn_table.h"

namespace palisade::fw {

namespace {

// Buckets for a limit: a power of two at least the limit (chains of one entry on average when
// full), from 1,024 to 2^24.
uint32_t BucketsFor(uint32_t limit) {
  uint32_t n = 1024;
  while (n < limit && n < (1u << 24)) n *= 2;
  return n;
}

}  // namespace

ConnTable::ConnTable(uint32_t limit, uint64_t seed, std::unique_ptr<ConnSegment> segment)
    : limit_(limit), seed_(seed), segment_(segment ? std::move(segment) : ConnSegment::Private(limit)) {
  if (segment_->capacity() < limit_) (void)segment_->Grow(limit_);
  limit_ = std::min(limit_, segment_->capacity());
  entries_ = segment_->entries();
  (void)segment_->Commit(CommitTarget());  // a full tmpfs shows at the first CommitAhead
  const uint32_t n = BucketsFor(limit_);
  mask_ = n - 1;
  buckets_.assign(n, kNil);
}

void ConnTable::Rehash(uint32_t nbuckets) {
  buckets_.assign(nbuckets, kNil);
  mask_ = nbuckets - 1;
  for (uint32_t i = 0; i < used_; i++) {
    Conn& c = entries_[i];
    if (c.state == ConnState::kFree) continue;
    const uint32_t b = Bucket(c.key());
    c.next = buckets_[b];
    buckets_[b] = i;
  }
}

uint32_t ConnTable::Insert(const ConnKey& k) {
  if (size_ >= limit_) return kNil;
  uint32_t idx;
  if (free_ != kNil) {
    idx = free_;
    free_ = entries_[idx].next;
  } else {
    if (used_ >= segment_->committed()) return kNil;  // the control thread commits ahead
    idx = used_++;
    segment_->set_used(used_);
    if (tracking_ && (idx >> 6) >= dirty_bits_.size()) dirty_bits_.resize((idx >> 6) + 1024, 0);
  }
  Conn& c = entries_[idx];
  c = Conn{};
  c.lo = k.lo;
  c.hi = k.hi;
  c.lo_port = k.lo_port;
  c.hi_port = k.hi_port;
  c.proto = k.proto;
  c.state = ConnState::kNew;
  const uint32_t b = Bucket(k);
  c.next = buckets_[b];
  buckets_[b] = idx;
  size_++;
  Touch(idx);
  return idx;
}

void ConnTable::Remove(uint32_t idx) {
  Conn& c = entries_[idx];
  if (tracking_) {
    dirty_bits_[idx >> 6] &= ~(uint64_t{1} << (idx & 63));
    removed_.push_back(c.key());
  }
  uint32_t* link = &buckets_[Bucket(c.key())];
  while (*link != idx) link = &entries_[*link].next;
  *link = c.next;
  c.state = ConnState::kFree;
  c.next = free_;
  free_ = idx;
  size_--;
}

void ConnTable::StartTracking() {
  tracking_ = true;
  // Room for every slot the limit allows, so the datapath does not allocate while tracking.
  const size_t slots = std::max<size_t>(used_, limit_);
  dirty_bits_.assign((slots + 63) / 64 + 1, 0);
  dirty_.clear();
  dirty_.reserve(slots);
  removed_.clear();
  removed_.reserve(4096);
}

void ConnTable::StopTracking() {
  tracking_ = false;
  std::vector<uint64_t>().swap(dirty_bits_);
  std::vector<uint32_t>().swap(dirty_);
  std::vector<ConnKey>().swap(removed_);
}

void ConnTable::TakeChanges(std::vector<uint32_t>* changed, std::vector<ConnKey>* removed) {
  for (uint32_t idx : dirty_) {
    uint64_t& word = dirty_bits_[idx >> 6];
    const uint64_t bit = uint64_t{1} << (idx & 63);
    if (!(word & bit)) continue;  // removed since, or listed twice after a re-use
    word &= ~bit;
    changed->push_back(idx);
  }
  dirty_.clear();
  removed->insert(removed->end(), removed_.begin(), removed_.end());
  removed_.clear();
}

uint32_t ConnTable::CommitTarget(size_t n) const {
  // Ahead of the high-water mark by as much as the table holds (at least 16,384 entries, 2 MiB):
  // between two control ticks the datapath may open that many connections.
  const size_t ahead = std::max<size_t>({n, used_, 16384});
  return static_cast<uint32_t>(std::min<size_t>(size_t{used_} + ahead, limit_));
}

Status ConnTable::set_limit(uint32_t limit) {
  if (limit > segment_->capacity()) {
    if (Status s = segment_->Grow(limit); !s.ok()) return s;
    entries_ = segment_->entries();
  }
  limit_ = limit;
  // A higher limit gets the buckets it needs, or its chains would grow as long as the ratio.
  if (BucketsFor(limit) > buckets_.size()) Rehash(BucketsFor(limit));
  return Status::Ok();
}

size_t ConnTable::memory_bytes() const {
  // A file's pages are allocated as committed; private ones as they are first used.
  const uint32_t backed = !segment_->shared() ? used_ : segment_->committed();
  return size_t{backed} * sizeof(Conn) +
         buckets_.size() * sizeof(uint32_t);
}

}  // namespace palisade::fw
