// Conn: one connection-tracking entry as it leaves a table (export, import, migration, a
// segment read back), with its full key and its states. A table stores it more tightly
// (ConnEntry, conn_entry.h).
//
// A connection is stored once under a normalized key (the lower address/port pair first), so
// both directions find it with one lookup; `orig_is_lo` says which end opened it. Direction 0
// is the original direction (the packet that created the entry), 1 the reply.
// Value types; the table that holds them (conntrack.h) says who may touch them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "firewall/ip_addr.h"
#include "firewall/packet.h"

namespace palisade::fw {

enum class ConnState : uint8_t {
  kFree = 0,  // an unused slot
  // TCP
  kSynSent, kSynRecv, kEstablished, kFinWait, kCloseWait, kTimeWait, kClosed,
  // UDP, ICMP echo and other protocols: one direction seen, or both
  kNew, kMultiple,
  kWideEnds,  // stored only: the slot after an IPv6 entry's, holding its addresses
  kGone,      // stored only: removed while tracking changes, its key kept for the next delta
};

const char* ConnStateName(ConnState s);  // SYN_SENT, EST, FIN_WAIT, ... as getflows prints

// kReopen: a new SYN on the same ports, answered by a matching SYN/ACK, replaced the entry.
enum class CloseReason : uint8_t { kNone, kFin, kRst, kTimeout, kRuleChange, kFlush, kReopen };
const char* CloseReasonName(CloseReason r);

// One side of a TCP connection, for sequence-window tracking (after G. van Rooij's scheme).
struct TcpPeer {
  uint32_t end = 0;     // highest sequence number sent + 1
  uint32_t maxend = 0;  // highest sequence number the other side has allowed
  uint32_t maxwin = 0;  // largest window seen; 0: this side not seen yet
  uint8_t scale = 0;    // window scale
  uint8_t flags = 0;    // kPeer* below
  uint16_t pad = 0;
};
inline constexpr uint8_t kPeerFin = 0x1;      // sent a FIN
inline constexpr uint8_t kPeerWscale = 0x2;   // offered window scaling in its SYN

// Normalized key and the direction of the packet that produced it.
struct ConnKey {
  IpAddr lo, hi;
  uint16_t lo_port = 0, hi_port = 0;
  uint8_t proto = 0;
  bool operator==(const ConnKey&) const = default;
};

// Key of a packet tuple; *src_is_lo says whether the packet's source is the lo end.
ConnKey MakeKey(const Tuple& t, bool* src_is_lo);
// The same, in place: the datapath builds the key where it keeps it (a returned key copied into
// place is read back in wider words than it was written in, which stalls store forwarding).
// Inline: once per packet.
inline void MakeKey(const Tuple& t, ConnKey* k, bool* src_is_lo) {
  // Address order as two big-endian 64-bit halves: the same order as the bytes, without memcmp.
  int c = 0;
  for (size_t i = 0; i < 16 && c == 0; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, t.src.b.data() + i, 8);
    std::memcpy(&y, t.dst.b.data() + i, 8);
    x = __builtin_bswap64(x);
    y = __builtin_bswap64(y);
    if (x != y) c = x < y ? -1 : 1;
  }
  const bool lo_first = c < 0 || (c == 0 && t.sport <= t.dport);
  *src_is_lo = lo_first;
  k->proto = t.proto;
  k->lo = lo_first ? t.src : t.dst;
  k->hi = lo_first ? t.dst : t.src;
  k->lo_port = lo_first ? t.sport : t.dport;
  k->hi_port = lo_first ? t.dport : t.sport;
}
// Inline: once per packet.
inline uint64_t HashKey(const ConnKey& k, uint64_t seed) {
  // 64-bit multiply-xorshift over the key's words; the seed is random per table, so flows
  // cannot be chosen to collide.
  uint64_t w[5];
  std::memcpy(&w[0], k.lo.b.data(), 16);
  std::memcpy(&w[2], k.hi.b.data(), 16);
  w[4] = (uint64_t{k.lo_port} << 24) | (uint64_t{k.hi_port} << 8) | k.proto;
  // Independent multiplies (they overlap in the pipeline), then one fold.
  uint64_t h = (w[0] ^ seed) * 0x9e3779b97f4a7c15ull;
  h ^= (w[1] + seed) * 0xbf58476d1ce4e5b9ull;
  h ^= (w[2] ^ (seed >> 7)) * 0x94d049bb133111ebull;
  h ^= (w[3] + (seed >> 13)) * 0xd6e8feb86659fd93ull;
  h ^= (w[4] ^ (seed >> 29)) * 0xa0761d6478bd642full;
  // A final avalanche, so that the bucket bits (the low ones) depend on every input bit.
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  return h ^ (h >> 29);
}

inline constexpr uint8_t kConnOrigIsLo = 0x01;  // the originator is the key's lo end
inline constexpr uint8_t kConnOrigIn = 0x02;    // the original direction is toward the VM
inline constexpr uint8_t kConnLog = 0x04;       // admitted by a `with log` rule: log its end
inline constexpr uint8_t kConnV6 = 0x08;
// Picked up mid-stream (no SYN seen, so no window scale known): windows are learned but not
// enforced, as Linux's BE_LIBERAL does for such connections; RSTs are still checked.
inline constexpr uint8_t kConnLiberal = 0x10;

struct Conn {
  IpAddr lo, hi;
  uint16_t lo_port, hi_port;
  uint8_t proto;
  ConnState state;
  uint8_t flags;
  CloseReason reason;  // why it ended, once it has
  uint32_t rule_id;
  uint16_t rule_pos;    // position of that rule in the table of `generation`
  uint16_t generation;  // rule table generation (mod 2^16) that admitted or last re-checked it
  uint64_t flow_id;
  uint64_t pkts[2];
  uint64_t bytes[2];
  uint32_t expires_s;
  uint32_t next;  // 0: a table's chain link, kept for version 1 segments' layout
  TcpPeer peer[2];

  ConnKey key() const { return ConnKey{lo, hi, lo_port, hi_port, proto}; }
  // The original direction's tuple (source = originator).
  Tuple OrigTuple() const;
};
static_assert(sizeof(Conn) == 128, "the layout of version 1 segments, read back after an upgrade");

}  // namespace palisade::fw
