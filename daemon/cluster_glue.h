// ClusterGlue: palisaded's side of the cluster (cluster/agent.h). Each update from the agent
// (on the agent's thread) is posted to the control thread, where it sets the cluster's VM and
// group addresses on the switch and gives every local port whose VM the cluster's policies
// apply to its rendered rule file (attaching the stateful firewall to slot 2 where none is).
// Rule files, and the tables whose sets name addresses that changed, compile on a pool of its
// own and are installed by a post back to the control thread.
// A VM whose policies do not merge keeps the rules it had, and the log says why. The control
// tick publishes this host's VMs (addresses bound and learned; `incoming` while a port is still
// arriving by live migration), at most five times a second.
//
// Thread-safety: Start, Tick and the destructor on the control thread; status() anywhere.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cluster/agent.h"
#include "vswitch/background_pool.h"
#include "vswitch/control_queue.h"
#include "vswitch/switch.h"

namespace palisade {

class ClusterGlue {
 public:
  ClusterGlue(Switch* sw, ControlQueue* queue) : sw_(sw), queue_(queue) {}
  ~ClusterGlue();

  // Starts the agent; a snapshot on disk is applied before this returns (before the workers
  // forward anything).
  Status Start(cluster::AgentOptions options);
  void Tick();
  const cluster::ClusterAgent* agent() const { return agent_.get(); }

 private:
  // now: each port's file compiled and in place before this returns (the snapshot, before the
  // switch forwards); otherwise compiled in the pool and installed by a later post, so that a
  // large table does not stop the control loop.
  void Apply(const cluster::ClusterUpdate& u, bool now);
  void ApplyFiles(const cluster::ClusterUpdate& u, bool now);  // the ports' rule files
  void Load(const std::string& port, const std::string& vm, const std::string& text, int64_t revision);
  // The port's table compiled again for the addresses its sets name.
  void Recompile(const std::string& port, int64_t revision);
  // Compiles p in the pool, then commits it and calls done, unless a later table for the port
  // was asked for meanwhile.
  void Compile(const std::string& port, std::shared_ptr<Switch::PreparedRules> p, bool file,
               std::function<void(const Status&)> done);
  bool FileLoading(const std::string& port) const {
    auto it = loading_.find(port);
    return it != loading_.end() && it->second.file;
  }
  void Loaded(const std::string& port, const std::string& vm, int64_t revision, const Status& s);

  Switch* sw_;
  ControlQueue* queue_;
  std::unique_ptr<cluster::ClusterAgent> agent_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // posted jobs check it
  // While ClusterAgent::Start runs (before its threads exist), its update is the snapshot.
  std::atomic<bool> starting_{false};
  std::shared_ptr<const cluster::ClusterUpdate> snapshot_;
  std::map<std::string, std::string> applied_;  // port -> the rule text it has from the cluster
  // The halves of the last update applied (an update hands on what did not change), and
  // whether a port failed to take its rules then, so that the same rule files are tried again.
  std::shared_ptr<const cluster::LocalRules> applied_local_;
  std::shared_ptr<const cluster::ResolvedNames> applied_resolved_;
  bool retry_ = false;
  // Port -> the number of its table compiling in the pool (and whether from a cluster file or a
  // recompile): a compile that finds a later one asked for is dropped, never installed over it.
  struct Pending {
    uint64_t seq;
    bool file;
  };
  std::map<std::string, Pending> loading_;
  uint64_t loads_ = 0;
  uint64_t ticks_ = 0;
  std::map<std::string, std::string> reported_;  // VM -> the merge error last logged
  BackgroundPool pool_;  // last: its destructor waits for compiles, whose posts find alive_ false
};

}  // namespace palisade
