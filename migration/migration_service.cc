#include "migration/migration_service.h"

#include <algorithm>
#include <chrono>

#include "common/fault_point.h"
#include "common/kj_errors.h"
#include "common/utc_time.h"
#include "migration/port_state.h"
#include "vswitch/clock.h"
#include "vswitch/vhost_port.h"

namespace palisade::migration {
namespace {

// How long a paused guest waits for the destination to take the final delta.
constexpr auto kFinalDeltaTimeout = 3 * kj::SECONDS;
// While the VM runs, what changed goes over in rounds this far apart, so that the final delta
// (the guest's pause) holds only the last round's changes, however long QEMU's copy takes.
constexpr auto kRoundInterval = 200 * kj::MILLISECONDS;
// The bulk copy goes in pieces (deltas of round 0) after the port itself: ~7 MB each, far under
// the RPC's reading limit (which a whole table of ~400,000 entries exceeds).
constexpr size_t kBulkPiece = 50000;

// The bulk copy goes on only while nothing (a cancel, a failure) has ended the migration.
void StillCopying(const MigrationInfo& info) {
  if (info.phase != "copying") Fail("migration of '" + info.port + "': " + info.phase + ": " + info.error);
}

// The message of an error, without the prefix capnp adds to one raised by the other switch.
std::string Describe(const kj::Exception& e) {
  std::string text = e.getDescription().cStr();
  constexpr std::string_view kRemote = "remote exception: ";
  while (text.rfind(kRemote, 0) == 0) text = "destination: " + text.substr(kRemote.size());
  return text;
}

uint64_t MicrosSince(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - t0).count());
}

}  // namespace

bool MigrationInfo::active() const {
  return phase == "copying" || phase == "copied" || phase == "cut-over" || phase == "incoming" ||
         phase == "ready";
}

struct MigrationService::Outgoing {
  MigrationInfo info;
  std::shared_ptr<fw::StatefulFilter> filter;  // null: the port has no stateful filter
  kj::Own<Destination> conn;
  kj::Maybe<IncomingMigration::Client> dest;
  bool stopped_while_copying = false;  // the device stopped before the bulk copy was in
  bool final_taken = false;            // no more rounds once the final delta is taken
  bool moved_to_saved = false;         // Switch::SetMovedTo recorded the cut-over
  uint32_t round = 0;
};

struct MigrationService::Arriving {
  MigrationInfo info;
  bool device_up = false;
  kj::Maybe<MigrationSource::Client> source;
};

// The source's callback, held by the destination.
class MigrationService::SourceImpl final : public MigrationSource::Server {
 public:
  SourceImpl(MigrationService* svc, std::shared_ptr<bool> alive, std::shared_ptr<Outgoing> s)
      : svc_(svc), alive_(kj::mv(alive)), s_(kj::mv(s)) {}
  kj::Promise<void> completed(CompletedContext) override {
    if (*alive_) svc_->Completed(s_);
    return kj::READY_NOW;
  }

 private:
  MigrationService* svc_;
  std::shared_ptr<bool> alive_;
  std::shared_ptr<Outgoing> s_;
};

// The destination's side of one arriving port, held by the source.
class MigrationService::IncomingImpl final : public IncomingMigration::Server {
 public:
  IncomingImpl(MigrationService* svc, std::shared_ptr<bool> alive, std::shared_ptr<Arriving> s)
      : svc_(svc), alive_(kj::mv(alive)), s_(kj::mv(s)) {}
  ~IncomingImpl() {
    if (*alive_ && s_->info.phase == "incoming") {
      svc_->Discard(s_, "the source went away before the final delta");
    }
  }

