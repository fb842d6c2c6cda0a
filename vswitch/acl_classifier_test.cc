// The rte_acl engine against the bit-vector classifier (itself checked against a linear scan in
// firewall/classifier_test.cc) on random tables: every lookup must find the same rule.
#include "vswitch/acl_classifier.h"

#include <gtest/gtest.h>
#include <rte_eal.h>

#include <random>
#include <string>

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade {
namespace {

using namespace fw;

struct Built {
  std::unique_ptr<const Classifier> acl, bits;
};

Built BuildBoth(const std::vector<Rule>& rules, const ResolvedSets& sets) {
  static const AclClassifierEngine engine;
  Built b;
  SetLargeTableEngine(&engine, 0);  // every table is too large for bit vectors
  Status s = Classifier::Build(rules, sets, &b.acl);
  EXPECT_TRUE(s.ok()) << s.message();
  SetLargeTableEngine(nullptr, 0);
  s = Classifier::Build(rules, sets, &b.bits);
  EXPECT_TRUE(s.ok()) << s.message();
  return b;
}

class AclClassifierTest : public ::testing::Test {
 protected:
  std::mt19937 rng_{7};
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<unsigned>(n)); }

  // Addresses from a small neighbourhood, so that prefixes, ranges and negations overlap.
  IpAddr Addr(bool v6) {
    return v6 ? IpAddr::FromValue((u128{0x20010db8} << 96) | (u128(Pick(4)) << 64) | u128(Pick(512)))
              : IpAddr::V4(0x0a000000u | (static_cast<uint32_t>(Pick(4)) << 16) | static_cast<uint32_t>(Pick(512)));
  }
  IpPrefix Prefix(bool v6) {
    const IpAddr a = Addr(v6);
    const int lens6[] = {128, 127, 120, 96, 64, 48, 0};
    const int lens4[] = {128, 126, 120, 112, 104, 96};
    const auto len = static_cast<uint8_t>(v6 ? lens6[Pick(7)] : lens4[Pick(6)]);
    const u128 mask = len == 0 ? 0 : len == 128 ? ~u128{0} : ~((~u128{0}) >> len);
    return IpPrefix{IpAddr::FromValue(a.value() & mask), len};
  }
};

TEST_F(AclClassifierTest, AgreesWithBitVectorsOnRandomTables) {
  for (int round = 0; round < 30; round++) {
    ResolvedSets sets;
    for (int s = 0; s < 5; s++) {
      std::vector<IpPrefix> members;
      for (int m = Pick(5); m > 0; m--) members.push_back(Prefix(Pick(2)));
      sets["s" + std::to_string(s)] = members;
    }
    std::vector<Rule> rules(static_cast<size_t>(1 + Pick(150)));
    for (size_t i = 0; i < rules.size(); i++) {
      Rule& r = rules[i];
      r.pos = static_cast<uint32_t>(i + 1);
      r.dir = static_cast<RuleDir>(1 + Pick(3));
      r.family = static_cast<Family>(Pick(3));
      const int protos[] = {kAny, 6, 17, 1, 58};
      r.proto = protos[Pick(5)];
      for (Endpoint* e : {&r.src, &r.dst}) {
        e->kind = static_cast<Endpoint::Kind>(Pick(3));
        e->negate = e->kind != Endpoint::Kind::kAny && Pick(3) == 0;
        if (e->kind == Endpoint::Kind::kAddrSet) e->set = "s" + std::to_string(Pick(5));
        if (e->kind == Endpoint::Kind::kIp) e->prefix = Prefix(Pick(2));
        if ((r.proto == 6 || r.proto == 17) && Pick(2)) {
          for (int p = 1 + Pick(3); p > 0; p--) {
            const auto lo = static_cast<uint16_t>(Pick(2) ? Pick(60) : 65500 + Pick(30));
            e->ports.push_back({lo, static_cast<uint16_t>(std::min(65535, lo + Pick(8)))});
          }
        }
      }
      if (r.proto == 1 || r.proto == 58) {
        if (Pick(2)) r.icmp_type = Pick(4);
        if (Pick(2)) r.icmp_code = Pick(2);
      }
    }
    const Built b = BuildBoth(rules, sets);
    ASSERT_STREQ(b.acl->engine(), "rte_acl");
    ASSERT_STREQ(b.bits->engine(), "bitvector");
    for (int q = 0; q < 4000; q++) {
      const bool v6 = Pick(2);
      const uint8_t protos[] = {6, 17, 1, 58, 47};
      auto port = [&] { return static_cast<uint16_t>(Pick(2) ? Pick(70) : 65490 + Pick(46)); };
      const ClassifyKey k{Pick(2) == 1, v6, protos[Pick(5)], Addr(v6), Addr(v6), port(), port()};
      ASSERT_EQ(b.acl->Lookup(k), b.bits->Lookup(k)) << "round " << round << " query " << q;
    }
  }
}

