#include "firewall/checksum.h"

#include "firewall/packet.h"

namespace palisade::fw {

uint32_t ChecksumAdd(const uint8_t* data, size_t len, uint32_t sum) {
  size_t i = 0;
  for (; i + 1 < len; i += 2) sum += (uint32_t{data[i]} << 8) | data[i + 1];
  if (i < len) sum += uint32_t{data[i]} << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

uint16_t ChecksumFinish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

uint16_t L4Checksum(const IpAddr& src, const IpAddr& dst, uint8_t proto, const uint8_t* l4,
                    size_t len) {
  uint32_t sum = 0;
  if (proto != kProtoIcmp) {
    if (src.is_v4()) {
      sum = ChecksumAdd(&src.b[12], 4, sum);
      sum = ChecksumAdd(&dst.b[12], 4, sum);
      const uint8_t pseudo[4] = {0, proto, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
      sum = ChecksumAdd(pseudo, 4, sum);
    } else {
      sum = ChecksumAdd(src.b.data(), 16, sum);
      sum = ChecksumAdd(dst.b.data(), 16, sum);
      const uint8_t pseudo[8] = {static_cast<uint8_t>(len >> 24), static_cast<uint8_t>(len >> 16),
                                 static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len),
                                 0, 0, 0, proto};
      sum = ChecksumAdd(pseudo, 8, sum);
    }
  }
  sum = ChecksumAdd(l4, len, sum);
  uint16_t c = ChecksumFinish(sum);
  return (proto == kProtoUdp && c == 0) ? 0xffff : c;
}

}  // namespace palisade::fw
