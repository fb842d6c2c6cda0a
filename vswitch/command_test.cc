#include "vswitch/command.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "vswitch/control.h"

namespace palisade {
namespace {

Command Parse(std::string_view line) {
  Command c;
  Status s = ParseCommand(line, &c);
  EXPECT_TRUE(s.ok()) << line << ": " << s.message();
  return c;
}

std::string Error(std::string_view line) {
  Command c;
  Status s = ParseCommand(line, &c);
  EXPECT_FALSE(s.ok()) << line;
  return s.message();
}

TEST(CommandTest, PortAddVhostUserServerAndClient) {
  Command c = Parse("port add vm1 --vhost-user /tmp/vm1.sock");
  EXPECT_EQ(c.verb, Command::Verb::kPortAdd);
  EXPECT_EQ(c.port.name, "vm1");
  EXPECT_EQ(c.port.kind, PortKind::kVhostUser);
  EXPECT_EQ(c.port.path, "/tmp/vm1.sock");
  EXPECT_FALSE(c.port.client);
  EXPECT_TRUE(Parse("  port add vm1 --client --vhost-user /x  ").port.client);
  EXPECT_TRUE(c.mutates());
}

TEST(CommandTest, PortAddUplink) {
  Command c = Parse("port add up0 --uplink net_af_packet0,iface=veth0");
  EXPECT_EQ(c.port.kind, PortKind::kUplink);
  EXPECT_EQ(c.port.devargs, "net_af_packet0,iface=veth0");
}

TEST(CommandTest, ErrorsNameTheColumnAndWhatWasExpected) {
  EXPECT_EQ(Error("port add vm1"), "column 13: expected --vhost-user PATH or --uplink DEVARGS");
  EXPECT_EQ(Error("port add vm1 --vhost-user"), "column 26: expected a socket path after --vhost-user");
  EXPECT_EQ(Error("port add vm1 --vhost-user /a --uplink x"),
            "column 30: give only one of --vhost-user and --uplink");
  EXPECT_EQ(Error("port add vm1 --vhost /a"),
            "column 14: unknown option '--vhost' (expected --vhost-user PATH, --uplink DEVARGS, --client, --vm, --mac, --ip or --allow)");
  EXPECT_EQ(Error("port frob"), "column 6: expected add, del, list or stats, got 'frob'");
  EXPECT_EQ(Error("bridge show"),
            "column 1: unknown command 'bridge' (expected port, filter, rules, addrsets, addrset, flows, firewall, worker, mac, set or help)");
  EXPECT_EQ(Error("port list extra"), "column 11: unexpected 'extra'");
  EXPECT_EQ(Error("port add up --uplink x --client"), "--client, --vm, --mac, --ip and --allow apply to vhost-user ports only");
  EXPECT_EQ(Error(""), "column 1: expected a command (port, filter, rules, addrsets, addrset, flows, firewall, worker, mac, set or help)");
}

TEST(CommandTest, FilterAttachAndDetach) {
  Command c = Parse("filter attach vm1 --slot 3 --agent counting --policy failOpen");
  EXPECT_EQ(c.verb, Command::Verb::kFilterAttach);
  EXPECT_EQ(c.target, "vm1");
  EXPECT_EQ(c.filter.slot, 3);
  EXPECT_EQ(c.filter.agent, "counting");
  EXPECT_EQ(c.filter.policy, FailurePolicy::kFailOpen);
  EXPECT_EQ(Parse("filter attach vm1 --slot 1 --agent none").filter.policy,
            FailurePolicy::kFailClosed);
  EXPECT_EQ(Parse("filter detach vm1 --slot 2").filter.slot, 2);
  EXPECT_EQ(Error("filter attach vm1 --slot 16 --agent counting"),
            "column 26: expected a slot number (1-15), got '16'");
  EXPECT_EQ(Error("filter attach vm1 --slot 1 --agent x --policy open"),
            "column 47: expected failClosed or failOpen, got 'open'");
  EXPECT_EQ(Error("filter attach vm1 --agent counting"), "column 35: expected --slot N");
}

TEST(CommandTest, PortBindings) {
  Command c = Parse("port add web-01.eth0 --vhost-user /s --vm web-01 --mac 02:00:00:00:00:01 --ip 10.0.0.1 --ip fe80::1");
  EXPECT_EQ(c.port.vm, "web-01");
  EXPECT_EQ(c.port.mac, 0x020000000001u);
  ASSERT_EQ(c.port.ips.size(), 2u);
  EXPECT_EQ(c.port.ips[1].ToString(), "fe80::1");
  EXPECT_EQ(Error("port add a --vhost-user /s --mac ff:ff:ff:ff:ff:ff"),
            "column 34: 'ff:ff:ff:ff:ff:ff' is not a unicast MAC address");
  EXPECT_EQ(Error("port add a --vhost-user /s --ip 10.0.0"), "column 33: '10.0.0' is not an IPv4 or IPv6 address");
  EXPECT_FALSE(c.port.allow.any()) << "a VM is an ordinary guest unless its port says otherwise";
  c = Parse("port add gw --vhost-user /s --allow router,dhcp-server --allow vlan");
  EXPECT_TRUE(c.port.allow.router && c.port.allow.dhcp_server && c.port.allow.vlan);
  EXPECT_EQ(Error("port add a --vhost-user /s --allow router,nat"),
            "column 36: unknown --allow 'nat' (expected router, dhcp-server or vlan)");
  EXPECT_EQ(Error("port add up --uplink x --allow vlan"),
            "--client, --vm, --mac, --ip and --allow apply to vhost-user ports only");
}

TEST(CommandTest, FirewallCommands) {
  Command c = Parse("rules load nic-0-a-palisade-sfw.2 /etc/rules.txt");
  EXPECT_EQ(c.verb, Command::Verb::kRulesLoad);
  EXPECT_EQ(c.target, "nic-0-a-palisade-sfw.2");
  EXPECT_EQ(c.path, "/etc/rules.txt");
  EXPECT_TRUE(Parse("rules show a --stats").stats);
  c = Parse("flows show a --count --src 10.0.0.0/8 --proto tcp --dport 22");
  EXPECT_TRUE(c.count);
  EXPECT_TRUE(c.selector.has_src);
  EXPECT_EQ(c.selector.proto, 6);
  EXPECT_EQ(c.selector.dport, 22);
  EXPECT_EQ(Error("flows flush a --count"),
            "column 15: unknown option '--count' (expected --src, --dst, --proto, --sport or --dport)");
  c = Parse("addrset set a web 10.0.0.1 10.1.0.0/16");
  EXPECT_EQ(c.addrset.name, "web");
  EXPECT_EQ(c.addrset.ips.size(), 2u);
  c = Parse("firewall set a --limit 1000 --recheck off --timeout udp_first=5");
  EXPECT_EQ(*c.limit, 1000u);
  EXPECT_FALSE(*c.recheck);
  EXPECT_EQ(c.timeouts[0].first, "udp_first");
  EXPECT_EQ(Error("firewall set a --timeout udp_forever=5").substr(0, 48),
            "column 26: unknown timeout 'udp_forever' (known:");
  EXPECT_EQ(Error("firewall set a"),
            "column 15: expected --limit N, --recheck on|off or --timeout NAME=SECONDS");
}

TEST(CommandTest, ReadOnlyCommandsDoNotMutate) {
  EXPECT_FALSE(Parse("port list").mutates());
  EXPECT_FALSE(Parse("port stats vm1").mutates());
  EXPECT_EQ(Parse("port stats vm1").target, "vm1");
  EXPECT_FALSE(Parse("worker stats").mutates());
  EXPECT_FALSE(Parse("mac show").mutates());
  EXPECT_TRUE(Parse("mac flush").mutates());
  EXPECT_EQ(Parse("set mac-ageing 30").value, 30u);
  EXPECT_EQ(Error("set mac-ageing 0"), "column 16: expected seconds (1-1000000), got '0'");
}

class ConfigTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& text) {
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { std::remove(path_.c_str()); }
  std::string path_ = ::testing::TempDir() + "/palisade_config_test.conf";
};

TEST_F(ConfigTest, CommentsAndBlankLinesAreSkipped) {
  std::vector<Command> cmds;
  Status s = LoadConfig(Write("# two guests\n\nport add a --vhost-user /a\r\n  port add b --vhost-user /b --client\nset mac-ageing 60\n"), &cmds);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(cmds.size(), 3u);
  EXPECT_EQ(cmds[1].port.name, "b");
  EXPECT_TRUE(cmds[1].port.client);
}

TEST_F(ConfigTest, ErrorsNameFileLineAndColumn) {
  std::vector<Command> cmds;
  Status s = LoadConfig(Write("port add a --vhost-user /a\nport add b --vhost /b\n"), &cmds);
  EXPECT_EQ(s.message(), path_ + ":2:12: unknown option '--vhost' (expected --vhost-user PATH, "
                                 "--uplink DEVARGS, --client, --vm, --mac, --ip or --allow)");
  s = LoadConfig(Write("port list\n"), &cmds);
  EXPECT_EQ(s.message(),
            path_ + ":1:1: only commands that configure the switch belong in a config file");
  EXPECT_EQ(LoadConfig("/nonexistent/palisade.conf", &cmds).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace palisade
