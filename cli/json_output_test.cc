// palisadectl --json's encoding and its description (cli/json_output.h).
#include "cli/json_output.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include "rpc/palisade.capnp.h"

namespace palisade::cli {
namespace {

template <typename Reader>
std::string Json(Reader r, bool indent = false) {
  JsonWriter w(indent);
  WriteJson(w, capnp::toDynamic(r));
  return w.str();
}

TEST(JsonOutput, CountersAreExactNumbersPast2To53) {
  capnp::MallocMessageBuilder m;
  auto port = m.initRoot<rpc::Palisade::ListPortsResults>().initPorts(1)[0];
  port.setRxPackets((uint64_t{1} << 60) + 1);
  port.setTxBytes(UINT64_MAX);
  const std::string json = Json(m.getRoot<rpc::Palisade::ListPortsResults>().asReader());
  EXPECT_NE(json.find("\"rxPackets\":1152921504606846977,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"txBytes\":18446744073709551615,"), std::string::npos) << json;
}

TEST(JsonOutput, EveryKeyButUnusedUnionMembers) {
  capnp::MallocMessageBuilder m;
  auto port = m.initRoot<rpc::Palisade::ListPortsResults>().initPorts(1)[0];
  port.initSpec().setName("vm-a");
  port.getSpec().setUplink("net_null0");
  port.setIndex(3);
  auto drop = port.initDrops(1)[0];
  drop.setReason("rule");
  drop.setPackets(7);
  EXPECT_EQ(Json(m.getRoot<rpc::Palisade::ListPortsResults>().asReader()),
            "{\"ports\":[{\"spec\":{\"name\":\"vm-a\",\"uplink\":\"net_null0\",\"client\":false,"
            "\"vm\":\"\",\"mac\":\"\",\"ips\":[],\"allow\":[]},"
            "\"index\":3,\"link\":false,\"queuePairs\":0,\"worker\":0,"
            "\"rxPackets\":0,\"rxBytes\":0,\"txPackets\":0,\"txBytes\":0,\"consumed\":0,"
            "\"drops\":[{\"reason\":\"rule\",\"packets\":7}]}]}");
}

TEST(JsonOutput, IdsAreStringsAsTheTextViewsSpellThem) {
  capnp::MallocMessageBuilder m;
  auto flow = m.initRoot<rpc::Flow>();
  flow.setFlowId(0x558a796d00000001);
  flow.setOrigPackets(19);
  const std::string json = Json(flow.asReader());
  EXPECT_EQ(json.rfind("{\"flowId\":\"558a796d00000001\",", 0), 0u) << json;
  EXPECT_NE(json.find("\"origPackets\":19,"), std::string::npos) << json;

  capnp::MallocMessageBuilder c;
  auto status = c.initRoot<rpc::ClusterStatus>();
  status.setLease(7587862345843752969);
  status.setLastContactMillis(-1);
  status.setRevision(42);
  const std::string cluster = Json(status.asReader());
  EXPECT_NE(cluster.find("\"lease\":\"7587862345843752969\""), std::string::npos) << cluster;
  EXPECT_NE(cluster.find("\"lastContactMillis\":-1,"), std::string::npos) << cluster;
  EXPECT_NE(cluster.find("\"revision\":42,"), std::string::npos) << cluster;
}

TEST(JsonOutput, IndentedTwoSpacesALevel) {
  capnp::MallocMessageBuilder m;
  auto r = m.initRoot<rpc::Palisade::MacTableResults>();
  auto mac = r.initMacs(1)[0];
  mac.setMac("52:54:00:12:34:56");
  mac.setPort("vm-a");
  mac.setAgeSeconds(4);
  r.setAgeingSeconds(300);
  EXPECT_EQ(Json(r.asReader(), /*indent=*/true),
            "{\n"
            "  \"macs\": [\n"
            "    {\n"
            "      \"mac\": \"52:54:00:12:34:56\",\n"
            "      \"port\": \"vm-a\",\n"
            "      \"ageSeconds\": 4\n"
            "    }\n"
            "  ],\n"
            "  \"ageingSeconds\": 300\n"
            "}");
  capnp::MallocMessageBuilder e;
  EXPECT_EQ(Json(e.initRoot<rpc::Palisade::SetRulesResults>().asReader(), true), "{}");
}

bool Has(const std::vector<JsonField>& fields, const JsonField& want) {
  for (const JsonField& f : fields) {
    if (f.path == want.path && f.type == want.type && f.note == want.note) return true;
  }
  return false;
}

TEST(JsonOutput, DescriptionFollowsTheSchema) {
  const auto ports = DescribeJson(capnp::Schema::from<rpc::Palisade::ListPortsResults>());
  EXPECT_TRUE(Has(ports, {".ports[].rxPackets", "number", ""}));
  EXPECT_TRUE(Has(ports, {".ports[].link", "bool", ""}));
  EXPECT_TRUE(Has(ports, {".ports[].spec.name", "string", ""}));
  EXPECT_TRUE(Has(ports, {".ports[].spec.vhostUser", "string", "one of vhostUser, uplink"}));
  EXPECT_TRUE(Has(ports, {".ports[].spec.uplink", "string", "one of vhostUser, uplink"}));
  EXPECT_TRUE(Has(ports, {".ports[].spec.ips[]", "string", ""}));
  EXPECT_TRUE(Has(ports, {".ports[].drops[].packets", "number", ""}));
  EXPECT_EQ(ports.size(), 19u);  // every leaf of PortSpec, PortInfo and DropCount

  const auto flows = DescribeJson(capnp::Schema::from<rpc::Flow>(), ".flows[]");
  EXPECT_TRUE(Has(flows, {".flows[].flowId", "string", "id, 16 hex digits"}));
  EXPECT_TRUE(Has(flows, {".flows[].origBytes", "number", ""}));
  const auto cluster = DescribeJson(capnp::Schema::from<rpc::Palisade::ClusterStatusResults>());
  EXPECT_TRUE(Has(cluster, {".status.lease", "string", "id, decimal"}));
  EXPECT_TRUE(Has(cluster, {".status.revision", "number", ""}));
}

}  // namespace
}  // namespace palisade::cli
