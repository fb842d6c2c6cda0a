// Internet checksums (RFC 1071) for IPv4 headers and TCP/UDP/ICMP/ICMPv6 with their
// pseudo-headers. Used to build reject packets and test frames. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "firewall/ip_addr.h"

namespace palisade::fw {

// One's-complement sum of data folded to 16 bits, not inverted, continuing from `sum`.
uint32_t ChecksumAdd(const uint8_t* data, size_t len, uint32_t sum = 0);
uint16_t ChecksumFinish(uint32_t sum);

// The checksum field value for an upper-layer segment (checksum field zeroed in `l4`).
// ICMPv4 has no pseudo-header: pass proto = 1 and it is left out.
uint16_t L4Checksum(const IpAddr& src, const IpAddr& dst, uint8_t proto, const uint8_t* l4,
                    size_t len);

}  // namespace palisade::fw
