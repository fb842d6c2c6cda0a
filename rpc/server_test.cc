// In-process RPC tests: the real server (its kj thread, the hand-off to a libev control loop,
// a real Switch on DPDK's EAL without hugepages) and a client in the test thread over the unix
// socket. Every method, and its error paths.
#include "rpc/server.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <filesystem>

#include "migration/port_state.capnp.h"
#include "rpc/palisade.capnp.h"
#include "vswitch/control_plane_fixture.h"

namespace palisade::rpc {
namespace {

// The client side; kj's owners may throw from destructors, so they live behind one pointer.
struct ClientSide {
  explicit ClientSide(const std::string& path)
      : io(kj::setupAsyncIo()),
        stream(io.provider->getNetwork().parseAddress(kj::str("unix:", path.c_str()))
                   .wait(io.waitScope)->connect().wait(io.waitScope)),
        client(*stream),
        cap(client.bootstrap().castAs<Palisade>()) {}
  kj::AsyncIoContext io;
  kj::Own<kj::AsyncIoStream> stream;
  capnp::TwoPartyClient client;
  Palisade::Client cap;
};

class RpcServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(testenv::InitTestEal("rpctest")); }
  static void TearDownTestSuite() { testenv::CleanupTestEal(); }

  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("palisade-rpctest-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    ASSERT_TRUE(testenv::ControlPlaneSwitch(&sw_).ok());
    control_ = std::make_unique<testenv::ControlLoopThread>();
    RpcServer::Endpoints endpoints;
    endpoints.path = path("rpc");
    ASSERT_TRUE(RpcServer::Start(endpoints, sw_.get(), control_->queue(), nullptr, &server_).ok());
    client_.reset(new ClientSide(path("rpc")));
  }

  void TearDown() override {
    client_.reset();
    server_.reset();
    control_.reset();
    sw_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string path(const std::string& name) { return (dir_ / name).string(); }
  kj::WaitScope& ws() { return client_->io.waitScope; }
  Palisade::Client& cap() { return client_->cap; }

  // The description of the exception a call ended with ("" when it succeeded).
  // Requests are consumed by send(): each call builds its own.
  template <typename Req>
  std::string Error(Req&& req) {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { req.send().wait(ws()); })) {
      return e->getDescription().cStr();
    }
    return "";
  }

  void AddPort(const std::string& name) {
    auto req = cap().addPortRequest();
    req.getSpec().setName(name);
    req.getSpec().setVhostUser(path(name + ".sock"));
    req.getSpec().setVm("vm-" + name);
    req.getSpec().initIps(1).set(0, "10.0.0.1");
    req.send().wait(ws());
  }

  void AttachSfw(const std::string& port) {
    auto req = cap().attachFilterRequest();
    req.setPort(port);
    req.setSlot(2);
    req.setAgent("sfw");
    req.send().wait(ws());
  }

  std::filesystem::path dir_;
  std::unique_ptr<Switch> sw_;
  std::unique_ptr<testenv::ControlLoopThread> control_;
  std::unique_ptr<RpcServer> server_;
  std::unique_ptr<ClientSide> client_;
};

TEST_F(RpcServerTest, PortsAddListRemoveAndTheirErrors) {
  AddPort("a");
  auto list = cap().listPortsRequest().send().wait(ws());
  ASSERT_EQ(list.getPorts().size(), 1u);
  EXPECT_EQ(list.getPorts()[0].getSpec().getName(), "a");
  EXPECT_EQ(list.getPorts()[0].getSpec().getVm(), "vm-a");
  EXPECT_FALSE(list.getPorts()[0].getLink());
  EXPECT_GT(list.getPorts()[0].getDrops().size(), 5u);

  auto dup = cap().addPortRequest();
  dup.getSpec().setName("a");
  dup.getSpec().setVhostUser(path("other.sock"));
  EXPECT_NE(Error(dup).find("port 'a' already exists"), std::string::npos);
  auto bad_mac = cap().addPortRequest();
  bad_mac.getSpec().setName("b");
  bad_mac.getSpec().setVhostUser(path("b.sock"));
  bad_mac.getSpec().setMac("ff:ff:ff:ff:ff:ff");
  EXPECT_NE(Error(bad_mac).find("is not a unicast MAC address"), std::string::npos);
  auto one = cap().listPortsRequest();
  one.setName("nosuch");
  EXPECT_NE(Error(one).find("no port 'nosuch'"), std::string::npos);

  auto del = [&]() {
    auto req = cap().removePortRequest();
    req.setName("a");
    return req;
  };
  del().send().wait(ws());
  EXPECT_FALSE(std::filesystem::exists(path("a.sock")));
  EXPECT_NE(Error(del()).find("no port 'a'"), std::string::npos);
}

