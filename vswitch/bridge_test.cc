#include "vswitch/bridge.h"

#include <gtest/gtest.h>

#include <vector>

#include "slot/mac_addr.h"

namespace palisade {
namespace {

constexpr uint64_t kMacA = 0x020000000001;
constexpr uint64_t kMacB = 0x020000000002;
constexpr uint64_t kMacC = 0x020000000003;
constexpr uint64_t kBroadcast = 0xffffffffffff;

std::vector<uint8_t> Frame(uint64_t dst, uint64_t src) {
  std::vector<uint8_t> f(60, 0);
  for (int i = 0; i < 6; i++) {
    f[i] = static_cast<uint8_t>(dst >> (40 - 8 * i));
    f[6 + i] = static_cast<uint8_t>(src >> (40 - 8 * i));
  }
  f[12] = 0x08;
  return f;
}

class BridgeTest : public ::testing::Test {
 protected:
  BridgeTest() : bridge_({.max_entries = 64, .ageing_s = 300, .workers = 2}, Retire()) {
    for (uint16_t p = 0; p < 4; p++) bridge_.SetPortLive(p, true);
  }
  Bridge::Retire Retire() {
    return [this](std::function<void()> fn) {
      retired_++;
      fn();  // no concurrent readers in these tests
    };
  }
  Bridge::Decision Send(uint16_t port, uint64_t dst, uint64_t src, uint16_t worker = 0) {
    std::vector<uint8_t> f = Frame(dst, src);
    return bridge_.Forward(worker, port, f.data(), f.size(), now_);
  }

  uint32_t now_ = 1000;
  int retired_ = 0;
  Bridge bridge_;
};

TEST_F(BridgeTest, UnknownUnicastFloodsThenLearnedUnicastGoesToItsPort) {
  EXPECT_EQ(Send(0, kMacB, kMacA).port, Bridge::kFlood);
  bridge_.Poll(now_);
  EXPECT_EQ(Send(1, kMacA, kMacB).port, 0) << "A was learned on port 0";
  bridge_.Poll(now_);
  EXPECT_EQ(Send(0, kMacB, kMacA).port, 1);
}

TEST_F(BridgeTest, BroadcastAndMulticastFlood) {
  bridge_.Forward(0, 0, Frame(kBroadcast, kMacA).data(), 60, now_);
  bridge_.Poll(now_);
  EXPECT_EQ(Send(1, kBroadcast, kMacB).port, Bridge::kFlood);
  EXPECT_EQ(Send(1, 0x01005e000001, kMacB).port, Bridge::kFlood) << "IPv4 multicast";
  EXPECT_EQ(Send(1, 0x333300000001, kMacB).port, Bridge::kFlood) << "IPv6 multicast";
}

TEST_F(BridgeTest, NeverBackOutOfTheIngressPort) {
  Send(2, kBroadcast, kMacC);
  bridge_.Poll(now_);
  Bridge::Decision d = Send(2, kMacC, kMacA);
  EXPECT_EQ(d.port, Bridge::kDrop);
  EXPECT_EQ(d.reason, DropReason::kSamePort);
}

TEST_F(BridgeTest, DropsRuntsBadSourcesAndLinkLocalGroups) {
  uint8_t runt[13] = {};
  EXPECT_EQ(bridge_.Forward(0, 0, runt, sizeof runt, now_).reason, DropReason::kRunt);
  EXPECT_EQ(Send(0, kMacB, kBroadcast).reason, DropReason::kBadSource);
  EXPECT_EQ(Send(0, kMacB, 0).reason, DropReason::kBadSource);
  EXPECT_EQ(Send(0, 0x0180c2000000, kMacA).reason, DropReason::kReservedMulticast) << "STP";
  EXPECT_EQ(Send(0, 0x0180c200000e, kMacA).reason, DropReason::kReservedMulticast) << "LLDP";
  bridge_.Poll(now_);
  EXPECT_TRUE(bridge_.Dump().size() == 1) << "only the valid source A is learned";
}

TEST_F(BridgeTest, StationMoveFollowsTheNewPort) {
  Send(0, kBroadcast, kMacA);
  bridge_.Poll(now_);
  EXPECT_EQ(Send(1, kMacA, kMacB).port, 0);
  Send(3, kBroadcast, kMacA, /*worker=*/1);  // A moved to port 3, seen by another worker
  bridge_.Poll(now_);
  EXPECT_EQ(Send(1, kMacA, kMacB).port, 3);
}

TEST_F(BridgeTest, AgeingWithFakeClock) {
  Send(0, kBroadcast, kMacA);
  Send(1, kBroadcast, kMacB);
  bridge_.Poll(now_);
  ASSERT_EQ(bridge_.Dump().size(), 2u);

  now_ += 200;
  Send(1, kBroadcast, kMacB);  // B stays active (touch, no event needed)
  bridge_.Poll(now_);
  now_ += 150;  // A last seen 350 s ago, B 150 s ago
  bridge_.Poll(now_);
  std::vector<MacTable::Entry> left = bridge_.Dump();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].mac, kMacB);
  EXPECT_EQ(Send(1, kMacA, kMacB).port, Bridge::kFlood) << "aged out: unknown again";

