// IpAddr and IpPrefix: IPv4 and IPv6 addresses in one 16-byte form (IPv4 as ::ffff:a.b.c.d), as
// the firewall's rules, address sets and connection keys use them. Text in the usual notations.
// Value types; thread-compatible.
#pragma once

#include <emmintrin.h>

#include <array>
#include <compare>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace palisade::fw {

__extension__ typedef unsigned __int128 u128;  // a GCC/Clang extension, as -Wpedantic says

struct IpAddr {
  std::array<uint8_t, 16> b{};

  static IpAddr V4(uint32_t host_order);
  // Inline, built whole in a register and stored at once: the parser makes two per packet, and
  // a connection key read soon after in wider words than it was written in would wait for the
  // stores to retire (a failed store-to-load forward).
  static IpAddr FromV4Bytes(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    // Little-endian 32-bit words: 0, 0, then bytes 00 00 ff ff, then the address as it came.
    const __m128i whole = _mm_set_epi32(v, static_cast<int32_t>(0xffff0000u), 0, 0);
    IpAddr a;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(a.b.data()), whole);
    return a;
  }
  static IpAddr FromV6Bytes(const uint8_t* p);
  static std::optional<IpAddr> Parse(std::string_view text);

  bool is_v4() const;
  uint32_t v4() const;  // host order; meaningful when is_v4()
  u128 value() const;   // big-endian number, for ordering and ranges
  static IpAddr FromValue(u128 v);
  std::string ToString() const;

  auto operator<=>(const IpAddr&) const = default;
  // Two 64-bit compares rather than memcmp: connection lookups compare addresses per packet.
  bool operator==(const IpAddr& o) const {
    uint64_t x[2], y[2];
    std::memcpy(x, b.data(), 16);
    std::memcpy(y, o.b.data(), 16);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
  }
};

struct IpPrefix {
  IpAddr addr;  // host bits zero
  uint8_t len;  // in the 128-bit space: an IPv4 /24 is stored as 96 + 24

  // "10.0.0.0/8", "fe80::/10", or a single address. Rejects host bits set.
  static std::optional<IpPrefix> Parse(std::string_view text, std::string* error = nullptr);
  static IpPrefix Host(const IpAddr& a) { return IpPrefix{a, 128}; }

  bool is_v4() const { return addr.is_v4() && len >= 96; }
  u128 first() const;
  u128 last() const;
  bool Contains(const IpAddr& a) const { return a.value() >= first() && a.value() <= last(); }
  std::string ToString() const;  // a host prefix prints as the bare address

  auto operator<=>(const IpPrefix&) const = default;
};

}  // namespace palisade::fw
