#include "firewall/packet.h"

#include <immintrin.h>

#include <cstring>
#include <type_traits>

namespace palisade::fw {
namespace {

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint64_t Mac(const uint8_t* p) {
  return (uint64_t{p[0]} << 40) | (uint64_t{p[1]} << 32) | (uint64_t{p[2]} << 24) |
         (uint64_t{p[3]} << 16) | (uint64_t{p[4]} << 8) | p[5];
}

constexpr int kMaxExtHeaders = 8;

// ::ffff:0:0/96, how IpAddr holds IPv4: on the wire in an IPv6 header it is invalid (RFC 4291
// 2.5.5.2), and taken as it is it would share IPv4 connections' keys.
bool V4Mapped(const uint8_t* a) {
  static constexpr uint8_t kPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  for (int i = 0; i < 12; i++) {
    if (a[i] != kPrefix[i]) return false;
  }
  return true;
}

// The length of the upper-layer header that must sit whole in a first fragment.
uint32_t L4HeaderLen(const uint8_t* l4, uint32_t len, uint8_t proto) {
  if (proto == kProtoTcp) return len >= 13 ? (l4[12] >> 4) * 4u : 20;
  if (proto == kProtoUdp || proto == kProtoIcmp || proto == kProtoIcmp6) return 8;
  return 0;
}

bool IsIcmpError(bool v6, uint8_t type) {
  return v6 ? (type >= 1 && type <= 4) : (type == 3 || type == 4 || type == 5 || type == 11 || type == 12);
}
bool IsIcmpEcho(bool v6, uint8_t type) {
  return v6 ? (type == 128 || type == 129) : (type == 8 || type == 0);
}

// The IP header an ICMP error quotes (and the first 8 bytes after it). Quoted packets are
// often cut short; what is present must still be consistent.
bool ParseQuoted(const uint8_t* p, uint32_t len, bool v6, Tuple* t) {
  uint32_t hlen;
  uint8_t proto;
  if (!v6) {
    if (len < 20 || (p[0] >> 4) != 4) return false;
    hlen = (p[0] & 0xf) * 4u;
    if (hlen < 20 || hlen > len) return false;
    proto = p[9];
    t->src = IpAddr::FromV4Bytes(p + 12);
    t->dst = IpAddr::FromV4Bytes(p + 16);
    if ((Be16(p + 6) & 0x1fff) != 0) return false;  // a non-first fragment quotes no ports
  } else {
    if (len < 40 || (p[0] >> 4) != 6 || V4Mapped(p + 8) || V4Mapped(p + 24)) return false;
    hlen = 40;
    proto = p[6];
    t->src = IpAddr::FromV6Bytes(p + 8);
    t->dst = IpAddr::FromV6Bytes(p + 24);
  }
  t->proto = proto;
  const uint8_t* l4 = p + hlen;
  const uint32_t l4len = len - hlen;
  if (proto == kProtoTcp || proto == kProtoUdp) {
    if (l4len < 4) return false;
    t->sport = Be16(l4);
    t->dport = Be16(l4 + 2);
  } else if (proto == (v6 ? kProtoIcmp6 : kProtoIcmp)) {
    if (l4len < 8 || !IsIcmpEcho(v6, l4[0])) return false;
    t->sport = t->dport = Be16(l4 + 4);
  }
  return true;
}

ParseError ParseTcpOptions(const uint8_t* p, uint32_t len, Packet* out) {
  uint32_t i = 0;
  while (i < len) {
    const uint8_t kind = p[i];
    if (kind == 0) break;  // end of options
    if (kind == 1) {       // no-op
      i++;
      continue;
    }
    if (i + 1 >= len || p[i + 1] < 2 || i + p[i + 1] > len) return ParseError::kBadL4Header;
    if (kind == 3 && p[i + 1] == 3) out->wscale = p[i + 2] > 14 ? 14 : p[i + 2];
    i += p[i + 1];
  }
  return ParseError::kNone;
}

ParseError ParseL4(const uint8_t* frame, Packet* out) {
  const uint8_t* p = frame + out->l4_offset;
  const uint32_t len = out->l4_len;
  switch (out->tuple.proto) {
    case kProtoTcp: {
      if (len < 20) return ParseError::kShort;
      const uint32_t doff = (p[12] >> 4) * 4u;
      if (doff < 20 || doff > len) return ParseError::kBadL4Header;
      out->tuple.sport = Be16(p);
      out->tuple.dport = Be16(p + 2);
      out->seq = Be32(p + 4);
      out->ack = Be32(p + 8);
      out->tcp_flags = p[13];
      out->window = Be16(p + 14);
      out->payload_len = static_cast<uint16_t>(len - doff);
      if (out->tcp_flags & tcp::kSyn) {
        if (ParseError e = ParseTcpOptions(p + 20, doff - 20, out); e != ParseError::kNone) return e;
      }
      break;
    }
    case kProtoUdp: {
      if (len < 8) return ParseError::kShort;
      const uint16_t ulen = Be16(p + 4);
      // A first fragment carries only part of the datagram its UDP length describes.
      if (ulen < 8 || (!out->fragment && ulen > len)) return ParseError::kBadL4Header;
      out->tuple.sport = Be16(p);
      out->tuple.dport = Be16(p + 2);
      out->payload_len = static_cast<uint16_t>((out->fragment ? len : ulen) - 8);
      break;
    }
    case kProtoIcmp:
    case kProtoIcmp6: {
      if ((out->tuple.proto == kProtoIcmp6) != out->v6) return ParseError::kNone;  // foreign ICMP
      if (len < 4) return ParseError::kShort;
      out->icmp_type = p[0];
      out->icmp_code = p[1];
      if (IsIcmpEcho(out->v6, p[0])) {
        if (len < 8) return ParseError::kShort;
        out->icmp_echo = true;
        out->tuple.sport = out->tuple.dport = Be16(p + 4);
      } else if (IsIcmpError(out->v6, p[0]) && len >= 8) {
        out->icmp_error = ParseQuoted(p + 8, len - 8, out->v6, &out->quoted);
      }
      break;
    }
    default: break;
  }
  return ParseError::kNone;
}

ParseError ParseIpv4(const uint8_t* frame, uint32_t len, Packet* out) {
  const uint8_t* p = frame + out->l3_offset;
  const uint32_t avail = len - out->l3_offset;
  if (avail < 20) return ParseError::kShort;
  if ((p[0] >> 4) != 4) return ParseError::kBadIpHeader;
  const uint32_t ihl = (p[0] & 0xf) * 4u;
  const uint32_t total = Be16(p + 2);
  if (ihl < 20) return ParseError::kBadIpHeader;
  if (ihl > avail) return ParseError::kShort;
  if (total < ihl) return ParseError::kBadIpHeader;
  if (total > avail) return ParseError::kShort;
  out->ip = true;
  out->l3_len = static_cast<uint16_t>(total);
  out->ip_options = ihl > 20;
  out->ttl = p[8];
  out->tuple.proto = p[9];
  out->tuple.src = IpAddr::FromV4Bytes(p + 12);
  out->tuple.dst = IpAddr::FromV4Bytes(p + 16);
  const uint16_t frag = Be16(p + 6);
  const uint16_t offset = frag & 0x1fff;
  const bool more = frag & 0x2000;
  if (offset != 0 || more) {
    out->fragment = true;
    out->first_fragment = offset == 0;
    out->frag_id = Be16(p + 4);
    out->frag_offset = static_cast<uint16_t>(offset * 8u);
  }
  if (offset != 0) return ParseError::kNone;  // no upper-layer header here
  out->l4_offset = static_cast<uint16_t>(out->l3_offset + ihl);
  out->l4_len = static_cast<uint16_t>(total - ihl);
  out->has_l4 = true;
  if (more) out->frag_hdr_end = static_cast<uint16_t>(L4HeaderLen(p + ihl, total - ihl, out->tuple.proto));
  return ParseL4(frame, out);
}

ParseError ParseIpv6(const uint8_t* frame, uint32_t len, Packet* out) {
  const uint8_t* p = frame + out->l3_offset;
  const uint32_t avail = len - out->l3_offset;
  if (avail < 40) return ParseError::kShort;
  if ((p[0] >> 4) != 6) return ParseError::kBadIpHeader;
  const uint32_t total = 40u + Be16(p + 4);
  if (total > avail) return ParseError::kShort;
  out->ip = true;
  out->v6 = true;
  out->l3_len = static_cast<uint16_t>(total);
  out->ttl = p[7];
  if (V4Mapped(p + 8) || V4Mapped(p + 24)) return ParseError::kBadAddress;
  out->tuple.src = IpAddr::FromV6Bytes(p + 8);
  out->tuple.dst = IpAddr::FromV6Bytes(p + 24);
  uint8_t next = p[6];
  uint32_t off = 40;
  uint32_t fragmentable = 0;  // where the fragmentable part starts (after a fragment header)
  for (int n = 0;; n++) {
    if (next != 0 && next != 43 && next != 60 && next != 44 && next != 51) break;
    if (n == kMaxExtHeaders) return ParseError::kBadExtHeader;
    out->ip_options = true;
    if (off + 8 > total) return ParseError::kBadExtHeader;
    const uint8_t* h = p + off;
    if (next == 44) {  // fragment header
      const uint16_t fo = Be16(h + 2);
      const uint16_t offset = fo >> 3;
      if (out->fragment) return ParseError::kBadExtHeader;  // a second fragment header
      out->fragment = true;
      out->first_fragment = offset == 0;
      out->frag_id = Be32(h + 4);
      out->frag_offset = static_cast<uint16_t>(offset * 8u);
      next = h[0];
      off += 8;
      fragmentable = off;
      if (offset != 0) {
        out->tuple.proto = next;
        return ParseError::kNone;
      }
      continue;
    }
    const uint32_t hlen = next == 51 ? (h[1] + 2u) * 4u : (h[1] + 1u) * 8u;
    if (off + hlen > total) return ParseError::kBadExtHeader;
    next = h[0];
    off += hlen;
  }
  out->tuple.proto = next;
  out->l4_offset = static_cast<uint16_t>(out->l3_offset + off);
  out->l4_len = static_cast<uint16_t>(total - off);
  out->has_l4 = next != 59;  // 59: no next header
  if (out->first_fragment) {
    out->frag_hdr_end = static_cast<uint16_t>(off - fragmentable + L4HeaderLen(p + off, total - off, next));
  }
  return out->has_l4 ? ParseL4(frame, out) : ParseError::kNone;
}

}  // namespace

const char* ParseErrorName(ParseError e) {
  switch (e) {
    case ParseError::kNone: return "none";
    case ParseError::kShort: return "short";
    case ParseError::kBadIpHeader: return "bad-ip-header";
    case ParseError::kBadL4Header: return "bad-l4-header";
    case ParseError::kBadExtHeader: return "bad-ext-header";
    case ParseError::kBadVlan: return "bad-vlan";
    case ParseError::kBadAddress: return "bad-address";
  }
  return "unknown";
}

namespace {

// *p = Packet{} in 16-byte stores: the compiler's own clear of these 184 bytes is a `rep stos`,
// whose start-up cost was a third of a parse. Copying bytes also begins the life of a Packet
// in raw storage (an aggregate of trivially copyable members), as a packet's scratch is.
void ClearPacket(Packet* p) {
  static const Packet kEmpty{};
  static_assert(std::is_trivially_copyable_v<Packet> && sizeof(Packet) % 8 == 0);
  const auto* src = reinterpret_cast<const uint8_t*>(&kEmpty);
  auto* dst = reinterpret_cast<uint8_t*>(p);
  size_t i = 0;
  for (; i + 16 <= sizeof(Packet); i += 16) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
  }
  if (i < sizeof(Packet)) std::memcpy(dst + i, src + i, 8);
}

}  // namespace

