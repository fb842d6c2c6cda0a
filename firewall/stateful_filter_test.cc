// Scenarios for the stateful firewall with crafted packets and a fake clock. The VM behind the
// filter is 10.0.0.1 (2001:db8::1); OUT packets come from it, IN packets go to it.
#include "firewall/stateful_filter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <thread>

#include "firewall/checksum.h"
#include "firewall/packet_builder.h"
#include "firewall/parsed.h"
#include "firewall/rule_text.h"

namespace palisade::fw {
namespace {

constexpr uint64_t kSecond = 1000000000ull;
const IpAddr kVm = *IpAddr::Parse("10.0.0.1");
const IpAddr kPeer = *IpAddr::Parse("10.0.0.2");

class Capture : public Emitter {
 public:
  bool Emit(const uint8_t* frame, uint32_t len) override {
    frames.emplace_back(frame, frame + len);
    return true;
  }
  std::vector<std::vector<uint8_t>> frames;
};

constexpr char kPolicy[] = R"(ruleset web {
  rule 100 at 1 out protocol tcp from any to any port 80 accept with log;
  rule 101 at 2 out protocol tcp strict from any to any port 443 accept;
  rule 102 at 3 out protocol udp from any to any port 53 accept;
  rule 103 at 4 out protocol icmp icmptype 8 from any to any accept;
  rule 104 at 5 in protocol udp stateless from any to any port 9999 accept;
  rule 105 at 6 in protocol tcp from any to any port 22 drop with log;
  rule 106 at 7 inout protocol udp from any to any port 7 reject;
  rule 107 at 8 out inet6 protocol udp from any to any port 7 reject;
  rule 108 at 9 inout protocol any from any to any reject with log;
})";

class StatefulFilterTest : public ::testing::Test {
 protected:
  StatefulFilterTest() : log_(1, 0), filter_(7, &log_, FirewallOptions{}, 0x1234567800000000ull) {
    Load(kPolicy);
  }

  void Load(const char* text, uint32_t generation = 0) {
    RuleFile f;
    Status s = ParseRuleFile(text, &f);
    ASSERT_TRUE(s.ok()) << s.message();
    std::shared_ptr<const RuleTable> t;
    s = RuleTable::Compile(f, nullptr, generation ? generation : ++generation_, &t);
    ASSERT_TRUE(s.ok()) << s.message();
    filter_.SetTable(t);
  }

  // Sends one frame through the filter; returns its verdict and reason.
  std::pair<Verdict, DropReason> Send(Direction dir, const std::vector<uint8_t>& frame) {
    FilterBatch b{};
    b.dir = dir;
    b.count = 1;
    b.now_ns = now_;
    b.pkts[0] = PacketRef{frame.data(), static_cast<uint32_t>(frame.size())};
    b.verdict[0] = Verdict::kPass;
    b.emit = &capture_;
    filter_.Process(b);
    return {b.verdict[0], b.reason[0]};
  }
  bool Passes(Direction dir, const std::vector<uint8_t>& frame) {
    return Send(dir, frame).first == Verdict::kPass;
  }

  // TCP segments of one connection VM:40000 -> peer:80.
  std::vector<uint8_t> Out(uint8_t flags, uint32_t seq, uint32_t ack, uint16_t dport = 80,
                           std::vector<uint8_t> payload = {}) {
    FrameSpec s;
    s.src = kVm;
    s.dst = kPeer;
    s.dport = dport;
    s.flags = flags;
    s.seq = seq;
    s.ack = ack;
    s.payload = std::move(payload);
    return BuildFrame(s);
  }
  std::vector<uint8_t> In(uint8_t flags, uint32_t seq, uint32_t ack, uint16_t sport = 80,
                          std::vector<uint8_t> payload = {}) {
    FrameSpec s;
    s.src = kPeer;
    s.dst = kVm;
    s.sport = sport;
    s.dport = 40000;
    s.flags = flags;
    s.seq = seq;
    s.ack = ack;
    s.payload = std::move(payload);
    return BuildFrame(s);
  }
  std::vector<uint8_t> Udp(bool out, uint16_t sport, uint16_t dport, bool v6 = false) {
    FrameSpec s;
    s.proto = kProtoUdp;
    s.src = v6 ? *IpAddr::Parse("2001:db8::1") : kVm;
    s.dst = v6 ? *IpAddr::Parse("2001:db8::2") : kPeer;
    if (!out) std::swap(s.src, s.dst);
    s.sport = sport;
    s.dport = dport;
    s.payload = {1, 2, 3, 4};
    return BuildFrame(s);
  }

  FlowInfo OnlyFlow() {
    std::vector<FlowInfo> flows;
    filter_.Flows(0, 100, FlowSelector{}, now_, &flows);
    EXPECT_EQ(flows.size(), 1u);
    return flows.empty() ? FlowInfo{} : flows[0];
  }

  // Opens VM:40000 -> peer:80 (client ISN 1000, server ISN 5000) to ESTABLISHED.
  void Handshake() {
    ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kSyn, 1000, 0)));
    ASSERT_TRUE(Passes(Direction::kIn, In(tcp::kSyn | tcp::kAck, 5000, 1001)));
    ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kAck, 1001, 5001)));
    ASSERT_EQ(OnlyFlow().state, ConnState::kEstablished);
  }

  std::vector<std::string> LogLines() {
    std::vector<std::string> lines;
    char* buf = nullptr;
    size_t len = 0;
    FILE* f = open_memstream(&buf, &len);
    log_.Drain(f, now_);
    std::fclose(f);
    std::string all(buf, len);
    free(buf);
    size_t pos = 0, nl;
    while ((nl = all.find('\n', pos)) != std::string::npos) {
      lines.push_back(all.substr(pos, nl - pos));
      pos = nl + 1;
    }
    return lines;
  }

  uint64_t now_ = 1000 * kSecond;
  uint32_t generation_ = 0;
  PacketLog log_;
  Capture capture_;
  StatefulFilter filter_;
};

TEST_F(StatefulFilterTest, S1_HandshakeEstablishes) {
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kSyn, 1000, 0)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kSynSent);
  ASSERT_TRUE(Passes(Direction::kIn, In(tcp::kSyn | tcp::kAck, 5000, 1001)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kSynRecv);
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kAck, 1001, 5001)));
  FlowInfo f = OnlyFlow();
  EXPECT_EQ(f.state, ConnState::kEstablished);
  EXPECT_EQ(f.rule_id, 100u);
  EXPECT_FALSE(f.orig_in);
  EXPECT_EQ(f.orig.src, kVm);
  EXPECT_EQ(f.orig.dport, 80);
  EXPECT_EQ(f.pkts[0], 2u);
  EXPECT_EQ(f.pkts[1], 1u);
  EXPECT_EQ(f.flow_id >> 32, 0x5678u) << "48-bit ids: 16 bits of the seed above a counter";
}

