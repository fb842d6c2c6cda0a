// ConnEntry: a connection as a table stores it, 96 bytes, and the slots it takes.
//
// An IPv4 connection (both ends IPv4) takes one slot with its addresses inline. Any other (an
// IPv6 end) is wide: it takes two adjacent slots, the second holding the two 16-byte addresses
// (state kWideEnds, never a connection of its own). Most tables hold IPv4 connections, so most
// entries cost 96 bytes, not the 128 of full addresses inline; a lookup still compares the
// inline last 4 bytes of each address first, so the second slot is read only for a match.
// Flow ids keep 48 bits. Conn (conn.h) is the same connection as it leaves a table; ReadConn
// and WriteState convert between the two.
//
// Value types and pure functions; the table that holds them (conn_table.h) says who may touch them.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "firewall/conn.h"

namespace palisade::fw {

inline constexpr uint8_t kConnWide = 0x20;  // the addresses are in the next slot
inline constexpr uint64_t kFlowIdMask = (uint64_t{1} << 48) - 1;

// A side's sequence tracking as stored; its window scale and kPeer* flags are in peer_bits.
struct TcpSeq {
  uint32_t end, maxend, maxwin;
};

struct ConnEntry {
  uint32_t lo4, hi4;  // the ends' last 4 address bytes (all of an IPv4 address), as IpAddr keeps them
  uint16_t lo_port, hi_port;
  uint8_t proto;
  ConnState state;
  uint8_t flags;  // kConn*
  CloseReason reason;
  uint32_t next;  // hash chain (index), or free list
  uint32_t expires_s;
  uint32_t rule_id;
  uint16_t rule_pos;
  uint16_t generation;
  uint32_t flow_lo;
  uint16_t flow_hi;
  uint8_t peer_bits[2];  // per side: window scale (low 4 bits), kPeer* flags (high 4)
  uint64_t pkts[2];
  uint64_t bytes[2];
  TcpSeq seq[2];

  uint64_t flow_id() const { return uint64_t{flow_hi} << 32 | flow_lo; }
  void set_flow_id(uint64_t id) {
    flow_lo = static_cast<uint32_t>(id);
    flow_hi = static_cast<uint16_t>(id >> 32);
  }
  TcpPeer peer(int d) const {
    return TcpPeer{seq[d].end, seq[d].maxend, seq[d].maxwin, static_cast<uint8_t>(peer_bits[d] & 0xf),
                   static_cast<uint8_t>(peer_bits[d] >> 4)};
  }
  void set_peer(int d, const TcpPeer& p) {
    seq[d] = TcpSeq{p.end, p.maxend, p.maxwin};
    peer_bits[d] = static_cast<uint8_t>((p.scale & 0xf) | (p.flags << 4));
  }
};
static_assert(sizeof(ConnEntry) == 96, "a connection entry is 96 bytes");
static_assert(offsetof(ConnEntry, next) < 32, "a lookup reads the key and the chain link together");

// A slot that holds a connection (not free, not a wide entry's addresses).
inline bool IsConn(ConnState s) { return s != ConnState::kFree && s != ConnState::kWideEnds && s != ConnState::kGone; }

// IpAddr::is_v4 in two loads, for the lookup that confirms a match.
inline bool IsV4Mapped(const IpAddr& a) {
  constexpr uint32_t kMapped = std::bit_cast<uint32_t>(std::array<uint8_t, 4>{0, 0, 0xff, 0xff});
  uint64_t head;
  uint32_t mid;
  std::memcpy(&head, a.b.data(), 8);
  std::memcpy(&mid, a.b.data() + 8, 4);
  return head == 0 && mid == kMapped;
}
inline bool IsWide(const ConnKey& k) { return !(IsV4Mapped(k.lo) && IsV4Mapped(k.hi)); }
inline uint32_t Last4(const IpAddr& a) {
  uint32_t v;
  std::memcpy(&v, a.b.data() + 12, 4);
  return v;
}

// A wide entry's second slot: its state says what it is, the addresses follow the first 16 bytes.
inline constexpr size_t kWideEndsAt = 16;
inline void WriteEnds(ConnEntry* slot, const IpAddr& lo, const IpAddr& hi) {
  *slot = ConnEntry{};
  slot->state = ConnState::kWideEnds;
  char* p = reinterpret_cast<char*>(slot) + kWideEndsAt;
  std::memcpy(p, lo.b.data(), 16);
  std::memcpy(p + 16, hi.b.data(), 16);
}
inline void ReadEnds(const ConnEntry* slot, IpAddr* lo, IpAddr* hi) {
  const char* p = reinterpret_cast<const char*>(slot) + kWideEndsAt;
  std::memcpy(lo->b.data(), p, 16);
  std::memcpy(hi->b.data(), p + 16, 16);
}

// The addresses of the connection at slots[idx] (a wide one's from the next slot).
inline void EntryEnds(const ConnEntry* slots, uint32_t idx, IpAddr* lo, IpAddr* hi) {
  const ConnEntry& e = slots[idx];
  if (e.flags & kConnWide) {
    ReadEnds(&slots[idx + 1], lo, hi);
  } else {
    *lo = IpAddr::FromV4Bytes(reinterpret_cast<const uint8_t*>(&e.lo4));
    *hi = IpAddr::FromV4Bytes(reinterpret_cast<const uint8_t*>(&e.hi4));
  }
}

// The connection at slots[idx] as exported (expires_s as stored, no chain link), or false when
// it is wide and slots[idx + 1] (within `used`) does not hold its addresses: a damaged file.
bool ReadConn(const ConnEntry* slots, uint32_t used, uint32_t idx, Conn* out);
// Everything of c but its key and chain link into e (c's flow id to 48 bits).
void WriteState(const Conn& c, ConnEntry* e);

}  // namespace palisade::fw
