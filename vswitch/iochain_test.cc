#include "vswitch/iochain.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "vswitch/counting_filter.h"

namespace palisade {
namespace {

// Records the order in which slots see packets and applies a fixed verdict to one packet.
class ScriptedFilter : public Filter {
 public:
  ScriptedFilter(std::string name, std::vector<std::string>* log) : name_(name), log_(log) {}
  std::string_view agent() const override { return name_; }
  void Process(FilterBatch& batch) override {
    log_->push_back(name_ + ":" + std::to_string(batch.count));
    for (uint16_t i = 0; i < batch.count; i++) {
      uint8_t tag = batch.pkts[i].data[0];
      if (tag == target_) {
        batch.verdict[i] = verdict_;
        batch.reason[i] = reason_;
      }
    }
  }
  void Hit(uint8_t target, Verdict v, DropReason r = DropReason::kNone) {
    target_ = target;
    verdict_ = v;
    reason_ = r;
  }

 private:
  std::string name_;
  std::vector<std::string>* log_;
  uint8_t target_ = 0xff;
  Verdict verdict_ = Verdict::kPass;
  DropReason reason_ = DropReason::kNone;
};

class IOChainTest : public ::testing::Test {
 protected:
  // Packet i carries tag i in its first byte.
  FilterBatch MakeBatch(Direction dir, uint16_t n) {
    FilterBatch b{};
    b.dir = dir;
    b.count = n;
    for (uint16_t i = 0; i < n; i++) {
      frames_[i][0] = static_cast<uint8_t>(i);
      b.pkts[i] = PacketRef{frames_[i], 60};
    }
    return b;
  }
  uint8_t frames_[kBurstSize][60] = {};
  std::vector<std::string> log_;
};

TEST_F(IOChainTest, EmptyChainPassesEverything) {
  IOChain chain;
  FilterBatch b = MakeBatch(Direction::kOut, 4);
  chain.Run(b);
  for (int i = 0; i < 4; i++) EXPECT_EQ(b.verdict[i], Verdict::kPass);
}

TEST_F(IOChainTest, OutRunsAscendingInRunsDescending) {
  auto one = std::make_shared<ScriptedFilter>("one", &log_);
  auto two = std::make_shared<ScriptedFilter>("two", &log_);
  // Built out of order on purpose: the chain sorts by slot number.
  IOChain chain({{2, FailurePolicy::kFailClosed, two}, {1, FailurePolicy::kFailClosed, one}});
  FilterBatch out = MakeBatch(Direction::kOut, 3);
  chain.Run(out);
  FilterBatch in = MakeBatch(Direction::kIn, 3);
  chain.Run(in);
  EXPECT_EQ(log_, (std::vector<std::string>{"one:3", "two:3", "two:3", "one:3"}));
}

TEST_F(IOChainTest, LaterSlotsSeeOnlyWhatEarlierSlotsPassed) {
  auto one = std::make_shared<ScriptedFilter>("one", &log_);
  auto two = std::make_shared<ScriptedFilter>("two", &log_);
  one->Hit(1, Verdict::kDrop, DropReason::kFilter);
  two->Hit(2, Verdict::kConsumed);
  IOChain chain({{1, FailurePolicy::kFailClosed, one}, {2, FailurePolicy::kFailClosed, two}});
  FilterBatch b = MakeBatch(Direction::kOut, 4);
  chain.Run(b);
  EXPECT_EQ(log_, (std::vector<std::string>{"one:4", "two:3"}));
  EXPECT_EQ(b.verdict[0], Verdict::kPass);
  EXPECT_EQ(b.verdict[1], Verdict::kDrop);
  EXPECT_EQ(b.reason[1], DropReason::kFilter);
  EXPECT_EQ(b.verdict[2], Verdict::kConsumed);
  EXPECT_EQ(b.reason[2], DropReason::kNone);
  EXPECT_EQ(b.verdict[3], Verdict::kPass);
}

TEST_F(IOChainTest, DropWithoutReasonCountsAsFilter) {
  auto one = std::make_shared<ScriptedFilter>("one", &log_);
  one->Hit(0, Verdict::kDrop);
  IOChain chain({{1, FailurePolicy::kFailClosed, one}});
  FilterBatch b = MakeBatch(Direction::kIn, 1);
  chain.Run(b);
  EXPECT_EQ(b.verdict[0], Verdict::kDrop);
  EXPECT_EQ(b.reason[0], DropReason::kFilter);
}

TEST_F(IOChainTest, EmptySlotFailClosedDropsEverything) {
  auto two = std::make_shared<ScriptedFilter>("two", &log_);
  IOChain chain({{1, FailurePolicy::kFailClosed, nullptr}, {2, FailurePolicy::kFailOpen, two}});
  FilterBatch b = MakeBatch(Direction::kOut, 5);
  chain.Run(b);
  for (int i = 0; i < 5; i++) {
    EXPECT_EQ(b.verdict[i], Verdict::kDrop);
    EXPECT_EQ(b.reason[i], DropReason::kFailClosed);
  }
  EXPECT_TRUE(log_.empty()) << "no later slot may see a packet an earlier slot dropped";
}

TEST_F(IOChainTest, EmptySlotFailOpenPasses) {
  auto two = std::make_shared<ScriptedFilter>("two", &log_);
  IOChain chain({{1, FailurePolicy::kFailOpen, nullptr}, {2, FailurePolicy::kFailClosed, two}});
  FilterBatch b = MakeBatch(Direction::kOut, 5);
  chain.Run(b);
  for (int i = 0; i < 5; i++) EXPECT_EQ(b.verdict[i], Verdict::kPass);
  EXPECT_EQ(log_, (std::vector<std::string>{"two:5"}));
}

TEST_F(IOChainTest, UndecidedPacketFollowsPolicy) {
  auto closed = std::make_shared<ScriptedFilter>("closed", &log_);
  closed->Hit(1, Verdict::kUndecided);
  auto open = std::make_shared<ScriptedFilter>("open", &log_);
  open->Hit(2, Verdict::kUndecided);
  IOChain chain({{1, FailurePolicy::kFailClosed, closed}, {2, FailurePolicy::kFailOpen, open}});
  FilterBatch b = MakeBatch(Direction::kOut, 3);
  chain.Run(b);
  EXPECT_EQ(b.verdict[0], Verdict::kPass);
  EXPECT_EQ(b.verdict[1], Verdict::kDrop);
  EXPECT_EQ(b.reason[1], DropReason::kFailClosed);
  EXPECT_EQ(b.verdict[2], Verdict::kPass);
}

TEST_F(IOChainTest, WithReplacesAndWithoutRemovesLeavingOriginalIntact) {
  auto a = std::make_shared<ScriptedFilter>("a", &log_);
  auto b = std::make_shared<ScriptedFilter>("b", &log_);
  IOChain chain({{1, FailurePolicy::kFailClosed, a}});
  auto replaced = chain.With({1, FailurePolicy::kFailOpen, b});
  ASSERT_EQ(replaced->slots().size(), 1u);
  EXPECT_EQ(replaced->Find(1)->filter, b);
  EXPECT_EQ(replaced->Find(1)->policy, FailurePolicy::kFailOpen);
  EXPECT_EQ(chain.Find(1)->filter, a) << "the published chain is immutable";
  auto removed = replaced->Without(1);
  EXPECT_TRUE(removed->empty());
  EXPECT_EQ(removed->Find(1), nullptr);
}

TEST_F(IOChainTest, CountingFilterCountsPerDirectionAcrossWorkers) {
  auto counter = std::make_shared<CountingFilter>();
  IOChain chain({{3, FailurePolicy::kFailClosed, counter}});
  FilterBatch out = MakeBatch(Direction::kOut, 7);
  out.worker = 0;
  chain.Run(out);
  FilterBatch in = MakeBatch(Direction::kIn, 2);
  in.worker = 1;
  chain.Run(in);
  CountingFilter::Totals t = counter->totals();
  EXPECT_EQ(t.packets[0], 7u);
  EXPECT_EQ(t.bytes[0], 7u * 60);
  EXPECT_EQ(t.packets[1], 2u);
  EXPECT_EQ(t.bytes[1], 2u * 60);
}

// Captures at each point: pre records every packet with the chain's verdict, post what passed
// it all, post:N what passed the slots up to N in the direction's order; another direction
// records nothing.
TEST_F(IOChainTest, CaptureRecordsAtItsPointWithFinalVerdicts) {
  auto s1 = std::make_shared<ScriptedFilter>("one", &log_);
  auto s2 = std::make_shared<ScriptedFilter>("two", &log_);
  s1->Hit(1, Verdict::kDrop, DropReason::kSpoofGuard);
  s2->Hit(2, Verdict::kDrop, DropReason::kRule);
  IOChain chain({{1, FailurePolicy::kFailClosed, s1}, {2, FailurePolicy::kFailClosed, s2}});
  struct Case {
    CapturePoint point;
    uint8_t after;
    Direction dir;
    std::vector<uint8_t> tags;
  };
  const std::vector<Case> cases = {
      {CapturePoint::kPre, 0, Direction::kOut, {0, 1, 2, 3}},
      {CapturePoint::kPost, 0, Direction::kOut, {0, 3}},
      {CapturePoint::kPost, 1, Direction::kOut, {0, 2, 3}},  // slot 1 first
      {CapturePoint::kPost, 2, Direction::kIn, {0, 1, 3}},   // slot 2 first
      {CapturePoint::kPost, 1, Direction::kIn, {0, 3}},
  };
  for (const Case& c : cases) {
    CaptureSpec spec;
    spec.point = c.point;
    spec.after_slot = c.after;
    spec.in = c.dir == Direction::kIn;
    spec.out = c.dir == Direction::kOut;
    spec.snaplen = 8;
    Capture cap(spec, 1);
    FilterBatch b = MakeBatch(c.dir, 4);
    chain.Run(b, &cap);
    FilterBatch other = MakeBatch(c.dir == Direction::kIn ? Direction::kOut : Direction::kIn, 4);
    chain.Run(other, &cap);
    std::vector<CaptureRecord> got;
    cap.Drain(100, &got);
    ASSERT_EQ(got.size(), c.tags.size());
    for (size_t i = 0; i < got.size(); i++) {
      EXPECT_EQ(got[i].data[0], c.tags[i]);
      EXPECT_EQ(got[i].len, 60u);
      EXPECT_EQ(got[i].caplen, 8u);
      EXPECT_EQ(got[i].dir, c.dir);
      const uint8_t tag = got[i].data[0];
      EXPECT_EQ(got[i].verdict, tag == 1 || tag == 2 ? Verdict::kDrop : Verdict::kPass);
      if (tag == 1) {
        EXPECT_EQ(got[i].reason, DropReason::kSpoofGuard);
      }
      if (tag == 2) {
        EXPECT_EQ(got[i].reason, DropReason::kRule);
      }
    }
    EXPECT_EQ(cap.lost(), 0u);
  }
}

TEST_F(IOChainTest, CaptureCountsWhatAFullRingLoses) {
  IOChain chain;
  CaptureSpec spec;
  spec.snaplen = 60;
  Capture cap(spec, 1);
  const size_t batches = Capture::kRingRecords / kBurstSize + 1;
  for (size_t k = 0; k < batches; k++) {
    FilterBatch b = MakeBatch(Direction::kOut, kBurstSize);
    chain.Run(b, &cap);
    for (uint16_t i = 0; i < kBurstSize; i++) EXPECT_EQ(b.verdict[i], Verdict::kPass);
  }
  std::vector<CaptureRecord> got;
  cap.Drain(10000, &got);
  EXPECT_EQ(got.size(), Capture::kRingRecords);
  EXPECT_EQ(cap.lost(), batches * kBurstSize - Capture::kRingRecords);
}

}  // namespace
}  // namespace palisade