TEST_F(StatefulFilterTest, S2_DataInBothDirectionsWithinTheWindow) {
  Handshake();
  EXPECT_TRUE(Passes(Direction::kOut, Out(tcp::kAck | tcp::kPsh, 1001, 5001, 80, std::vector<uint8_t>(100))));
  EXPECT_TRUE(Passes(Direction::kIn, In(tcp::kAck | tcp::kPsh, 5001, 1101, 80, std::vector<uint8_t>(1000))));
  EXPECT_TRUE(Passes(Direction::kOut, Out(tcp::kAck, 1101, 6001)));
  FlowInfo f = OnlyFlow();
  EXPECT_EQ(f.pkts[0], 4u);
  EXPECT_EQ(f.pkts[1], 2u);
  std::vector<RuleStats> stats = filter_.rule_stats();
  EXPECT_EQ(stats[0].evals, 1u);
  EXPECT_EQ(stats[0].pkts[1], 4u) << "out";
  EXPECT_EQ(stats[0].pkts[0], 2u) << "in";
}

// Established packets in a worker's burst (with scratch: the datapath's established path) are
// counted per rule and direction once per run of packets on one rule; runs interleave, and a
// packet dropped in the middle of one counts nowhere.
TEST_F(StatefulFilterTest, EstablishedBurstsCountEveryRuleAndDirection) {
  Handshake();
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40001, 53)));
  const std::vector<RuleStats> before = filter_.rule_stats();
  auto burst = [&](Direction dir, const std::vector<std::vector<uint8_t>>& frames) {
    std::vector<PacketScratch> scratch(frames.size());
    FilterBatch b{};
    b.dir = dir;
    b.count = static_cast<uint16_t>(frames.size());
    b.now_ns = now_;
    for (size_t i = 0; i < frames.size(); i++) {
      b.pkts[i] = PacketRef{frames[i].data(), static_cast<uint32_t>(frames[i].size())};
      b.verdict[i] = Verdict::kPass;
      b.scratch[i] = &scratch[i];
    }
    filter_.Process(b);
    std::vector<Verdict> verdicts(b.verdict, b.verdict + frames.size());
    return verdicts;
  };
  const std::vector<uint8_t> payload(10);
  const std::vector<std::vector<uint8_t>> out = {
      Out(tcp::kAck | tcp::kPsh, 1001, 5001, 80, payload), Udp(true, 40001, 53),
      Udp(true, 40001, 53), Out(tcp::kAck | tcp::kPsh, 1011, 5001, 80, payload),
      Out(tcp::kAck, 900000, 5001), Udp(true, 40001, 53)};
  EXPECT_EQ(burst(Direction::kOut, out), (std::vector<Verdict>{Verdict::kPass, Verdict::kPass, Verdict::kPass,
                                                               Verdict::kPass, Verdict::kDrop, Verdict::kPass}));
  const std::vector<std::vector<uint8_t>> in = {Udp(false, 53, 40001), In(tcp::kAck, 5001, 1021),
                                                Udp(false, 53, 40001)};
  EXPECT_EQ(burst(Direction::kIn, in), std::vector<Verdict>(3, Verdict::kPass));
  const std::vector<RuleStats> after = filter_.rule_stats();
  // Rule 100 (position 1): TCP; rule 102 (position 3): UDP. pkts/bytes [0] in, [1] out.
  EXPECT_EQ(after[0].pkts[1] - before[0].pkts[1], 2u);
  EXPECT_EQ(after[0].bytes[1] - before[0].bytes[1], out[0].size() + out[3].size());
  EXPECT_EQ(after[0].pkts[0] - before[0].pkts[0], 1u);
  EXPECT_EQ(after[0].bytes[0] - before[0].bytes[0], in[1].size());
  EXPECT_EQ(after[2].pkts[1] - before[2].pkts[1], 3u);
  EXPECT_EQ(after[2].bytes[1] - before[2].bytes[1], 3 * out[1].size());
  EXPECT_EQ(after[2].pkts[0] - before[2].pkts[0], 2u);
  EXPECT_EQ(after[2].evals, before[2].evals) << "established packets meet no rule";
  std::vector<FlowInfo> flows;
  filter_.Flows(0, 100, FlowSelector{}, now_, &flows);
  ASSERT_EQ(flows.size(), 2u);
  for (const FlowInfo& f : flows) {
    if (f.orig.proto == kProtoTcp) {
      EXPECT_EQ(f.pkts[0], 4u) << "SYN, ACK and two segments; the out-of-window one not";
      EXPECT_EQ(f.pkts[1], 2u);
    } else {
      EXPECT_EQ(f.pkts[0], 4u);
      EXPECT_EQ(f.pkts[1], 2u);
      EXPECT_EQ(f.state, ConnState::kMultiple);
    }
  }
}

TEST_F(StatefulFilterTest, S3_FinCloseGoesThroughTheClosingStates) {
  Handshake();
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kFin | tcp::kAck, 1001, 5001)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kFinWait);
  ASSERT_TRUE(Passes(Direction::kIn, In(tcp::kAck, 5001, 1002)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kCloseWait);
  ASSERT_TRUE(Passes(Direction::kIn, In(tcp::kFin | tcp::kAck, 5001, 1002)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kTimeWait);
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kAck, 1002, 5002)));
  // TIME_WAIT ends after its timeout; the TERM line says FIN (rule 100 logs).
  now_ += 21 * kSecond;
  EXPECT_EQ(filter_.Expire(now_, 1000), 1u);
  std::vector<std::string> lines = LogLines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[0].find("7 INET match PASS web/100 OUT"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("TCP 10.0.0.1/40000->10.0.0.2/80 S"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("7 INET TERM PASS web/100 OUT TCP FIN 10.0.0.1/40000->10.0.0.2/80 4/3 "),
            std::string::npos) << lines[1];
  // Counted per filter id for the metrics, until the filter's port goes.
  EXPECT_EQ(log_.written_by(7), 2u);
  EXPECT_EQ(log_.written_by(8), 0u);
  log_.Forget(7);
  EXPECT_EQ(log_.written_by(7), 0u);
  EXPECT_EQ(log_.written(), 2u);
}

