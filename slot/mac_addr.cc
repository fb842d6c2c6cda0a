#include "slot/mac_addr.h"

#include <cstdio>

namespace palisade {

std::string MacToString(uint64_t mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", unsigned(mac >> 40) & 0xff,
                unsigned(mac >> 32) & 0xff, unsigned(mac >> 24) & 0xff, unsigned(mac >> 16) & 0xff,
                unsigned(mac >> 8) & 0xff, unsigned(mac) & 0xff);
  return buf;
}

std::optional<uint64_t> MacParse(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  uint64_t mac = 0;
  for (int i = 0; i < 6; i++) {
    if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
    uint64_t byte = 0;
    for (int j = 0; j < 2; j++) {
      char c = text[i * 3 + j];
      int v = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (v < 0) return std::nullopt;
      byte = byte * 16 + v;
    }
    mac = (mac << 8) | byte;
  }
  return mac;
}

}  // namespace palisade