  kj::Promise<void> delta(DeltaContext context) override {
    if (!*alive_ || s_->info.phase != "incoming") Fail("port '" + s_->info.port + "' is not waiting for a delta");
    Delta d;
    Check(ReadDelta(context.getParams().getDelta(), &d));
    if (d.name != s_->info.port) Fail("a delta for port '" + d.name + "' sent to '" + s_->info.port + "'");
    const bool final = d.final;
    const bool bulk = d.round == 0 && !final;  // a piece of the bulk copy
    const auto changed = static_cast<uint32_t>(d.changed.size());
    const auto removed = static_cast<uint32_t>(d.removed.size());
    return svc_->q_->Run<uint32_t>([sw = svc_->sw_, d = kj::mv(d)]() {
      size_t taken = 0;
      Check(sw->ApplyDelta(d.name, d.changed, d.removed, &taken));
      if (d.final) FaultPoint("final-delta-applied");
      return static_cast<uint32_t>(taken);
    }).then([this, context, final, bulk, changed, removed](uint32_t taken) mutable {
      context.getResults().setTaken(taken);
      if (!*alive_) return;
      if (bulk) {
        s_->info.connections += taken;
        return;
      }
      if (!final) {
        s_->info.rounds++;
        s_->info.round_entries += changed + removed;
        return;
      }
      s_->info.delta_changed = changed;
      s_->info.delta_removed = removed;
      s_->info.phase = "ready";
      if (s_->device_up) svc_->Open(s_);
    });
  }

  kj::Promise<void> abort(AbortContext context) override {
    if (*alive_ && s_->info.active()) {
      svc_->Discard(s_, "cancelled by the source: " + Str(context.getParams().getReason()));
    }
    return kj::READY_NOW;
  }

 private:
  MigrationService* svc_;
  std::shared_ptr<bool> alive_;
  std::shared_ptr<Arriving> s_;
};

MigrationService::MigrationService(Switch* sw, ControlQueue* queue, kj::Timer& timer, Dialer dial)
    : sw_(sw), q_(queue), timer_(timer), dial_(kj::mv(dial)), alive_(std::make_shared<bool>(true)) {
  // The listener runs on the vhost library's thread, which serves every VM's vhost-user
  // messages: it only hands the event to this thread (waiting for the hand-off, not for the
  // final delta), so no guest's negotiation waits on a migration. The destination keeps the
  // port closed until the final delta is in, whenever its guest starts.
  auto executor = std::make_shared<kj::Own<const kj::Executor>>(kj::getCurrentThreadExecutor().addRef());
  VhostPort::SetDeviceListener([this, executor, alive = alive_](const std::string& port, bool started) {
    if (!(*executor)->isLive()) return;
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
      (*executor)->executeSync([&]() {
        if (*alive) tasks_.add(OnDevice(port, started));
      });
    })) {
      (void)e;  // this thread's loop is gone (shutting down): nothing to hand over
    }
  });
  // Ports restored in the middle of a cut-over: their peers say where the guests went.
  using Moved = std::vector<std::pair<std::string, std::string>>;
  tasks_.add(q_->Run<Moved>([sw]() { return sw->MovedPorts(); }).then([this](Moved moved) {
    for (auto& [port, peer] : moved) {
      auto s = std::make_shared<Outgoing>();
      s->info = MigrationInfo{port, "out", peer, "cut-over", UtcNowText(),
                              "restored in the middle of the cut-over: asking " + peer + " where the guest is"};
      outgoing_[port] = s;
      tasks_.add(Settle(s));
    }
  }));
}

MigrationService::~MigrationService() { *alive_ = false; }