TEST_F(StatefulFilterTest, S4_RstInWindowCloses) {
  Handshake();
  ASSERT_TRUE(Passes(Direction::kIn, In(tcp::kRst, 5001, 0)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kClosed);
}

TEST_F(StatefulFilterTest, S5_BlindRstAndOutOfWindowSegmentsAreIgnored) {
  Handshake();
  auto [v, why] = Send(Direction::kIn, In(tcp::kRst, 5001 + 3000000, 0));
  EXPECT_EQ(v, Verdict::kDrop);
  EXPECT_EQ(why, DropReason::kTcpInvalid);
  EXPECT_EQ(OnlyFlow().state, ConnState::kEstablished) << "a blind RST must not kill it";
  // Data far beyond what the VM allowed cannot ride the connection.
  EXPECT_EQ(Send(Direction::kIn, In(tcp::kAck, 5001 + 200000, 1001)).second, DropReason::kTcpInvalid);
  // Acknowledging data the VM never sent is refused too.
  EXPECT_EQ(Send(Direction::kIn, In(tcp::kAck, 5001, 1001 + 500000)).second, DropReason::kTcpInvalid);
  EXPECT_TRUE(Passes(Direction::kIn, In(tcp::kAck, 5001, 1001)));
}

TEST_F(StatefulFilterTest, S6_StrictRefusesMidStreamLoosePicksUp) {
  // Port 443 is strict: an ACK with no SYN before it opens nothing.
  EXPECT_EQ(Send(Direction::kOut, Out(tcp::kAck, 7000, 9000, 443)).second, DropReason::kTcpInvalid);
  EXPECT_EQ(filter_.flow_count(), 0u);
  // Port 80 is not: the connection is picked up mid-stream and both sides are learned.
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kAck, 7000, 9000)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kEstablished);
  EXPECT_TRUE(Passes(Direction::kIn, In(tcp::kAck, 9000, 7000)));
  EXPECT_TRUE(Passes(Direction::kOut, Out(tcp::kAck | tcp::kPsh, 7000, 9000, 80, {1, 2, 3})));
}

TEST_F(StatefulFilterTest, S7_ReopenAfterTimeWait) {
  Handshake();
  Passes(Direction::kOut, Out(tcp::kFin | tcp::kAck, 1001, 5001));
  Passes(Direction::kIn, In(tcp::kFin | tcp::kAck, 5001, 1002));
  ASSERT_EQ(OnlyFlow().state, ConnState::kTimeWait);
  const uint64_t old_id = OnlyFlow().flow_id;
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kSyn, 90000, 0)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kSynSent);
  EXPECT_NE(OnlyFlow().flow_id, old_id);
}

TEST_F(StatefulFilterTest, UnsolicitedInboundFollowsTheRules) {
  FrameSpec s;
  s.src = kPeer;
  s.dst = kVm;
  s.dport = 22;
  EXPECT_EQ(Send(Direction::kIn, BuildFrame(s)).second, DropReason::kRule) << "rule 105 drops";
  s.dport = 23;
  EXPECT_EQ(Send(Direction::kIn, BuildFrame(s)).second, DropReason::kReject) << "rule 108";
}

TEST_F(StatefulFilterTest, RejectSendsWellFormedTcpRst) {
  FrameSpec s;
  s.src = kPeer;
  s.dst = kVm;
  s.dport = 8080;
  s.seq = 4242;
  ASSERT_EQ(Send(Direction::kIn, BuildFrame(s)).second, DropReason::kReject);
  ASSERT_EQ(capture_.frames.size(), 1u);
  Packet r;
  ASSERT_EQ(ParsePacket(capture_.frames[0].data(), static_cast<uint32_t>(capture_.frames[0].size()), &r),
            ParseError::kNone);
  EXPECT_EQ(r.tcp_flags, tcp::kRst | tcp::kAck);
  EXPECT_EQ(r.ack, 4243u);
  EXPECT_EQ(r.tuple.src, kVm);
  EXPECT_EQ(r.tuple.dst, kPeer);
  EXPECT_EQ(r.tuple.sport, 8080);
  EXPECT_EQ(r.dst_mac, s.src_mac);
  const auto& f = capture_.frames[0];
  EXPECT_EQ(ChecksumFinish(ChecksumAdd(&f[14], 20)), 0) << "IPv4 header checksum";
  std::vector<uint8_t> l4(f.begin() + r.l4_offset, f.end());
  const uint16_t stored = static_cast<uint16_t>(l4[16] << 8 | l4[17]);
  l4[16] = l4[17] = 0;
  EXPECT_EQ(L4Checksum(r.tuple.src, r.tuple.dst, kProtoTcp, l4.data(), l4.size()), stored);
}

TEST_F(StatefulFilterTest, RejectSendsIcmpUnreachableQuotingThePacket) {
  std::vector<uint8_t> probe = Udp(/*out=*/false, 5555, 7);
  ASSERT_EQ(Send(Direction::kIn, probe).second, DropReason::kReject);
  ASSERT_EQ(capture_.frames.size(), 1u);
  Packet r;
  ASSERT_EQ(ParsePacket(capture_.frames[0].data(), static_cast<uint32_t>(capture_.frames[0].size()), &r),
            ParseError::kNone);
  EXPECT_EQ(r.tuple.proto, kProtoIcmp);
  EXPECT_EQ(r.icmp_type, 3);
  EXPECT_EQ(r.icmp_code, 3);
  ASSERT_TRUE(r.icmp_error);
  EXPECT_EQ(r.quoted.sport, 5555);
  EXPECT_EQ(r.quoted.dport, 7);
  // ICMP checksum over the whole message.
  std::vector<uint8_t> l4(capture_.frames[0].begin() + r.l4_offset, capture_.frames[0].end());
  EXPECT_EQ(ChecksumFinish(ChecksumAdd(l4.data(), l4.size())), 0);

  capture_.frames.clear();
  ASSERT_EQ(Send(Direction::kOut, Udp(true, 5555, 7, /*v6=*/true)).second, DropReason::kReject);
  ASSERT_EQ(capture_.frames.size(), 1u);
  ASSERT_EQ(ParsePacket(capture_.frames[0].data(), static_cast<uint32_t>(capture_.frames[0].size()), &r),
            ParseError::kNone);
  EXPECT_EQ(r.tuple.proto, kProtoIcmp6);
  EXPECT_EQ(r.icmp_type, 1);
  EXPECT_EQ(r.icmp_code, 1) << "administratively prohibited";
  std::vector<uint8_t> l6(capture_.frames[0].begin() + r.l4_offset, capture_.frames[0].end());
  const uint16_t stored = static_cast<uint16_t>(l6[2] << 8 | l6[3]);
  l6[2] = l6[3] = 0;
  EXPECT_EQ(L4Checksum(r.tuple.src, r.tuple.dst, kProtoIcmp6, l6.data(), l6.size()), stored);
}

