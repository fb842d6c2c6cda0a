#include "firewall/conn.h"

#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "firewall/conn_fixture.h"
#include "firewall/conn_table.h"

namespace palisade::fw {
namespace {

TEST(ConnKeyTest, BothDirectionsShareOneKey) {
  Tuple out{*IpAddr::Parse("10.0.0.2"), *IpAddr::Parse("10.0.0.1"), 40000, 22, 6};
  Tuple back{out.dst, out.src, out.dport, out.sport, 6};
  bool lo_out, lo_back;
  EXPECT_EQ(MakeKey(out, &lo_out), MakeKey(back, &lo_back));
  EXPECT_NE(lo_out, lo_back);
}

// The bucket is the hash's low bits: they must spread sequential addresses and ports as well
// as random keys would (about 38.6% of buckets empty for as many keys as buckets).
TEST(ConnKeyTest, HashSpreadsSequentialKeys) {
  constexpr uint32_t kBuckets = 1 << 16;
  for (int pattern = 0; pattern < 3; pattern++) {
    std::vector<uint32_t> load(kBuckets);
    for (uint32_t i = 0; i < kBuckets; i++) {
      Tuple t;
      t.proto = 6;
      if (pattern == 0) t = Tuple{IpAddr::V4(0x0a000000u + i), IpAddr::V4(0xc0a80001u), 40000, 53, 17};
      if (pattern == 1) t = Tuple{IpAddr::V4(0x0a000001u), IpAddr::V4(0xc0a80001u), static_cast<uint16_t>(i), 443, 6};
      if (pattern == 2) t = Tuple{IpAddr::FromValue((u128{0x20010db8} << 96) + i), IpAddr::V4(1), 1, 2, 6};
      bool lo;
      load[HashKey(MakeKey(t, &lo), 0x1234567) & (kBuckets - 1)]++;
    }
    uint32_t empty = 0, longest = 0;
    for (uint32_t l : load) {
      empty += l == 0;
      longest = std::max(longest, l);
    }
    const double share = static_cast<double>(empty) / kBuckets;
    EXPECT_GT(share, 0.33) << "pattern " << pattern;
    EXPECT_LT(share, 0.44) << "pattern " << pattern;
    EXPECT_LE(longest, 12u) << "pattern " << pattern;
  }
}

// The index grows with the table, a slice at a time: every entry is found at every step,
// inserts and removals meanwhile land in whichever index holds their bucket, and the memory
// the table reports includes both indexes while they coexist.
TEST(ConnTableTest, TheIndexGrowsWithTheTableAndFindsEveryEntryMeanwhile) {
  ConnTable t(1000000, 7);
  EXPECT_EQ(t.buckets(), 4096u) << "an empty table's index is small, whatever its limit";
  const std::vector<Conn> conns = UdpConns(24000, 50);
  for (size_t i = 0; i < 20000; i++) ASSERT_NE(t.Insert(conns[i].key()), ConnTable::kNil);
  t.Remove(t.Find(conns[5].key()));
  EXPECT_EQ(t.IndexWanted(2048), 0u);
  const uint32_t wanted = t.IndexWanted(t.size());
  EXPECT_EQ(wanted, 262144u) << "eight buckets an entry, a power of two";
  const size_t before = t.memory_bytes();
  std::vector<uint32_t> index = ConnTable::Index(wanted);
  t.GrowIndex(&index);
  EXPECT_TRUE(index.empty()) << "taken";
  EXPECT_TRUE(t.rebuilding());
  EXPECT_EQ(t.IndexWanted(100000), 0u) << "not while a rebuild runs";
  EXPECT_EQ(t.memory_bytes(), before + 4 * 262144);
  std::vector<bool> in(conns.size(), false);
  for (size_t i = 0; i < 20000; i++) in[i] = i != 5;
  size_t steps = 0;
  for (bool done = false; !done; steps++) {
    for (size_t i = 0; i < conns.size(); i++) {
      ASSERT_EQ(t.Find(conns[i].key()) != ConnTable::kNil, in[i]) << i << " at step " << steps;
    }
    // Meanwhile: one entry in, one out, each step.
    const size_t add = 20000 + steps, drop = 10 + steps;
    ASSERT_NE(t.Insert(conns[add].key()), ConnTable::kNil);
    in[add] = true;
    t.Remove(t.Find(conns[drop].key()));
    in[drop] = false;
    done = t.RebuildStep(1000);
  }
  EXPECT_EQ(steps, 20u) << "20,000 entries, whole buckets of at least 1,000 a step";
  std::vector<uint32_t> old;
  t.TakeOldIndex(&old);
  EXPECT_EQ(old.size(), 4096u) << "the old index comes back, to be freed by the caller";
  EXPECT_EQ(t.buckets(), 262144u);
  for (size_t i = 0; i < conns.size(); i++) EXPECT_EQ(t.Find(conns[i].key()) != ConnTable::kNil, in[i]) << i;
  for (size_t i = 0; i < conns.size(); i++) {
    if (!in[i]) {
      ASSERT_NE(t.Insert(conns[i].key()), ConnTable::kNil);
    }
  }
  EXPECT_EQ(t.size(), 24000u);
  EXPECT_EQ(t.IndexWanted(t.size()), 0u);

  // Never beyond what the limit needs.
  ConnTable small(10000, 7);
  EXPECT_EQ(small.IndexWanted(50000), 16384u);
}

// IPv4 entries take one slot, IPv6 ones two; freed slots are reused by either kind, and an
// IPv6 key is never mistaken for the IPv4 key that shares its inline bytes.
// The slots backed ahead of the high-water mark: 1,024 for a table that does not grow, twice
// its growth between two calls for one that does (in powers of two, at most 16,384), never less
// than before.
TEST(ConnTableTest, TheHeadroomBackedAheadFollowsGrowth) {
  ConnTable t(100000, 0x5eed);
  EXPECT_EQ(t.CommitTarget(), ConnTable::kMinAhead);
  EXPECT_EQ(t.CommitTarget(), ConnTable::kMinAhead) << "nothing grew";
  const std::vector<Conn> conns = UdpConns(20000, 50);
  for (size_t i = 0; i < 3000; i++) ASSERT_NE(t.Insert(conns[i].key()), ConnTable::kNil);
  EXPECT_EQ(t.CommitTarget(), 3000u + 8192u) << "twice the 3,000 it grew by, to a power of two";
  EXPECT_EQ(t.CommitTarget(), 3000u + 8192u) << "kept while it does not grow";
  for (size_t i = 3000; i < 20000; i++) ASSERT_NE(t.Insert(conns[i].key()), ConnTable::kNil);
  EXPECT_EQ(t.CommitTarget(), 20000u + ConnTable::kMaxAhead) << "at most 16,384";
  EXPECT_EQ(t.CommitTarget(50000), 20000u + 50000u) << "an import's need comes first";
}

TEST(ConnTableTest, IPv6EntriesTakeTwoSlotsAndNeverMatchIPv4Ones) {
  ConnTable t(1000, 7);
  auto v4 = [](uint32_t i) {
    bool lo;
    return MakeKey(Tuple{IpAddr::V4(0x0a000000u + i), IpAddr::V4(0xc0a80001u), 1000, 53, 17}, &lo);
  };
  auto v6 = [](uint32_t i) {  // the same last 4 bytes as v4(i)'s addresses
    bool lo;
    return MakeKey(Tuple{IpAddr::FromValue((u128{0x20010db8} << 96) + 0x0a000000u + i),
                         IpAddr::FromValue((u128{0x20010db8} << 96) + 0xc0a80001u), 1000, 53, 17}, &lo);
  };
  std::vector<uint32_t> idx4, idx6;
  for (uint32_t i = 0; i < 100; i++) {
    idx4.push_back(t.Insert(v4(i)));
    ASSERT_EQ(t.Find(v6(i)), ConnTable::kNil) << "an IPv6 key with the IPv4 entry's inline bytes";
    idx6.push_back(t.Insert(v6(i)));
    ASSERT_NE(idx6.back(), ConnTable::kNil);
  }
  EXPECT_EQ(t.size(), 200u);
  EXPECT_EQ(t.used(), 300u);
  for (uint32_t i = 0; i < 100; i++) {
    ASSERT_EQ(t.Find(v4(i)), idx4[i]);
    ASSERT_EQ(t.Find(v6(i)), idx6[i]);
    EXPECT_EQ(t.Key(idx6[i]), v6(i));
    EXPECT_EQ(t.Key(idx4[i]), v4(i));
    EXPECT_EQ(t.Get(idx6[i]).lo, v6(i).lo);
  }
  // Freed IPv6 pairs serve IPv4 entries (two each) and IPv6 ones; IPv4 singles serve only IPv4.
  for (uint32_t i = 0; i < 50; i++) t.Remove(idx6[i]);
  for (uint32_t i = 0; i < 10; i++) t.Remove(idx4[i]);
  for (uint32_t i = 100; i < 130; i++) ASSERT_NE(t.Insert(v6(i)), ConnTable::kNil);
  for (uint32_t i = 100; i < 150; i++) ASSERT_NE(t.Insert(v4(i)), ConnTable::kNil);
  EXPECT_EQ(t.used(), 300u) << "every new entry took freed slots";
  ASSERT_NE(t.Insert(v6(200)), ConnTable::kNil);
  EXPECT_EQ(t.used(), 302u) << "no free pair left: a new one from the end";
  uint32_t seen = 0;
  for (uint32_t c = 0; c != ConnTable::kNil;) c = t.Walk(c, 7, [&](uint32_t, const ConnEntry&) { seen++; });
  EXPECT_EQ(seen, t.size()) << "the Walk sees connections only, not their address slots";
  // Over free slots a call stops after kWalkSkip of them, and the walk goes on from there.
  ConnTable sparse(100000, 7);
  const std::vector<Conn> conns = UdpConns(40000, 50);
  for (const Conn& c : conns) ASSERT_NE(sparse.Insert(c.key()), ConnTable::kNil);
  for (size_t i = 0; i + 1 < conns.size(); i++) sparse.Remove(sparse.Find(conns[i].key()));
  uint32_t calls = 0, found = 0;
  for (uint32_t c = 0; c != ConnTable::kNil; calls++) {
    c = sparse.Walk(c, 10, [&](uint32_t, const ConnEntry&) { found++; });
  }
  EXPECT_EQ(found, 1u);
  EXPECT_EQ(calls, 3u) << "40,000 slots, 16,394 a call at most";
  for (uint32_t i = 0; i < 150; i++) {
    EXPECT_EQ(t.Find(v4(i)) == ConnTable::kNil, i < 10) << i;
    EXPECT_EQ(t.Find(v6(i)) == ConnTable::kNil, i < 50 || i >= 130) << i;
  }
  // A grown index finds both kinds, while it fills and after.
  ASSERT_TRUE(t.set_limit(100000).ok());
  std::vector<uint32_t> index = ConnTable::Index(16384);
  t.GrowIndex(&index);
  for (bool done = false; !done;) {
    EXPECT_NE(t.Find(v6(120)), ConnTable::kNil);
    EXPECT_NE(t.Find(v4(140)), ConnTable::kNil);
    done = t.RebuildStep(16);
  }
  EXPECT_NE(t.Find(v6(120)), ConnTable::kNil);
  EXPECT_NE(t.Find(v4(140)), ConnTable::kNil);
}

}  // namespace

// While tracking, removals beyond the room for their keys keep their slots (state GONE, key
// inside) until a delta lists them: nothing is allocated, nothing is lost, and the slots come
// back to the free lists after the delta or when tracking stops.
TEST(ConnTableTest, RemovalsBeyondTheKeysRoomKeepTheirSlotsUntilTheDelta) {
  ConnTable t(10000, 7);
  const std::vector<Conn> conns = UdpConns(6000, 50);
  ConnTable::Tracking tracking = ConnTable::Tracking::For(t.tracking_slots());
  ASSERT_TRUE(t.StartTracking(&tracking));
  EXPECT_FALSE(t.StartTracking(&tracking)) << "one round at a time";
  for (const Conn& c : conns) ASSERT_NE(t.Insert(c.key()), ConnTable::kNil);
  auto swap = [&](std::vector<uint32_t>* touched, std::vector<ConnKey>* removed) {
    touched->clear();
    removed->clear();
    touched->reserve(t.tracking_slots());
    removed->reserve(ConnTable::kRemovedRoom);
    t.SwapChanges(touched, removed);
  };
  std::vector<uint32_t> touched;
  std::vector<ConnKey> removed;
  swap(&touched, &removed);
  ASSERT_EQ(touched.size(), 6000u);
  for (uint32_t idx : touched) ASSERT_TRUE(t.TakeTouched(idx));

  for (const Conn& c : conns) t.Remove(t.Find(c.key()));
  EXPECT_EQ(t.size(), 0u);
  for (const Conn& c : conns) ASSERT_EQ(t.Find(c.key()), ConnTable::kNil);
  // A connection re-created meanwhile takes a slot whose key went into the list, not a gone one.
  ASSERT_NE(t.Insert(conns[0].key()), ConnTable::kNil);
  EXPECT_EQ(t.used(), 6000u);

  swap(&touched, &removed);
  EXPECT_EQ(removed.size(), ConnTable::kRemovedRoom);
  std::set<uint32_t> keys;  // by address: each of the 6,000 distinct
  for (const ConnKey& k : removed) keys.insert(k.lo.v4());
  size_t gone = 0, live = 0;
  for (uint32_t idx : touched) {
    ASSERT_TRUE(t.TakeTouched(idx));
    if (t.at(idx).state == ConnState::kGone) {
      keys.insert(t.Key(idx).lo.v4());
      t.ReleaseGone(idx);
      gone++;
    } else {
      EXPECT_EQ(t.Key(idx).lo, conns[0].lo);
      live++;
    }
  }
  EXPECT_EQ(gone, 6000u - ConnTable::kRemovedRoom);
  EXPECT_EQ(live, 1u);
  EXPECT_EQ(keys.size(), 6000u) << "every removal listed once";
  // Released, the slots are used again: the table does not grow.
  for (size_t i = 1; i < conns.size(); i++) ASSERT_NE(t.Insert(conns[i].key()), ConnTable::kNil);
  EXPECT_EQ(t.used(), 6000u);

  // Stopped with removals still gone: their slots are freed too.
  for (const Conn& c : conns) t.Remove(t.Find(c.key()));
  ConnTable::Tracking back;
  t.StopTracking(&back);
  EXPECT_GE(back.touched.capacity(), t.tracking_slots()) << "the memory comes back";
  for (const Conn& c : conns) ASSERT_NE(t.Insert(c.key()), ConnTable::kNil);
  EXPECT_EQ(t.used(), 6000u);
  EXPECT_EQ(t.size(), 6000u);
}

// The limit cannot grow the table while a migration tracks its slots (each has a mark).
TEST(ConnTableTest, ALimitThatGrowsTheTableWaitsForTrackingToStop) {
  ConnTable t(1000, 7);
  ConnTable::Tracking tracking = ConnTable::Tracking::For(t.tracking_slots());
  ASSERT_TRUE(t.StartTracking(&tracking));
  EXPECT_FALSE(t.set_limit(100000).ok());
  EXPECT_TRUE(t.set_limit(500).ok()) << "a lower one is fine";
  t.StopTracking(&tracking);
  EXPECT_TRUE(t.set_limit(100000).ok());
  EXPECT_EQ(t.limit(), 100000u);
}

}  // namespace palisade::fw
