// Packet parsing for the firewall: Ethernet (up to two VLAN tags), ARP, IPv4, IPv6 with its
// extension headers, TCP, UDP, ICMP and ICMPv6 (with the header an ICMP error quotes).
//
// Every length is checked before it is read: a parse never reads outside [data, data + len),
// whatever the bytes (fuzzed by firewall/fuzz_packet.cc). Malformed packets come back with a
// ParseError naming what was wrong, which the filter counts as the drop reason.
//
// Value types; ParsePacket is pure and thread-safe.
#pragma once

#include <cstdint>

#include "firewall/ip_addr.h"

namespace palisade::fw {

enum class ParseError : uint8_t {
  kNone = 0,
  kShort,         // truncated: a header does not fit
  kBadIpHeader,   // wrong version, IHL below 5, total/payload length inconsistent
  kBadL4Header,   // TCP data offset below 5 or beyond the segment, UDP length wrong
  kBadExtHeader,  // IPv6 extension header chain too long or truncated
  kBadVlan,       // more than two VLAN tags
  kBadAddress,    // an IPv6 packet with an IPv4-mapped address (never valid on the wire)
};

const char* ParseErrorName(ParseError e);

inline constexpr uint16_t kEthIpv4 = 0x0800;
inline constexpr uint16_t kEthArp = 0x0806;
inline constexpr uint16_t kEthIpv6 = 0x86dd;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmp6 = 58;

namespace tcp {
inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;
}

// The 5-tuple of a connection as seen in one packet.
struct Tuple {
  IpAddr src, dst;
  uint16_t sport = 0, dport = 0;  // ICMP echo: both are the identifier
  uint8_t proto = 0;
};

struct Packet {
  ParseError error = ParseError::kNone;
  // Fragments (beside `error` to use its padding: the parse and its key fill a packet's scratch).
  uint16_t frag_offset = 0;   // bytes from the start of the fragmentable part
  uint16_t frag_hdr_end = 0;  // first fragment: where its upper-layer header ends, likewise
  uint64_t src_mac = 0, dst_mac = 0;
  uint16_t ethertype = 0;  // after VLAN tags
  uint16_t l3_offset = 0;
  uint16_t l3_len = 0;     // IP header + payload as the IP header says (frame padding excluded)

  // ARP (ethertype kEthArp): set only for Ethernet/IPv4 ARP (hardware type 1, IPv4, lengths
  // 6 and 4); any other ARP keeps arp_op 0.
  uint16_t arp_op = 0;
  uint64_t arp_sha = 0;
  IpAddr arp_spa, arp_tpa;

  // IP.
  bool ip = false;
  bool v6 = false;
  bool ip_options = false;  // IPv4 options or IPv6 extension headers present
  uint8_t ttl = 0;
  Tuple tuple;              // tuple.proto is the upper-layer protocol
  bool fragment = false;    // part of a fragmented datagram
  bool first_fragment = false;
  uint32_t frag_id = 0;
  uint16_t l4_offset = 0;   // from the start of the frame; valid when has_l4
  uint16_t l4_len = 0;      // upper-layer header + payload
  bool has_l4 = false;      // false for non-first fragments and unknown protocols

  // TCP.
  uint8_t tcp_flags = 0;
  uint32_t seq = 0, ack = 0;
  uint16_t window = 0;
  uint8_t wscale = 0xff;    // window scale option of a SYN; 0xff: absent
  uint16_t payload_len = 0; // TCP or UDP payload bytes

  // ICMP / ICMPv6.
  uint8_t icmp_type = 0, icmp_code = 0;
  bool icmp_echo = false;   // echo request or reply: tuple ports are the identifier
  bool icmp_error = false;  // quotes another packet: `quoted` is its tuple
  Tuple quoted;
};

// Sets all of *out (it may be raw storage: the parse begins a Packet's life there).
ParseError ParsePacket(const uint8_t* data, uint32_t len, Packet* out);

}  // namespace palisade::fw
