// Compiled tables are shared by content: equal rules and equal resolved sets compile once,
// whatever the generation; a different rule or a VM's new address compiles anew.
#include "firewall/rule_table.h"

#include <gtest/gtest.h>

#include "firewall/rule_text.h"

namespace palisade::fw {
namespace {

constexpr char kRules[] = R"(ruleset web {
  rule 1 at 1 in protocol tcp from addrset app to any port 443 accept;
}
addrset app {
ip 10.0.0.1,
vm app-01,
}
)";

std::shared_ptr<const RuleTable> Compile(const std::string& text, const std::string& vm_address, uint32_t gen) {
  RuleFile f;
  EXPECT_TRUE(ParseRuleFile(text, &f).ok());
  std::shared_ptr<const RuleTable> t;
  auto members = [&](Member, const std::string&) {
    return std::vector<IpPrefix>{IpPrefix::Host(*IpAddr::Parse(vm_address))};
  };
  EXPECT_TRUE(RuleTable::Compile(f, members, gen, &t).ok());
  return t;
}

TEST(RuleTableTest, EqualContentCompilesOnce) {
  auto a = Compile(kRules, "10.0.0.7", 1);
  auto b = Compile(kRules, "10.0.0.7", 9);
  EXPECT_TRUE(a->SharesWith(*b));
  EXPECT_EQ(a->generation(), 1u);
  EXPECT_EQ(b->generation(), 9u);
  auto moved = Compile(kRules, "10.0.0.8", 2);  // the VM's address changed
  EXPECT_FALSE(moved->SharesWith(*a));
  std::string other = kRules;
  other.replace(other.find("443"), 3, "444");
  EXPECT_FALSE(Compile(other, "10.0.0.7", 1)->SharesWith(*a));
  // Another ruleset name alone shares the compiled part; each table keeps its own name.
  std::string renamed = kRules;
  renamed.replace(renamed.find("web"), 3, "db");
  auto db = Compile(renamed, "10.0.0.7", 1);
  EXPECT_TRUE(db->SharesWith(*a));
  EXPECT_EQ(db->name(), "db");
  EXPECT_EQ(a->name(), "web");
  EXPECT_EQ(db->file().name, "db");
  // The same addresses written another way is another file: the table shows what was written.
  std::string named = kRules;
  named.replace(named.find("vm app-01"), 9, "vm app-02");
  EXPECT_FALSE(Compile(named, "10.0.0.7", 1)->SharesWith(*a));
  std::string written = kRules;
  written.replace(written.find("vm app-01,"), 10, "ip 10.0.0.7,\nvm app-01,");
  EXPECT_FALSE(Compile(written, "10.0.0.7", 1)->SharesWith(*a));
  for (const char* change : {"log", "reject"}) {
    std::string t = kRules;
    t.replace(t.find("accept"), 6, change == std::string("log") ? "accept with log" : change);
    EXPECT_FALSE(Compile(t, "10.0.0.7", 1)->SharesWith(*a)) << change;
  }
  // Lookups agree: the shared one matches what it was compiled for.
  const ClassifyKey k{true, false, 6, *IpAddr::Parse("10.0.0.7"), *IpAddr::Parse("10.9.9.9"), 5555, 443};
  EXPECT_EQ(b->classifier().Lookup(k), 0);
  EXPECT_EQ(moved->classifier().Lookup(k), -1);
}

TEST(RuleTableTest, AFreedTableIsCompiledAgainNotResurrectedHalfGone) {
  std::weak_ptr<const RuleTable> gone;
  { gone = Compile(kRules, "10.0.0.9", 1); }
  EXPECT_TRUE(gone.expired());
  auto again = Compile(kRules, "10.0.0.9", 2);
  EXPECT_EQ(again->rules().size(), 1u);
}

}  // namespace
}  // namespace palisade::fw
