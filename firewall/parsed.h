// Parsed: the firewall's parse of a packet, done once per packet and burst. The first firewall
// filter that needs it parses into the packet's scratch (vswitch/filter.h); later slots, and the
// IN chains of the egress ports, find it there.
// Thread-safety: as FilterBatch (one worker).
#pragma once

#include <new>

#include "firewall/packet.h"
#include "vswitch/filter.h"

namespace palisade::fw {

inline constexpr uint32_t kParsedTag = 0x50415253;  // "PARS"
static_assert(sizeof(Packet) <= sizeof(PacketScratch::bytes), "a parse fits in the scratch");
static_assert(alignof(Packet) <= 8);

// The parse of batch packet i: from its scratch when present (parsing it there the first
// time), else into *local.
inline const Packet& Parsed(const FilterBatch& b, uint16_t i, Packet* local) {
  PacketScratch* s = b.scratch[i];
  if (s == nullptr) {
    ParsePacket(b.pkts[i].data, b.pkts[i].len, local);
    return *local;
  }
  Packet* p = std::launder(reinterpret_cast<Packet*>(s->bytes));
  if (s->tag != kParsedTag) {
    new (s->bytes) Packet;
    ParsePacket(b.pkts[i].data, b.pkts[i].len, p);
    s->tag = kParsedTag;
  }
  return *p;
}

}  // namespace palisade::fw
