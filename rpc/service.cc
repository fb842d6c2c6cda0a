#include "rpc/service.h"

#include <capnp/schema.h>

#include <algorithm>
#include <cstdint>
#include <set>

#include "common/kj_errors.h"
#include "migration/port_state.h"
#include "rpc/convert.h"
#include "vswitch/control.h"
#include "slot/mac_addr.h"

namespace palisade::rpc {
namespace {

Status ParseCapturePoint(const std::string& text, CaptureSpec* spec);

class PalisadeImpl final : public Palisade::Server {
 public:
  // One per client connection: `self` is that connection's entry in the connection list.
  PalisadeImpl(Switch* sw, ControlQueue* queue, Connections* connections,
               migration::MigrationService* migrations, const cluster::ClusterAgent* cluster,
               Background* background, std::shared_ptr<ConnectionRecord> self)
      : sw_(sw), q_(queue), connections_(connections), migrations_(migrations), cluster_(cluster),
        background_(background), self_(kj::mv(self)) {}

  // A client that goes away without stopping its captures (killed, disconnected): they stop.
  // Jobs run in order, so this comes after any capture this connection started, even one whose
  // answer never reached it.
  ~PalisadeImpl() {
    Switch* sw = sw_;
    const uint64_t owner = owner_;
    q_->Post([sw, owner]() { sw->StopCaptures(owner); });
  }

  // Every call meets the caller's role first (rpc/roles.h): one place, whatever the method.
  DispatchCallResult dispatchCall(uint64_t interface_id, uint16_t method_id,
                                  capnp::CallContext<capnp::AnyPointer, capnp::AnyPointer> context) override {
    if (interface_id == capnp::typeId<Palisade>()) {
      auto methods = capnp::Schema::from<Palisade>().getMethods();
      const std::string name = method_id < methods.size() ? methods[method_id].getProto().getName().cStr() : "";
      if (!MayCall(self_->role, name)) {
        return {kj::Promise<void>(Failure(Refused(self_->role, name))), false};
      }
    }
    return Palisade::Server::dispatchCall(interface_id, method_id, context);
  }

  kj::Promise<void> clusterStatus(ClusterStatusContext context) override {
    auto b = context.getResults().initStatus();
    if (cluster_ == nullptr) return kj::READY_NOW;
    const cluster::AgentStatus s = cluster_->status();
    b.setEnabled(true);
    b.setConnected(s.connected);
    b.setRevision(s.revision);
    b.setLastContactMillis(s.last_contact_ms_ago);
    b.setError(s.error);
    b.setRelists(s.relists);
    b.setReconnects(s.reconnects);
    b.setUpdates(s.updates);
    b.setLease(s.lease);
    b.setPublished(static_cast<uint32_t>(s.published));
    b.setHost(cluster_->host());
    b.setEndpoints(cluster_->endpoints());
    b.setSnapshotPath(cluster_->snapshot_path());
    b.setSnapshotRevision(s.snapshot_revision);
    b.setSnapshotError(s.snapshot_error);
    return kj::READY_NOW;
  }

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
      for (unsigned i = 0; i < ports.size(); i++) FillPort(ports[i], list[i]);
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
          for (unsigned i = 0; i < ports.size(); i++) FillFilters(ports[i], list[i]);
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

