// Parsed: the firewall's parse of a packet, done once per packet and burst. The first firewall
// filter that needs it parses into the packet's scratch (slot/filter.h); later slots, and the
// IN chains of the egress ports, find it there. Beside it, the packet's connection key and its
// hash (Keyed): the OUT filter of the ingress port and the IN filter of the egress port hash a
// packet once when their tables share a hash seed (the switch gives all its filters one).
// Thread-safety: as FilterBatch (one worker).
#pragma once

#include <new>

#include "firewall/conn.h"
#include "firewall/packet.h"
#include "slot/filter.h"

namespace palisade::fw {

inline constexpr uint32_t kParsedTag = 0x50415253;  // "PARS"

struct Keyed {
  ConnKey key;
  bool src_is_lo;
  // May take the established path (StatefulFilter::Established): not a fragment, no ICMP (an
  // error or echo) and no TCP SYN, each of which the general path judges.
  bool plain;
  bool valid;     // computed for the packet parsed in this scratch
  uint64_t seed;  // the hash seed `hash` is under
  uint64_t hash;
};

inline constexpr size_t kKeyedOffset = (sizeof(Packet) + 7) & ~size_t{7};
static_assert(kKeyedOffset + sizeof(Keyed) <= sizeof(PacketScratch::bytes),
              "a parse and its key fit in the scratch");
static_assert(alignof(Packet) <= 8 && alignof(Keyed) <= 8);

// The parse of batch packet i: from its scratch when present (parsing it there the first
// time), else into *local (which callers keep outside their per-packet loop: constructing a
// Packet clears 184 bytes, too much to pay per packet for nothing).
inline const Packet& Parsed(const FilterBatch& b, uint16_t i, Packet* local) {
  PacketScratch* s = b.scratch[i];
  if (s == nullptr) {
    ParsePacket(b.pkts[i].data, b.pkts[i].len, local);
    return *local;
  }
  Packet* p = std::launder(reinterpret_cast<Packet*>(s->bytes));
  if (s->tag != kParsedTag) {
    ParsePacket(b.pkts[i].data, b.pkts[i].len, p);  // which makes the Packet there
    new (s->bytes + kKeyedOffset) Keyed{{}, false, false, false, 0, 0};
    s->tag = kParsedTag;
  }
  return *p;
}

// The parse in batch packet i's scratch, made there already (by Parsed).
inline const Packet& ParsedIn(const FilterBatch& b, uint16_t i) {
  return *std::launder(reinterpret_cast<const Packet*>(b.scratch[i]->bytes));
}

// Batch packet i's key when an earlier filter made it under `seed` (the sender's OUT filter, for
// the receiver's IN filter), else null. A key is made only for what parsed as IP, whole or a
// first fragment.
inline const Keyed* KeyedAlready(const FilterBatch& b, uint16_t i, uint64_t seed) {
  const PacketScratch* s = b.scratch[i];
  if (s == nullptr || s->tag != kParsedTag) return nullptr;
  const Keyed* k = std::launder(reinterpret_cast<const Keyed*>(s->bytes + kKeyedOffset));
  return k->valid && k->seed == seed ? k : nullptr;
}

// The connection key of batch packet i (p: its parse, an IP packet) and the key's hash under
// `seed`: from the scratch when computed there under the same seed, else computed (and kept in
// the scratch, or in *local when the packet has none).
inline const Keyed& KeyOf(const FilterBatch& b, uint16_t i, const Packet& p, uint64_t seed,
                          Keyed* local) {
  PacketScratch* s = b.scratch[i];
  Keyed* k = s != nullptr && s->tag == kParsedTag
                 ? std::launder(reinterpret_cast<Keyed*>(s->bytes + kKeyedOffset))
                 : local;
  if (!k->valid) {
    MakeKey(p.tuple, &k->key, &k->src_is_lo);
    const uint8_t proto = p.tuple.proto;
    k->plain = !p.fragment && !p.icmp_error && proto != kProtoIcmp && proto != kProtoIcmp6 &&
               !(proto == kProtoTcp && (p.tcp_flags & tcp::kSyn));
    k->valid = true;
    k->seed = ~seed;  // hashed below
  }
  if (k->seed != seed) {
    k->hash = HashKey(k->key, seed);
    k->seed = seed;
  }
  return *k;
}

}  // namespace palisade::fw