TEST_F(RpcServerTest, FiltersRulesAndAddressSets) {
  AddPort("a");
  auto attach = [&](const char* agent) {
    auto req = cap().attachFilterRequest();
    req.setPort("a");
    req.setSlot(2);
    req.setAgent(agent);
    return req;
  };
  attach("sfw").send().wait(ws());
  EXPECT_NE(Error(attach("magic")).find("unknown filter agent 'magic'"), std::string::npos);

  auto summary = cap().summarizeFiltersRequest().send().wait(ws());
  ASSERT_EQ(summary.getPorts()[0].getSlots().size(), 1u);
  EXPECT_EQ(summary.getPorts()[0].getSlots()[0].getName(), "nic-0-a-palisade-sfw.2");
  EXPECT_FALSE(summary.getPorts()[0].getSlots()[0].getFailOpen());

  const char* kRules = "ruleset t {\n  # Filter rules\n  rule 7 at 1 inout protocol tcp from addrset me to any port 22 accept;\n}\n";
  auto set = [&](const std::string& text) {
    auto req = cap().setRulesRequest();
    req.setFilter("nic-0-a-palisade-sfw.2");
    req.setText(text);
    return req;
  };
  auto get = [&](const char* filter) {
    auto req = cap().getRulesRequest();
    req.setFilter(filter);
    return req;
  };
  set(std::string("addrset me { vm vm-a, }\n") + kRules).send().wait(ws());
  auto rules = get("a").send().wait(ws());
  EXPECT_EQ(std::string(rules.getText().cStr()), kRules);
  ASSERT_EQ(rules.getStats().size(), 1u);
  EXPECT_EQ(rules.getStats()[0].getRuleId(), 7u);

  const std::string bad = Error(set("ruleset t {\n rule 1 inout protocol tcp from any to any port 99999 accept; }"));
  EXPECT_NE(bad.find("line 2, column 49: expected a port or range"), std::string::npos) << bad;
  EXPECT_EQ(std::string(get("a").send().wait(ws()).getText().cStr()), kRules) << "nothing changed";
  EXPECT_NE(Error(get("nosuch")).find("no stateful firewall 'nosuch'"), std::string::npos);

  auto sets = [&]() {
    auto req = cap().getAddrSetsRequest();
    req.setFilter("a");
    return std::string(req.send().wait(ws()).getText().cStr());
  };
  EXPECT_NE(sets().find("vm vm-a,  # now: 10.0.0.1"), std::string::npos);
  auto setset = [&](const char* addr) {
    auto req = cap().setAddrSetRequest();
    req.setFilter("a");
    req.setName("extra");
    req.initAddresses(1).set(0, addr);
    return req;
  };
  setset("10.9.0.0/16").send().wait(ws());
  EXPECT_NE(sets().find("ip 10.9.0.0/16,"), std::string::npos);
  EXPECT_NE(Error(setset("10.9.0.1/16")).find("has host bits set"), std::string::npos);

  auto detach = [&](uint8_t slot) {
    auto req = cap().detachFilterRequest();
    req.setPort("a");
    req.setSlot(slot);
    return req;
  };
  EXPECT_NE(Error(detach(3)).find("port 'a' has no slot 3"), std::string::npos);
  detach(2).send().wait(ws());
}

