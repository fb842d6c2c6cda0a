#include "firewall/classifier.h"

#include <gtest/gtest.h>

#include <random>

#include "firewall/rule_text.h"

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade::fw {
namespace {

// The reference: a linear first-match scan, written from the rule semantics directly.
bool AddrMatch(const Endpoint& e, const IpAddr& a, const ResolvedSets& sets) {
  if (e.kind == Endpoint::Kind::kAny) return true;
  bool in = false;
  if (e.kind == Endpoint::Kind::kIp) {
    in = e.prefix.Contains(a);
  } else {
    for (const IpPrefix& p : sets.at(e.set)) in |= p.Contains(a);
  }
  return in != e.negate;
}

bool PortMatch(const Endpoint& e, uint16_t port) {
  if (e.ports.empty()) return true;
  for (const PortRange& r : e.ports) {
    if (port >= r.lo && port <= r.hi) return true;
  }
  return false;
}

int Linear(const std::vector<Rule>& rules, const ResolvedSets& sets, const ClassifyKey& k) {
  for (size_t i = 0; i < rules.size(); i++) {
    const Rule& r = rules[i];
    if (r.dir == RuleDir::kIn && !k.in) continue;
    if (r.dir == RuleDir::kOut && k.in) continue;
    if (r.family == Family::kInet && k.v6) continue;
    if (r.family == Family::kInet6 && !k.v6) continue;
    if (r.proto != kAny && r.proto != k.proto) continue;
    if (!AddrMatch(r.src, k.src, sets) || !AddrMatch(r.dst, k.dst, sets)) continue;
    if (r.proto == 1 || r.proto == 58) {
      if (r.icmp_type != kAny && r.icmp_type != k.sport) continue;
      if (r.icmp_code != kAny && r.icmp_code != k.dport) continue;
    } else if (!PortMatch(r.src, k.sport) || !PortMatch(r.dst, k.dport)) {
      continue;
    }
    return static_cast<int>(i);
  }
  return -1;
}

std::unique_ptr<const Classifier> Build(const std::vector<Rule>& rules, const ResolvedSets& sets) {
  std::unique_ptr<const Classifier> c;
  Status s = Classifier::Build(rules, sets, &c);
  EXPECT_TRUE(s.ok()) << s.message();
  return c;
}

ClassifyKey Key(bool in, uint8_t proto, const char* src, const char* dst, uint16_t sport,
                uint16_t dport) {
  ClassifyKey k{in, false, proto, *IpAddr::Parse(src), *IpAddr::Parse(dst), sport, dport};
  k.v6 = !k.src.is_v4();
  return k;
}

TEST(ClassifierTest, FormatsPolicyFirstMatch) {
  RuleFile f;
  ASSERT_TRUE(ParseRuleFile(R"(ruleset web {
    rule 1006 at 1 inout protocol tcp from addrset ip-vm-33 to addrset ip-vm-36 port 22 accept with log;
    rule 1005 at 2 inout protocol any from any to addrset ip-ipset-2 accept;
    rule 1004 at 3 inout protocol ipv6-icmp icmptype 135 from any to any accept;
    rule 1003 at 4 inout protocol udp from any to any port 67 accept;
    rule 1002 at 5 inout protocol any from any to any reject with log;
  })", &f).ok());
  ResolvedSets sets = {{"ip-vm-33", {*IpPrefix::Parse("172.16.10.12")}},
                       {"ip-vm-36", {*IpPrefix::Parse("172.16.10.11")}},
                       {"ip-ipset-2", {*IpPrefix::Parse("192.168.110.10")}}};
  auto c = Build(f.rules, sets);
  EXPECT_EQ(c->Lookup(Key(false, 6, "172.16.10.12", "172.16.10.11", 44194, 22)), 0);
  EXPECT_EQ(c->Lookup(Key(false, 6, "172.16.10.12", "172.16.10.11", 44194, 23)), 4);
  EXPECT_EQ(c->Lookup(Key(true, 6, "172.16.10.13", "172.16.10.11", 44194, 22)), 4);
  EXPECT_EQ(c->Lookup(Key(true, 17, "10.9.9.9", "192.168.110.10", 1, 2)), 1);
  EXPECT_EQ(c->Lookup(Key(true, 17, "10.9.9.9", "10.1.1.1", 68, 67)), 3);
  ClassifyKey ns = Key(true, 58, "fe80::1", "ff02::1:ff00:1", 135, 0);
  EXPECT_EQ(c->Lookup(ns), 2);
  ns.sport = 136;
  EXPECT_EQ(c->Lookup(ns), 4);
}

TEST(ClassifierTest, DirectionFamilyNegationAndEmptySets) {
  RuleFile f;
  ASSERT_TRUE(ParseRuleFile(R"(ruleset t {
    rule 1 in inet6 protocol any from any to any accept;
    rule 2 out protocol tcp from not ip 10.0.0.0/8 to any accept;
    rule 3 inout protocol udp from addrset empty to any accept;
    rule 4 inout protocol udp from not addrset empty to any port {53, 5000-5999} drop;
  })", &f).ok());
  auto c = Build(f.rules, {{"empty", {}}});
  EXPECT_EQ(c->Lookup(Key(true, 6, "2001:db8::1", "2001:db8::2", 1, 2)), 0);
  EXPECT_EQ(c->Lookup(Key(false, 6, "2001:db8::1", "2001:db8::2", 1, 2)), 1) << "out, not in 10/8";
  EXPECT_EQ(c->Lookup(Key(false, 6, "10.1.2.3", "10.0.0.2", 1, 2)), -1);
  EXPECT_EQ(c->Lookup(Key(true, 17, "10.1.2.3", "10.0.0.2", 1, 5500)), 3);
  EXPECT_EQ(c->Lookup(Key(true, 17, "10.1.2.3", "10.0.0.2", 1, 6000)), -1);
}

TEST(ClassifierTest, UndefinedSetIsAnError) {
  RuleFile f;
  ASSERT_TRUE(ParseRuleFile("ruleset t { rule 7 at 1 inout protocol any from addrset x to any accept; }", &f).ok());
  std::unique_ptr<const Classifier> c;
  Status s = Classifier::Build(f.rules, {}, &c);
  EXPECT_EQ(s.message(), "rule 7 at 1 names address set 'x', which is not defined");
}

TEST(ClassifierTest, AgreesWithLinearScanOnRandomTables) {
  std::mt19937 rng(42);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto addr = [&](bool v6) {
    return v6 ? IpAddr::FromValue((u128{0x20010db8} << 96) | (rng() % 64))
              : IpAddr::V4(0x0a000000 | (rng() % 64));
  };
  for (int round = 0; round < 20; round++) {
    ResolvedSets sets;
    for (int s = 0; s < 4; s++) {
      std::vector<IpPrefix> members;
      for (int m = pick(4); m > 0; m--) {
        const bool v6 = pick(2);
        IpAddr a = addr(v6);
        const uint8_t len = static_cast<uint8_t>(124 + pick(5));
        const u128 mask = len >= 128 ? ~u128{0} : ~((~u128{0}) >> len);
        members.push_back(IpPrefix{IpAddr::FromValue(a.value() & mask), len});
      }
      sets["s" + std::to_string(s)] = members;
    }
    std::vector<Rule> rules(static_cast<size_t>(1 + pick(200)));
    for (size_t i = 0; i < rules.size(); i++) {
      Rule& r = rules[i];
      r.pos = static_cast<uint32_t>(i + 1);
      r.dir = static_cast<RuleDir>(1 + pick(3));
      r.family = static_cast<Family>(pick(3));
      const int protos[] = {kAny, 6, 17, 1, 58};
      r.proto = protos[pick(5)];
      for (Endpoint* e : {&r.src, &r.dst}) {
        e->kind = static_cast<Endpoint::Kind>(pick(3));
        e->negate = e->kind != Endpoint::Kind::kAny && pick(4) == 0;
        if (e->kind == Endpoint::Kind::kAddrSet) e->set = "s" + std::to_string(pick(4));
        if (e->kind == Endpoint::Kind::kIp) e->prefix = IpPrefix::Host(addr(pick(2)));
        if ((r.proto == 6 || r.proto == 17) && pick(2)) {
          for (int p = 1 + pick(3); p > 0; p--) {
            const uint16_t lo = static_cast<uint16_t>(pick(40));
            e->ports.push_back({lo, static_cast<uint16_t>(lo + pick(5))});
          }
        }
      }
      if (r.proto == 1 || r.proto == 58) {
        if (pick(2)) r.icmp_type = pick(4);
        if (pick(2)) r.icmp_code = pick(2);
      }
    }
    auto c = Build(rules, sets);
    for (int q = 0; q < 3000; q++) {
      const bool v6 = pick(2);
      const uint8_t protos[] = {6, 17, 1, 58, 47};
      ClassifyKey k{pick(2) == 1, v6, protos[pick(5)], addr(v6), addr(v6),
                    static_cast<uint16_t>(pick(45)), static_cast<uint16_t>(pick(45))};
      ASSERT_EQ(c->Lookup(k), Linear(rules, sets, k)) << "round " << round << " query " << q;
    }
  }
}

}  // namespace
}  // namespace palisade::fw
