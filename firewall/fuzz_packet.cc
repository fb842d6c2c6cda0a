// libFuzzer target: the packet parser must never read outside its input or crash, whatever
// the bytes. Build with: CXX=clang++ meson setup build-fuzz -Dfuzz=true && ninja -C build-fuzz
// Run: build-fuzz/firewall/fuzz_packet -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <vector>

#include "firewall/packet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A heap copy of exactly `size` bytes, so AddressSanitizer catches any overread.
  std::vector<uint8_t> frame(data, data + size);
  palisade::fw::Packet p;
  palisade::fw::ParsePacket(frame.data(), static_cast<uint32_t>(frame.size()), &p);
  if (p.error == palisade::fw::ParseError::kNone && p.has_l4) {
    // Offsets the parser reports must lie inside the frame.
    if (p.l4_offset + p.l4_len > size) __builtin_trap();
  }
  return 0;
}