TEST_F(StatefulFilterTest, UdpPseudoConnectionAndTimeouts) {
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40001, 53)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kNew);
  ASSERT_TRUE(Passes(Direction::kIn, Udp(false, 53, 40001)));
  EXPECT_EQ(OnlyFlow().state, ConnState::kMultiple);
  now_ += 59 * kSecond;
  EXPECT_EQ(filter_.Expire(now_, 1000), 0u);
  now_ += 2 * kSecond;
  EXPECT_EQ(filter_.Expire(now_, 1000), 1u);
  EXPECT_EQ(Send(Direction::kIn, Udp(false, 53, 40001)).second, DropReason::kReject)
      << "after the timeout the reply is unsolicited";
}

TEST_F(StatefulFilterTest, TimeoutsChangeAtRunTime) {
  FirewallOptions o = filter_.options();
  ASSERT_TRUE(o.timeouts.Set("udp_first", 5).ok());
  EXPECT_FALSE(o.timeouts.Set("udp_forever", 5).ok());
  ASSERT_TRUE(filter_.SetOptions(o).ok());
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40001, 53)));
  now_ += 6 * kSecond;
  EXPECT_EQ(filter_.Expire(now_, 1000), 1u);
}

TEST_F(StatefulFilterTest, AConnectionPastItsTimeoutDecidesNothingBeforeTheSweep) {
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40001, 53)));
  ASSERT_TRUE(Passes(Direction::kIn, Udp(false, 53, 40001)));
  now_ += 61 * kSecond;  // past udp_multiple; no Expire() runs
  EXPECT_EQ(Send(Direction::kIn, Udp(false, 53, 40001)).second, DropReason::kReject)
      << "the reply meets the rules as a new connection";
  EXPECT_EQ(filter_.flow_count(), 0u) << "closed when it was found";
}

TEST_F(StatefulFilterTest, ExpirySlicesCoverTheTableInSlotsNotLiveEntries) {
  for (uint16_t port = 1; port <= 3000; port++) ASSERT_TRUE(Passes(Direction::kOut, Udp(true, port, 53)));
  now_ += 31 * kSecond;  // past udp_first
  for (int k = 0; k < 3; k++) EXPECT_EQ(filter_.Expire(now_, 1000), 1000u) << "slice " << k;
  EXPECT_EQ(filter_.flow_count(), 0u);
  // One live entry among 2,999 free slots: a slice examines 1,000 slots, so three find it.
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 5000, 53)));
  now_ += 31 * kSecond;
  size_t removed = 0;
  for (int k = 0; k < 3; k++) removed += filter_.Expire(now_, 1000);
  EXPECT_EQ(removed, 1u);
  EXPECT_EQ(filter_.flow_count(), 0u);
}

TEST_F(StatefulFilterTest, IcmpEchoAndRelatedErrors) {
  FrameSpec ping;
  ping.proto = kProtoIcmp;
  ping.src = kVm;
  ping.dst = kPeer;
  ping.icmp_type = 8;
  ping.sport = 77;
  ASSERT_TRUE(Passes(Direction::kOut, BuildFrame(ping)));
  FrameSpec pong = ping;
  std::swap(pong.src, pong.dst);
  pong.icmp_type = 0;
  EXPECT_TRUE(Passes(Direction::kIn, BuildFrame(pong)));
  pong.sport = 78;  // a reply nobody asked for
  EXPECT_FALSE(Passes(Direction::kIn, BuildFrame(pong)));

  // An ICMP error about the VM's UDP query passes as related; one about nothing does not.
  std::vector<uint8_t> query = Udp(true, 40002, 53);
  ASSERT_TRUE(Passes(Direction::kOut, query));
  FrameSpec err;
  err.proto = kProtoIcmp;
  err.src = kPeer;
  err.dst = kVm;
  err.icmp_type = 3;
  err.icmp_code = 3;
  err.sport = 0;
  err.payload.assign(query.begin() + 14, query.begin() + 14 + 28);
  EXPECT_TRUE(Passes(Direction::kIn, BuildFrame(err)));
  std::vector<uint8_t> other = Udp(true, 40003, 53);
  err.payload.assign(other.begin() + 14, other.begin() + 14 + 28);
  EXPECT_FALSE(Passes(Direction::kIn, BuildFrame(err)));
}

TEST_F(StatefulFilterTest, TableLimitDropsNewConnectionsOnly) {
  FirewallOptions o = filter_.options();
  o.conn_limit = 2;
  ASSERT_TRUE(filter_.SetOptions(o).ok());
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 1, 53)));
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 2, 53)));
  EXPECT_EQ(Send(Direction::kOut, Udp(true, 3, 53)).second, DropReason::kStateLimit);
  EXPECT_TRUE(Passes(Direction::kIn, Udp(false, 53, 1))) << "established ones carry on";
  std::vector<std::string> lines = LogLines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("state-limit DROP web/102 OUT"), std::string::npos) << lines[0];
}

TEST_F(StatefulFilterTest, NewConnectionsSweepTheExpiredWithoutTheControlThread) {
  FirewallOptions o = filter_.options();
  o.conn_limit = 2;
  ASSERT_TRUE(filter_.SetOptions(o).ok());
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 1, 53)));
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 2, 53)));
  now_ += 61 * kSecond;  // both expired; no Expire() runs
  EXPECT_TRUE(Passes(Direction::kOut, Udp(true, 3, 53))) << "the new entry's sweep step freed room";
  EXPECT_TRUE(Passes(Direction::kOut, Udp(true, 4, 53)));
  EXPECT_EQ(filter_.flow_count(), 2u);
  EXPECT_EQ(Send(Direction::kIn, Udp(false, 53, 1)).second, DropReason::kReject) << "the old ones are gone";
}

