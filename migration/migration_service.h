// MigrationService: the live-migration protocol, switch to switch, with its phases.
//
// Source: migrate() starts change tracking in the port's stateful filter and exports the port
// (one control-thread job, so no change falls between the two), reaches the destination through
// the Dialer the control plane gives it (rpc/peer.h: a unix socket, or HOST:PORT with TLS) and
// hands it the bulk copy with a MigrationSource callback.
// While the VM runs, what changed goes over in rounds (every 200 ms). The cut-over follows the
// vhost-user device, which QEMU stops for the last step of its own migration: when the port's
// device stops here, the final delta (what changed since the last round) goes to the
// destination and the guest stays paused until it is applied there; when the
// destination's device starts, the destination opens and announces the port and calls back
// completed(), and the port is removed here. If the device starts here again instead, the guest
// resumed here: the destination discards its copy. Nothing of the source port changes until
// completed(), so a failed or cancelled migration leaves it as it was.
//
// Destination: Incoming() imports the port closed (Switch::ImportIncoming) and returns an
// IncomingMigration capability for the deltas. The port opens once the final delta is in and
// its device has started. If the source goes away or aborts before the final delta, the port
// and its state are discarded.
//
// Thread-safety: everything on the RPC thread (kj event loop), except the device listener,
// which the vhost library calls on its own thread and which hands over to the RPC thread and
// waits (executeSync) for the final delta. Switch changes go through the ControlQueue.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <kj/async.h>
#include <kj/function.h>
#include <kj/timer.h>

#include "migration/migration.capnp.h"
#include "migration/port_state.capnp.h"
#include "vswitch/control_queue.h"
#include "vswitch/switch.h"

namespace palisade::migration {

// One migration as this switch sees it (`palisadectl migrate list`).
struct MigrationInfo {
  std::string port, direction, peer, phase, started, error;
  uint32_t connections = 0, delta_changed = 0, delta_removed = 0;
  uint32_t rounds = 0, round_entries = 0;  // deltas sent while the VM ran, and their entries
  uint64_t pause_us = 0, bulk_ms = 0;
  bool active() const;  // not finished (completed, cancelled, failed, resumed, running, discarded)
};

// Counts since the switch started, for the metrics: migrations begun and ended by direction
// ("out", "in") and final phase, and what the source measured of its bulk copies and final
// deltas (sums: a rate of each over a rate of its count is an average).
struct MigrationTotals {
  std::map<std::string, uint64_t> started;                        // direction -> begun
  std::map<std::pair<std::string, std::string>, uint64_t> ended;  // (direction, phase) -> ended
  uint64_t bulk_copies = 0, bulk_connections = 0, bulk_us = 0;     // out: bulk copies done
  uint64_t final_deltas = 0, final_delta_entries = 0, pause_us = 0;  // out: final deltas applied
};

// What the destination answers to a source's bulk copy.
struct Arrived {
  IncomingMigration::Client session = nullptr;
  uint32_t connections = 0;  // entries it took
};

// A session with the destination switch, opened by the control plane's dialer.
class Destination {
 public:
  virtual ~Destination() noexcept(false) = default;  // kj owners may throw from destructors
  // The destination's `incoming`: creates the port closed there with the bulk copy.
  virtual kj::Promise<Arrived> Incoming(const PortExport& state, const std::string& socket,
                                        MigrationSource::Client source) = 0;
  // Resolves when the connection to the destination is gone (it died, or the network failed).
  virtual kj::Promise<void> OnDisconnect() = 0;
  // The destination's `handover` and `reclaim` (a source restarted during a cut-over).
  virtual kj::Promise<std::string> Handover(const std::string& port) = 0;
  virtual kj::Promise<void> Reclaim(const std::string& port) = 0;
};
// Reaches the switch at `to` (a unix socket path or HOST:PORT); may throw for an unusable `to`.
using Dialer = kj::Function<kj::Promise<kj::Own<Destination>>(const std::string& to)>;

class MigrationService {
 public:
  MigrationService(Switch* sw, ControlQueue* queue, kj::Timer& timer, Dialer dial);
  ~MigrationService();

  kj::Promise<MigrationInfo> Migrate(std::string port, std::string to, std::string socket);
  kj::Promise<void> Cancel(std::string port);
  std::vector<MigrationInfo> List() const;
  const MigrationTotals& Totals() const { return totals_; }
  // The destination's side of a source's `incoming`: the port is created closed at `socket`
  // (empty: the exported path). `from`: the source as it introduced itself (hello).
  kj::Promise<Arrived> Incoming(PortState::Reader state, std::string socket,
                                MigrationSource::Client source, std::string from);
  // The destination's side of a restarted source's questions (rpc: handover, reclaim).
  kj::Promise<std::string> Handover(std::string port);
  void Reclaim(std::string port, std::string from);

 private:
  struct Outgoing;
  struct Arriving;
  class SourceImpl;
  class IncomingImpl;
  kj::Promise<void> OnDevice(const std::string& port, bool started);
  // The next delta's request (nullptr: no destination, or an empty round).
  kj::Maybe<capnp::Request<IncomingMigration::DeltaParams, IncomingMigration::DeltaResults>>
  TakeDelta(Outgoing& s, bool final);
  // The bulk copy's connections from `from` on, in pieces, one after the other.
  kj::Promise<void> SendBulk(std::shared_ptr<Outgoing> s, std::shared_ptr<std::vector<fw::Conn>> bulk,
                             size_t from);
  kj::Promise<void> Rounds(std::shared_ptr<Outgoing> s);
  kj::Promise<void> SendFinalDelta(std::shared_ptr<Outgoing> s);
  void Finish(Outgoing& s, const char* phase, std::string error);
  void AbortDestination(std::shared_ptr<Outgoing> s, std::string why);
  void Completed(std::shared_ptr<Outgoing> s);
  void Open(std::shared_ptr<Arriving> s);
  void Discard(std::shared_ptr<Arriving> s, std::string why);
  // A port restored closed in the middle of a cut-over (Switch::SetMovedTo): asks its peer
  // where the guest went until the answer settles it (running there: the port goes here;
  // absent there: it opens here) or the guest starts here (OnDevice).
  kj::Promise<void> Settle(std::shared_ptr<Outgoing> s);
  // Tells the peer that the guest started here again, so that its arriving copy goes.
  void TellReclaimed(std::string port, std::string peer);

  Switch* sw_;
  ControlQueue* q_;
  kj::Timer& timer_;
  Dialer dial_;
  std::shared_ptr<bool> alive_;  // false once destroyed: late device events find nothing
  std::map<std::string, std::shared_ptr<Outgoing>> outgoing_;
  std::map<std::string, std::shared_ptr<Arriving>> arriving_;
  MigrationTotals totals_;
  class Errors : public kj::TaskSet::ErrorHandler {
   public:
    void taskFailed(kj::Exception&&) override {}  // each task records its own failure
  } errors_;
  kj::TaskSet tasks_{errors_};
};

}  // namespace palisade::migration
