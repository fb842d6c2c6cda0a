#include "daemon/cluster_glue.h"

#include "daemon/log.h"
#include "slot/mac_addr.h"
#include "vswitch/migration_gate.h"

namespace palisade {

ClusterGlue::~ClusterGlue() {
  *alive_ = false;
  agent_.reset();  // joins the agent's threads; later posts find alive_ false
}

Status ClusterGlue::Start(cluster::AgentOptions options) {
  starting_ = true;
  auto on_update = [this, alive = alive_](std::shared_ptr<const cluster::ClusterUpdate> u) {
    if (starting_) {  // the snapshot, on this thread, inside ClusterAgent::Start
      snapshot_ = std::move(u);
      return;
    }
    queue_->Post([this, alive, u = std::move(u)]() {
      if (*alive) Apply(*u);
    });
  };
  Status s = cluster::ClusterAgent::Start(std::move(options), on_update, &agent_);
  starting_ = false;  // the agent's threads start after the snapshot: they see this
  if (!s.ok()) return s;
  if (snapshot_) {
    Log(LogLevel::kInfo, "cluster: starting from the snapshot of revision %lld",
        static_cast<long long>(snapshot_->revision));
    Apply(*snapshot_);
    snapshot_.reset();
  }
  return Status::Ok();
}

void ClusterGlue::Apply(const cluster::ClusterUpdate& u) {
  if (u.resolved != applied_resolved_) sw_->SetClusterAddresses(u.resolved->vms, u.resolved->groups);
  applied_resolved_ = u.resolved;
  // The same rule files as the last pass, which every port took: nothing to do.
  if (u.local == applied_local_ && !retry_) return;
  applied_local_ = u.local;
  retry_ = false;
  for (const PortInfo& port : sw_->Ports()) {
    const std::string& vm = port.spec.vm;
    if (vm.empty()) continue;
    if (auto e = u.local->errors.find(vm); e != u.local->errors.end()) {
      if (reported_[vm] != e->second) {
        Log(LogLevel::kError, "cluster revision %lld: %s; port %s keeps the rules it had",
            static_cast<long long>(u.revision), e->second.c_str(), port.name.c_str());
        reported_[vm] = e->second;
      }
      continue;
    }
    reported_.erase(vm);
    auto r = u.local->rules.find(vm);
    if (r == u.local->rules.end()) continue;  // not published yet: the next update brings it
    if (r->second.empty() && port.cluster_revision == 0) continue;  // no policy: configured here
    auto applied = applied_.find(port.name);
    if (applied != applied_.end() && applied->second == r->second) continue;
    bool has_sfw = false;
    for (const SlotInfo& slot : port.slots) has_sfw |= slot.agent == "palisade-sfw";
    if (!has_sfw) {
      if (Status s = sw_->AttachFilter(port.name, FilterSpec{2, "sfw", FailurePolicy::kFailClosed}); !s.ok()) {
        Log(LogLevel::kError, "cluster: port %s: %s", port.name.c_str(), s.message().c_str());
        retry_ = true;
        continue;
      }
    }
    if (Status s = sw_->SetClusterRules(port.name, r->second, static_cast<uint64_t>(u.revision)); !s.ok()) {
      Log(LogLevel::kError, "cluster revision %lld: port %s: %s", static_cast<long long>(u.revision),
          port.name.c_str(), s.message().c_str());
      retry_ = true;
      continue;
    }
    applied_[port.name] = r->second;
    Log(LogLevel::kInfo, "cluster revision %lld: port %s (VM %s) takes its rules from the cluster",
        static_cast<long long>(u.revision), port.name.c_str(), vm.c_str());
  }
}

void ClusterGlue::Tick() {
  // The control tick runs 50 times a second; this host's VMs are published at most 5.
  if (!agent_ || ++ticks_ % 10 != 0) return;
  std::map<std::string, cluster::EndpointInfo> local;
  for (const PortInfo& port : sw_->Ports()) {
    if (port.spec.vm.empty()) continue;
    cluster::EndpointInfo& e = local[port.spec.vm];
    e.vm = port.spec.vm;
    if (port.spec.mac) e.macs = {MacToString(port.spec.mac)};
    e.addresses = sw_->VmAddresses(port.spec.vm);
    for (const SlotInfo& slot : port.slots) {
      if (slot.slot == MigrationGate::kSlot && slot.agent == "palisade-migration") e.state = "incoming";
    }
  }
  for (auto it = applied_.begin(); it != applied_.end();) {  // ports that went
    PortInfo unused;
    it = sw_->GetPort(it->first, &unused).ok() ? std::next(it) : applied_.erase(it);
  }
  std::vector<cluster::EndpointInfo> list;
  for (auto& [vm, e] : local) list.push_back(std::move(e));
  agent_->Publish(std::move(list));
}

}  // namespace palisade