TEST_F(StatefulFilterTest, RuleChangeRechecksConnections) {
  Handshake();
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40001, 53)));
  // The new table still admits DNS but no longer web traffic.
  Load(R"(ruleset web2 {
    rule 200 at 1 out protocol udp from any to any port 53 accept;
    rule 201 at 2 inout protocol any from any to any drop;
  })");
  EXPECT_TRUE(Passes(Direction::kIn, Udp(false, 53, 40001))) << "still admitted";
  EXPECT_EQ(Send(Direction::kIn, In(tcp::kAck, 5001, 1001)).second, DropReason::kRule)
      << "closed by the re-check, then refused by the new rules";
  std::vector<FlowInfo> flows;
  filter_.Flows(0, 10, FlowSelector{}, now_, &flows);
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].rule_id, 200u) << "the surviving flow now belongs to the new rule";
  std::vector<std::string> lines = LogLines();
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("TERM PASS web2/100 OUT TCP RULE_CHANGE"), std::string::npos) << lines.back();
}

TEST_F(StatefulFilterTest, RecheckOffKeepsConnections) {
  FirewallOptions o = filter_.options();
  o.recheck = false;
  ASSERT_TRUE(filter_.SetOptions(o).ok());
  Handshake();
  Load("ruleset none { rule 1 inout protocol any from any to any drop; }");
  EXPECT_TRUE(Passes(Direction::kIn, In(tcp::kAck, 5001, 1001)));
}

TEST_F(StatefulFilterTest, StatelessRulesCreateNoEntry) {
  EXPECT_TRUE(Passes(Direction::kIn, Udp(false, 1234, 9999)));
  EXPECT_EQ(filter_.flow_count(), 0u);
}

TEST_F(StatefulFilterTest, LaterFragmentsPassOnlyAfterAnAdmittedFirst) {
  std::vector<uint8_t> first = Udp(true, 40010, 53);
  first[20] = 0x20;  // MF
  std::vector<uint8_t> later = Udp(true, 40010, 53);
  later[20] = 0x00;
  later[21] = 0x02;  // offset 16 bytes
  EXPECT_EQ(Send(Direction::kOut, later).second, DropReason::kFragment) << "no first fragment yet";
  ASSERT_TRUE(Passes(Direction::kOut, first));
  EXPECT_TRUE(Passes(Direction::kOut, later));
  std::vector<uint8_t> other = later;
  other[18] = 0x55;  // another datagram id
  EXPECT_EQ(Send(Direction::kOut, other).second, DropReason::kFragment);
}

TEST_F(StatefulFilterTest, MalformedAndNoTable) {
  std::vector<uint8_t> bad = Out(tcp::kSyn, 1, 0);
  bad[14] = 0x43;  // IHL 3
  EXPECT_EQ(Send(Direction::kOut, bad).second, DropReason::kMalformed);
  filter_.SetTable(nullptr);
  EXPECT_EQ(Send(Direction::kOut, Out(tcp::kSyn, 1, 0)).first, Verdict::kUndecided);
}

TEST_F(StatefulFilterTest, L2RulesComeFirst) {
  Load(R"(ruleset t {
    rule 1 at 1 inout protocol any from any to any accept;
  }
  ruleset t_L2 {
    rule 2 at 1 inout ethertype ipv6 from any to any drop;
    rule 3 at 2 inout ethertype any from any to any accept;
  })");
  EXPECT_TRUE(Passes(Direction::kOut, Udp(true, 1, 2)));
  EXPECT_EQ(Send(Direction::kOut, Udp(true, 1, 2, /*v6=*/true)).second, DropReason::kRule);
}

TEST_F(StatefulFilterTest, ParsesOncePerPacketWhenTheWorkerGivesScratch) {
  std::vector<uint8_t> query = Udp(true, 40001, 53);
  PacketScratch scratch{};
  FilterBatch b{};
  b.dir = Direction::kOut;
  b.count = 1;
  b.now_ns = now_;
  b.pkts[0] = PacketRef{query.data(), static_cast<uint32_t>(query.size())};
  b.scratch[0] = &scratch;
  filter_.Process(b);
  EXPECT_EQ(b.verdict[0], Verdict::kPass);
  EXPECT_EQ(scratch.tag, kParsedTag) << "the parse stays for later slots and chains";
  // The reply's IN pass on another filter would read the same scratch: a stale tag from another
  // packet must not be trusted, which is why the worker clears tags per burst.
  std::vector<uint8_t> reply = Udp(false, 53, 40001);
  scratch.tag = 0;
  b.dir = Direction::kIn;
  b.pkts[0] = PacketRef{reply.data(), static_cast<uint32_t>(reply.size())};
  filter_.Process(b);
  EXPECT_EQ(b.verdict[0], Verdict::kPass);
  EXPECT_EQ(OnlyFlow().state, ConnState::kMultiple);
}

// A packet between two ports passes the sender's filter (OUT) and the receiver's (IN) with one
// scratch: its key and hash are computed once when the tables share a hash seed, and a table
// with another seed hashes again rather than trusting the first hash.
TEST_F(StatefulFilterTest, TwoFiltersShareOnePacketsKeyAndHash) {
  RuleFile f;
  ASSERT_TRUE(ParseRuleFile(kPolicy, &f).ok());
  std::shared_ptr<const RuleTable> t;
  ASSERT_TRUE(RuleTable::Compile(f, nullptr, 1, &t).ok());
  for (uint64_t receiver_seed : {uint64_t{0xabcdef}, uint64_t{0x777}}) {
    StatefulFilter sender(1, &log_, FirewallOptions{}, 0x1000000000000000ull, uint64_t{0xabcdef});
    StatefulFilter receiver(2, &log_, FirewallOptions{}, 0x2000000000000000ull, receiver_seed);
    sender.SetTable(t);
    receiver.SetTable(t);
    // A burst of DNS queries, then its replies, each packet through both filters.
    for (bool query : {true, false}) {
      std::vector<std::vector<uint8_t>> frames;
      for (uint16_t port = 40000; port < 40000 + kBurstSize; port++) {
        frames.push_back(query ? Udp(true, port, 53) : Udp(false, 53, port));
      }
      std::vector<PacketScratch> scratch(kBurstSize);
      FilterBatch b{};
      b.count = kBurstSize;
      b.now_ns = now_;
      for (uint16_t i = 0; i < kBurstSize; i++) {
        b.pkts[i] = PacketRef{frames[i].data(), static_cast<uint32_t>(frames[i].size())};
        b.scratch[i] = &scratch[i];
      }
      // The query leaves the sender's VM (OUT there) and reaches the receiver's (IN, here also
      // matched as an `out` rule's reply would be: both tables admit port 53 one way).
      b.dir = query ? Direction::kOut : Direction::kIn;
      sender.Process(b);
      for (uint16_t i = 0; i < kBurstSize; i++) ASSERT_EQ(b.verdict[i], Verdict::kPass) << i;
      b.dir = query ? Direction::kOut : Direction::kIn;
      receiver.Process(b);
      for (uint16_t i = 0; i < kBurstSize; i++) ASSERT_EQ(b.verdict[i], Verdict::kPass) << i;
    }
    std::vector<FlowInfo> flows;
    sender.Flows(0, 100, FlowSelector{}, now_, &flows);
    EXPECT_EQ(flows.size(), kBurstSize);
    for (const FlowInfo& fl : flows) EXPECT_EQ(fl.state, ConnState::kMultiple) << "the reply found the entry";
    flows.clear();
    receiver.Flows(0, 100, FlowSelector{}, now_, &flows);
    EXPECT_EQ(flows.size(), kBurstSize);
    for (const FlowInfo& fl : flows) {
      EXPECT_EQ(fl.state, ConnState::kMultiple) << "seed " << receiver_seed << ": found with its own hash";
    }
  }
}

