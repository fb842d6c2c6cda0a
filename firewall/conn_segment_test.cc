// A connection table kept in a segment file reads back whole in a later "process" (a fresh
// filter), with the time its entries have left; files it cannot trust are refused with why.
#include "firewall/conn_segment.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "firewall/conn_fixture.h"
#include "firewall/packet_builder.h"
#include "firewall/rule_table.h"
#include "firewall/rule_text.h"
#include "firewall/stateful_filter.h"

namespace palisade::fw {
namespace {

constexpr uint64_t kSec = 1000000000ull;
constexpr uint32_t kHeaderBytes = 4096;

class ConnSegmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/palisade-segment-XXXXXX";
    dir_ = mkdtemp(tmpl);
    path_ = dir_ + "/port-vm.conns";
    RuleFile f;
    ASSERT_TRUE(ParseRuleFile("ruleset r { rule 1 out protocol udp from any to any port 53 accept; }", &f).ok());
    ASSERT_TRUE(RuleTable::Compile(f, nullptr, 1, &table_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A filter keeping its entries in path_, holding n UDP connections with 50 s left at now.
  std::unique_ptr<StatefulFilter> Filled(uint32_t n, uint64_t now_ns, FirewallOptions o = {}) {
    std::unique_ptr<ConnSegment> seg;
    EXPECT_TRUE(ConnSegment::Create(path_, o.conn_limit, "boot-a", &seg).ok());
    auto f = std::make_unique<StatefulFilter>(1, &log_, o, 7, std::nullopt, std::move(seg));
    f->SetTable(table_);
    EXPECT_TRUE(f->CommitAhead(now_ns, /*boot_ns=*/500 * kSec).ok());
    EXPECT_EQ(f->ImportConns(UdpConns(n, 50), now_ns), n);
    return f;
  }
  void Patch(size_t offset, uint32_t value) {
    const int fd = open(path_.c_str(), O_WRONLY);
    ASSERT_EQ(pwrite(fd, &value, sizeof(value), static_cast<off_t>(offset)), 4);
    close(fd);
  }

  std::string dir_, path_;
  PacketLog log_{1, 0};
  std::shared_ptr<const RuleTable> table_;
};

TEST_F(ConnSegmentTest, ReadsBackEveryLiveEntryWithItsTimeLeft) {
  auto f = Filled(50000, 1000 * kSec);  // beyond the first commit: CommitAhead's work
  ASSERT_TRUE(f->CommitAhead(1000 * kSec, 500 * kSec).ok());
  // A few entries end; the "process" dies 30 s of boot clock after its last stamp.
  FlowSelector one;
  one.has_src = true;
  one.src = IpPrefix::Host(IpAddr::V4(0x0a000000u));
  EXPECT_EQ(f->Flush(one, 1000 * kSec), 1u);
  std::vector<Conn> back;
  ASSERT_TRUE(ReadSegment(path_, "boot-a", 530 * kSec, &back).ok());
  ASSERT_EQ(back.size(), 49999u);
  for (const Conn& c : back) ASSERT_EQ(c.expires_s, 20u) << "50 s left at the stamp, 30 s ago";

  // A new filter (the restarted process, with its own clock) takes them all, re-checked.
  StatefulFilter g(2, &log_, FirewallOptions{}, 9);
  g.SetTable(table_);
  EXPECT_EQ(g.ImportConns(back, 5 * kSec), 49999u);
  // Past the time left, nothing.
  back.clear();
  ASSERT_TRUE(ReadSegment(path_, "boot-a", 700 * kSec, &back).ok());
  EXPECT_TRUE(back.empty());
}

TEST_F(ConnSegmentTest, RefusesWhatItCannotTrust) {
  auto f = Filled(10, 1000 * kSec);
  std::vector<Conn> back;
  Status s = ReadSegment(path_, "boot-b", 500 * kSec, &back);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("before the host last booted"), std::string::npos) << s.message();

  Patch(8, kSegmentVersion + 1);  // the version field follows the magic
  s = ReadSegment(path_, "boot-a", 500 * kSec, &back);
  EXPECT_NE(s.message().find("layout version " + std::to_string(kSegmentVersion + 1)), std::string::npos)
      << s.message();
  Patch(8, kSegmentVersion);

  ASSERT_EQ(truncate(path_.c_str(), kHeaderBytes + 5 * sizeof(Conn)), 0);
  s = ReadSegment(path_, "boot-a", 500 * kSec, &back);
  EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.message();

  Patch(0, 0);
  s = ReadSegment(path_, "boot-a", 500 * kSec, &back);
  EXPECT_NE(s.message().find("not a connection segment"), std::string::npos) << s.message();
  ASSERT_EQ(truncate(path_.c_str(), 100), 0);
  EXPECT_FALSE(ReadSegment(path_, "boot-a", 500 * kSec, &back).ok());
  EXPECT_TRUE(back.empty()) << "never a half-read table";
}

// An idle port's table backs 1,024 slots ahead, not 16,384. A burst beyond them is refused as
// state-headroom (not state-limit: the table is far from its limit) until the next tick, which
// backs the whole 16,384 for a port that ran short.
TEST_F(ConnSegmentTest, TheHeadroomFollowsNeedAndABurstBeyondItIsCountedApart) {
  std::unique_ptr<ConnSegment> seg;
  ASSERT_TRUE(ConnSegment::Create(path_, ConnTable::SlotsFor(100000), "boot-a", &seg).ok());
  StatefulFilter f(1, &log_, FirewallOptions{}, 7, std::nullopt, std::move(seg));
  f.SetTable(table_);
  ASSERT_TRUE(f.CommitAhead(1000 * kSec, 500 * kSec).ok());
  EXPECT_EQ(f.memory_bytes(), ConnTable::kMinAhead * sizeof(ConnEntry) + 4096 * sizeof(uint32_t))
      << "an idle port: 1,024 slots and 4,096 buckets";
  auto open = [&](uint32_t first, uint32_t n) {
    std::map<DropReason, uint32_t> out;
    for (uint32_t i = first; i < first + n; i++) {
      FrameSpec s;
      s.proto = kProtoUdp;
      s.src = IpAddr::V4(0x0a000000u + i);
      s.dport = 53;
      const std::vector<uint8_t> frame = BuildFrame(s);
      FilterBatch b{};
      b.dir = Direction::kOut;
      b.now_ns = 1000 * kSec;
      b.count = 1;
      b.pkts[0] = PacketRef{frame.data(), static_cast<uint32_t>(frame.size())};
      b.verdict[0] = Verdict::kPass;
      f.Process(b);
      out[b.verdict[0] == Verdict::kPass ? DropReason::kNone : b.reason[0]]++;
    }
    return out;
  };
  std::map<DropReason, uint32_t> got = open(0, 1500);
  EXPECT_EQ(got[DropReason::kNone], ConnTable::kMinAhead);
  EXPECT_EQ(got[DropReason::kStateHeadroom], 1500 - ConnTable::kMinAhead);
  EXPECT_EQ(got[DropReason::kStateLimit], 0u);
  ASSERT_TRUE(f.CommitAhead(1000 * kSec, 500 * kSec).ok());  // the next tick
  got = open(ConnTable::kMinAhead, 1500 - ConnTable::kMinAhead);
  EXPECT_EQ(got[DropReason::kNone], 1500 - ConnTable::kMinAhead) << "the refused ones open now";
  got = open(1500, ConnTable::kMaxAhead - 1500);
  EXPECT_EQ(got[DropReason::kNone], ConnTable::kMaxAhead - 1500) << "16,384 backed after running short";
}

// IPv6 entries (two slots each) read back whole; so does a file of the previous layout
// (version 1, 128-byte Conns), as a daemon upgraded in place finds it.
TEST_F(ConnSegmentTest, ReadsBackIPv6EntriesAndVersion1Files) {
  std::vector<Conn> conns = UdpConns(1000, 50);
  for (size_t i = 0; i < conns.size(); i += 2) {
    conns[i].lo = IpAddr::FromValue((u128{0x20010db8} << 96) + conns[i].lo.v4());
    conns[i].hi = IpAddr::FromValue((u128{0x20010db8} << 96) + 0xc0a80001u);
    conns[i].flags |= kConnV6;
  }
  std::unique_ptr<ConnSegment> seg;
  ASSERT_TRUE(ConnSegment::Create(path_, ConnTable::SlotsFor(2000), "boot-a", &seg).ok());
  FirewallOptions o;
  o.conn_limit = 2000;
  StatefulFilter f(1, &log_, o, 7, std::nullopt, std::move(seg));
  f.SetTable(table_);
  ASSERT_TRUE(f.CommitAhead(1000 * kSec, 500 * kSec).ok());
  ASSERT_EQ(f.ImportConns(conns, 1000 * kSec), 1000u);
  auto check = [&](const std::vector<Conn>& back) {
    ASSERT_EQ(back.size(), conns.size());
    std::map<uint64_t, const Conn*> by_id;
    for (const Conn& c : back) by_id[c.flow_id] = &c;
    for (const Conn& c : conns) {
      const Conn* b = by_id.at(c.flow_id);
      EXPECT_EQ(b->key(), c.key());
      EXPECT_EQ(b->flags, c.flags);
      EXPECT_EQ(b->expires_s, 50u);
      EXPECT_EQ(b->pkts[1], 3u);
    }
  };
  std::vector<Conn> back;
  ASSERT_TRUE(ReadSegment(path_, "boot-a", 500 * kSec, &back).ok());
  check(back);

  // The same connections in a version 1 file, deadlines on the stamped clock (1000 s).
  char header[kHeaderBytes];
  const int fd = open(path_.c_str(), O_RDONLY);
  ASSERT_EQ(pread(fd, header, sizeof header, 0), static_cast<ssize_t>(sizeof header));
  close(fd);
  const uint32_t v1[4] = {1, sizeof(Conn), 1000, 1000};  // version, entry size, capacity, used
  std::memcpy(header + 8, v1, sizeof v1);
  const std::string old = dir_ + "/port-old.conns";
  FILE* out = fopen(old.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  fwrite(header, 1, sizeof header, out);
  for (Conn c : conns) {
    c.expires_s = 1050;
    fwrite(&c, sizeof c, 1, out);
  }
  fclose(out);
  back.clear();
  ASSERT_TRUE(ReadSegment(old, "boot-a", 500 * kSec, &back).ok());
  check(back);
}

TEST_F(ConnSegmentTest, EntriesBeyondWhatIsBackedAreRefusedNotFaulted) {
  FirewallOptions o;
  o.conn_limit = 100000;
  std::unique_ptr<ConnSegment> seg;
  ASSERT_TRUE(ConnSegment::Create(path_, o.conn_limit, "boot-a", &seg).ok());
  StatefulFilter f(1, &log_, o, 7, std::nullopt, std::move(seg));
  f.SetTable(table_);
  // Without a control tick, what was committed at creation is all the datapath may fill.
  std::vector<Conn> many = UdpConns(40000, 100);
  EXPECT_EQ(f.ImportConns(many, kSec), 40000u) << "an import commits what it needs itself";
  struct stat st {};
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_LT(static_cast<size_t>(st.st_blocks) * 512, kHeaderBytes + 100000 * sizeof(Conn))
      << "sparse: pages for what is used, not for the limit";
  // A higher limit grows the file; a removed port's file goes.
  o.conn_limit = 200000;
  ASSERT_TRUE(f.SetOptions(o).ok());
  ASSERT_EQ(stat(path_.c_str(), &st), 0);
  EXPECT_GE(static_cast<size_t>(st.st_size), kHeaderBytes + 200000 * sizeof(Conn));
  f.DiscardSegment();
  EXPECT_NE(access(path_.c_str(), F_OK), 0);
  EXPECT_EQ(f.flow_count(), 40000u) << "the memory stays while the filter lives";
}

}  // namespace
}  // namespace palisade::fw