kj::Promise<MigrationInfo> MigrationService::Migrate(std::string port, std::string to,
                                                      std::string socket) {
  if (to.empty()) Fail("migrate needs a destination");
  if (auto it = outgoing_.find(port); it != outgoing_.end() && it->second->info.active()) {
    Fail("port '" + port + "' is already migrating");
  }
  auto s = std::make_shared<Outgoing>();
  s->info = MigrationInfo{port, "out", to, "copying", UtcNowText(), ""};
  totals_.started["out"]++;
  const auto t0 = std::chrono::steady_clock::now();
  struct Exported {
    PortExport state;
    std::shared_ptr<fw::StatefulFilter> filter;
  };
  // Export first (errors about the port come before any connection attempt), tracking from
  // before the walk so that nothing changed meanwhile escapes the final delta.
  auto exported = q_->Run<Exported>([sw = sw_, port]() {
    Exported e;
    Check(sw->StatefulFilterOf(port, &e.filter));
    palisade::PortInfo info;
    Check(sw->GetPort(port, &info));
    if (info.spec.kind != PortKind::kVhostUser) Fail("only vhost-user ports migrate");
    if (e.filter) e.filter->StartTracking();
    Check(sw->ExportPort(port, &e.state));
    return e;
  });
  return exported.then([this, s, to, socket](Exported e) {
    outgoing_[s->info.port] = s;
    s->filter = e.filter;
    auto bulk = std::make_shared<std::vector<fw::Conn>>(kj::mv(e.state.conns));
    e.state.conns.clear();
    return dial_(to).then([this, s, socket, state = kj::mv(e.state)](kj::Own<Destination> conn) mutable {
      s->conn = kj::mv(conn);
      // A destination that dies (or a network that fails) while nothing is being sent is
      // noticed too: the migration fails here and the port carries on at this switch.
      tasks_.add(s->conn->OnDisconnect().then([this, s, alive = alive_]() {
        if (*alive && s->info.active()) Finish(*s, "failed", "the destination switch went away");
      }, [](kj::Exception&&) {}));
      return s->conn->Incoming(state, socket, kj::heap<SourceImpl>(this, alive_, s));
    }).then([this, s, bulk](Arrived arrived) {
      StillCopying(s->info);
      s->dest = kj::mv(arrived.session);
      s->info.connections = arrived.connections;
      return SendBulk(s, bulk, 0);
    });
  }).then([this, s, t0]() -> MigrationInfo {
    StillCopying(s->info);
    const uint64_t bulk_us = MicrosSince(t0);
    s->info.bulk_ms = bulk_us / 1000;
    s->info.phase = "copied";
    totals_.bulk_copies++;
    totals_.bulk_connections += s->info.connections;
    totals_.bulk_us += bulk_us;
    // QEMU was started too early: the guest is already paused, the delta follows at once.
    if (s->stopped_while_copying) tasks_.add(SendFinalDelta(s));
    else tasks_.add(Rounds(s));
    return s->info;
  }, [this, s](kj::Exception&& e) -> MigrationInfo {
    if (s->info.active()) Finish(*s, "failed", Describe(e));
    Fail("migration of '" + s->info.port + "' to " + s->info.peer + " failed: " + Describe(e));
  });
}

kj::Promise<void> MigrationService::OnDevice(const std::string& port, bool started) {
  auto out = outgoing_.find(port);
  if (out != outgoing_.end()) {
    auto s = out->second;
    if (!started && s->info.phase == "copied") return SendFinalDelta(s);
    if (s->info.phase == "copying") s->stopped_while_copying = !started;
    if (started && s->info.phase == "cut-over") {
      AbortDestination(s, "the guest started again on the source switch");
      Finish(*s, "resumed", "the guest started again here; the destination discards its copy");
    }
  }
  auto in = arriving_.find(port);
  if (in != arriving_.end() && in->second->info.active()) {
    in->second->device_up = started;
    if (started && in->second->info.phase == "ready") Open(in->second);
  } else if (started) {
    // Perhaps a port this switch restored in the middle of a cut-over: its guest is here.
    tasks_.add(q_->Run<std::string>([sw = sw_, port]() {
      std::string peer;
      return sw->ReclaimMovedPort(port, &peer).ok() ? peer : std::string();
    }).then([this, port](std::string peer) {
      if (!peer.empty()) TellReclaimed(port, peer);
    }));
  }
  return kj::READY_NOW;
}