TEST_F(RpcServerTest, FlowsFirewallWorkersMacsConnections) {
  AddPort("a");
  AttachSfw("a");

  auto flows = [&](const char* src) {
    auto req = cap().getFlowsRequest();
    req.setFilter("a");
    req.getSelector().setSrc(src);
    return req;
  };
  auto page = flows("").send().wait(ws());
  EXPECT_TRUE(page.getDone());
  EXPECT_EQ(page.getFlows().size(), 0u);
  EXPECT_NE(Error(flows("10.0.0.1/8")).find("has host bits set"), std::string::npos);
  auto count = cap().countFlowsRequest();
  count.setFilter("a");
  EXPECT_EQ(count.send().wait(ws()).getCount(), 0u);
  auto flush = cap().flushFlowsRequest();
  flush.setFilter("a");
  EXPECT_EQ(flush.send().wait(ws()).getFlushed(), 0u);

  auto setfw = [&](const char* timeout) {
    auto req = cap().setFirewallRequest();
    req.setFilter("a");
    req.setConnectionLimit(1234);
    req.setRecheck(0);
    auto t = req.initTimeouts(1);
    t[0].setName(timeout);
    t[0].setSeconds(5);
    return req;
  };
  setfw("udp_first").send().wait(ws());
  auto getfw = cap().getFirewallRequest();
  getfw.setFilter("a");
  auto got = getfw.send().wait(ws());  // the response outlives the reader into it
  auto o = got.getOptions();
  EXPECT_EQ(o.getConnectionLimit(), 1234u);
  EXPECT_FALSE(o.getRecheck());
  bool found = false;
  for (auto x : o.getTimeouts()) found |= x.getName() == "udp_first" && x.getSeconds() == 5;
  EXPECT_TRUE(found);
  EXPECT_NE(Error(setfw("udp_forever")).find("unknown timeout 'udp_forever'"), std::string::npos);

  EXPECT_EQ(cap().workerStatsRequest().send().wait(ws()).getWorkers().size(), 1u);
  auto macs = cap().macTableRequest().send().wait(ws());
  EXPECT_EQ(macs.getMacs().size(), 0u);
  EXPECT_EQ(macs.getAgeingSeconds(), 300u);
  auto exec = [&](const char* line) {
    auto req = cap().executeRequest();
    req.setLine(line);
    return std::string(req.send().wait(ws()).getReply().cStr());
  };
  EXPECT_EQ(exec("set mac-ageing 60"), "{\"ok\":true}");
  EXPECT_EQ(cap().macTableRequest().send().wait(ws()).getAgeingSeconds(), 60u);
  EXPECT_EQ(exec("port frob"), "{\"ok\":false,\"error\":\"column 6: expected add, del, list or stats, got 'frob'\"}");
  // The daemon opens no file a client names (it runs as root; a client may not).
  EXPECT_NE(exec("rules load a /etc/shadow").find("names a file only in the config file"), std::string::npos);
  auto tail = cap().tailLogRequest();
  tail.setLines(10);
  auto log = tail.send().wait(ws());
  EXPECT_EQ(log.getLines().size(), 0u);
  EXPECT_EQ(log.getLost(), 0u);

  auto conns = cap().connectionsRequest().send().wait(ws());
  ASSERT_EQ(conns.getConnections().size(), 1u);
  EXPECT_NE(std::string(conns.getConnections()[0].getPeer().cStr()).find("unix pid"), std::string::npos);
  EXPECT_EQ(conns.getConnections()[0].getKind(), "unknown");
  auto hello = cap().helloRequest();
  hello.setKind("manager");
  hello.setName("orchestrator-7");
  hello.send().wait(ws());
  auto said = cap().connectionsRequest().send().wait(ws());
  EXPECT_EQ(said.getConnections()[0].getKind(), "manager");
  EXPECT_EQ(said.getConnections()[0].getName(), "orchestrator-7");
  auto bad = cap().helloRequest();
  bad.setKind("robot");
  EXPECT_NE(Error(bad).find("hello: kind must be cli, manager or switch, not 'robot'"), std::string::npos);
}

