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
      if (*alive) Apply(*u, /*now=*/false);
    });
  };
  Status s = cluster::ClusterAgent::Start(std::move(options), on_update, &agent_);
  starting_ = false;  // the agent's threads start after the snapshot: they see this
  if (!s.ok()) return s;
  if (snapshot_) {
    Log(LogLevel::kInfo, "cluster: starting from the snapshot of revision %lld",
        static_cast<long long>(snapshot_->revision));
    Apply(*snapshot_, /*now=*/true);
    snapshot_.reset();
  }
  return Status::Ok();
}

void ClusterGlue::Apply(const cluster::ClusterUpdate& u, bool now) {
  // Tables whose sets name a VM or group whose addresses changed: compiled again below (in
  // place for the snapshot).
  std::vector<std::string> stale;
  if (u.resolved != applied_resolved_) sw_->SetClusterAddresses(u.resolved->vms, u.resolved->groups, now ? nullptr : &stale);
  applied_resolved_ = u.resolved;
  for (const std::string& port : stale) {
    // A file of the port compiling with the old addresses is asked for again, by the pass below.
    if (compiler_->FileLoading(port)) {
      applied_.erase(port);
      retry_ = true;
    }
  }
  ApplyFiles(u, now);
  for (const std::string& port : stale) {
    if (!compiler_->FileLoading(port)) Recompile(port, u.revision);
  }
}

void ClusterGlue::ApplyFiles(const cluster::ClusterUpdate& u, bool now) {
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
    if (r->second.empty() && port.cluster_revision == 0 && !compiler_->FileLoading(port.name)) continue;  // configured here
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
    applied_[port.name] = r->second;  // asked for: not again while it compiles
    if (now) {
      compiler_->Forget(port.name);
      Loaded(port.name, vm, u.revision, sw_->SetClusterRules(port.name, r->second, static_cast<uint64_t>(u.revision)));
    } else {
      Load(port.name, vm, r->second, u.revision);
    }
  }
}

void ClusterGlue::Load(const std::string& port, const std::string& vm, const std::string& text, int64_t revision) {
  auto p = std::make_shared<Switch::PreparedRules>();
  if (Status s = sw_->PrepareClusterRules(port, text, static_cast<uint64_t>(revision), p.get()); !s.ok()) {
    compiler_->Forget(port);
    Loaded(port, vm, revision, s);
    return;
  }
  compiler_->Load(port, std::move(p), [this, alive = alive_, port, vm, revision](const Status& s) {
    if (*alive) Loaded(port, vm, revision, s);  // the compiler may outlive this glue
  });
}

void ClusterGlue::Recompile(const std::string& port, int64_t revision) {
  compiler_->Recompile(port, [port, revision](const Status& s) {
    if (s.ok()) return;
    Log(LogLevel::kError, "cluster revision %lld: port %s keeps the addresses it had: %s",
        static_cast<long long>(revision), port.c_str(), s.message().c_str());
  });
}

void ClusterGlue::Loaded(const std::string& port, const std::string& vm, int64_t revision, const Status& s) {
  if (!s.ok()) {
    applied_.erase(port);
    retry_ = true;  // the next update tries again
    Log(LogLevel::kError, "cluster revision %lld: port %s: %s", static_cast<long long>(revision), port.c_str(),
        s.message().c_str());
    return;
  }
  Log(LogLevel::kInfo, "cluster revision %lld: port %s (VM %s) takes its rules from the cluster",
      static_cast<long long>(revision), port.c_str(), vm.c_str());
}

void ClusterGlue::ReportSnapshot() {
  const cluster::AgentStatus s = agent_->status();
  if (s.snapshot_error == snapshot_error_) return;
  if (!s.snapshot_error.empty()) {
    Log(LogLevel::kError, "cluster: the snapshot cannot be written: %s (the one on disk, revision %lld, stays)",
        s.snapshot_error.c_str(), static_cast<long long>(s.snapshot_revision));
  } else {
    Log(LogLevel::kInfo, "cluster: the snapshot is written again (revision %lld)",
        static_cast<long long>(s.snapshot_revision));
  }
  snapshot_error_ = s.snapshot_error;
}

void ClusterGlue::Tick() {
  // The control tick runs 50 times a second; this host's VMs are published at most 5.
  if (!agent_ || ++ticks_ % 10 != 0) return;
  ReportSnapshot();
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
