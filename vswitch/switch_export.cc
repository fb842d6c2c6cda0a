// The Switch's export and import of a port's filter state, for migration and restarts.
#include <cstring>

#include "firewall/rule_text.h"
#include "vswitch/clock.h"
#include "vswitch/migration_gate.h"
#include "vswitch/switch.h"

namespace palisade {

std::vector<std::string> Switch::PortNames() const {
  std::vector<std::string> names;
  for (const auto& [name, state] : ports_) names.push_back(name);
  return names;
}

Status Switch::ExportPort(const std::string& name, PortExport* out, bool with_connections) const {
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  const PortState& state = it->second;
  if (state.chain->Find(MigrationGate::kSlot) != nullptr && state.moved_to.empty()) {
    // Its table is incomplete until the final delta; the source still has the VM.
    return Status::Unavailable("port '" + name + "' is still arriving by live migration");
  }
  PortExport e;
  e.spec = state.spec;
  e.moved_to = state.moved_to;
  for (const FilterSlot& slot : state.chain->slots()) {
    if (slot.slot == MigrationGate::kSlot) continue;
    std::string agent = "none";
    if (slot.filter == state.sfw && slot.filter) agent = "sfw";
    else if (slot.filter == state.swsec && slot.filter) agent = "swsec";
    else if (slot.filter) agent = "counting";
    e.slots.push_back(FilterSpec{slot.slot, agent, slot.policy});
  }
  if (state.swsec) {
    e.learned_mac = state.swsec->learned_mac();
    e.learned_ips = state.swsec->learned();
  }
  if (state.sfw) {
    if (auto table = state.sfw->table()) {
      e.rules = fw::PrintRuleFile(state.rules);
      e.generation = table->generation();
    }
    e.options = state.sfw->options();
    for (const fw::AddrSet& set : state.rules.addrsets) {
      for (const std::string& vm : set.vms) e.vm_addresses[vm] = VmAddresses(vm);
    }
    const uint64_t now = NowNs();
    uint32_t cursor = with_connections ? 0 : fw::ConnTable::kNil;
    while (cursor != fw::ConnTable::kNil) cursor = state.sfw->ExportConns(cursor, 4096, now, &e.conns);
  }
  *out = std::move(e);
  return Status::Ok();
}

Status Switch::ImportPort(const PortExport& in, size_t* connections) {
  return Import(in, /*incoming=*/false, connections);
}

Status Switch::ImportIncoming(const PortExport& in, size_t* connections) {
  if (in.spec.kind != PortKind::kVhostUser) {
    return Status::Invalid("port '" + in.spec.name + "': only a VM's vhost-user port migrates");
  }
  if (ports_.count(in.spec.name)) {
    return Status::Exists("port '" + in.spec.name + "' already exists here");
  }
  return Import(in, /*incoming=*/true, connections);
}

Status Switch::Import(const PortExport& in, bool incoming, size_t* connections) {
  config_changes_++;
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
  state.moved_to = incoming ? "" : in.moved_to;  // a peer's message never sets it
  if (incoming || !in.moved_to.empty()) {
    state.chain = state.chain->With(
        FilterSlot{MigrationGate::kSlot, FailurePolicy::kFailClosed, std::make_shared<MigrationGate>()});
    Publish();
  }
  auto fill = [&]() -> Status {
    for (const FilterSpec& slot : in.slots) {
      if (state.chain->Find(slot.slot) != nullptr) continue;  // configured already (config file)
      if (Status s = AttachFilter(in.spec.name, slot); !s.ok()) return s;
    }
    if (state.swsec) state.swsec->Restore(in.learned_mac, in.learned_ips);
    if (!state.sfw) return Status::Ok();
    // VMs hosted elsewhere keep the addresses the source knew (local ports take precedence).
    for (const auto& [vm, addrs] : in.vm_addresses) remote_vms_[vm] = addrs;
    if (!in.vm_addresses.empty()) RecompileVmSets();
    if (!in.rules.empty()) {
      if (Status s = LoadRules(in.spec.name, in.rules); !s.ok()) return s;
    }
    if (Status s = SetFirewallOptions(in.spec.name, in.options); !s.ok()) return s;
    const size_t taken = state.sfw->ImportConns(in.conns, NowNs());
    if (connections) *connections = taken;
    return Status::Ok();
  };
  Status s = fill();
  // A port this import created goes with its failure: no half port, closed or open, stays.
  if (!s.ok() && created) (void)RemovePort(in.spec.name);
  return s;
}

Status Switch::RestoreConnections(const PortExport& in, size_t* connections) {
  auto it = ports_.find(in.spec.name);
  if (it == ports_.end()) return Status::NotFound("no port '" + in.spec.name + "'");
  PortState& state = it->second;
  if (state.swsec) state.swsec->Restore(in.learned_mac, in.learned_ips);
  *connections = state.sfw ? state.sfw->ImportConns(in.conns, NowNs()) : 0;
  return Status::Ok();
}

Status Switch::ApplyDelta(const std::string& name, const std::vector<fw::Conn>& changed,
                          const std::vector<fw::ConnKey>& removed, size_t* taken) {
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  if (!it->second.sfw) return Status::Invalid("port '" + name + "' has no stateful filter");
  it->second.sfw->RemoveConns(removed);
  *taken = it->second.sfw->ImportConns(changed, NowNs());
  return Status::Ok();
}

Status Switch::OpenPort(const std::string& name) {
  config_changes_++;
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  if (it->second.chain->Find(MigrationGate::kSlot) != nullptr) {
    it->second.chain = it->second.chain->Without(MigrationGate::kSlot);
    Publish();
  }
  // This switch forwards to the VM's new place at once; the RARP teaches the others.
  if (it->second.spec.mac) bridge_->Teach(it->second.spec.mac, it->second.port->index(), NowS());
  return Announce(name);
}

Status Switch::SetMovedTo(const std::string& name, const std::string& peer) {
  config_changes_++;
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  it->second.moved_to = peer;
  return Status::Ok();
}

Status Switch::ReclaimMovedPort(const std::string& name, std::string* peer) {
  auto it = ports_.find(name);
  if (it == ports_.end() || it->second.moved_to.empty() ||
      it->second.chain->Find(MigrationGate::kSlot) == nullptr) {
    return Status::NotFound("port '" + name + "' was not restored in the middle of a cut-over");
  }
  *peer = it->second.moved_to;
  it->second.moved_to.clear();
  return OpenPort(name);
}

std::vector<std::pair<std::string, std::string>> Switch::MovedPorts() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, state] : ports_) {
    if (!state.moved_to.empty() && state.chain->Find(MigrationGate::kSlot) != nullptr) {
      out.emplace_back(name, state.moved_to);
    }
  }
  return out;
}

