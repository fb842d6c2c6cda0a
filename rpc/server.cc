#include "rpc/server.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <ctime>
#include <functional>
#include <future>
#include <mutex>
#include <vector>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include "common/utc_time.h"
#include "firewall/rule_text.h"
#include "rpc/errors.h"
#include "rpc/migration_service.h"
#include "rpc/palisade.capnp.h"
#include "migration/port_state.h"
#include "vswitch/control.h"
#include "vswitch/mac_addr.h"
#include "vswitch/socket_path.h"

namespace palisade::rpc {
namespace {

Status ToSpec(PortSpec::Reader r, palisade::PortSpec* out) {
  out->name = Str(r.getName());
  if (r.isVhostUser()) {
    out->kind = PortKind::kVhostUser;
    out->path = Str(r.getVhostUser());
  } else {
    out->kind = PortKind::kUplink;
    out->devargs = Str(r.getUplink());
  }
  out->client = r.getClient();
  out->vm = Str(r.getVm());
  if (r.hasMac() && r.getMac().size() > 0) {
    auto mac = MacParse(Str(r.getMac()));
    if (!mac || MacIsMulticast(*mac) || *mac == 0) {
      return Status::Invalid("'" + Str(r.getMac()) + "' is not a unicast MAC address");
    }
    out->mac = *mac;
  }
  for (auto ip : r.getIps()) {
    auto a = fw::IpAddr::Parse(Str(ip));
    if (!a) return Status::Invalid("'" + Str(ip) + "' is not an IPv4 or IPv6 address");
    out->ips.push_back(*a);
  }
  if ((out->client || !out->vm.empty() || out->mac || !out->ips.empty()) && out->kind != PortKind::kVhostUser) {
    return Status::Invalid("client, vm, mac and ips apply to vhost-user ports only");
  }
  return Status::Ok();
}

void FromSpec(const palisade::PortSpec& s, PortSpec::Builder b) {
  b.setName(s.name);
  if (s.kind == PortKind::kVhostUser) {
    b.setVhostUser(s.path);
  } else {
    b.setUplink(s.devargs);
  }
  b.setClient(s.client);
  b.setVm(s.vm);
  if (s.mac) b.setMac(MacToString(s.mac));
  auto ips = b.initIps(static_cast<unsigned>(s.ips.size()));
  for (unsigned i = 0; i < s.ips.size(); i++) ips.set(i, s.ips[i].ToString());
}

Status ToSelector(FlowSelector::Reader r, fw::FlowSelector* out) {
  std::string error;
  if (r.getSrc().size() > 0) {
    auto p = fw::IpPrefix::Parse(Str(r.getSrc()), &error);
    if (!p) return Status::Invalid("source selector: " + error);
    out->has_src = true;
    out->src = *p;
  }
  if (r.getDst().size() > 0) {
    auto p = fw::IpPrefix::Parse(Str(r.getDst()), &error);
    if (!p) return Status::Invalid("destination selector: " + error);
    out->has_dst = true;
    out->dst = *p;
  }
  if (r.getProto() > 255 || r.getSrcPort() > 65535 || r.getDstPort() > 65535) {
    return Status::Invalid("protocol must be 0-255 and ports 0-65535");
  }
  out->proto = r.getProto() < 0 ? fw::kAny : r.getProto();
  out->sport = r.getSrcPort() < 0 ? fw::kAny : r.getSrcPort();
  out->dport = r.getDstPort() < 0 ? fw::kAny : r.getDstPort();
  return Status::Ok();
}

struct ConnectionRecord {
  std::string peer;
  std::string since;
  std::string kind = "unknown";  // until the client says (hello)
  std::string name;
};

// The connections the server has now; written and read on the RPC thread only.
using Connections = std::vector<std::shared_ptr<ConnectionRecord>>;

class PalisadeImpl final : public Palisade::Server {
 public:
  // One per client connection: `self` is that connection's entry in the connection list.
  PalisadeImpl(Switch* sw, ControlQueue* queue, Connections* connections,
               MigrationService* migrations, std::shared_ptr<ConnectionRecord> self)
      : sw_(sw), q_(queue), connections_(connections), migrations_(migrations), self_(kj::mv(self)) {}

  kj::Promise<void> addPort(AddPortContext context) override {
    palisade::PortSpec spec;
    Check(ToSpec(context.getParams().getSpec(), &spec));
    return q_->Run<bool>([this, spec]() { Check(sw_->AddPort(spec)); return true; }).ignoreResult();
  }

