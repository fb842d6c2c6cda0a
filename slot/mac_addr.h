// MacAddr helpers: Ethernet addresses as 48-bit integers (the bridge's keys) and text.
// Value functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace palisade {

// The 6 bytes at p as a 48-bit integer, first byte most significant.
inline uint64_t MacFromBytes(const uint8_t* p) {
  return (uint64_t{p[0]} << 40) | (uint64_t{p[1]} << 32) | (uint64_t{p[2]} << 24) |
         (uint64_t{p[3]} << 16) | (uint64_t{p[4]} << 8) | uint64_t{p[5]};
}

inline bool MacIsMulticast(uint64_t mac) { return (mac >> 40) & 1; }  // includes broadcast

std::string MacToString(uint64_t mac);
// Parses "aa:bb:cc:dd:ee:ff"; nullopt on anything else.
std::optional<uint64_t> MacParse(std::string_view text);

}  // namespace palisade