Status Switch::RemoveMigratedPort(const std::string& name) {
  config_changes_++;
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  const std::string vm = it->second.spec.vm;
  if (!vm.empty()) remote_vms_[vm] = VmAddresses(vm);
  return RemovePort(name);  // recompiles the sets naming the VM, now with the kept addresses
}

Status Switch::Announce(const std::string& name) {
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  const uint64_t mac = it->second.spec.mac;
  if (mac == 0) return Status::Ok();  // unbound: the guest announces itself (GUEST_ANNOUNCE)
  // RARP "reverse request" from the VM's MAC, as QEMU announces a migrated guest.
  Worker::InjectedFrame f{};
  f.port = it->second.port->index();
  f.len = 60;
  uint8_t* p = f.data;
  uint8_t m[6];
  for (int i = 0; i < 6; i++) m[i] = static_cast<uint8_t>(mac >> (40 - 8 * i));
  std::memset(p, 0xff, 6);
  std::memcpy(p + 6, m, 6);
  const uint8_t header[] = {0x80, 0x35, 0, 1, 0x08, 0x00, 6, 4, 0, 3};
  std::memcpy(p + 12, header, sizeof header);
  std::memcpy(p + 22, m, 6);  // sender hardware address; protocol addresses stay 0
  std::memcpy(p + 32, m, 6);  // target hardware address
  if (!workers_[it->second.worker]->Inject(f)) return Status::Unavailable("announce queue full");
  return Status::Ok();
}

Status Switch::StatefulFilterOf(const std::string& name,
                                std::shared_ptr<fw::StatefulFilter>* out) const {
  auto it = ports_.find(name);
  if (it == ports_.end()) return Status::NotFound("no port '" + name + "'");
  *out = it->second.sfw;
  return Status::Ok();
}

}  // namespace palisade