kj::Maybe<capnp::Request<IncomingMigration::DeltaParams, IncomingMigration::DeltaResults>>
MigrationService::TakeDelta(Outgoing& s, bool final) {
  IncomingMigration::Client* dest = nullptr;
  KJ_IF_MAYBE(c, s.dest) { dest = c; }
  if (dest == nullptr) return nullptr;
  Delta d;
  d.name = s.info.port;
  d.round = ++s.round;
  d.final = final;
  s.final_taken |= final;
  if (s.filter) s.filter->TakeDelta(NowNs(), &d.changed, &d.removed);
  if (final) {
    s.info.delta_changed = static_cast<uint32_t>(d.changed.size());
    s.info.delta_removed = static_cast<uint32_t>(d.removed.size());
  } else {
    if (d.changed.empty() && d.removed.empty()) return nullptr;
    s.info.rounds++;
    s.info.round_entries += static_cast<uint32_t>(d.changed.size() + d.removed.size());
  }
  auto req = dest->deltaRequest();
  WriteDelta(d, req.initDelta());
  return kj::mv(req);
}

kj::Promise<void> MigrationService::SendBulk(std::shared_ptr<Outgoing> s,
                                             std::shared_ptr<std::vector<fw::Conn>> bulk, size_t from) {
  if (from >= bulk->size()) return kj::READY_NOW;
  StillCopying(s->info);
  IncomingMigration::Client* dest = nullptr;
  KJ_IF_MAYBE(c, s->dest) { dest = c; }
  if (dest == nullptr) Fail("migration of '" + s->info.port + "': the destination went away");
  const size_t to = std::min(bulk->size(), from + kBulkPiece);
  Delta d;
  d.name = s->info.port;
  d.round = 0;  // a piece of the bulk copy, not a round of changes
  d.changed.assign(bulk->begin() + static_cast<std::ptrdiff_t>(from), bulk->begin() + static_cast<std::ptrdiff_t>(to));
  auto req = dest->deltaRequest();
  WriteDelta(d, req.initDelta());
  return req.send().then([this, s, bulk, to](auto reply) {
    s->info.connections += reply.getTaken();
    return SendBulk(s, bulk, to);
  });
}

kj::Promise<void> MigrationService::Rounds(std::shared_ptr<Outgoing> s) {
  return timer_.afterDelay(kRoundInterval).then([this, s]() -> kj::Promise<void> {
    if (s->info.phase != "copied" || s->final_taken) return kj::READY_NOW;
    KJ_IF_MAYBE(req, TakeDelta(*s, /*final=*/false)) {
      return req->send().then([this, s](auto) { return Rounds(s); }, [this, s](kj::Exception&& e) {
        if (s->info.active()) {
          AbortDestination(s, "a delta round failed");
          Finish(*s, "failed", "delta round: " + Describe(e));
        }
      });
    }
    return Rounds(s);
  });
}

kj::Promise<void> MigrationService::SendFinalDelta(std::shared_ptr<Outgoing> s) {
  const auto t0 = std::chrono::steady_clock::now();
  s->final_taken = true;  // no round after this
  // The cut-over is in the configuration before the destination can take the guest: a crash
  // from here on brings the port back closed, not open beside the guest's new one.
  auto sent = q_->Run<bool>([sw = sw_, port = s->info.port, peer = s->info.peer]() {
    Check(sw->SetMovedTo(port, peer));
    return true;
  }).then([this, s](bool) -> kj::Promise<void> {
    s->moved_to_saved = true;
    if (!s->info.active()) return kj::READY_NOW;  // cancelled meanwhile: Finish undoes the mark
    auto maybe_req = TakeDelta(*s, /*final=*/true);
    capnp::Request<IncomingMigration::DeltaParams, IncomingMigration::DeltaResults>* req = nullptr;
    KJ_IF_MAYBE(r, maybe_req) { req = r; }
    if (req == nullptr) Fail("the destination went away before the final delta");
    return req->send().ignoreResult();
  }).then([this, s, t0]() {
    FaultPoint("final-delta-acked");
    if (s->info.phase != "copied") return;  // ended meanwhile (cancelled, resumed)
    s->info.pause_us = MicrosSince(t0);
    totals_.final_deltas++;
    totals_.final_delta_entries += s->info.delta_changed + s->info.delta_removed;
    totals_.pause_us += s->info.pause_us;
    s->info.phase = "cut-over";
  }, [this, s](kj::Exception&& e) {
    if (s->info.active()) Finish(*s, "failed", "final delta: " + Describe(e));
  });
  auto timeout = timer_.afterDelay(kFinalDeltaTimeout).then([this, s]() {
    if (s->info.active()) Finish(*s, "failed", "final delta: no answer from the destination within 3 s");
  });
  return sent.exclusiveJoin(kj::mv(timeout));
}