  kj::Promise<void> removePort(RemovePortContext context) override {
    std::string name = Str(context.getParams().getName());
    return q_->Run<bool>([this, name]() { Check(sw_->RemovePort(name)); return true; }).ignoreResult();
  }

  kj::Promise<void> listPorts(ListPortsContext context) override {
    std::string name = Str(context.getParams().getName());
    return q_->Run<std::vector<PortInfo_>>([this, name]() {
      std::vector<PortInfo_> ports;
      if (name.empty()) {
        ports = sw_->Ports();
      } else {
        ports.resize(1);
        Check(sw_->GetPort(name, &ports[0]));
      }
      return ports;
    }).then([context](std::vector<PortInfo_> ports) mutable {
      auto list = context.getResults().initPorts(static_cast<unsigned>(ports.size()));
      for (unsigned i = 0; i < ports.size(); i++) {
        const PortInfo_& p = ports[i];
        auto b = list[i];
        FromSpec(p.spec, b.initSpec());
        b.setIndex(p.index);
        b.setLink(p.link_up);
        b.setQueuePairs(p.queue_pairs);
        b.setWorker(p.worker);
        b.setRxPackets(p.totals.rx_packets);
        b.setRxBytes(p.totals.rx_bytes);
        b.setTxPackets(p.totals.tx_packets);
        b.setTxBytes(p.totals.tx_bytes);
        b.setConsumed(p.totals.consumed);
        const unsigned n = static_cast<unsigned>(DropReason::kCount) - 1;
        auto drops = b.initDrops(n);
        for (unsigned r = 0; r < n; r++) {
          drops[r].setReason(DropReasonName(static_cast<DropReason>(r + 1)));
          drops[r].setPackets(p.totals.drops[r + 1]);
        }
      }
    });
  }

  kj::Promise<void> attachFilter(AttachFilterContext context) override {
    auto p = context.getParams();
    FilterSpec spec{p.getSlot(), Str(p.getAgent()),
                    p.getFailOpen() ? FailurePolicy::kFailOpen : FailurePolicy::kFailClosed};
    std::string port = Str(p.getPort());
    return q_->Run<bool>([this, port, spec]() { Check(sw_->AttachFilter(port, spec)); return true; })
        .ignoreResult();
  }

  kj::Promise<void> detachFilter(DetachFilterContext context) override {
    auto p = context.getParams();
    std::string port = Str(p.getPort());
    uint8_t slot = p.getSlot();
    return q_->Run<bool>([this, port, slot]() { Check(sw_->DetachFilter(port, slot)); return true; })
        .ignoreResult();
  }

  kj::Promise<void> summarizeFilters(SummarizeFiltersContext context) override {
    return q_->Run<std::vector<PortInfo_>>([this]() { return sw_->Ports(); })
        .then([context](std::vector<PortInfo_> ports) mutable {
          auto list = context.getResults().initPorts(static_cast<unsigned>(ports.size()));
          for (unsigned i = 0; i < ports.size(); i++) {
            list[i].setPort(ports[i].name);
            list[i].setIndex(ports[i].index);
            list[i].setVm(ports[i].spec.vm);
            auto slots = list[i].initSlots(static_cast<unsigned>(ports[i].slots.size()));
            for (unsigned s = 0; s < ports[i].slots.size(); s++) {
              const SlotInfo& si = ports[i].slots[s];
              slots[s].setSlot(si.slot);
              slots[s].setName(si.name);
              slots[s].setAgent(si.agent);
              slots[s].setFailOpen(si.policy == FailurePolicy::kFailOpen);
            }
          }
        });
  }

  kj::Promise<void> getRules(GetRulesContext context) override {
    std::string filter = Str(context.getParams().getFilter());
    struct Out {
      std::string text;
      std::vector<fw::RuleStats> stats;
      std::vector<fw::Rule> rules;
    };
    return q_->Run<Out>([this, filter]() {
      Out o;
      Check(sw_->GetRules(filter, &o.text, &o.stats, &o.rules));
      return o;
    }).then([context](Out o) mutable {
      auto r = context.getResults();
      r.setText(o.text);
      const size_t n = std::min(o.stats.size(), o.rules.size());
      auto list = r.initStats(static_cast<unsigned>(n));
      for (unsigned i = 0; i < n; i++) {
        list[i].setRuleId(o.rules[i].id);
        list[i].setPosition(o.rules[i].pos);
        list[i].setEvals(o.stats[i].evals);
        list[i].setInPackets(o.stats[i].pkts[0]);
        list[i].setOutPackets(o.stats[i].pkts[1]);
        list[i].setInBytes(o.stats[i].bytes[0]);
        list[i].setOutBytes(o.stats[i].bytes[1]);
      }
    });
  }