TEST_F(AclClassifierTest, TenThousandHostRulesFindTheirRule) {
  std::vector<Rule> rules(10000);
  for (size_t i = 0; i < rules.size(); i++) {
    Rule& r = rules[i];
    r.pos = static_cast<uint32_t>(i + 1);
    r.dir = RuleDir::kIn;
    r.proto = 6;
    r.dst.kind = Endpoint::Kind::kIp;
    r.dst.prefix = IpPrefix::Host(IpAddr::V4(0x0a000000u + static_cast<uint32_t>(i)));
    r.dst.ports.push_back({static_cast<uint16_t>(1000 + i), static_cast<uint16_t>(1000 + i)});
  }
  const Built b = BuildBoth(rules, {});
  EXPECT_LT(b.acl->memory_bytes(), b.bits->memory_bytes());
  for (uint32_t i = 0; i < 10000; i += 97) {
    const ClassifyKey k{true, false, 6, IpAddr::V4(0xc0a80001u), IpAddr::V4(0x0a000000u + i), 40000,
                        static_cast<uint16_t>(1000 + i)};
    EXPECT_EQ(b.acl->Lookup(k), static_cast<int>(i));
    ClassifyKey out = k;
    out.in = false;
    EXPECT_EQ(b.acl->Lookup(out), -1) << "an `in` rule does not match outgoing packets";
  }
}

TEST_F(AclClassifierTest, ATableThatExpandsTooFarFallsBackToBitVectors) {
  // 600 source prefixes x 600 destination prefixes: 360,000 rte_acl rules for one rule.
  std::vector<IpPrefix> many;
  for (uint32_t i = 0; i < 600; i++) many.push_back(IpPrefix::Host(IpAddr::V4(0x0a000000u + 2 * i)));
  Rule r;
  r.pos = 1;
  r.proto = 6;
  r.src.kind = r.dst.kind = Endpoint::Kind::kAddrSet;
  r.src.set = r.dst.set = "many";
  static const AclClassifierEngine engine;
  SetLargeTableEngine(&engine, 0);
  std::unique_ptr<const Classifier> c;
  ASSERT_TRUE(Classifier::Build({r}, {{"many", many}}, &c).ok());
  SetLargeTableEngine(nullptr, 0);
  EXPECT_STREQ(c->engine(), "bitvector");
  const ClassifyKey hit{true, false, 6, IpAddr::V4(0x0a000002u), IpAddr::V4(0x0a000004u), 1, 2};
  EXPECT_EQ(c->Lookup(hit), 0);

  // More negated addresses than rte_acl handles well: bit vectors from the start.
  std::vector<Rule> rules(AclClassifierEngine::kMaxNegated + 1);
  for (size_t i = 0; i < rules.size(); i++) {
    rules[i].pos = static_cast<uint32_t>(i + 1);
    rules[i].src.kind = Endpoint::Kind::kIp;
    rules[i].src.negate = true;
    rules[i].src.prefix = IpPrefix::Host(IpAddr::V4(0x0a000000u + static_cast<uint32_t>(i)));
  }
  SetLargeTableEngine(&engine, 0);
  ASSERT_TRUE(Classifier::Build(rules, {}, &c).ok());
  EXPECT_STREQ(c->engine(), "bitvector");
  rules.pop_back();
  ASSERT_TRUE(Classifier::Build(rules, {}, &c).ok());
  EXPECT_STREQ(c->engine(), "rte_acl");
  SetLargeTableEngine(nullptr, 0);
}

TEST_F(AclClassifierTest, TablesGoToRteAclWhenTheirBitVectorsOutgrowTheBudget) {
  static const AclClassifierEngine engine;
  constexpr size_t kBudget = 4 << 20;  // the 1,000-host table's bit vectors take 0.7 MB, 10,000's 13.5
  SetLargeTableEngine(&engine, kBudget);
  for (auto [n, expected] : {std::pair{1000, "bitvector"}, std::pair{10000, "rte_acl"}}) {
    std::vector<Rule> rules(static_cast<size_t>(n));
    for (size_t i = 0; i < rules.size(); i++) {
      rules[i].pos = static_cast<uint32_t>(i + 1);
      rules[i].dir = RuleDir::kIn;
      rules[i].proto = 6;
      rules[i].dst.kind = Endpoint::Kind::kIp;
      rules[i].dst.prefix = IpPrefix::Host(IpAddr::V4(0x0a000000u + static_cast<uint32_t>(i)));
    }
    std::unique_ptr<const Classifier> c;
    ASSERT_TRUE(Classifier::Build(rules, {}, &c).ok());
    EXPECT_STREQ(c->engine(), expected) << n << " rules";
    EXPECT_LT(c->memory_bytes(), kBudget);
    const ClassifyKey k{true, false, 6, IpAddr::V4(1), IpAddr::V4(0x0a000000u + 777), 1, 2};
    EXPECT_EQ(c->Lookup(k), 777);
  }
  SetLargeTableEngine(nullptr, 0);
}

}  // namespace
}  // namespace palisade

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // rte_acl keeps its contexts in DPDK's heap: a small EAL of private memory is enough.
  const char* eal[] = {"acl_classifier_test", "--no-huge", "-m", "256", "--no-pci",
                       "--no-shconf", "--lcores=0", "--log-level=lib.eal:error"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char**>(eal)) < 0) return 1;
  const int rc = RUN_ALL_TESTS();
  rte_eal_cleanup();
  return rc;
}
