#include "cluster/view.h"

#include <gtest/gtest.h>

#include "cluster/keys.h"
#include "firewall/rule_text.h"

namespace palisade::cluster {
namespace {

const fw::IpAddr A(const char* s) { return *fw::IpAddr::Parse(s); }

class ViewTest : public ::testing::Test {
 protected:
  void Policy(const std::string& name, std::vector<std::string> to, const std::string& text, int prio = 100) {
    PolicyIntent p{name, prio, std::move(to), text, {}};
    ASSERT_TRUE(view_.Put(std::string(kPolicies) + name, EncodePolicy(p)).ok());
  }
  void Group(const std::string& name, std::vector<std::string> members) {
    ASSERT_TRUE(view_.Put(std::string(kGroups) + name, EncodeGroup(GroupIntent{name, std::move(members)})).ok());
  }
  void Endpoint(const std::string& vm, const std::string& host, std::vector<fw::IpAddr> addrs) {
    EndpointInfo e{vm, host, {}, std::move(addrs), 1, "active"};
    ASSERT_TRUE(view_.Put(EndpointKey(vm, host), EncodeEndpoint(e)).ok());
  }
  ClusterView view_;
};

TEST_F(ViewTest, GroupsResolveAcrossHosts) {
  Group("web", {"vm:web-01", "label:tier=web", "ip:192.0.2.0/24"});
  ASSERT_TRUE(view_.Put(std::string(kLabels) + "web-02", EncodeLabels({{"tier", "web"}})).ok());
  Endpoint("web-01", "host1", {A("10.0.0.1")});
  Endpoint("web-02", "host2", {A("10.0.0.2")});
  Endpoint("db-01", "host2", {A("10.0.0.9")});
  EXPECT_TRUE(view_.InGroup("web-01", "web"));
  EXPECT_TRUE(view_.InGroup("web-02", "web")) << "by label";
  EXPECT_FALSE(view_.InGroup("db-01", "web"));
  std::vector<fw::IpPrefix> want = {*fw::IpPrefix::Parse("10.0.0.1"), *fw::IpPrefix::Parse("10.0.0.2"),
                                    *fw::IpPrefix::Parse("192.0.2.0/24")};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(view_.GroupAddresses("web"), want);
  view_.Delete(EndpointKey("web-01", "host1"));
  EXPECT_EQ(view_.GroupAddresses("web").size(), 2u) << "web-01 left with its host";
}

TEST_F(ViewTest, AnAddressMovingBetweenVmsSurvivesEventsOutOfOrder) {
  Endpoint("old", "host1", {A("10.0.0.5")});
  Endpoint("new", "host2", {A("10.0.0.5")});  // the create arrives before the old owner's delete
  view_.Delete(EndpointKey("old", "host1"));
  EXPECT_EQ(view_.VmAddresses("new"), std::vector<fw::IpAddr>{A("10.0.0.5")});
  EXPECT_TRUE(view_.VmAddresses("old").empty());
}

TEST_F(ViewTest, PoliciesMergeByPriorityThenName) {
  Group("db", {"vm:db-01"});
  Policy("base", {"group:db"}, "ruleset b {\n  rule 900 at 1 inout protocol any from any to any drop;\n}\n", 200);
  Policy("db-in", {"vm:db-01"},
         "ruleset d {\n  rule 10 at 1 in protocol tcp from addrset web to any port 5432 accept;\n}\n"
         "addrset web {\ngroup web,\n}\n", 100);
  std::string text;
  ASSERT_TRUE(view_.Render("db-01", &text).ok());
  EXPECT_NE(text.find("rule 10 at 1 in protocol tcp from addrset web"), std::string::npos) << text;
  EXPECT_NE(text.find("rule 900 at 2 inout"), std::string::npos) << text;
  EXPECT_NE(text.find("group web,"), std::string::npos) << text;
  ASSERT_TRUE(view_.Render("web-01", &text).ok());
  EXPECT_EQ(text, "") << "no policy applies";
}

TEST_F(ViewTest, VmsUnderTheSamePoliciesMergeOnceAndKeepTheirNames) {
  Group("web", {"label:tier=web", "group:more"});
  Group("more", {"vm:web-09"});
  for (const char* vm : {"web-01", "web-02"}) {
    ASSERT_TRUE(view_.Put(std::string(kLabels) + vm, EncodeLabels({{"tier", "web"}})).ok());
  }
  Policy("web-in", {"group:web"}, "ruleset w {\n  rule 20 at 1 in protocol tcp from any to any port 443 accept;\n}\n");
  ClusterView::RenderMemo memo;
  std::string one, two, nine, alone;
  ASSERT_TRUE(view_.Render("web-01", &one, nullptr, &memo).ok());
  ASSERT_TRUE(view_.Render("web-02", &two, nullptr, &memo).ok());
  ASSERT_TRUE(view_.Render("web-09", &nine, nullptr, &memo).ok()) << "through the nested group";
  EXPECT_EQ(memo.merged.size(), 1u);
  ASSERT_TRUE(view_.Render("web-02", &alone).ok());
  EXPECT_EQ(two, alone) << "the memo changes nothing in the result";
  EXPECT_NE(one.find("ruleset cluster-web-01 {"), std::string::npos) << one;
  EXPECT_NE(two.find("ruleset cluster-web-02 {"), std::string::npos) << two;
  EXPECT_NE(nine.find("rule 20 at 1 in protocol tcp"), std::string::npos) << nine;
  // A failed merge is kept too, and named for each VM.
  Policy("clash", {"group:web"}, "ruleset c {\n  rule 20 at 1 in protocol udp from any to any accept;\n}\n");
  ClusterView::RenderMemo memo2;
  Status a = view_.Render("web-01", &one, nullptr, &memo2), b = view_.Render("web-02", &two, nullptr, &memo2);
  EXPECT_NE(a.message().find("VM web-01: "), std::string::npos) << a.message();
  EXPECT_NE(b.message().find("VM web-02: "), std::string::npos) << b.message();
}

TEST_F(ViewTest, ApplyRefusesDuplicateRuleIdsAndConflictingSets) {
  Policy("one", {"vm:a"}, "ruleset x {\n  rule 7 at 1 inout protocol any from any to any accept;\n}\n"
                          "addrset s {\nip 10.0.0.1,\n}\n");
  PolicyIntent two{"two", 100, {"vm:b"}, "ruleset y {\n  rule 7 at 1 inout protocol any from any to any drop;\n}\n", {}};
  ASSERT_TRUE(fw::ParseRuleFile(two.text, &two.file).ok());
  Status s = view_.CheckPolicy(two);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("rule id 7 is used by policies 'one' and 'two'"), std::string::npos) << s.message();
  PolicyIntent three{"three", 100, {"vm:b"}, "addrset s {\nip 10.0.0.2,\n}\n", {}};
  ASSERT_TRUE(fw::ParseRuleFile(three.text, &three.file).ok());
  s = view_.CheckPolicy(three);
  EXPECT_NE(s.message().find("address set 's' is defined differently"), std::string::npos) << s.message();
  PolicyIntent bad{"four", 100, {"host:x"}, "", {}};
  EXPECT_NE(view_.CheckPolicy(bad).message().find("'host:x' is not a target"), std::string::npos);
}

TEST_F(ViewTest, UnreadableValuesAreLeftOutAndNamed) {
  Status s = view_.Put(std::string(kPolicies) + "broken", "{\"text\": \"ruleset x { rule\"}");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("policy 'broken'"), std::string::npos) << s.message();
  EXPECT_TRUE(view_.policies().empty());
  EXPECT_FALSE(view_.Put(std::string(kGroups) + "g", "{\"members\": [\"host:1\"]}").ok());
  EXPECT_FALSE(view_.Put(std::string(kGroups) + "g", "not json").ok());
}