  kj::Promise<void> setRules(SetRulesContext context) override {
    std::string filter = Str(context.getParams().getFilter());
    std::string text = Str(context.getParams().getText());
    return q_->Run<bool>([this, filter, text]() { Check(sw_->LoadRules(filter, text)); return true; })
        .ignoreResult();
  }

  kj::Promise<void> getAddrSets(GetAddrSetsContext context) override {
    std::string filter = Str(context.getParams().getFilter());
    return q_->Run<std::string>([this, filter]() {
      std::string text;
      Check(sw_->GetAddrSets(filter, &text));
      return text;
    }).then([context](std::string text) mutable { context.getResults().setText(text); });
  }

  kj::Promise<void> setAddrSet(SetAddrSetContext context) override {
    auto p = context.getParams();
    std::string filter = Str(p.getFilter());
    fw::AddrSet set;
    set.name = Str(p.getName());
    for (auto a : p.getAddresses()) {
      std::string error;
      auto prefix = fw::IpPrefix::Parse(Str(a), &error);
      if (!prefix) Check(Status::Invalid(error));
      set.ips.push_back(*prefix);
    }
    return q_->Run<bool>([this, filter, set]() { Check(sw_->SetAddrSet(filter, set)); return true; })
        .ignoreResult();
  }

  kj::Promise<void> getFlows(GetFlowsContext context) override {
    auto p = context.getParams();
    std::string filter = Str(p.getFilter());
    fw::FlowSelector sel;
    Check(ToSelector(p.getSelector(), &sel));
    const uint32_t cursor = p.getCursor();
    const uint32_t page = p.getPageSize() == 0 || p.getPageSize() > 10000 ? 10000 : p.getPageSize();
    struct Out {
      std::vector<fw::FlowInfo> flows;
      uint32_t next;
    };
    return q_->Run<Out>([this, filter, sel, cursor, page]() {
      Out o;
      Check(sw_->GetFlowsPage(filter, sel, cursor, page, &o.flows, &o.next));
      return o;
    }).then([context](Out o) mutable {
      auto r = context.getResults();
      r.setNextCursor(o.next);
      r.setDone(o.next == fw::ConnTable::kNil);
      auto list = r.initFlows(static_cast<unsigned>(o.flows.size()));
      for (unsigned i = 0; i < o.flows.size(); i++) {
        const fw::FlowInfo& f = o.flows[i];
        auto b = list[i];
        b.setFlowId(f.flow_id);
        b.setState(fw::ConnStateName(f.state));
        b.setProto(f.orig.proto);
        b.setV6(f.v6);
        b.setTowardVm(f.orig_in);
        b.setRuleId(f.rule_id);
        b.setSrc(f.orig.src.ToString());
        b.setSrcPort(f.orig.sport);
        b.setDst(f.orig.dst.ToString());
        b.setDstPort(f.orig.dport);
        b.setOrigPackets(f.pkts[0]);
        b.setReplyPackets(f.pkts[1]);
        b.setOrigBytes(f.bytes[0]);
        b.setReplyBytes(f.bytes[1]);
        b.setExpiresInSeconds(f.expires_in_s);
      }
    });
  }

  kj::Promise<void> countFlows(CountFlowsContext context) override {
    auto p = context.getParams();
    std::string filter = Str(p.getFilter());
    fw::FlowSelector sel;
    Check(ToSelector(p.getSelector(), &sel));
    return q_->Run<uint32_t>([this, filter, sel]() {
      std::vector<fw::FlowInfo> flows;
      Check(sw_->GetFlows(filter, sel, &flows));
      return static_cast<uint32_t>(flows.size());
    }).then([context](uint32_t n) mutable { context.getResults().setCount(n); });
  }

  kj::Promise<void> flushFlows(FlushFlowsContext context) override {
    auto p = context.getParams();
    std::string filter = Str(p.getFilter());
    fw::FlowSelector sel;
    Check(ToSelector(p.getSelector(), &sel));
    return q_->Run<uint32_t>([this, filter, sel]() {
      size_t n = 0;
      Check(sw_->FlushFlows(filter, sel, &n));
      return static_cast<uint32_t>(n);
    }).then([context](uint32_t n) mutable { context.getResults().setFlushed(n); });
  }

