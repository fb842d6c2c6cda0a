#include "migration/port_state.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include <capnp/message.h>

namespace palisade::migration {
namespace {

PortExport Sample() {
  PortExport e;
  e.spec.name = "web-01.eth0";
  e.spec.kind = PortKind::kVhostUser;
  e.spec.path = "/run/palisade/web-01.sock";
  e.spec.client = true;
  e.spec.vm = "web-01";
  e.spec.mac = 0x0250569a0001;
  e.spec.ips = {*fw::IpAddr::Parse("172.16.10.12"), *fw::IpAddr::Parse("fe80::250:56ff:fe9a:1")};
  e.slots = {{1, "swsec", FailurePolicy::kFailClosed}, {2, "sfw", FailurePolicy::kFailOpen}};
  e.rules = "ruleset t {\n  # Filter rules\n  rule 1 at 1 inout protocol any from any to any accept;\n}\n";
  e.generation = 7;
  e.options.conn_limit = 5000;
  e.options.recheck = false;
  (void)e.options.timeouts.Set("tcp_established", 1234);
  fw::Conn c{};
  c.lo = *fw::IpAddr::Parse("172.16.10.11");
  c.hi = *fw::IpAddr::Parse("172.16.10.12");
  c.lo_port = 22;
  c.hi_port = 44194;
  c.proto = 6;
  c.state = fw::ConnState::kEstablished;
  c.flags = fw::kConnLog;
  c.reason = fw::CloseReason::kNone;
  c.rule_id = 1006;
  c.rule_pos = 1;
  c.generation = 7;
  c.flow_id = 0x558a796d00000001;
  c.pkts[0] = 19;
  c.pkts[1] = 18;
  c.bytes[0] = 3017;
  c.bytes[1] = 2957;
  c.expires_s = 43000;
  c.peer[0] = fw::TcpPeer{1001, 70000, 65535, 7, fw::kPeerWscale, 0};
  c.peer[1] = fw::TcpPeer{5001, 80000, 29200, 7, fw::kPeerWscale | fw::kPeerFin, 0};
  e.conns = {c};
  e.vm_addresses["web-02"] = {*fw::IpAddr::Parse("172.16.10.13")};
  e.vm_addresses["gone"] = {};
  e.learned_mac = 0x0250569a0077;
  e.learned_ips = {*fw::IpAddr::Parse("172.16.10.99")};
  return e;
}

void ExpectSame(const PortExport& a, const PortExport& b) {
  EXPECT_EQ(a.spec.name, b.spec.name);
  EXPECT_EQ(a.spec.path, b.spec.path);
  EXPECT_EQ(a.spec.client, b.spec.client);
  EXPECT_EQ(a.spec.vm, b.spec.vm);
  EXPECT_EQ(a.spec.mac, b.spec.mac);
  EXPECT_EQ(a.spec.ips, b.spec.ips);
  ASSERT_EQ(a.slots.size(), b.slots.size());
  for (size_t i = 0; i < a.slots.size(); i++) {
    EXPECT_EQ(a.slots[i].slot, b.slots[i].slot);
    EXPECT_EQ(a.slots[i].agent, b.slots[i].agent);
    EXPECT_EQ(a.slots[i].policy, b.slots[i].policy);
  }
  EXPECT_EQ(a.rules, b.rules);
  EXPECT_EQ(a.generation, b.generation);
  EXPECT_EQ(a.options.conn_limit, b.options.conn_limit);
  EXPECT_EQ(a.options.recheck, b.options.recheck);
  EXPECT_EQ(a.options.timeouts, b.options.timeouts);
  EXPECT_EQ(a.vm_addresses, b.vm_addresses);
  EXPECT_EQ(a.learned_mac, b.learned_mac);
  EXPECT_EQ(a.learned_ips, b.learned_ips);
  ASSERT_EQ(a.conns.size(), b.conns.size());
  for (size_t i = 0; i < a.conns.size(); i++) {
    EXPECT_EQ(0, std::memcmp(&a.conns[i], &b.conns[i], sizeof(fw::Conn))) << "every field of entry " << i;
  }
}

TEST(PortStateTest, RoundTripKeepsEveryField) {
  const PortExport in = Sample();
  capnp::MallocMessageBuilder message;
  Write(in, message.initRoot<PortState>());
  PortExport out;
  Status s = Read(message.getRoot<PortState>().asReader(), &out);
  ASSERT_TRUE(s.ok()) << s.message();
  ExpectSame(in, out);
}

TEST(PortStateTest, RefusesAVersionItCannotRead) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<PortState>();
  Write(Sample(), root);
  root.setVersion(CURRENT_VERSION + 1);
  PortExport out;
  Status s = Read(root.asReader(), &out);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message(), "port state version 2 cannot be read here (this switch reads version 1)");
}

TEST(PortStateTest, RefusesMalformedEntries) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<PortState>();
  Write(Sample(), root);
  root.getConnections()[0].setLo(capnp::Data::Reader(reinterpret_cast<const uint8_t*>("short"), 5));
  PortExport out;
  EXPECT_EQ(Read(root.asReader(), &out).message(), "port 'web-01.eth0': a malformed connection entry");
}

TEST(PortStateTest, DeltaRoundTripAndVersion) {
  Delta in;
  in.name = "web-01.eth0";
  in.round = 3;
  in.final = true;
  in.changed = Sample().conns;
  in.removed = {in.changed[0].key()};
  in.removed[0].lo_port = 23;
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<PortDelta>();
  WriteDelta(in, root);
  Delta out;
  Status s = ReadDelta(root.asReader(), &out);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(out.name, in.name);
  EXPECT_EQ(out.round, 3u);
  EXPECT_TRUE(out.final);
  ASSERT_EQ(out.changed.size(), 1u);
  EXPECT_EQ(0, std::memcmp(&out.changed[0], &in.changed[0], sizeof(fw::Conn)));
  ASSERT_EQ(out.removed.size(), 1u);
  EXPECT_EQ(out.removed[0], in.removed[0]);

  root.setVersion(CURRENT_VERSION + 1);
  EXPECT_EQ(ReadDelta(root.asReader(), &out).message(),
            "port delta version 2 cannot be read here (this switch reads version 1)");
}

TEST(PortStateTest, SwitchStateFileRoundTripAndErrors) {
  const std::string path = ::testing::TempDir() + "/palisade_state_test.state";
  std::vector<PortExport> ports = {Sample(), Sample()};
  ports[1].spec.name = "db-01.eth0";
  ASSERT_TRUE(SaveSwitchState(path, ports).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  std::vector<PortExport> loaded;
  Status s = LoadSwitchState(path, &loaded);
  ASSERT_TRUE(s.ok()) << s.message();
  ASSERT_EQ(loaded.size(), 2u);
  ExpectSame(ports[1], loaded[1]);

  std::FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("not a state file at all, just text", f);
  std::fclose(f);
  loaded.clear();
  s = LoadSwitchState(path, &loaded);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a switch state file"), std::string::npos) << s.message();
  std::remove(path.c_str());
  EXPECT_EQ(LoadSwitchState(path, &loaded).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace palisade::migration
