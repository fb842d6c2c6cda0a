#include "firewall/conn.h"

#include <cstring>

namespace palisade::fw {

const char* ConnStateName(ConnState s) {
  switch (s) {
    case ConnState::kFree: return "FREE";
    case ConnState::kSynSent: return "SYN_SENT";
    case ConnState::kSynRecv: return "SYN_RECV";
    case ConnState::kEstablished: return "EST";
    case ConnState::kFinWait: return "FIN_WAIT";
    case ConnState::kCloseWait: return "CLOSE_WAIT";
    case ConnState::kTimeWait: return "TIME_WAIT";
    case ConnState::kClosed: return "CLOSED";
    case ConnState::kNew: return "NEW";
    case ConnState::kMultiple: return "MULTIPLE";
  }
  return "?";
}

const char* CloseReasonName(CloseReason r) {
  switch (r) {
    case CloseReason::kNone: return "NONE";
    case CloseReason::kFin: return "FIN";
    case CloseReason::kRst: return "RST";
    case CloseReason::kTimeout: return "TIMEOUT";
    case CloseReason::kRuleChange: return "RULE_CHANGE";
    case CloseReason::kFlush: return "FLUSH";
    case CloseReason::kReopen: return "REOPEN";
  }
  return "?";
}

ConnKey MakeKey(const Tuple& t, bool* src_is_lo) {
  ConnKey k;
  MakeKey(t, &k, src_is_lo);
  return k;
}

uint64_t HashKey(const ConnKey& k, uint64_t seed) {
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

Tuple Conn::OrigTuple() const {
  Tuple t;
  t.proto = proto;
  if (flags & kConnOrigIsLo) {
    t.src = lo;
    t.dst = hi;
    t.sport = lo_port;
    t.dport = hi_port;
  } else {
    t.src = hi;
    t.dst = lo;
    t.sport = hi_port;
    t.dport = lo_port;
  }
  return t;
}

}  // namespace palisade::fw
