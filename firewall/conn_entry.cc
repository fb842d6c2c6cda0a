#include "firewall/conn_entry.h"

namespace palisade::fw {

bool ReadConn(const ConnEntry* slots, uint32_t used, uint32_t idx, Conn* out) {
  const ConnEntry& e = slots[idx];
  if ((e.flags & kConnWide) && (idx + 1 >= used || slots[idx + 1].state != ConnState::kWideEnds)) return false;
  Conn c{};
  EntryEnds(slots, idx, &c.lo, &c.hi);
  c.lo_port = e.lo_port;
  c.hi_port = e.hi_port;
  c.proto = e.proto;
  c.state = e.state;
  c.flags = static_cast<uint8_t>(e.flags & ~kConnWide);
  c.reason = e.reason;
  c.rule_id = e.rule_id;
  c.rule_pos = e.rule_pos;
  c.generation = e.generation;
  c.flow_id = e.flow_id();
  for (int d = 0; d < 2; d++) {
    c.pkts[d] = e.pkts[d];
    c.bytes[d] = e.bytes[d];
    c.peer[d] = e.peer(d);
  }
  c.expires_s = e.expires_s;
  *out = c;
  return true;
}

void WriteState(const Conn& c, ConnEntry* e) {
  e->state = c.state;
  e->flags = static_cast<uint8_t>((c.flags & ~kConnWide) | (e->flags & kConnWide));
  e->reason = c.reason;
  e->rule_id = c.rule_id;
  e->rule_pos = c.rule_pos;
  e->generation = c.generation;
  e->set_flow_id(c.flow_id);
  for (int d = 0; d < 2; d++) {
    e->pkts[d] = c.pkts[d];
    e->bytes[d] = c.bytes[d];
    e->set_peer(d, c.peer[d]);
  }
  e->expires_s = c.expires_s;
}

}  // namespace palisade::fw