void MigrationService::Finish(Outgoing& s, const char* phase, std::string error) {
  s.info.phase = phase;
  totals_.ended[{"out", phase}]++;
  s.info.error = std::move(error);
  if (s.moved_to_saved && s.info.phase != "completed") {
    // The guest stays here: the port is no longer on its way out.
    s.moved_to_saved = false;
    tasks_.add(q_->Run<bool>([sw = sw_, port = s.info.port]() {
      (void)sw->SetMovedTo(port, "");
      return true;
    }).ignoreResult());
  }
  if (s.filter) s.filter->StopTracking();
  s.filter.reset();  // the view stays; a removed port's table must not
  s.dest = nullptr;
  // The connection goes once the calls on it are done (the destination sees its capability drop).
  if (s.conn) tasks_.add(kj::evalLater([conn = kj::mv(s.conn)]() {}));
}

void MigrationService::AbortDestination(std::shared_ptr<Outgoing> s, std::string why) {
  KJ_IF_MAYBE(dest, s->dest) {
    auto req = dest->abortRequest();
    req.setReason(why);
    tasks_.add(req.send().ignoreResult().attach(kj::mv(s->conn)));
  }
}

void MigrationService::Completed(std::shared_ptr<Outgoing> s) {
  if (!s->info.active()) return;
  Finish(*s, "completed", "");
  tasks_.add(q_->Run<bool>([sw = sw_, port = s->info.port]() {
    (void)sw->RemoveMigratedPort(port);  // gone already if an operator removed it
    return true;
  }).ignoreResult());
}

void MigrationService::Open(std::shared_ptr<Arriving> s) {
  s->info.phase = "running";
  totals_.ended[{"in", "running"}]++;
  tasks_.add(q_->Run<bool>([sw = sw_, port = s->info.port]() {
    Check(sw->OpenPort(port));
    return true;
  }).then([s](bool) {
    KJ_IF_MAYBE(source, s->source) { return source->completedRequest().send().ignoreResult(); }
    return kj::Promise<void>(kj::READY_NOW);
  }, [s](kj::Exception&& e) { s->info.error = Describe(e); }));
}

void MigrationService::Discard(std::shared_ptr<Arriving> s, std::string why) {
  s->info.phase = "discarded";
  totals_.ended[{"in", "discarded"}]++;
  s->info.error = std::move(why);
  s->source = nullptr;
  tasks_.add(q_->Run<bool>([sw = sw_, port = s->info.port]() {
    (void)sw->RemovePort(port);
    return true;
  }).ignoreResult());
}

kj::Promise<void> MigrationService::Cancel(std::string port) {
  auto out = outgoing_.find(port);
  if (out != outgoing_.end() && out->second->info.active()) {
    auto s = out->second;
    AbortDestination(s, "cancelled");
    Finish(*s, "cancelled", "cancelled by an operator");
    return kj::READY_NOW;
  }
  auto in = arriving_.find(port);
  if (in != arriving_.end() && in->second->info.active()) {
    Discard(in->second, "cancelled by an operator");
    return kj::READY_NOW;
  }
  Fail("no migration of port '" + port + "' is in progress");
}

std::vector<MigrationInfo> MigrationService::List() const {
  std::vector<MigrationInfo> out;
  for (const auto& [port, s] : outgoing_) out.push_back(s->info);
  for (const auto& [port, s] : arriving_) out.push_back(s->info);
  return out;
}

