#include "firewall/rule_text.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace palisade::fw {
namespace {

// The getrules example of FORMATS.md (shared with the CLI's integration test), and its
// getaddrsets example.
std::string FormatsRules() {
  std::ifstream in(PALISADE_TEST_DATA "/formats-web-tier.rules");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}


constexpr char kFormatsAddrSets[] = R"(addrset ip-ipset-2 {
ip 192.168.110.10,
}
addrset ip-vm-33 {
ip 172.16.10.12,
ip fe80::250:56ff:fe9a:1,
}
)";

RuleFile Parse(std::string_view text) {
  RuleFile f;
  Status s = ParseRuleFile(text, &f);
  EXPECT_TRUE(s.ok()) << s.message();
  return f;
}

std::string Error(std::string_view text) {
  RuleFile f;
  Status s = ParseRuleFile(text, &f);
  EXPECT_FALSE(s.ok()) << text;
  return s.message();
}

TEST(RuleTextTest, FormatsExampleRoundTrips) {
  const std::string kFormatsRules = FormatsRules();
  ASSERT_NE(kFormatsRules.find("ruleset web-tier {"), std::string::npos) << "tests/data is readable";
  RuleFile f = Parse(kFormatsRules);
  EXPECT_EQ(f.name, "web-tier");
  ASSERT_EQ(f.rules.size(), 7u);
  ASSERT_TRUE(f.has_l2);
  ASSERT_EQ(f.l2_rules.size(), 1u);
  EXPECT_EQ(PrintRules(f), kFormatsRules);

  const Rule& r = f.rules[0];
  EXPECT_EQ(r.id, 1006u);
  EXPECT_EQ(r.pos, 1u);
  EXPECT_EQ(r.dir, RuleDir::kInOut);
  EXPECT_EQ(r.proto, 6);
  EXPECT_EQ(r.src.kind, Endpoint::Kind::kAddrSet);
  EXPECT_EQ(r.src.set, "ip-vm-33");
  EXPECT_EQ(r.dst.set, "ip-vm-36");
  EXPECT_EQ(r.dst.ports, (std::vector<PortRange>{{22, 22}}));
  EXPECT_TRUE(r.log);
  EXPECT_EQ(f.rules[2].icmp_type, 135);
  EXPECT_EQ(f.rules[6].action, Action::kReject);
}

TEST(RuleTextTest, AddrSetsRoundTrip) {
  RuleFile f = Parse(kFormatsAddrSets);
  ASSERT_EQ(f.addrsets.size(), 2u);
  EXPECT_EQ(f.addrsets[1].ips.size(), 2u);
  EXPECT_EQ(PrintAddrSets(f.addrsets), kFormatsAddrSets);
}

TEST(RuleTextTest, DynamicMembersPrintWhatTheyResolveToAndStillParseBack) {
  RuleFile f = Parse("addrset web { vm web-01, vm web-02, ip 10.0.0.0/8, group web-tier }");
  std::string text = PrintAddrSets(f.addrsets, [](Member kind, const std::string& name) {
    if (kind == Member::kGroup) return std::vector<IpPrefix>{*IpPrefix::Parse("192.0.2.0/24")};
    return name == "web-01" ? std::vector<IpPrefix>{*IpPrefix::Parse("172.16.10.12")} : std::vector<IpPrefix>{};
  });
  EXPECT_EQ(text,
            "addrset web {\nip 10.0.0.0/8,\nvm web-01,  # now: 172.16.10.12\n"
            "vm web-02,  # now: no addresses\ngroup web-tier,  # now: 192.0.2.0/24\n}\n");
  EXPECT_EQ(Parse(text).addrsets, f.addrsets);
}

TEST(RuleTextTest, EveryFeatureParsesAndPrintsBack) {
  constexpr char kText[] = R"(ruleset all {
  # Filter rules
  rule 1 at 1 in inet protocol tcp strict from not ip 10.0.0.0/8 port {22, 80, 8000-8080} to ip 192.168.1.5 accept;
  rule 2 at 2 out inet6 protocol udp stateless from any to not addrset dns port 53 drop with log;
  rule 3 at 3 inout protocol icmp icmptype 8 icmpcode 0 from any to any accept;
  rule 4 at 4 inout protocol 47 from any to any reject;
}