  // Seen again after ageing out, it is learned again (no stale de-duplication).
  Send(0, kBroadcast, kMacA);
  bridge_.Poll(now_);
  EXPECT_EQ(Send(1, kMacA, kMacB).port, 0);
}

TEST_F(BridgeTest, ShorterAgeingTakesEffect) {
  Send(0, kBroadcast, kMacA);
  bridge_.Poll(now_);
  bridge_.set_ageing_s(10);
  now_ += 11;
  bridge_.Poll(now_);
  EXPECT_TRUE(bridge_.Dump().empty());
}

TEST_F(BridgeTest, RemovedPortForgetsItsMacsAndIgnoresLateEvents) {
  Send(0, kBroadcast, kMacA);
  bridge_.Poll(now_);
  EXPECT_EQ(bridge_.RemovePort(0), 1u);
  Send(0, kBroadcast, kMacC);  // in flight when the port went away
  bridge_.Poll(now_);
  EXPECT_TRUE(bridge_.Dump().empty());
  EXPECT_EQ(Send(1, kMacA, kMacB).port, Bridge::kFlood);
}

TEST_F(BridgeTest, ChurnRebuildsTheTableAndRetiresTheOldOne) {
  // 64 entries, 128 slots: tombstones beyond 32 trigger a compact copy.
  for (int round = 0; round < 3; round++) {
    for (uint64_t i = 0; i < 40; i++) Send(0, kBroadcast, 0x020000001000 + round * 100 + i);
    bridge_.Poll(now_);
    now_ += 400;
    bridge_.Poll(now_);
  }
  EXPECT_GE(retired_, 1);
  Send(0, kBroadcast, kMacA);
  bridge_.Poll(now_);
  EXPECT_EQ(Send(1, kMacA, kMacB).port, 0);
}

TEST(MacTableTest, FullTableRefusesNewEntries) {
  MacTable t(2);
  EXPECT_TRUE(t.Learn(1, 0, 0));
  EXPECT_TRUE(t.Learn(2, 0, 0));
  EXPECT_FALSE(t.Learn(3, 0, 0));
  EXPECT_TRUE(t.Learn(2, 1, 0)) << "a known MAC can still move";
  EXPECT_EQ(t.Lookup(2).port, 1);
}

TEST(MacAddrTest, ParseAndPrint) {
  EXPECT_EQ(MacParse("02:00:0a:0B:ff:01"), 0x02000a0bff01u);
  EXPECT_EQ(MacToString(0x02000a0bff01u), "02:00:0a:0b:ff:01");
  EXPECT_FALSE(MacParse("02:00:0a:0b:ff"));
  EXPECT_FALSE(MacParse("02-00-0a-0b-ff-01"));
  EXPECT_FALSE(MacParse("02:00:0a:0b:ff:0g"));
}

}  // namespace
}  // namespace palisade
