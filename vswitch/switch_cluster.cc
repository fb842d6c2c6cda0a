// The Switch's side of the cluster's policies (switch.h): rule files rendered from etcd on
// the ports of managed VMs, and the cluster's VM and group addresses.
#include <set>

#include "firewall/rule_text.h"
#include "vswitch/switch.h"

namespace palisade {

namespace {

// The port, if it has the stateful firewall a cluster file goes into.
template <typename Ports>
auto ClusterPort(Ports& ports, const std::string& port, Status* why) -> decltype(&ports.begin()->second) {
  auto it = ports.find(port);
  if (it == ports.end()) {
    *why = Status::NotFound("no port '" + port + "'");
    return nullptr;
  }
  if (!it->second.sfw) {
    *why = Status::Invalid("port '" + port + "' has no stateful firewall (slot 2)");
    return nullptr;
  }
  return &it->second;
}

}  // namespace

Status Switch::SetClusterRules(const std::string& port, std::string_view text, uint64_t revision) {
  config_changes_++;
  cluster_loads_++;  // its port's generation moves: that is what depends on it
  Status why;
  PortState* state = ClusterPort(ports_, port, &why);
  if (state == nullptr) return why;
  fw::RuleFile file;
  if (Status s = fw::ParseRuleFile(text, &file); !s.ok()) return s;
  if (Status s = Compile(*state, std::move(file)); !s.ok()) return s;
  state->cluster_revision = revision;
  return Status::Ok();
}

Status Switch::PrepareClusterRules(const std::string& port, std::string_view text, uint64_t revision,
                                   PreparedRules* out) const {
  Status why;
  const PortState* state = ClusterPort(ports_, port, &why);
  if (state == nullptr) return why;
  out->filter = port;
  out->text = text;
  out->cluster_revision = revision;
  if (Status s = fw::ParseRuleFile(text, &out->file); !s.ok()) return s;
  Resolve(*state, out);
  return Status::Ok();
}

Status Switch::PrepareRecompile(const std::string& port, PreparedRules* out) const {
  Status why;
  const PortState* state = ClusterPort(ports_, port, &why);
  if (state == nullptr) return why;
  if (state->generation == 0) return Status::Invalid("port '" + port + "' has no rules to compile");
  out->filter = port;
  out->file = state->rules;
  out->recompile = true;
  Resolve(*state, out);
  return Status::Ok();
}

void Switch::SetClusterAddresses(std::map<std::string, std::vector<fw::IpAddr>> vms,
                                 std::map<std::string, std::vector<fw::IpPrefix>> groups,
                                 std::vector<std::string>* stale) {
  // Only the tables whose sets name a VM or group that changed are compiled again.
  std::set<std::pair<fw::Member, std::string>> changed;
  auto diff = [&changed](fw::Member kind, const auto& before, const auto& after) {
    for (const auto& [name, addrs] : after) {
      auto old = before.find(name);
      if (old == before.end() || old->second != addrs) changed.insert({kind, name});
    }
    for (const auto& [name, addrs] : before) {
      if (!after.count(name)) changed.insert({kind, name});
    }
  };
  diff(fw::Member::kVm, cluster_vms_, vms);
  diff(fw::Member::kGroup, cluster_groups_, groups);
  cluster_vms_ = std::move(vms);
  cluster_groups_ = std::move(groups);
  if (changed.empty()) return;
  cluster_changes_++;  // a rule load prepared before resolved the old addresses
  for (auto& [name, state] : ports_) {
    if (!state.sfw || state.generation == 0) continue;
    bool touched = false;
    for (const fw::AddrSet& set : state.rules.addrsets) {
      for (const std::string& vm : set.vms) touched |= changed.count({fw::Member::kVm, vm}) > 0;
      for (const std::string& g : set.groups) touched |= changed.count({fw::Member::kGroup, g}) > 0;
    }
    if (!touched) continue;
    if (stale != nullptr) {
      stale->push_back(name);
    } else {
      (void)Compile(state, state.rules);  // it compiled before, so it compiles now
    }
  }
}

Status Switch::Managed(const PortState& state) const {
  if (state.cluster_revision == 0) return Status::Ok();
  return Status::Invalid("port '" + state.spec.name + "' (VM " + state.spec.vm +
                         ") takes its rules from the cluster's policies in etcd (revision " +
                         std::to_string(state.cluster_revision) +
                         "): change them there, with palisadectl --etcd ENDPOINTS policy apply");
}

}  // namespace palisade