// A filter with an owner, as the switch gives it: a worker thread runs bursts (and sleeps now
// and then, as an idle worker does) while the control side pages through flows, reads the
// counters, expires and exports, all through the owner. Nothing is lost or counted twice.
TEST_F(StatefulFilterTest, ControlCallsRunBesideTheOwnersBursts) {
  Owner owner;
  StatefulFilter f(9, &log_, FirewallOptions{}, 0x4242000000000000ull);
  f.set_owner(&owner);
  RuleFile file;
  ASSERT_TRUE(ParseRuleFile(kPolicy, &file).ok());
  std::shared_ptr<const RuleTable> t;
  ASSERT_TRUE(RuleTable::Compile(file, nullptr, 1, &t).ok());
  f.SetTable(t);
  std::vector<std::vector<uint8_t>> frames;
  for (uint16_t port = 41000; port < 41000 + kBurstSize; port++) frames.push_back(Udp(true, port, 53));
  constexpr int kBursts = 3000;
  std::atomic<bool> done{false};
  std::atomic<int> dropped{0};
  std::thread worker([&] {
    owner.Back();
    std::vector<PacketScratch> scratch(kBurstSize);
    for (int n = 0; n < kBursts; n++) {
      owner.Serve();
      FilterBatch b{};
      b.dir = Direction::kOut;
      b.count = kBurstSize;
      b.now_ns = now_;
      for (uint16_t i = 0; i < kBurstSize; i++) {
        b.pkts[i] = PacketRef{frames[i].data(), static_cast<uint32_t>(frames[i].size())};
        scratch[i].tag = 0;
        b.scratch[i] = &scratch[i];
      }
      f.Process(b);
      for (uint16_t i = 0; i < kBurstSize; i++) dropped += b.verdict[i] != Verdict::kPass;
      if (n % 256 == 255) {
        owner.Away();
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        owner.Back();
      }
    }
    owner.Away();
    done = true;
  });
  int calls = 0;
  while (!done.load()) {
    std::vector<FlowInfo> flows;
    for (uint32_t c = 0; c != ConnTable::kNil;) c = f.Flows(c, 8, FlowSelector{}, now_, &flows);
    EXPECT_LE(flows.size(), kBurstSize);
    EXPECT_EQ(f.rule_stats().size(), t->rules().size());
    EXPECT_EQ(f.Expire(now_, 1024), 0u);
    std::vector<Conn> exported;
    for (uint32_t c = 0; c != ConnTable::kNil;) c = f.ExportConns(c, 8, now_, &exported);
    EXPECT_LE(exported.size(), kBurstSize);
    calls++;
  }
  worker.join();
  EXPECT_EQ(dropped.load(), 0);
  EXPECT_GT(calls, 0);
  std::printf("%d rounds of control calls beside %d bursts\n", calls, kBursts);
  std::vector<FlowInfo> flows;
  f.Flows(0, 100, FlowSelector{}, now_, &flows);
  ASSERT_EQ(flows.size(), kBurstSize);
  for (const FlowInfo& fl : flows) EXPECT_EQ(fl.pkts[0], uint64_t{kBursts}) << fl.orig.sport;
  const RuleStats dns = f.rule_stats()[2];  // rule 102 at 3
  EXPECT_EQ(dns.pkts[1], uint64_t{kBursts} * kBurstSize) << "every packet counted once, out";
  EXPECT_EQ(dns.evals, uint64_t{kBurstSize}) << "the first of each flow met the rules";
}