kj::Promise<Arrived> MigrationService::Incoming(PortState::Reader state, std::string socket,
                                                MigrationSource::Client source, std::string from) {
  PortExport e;
  Check(Read(state, &e));
  if (!socket.empty()) e.spec.path = std::move(socket);
  auto it = arriving_.find(e.spec.name);
  if (it != arriving_.end() && it->second->info.active()) {
    Fail("port '" + e.spec.name + "' is already arriving here");
  }
  auto s = std::make_shared<Arriving>();
  s->info = MigrationInfo{e.spec.name, "in", from, "incoming", UtcNowText(), ""};
  s->source = kj::mv(source);
  const auto t0 = std::chrono::steady_clock::now();
  return q_->Run<uint32_t>([sw = sw_, e = kj::mv(e)]() {
    size_t n = 0;
    Check(sw->ImportIncoming(e, &n));
    return static_cast<uint32_t>(n);
  }).then([this, s, t0](uint32_t n) {
    s->info.connections = n;
    s->info.bulk_ms = MicrosSince(t0) / 1000;
    arriving_[s->info.port] = s;
    totals_.started["in"]++;
    return Arrived{kj::heap<IncomingImpl>(this, alive_, s), n};
  });
}

kj::Promise<void> MigrationService::Settle(std::shared_ptr<Outgoing> s) {
  if (s->info.phase != "cut-over") return kj::READY_NOW;  // the guest started here meanwhile
  auto asked = kj::evalNow([&]() { return dial_(s->info.peer); })
                   .then([port = s->info.port](kj::Own<Destination> d) {
                     auto answer = d->Handover(port);
                     return answer.attach(kj::mv(d));
                   });
  return asked.then([](std::string phase) { return phase; },
                    [](kj::Exception&& e) { return "unreachable (" + Describe(e) + ")"; })
      .then([this, s](std::string phase) -> kj::Promise<void> {
        if (s->info.phase != "cut-over") return kj::READY_NOW;
        if (phase == "running") {
          Completed(s);  // the guest runs there: the port goes here
          return kj::READY_NOW;
        }
        if (phase == "absent") {
          Finish(*s, "resumed", s->info.peer + " does not have the port: it is open here again");
          tasks_.add(q_->Run<bool>([sw = sw_, port = s->info.port]() {
            std::string peer;
            return sw->ReclaimMovedPort(port, &peer).ok();
          }).ignoreResult());
          return kj::READY_NOW;
        }
        s->info.error = "restored in the middle of the cut-over; " + s->info.peer + ": " + phase + "; asking again";
        return timer_.afterDelay(2 * kj::SECONDS).then([this, s]() { return Settle(s); });
      });
}

void MigrationService::TellReclaimed(std::string port, std::string peer) {
  auto out = outgoing_.find(port);
  if (out != outgoing_.end() && out->second->info.phase == "cut-over") {
    Finish(*out->second, "resumed", "the guest started again here; " + peer + " discards its copy");
  }
  tasks_.add(kj::evalNow([&]() { return dial_(peer); }).then([port](kj::Own<Destination> d) {
    auto done = d->Reclaim(port);
    return done.attach(kj::mv(d));
  }));
}

kj::Promise<std::string> MigrationService::Handover(std::string port) {
  auto in = arriving_.find(port);
  if (in != arriving_.end() && (in->second->info.active() || in->second->info.phase == "running")) {
    return std::string(in->second->info.phase);
  }
  // Not arriving now (this switch may have restarted since): the port itself says.
  return q_->Run<std::string>([sw = sw_, port]() {
    palisade::PortInfo info;
    if (!sw->GetPort(port, &info).ok()) return std::string("absent");
    const bool closed = std::any_of(info.slots.begin(), info.slots.end(),
                                    [](const SlotInfo& slot) { return slot.slot == 0; });
    return std::string(closed ? "incoming" : "running");
  });
}

void MigrationService::Reclaim(std::string port, std::string from) {
  auto in = arriving_.find(port);
  if (in == arriving_.end() || !in->second->info.active()) return;
  if (in->second->info.peer != from) Fail("port '" + port + "' is not arriving from " + from);
  Discard(in->second, "the guest started again at the source");
}

}  // namespace palisade::migration
