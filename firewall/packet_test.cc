#include "firewall/packet.h"

#include <gtest/gtest.h>

#include "firewall/checksum.h"
#include "firewall/packet_builder.h"

namespace palisade::fw {
namespace {

Packet Parse(const std::vector<uint8_t>& f) {
  Packet p;
  ParsePacket(f.data(), static_cast<uint32_t>(f.size()), &p);
  return p;
}

TEST(IpAddrTest, ParsePrintAndPrefixes) {
  EXPECT_EQ(IpAddr::Parse("172.16.10.12")->ToString(), "172.16.10.12");
  EXPECT_TRUE(IpAddr::Parse("172.16.10.12")->is_v4());
  EXPECT_EQ(IpAddr::Parse("fe80::250:56ff:fe9a:1")->ToString(), "fe80::250:56ff:fe9a:1");
  EXPECT_FALSE(IpAddr::Parse("172.16.10"));
  EXPECT_FALSE(IpAddr::Parse("nonsense"));
  auto p = IpPrefix::Parse("10.1.0.0/16");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->ToString(), "10.1.0.0/16");
  EXPECT_TRUE(p->Contains(*IpAddr::Parse("10.1.200.3")));
  EXPECT_FALSE(p->Contains(*IpAddr::Parse("10.2.0.1")));
  EXPECT_FALSE(p->Contains(*IpAddr::Parse("::a01:c803"))) << "IPv4 and IPv6 stay apart";
  std::string error;
  EXPECT_FALSE(IpPrefix::Parse("10.1.0.1/16", &error));
  EXPECT_EQ(error, "'10.1.0.1/16' has host bits set");
  EXPECT_FALSE(IpPrefix::Parse("10.0.0.0/33", &error));
  EXPECT_EQ(error, "prefix length 33 exceeds 32");
  EXPECT_EQ(IpPrefix::Parse("2001:db8::/32")->ToString(), "2001:db8::/32");
  EXPECT_EQ(IpPrefix::Parse("0.0.0.0/0")->ToString(), "0.0.0.0/0");
}

TEST(PacketTest, TcpSynWithWindowScale) {
  FrameSpec s;
  s.wscale = 7;
  s.payload = {1, 2, 3};
  Packet p = Parse(BuildFrame(s));
  ASSERT_EQ(p.error, ParseError::kNone);
  EXPECT_TRUE(p.ip);
  EXPECT_FALSE(p.v6);
  EXPECT_EQ(p.ethertype, kEthIpv4);
  EXPECT_EQ(p.tuple.proto, kProtoTcp);
  EXPECT_EQ(p.tuple.src.ToString(), "10.0.0.1");
  EXPECT_EQ(p.tuple.sport, 40000);
  EXPECT_EQ(p.tuple.dport, 80);
  EXPECT_EQ(p.tcp_flags, tcp::kSyn);
  EXPECT_EQ(p.seq, 1000u);
  EXPECT_EQ(p.wscale, 7);
  EXPECT_EQ(p.payload_len, 3);
  EXPECT_EQ(p.src_mac, 0x020000000001u);
}

TEST(PacketTest, BuiltChecksumsVerify) {
  for (bool v6 : {false, true}) {
    FrameSpec s;
    if (v6) {
      s.src = *IpAddr::Parse("2001:db8::1");
      s.dst = *IpAddr::Parse("2001:db8::2");
    }
    s.payload = {9, 8, 7, 6, 5};
    for (uint8_t proto : {kProtoTcp, kProtoUdp}) {
      s.proto = proto;
      std::vector<uint8_t> f = BuildFrame(s);
      Packet p = Parse(f);
      ASSERT_EQ(p.error, ParseError::kNone);
      if (!v6) {
        EXPECT_EQ(ChecksumFinish(ChecksumAdd(&f[14], 20)), 0) << "IPv4 header";
      }
      std::vector<uint8_t> l4(f.begin() + p.l4_offset, f.end());
      const uint16_t stored = static_cast<uint16_t>((l4[proto == kProtoTcp ? 16 : 6] << 8) |
                                                    l4[proto == kProtoTcp ? 17 : 7]);
      l4[proto == kProtoTcp ? 16 : 6] = l4[proto == kProtoTcp ? 17 : 7] = 0;
      EXPECT_EQ(L4Checksum(s.src, s.dst, proto, l4.data(), l4.size()), stored);
    }
  }
}

TEST(PacketTest, UdpAndIcmpEcho) {
  FrameSpec s;
  s.proto = kProtoUdp;
  s.sport = 68;
  s.dport = 67;
  s.payload.assign(10, 0);
  Packet p = Parse(BuildFrame(s));
  EXPECT_EQ(p.tuple.dport, 67);
  EXPECT_EQ(p.payload_len, 10);

  s = FrameSpec{};
  s.proto = kProtoIcmp;
  s.icmp_type = 8;
  s.sport = 0x4242;
  p = Parse(BuildFrame(s));
  EXPECT_TRUE(p.icmp_echo);
  EXPECT_EQ(p.tuple.sport, 0x4242);
  EXPECT_FALSE(p.icmp_error);
}

TEST(PacketTest, IcmpErrorQuotesTheOffendingPacket) {
  FrameSpec inner;
  inner.proto = kProtoUdp;
  inner.sport = 5000;
  inner.dport = 53;
  std::vector<uint8_t> quoted = BuildFrame(inner);
  FrameSpec s;
  s.src = inner.dst;
  s.dst = inner.src;
  s.proto = kProtoIcmp;
  s.icmp_type = 3;
  s.icmp_code = 3;
  s.sport = 0;
  s.payload.assign(quoted.begin() + 14, quoted.begin() + 14 + 28);  // IP header + 8 bytes
  Packet p = Parse(BuildFrame(s));
  ASSERT_EQ(p.error, ParseError::kNone);
  EXPECT_TRUE(p.icmp_error);
  EXPECT_EQ(p.quoted.proto, kProtoUdp);
  EXPECT_EQ(p.quoted.src, inner.src);
  EXPECT_EQ(p.quoted.sport, 5000);
  EXPECT_EQ(p.quoted.dport, 53);
}

TEST(PacketTest, Icmpv6EchoAndVlan) {
  FrameSpec s;
  s.src = *IpAddr::Parse("fe80::1");
  s.dst = *IpAddr::Parse("fe80::2");
  s.proto = kProtoIcmp6;
  s.icmp_type = 128;
  s.sport = 7;
  std::vector<uint8_t> f = BuildFrame(s);
  f.insert(f.begin() + 12, {0x81, 0x00, 0x00, 0x0a});  // VLAN 10
  Packet p = Parse(f);
  ASSERT_EQ(p.error, ParseError::kNone);
  EXPECT_TRUE(p.v6);
  EXPECT_EQ(p.l3_offset, 18);
  EXPECT_TRUE(p.icmp_echo);
  EXPECT_EQ(p.tuple.sport, 7);
}

TEST(PacketTest, Ipv6ExtensionHeadersAndFragments) {
  FrameSpec s;
  s.src = *IpAddr::Parse("2001:db8::1");
  s.dst = *IpAddr::Parse("2001:db8::2");
  s.proto = kProtoUdp;
  s.dport = 4789;
  std::vector<uint8_t> f = BuildFrame(s);
  // Insert a hop-by-hop header (8 bytes) and a fragment header (first fragment, more follow).
  std::vector<uint8_t> hbh = {44, 0, 1, 4, 0, 0, 0, 0};
  std::vector<uint8_t> frag = {kProtoUdp, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef};
  f[20] = 0;  // next header: hop-by-hop
  f.insert(f.begin() + 54, frag.begin(), frag.end());
  f.insert(f.begin() + 54, hbh.begin(), hbh.end());
  const uint16_t plen = static_cast<uint16_t>((f[18] << 8 | f[19]) + 16);
  f[18] = static_cast<uint8_t>(plen >> 8);
  f[19] = static_cast<uint8_t>(plen);
  Packet p = Parse(f);
  ASSERT_EQ(p.error, ParseError::kNone);
  EXPECT_TRUE(p.ip_options);
  EXPECT_TRUE(p.fragment);
  EXPECT_TRUE(p.first_fragment);
  EXPECT_EQ(p.frag_id, 0xdeadbeefu);
  EXPECT_EQ(p.tuple.dport, 4789);

  f[54 + 8 + 2] = 0x00;
  f[54 + 8 + 3] = 0x08;  // offset 1 (8 bytes): a later fragment, no UDP header in it
  p = Parse(f);
  ASSERT_EQ(p.error, ParseError::kNone);
  EXPECT_FALSE(p.first_fragment);
  EXPECT_FALSE(p.has_l4);
  EXPECT_EQ(p.tuple.proto, kProtoUdp);
}

TEST(PacketTest, Ipv4FragmentsAndOptions) {
  FrameSpec s;
  s.proto = kProtoUdp;
  std::vector<uint8_t> f = BuildFrame(s);
  f[20] = 0x20;  // MF, offset 0
  Packet p = Parse(f);
  EXPECT_TRUE(p.fragment && p.first_fragment);
  EXPECT_TRUE(p.has_l4);
  f[20] = 0x00;
  f[21] = 0x10;  // offset 16 * 8
  p = Parse(f);
  EXPECT_TRUE(p.fragment);
  EXPECT_FALSE(p.first_fragment);
  EXPECT_FALSE(p.has_l4);
  EXPECT_EQ(p.frag_id, 0x1234u);

  f = BuildFrame(s);
  f.insert(f.begin() + 34, {1, 1, 1, 0});  // 4 bytes of options: NOPs and end
  f[14] = 0x46;
  f[17] += 4;
  p = Parse(f);
  ASSERT_EQ(p.error, ParseError::kNone);
  EXPECT_TRUE(p.ip_options);
  EXPECT_EQ(p.l4_offset, 38);
}

TEST(PacketTest, MalformedHeadersAreNamed) {
  std::vector<uint8_t> f = BuildFrame(FrameSpec{});
  auto with = [&](size_t at, uint8_t v) {
    std::vector<uint8_t> g = f;
    g[at] = v;
    return Parse(g).error;
  };
  EXPECT_EQ(with(14, 0x44), ParseError::kBadIpHeader) << "IHL 4";
  EXPECT_EQ(with(14, 0x55), ParseError::kBadIpHeader) << "version 5";
  EXPECT_EQ(with(14, 0x4f), ParseError::kShort) << "IHL beyond the frame";
  EXPECT_EQ(with(17, 0xff), ParseError::kShort) << "total length beyond the frame";
  EXPECT_EQ(with(17, 10), ParseError::kBadIpHeader) << "total length below IHL";
  EXPECT_EQ(with(46, 0x40), ParseError::kBadL4Header) << "TCP data offset 4";
  EXPECT_EQ(with(46, 0xf0), ParseError::kBadL4Header) << "TCP data offset beyond the segment";
}

TEST(PacketTest, EveryTruncationIsSafeAndReported) {
  FrameSpec s;
  s.wscale = 2;
  for (const auto& f : {BuildFrame(s), BuildArp(1, 1, 1, IpAddr::V4(1), 0, IpAddr::V4(2))}) {
    for (size_t n = 0; n < f.size(); n++) {
      std::vector<uint8_t> cut(f.begin(), f.begin() + n);  // exact size: ASan sees overreads
      Packet p;
      ParsePacket(cut.data(), static_cast<uint32_t>(n), &p);
      if (n < 14) {
        EXPECT_EQ(p.error, ParseError::kShort) << n;
      }
    }
  }
}

TEST(PacketTest, Arp) {
  Packet p = Parse(BuildArp(0x020000000001, 1, 0x020000000001, *IpAddr::Parse("10.0.0.1"), 0,
                            *IpAddr::Parse("10.0.0.2")));
  ASSERT_EQ(p.error, ParseError::kNone);
  EXPECT_EQ(p.ethertype, kEthArp);
  EXPECT_EQ(p.arp_op, 1);
  EXPECT_EQ(p.arp_sha, 0x020000000001u);
  EXPECT_EQ(p.arp_spa.ToString(), "10.0.0.1");
  EXPECT_EQ(p.arp_tpa.ToString(), "10.0.0.2");
}

}  // namespace
}  // namespace palisade::fw
