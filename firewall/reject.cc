#include "firewall/reject.h"

#include "firewall/packet_builder.h"

namespace palisade::fw {
namespace {

bool MulticastOrBroadcast(const IpAddr& a) {
  if (a.is_v4()) {
    const uint32_t v = a.v4();
    return (v >> 28) == 0xe || v == 0xffffffffu || v == 0;
  }
  return a.b[0] == 0xff;
}

}  // namespace

std::vector<uint8_t> BuildReject(const uint8_t* frame, uint32_t len, const Packet& p) {
  if (!p.ip || p.error != ParseError::kNone || p.icmp_error) return {};
  if (MulticastOrBroadcast(p.tuple.dst) || MulticastOrBroadcast(p.tuple.src)) return {};
  if ((p.dst_mac >> 40) & 1) return {};  // sent to a group: nobody in particular to answer
  if (p.fragment && !p.first_fragment) return {};

  FrameSpec s;
  s.src_mac = p.dst_mac;
  s.dst_mac = p.src_mac;
  s.src = p.tuple.dst;
  s.dst = p.tuple.src;
  if (p.tuple.proto == kProtoTcp && p.has_l4) {
    if (p.tcp_flags & tcp::kRst) return {};
    s.proto = kProtoTcp;
    s.sport = p.tuple.dport;
    s.dport = p.tuple.sport;
    s.window = 0;
    if (p.tcp_flags & tcp::kAck) {
      s.flags = tcp::kRst;
      s.seq = p.ack;
      s.ack = 0;
    } else {
      s.flags = tcp::kRst | tcp::kAck;
      s.seq = 0;
      s.ack = p.seq + p.payload_len + ((p.tcp_flags & tcp::kSyn) ? 1 : 0) +
              ((p.tcp_flags & tcp::kFin) ? 1 : 0);
    }
    return BuildFrame(s);
  }
  // Quote the offending datagram: its IP header and as much after it as stays within the
  // minimum MTU (576 for IPv4 with the first 8 bytes at least, 1280 for IPv6).
  const uint32_t l3_end = p.l3_offset + p.l3_len;
  const uint32_t quote_max = p.v6 ? 1280 - 48 : 576 - 28;
  uint32_t quote = l3_end - p.l3_offset;
  if (quote > quote_max) quote = quote_max;
  if (p.l3_offset + quote > len) return {};
  s.payload.assign(frame + p.l3_offset, frame + p.l3_offset + quote);
  s.sport = 0;
  if (p.v6) {
    s.proto = kProtoIcmp6;
    s.icmp_type = 1;  // destination unreachable
    s.icmp_code = 1;  // communication administratively prohibited
  } else {
    s.proto = kProtoIcmp;
    s.icmp_type = 3;  // destination unreachable
    s.icmp_code = 3;  // port unreachable
  }
  return BuildFrame(s);
}

}  // namespace palisade::fw