ParseError ParsePacket(const uint8_t* data, uint32_t len, Packet* out) {
  ClearPacket(out);
  auto fail = [out](ParseError e) { return out->error = e; };
  if (len < 14) return fail(ParseError::kShort);
  out->dst_mac = Mac(data);
  out->src_mac = Mac(data + 6);
  uint32_t off = 12;
  uint16_t type = Be16(data + off);
  auto tagged = [](uint16_t t) { return t == 0x8100 || t == 0x88a8 || t == 0x9100; };
  for (int tags = 0; tagged(type); tags++) {
    // A third tag would hide the frame's real type from the rules.
    if (tags == 2) return fail(ParseError::kBadVlan);
    off += 4;
    if (off + 2 > len) return fail(ParseError::kShort);
    type = Be16(data + off);
  }
  off += 2;
  out->ethertype = type;
  out->l3_offset = static_cast<uint16_t>(off);
  if (len > 65535) return fail(ParseError::kBadIpHeader);  // offsets are 16-bit

  ParseError e = ParseError::kNone;
  if (type == kEthIpv4) {
    e = ParseIpv4(data, len, out);
  } else if (type == kEthIpv6) {
    e = ParseIpv6(data, len, out);
  } else if (type == kEthArp) {
    const uint8_t* p = data + off;
    if (len - off < 28) return fail(ParseError::kShort);
    // Ethernet/IPv4 ARP only; anything else is left for L2 rules to judge.
    if (Be16(p) == 1 && Be16(p + 2) == kEthIpv4 && p[4] == 6 && p[5] == 4) {
      out->arp_op = Be16(p + 6);
      out->arp_sha = Mac(p + 8);
      out->arp_spa = IpAddr::FromV4Bytes(p + 14);
      out->arp_tpa = IpAddr::FromV4Bytes(p + 24);
    }
  }
  return fail(e);
}

}  // namespace palisade::fw