TEST_F(ViewTest, GroupCyclesEndQuietly) {
  Group("a", {"group:b", "vm:x"});
  Group("b", {"group:a"});
  EXPECT_TRUE(view_.InGroup("x", "b"));
  EXPECT_FALSE(view_.InGroup("y", "a"));
  EXPECT_TRUE(view_.GroupAddresses("b").empty());
}

TEST_F(ViewTest, PoliciesFlattenToTheirTargetsAndRenderAlike) {
  Group("web", {"label:tier=web", "vm:web-09", "group:edge", "ip:192.0.2.0/24"});
  Group("edge", {"label:zone=dmz", "group:web"});  // a cycle back
  Policy("p", {"group:web", "vm:db-01"}, "ruleset p {\n  rule 1 at 1 in protocol any from any to any accept;\n}\n");
  Policy("q", {"group:none"}, "ruleset q {\n  rule 2 at 1 in protocol any from any to any accept;\n}\n");
  ASSERT_TRUE(view_.Put(std::string(kLabels) + "web-01", EncodeLabels({{"tier", "web"}})).ok());
  ASSERT_TRUE(view_.Put(std::string(kLabels) + "lb-01", EncodeLabels({{"tier", "lb"}, {"zone", "dmz"}})).ok());
  ASSERT_TRUE(view_.Put(std::string(kLabels) + "app-01", EncodeLabels({{"tier", "app"}, {"zone", "dmz2"}})).ok());
  ClusterView::Targets p, q;
  view_.AddTargets("p", &p);
  view_.AddTargets("q", &q);
  view_.AddTargets("gone", &q);
  EXPECT_EQ(p.vms, (std::set<std::string, std::less<>>{"db-01", "web-09"}));
  EXPECT_EQ(p.labels.size(), 2u);
  EXPECT_EQ(p.labels["tier"], std::set<std::string>{"web"});
  EXPECT_EQ(p.labels["zone"], std::set<std::string>{"dmz"}) << "through the nested group";
  EXPECT_TRUE(q.vms.empty() && q.labels.empty());
  view_.AddTargets("p", &q);
  EXPECT_EQ(q.vms, p.vms) << "targets add up";
  // Render with a memo (flattened targets) picks and orders the same policies as without.
  Policy("a-first", {"vm:web-01", "group:edge"}, "ruleset a {\n  rule 3 at 1 in protocol udp from any to any accept;\n}\n", 50);
  Policy("late", {"group:web"}, "ruleset l {\n  rule 4 at 1 in protocol icmp from any to any accept;\n}\n", 300);
  ClusterView::RenderMemo memo;
  for (const std::string vm : {"web-01", "web-09", "lb-01", "db-01", "app-01", "x"}) {
    std::string with, without;
    ASSERT_TRUE(view_.Render(vm, &with, nullptr, &memo).ok());
    ASSERT_TRUE(view_.Render(vm, &without).ok());
    EXPECT_EQ(with, without) << vm;
  }
  std::string web;
  ASSERT_TRUE(view_.Render("web-01", &web, nullptr, &memo).ok());
  EXPECT_LT(web.find("rule 3 "), web.find("rule 1 ")) << web;
  EXPECT_LT(web.find("rule 1 "), web.find("rule 4 ")) << web;
}

}  // namespace
}  // namespace palisade::cluster