  kj::Promise<void> getFirewall(GetFirewallContext context) override {
    std::string filter = Str(context.getParams().getFilter());
    struct Out {
      fw::FirewallOptions o;
      uint32_t flows;
      size_t bytes;
    };
    return q_->Run<Out>([this, filter]() {
      Out o;
      Check(sw_->GetFirewallOptions(filter, &o.o, &o.flows, &o.bytes));
      return o;
    }).then([context](Out o) mutable {
      auto b = context.getResults().initOptions();
      b.setConnectionLimit(o.o.conn_limit);
      b.setRecheck(o.o.recheck);
      b.setFlows(o.flows);
      b.setTableBytes(o.bytes);
      std::vector<std::pair<std::string, uint32_t>> t = o.o.timeouts.List();
      auto list = b.initTimeouts(static_cast<unsigned>(t.size()));
      for (unsigned i = 0; i < t.size(); i++) {
        list[i].setName(t[i].first);
        list[i].setSeconds(t[i].second);
      }
    });
  }

  kj::Promise<void> setFirewall(SetFirewallContext context) override {
    auto p = context.getParams();
    std::string filter = Str(p.getFilter());
    const uint32_t limit = p.getConnectionLimit();
    const int8_t recheck = p.getRecheck();
    std::vector<std::pair<std::string, uint32_t>> timeouts;
    for (auto t : p.getTimeouts()) timeouts.emplace_back(Str(t.getName()), t.getSeconds());
    return q_->Run<bool>([this, filter, limit, recheck, timeouts]() {
      Check(sw_->UpdateFirewallOptions(filter, limit ? std::optional<uint32_t>(limit) : std::nullopt,
                                       recheck >= 0 ? std::optional<bool>(recheck != 0) : std::nullopt,
                                       timeouts));
      return true;
    }).ignoreResult();
  }

  kj::Promise<void> workerStats(WorkerStatsContext context) override {
    return q_->Run<std::vector<palisade::WorkerStats>>([this]() { return sw_->Workers(); })
        .then([context](std::vector<palisade::WorkerStats> ws) mutable {
          auto list = context.getResults().initWorkers(static_cast<unsigned>(ws.size()));
          for (unsigned i = 0; i < ws.size(); i++) {
            list[i].setWorker(static_cast<uint16_t>(i));
            list[i].setBusyCycles(ws[i].busy_cycles);
            list[i].setIdleCycles(ws[i].idle_cycles);
            list[i].setRxPackets(ws[i].rx_packets);
            list[i].setTxPackets(ws[i].tx_packets);
            list[i].setLoops(ws[i].loops);
          }
        });
  }

  kj::Promise<void> macTable(MacTableContext context) override {
    struct Out {
      std::vector<MacInfo> macs;
      uint32_t ageing;
    };
    return q_->Run<Out>([this]() { return Out{sw_->Macs(), sw_->mac_ageing_s()}; })
        .then([context](Out o) mutable {
          auto r = context.getResults();
          r.setAgeingSeconds(o.ageing);
          auto list = r.initMacs(static_cast<unsigned>(o.macs.size()));
          for (unsigned i = 0; i < o.macs.size(); i++) {
            list[i].setMac(MacToString(o.macs[i].mac));
            list[i].setPort(o.macs[i].port);
            list[i].setAgeSeconds(o.macs[i].age_s);
          }
        });
  }

  kj::Promise<void> tailLog(TailLogContext context) override {
    const uint32_t n = context.getParams().getLines();
    struct Out {
      std::vector<std::string> lines;
      uint64_t written, suppressed, lost;
    };
    return q_->Run<Out>([this, n]() {
      const fw::PacketLog& log = sw_->packet_log();
      return Out{log.Recent(n == 0 ? 20 : n), log.written(), log.suppressed(), log.lost()};
    }).then([context](Out o) mutable {
      auto r = context.getResults();
      auto list = r.initLines(static_cast<unsigned>(o.lines.size()));
      for (unsigned i = 0; i < o.lines.size(); i++) list.set(i, o.lines[i]);
      r.setWritten(o.written);
      r.setSuppressed(o.suppressed);
      r.setLost(o.lost);
    });
  }

  kj::Promise<void> exportPort(ExportPortContext context) override {
    std::string name = Str(context.getParams().getName());
    return q_->Run<PortExport>([this, name]() {
      PortExport e;
      Check(sw_->ExportPort(name, &e));
      if (e.spec.kind != PortKind::kVhostUser) Check(Status::Invalid("only vhost-user ports migrate"));
      return e;
    }).then([context](PortExport e) mutable { migration::Write(e, context.getResults().initState()); });
  }

