#include "cli/pcapng.h"

#include <cstring>

namespace palisade::pcapng {
namespace {

constexpr uint16_t kOptEnd = 0, kOptComment = 1, kIfName = 2, kIfTsresol = 9;

template <typename T>
void Put(std::string& b, T v) {
  b.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void Pad(std::string& b) { b.append((4 - b.size() % 4) % 4, '\0'); }

void Option(std::string& b, uint16_t code, std::string_view value) {
  Put<uint16_t>(b, code);
  Put<uint16_t>(b, static_cast<uint16_t>(value.size()));
  b.append(value);
  Pad(b);
}

// Wraps a block's body (already padded to 4) in its type and its length, front and back.
std::string Block(uint32_t type, const std::string& body) {
  std::string b;
  const uint32_t total = static_cast<uint32_t>(body.size() + 12);
  Put(b, type);
  Put(b, total);
  b += body;
  Put(b, total);
  return b;
}

}  // namespace

std::string SectionHeader() {
  std::string body;
  Put<uint32_t>(body, kByteOrderMagic);
  Put<uint16_t>(body, 1);  // version 1.0
  Put<uint16_t>(body, 0);
  Put<int64_t>(body, -1);  // section length: not given
  return Block(kSectionHeader, body);
}

std::string InterfaceDescription(std::string_view name, uint32_t snaplen) {
  std::string body;
  Put<uint16_t>(body, kLinkTypeEthernet);
  Put<uint16_t>(body, 0);
  Put<uint32_t>(body, snaplen);
  Option(body, kIfName, name.substr(0, 0xffff));
  const char nanoseconds = 9;
  Option(body, kIfTsresol, std::string_view(&nanoseconds, 1));
  Put<uint32_t>(body, kOptEnd);  // opt_endofopt: code 0, length 0
  return Block(kInterfaceDescription, body);
}

std::string EnhancedPacket(uint32_t interface_id, int64_t time_ns, std::string_view data,
                           uint32_t original_length, std::string_view comment) {
  std::string body;
  const uint64_t ts = static_cast<uint64_t>(time_ns);
  Put<uint32_t>(body, interface_id);
  Put<uint32_t>(body, static_cast<uint32_t>(ts >> 32));
  Put<uint32_t>(body, static_cast<uint32_t>(ts));
  Put<uint32_t>(body, static_cast<uint32_t>(data.size()));
  Put<uint32_t>(body, original_length);
  body.append(data);
  Pad(body);
  if (!comment.empty()) {
    Option(body, kOptComment, comment.substr(0, 0xffff));
    Put<uint32_t>(body, kOptEnd);
  }
  return Block(kEnhancedPacket, body);
}

}  // namespace palisade::pcapng
