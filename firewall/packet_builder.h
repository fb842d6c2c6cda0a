// PacketBuilder: builds well-formed Ethernet frames (IPv4/IPv6 with TCP, UDP, ICMP, ICMPv6,
// ARP) with correct lengths and checksums. Tests craft their packets with it, and the reject
// generator builds its replies with it. Not thread-safe; one builder per frame.
#pragma once

#include <cstdint>
#include <vector>

#include "firewall/ip_addr.h"
#include "firewall/packet.h"

namespace palisade::fw {

struct FrameSpec {
  uint64_t src_mac = 0x020000000001, dst_mac = 0x020000000002;
  IpAddr src = IpAddr::V4(0x0a000001), dst = IpAddr::V4(0x0a000002);
  uint8_t proto = kProtoTcp;
  uint16_t sport = 40000, dport = 80;
  uint8_t ttl = 64;
  // TCP
  uint8_t flags = tcp::kSyn;
  uint32_t seq = 1000, ack = 0;
  uint16_t window = 65535;
  int wscale = -1;  // add a window scale option when >= 0
  // ICMP: type/code; echo identifier in sport
  uint8_t icmp_type = 8, icmp_code = 0;
  std::vector<uint8_t> payload;  // for ICMP errors: the quoted packet (from its IP header)
};

// A frame from spec: the L3 family follows spec.src (IPv4 or IPv6).
std::vector<uint8_t> BuildFrame(const FrameSpec& spec);

// An ARP frame: op 1 request, 2 reply.
std::vector<uint8_t> BuildArp(uint64_t src_mac, uint16_t op, uint64_t sha, const IpAddr& spa,
                              uint64_t tha, const IpAddr& tpa);

}  // namespace palisade::fw
