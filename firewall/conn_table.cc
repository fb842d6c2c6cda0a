#include "firewall/conn_table.h"

namespace palisade::fw {

ConnTable::ConnTable(uint32_t limit, uint64_t seed) : limit_(limit), seed_(seed) {
  uint32_t n = 1024;
  while (n < limit && n < (1u << 24)) n *= 2;
  mask_ = n - 1;
  buckets_.assign(n, kNil);
}

uint32_t ConnTable::Find(const ConnKey& k) const {
  for (uint32_t i = buckets_[Bucket(k)]; i != kNil; i = entries_[i].next) {
    const Conn& c = entries_[i];
    if (c.lo_port == k.lo_port && c.hi_port == k.hi_port && c.proto == k.proto && c.lo == k.lo &&
        c.hi == k.hi) {
      return i;
    }
  }
  return kNil;
}

uint32_t ConnTable::Insert(const ConnKey& k) {
  if (size_ >= limit_) return kNil;
  uint32_t idx;
  if (free_ != kNil) {
    idx = free_;
    free_ = entries_[idx].next;
  } else {
    idx = static_cast<uint32_t>(entries_.size());
    entries_.emplace_back();
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
  return idx;
}

void ConnTable::Remove(uint32_t idx) {
  Conn& c = entries_[idx];
  uint32_t* link = &buckets_[Bucket(c.key())];
  while (*link != idx) link = &entries_[*link].next;
  *link = c.next;
  c.state = ConnState::kFree;
  c.next = free_;
  free_ = idx;
  size_--;
}

size_t ConnTable::memory_bytes() const {
  return entries_.capacity() * sizeof(Conn) + buckets_.size() * sizeof(uint32_t);
}

}  // namespace palisade::fw
