// The pcapng file format (IETF draft-ietf-opsawg-pcapng), as much of it as palisadectl capture
// writes: one Section Header Block, one Interface Description Block per port (its name, the
// snap length, Ethernet, nanosecond timestamps) and an Enhanced Packet Block per packet with a
// comment (port, direction, capture point, verdict). Blocks are in this host's byte order; the
// section header's byte-order magic tells readers (tshark, tcpdump) which it is.
//
// Each function returns one whole block (its length a multiple of 4, repeated at its end), for
// the caller to write in order. Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace palisade::pcapng {

inline constexpr uint32_t kSectionHeader = 0x0A0D0D0A;
inline constexpr uint32_t kInterfaceDescription = 1;
inline constexpr uint32_t kEnhancedPacket = 6;
inline constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;
inline constexpr uint16_t kLinkTypeEthernet = 1;

std::string SectionHeader();
std::string InterfaceDescription(std::string_view name, uint32_t snaplen);
// time_ns: since the epoch (the interface's if_tsresol is 9: nanoseconds).
std::string EnhancedPacket(uint32_t interface_id, int64_t time_ns, std::string_view data,
                           uint32_t original_length, std::string_view comment);

}  // namespace palisade::pcapng
