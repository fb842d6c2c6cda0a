#include "cli/pcapng.h"

#include <gtest/gtest.h>

#include <cstring>

namespace palisade::pcapng {
namespace {

uint32_t U32(const std::string& b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}

uint16_t U16(const std::string& b, size_t at) {
  uint16_t v;
  std::memcpy(&v, b.data() + at, 2);
  return v;
}

// A block's frame: its type, and the same total length (a multiple of 4) at both ends.
void ExpectFramed(const std::string& b, uint32_t type) {
  ASSERT_GE(b.size(), 12u);
  EXPECT_EQ(b.size() % 4, 0u);
  EXPECT_EQ(U32(b, 0), type);
  EXPECT_EQ(U32(b, 4), b.size());
  EXPECT_EQ(U32(b, b.size() - 4), b.size());
}

TEST(Pcapng, SectionHeaderHasTheByteOrderMagicAndVersion) {
  const std::string b = SectionHeader();
  ExpectFramed(b, kSectionHeader);
  EXPECT_EQ(b.size(), 28u);
  EXPECT_EQ(U32(b, 8), 0x1A2B3C4Du);
  EXPECT_EQ(U16(b, 12), 1);  // major
  EXPECT_EQ(U16(b, 14), 0);  // minor
  int64_t section_length;
  std::memcpy(&section_length, b.data() + 16, 8);
  EXPECT_EQ(section_length, -1);
}

TEST(Pcapng, InterfaceNamesThePortWithPaddedOptions) {
  const std::string b = InterfaceDescription("vm-a", 128);  // a name of 4: no padding
  ExpectFramed(b, kInterfaceDescription);
  EXPECT_EQ(U16(b, 8), kLinkTypeEthernet);
  EXPECT_EQ(U32(b, 12), 128u);
  EXPECT_EQ(U16(b, 16), 2);  // if_name
  EXPECT_EQ(U16(b, 18), 4);
  EXPECT_EQ(b.substr(20, 4), "vm-a");
  EXPECT_EQ(U16(b, 24), 9);  // if_tsresol: 10^-9
  EXPECT_EQ(U16(b, 26), 1);
  EXPECT_EQ(b[28], 9);
  EXPECT_EQ(U32(b, 32), 0u);  // opt_endofopt
  EXPECT_EQ(b.size(), 40u);

  const std::string odd = InterfaceDescription("vm-abc", 65535);  // 6 bytes, padded to 8
  ExpectFramed(odd, kInterfaceDescription);
  EXPECT_EQ(U16(odd, 18), 6);
  EXPECT_EQ(odd.substr(20, 8), std::string("vm-abc\0\0", 8));
  EXPECT_EQ(U16(odd, 28), 9);
}

TEST(Pcapng, EnhancedPacketPadsDataAndCarriesTheComment) {
  const std::string data = "\x01\x02\x03\x04\x05";  // 5 bytes: 3 of padding
  const int64_t t = 1764600000123456789;
  const std::string comment = "port=vm-a dir=in point=pre verdict=drop reason=rule";
  const std::string b = EnhancedPacket(0, t, data, 60, comment);
  ExpectFramed(b, kEnhancedPacket);
  EXPECT_EQ(U32(b, 8), 0u);  // interface
  EXPECT_EQ((uint64_t{U32(b, 12)} << 32) | U32(b, 16), static_cast<uint64_t>(t));
  EXPECT_EQ(U32(b, 20), 5u);   // captured
  EXPECT_EQ(U32(b, 24), 60u);  // original
  EXPECT_EQ(b.substr(28, 8), std::string("\x01\x02\x03\x04\x05\0\0\0", 8));
  size_t at = 36;
  EXPECT_EQ(U16(b, at), 1);  // opt_comment
  EXPECT_EQ(U16(b, at + 2), comment.size());
  EXPECT_EQ(b.substr(at + 4, comment.size()), comment);
  at += 4 + (comment.size() + 3) / 4 * 4;
  EXPECT_EQ(U32(b, at), 0u);  // opt_endofopt
  EXPECT_EQ(at + 4 + 4, b.size());

  const std::string bare = EnhancedPacket(2, 0, std::string(64, 'x'), 64, "");
  ExpectFramed(bare, kEnhancedPacket);
  EXPECT_EQ(bare.size(), 28u + 64 + 4);  // no options at all
}

}  // namespace
}  // namespace palisade::pcapng