ruleset all_L2 {
  # Filter rules
  rule 10 at 1 out ethertype arp from mac 02:00:00:00:00:01 to any accept;
  rule 11 at 2 inout ethertype 0x88cc from not addrset macs to any drop with log;
  rule 12 at 3 inout ethertype ipv6 from any to any accept;
}
)";
  RuleFile f = Parse(kText);
  EXPECT_EQ(PrintRules(f), kText);
  const Rule& r = f.rules[0];
  EXPECT_EQ(r.dir, RuleDir::kIn);
  EXPECT_EQ(r.family, Family::kInet);
  EXPECT_TRUE(r.strict);
  EXPECT_TRUE(r.src.negate);
  EXPECT_EQ(r.src.ports.size(), 3u);
  EXPECT_EQ(r.src.ports[2], (PortRange{8000, 8080}));
  EXPECT_TRUE(f.rules[1].stateless);
  EXPECT_EQ(f.rules[2].icmp_code, 0);
  EXPECT_EQ(f.rules[3].proto, 47);
  EXPECT_EQ(f.l2_rules[1].ethertype, 0x88cc);
}

TEST(RuleTextTest, PositionsOrderTheTableAndAreRenumbered) {
  RuleFile f = Parse(R"(ruleset t {
    rule 2 at 20 inout protocol any from any to any drop;
    rule 1 at 10 inout protocol tcp from any to any port 22 accept;
  })");
  EXPECT_EQ(f.rules[0].id, 1u);
  EXPECT_EQ(f.rules[0].pos, 1u);
  EXPECT_EQ(f.rules[1].pos, 2u);
  f = Parse("ruleset t { rule 5 inout protocol any from any to any accept; rule 6 in protocol any from any to any drop; }");
  EXPECT_EQ(f.rules[1].id, 6u);
  EXPECT_EQ(f.rules[1].pos, 2u);
}

TEST(RuleTextTest, ErrorsNameLineColumnAndWhatWasExpected) {
  EXPECT_EQ(Error("ruleset t {\n  rule 1 at 1 sideways protocol tcp from any to any accept;\n}"),
            "line 2, column 15: expected a direction (in, out, inout), got 'sideways'");
  EXPECT_EQ(Error("ruleset t {\n  rule 1 inout protocol tcp from any to any port 99999 accept;\n}"),
            "line 2, column 50: expected a port or range (P or P-Q, 0-65535, P <= Q), got '99999'");
  EXPECT_EQ(Error("ruleset t { rule 1 inout protocol tcp from any to any accept }"),
            "line 1, column 62: expected ';', got '}'");
  EXPECT_EQ(Error("ruleset t { rule 1 inout protocol tcp from any to any accept;"),
            "line 1, column 62: expected 'rule' or '}', got the end of the text");
  EXPECT_EQ(Error("ruleset t { rule 1 inout protocol udp from ip 10.0.0.1/8 to any accept; }"),
            "line 1, column 47: expected ADDR[/LEN] ('10.0.0.1/8' has host bits set), got '10.0.0.1/8'");
  EXPECT_EQ(Error("ruleset t { rule 1 inout protocol icmp from any to any port 5 accept; }"),
            "line 1, column 56: ports need protocol tcp or udp");
  EXPECT_EQ(Error("ruleset t { rule 1 inout protocol udp strict from any to any accept; }"),
            "line 1, column 62: 'strict' applies to protocol tcp only; expected an action, got 'accept'");
  EXPECT_EQ(Error("ruleset t { rule 1 at 1 inout protocol any from any to any accept;\n"
                  "rule 2 inout protocol any from any to any drop; }"),
            "line 2, column 1: give 'at POS' for every rule or for none");
  EXPECT_EQ(Error("ruleset t { rule 1 at 1 inout protocol any from any to any accept;\n"
                  "rule 2 at 1 inout protocol any from any to any drop; }"),
            "line 2, column 1: position 1 is used twice");
  EXPECT_EQ(Error("addrset a { ip 1.2.3.4 }\naddrset a { }"),
            "line 2, column 9: address set 'a' is defined twice");
  EXPECT_EQ(Error("addrset a { ip 1.2.3.4 ip 5.6.7.8 }"),
            "line 1, column 24: expected ',' or '}', got 'ip'");
  EXPECT_EQ(Error("ruleset a { }\nruleset b_L2 { }"),
            "line 2, column 9: expected ruleset a_L2 to go with ruleset a, got 'b_L2'");
  // Found by the rule fuzzer: the L3 companion of t_L2_L2 would be t_L2, which reads as L2.
  EXPECT_EQ(Error("ruleset t_L2_L2 { }"),
            "line 1, column 9: an L2 ruleset is named after its L3 ruleset + _L2, and an L3 "
            "ruleset's name cannot end in _L2: 't_L2_L2'");
  EXPECT_EQ(Error("ruleset t_L2 { rule 1 inout ethertype any from any to any reject; }"),
            "line 1, column 16: L2 rules cannot reject (accept or drop)");
  EXPECT_EQ(Error("rules t {}"), "line 1, column 1: expected 'ruleset' or 'addrset', got 'rules'");
  EXPECT_EQ(Error("ruleset t { rule 1 inout inet protocol tcp from ip ::1 to any accept; }"),
            "line 1, column 52: address family of '::1' differs from the rule's");
}

}  // namespace
}  // namespace palisade::fw
