// ClusterGlue: palisaded's side of the cluster (cluster/agent.h). Each update from the agent
// (on the agent's thread) is posted to the control thread, where it sets the cluster's VM and
// group addresses on the switch and gives every local port whose VM the cluster's policies
// apply to its rendered rule file (attaching the stateful firewall to slot 2 where none is).
// Rule files, and the tables whose sets name addresses that changed, compile off the control
// loop (TableCompiler).
// A VM whose policies do not merge keeps the rules it had, and the log says why. The control
// tick publishes this host's VMs (addresses bound and learned; `incoming` while a port is still
// arriving by live migration), at most five times a second, and logs when the cluster
// snapshot's writes start failing (and when they work again).
//
// Thread-safety: Start, Tick and the destructor on the control thread; status() anywhere.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "cluster/agent.h"
#include "vswitch/control_queue.h"
#include "vswitch/switch.h"
#include "vswitch/table_compiler.h"

namespace palisade {

class ClusterGlue {
 public:
  ClusterGlue(Switch* sw, ControlQueue* queue, TableCompiler* compiler)
      : sw_(sw), queue_(queue), compiler_(compiler) {}
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
  void Loaded(const std::string& port, const std::string& vm, int64_t revision, const Status& s);
  void ReportSnapshot();  // logs when the snapshot's writes start or stop failing

  Switch* sw_;
  ControlQueue* queue_;
  TableCompiler* compiler_;
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
  uint64_t ticks_ = 0;
  std::map<std::string, std::string> reported_;  // VM -> the merge error last logged
  std::string snapshot_error_;  // the snapshot's write failure last logged
};

}  // namespace palisade
