#include "firewall/ip_addr.h"

#include <arpa/inet.h>

#include <cstring>

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade::fw {

IpAddr IpAddr::V4(uint32_t host_order) {
  IpAddr a;
  a.b[10] = a.b[11] = 0xff;
  a.b[12] = static_cast<uint8_t>(host_order >> 24);
  a.b[13] = static_cast<uint8_t>(host_order >> 16);
  a.b[14] = static_cast<uint8_t>(host_order >> 8);
  a.b[15] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddr IpAddr::FromV6Bytes(const uint8_t* p) {
  IpAddr a;
  std::memcpy(a.b.data(), p, 16);
  return a;
}

bool IpAddr::is_v4() const {
  for (int i = 0; i < 10; i++) {
    if (b[i] != 0) return false;
  }
  return b[10] == 0xff && b[11] == 0xff;
}

uint32_t IpAddr::v4() const {
  return (uint32_t{b[12]} << 24) | (uint32_t{b[13]} << 16) | (uint32_t{b[14]} << 8) | b[15];
}

u128 IpAddr::value() const {
  u128 v = 0;
  for (uint8_t x : b) v = (v << 8) | x;
  return v;
}

IpAddr IpAddr::FromValue(u128 v) {
  IpAddr a;
  for (int i = 15; i >= 0; i--) {
    a.b[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
  return a;
}

std::optional<IpAddr> IpAddr::Parse(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buf[64];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = 0;
  uint8_t raw[16];
  if (text.find(':') == std::string_view::npos) {
    if (inet_pton(AF_INET, buf, raw) != 1) return std::nullopt;
    return FromV4Bytes(raw);
  }
  if (inet_pton(AF_INET6, buf, raw) != 1) return std::nullopt;
  return FromV6Bytes(raw);
}

std::string IpAddr::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  if (is_v4()) {
    inet_ntop(AF_INET, &b[12], buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, b.data(), buf, sizeof buf);
  }
  return buf;
}

namespace {
u128 HostMask(uint8_t len) { return len >= 128 ? 0 : (~u128{0}) >> len; }
}  // namespace

u128 IpPrefix::first() const { return addr.value() & ~HostMask(len); }
u128 IpPrefix::last() const { return addr.value() | HostMask(len); }

std::optional<IpPrefix> IpPrefix::Parse(std::string_view text, std::string* error) {
  auto fail = [&](std::string m) -> std::optional<IpPrefix> {
    if (error) *error = std::move(m);
    return std::nullopt;
  };
  size_t slash = text.find('/');
  auto addr = IpAddr::Parse(text.substr(0, slash));
  if (!addr) return fail("'" + std::string(text.substr(0, slash)) + "' is not an IPv4 or IPv6 address");
  if (slash == std::string_view::npos) return Host(*addr);
  std::string_view len_text = text.substr(slash + 1);
  const unsigned max = addr->is_v4() ? 32 : 128;
  unsigned len = 0;
  if (len_text.empty() || len_text.size() > 3) return fail("bad prefix length in '" + std::string(text) + "'");
  for (char c : len_text) {
    if (c < '0' || c > '9') return fail("bad prefix length in '" + std::string(text) + "'");
    len = len * 10 + static_cast<unsigned>(c - '0');
  }
  if (len > max) return fail("prefix length " + std::to_string(len) + " exceeds " + std::to_string(max));
  IpPrefix p{*addr, static_cast<uint8_t>(addr->is_v4() ? 96 + len : len)};
  if ((addr->value() & HostMask(p.len)) != 0) {
    return fail("'" + std::string(text) + "' has host bits set");
  }
  return p;
}

std::string IpPrefix::ToString() const {
  if (len == 128) return addr.ToString();
  return addr.ToString() + "/" + std::to_string(addr.is_v4() ? len - 96 : len);
}

}  // namespace palisade::fw
