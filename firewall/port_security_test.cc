#include "firewall/port_security.h"

#include <gtest/gtest.h>

#include "firewall/packet_builder.h"

namespace palisade::fw {
namespace {

constexpr uint64_t kMac = 0x020000000001;
constexpr uint64_t kOtherMac = 0x020000000099;
const IpAddr kIp = *IpAddr::Parse("10.0.0.1");
const IpAddr kOtherIp = *IpAddr::Parse("10.0.0.2");

class PortSecurityTest : public ::testing::Test {
 protected:
  DropReason Send(PortSecurity& ps, const std::vector<uint8_t>& f, Direction dir = Direction::kOut) {
    FilterBatch b{};
    b.dir = dir;
    b.count = 1;
    b.pkts[0] = PacketRef{f.data(), static_cast<uint32_t>(f.size())};
    b.verdict[0] = Verdict::kPass;
    ps.Process(b);
    return b.verdict[0] == Verdict::kPass ? DropReason::kNone : b.reason[0];
  }
  std::vector<uint8_t> Ip(uint64_t mac, const IpAddr& src) {
    FrameSpec s;
    s.src_mac = mac;
    s.src = src;
    s.dst = src.is_v4() ? *IpAddr::Parse("10.0.0.200") : *IpAddr::Parse("2001:db8::200");
    s.proto = kProtoUdp;
    return BuildFrame(s);
  }
  std::vector<uint8_t> Na(uint64_t mac, const IpAddr& src, const IpAddr& target) {
    FrameSpec s;
    s.src_mac = mac;
    s.src = src;
    s.dst = *IpAddr::Parse("ff02::1");
    s.proto = kProtoIcmp6;
    s.icmp_type = 136;
    s.sport = 0;
    s.payload.assign(target.b.begin(), target.b.end());  // the target follows the 8-byte header
    return BuildFrame(s);
  }
  PacketLog log_{1, 0};
};

TEST_F(PortSecurityTest, BoundPortDropsOtherMacsAndAddresses) {
  PortSecurity ps(1, PortBinding{kMac, {kIp}, /*learn=*/false}, &log_);
  EXPECT_EQ(Send(ps, Ip(kMac, kIp)), DropReason::kNone);
  EXPECT_EQ(Send(ps, Ip(kOtherMac, kIp)), DropReason::kSpoofGuard) << "another VM's MAC";
  EXPECT_EQ(Send(ps, Ip(kMac, kOtherIp)), DropReason::kSpoofGuard) << "another VM's IP";
  EXPECT_EQ(Send(ps, Ip(kOtherMac, kOtherIp), Direction::kIn), DropReason::kNone) << "inbound passes";
  EXPECT_EQ(Send(ps, Ip(kMac, *IpAddr::Parse("0.0.0.0"))), DropReason::kNone) << "DHCP discover";
  EXPECT_EQ(Send(ps, Ip(kMac, *IpAddr::Parse("fe80::ff:fe00:1"))), DropReason::kNone)
      << "its own EUI-64 link-local address";
  EXPECT_EQ(Send(ps, Ip(kMac, *IpAddr::Parse("fe80::ff:fe00:99"))), DropReason::kSpoofGuard);
  EXPECT_EQ(log_.Drain(nullptr, 0), 3u);
}

TEST_F(PortSecurityTest, ArpMayNotClaimAnotherAddress) {
  PortSecurity ps(1, PortBinding{kMac, {kIp}, /*learn=*/false}, &log_);
  EXPECT_EQ(Send(ps, BuildArp(kMac, 1, kMac, kIp, 0, kOtherIp)), DropReason::kNone);
  EXPECT_EQ(Send(ps, BuildArp(kMac, 2, kMac, kOtherIp, 0x020000000002, kOtherIp)),
            DropReason::kSpoofGuard) << "gratuitous ARP for someone else's address";
  EXPECT_EQ(Send(ps, BuildArp(kMac, 1, kOtherMac, kIp, 0, kOtherIp)), DropReason::kSpoofGuard)
      << "ARP sender MAC differs from the frame's";
}

TEST_F(PortSecurityTest, LearnsOnFirstUseFromArpAndNd) {
  PortSecurity ps(1, PortBinding{0, {}, /*learn=*/true, /*max_learned=*/2}, &log_);
  EXPECT_EQ(Send(ps, Ip(kMac, kIp)), DropReason::kSpoofGuard) << "not learned yet";
  EXPECT_EQ(Send(ps, BuildArp(kMac, 1, kMac, kIp, 0, kOtherIp)), DropReason::kNone);
  EXPECT_EQ(ps.mac(), kMac);
  EXPECT_TRUE(ps.TakeChanged());
  EXPECT_FALSE(ps.TakeChanged());
  EXPECT_EQ(Send(ps, Ip(kMac, kIp)), DropReason::kNone);
  EXPECT_EQ(Send(ps, Ip(kOtherMac, kIp)), DropReason::kSpoofGuard) << "the MAC is bound now";

  const IpAddr ll = *IpAddr::Parse("fe80::1");
  EXPECT_EQ(Send(ps, Na(kMac, ll, ll)), DropReason::kNone);
  EXPECT_EQ(ps.addresses(), (std::vector<IpAddr>{kIp, ll}));
  // The limit is reached: a third address is not learned.
  EXPECT_EQ(Send(ps, BuildArp(kMac, 1, kMac, kOtherIp, 0, kIp)), DropReason::kSpoofGuard);
}

// A port moved to another switch (or restored after a restart) keeps what it learned: the VM
// cannot use the move to claim another address at first use.
TEST_F(PortSecurityTest, WhatWasLearnedMovesWithThePort) {
  PortSecurity source(1, PortBinding{0, {}, /*learn=*/true, /*max_learned=*/1}, &log_);
  ASSERT_EQ(Send(source, BuildArp(kMac, 1, kMac, kIp, 0, kOtherIp)), DropReason::kNone);
  EXPECT_EQ(source.learned_mac(), kMac);
  EXPECT_EQ(source.learned(), std::vector<IpAddr>{kIp});

  PortSecurity dest(2, PortBinding{0, {}, /*learn=*/true, /*max_learned=*/1}, &log_);
  dest.Restore(source.learned_mac(), source.learned());
  EXPECT_TRUE(dest.TakeChanged());
  EXPECT_EQ(Send(dest, Ip(kMac, kIp)), DropReason::kNone);
  EXPECT_EQ(Send(dest, Ip(kMac, kOtherIp)), DropReason::kSpoofGuard) << "not a first use any more";
  EXPECT_EQ(Send(dest, Ip(kOtherMac, kIp)), DropReason::kSpoofGuard) << "the MAC came along";

  // A configured MAC and address stay as configured; nothing learned is reported for them.
  PortSecurity bound(3, PortBinding{kMac, {kIp}, /*learn=*/false}, &log_);
  bound.Restore(kOtherMac, {kOtherIp});
  EXPECT_EQ(bound.learned_mac(), 0u);
  EXPECT_TRUE(bound.learned().empty());
  EXPECT_EQ(Send(bound, Ip(kOtherMac, kOtherIp)), DropReason::kSpoofGuard);
}

TEST_F(PortSecurityTest, LearnsTheAddressADhcpServerAssigns) {
  PortSecurity ps(1, PortBinding{kMac, {}, /*learn=*/true}, &log_);
  auto ack = [](uint64_t chaddr, uint8_t type) {
    FrameSpec s;
    s.proto = kProtoUdp;
    s.src = *IpAddr::Parse("10.0.0.254");
    s.dst = *IpAddr::Parse("255.255.255.255");
    s.sport = 67;
    s.dport = 68;
    s.dst_mac = chaddr;
    s.payload.assign(240, 0);
    s.payload[0] = 2;  // BOOTREPLY
    s.payload[16] = 10;
    s.payload[19] = 77;  // yiaddr 10.0.0.77
    for (int i = 0; i < 6; i++) s.payload[28 + i] = static_cast<uint8_t>(chaddr >> (40 - 8 * i));
    s.payload[236] = 99;
    s.payload[237] = 130;
    s.payload[238] = 83;
    s.payload[239] = 99;
    s.payload.insert(s.payload.end(), {53, 1, type, 255});
    return BuildFrame(s);
  };
  const IpAddr assigned = *IpAddr::Parse("10.0.0.77");
  EXPECT_EQ(Send(ps, ack(kMac, 2), Direction::kIn), DropReason::kNone);  // an OFFER teaches nothing
  EXPECT_EQ(Send(ps, Ip(kMac, assigned)), DropReason::kSpoofGuard);
  EXPECT_EQ(Send(ps, ack(kOtherMac, 5), Direction::kIn), DropReason::kNone);  // someone else's
  EXPECT_EQ(Send(ps, Ip(kMac, assigned)), DropReason::kSpoofGuard);
  EXPECT_EQ(Send(ps, ack(kMac, 5), Direction::kIn), DropReason::kNone);
  EXPECT_EQ(Send(ps, Ip(kMac, assigned)), DropReason::kNone);
  EXPECT_EQ(ps.addresses(), std::vector<IpAddr>{assigned});
}

}  // namespace
}  // namespace palisade::fw