TEST_F(StatefulFilterTest, ExportedConnectionsCarryOnInAnotherFilter) {
  // Port 443 is strict: only an imported entry can let a mid-stream segment through.
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kSyn, 1000, 0, 443)));
  ASSERT_TRUE(Passes(Direction::kIn, In(tcp::kSyn | tcp::kAck, 5000, 1001, 443)));
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kAck, 1001, 5001, 443)));
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40001, 53)));
  now_ += 10 * kSecond;
  std::vector<Conn> exported;
  uint32_t cursor = 0;
  while (cursor != ConnTable::kNil) cursor = filter_.ExportConns(cursor, 1, now_, &exported);
  ASSERT_EQ(exported.size(), 2u);
  const FlowInfo before = [&] {
    std::vector<FlowInfo> f;
    filter_.Flows(0, 10, FlowSelector{}, now_, &f);
    return f[0].orig.proto == kProtoTcp ? f[0] : f[1];
  }();

  // Another switch: its own clock, the same rules, an empty table.
  StatefulFilter dest(8, &log_, FirewallOptions{}, 0x9999000000000000ull);
  RuleFile f;
  ASSERT_TRUE(ParseRuleFile(kPolicy, &f).ok());
  std::shared_ptr<const RuleTable> t;
  ASSERT_TRUE(RuleTable::Compile(f, nullptr, 41, &t).ok());
  dest.SetTable(t);
  const uint64_t dest_now = 77 * kSecond;
  EXPECT_EQ(dest.ImportConns(exported, dest_now), 2u);

  std::vector<FlowInfo> flows;
  dest.Flows(0, 10, FlowSelector{}, dest_now, &flows);
  ASSERT_EQ(flows.size(), 2u);
  const FlowInfo& after = flows[0].orig.proto == kProtoTcp ? flows[0] : flows[1];
  EXPECT_EQ(after.flow_id, before.flow_id) << "the flow keeps its id";
  EXPECT_EQ(after.state, ConnState::kEstablished);
  EXPECT_EQ(after.pkts[0], before.pkts[0]) << "counters continue";
  EXPECT_EQ(after.expires_in_s, before.expires_in_s) << "the time it had left";

  FilterBatch b{};
  b.dir = Direction::kIn;
  b.count = 1;
  b.now_ns = dest_now;
  std::vector<uint8_t> data = In(tcp::kAck | tcp::kPsh, 5001, 1001, 443, {1, 2, 3});
  b.pkts[0] = PacketRef{data.data(), static_cast<uint32_t>(data.size())};
  dest.Process(b);
  EXPECT_EQ(b.verdict[0], Verdict::kPass) << "mid-stream under a strict rule: only the entry admits it";

  // A destination whose rules no longer admit DNS refuses that entry.
  StatefulFilter strict_dest(9, &log_, FirewallOptions{}, 1);
  ASSERT_TRUE(ParseRuleFile("ruleset x { rule 1 out protocol tcp from any to any port 443 accept; }", &f).ok());
  ASSERT_TRUE(RuleTable::Compile(f, nullptr, 1, &t).ok());
  strict_dest.SetTable(t);
  EXPECT_EQ(strict_dest.ImportConns(exported, dest_now), 1u);
  std::vector<FlowInfo> kept;
  strict_dest.Flows(0, 10, FlowSelector{}, dest_now, &kept);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].rule_id, 1u) << "re-checked: it now belongs to the destination's rule";
}

TEST_F(StatefulFilterTest, ImportedEntriesAreCheckedNotTrusted) {
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kSyn, 1000, 0, 443)));
  ASSERT_TRUE(Passes(Direction::kIn, In(tcp::kSyn | tcp::kAck, 5000, 1001, 443)));
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kAck, 1001, 5001, 443)));
  std::vector<Conn> good;
  uint32_t cursor = 0;
  while (cursor != ConnTable::kNil) cursor = filter_.ExportConns(cursor, 16, now_, &good);
  ASSERT_EQ(good.size(), 1u);

  RuleFile f;
  ASSERT_TRUE(ParseRuleFile(kPolicy, &f).ok());
  std::shared_ptr<const RuleTable> t;
  ASSERT_TRUE(RuleTable::Compile(f, nullptr, 1, &t).ok());
  auto import = [&](const Conn& c, FirewallOptions options = FirewallOptions{}) {
    StatefulFilter dest(8, &log_, options, 3);
    dest.SetTable(t);
    return dest.ImportConns({c}, now_);
  };
  EXPECT_EQ(import(good[0]), 1u);
  std::vector<std::pair<const char*, Conn>> bad;
  auto variant = [&](const char* what, auto change) {
    Conn c = good[0];
    change(c);
    bad.emplace_back(what, c);
  };
  variant("the key's ends swapped", [](Conn& c) { std::swap(c.lo, c.hi); std::swap(c.lo_port, c.hi_port); });
  variant("the direction flag flipped", [](Conn& c) { c.flags ^= kConnOrigIsLo; });
  variant("a UDP state on TCP", [](Conn& c) { c.state = ConnState::kMultiple; });
  variant("a TCP state on UDP", [](Conn& c) { c.proto = kProtoUdp; });
  variant("a window scale of 15", [](Conn& c) { c.peer[1].scale = 15; });
  variant("an unknown flag", [](Conn& c) { c.flags |= 0x80; });
  variant("an unknown close reason", [](Conn& c) { c.reason = static_cast<CloseReason>(99); });
  variant("IPv6 addresses without the flag", [](Conn& c) { c.hi.b[0] = 0x20; });
  for (const auto& [what, c] : bad) EXPECT_EQ(import(c), 0u) << what;

  // The sender's `recheck off` does not let an entry skip the destination's rules.
  FirewallOptions no_recheck;
  no_recheck.recheck = false;
  ASSERT_TRUE(ParseRuleFile("ruleset x { rule 1 out protocol udp from any to any port 53 accept; }", &f).ok());
  ASSERT_TRUE(RuleTable::Compile(f, nullptr, 2, &t).ok());
  EXPECT_EQ(import(good[0], no_recheck), 0u);

  // Without rules nothing is admitted; a lifetime beyond the timeout is cut to it.
  StatefulFilter bare(8, &log_, FirewallOptions{}, 3);
  EXPECT_EQ(bare.ImportConns(good, now_), 0u);
  ASSERT_TRUE(ParseRuleFile(kPolicy, &f).ok());
  ASSERT_TRUE(RuleTable::Compile(f, nullptr, 3, &t).ok());
  StatefulFilter dest(8, &log_, FirewallOptions{}, 3);
  dest.SetTable(t);
  Conn forever = good[0];
  forever.expires_s = 4000000000u;
  ASSERT_EQ(dest.ImportConns({forever}, now_), 1u);
  std::vector<FlowInfo> flows;
  dest.Flows(0, 10, FlowSelector{}, now_, &flows);
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].expires_in_s, FirewallOptions{}.timeouts.For(kProtoTcp, ConnState::kEstablished));
}

// All flows of a filter by flow id, for comparing a source and a destination.
std::map<uint64_t, FlowInfo> FlowsById(StatefulFilter& f, uint64_t now) {
  std::vector<FlowInfo> flows;
  f.Flows(0, 1000, FlowSelector{}, now, &flows);
  std::map<uint64_t, FlowInfo> out;
  for (const FlowInfo& fl : flows) out[fl.flow_id] = fl;
  return out;
}