  kj::Promise<void> importPort(ImportPortContext context) override {
    auto p = context.getParams();
    PortExport e;
    Check(migration::Read(p.getState(), &e));
    if (p.getSocket().size() > 0) e.spec.path = Str(p.getSocket());
    return q_->Run<uint32_t>([this, e]() {
      size_t n = 0;
      Check(sw_->ImportPort(e, &n));
      return static_cast<uint32_t>(n);
    }).then([context](uint32_t n) mutable { context.getResults().setConnections(n); });
  }

  kj::Promise<void> execute(ExecuteContext context) override {
    std::string line = Str(context.getParams().getLine());
    return q_->Run<std::string>([this, line]() { return ExecuteLine(*sw_, line); })
        .then([context](std::string reply) mutable { context.getResults().setReply(reply); });
  }

  kj::Promise<void> connections(ConnectionsContext context) override {
    auto list = context.getResults().initConnections(static_cast<unsigned>(connections_->size()));
    for (unsigned i = 0; i < connections_->size(); i++) {
      const ConnectionRecord& c = *(*connections_)[i];
      list[i].setKind(c.kind);
      list[i].setPeer(c.peer);
      list[i].setSince(c.since);
      list[i].setName(c.name);
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> hello(HelloContext context) override {
    auto p = context.getParams();
    const std::string kind = Str(p.getKind());
    if (kind != "cli" && kind != "manager" && kind != "switch") {
      Check(Status::Invalid("hello: kind must be cli, manager or switch, not '" + kind + "'"));
    }
    self_->kind = kind;
    self_->name = Str(p.getName()).substr(0, 128);
    return kj::READY_NOW;
  }

  kj::Promise<void> migrate(MigrateContext context) override {
    auto p = context.getParams();
    return migrations_->Migrate(Str(p.getPort()), Str(p.getTo()), Str(p.getSocket()))
        .then([context](MigrationInfo info) mutable { info.Fill(context.getResults().initMigration()); });
  }

  kj::Promise<void> migrations(MigrationsContext context) override {
    const auto list = migrations_->List();
    auto out = context.getResults().initMigrations(static_cast<unsigned>(list.size()));
    for (unsigned i = 0; i < list.size(); i++) list[i].Fill(out[i]);
    return kj::READY_NOW;
  }

  kj::Promise<void> cancelMigration(CancelMigrationContext context) override {
    return migrations_->Cancel(Str(context.getParams().getPort()));
  }

  kj::Promise<void> incoming(IncomingContext context) override {
    return migrations_->Incoming(context);
  }

 private:
  using PortInfo_ = palisade::PortInfo;
  Switch* sw_;
  ControlQueue* q_;
  Connections* connections_;
  MigrationService* migrations_;
  std::shared_ptr<ConnectionRecord> self_;
};

// One client connection; members are destroyed in reverse order: the RPC system before the
// network it uses, the network before the stream under it.
struct Served {
  Served(kj::Own<kj::AsyncIoStream> s, capnp::Capability::Client bootstrap)
      : stream(kj::mv(s)),
        network(*stream, capnp::rpc::twoparty::Side::SERVER),
        rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))) {}
  kj::Own<kj::AsyncIoStream> stream;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
};

// Makes the capability a new connection is served with, given its entry in the connection list.
using Bootstrap = std::function<capnp::Capability::Client(std::shared_ptr<ConnectionRecord>)>;

// Accepts connections forever, serving each with its own bootstrap capability and recording who
// it is. A connection that fails to be accepted (a TLS handshake without a valid client
// certificate) is dropped; the loop goes on.
kj::Promise<void> AcceptLoop(kj::ConnectionReceiver& listener, Bootstrap bootstrap,
                             kj::TaskSet& tasks, Connections& connections, std::string kind) {
  return listener.accept().then([&listener, bootstrap, &tasks, &connections, kind](
                                    kj::Own<kj::AsyncIoStream> stream) mutable {
    auto record = std::make_shared<ConnectionRecord>();
    record->since = UtcNowText();
    record->peer = kind;
    KJ_IF_MAYBE(fd, stream->getFd()) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (getsockopt(*fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        record->peer = "unix pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid);
      }
    }
    connections.push_back(record);
    auto connection = kj::heap<Served>(kj::mv(stream), bootstrap(record));
    auto done = connection->network.onDisconnect();
    tasks.add(done.attach(kj::mv(connection)).then([&connections, record]() {
      std::erase(connections, record);
    }));
  }, [](kj::Exception&&) {}).then([&listener, bootstrap, &tasks, &connections, kind]() mutable {
    return AcceptLoop(listener, bootstrap, tasks, connections, kind);
  });
}

class LogErrors : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& exception) override {}  // a client went away mid-call
};

}  // namespace

