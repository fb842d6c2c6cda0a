#include "firewall/packet_builder.h"

#include <cstring>

#include "firewall/checksum.h"

namespace palisade::fw {
namespace {

void Put16(std::vector<uint8_t>& v, size_t at, uint16_t x) {
  v[at] = static_cast<uint8_t>(x >> 8);
  v[at + 1] = static_cast<uint8_t>(x);
}
void Put32(std::vector<uint8_t>& v, size_t at, uint32_t x) {
  Put16(v, at, static_cast<uint16_t>(x >> 16));
  Put16(v, at + 2, static_cast<uint16_t>(x));
}
void PutMac(std::vector<uint8_t>& v, size_t at, uint64_t mac) {
  for (int i = 0; i < 6; i++) v[at + i] = static_cast<uint8_t>(mac >> (40 - 8 * i));
}

std::vector<uint8_t> L4(const FrameSpec& s, bool v6) {
  std::vector<uint8_t> l4;
  switch (s.proto) {
    case kProtoTcp: {
      const size_t opts = s.wscale >= 0 ? 4 : 0;
      l4.assign(20 + opts, 0);
      Put16(l4, 0, s.sport);
      Put16(l4, 2, s.dport);
      Put32(l4, 4, s.seq);
      Put32(l4, 8, s.ack);
      l4[12] = static_cast<uint8_t>(((20 + opts) / 4) << 4);
      l4[13] = s.flags;
      Put16(l4, 14, s.window);
      if (opts) {
        l4[20] = 1;  // NOP
        l4[21] = 3;
        l4[22] = 3;
        l4[23] = static_cast<uint8_t>(s.wscale);
      }
      break;
    }
    case kProtoUdp:
      l4.assign(8, 0);
      Put16(l4, 0, s.sport);
      Put16(l4, 2, s.dport);
      Put16(l4, 4, static_cast<uint16_t>(8 + s.payload.size()));
      break;
    case kProtoIcmp:
    case kProtoIcmp6:
      l4.assign(8, 0);
      l4[0] = s.icmp_type;
      l4[1] = s.icmp_code;
      Put16(l4, 4, s.sport);
      break;
    default: break;
  }
  l4.insert(l4.end(), s.payload.begin(), s.payload.end());
  const size_t csum_at = s.proto == kProtoTcp ? 16 : s.proto == kProtoUdp ? 6 : 2;
  if (s.proto == kProtoTcp || s.proto == kProtoUdp || s.proto == kProtoIcmp || s.proto == kProtoIcmp6) {
    const uint8_t pseudo_proto = (s.proto == kProtoIcmp && !v6) ? kProtoIcmp : s.proto;
    Put16(l4, csum_at, L4Checksum(s.src, s.dst, pseudo_proto, l4.data(), l4.size()));
  }
  return l4;
}

}  // namespace

std::vector<uint8_t> BuildFrame(const FrameSpec& s) {
  const bool v6 = !s.src.is_v4();
  std::vector<uint8_t> l4 = L4(s, v6);
  const size_t l3h = v6 ? 40 : 20;
  std::vector<uint8_t> f(14 + l3h, 0);
  PutMac(f, 0, s.dst_mac);
  PutMac(f, 6, s.src_mac);
  Put16(f, 12, v6 ? kEthIpv6 : kEthIpv4);
  if (!v6) {
    f[14] = 0x45;
    Put16(f, 16, static_cast<uint16_t>(20 + l4.size()));
    Put16(f, 18, 0x1234);
    f[22] = s.ttl;
    f[23] = s.proto;
    std::memcpy(&f[26], &s.src.b[12], 4);
    std::memcpy(&f[30], &s.dst.b[12], 4);
    Put16(f, 24, ChecksumFinish(ChecksumAdd(&f[14], 20)));
  } else {
    f[14] = 0x60;
    Put16(f, 18, static_cast<uint16_t>(l4.size()));
    f[20] = s.proto;
    f[21] = s.ttl;
    std::memcpy(&f[22], s.src.b.data(), 16);
    std::memcpy(&f[38], s.dst.b.data(), 16);
  }
  f.insert(f.end(), l4.begin(), l4.end());
  return f;
}

std::vector<uint8_t> BuildArp(uint64_t src_mac, uint16_t op, uint64_t sha, const IpAddr& spa,
                              uint64_t tha, const IpAddr& tpa) {
  std::vector<uint8_t> f(42, 0);
  PutMac(f, 0, op == 1 ? 0xffffffffffff : tha);
  PutMac(f, 6, src_mac);
  Put16(f, 12, kEthArp);
  Put16(f, 14, 1);
  Put16(f, 16, kEthIpv4);
  f[18] = 6;
  f[19] = 4;
  Put16(f, 20, op);
  PutMac(f, 22, sha);
  std::memcpy(&f[28], &spa.b[12], 4);
  PutMac(f, 32, tha);
  std::memcpy(&f[38], &tpa.b[12], 4);
  return f;
}

}  // namespace palisade::fw