TEST_F(RpcServerTest, ExportAndImportAPort) {
  AddPort("a");
  AttachSfw("a");
  auto set = cap().setRulesRequest();
  set.setFilter("a");
  set.setText("ruleset t { rule 5 inout protocol any from any to any accept; }");
  set.send().wait(ws());

  auto ex = cap().exportPortRequest();
  ex.setName("a");
  auto exported = ex.send().wait(ws());
  auto state = exported.getState();
  EXPECT_EQ(state.getVersion(), migration::CURRENT_VERSION);
  EXPECT_EQ(state.getName(), "a");
  EXPECT_EQ(state.getVm(), "vm-a");
  ASSERT_EQ(state.getSlots().size(), 1u);
  EXPECT_EQ(state.getSlots()[0].getAgent(), "sfw");
  EXPECT_NE(std::string(state.getRules().cStr()).find("rule 5 at 1"), std::string::npos);

  // Into this switch under another name and socket: a new port with the same filter state.
  capnp::MallocMessageBuilder copy;
  copy.setRoot(state);
  auto renamed = copy.getRoot<migration::PortState>();
  renamed.setName("b");
  auto im = cap().importPortRequest();
  im.setState(renamed.asReader());
  im.setSocket(path("b.sock"));
  EXPECT_EQ(im.send().wait(ws()).getConnections(), 0u);
  auto rules = cap().getRulesRequest();
  rules.setFilter("b");
  EXPECT_NE(std::string(rules.send().wait(ws()).getText().cStr()).find("rule 5 at 1"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(path("b.sock")));

  // An import that fails half-way (a limit out of range, found after the port was made)
  // leaves no port behind.
  renamed.setName("c");
  renamed.setConnectionLimit(0);
  auto half = cap().importPortRequest();
  half.setState(renamed.asReader());
  half.setSocket(path("c.sock"));
  EXPECT_NE(Error(half).find("the connection limit must be 1-16000000"), std::string::npos);
  auto ports = cap().listPortsRequest().send().wait(ws());
  for (auto p : ports.getPorts()) EXPECT_NE(std::string(p.getSpec().getName().cStr()), "c");
  EXPECT_FALSE(std::filesystem::exists(path("c.sock")));

  renamed.setVersion(migration::CURRENT_VERSION + 1);
  auto bad = cap().importPortRequest();
  bad.setState(renamed.asReader());
  EXPECT_NE(Error(bad).find("port state version 2 cannot be read here"), std::string::npos);
  auto missing = cap().exportPortRequest();
  missing.setName("nosuch");
  EXPECT_NE(Error(missing).find("no port 'nosuch'"), std::string::npos);
}

// The destination's side of a live migration driven by hand: the port arrives closed, takes a
// delta, and an abort discards it. Then the source's errors: nothing starts, nothing changes.
TEST_F(RpcServerTest, LiveMigrationProtocolAndItsErrors) {
  AddPort("a");
  AttachSfw("a");
  auto ex = cap().exportPortRequest();
  ex.setName("a");
  auto exported = ex.send().wait(ws());
  capnp::MallocMessageBuilder copy;
  copy.setRoot(exported.getState());
  auto state = copy.getRoot<migration::PortState>();
  state.setName("b");

  auto in = cap().incomingRequest();
  in.setState(state.asReader());
  in.setSocket(path("b.sock"));
  auto arrived = in.send().wait(ws());
  auto session = arrived.getSession();
  auto list = [&] { return cap().migrationsRequest().send().wait(ws()); };
  {
    auto l = list();
    ASSERT_EQ(l.getMigrations().size(), 1u);
    EXPECT_EQ(l.getMigrations()[0].getPort(), "b");
    EXPECT_EQ(l.getMigrations()[0].getDirection(), "in");
    EXPECT_EQ(l.getMigrations()[0].getPhase(), "incoming");
  }
  auto summary = cap().summarizeFiltersRequest().send().wait(ws());
  bool gated = false;
  for (auto p : summary.getPorts()) {
    for (auto f : p.getSlots()) gated |= std::string(f.getAgent().cStr()) == "palisade-migration" && p.getPort() == "b";
  }
  EXPECT_TRUE(gated) << "closed until its device starts";

  auto arriving = cap().exportPortRequest();  // nor saved across a restart: incomplete
  arriving.setName("b");
  EXPECT_NE(Error(arriving).find("port 'b' is still arriving by live migration"), std::string::npos);

  auto again = cap().incomingRequest();
  again.setState(state.asReader());
  EXPECT_NE(Error(again).find("port 'b' is already arriving here"), std::string::npos);

  auto wrong = session.deltaRequest();
  wrong.getDelta().setVersion(migration::CURRENT_VERSION);
  wrong.getDelta().setName("a");
  EXPECT_NE(Error(wrong).find("a delta for port 'a' sent to 'b'"), std::string::npos);
  auto delta = session.deltaRequest();
  delta.getDelta().setVersion(migration::CURRENT_VERSION);
  delta.getDelta().setName("b");
  delta.getDelta().setFinal(true);
  EXPECT_EQ(delta.send().wait(ws()).getTaken(), 0u);
  EXPECT_EQ(list().getMigrations()[0].getPhase(), "ready");
  // What a source restarted in the middle of the cut-over asks (handover), and the copy it
  // may reclaim only if it is that copy's source.
  auto handover = [&](const char* port) {
    auto req = cap().handoverRequest();
    req.setPort(port);
    return std::string(req.send().wait(ws()).getPhase().cStr());
  };
  EXPECT_EQ(handover("b"), "ready");
  EXPECT_EQ(handover("a"), "running");
  EXPECT_EQ(handover("nosuch"), "absent");
  auto hello = cap().helloRequest();
  hello.setKind("switch");
  hello.setName("another-switch");
  hello.send().wait(ws());
  auto reclaim = cap().reclaimRequest();
  reclaim.setPort("b");
  EXPECT_NE(Error(reclaim).find("port 'b' is not arriving from another-switch"), std::string::npos);
  EXPECT_EQ(list().getMigrations()[0].getPhase(), "ready");

  auto abort = session.abortRequest();
  abort.setReason("test");
  abort.send().wait(ws());
  EXPECT_EQ(list().getMigrations()[0].getPhase(), "discarded");
  EXPECT_EQ(std::string(list().getMigrations()[0].getError().cStr()), "cancelled by the source: test");
  auto port_count = [&] { return cap().listPortsRequest().send().wait(ws()).getPorts().size(); };
  for (int i = 0; i < 100 && port_count() != 1; i++) usleep(10000);  // removed on the control thread
  EXPECT_EQ(port_count(), 1u) << "the copy is gone";
  EXPECT_EQ(handover("b"), "absent");

  state.setVersion(migration::CURRENT_VERSION + 1);
  auto bad = cap().incomingRequest();
  bad.setState(state.asReader());
  EXPECT_NE(Error(bad).find("port state version 2 cannot be read here"), std::string::npos);

  // The source's errors.
  auto nosuch = cap().migrateRequest();
  nosuch.setPort("nosuch");
  nosuch.setTo(path("rpc"));
  EXPECT_NE(Error(nosuch).find("no port 'nosuch'"), std::string::npos);
  auto to_self = cap().migrateRequest();  // this switch has port 'a' already
  to_self.setPort("a");
  to_self.setTo(path("rpc"));
  EXPECT_NE(Error(to_self).find("destination: port 'a' already exists here"), std::string::npos);
  auto tcp = cap().migrateRequest();
  tcp.setPort("a");
  tcp.setTo("localhost:1");
  EXPECT_NE(Error(tcp).find("needs this switch's --tls-cert, --tls-key and --tls-ca"), std::string::npos);
  auto cancel = cap().cancelMigrationRequest();
  cancel.setPort("a");
  EXPECT_NE(Error(cancel).find("no migration of port 'a' is in progress"), std::string::npos);
  bool failed = false;
  auto migrations = list();  // the response outlives the loop over it
  for (auto m : migrations.getMigrations()) failed |= m.getPort() == "a" && m.getPhase() == "failed";
  EXPECT_TRUE(failed);
}

}  // namespace
}  // namespace palisade::rpc
