// Reject replies: what a `reject` rule sends back to the sender of a packet. TCP gets a RST
// (RFC 793 reset generation); other IPv4 gets ICMP port unreachable, other IPv6 ICMPv6
// administratively prohibited, quoting the offending packet. ICMP errors, and packets to or
// from broadcast or multicast addresses, get no reply (RFC 1122 / RFC 4443).
// Pure function; thread-safe.
#pragma once

#include <cstdint>
#include <vector>

#include "firewall/packet.h"

namespace palisade::fw {

// The reply frame for `frame` (parsed as `p`), or an empty vector when none may be sent.
std::vector<uint8_t> BuildReject(const uint8_t* frame, uint32_t len, const Packet& p);

}  // namespace palisade::fw