TEST_F(StatefulFilterTest, DeltaCarriesWhatChangedSinceTheBulkCopy) {
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kSyn, 1000, 0, 443)));
  ASSERT_TRUE(Passes(Direction::kIn, In(tcp::kSyn | tcp::kAck, 5000, 1001, 443)));
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kAck, 1001, 5001, 443)));
  for (uint16_t port : {40001, 40002, 40003}) ASSERT_TRUE(Passes(Direction::kOut, Udp(true, port, 53)));

  // Bulk copy while the VM runs: tracking starts before the walk.
  filter_.StartTracking();
  std::vector<Conn> bulk;
  uint32_t cursor = 0;
  while (cursor != ConnTable::kNil) cursor = filter_.ExportConns(cursor, 2, now_, &bulk);
  ASSERT_EQ(bulk.size(), 4u);
  StatefulFilter dest(8, &log_, FirewallOptions{}, 0x9999000000000000ull);
  RuleFile f;
  ASSERT_TRUE(ParseRuleFile(kPolicy, &f).ok());
  std::shared_ptr<const RuleTable> t;
  ASSERT_TRUE(RuleTable::Compile(f, nullptr, 41, &t).ok());
  dest.SetTable(t);
  ASSERT_EQ(dest.ImportConns(bulk, now_), 4u);

  // Meanwhile: the TCP connection carries data, a new flow opens, one ends, one is re-created,
  // one is left alone.
  now_ += 2 * kSecond;
  ASSERT_TRUE(Passes(Direction::kOut, Out(tcp::kAck | tcp::kPsh, 1001, 5001, 443, {1, 2, 3, 4})));
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40004, 53)));
  FlowSelector gone;
  gone.sport = 40002;
  ASSERT_EQ(filter_.Flush(gone, now_), 1u);
  FlowSelector again;
  again.sport = 40003;
  ASSERT_EQ(filter_.Flush(again, now_), 1u);
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40003, 53)));

  std::vector<Conn> changed;
  std::vector<ConnKey> removed;
  filter_.TakeDelta(now_, &changed, &removed);
  std::set<uint16_t> changed_ports;
  for (const Conn& c : changed) changed_ports.insert(c.proto == kProtoTcp ? 443 : c.lo_port);
  EXPECT_EQ(changed_ports, (std::set<uint16_t>{443, 40003, 40004})) << "40001 did not change";
  EXPECT_EQ(removed.size(), 2u) << "40002 ended, 40003's old entry ended";

  EXPECT_EQ(dest.RemoveConns(removed), 2u);
  EXPECT_EQ(dest.ImportConns(changed, now_), 3u);
  const auto src_flows = FlowsById(filter_, now_);
  const auto dst_flows = FlowsById(dest, now_);
  ASSERT_EQ(dst_flows.size(), src_flows.size());
  for (const auto& [id, s] : src_flows) {
    ASSERT_TRUE(dst_flows.count(id)) << "flow " << id;
    const FlowInfo& d = dst_flows.at(id);
    EXPECT_EQ(d.pkts[0], s.pkts[0]);
    EXPECT_EQ(d.bytes[0], s.bytes[0]);
    EXPECT_EQ(d.state, s.state);
    EXPECT_EQ(d.expires_in_s, s.expires_in_s);
  }

  // The next round starts empty; the destination's tables win over a changed entry they no
  // longer admit (and the bulk copy of it goes too).
  changed.clear();
  removed.clear();
  filter_.TakeDelta(now_, &changed, &removed);
  EXPECT_TRUE(changed.empty());
  EXPECT_TRUE(removed.empty());
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40001, 53)));
  filter_.TakeDelta(now_, &changed, &removed);
  ASSERT_EQ(changed.size(), 1u);
  ASSERT_TRUE(ParseRuleFile("ruleset x { rule 1 out protocol tcp from any to any port 443 accept; }", &f).ok());
  ASSERT_TRUE(RuleTable::Compile(f, nullptr, 42, &t).ok());
  dest.SetTable(t);
  EXPECT_EQ(dest.ImportConns(changed, now_), 0u);
  EXPECT_EQ(FlowsById(dest, now_).size(), src_flows.size() - 1);

  // Stopped: nothing is remembered any more.
  filter_.StopTracking();
  ASSERT_TRUE(Passes(Direction::kOut, Udp(true, 40005, 53)));
  changed.clear();
  filter_.TakeDelta(now_, &changed, &removed);
  EXPECT_TRUE(changed.empty());
}

// More removals between two deltas than the room for their keys: the rest wait in their slots
// (nothing allocated on the owner) and the delta lists every one.
TEST_F(StatefulFilterTest, DeltaListsEveryRemovalBeyondTheRoomForKeys) {
  constexpr uint16_t kFlows = 5000;
  for (uint16_t port = 1; port <= kFlows; port++) ASSERT_TRUE(Passes(Direction::kOut, Udp(true, port, 53)));
  filter_.StartTracking();
  ASSERT_EQ(filter_.Flush(FlowSelector{}, now_), kFlows);
  std::vector<Conn> changed;
  std::vector<ConnKey> removed;
  filter_.TakeDelta(now_, &changed, &removed);
  EXPECT_TRUE(changed.empty());
  std::set<uint16_t> ports;
  for (const ConnKey& k : removed) ports.insert(k.lo_port == 53 ? k.hi_port : k.lo_port);
  EXPECT_EQ(removed.size(), kFlows);
  EXPECT_EQ(ports.size(), kFlows);
  for (uint16_t port = 1; port <= kFlows; port++) ASSERT_TRUE(Passes(Direction::kOut, Udp(true, port, 53)));
  EXPECT_EQ(filter_.flow_count(), kFlows);
  filter_.StopTracking();
}

TEST_F(StatefulFilterTest, FlowsWalkInPagesAndFlushSelectively) {
  Handshake();
  for (uint16_t p = 1; p <= 10; p++) ASSERT_TRUE(Passes(Direction::kOut, Udp(true, p, 53)));
  std::vector<FlowInfo> all;
  uint32_t cursor = 0;
  int pages = 0;
  while (cursor != ConnTable::kNil) {
    cursor = filter_.Flows(cursor, 3, FlowSelector{}, now_, &all);
    pages++;
  }
  EXPECT_EQ(all.size(), 11u);
  EXPECT_GE(pages, 4);
  FlowSelector tcp_only;
  tcp_only.proto = kProtoTcp;
  std::vector<FlowInfo> tcp;
  filter_.Flows(0, 100, tcp_only, now_, &tcp);
  ASSERT_EQ(tcp.size(), 1u);
  FlowSelector low;
  low.proto = kProtoUdp;
  low.sport = 3;
  EXPECT_EQ(filter_.Flush(low, now_), 1u);
  EXPECT_EQ(filter_.flow_count(), 10u);
  EXPECT_EQ(filter_.Flush(FlowSelector{}, now_), 10u);
  EXPECT_EQ(filter_.flow_count(), 0u);
}

}  // namespace
}  // namespace palisade::fw
