// The Switch's export and import of a port's filter state, for migration and restarts.
#include "firewall/rule_text.h"
#include "vswitch/clock.h"
#include "vswitch/switch.h"

namespace palisade {

std::vector<std::string> Switch::PortNames() const {
  std::vector<std::string> names;
  for (const auto& [name, state] : ports_) names.push_back(name);
  return names;
}

Status Switch::ExportPort(const std::string& name, PortExport* out) const {
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  const PortState& state = it->second;
  PortExport e;
  e.spec = state.spec;
  for (const FilterSlot& slot : state.chain->slots()) {
    std::string agent = "none";
    if (slot.filter == state.sfw && slot.filter) agent = "sfw";
    else if (slot.filter == state.swsec && slot.filter) agent = "swsec";
    else if (slot.filter) agent = "counting";
    e.slots.push_back(FilterSpec{slot.slot, agent, slot.policy});
  }
  if (state.sfw) {
    if (auto table = state.sfw->table()) {
      e.rules = fw::PrintRuleFile(state.rules);
      e.generation = table->generation();
    }
    e.options = state.sfw->options();
    const uint64_t now = NowNs();
    uint32_t cursor = 0;
    while (cursor != fw::ConnTable::kNil) cursor = state.sfw->ExportConns(cursor, 4096, now, &e.conns);
  }
  *out = std::move(e);
  return Status::Ok();
}

Status Switch::ImportPort(const PortExport& in, size_t* connections) {
  // Everything that can be refused is checked before anything changes.
  if (!in.rules.empty()) {
    fw::RuleFile probe;
    if (Status s = fw::ParseRuleFile(in.rules, &probe); !s.ok()) {
      return Status::Invalid("port '" + in.spec.name + "': rules: " + s.message());
    }
  }
  bool created = false;
  if (ports_.find(in.spec.name) == ports_.end()) {
    if (Status s = AddPort(in.spec); !s.ok()) return s;
    created = true;
  }
  PortState& state = ports_.find(in.spec.name)->second;
  for (const FilterSpec& slot : in.slots) {
    if (state.chain->Find(slot.slot) != nullptr) continue;  // configured already (config file)
    if (Status s = AttachFilter(in.spec.name, slot); !s.ok()) {
      if (created) (void)RemovePort(in.spec.name);
      return s;
    }
  }
  if (!state.sfw) return Status::Ok();
  if (!in.rules.empty()) {
    if (Status s = LoadRules(in.spec.name, in.rules); !s.ok()) return s;
  }
  if (Status s = SetFirewallOptions(in.spec.name, in.options); !s.ok()) return s;
  const size_t taken = state.sfw->ImportConns(in.conns, NowNs());
  if (connections) *connections = taken;
  return Status::Ok();
}

}  // namespace palisade