  // Prepared on the control thread, compiled in the background, installed on the control thread
  // (Switch::PrepareRules): a large table does not stop the switch's loop while it compiles.
  kj::Promise<void> setRules(SetRulesContext context) override {
    std::string filter = Str(context.getParams().getFilter());
    std::string text = Str(context.getParams().getText());
    // The steps hold the switch, queue and pool (they outlive every connection), not this one.
    auto p = std::make_shared<Switch::PreparedRules>();
    Switch* sw = sw_;
    ControlQueue* q = q_;
    Background* background = background_;
    return q->Run<bool>([sw, filter, text, p]() { Check(sw->PrepareRules(filter, text, p.get())); return true; })
        .then([background, p](bool) { return background->Run<bool>([p]() { Switch::CompileRules(p.get()); return true; }); })
        .then([sw, q, p](bool) { return q->Run<bool>([sw, p]() { Check(sw->CommitRules(std::move(*p))); return true; }); })
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
      for (unsigned i = 0; i < o.flows.size(); i++) FillFlow(o.flows[i], list[i]);
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
    return q_->Run<Switch::FirewallStatus>([this, filter]() {
      Switch::FirewallStatus f;
      Check(sw_->GetFirewall(filter, &f));
      return f;
    }).then([context](Switch::FirewallStatus f) mutable {
      auto b = context.getResults().initOptions();
      b.setConnectionLimit(f.options.conn_limit);
      b.setRecheck(f.options.recheck);
      b.setFlows(f.flows);
      b.setTableBytes(f.table_bytes);
      b.setRules(f.rules);
      b.setClassifier(f.classifier);
      b.setClassifierBytes(f.classifier_bytes);
      std::vector<std::pair<std::string, uint32_t>> t = f.options.timeouts.List();
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
            list[i].setHandoffPackets(ws[i].handoff_packets);
            list[i].setControlCycles(ws[i].control_cycles);
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
    Command cmd;
    if (self_->role != Role::kOperator && ParseCommand(line, &cmd).ok() && cmd.mutates()) {
      Fail(Refused(self_->role, "a command that changes the switch"));
    }
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
        .then([context](migration::MigrationInfo info) mutable {
          FillMigration(info, context.getResults().initMigration());
        });
  }

  kj::Promise<void> migrations(MigrationsContext context) override {
    const auto list = migrations_->List();
    auto out = context.getResults().initMigrations(static_cast<unsigned>(list.size()));
    for (unsigned i = 0; i < list.size(); i++) FillMigration(list[i], out[i]);
    return kj::READY_NOW;
  }

  kj::Promise<void> cancelMigration(CancelMigrationContext context) override {
    return migrations_->Cancel(Str(context.getParams().getPort()));
  }

  kj::Promise<void> incoming(IncomingContext context) override {
    auto p = context.getParams();
    return migrations_->Incoming(p.getState(), Str(p.getSocket()), p.getSource(), self_->name)
        .then([context](migration::Arrived arrived) mutable {
          auto r = context.getResults();
          r.setConnections(arrived.connections);
          r.setSession(kj::mv(arrived.session));
        });
  }

  kj::Promise<void> handover(HandoverContext context) override {
    return migrations_->Handover(Str(context.getParams().getPort())).then([context](std::string phase) mutable {
      context.getResults().setPhase(phase);
    });
  }

  kj::Promise<void> startCapture(StartCaptureContext context) override {
    auto p = context.getParams();
    CaptureSpec spec;
    spec.port = Str(p.getPort());
    Check(ParseCapturePoint(Str(p.getPoint()), &spec));
    const std::string dir = Str(p.getDir());
    if (dir == "in") {
      spec.out = false;
    } else if (dir == "out") {
      spec.in = false;
    } else if (dir != "both" && !dir.empty()) {
      Check(Status::Invalid("capture direction must be in, out or both, not '" + dir + "'"));
    }
    spec.snaplen = p.getSnaplen();
    spec.count = p.getCount();
    return q_->Run<uint64_t>([this, spec]() {
      uint64_t id = 0;
      Check(sw_->StartCapture(spec, owner_, &id));
      return id;
    }).then([this, context](uint64_t id) mutable {
      captures_.insert(id);
      context.getResults().setId(id);
    });
  }

  kj::Promise<void> readCapture(ReadCaptureContext context) override {
    const uint64_t id = context.getParams().getId();
    if (!captures_.count(id)) Check(Status::NotFound("no capture " + std::to_string(id) + " of this connection"));
    const size_t max = std::clamp<size_t>(context.getParams().getMax(), 1, 1024);
    struct Out {
      std::vector<CaptureRecord> records;
      CaptureTotals totals;
      int64_t wall_offset;
    };
    return q_->Run<Out>([this, id, max]() {
      Out o;
      Check(sw_->ReadCapture(id, max, &o.records, &o.totals));
      o.wall_offset = sw_->WallNs(0);
      return o;
    }).then([context](Out o) mutable {
      auto r = context.getResults();
      r.setCaptured(o.totals.captured);
      r.setLost(o.totals.lost);
      r.setEnded(o.totals.ended);
      auto list = r.initPackets(static_cast<unsigned>(o.records.size()));
      for (unsigned i = 0; i < o.records.size(); i++) {
        const CaptureRecord& c = o.records[i];
        list[i].setTimeNanos(static_cast<int64_t>(c.now_ns) + o.wall_offset);
        list[i].setLength(c.len);
        list[i].setDir(c.dir == Direction::kIn ? "in" : "out");
        list[i].setVerdict(c.verdict == Verdict::kPass ? "pass"
                           : c.verdict == Verdict::kDrop ? "drop"
                                                         : "consumed");
        if (c.verdict == Verdict::kDrop) {
          list[i].setReason(DropReasonName(c.reason == DropReason::kNone ? DropReason::kFilter : c.reason));
        }
        list[i].setData(kj::arrayPtr(c.data, c.caplen));
      }
    });
  }

  kj::Promise<void> stopCapture(StopCaptureContext context) override {
    const uint64_t id = context.getParams().getId();
    if (!captures_.count(id)) Check(Status::NotFound("no capture " + std::to_string(id) + " of this connection"));
    captures_.erase(id);
    return q_->Run<CaptureTotals>([this, id]() {
      CaptureTotals t;
      Check(sw_->StopCapture(id, &t));
      return t;
    }).then([context](CaptureTotals t) mutable {
      context.getResults().setCaptured(t.captured);
      context.getResults().setLost(t.lost);
    });
  }

  kj::Promise<void> reclaim(ReclaimContext context) override {
    migrations_->Reclaim(Str(context.getParams().getPort()), self_->name);
    return kj::READY_NOW;
  }

 private:
  using PortInfo_ = palisade::PortInfo;
  Switch* sw_;
  ControlQueue* q_;
  Connections* connections_;
  migration::MigrationService* migrations_;
  const cluster::ClusterAgent* cluster_;
  Background* background_;
  std::shared_ptr<ConnectionRecord> self_;
  std::set<uint64_t> captures_;  // started on this connection and not stopped
  // Tells this connection's captures apart from others' (Switch::StopCaptures): its record's
  // address, unique while it lives; reused only after our StopCaptures job is queued.
  const uint64_t owner_ = reinterpret_cast<uintptr_t>(self_.get());
};

// pre, post or post:N (1-255).
Status ParseCapturePoint(const std::string& text, CaptureSpec* spec) {
  if (text == "pre") {
    spec->point = CapturePoint::kPre;
    return Status::Ok();
  }
  if (text == "post") {
    spec->point = CapturePoint::kPost;
    return Status::Ok();
  }
  if (text.rfind("post:", 0) == 0 && text.size() > 5 && text.size() <= 8 &&
      text.find_first_not_of("0123456789", 5) == std::string::npos) {
    const int slot = std::stoi(text.substr(5));
    if (slot >= 1 && slot <= 255) {
      spec->point = CapturePoint::kPost;
      spec->after_slot = static_cast<uint8_t>(slot);
      return Status::Ok();
    }
  }
  return Status::Invalid("capture point must be pre, post or post:SLOT, not '" + text + "'");
}

}  // namespace

kj::Own<Palisade::Server> NewPalisadeService(Switch* sw, ControlQueue* queue,
                                            Connections* connections,
                                            migration::MigrationService* migrations,
                                            const cluster::ClusterAgent* cluster,
                                            Background* background,
                                            std::shared_ptr<ConnectionRecord> self) {
  return kj::heap<PalisadeImpl>(sw, queue, connections, migrations, cluster, background, kj::mv(self));
}

}  // namespace palisade::rpc