Status RpcServer::Start(const std::string& path, const TlsConfig* tls, Switch* sw,
                        ControlQueue* queue, std::unique_ptr<RpcServer>* out) {
  if (Status s = ClaimSocketPath(path); !s.ok()) return s;
  std::unique_ptr<RpcServer> server(new RpcServer());
  server->path_ = path;
  std::promise<void> ready;
  auto started = ready.get_future();
  server->thread_ = std::thread([srv = server.get(), path, tls, sw, queue, &ready]() mutable {
    srv->Main(path, tls, sw, queue, &ready);
  });
  started.wait();
  if (!server->error_.empty()) {
    server->thread_.join();
    return Status::Unavailable(server->error_);
  }
  *out = std::move(server);
  return Status::Ok();
}

void RpcServer::Main(std::string path, const TlsConfig* tls, Switch* sw, ControlQueue* queue,
                     std::promise<void>* ready) {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  auto stop = kj::newPromiseAndCrossThreadFulfiller<void>();
  stop_ = kj::mv(stop.fulfiller);
  kj::Own<kj::ConnectionReceiver> listener, tls_listener;
  kj::Own<kj::TlsContext> tls_context;
  std::string where = path;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    auto addr = io.provider->getNetwork().parseAddress(kj::str("unix:", path.c_str())).wait(io.waitScope);
    const mode_t old = umask(0177);  // the socket is the switch's controls: owner only
    listener = addr->listen();
    umask(old);
    if (tls != nullptr && !tls->listen.empty()) {
      where = tls->listen;
      kj::TlsKeypair keypair{kj::TlsPrivateKey(tls->key_pem.c_str()),
                             kj::TlsCertificate(tls->cert_pem.c_str())};
      kj::TlsCertificate ca(tls->ca_pem.c_str());
      kj::TlsContext::Options options;
      options.useSystemTrustStore = false;
      options.verifyClients = true;  // a client without a certificate from our CA gets nothing
      options.trustedCertificates = kj::arrayPtr(&ca, 1);
      options.defaultKeypair = keypair;
      tls_context = kj::heap<kj::TlsContext>(kj::mv(options));
      auto tcp = io.provider->getNetwork().parseAddress(tls->listen.c_str()).wait(io.waitScope);
      tls_listener = tls_context->wrapPort(tcp->listen());
    }
  })) {
    error_ = "cannot listen on " + where + ": " + std::string(e->getDescription().cStr());
    ready->set_value();
    return;
  }
  // Dialing other switches (live migration to HOST:PORT): this switch's certificate, their CA.
  kj::Own<kj::TlsContext> tls_client;
  if (tls != nullptr) {
    kj::TlsKeypair keypair{kj::TlsPrivateKey(tls->key_pem.c_str()),
                           kj::TlsCertificate(tls->cert_pem.c_str())};
    kj::TlsCertificate ca(tls->ca_pem.c_str());
    kj::TlsContext::Options options;
    options.useSystemTrustStore = false;
    options.trustedCertificates = kj::arrayPtr(&ca, 1);
    options.defaultKeypair = keypair;
    tls_client = kj::heap<kj::TlsContext>(kj::mv(options));
  }
  ready->set_value();
  MigrationService migrations(sw, queue, *io.provider, tls_client.get(), path);
  Connections connections;
  LogErrors errors;
  kj::TaskSet tasks(errors);
  Bootstrap bootstrap = [&](std::shared_ptr<ConnectionRecord> record) -> capnp::Capability::Client {
    return kj::heap<PalisadeImpl>(sw, queue, &connections, &migrations, kj::mv(record));
  };
  auto serving = AcceptLoop(*listener, bootstrap, tasks, connections, "unix");
  if (tls_listener.get() != nullptr) {
    serving = serving.exclusiveJoin(AcceptLoop(*tls_listener, bootstrap, tasks, connections, "tls"));
  }
  stop.promise.exclusiveJoin(kj::mv(serving)).wait(io.waitScope);
}

RpcServer::~RpcServer() {
  if (stop_) stop_->fulfill();
  if (thread_.joinable()) thread_.join();
  unlink(path_.c_str());
}

}  // namespace palisade::rpc
