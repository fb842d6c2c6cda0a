// The Switch's firewall side: creating the firewall's filters for a port's slots, compiling rule
// tables (with dynamic address sets resolved from what the switch knows of each VM), and the
// operator's views of rules, address sets and flows.
#include <random>

#include "firewall/rule_table.h"
#include "firewall/rule_text.h"
#include "vswitch/clock.h"
#include "vswitch/counting_filter.h"
#include "vswitch/switch.h"

namespace palisade {

Status Switch::MakeFilter(PortState& state, const FilterSpec& spec, std::shared_ptr<Filter>* out) {
  const uint32_t filter_id = state.port->index();
  if (spec.agent == "counting") {
    *out = std::make_shared<CountingFilter>();
  } else if (spec.agent == "none") {
    out->reset();
  } else if (spec.agent == "sfw") {
    if (state.sfw) return Status::Exists("port '" + state.spec.name + "' already has a stateful firewall");
    std::random_device rd;
    const uint64_t seed = (uint64_t{rd()} << 32) | rd();
    std::unique_ptr<fw::ConnSegment> segment;
    if (!options_.conn_dir.empty()) {
      const std::string path = options_.conn_dir + "/port-" + state.spec.name + ".conns";
      const uint32_t slots = fw::ConnTable::SlotsFor(options_.firewall.conn_limit);
      if (Status s = fw::ConnSegment::Create(path, slots, boot_id_, &segment); !s.ok() && options_.warn) {
        options_.warn("port '" + state.spec.name + "': its connections are kept in private memory and " +
                      "would not survive a crash: " + s.message());
      }
    }
    state.sfw = std::make_shared<fw::StatefulFilter>(filter_id, packet_log_.get(), options_.firewall,
                                                     seed, hash_seed_, std::move(segment));
    state.sfw->set_owner(workers_[state.worker]->owner());
    if (state.generation > 0) {  // re-attached: keep the rules it had
      if (Status s = Compile(state, state.rules); !s.ok()) return s;
    }
    *out = state.sfw;
  } else if (spec.agent == "swsec") {
    if (state.swsec) return Status::Exists("port '" + state.spec.name + "' already has port security");
    fw::PortBinding binding;
    binding.mac = state.spec.mac;
    binding.ips = state.spec.ips;
    binding.learn = state.spec.ips.empty();  // bound addresses are final; otherwise first use
    binding.router = state.spec.allow.router;
    binding.dhcp_server = state.spec.allow.dhcp_server;
    state.swsec = std::make_shared<fw::PortSecurity>(filter_id, binding, packet_log_.get());
    state.swsec->set_owner(workers_[state.worker]->owner());
    *out = state.swsec;
  } else {
    return Status::Invalid("unknown filter agent '" + spec.agent + "' (known: sfw, swsec, counting, none)");
  }
  return Status::Ok();
}

const Switch::PortState* Switch::FindFirewall(const std::string& filter) const {
  auto it = ports_.find(filter);
  if (it != ports_.end()) return it->second.sfw ? &it->second : nullptr;
  for (const auto& [name, state] : ports_) {
    if (!state.sfw) continue;
    for (const FilterSlot& slot : state.chain->slots()) {
      if (slot.filter == state.sfw &&
          filter == "nic-" + std::to_string(state.port->index()) + "-" + name + "-palisade-sfw." +
                        std::to_string(slot.slot)) {
        return &state;
      }
    }
  }
  return nullptr;
}

Switch::PortState* Switch::FindFirewall(const std::string& filter) {
  return const_cast<PortState*>(std::as_const(*this).FindFirewall(filter));
}

namespace {
Status NoFirewall(const std::string& filter) {
  return Status::NotFound("no stateful firewall '" + filter +
                          "' (give a port with an sfw filter attached, or its filter name)");
}
}  // namespace

std::vector<fw::IpAddr> Switch::VmAddresses(const std::string& vm) const {
  std::vector<fw::IpAddr> out;
  bool local = false;
  for (const auto& [name, state] : ports_) {
    if (state.spec.vm != vm) continue;
    local = true;
    std::vector<fw::IpAddr> addrs = state.swsec ? state.swsec->addresses() : state.spec.ips;
    for (const fw::IpAddr& a : addrs) {
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
    }
  }
  if (!local) {
    if (auto it = cluster_vms_.find(vm); it != cluster_vms_.end()) {
      out = it->second;
    } else if (auto it = remote_vms_.find(vm); it != remote_vms_.end()) {
      out = it->second;
    }
  }
  return out;
}

std::vector<fw::IpPrefix> Switch::MemberAddresses(fw::Member kind, const std::string& name) const {
  std::vector<fw::IpPrefix> out;
  if (kind == fw::Member::kVm) {
    for (const fw::IpAddr& a : VmAddresses(name)) out.push_back(fw::IpPrefix::Host(a));
  } else if (auto it = cluster_groups_.find(name); it != cluster_groups_.end()) {
    out = it->second;
  }
  return out;
}

fw::MemberAddresses Switch::Members() const {
  return [this](fw::Member kind, const std::string& name) { return MemberAddresses(kind, name); };
}

Status Switch::Compile(PortState& state, fw::RuleFile file) {
  std::shared_ptr<const fw::RuleTable> table;
  Status s = fw::RuleTable::Compile(file, Members(), state.generation + 1, &table);
  if (!s.ok()) return s;
  Install(state, std::move(file), std::move(table));
  return Status::Ok();
}

void Switch::Install(PortState& state, fw::RuleFile file, std::shared_ptr<const fw::RuleTable> table) {
  state.generation = table->generation();
  state.rules = std::move(file);
  state.sfw->SetTable(std::move(table));
}

void Switch::RecompileVmSets(bool later) {
  for (auto& [name, state] : ports_) {
    if (!state.sfw) continue;
    auto table = state.sfw->table();
    if (!table || !table->has_dynamic_members()) continue;
    // The same source with the VMs' current addresses; it compiled before, so it compiles now.
    if (later && recompile_later_) {
      recompile_later_(name);
    } else {
      (void)Compile(state, state.rules);
    }
  }
}

void Switch::FirewallTick(uint64_t now_ns) {
  const uint64_t boot_ns = BootNs();
  // The filters' share of the tick runs on their workers in one call per worker: a call per
  // filter would wait for a loop of its worker each, and a worker may poll hundreds of ports.
  std::vector<fw::StatefulFilter::Ahead> targets(kMaxPorts);
  for (size_t w = 0; w < workers_.size(); w++) {
    workers_[w]->owner()->Call([&] {
      for (auto& [name, state] : ports_) {
        if (state.worker != w) continue;
        if (state.sfw) {
          state.sfw->Expire(now_ns, fw::StatefulFilter::kSweepSlice);  // new entries sweep too (SweepSlots)
          targets[state.port->index()] = state.sfw->AheadTarget(now_ns, boot_ns);
        }
        if (state.swsec) state.swsec->Expire(now_ns);
      }
    });
  }
  bool vm_addresses_changed = false;
  for (auto& [name, state] : ports_) {
    if (state.sfw) {
      const Status s = state.sfw->CommitSlots(targets[state.port->index()]);
      if (!s.ok() && !state.conns_unbacked && options_.warn) {
        options_.warn("port '" + name + "': " + s.message() + ": new connections may be refused");
      }
      state.conns_unbacked = !s.ok();
    }
    if (state.swsec && state.swsec->TakeChanged()) vm_addresses_changed = true;
  }
  if (vm_addresses_changed) {
    ReserveAddresses();
    RecompileVmSets(/*later=*/true);
  }
  packet_log_->Drain(options_.packet_log, now_ns);
}

uint64_t Switch::learned_version() const {
  uint64_t sum = 0;
  for (const auto& [name, state] : ports_) {
    if (state.swsec) sum += state.swsec->learned_version();
  }
  return sum;
}

void Switch::ReserveAddresses() {
  std::map<std::string, std::vector<fw::IpAddr>> held;
  for (const auto& [name, state] : ports_) {
    held[name] = state.swsec ? state.swsec->addresses() : state.spec.ips;
  }
  for (auto& [name, state] : ports_) {
    if (!state.swsec) continue;
    std::vector<fw::IpAddr> others;
    for (const auto& [other, addrs] : held) {
      if (other != name) others.insert(others.end(), addrs.begin(), addrs.end());
    }
    state.swsec->SetReserved(std::move(others));
  }
}

Status Switch::LoadRules(const std::string& filter, std::string_view text) {
  config_changes_++;
  PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  if (Status s = Managed(*state); !s.ok()) return s;
  fw::RuleFile merged;
  if (Status s = MergeRules(*state, text, &merged); !s.ok()) return s;
  return Compile(*state, std::move(merged));
}

Status Switch::PrepareRules(const std::string& filter, std::string_view text, PreparedRules* out) const {
  const PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  if (Status s = Managed(*state); !s.ok()) return s;
  out->filter = filter;
  out->text = text;
  if (Status s = MergeRules(*state, text, &out->file); !s.ok()) return s;
  Resolve(*state, out);
  return Status::Ok();
}

void Switch::Resolve(const PortState& state, PreparedRules* out) const {
  for (const fw::AddrSet& set : out->file.addrsets) {
    for (const std::string& vm : set.vms) out->members[{fw::Member::kVm, vm}] = MemberAddresses(fw::Member::kVm, vm);
    for (const std::string& g : set.groups) {
      out->members[{fw::Member::kGroup, g}] = MemberAddresses(fw::Member::kGroup, g);
    }
  }
  out->generation = state.generation + 1;
  out->inputs = RuleInputs(state, !out->members.empty());
}

void Switch::CompileRules(PreparedRules* p) {
  const auto& members = p->members;
  const fw::MemberAddresses resolve = [&members](fw::Member kind, const std::string& name) {
    auto it = members.find({kind, name});
    return it != members.end() ? it->second : std::vector<fw::IpPrefix>{};
  };
  p->compiled = fw::RuleTable::Compile(p->file, resolve, p->generation, &p->table);
}

Status Switch::CommitRules(PreparedRules p) {
  PortState* state = FindFirewall(p.filter);
  if (state == nullptr || p.inputs != RuleInputs(*state, !p.members.empty())) {
    if (p.recompile) return state == nullptr ? NoFirewall(p.filter) : Compile(*state, state->rules);
    return p.cluster_revision != 0 ? SetClusterRules(p.filter, p.text, p.cluster_revision) : LoadRules(p.filter, p.text);
  }
  if (!p.compiled.ok()) return p.compiled;
  config_changes_++;
  Install(*state, std::move(p.file), std::move(p.table));
  if (p.cluster_revision != 0 || p.recompile) cluster_loads_++;
  if (p.cluster_revision != 0) state->cluster_revision = p.cluster_revision;
  return Status::Ok();
}

Status Switch::MergeRules(const PortState& state, std::string_view text, fw::RuleFile* out) const {
  fw::RuleFile file;
  if (Status s = fw::ParseRuleFile(text, &file); !s.ok()) return s;
  // A file replaces the rule tables it holds and the address sets it defines; sets it does
  // not mention stay.
  fw::RuleFile merged = state.rules;
  if (!file.name.empty() || file.has_l2) {
    merged.name = file.name;
    merged.rules = file.rules;
    merged.has_l2 = file.has_l2;
    merged.l2_rules = file.l2_rules;
  }
  for (fw::AddrSet& set : file.addrsets) {
    auto it = std::find_if(merged.addrsets.begin(), merged.addrsets.end(),
                           [&](const fw::AddrSet& s) { return s.name == set.name; });
    if (it != merged.addrsets.end()) {
      *it = std::move(set);
    } else {
      merged.addrsets.push_back(std::move(set));
    }
  }
  *out = std::move(merged);
  return Status::Ok();
}

Status Switch::SetAddrSet(const std::string& filter, fw::AddrSet set) {
  config_changes_++;
  fw::RuleFile file;
  file.addrsets.push_back(std::move(set));
  PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  if (Status s = Managed(*state); !s.ok()) return s;
  fw::RuleFile merged = state->rules;
  auto it = std::find_if(merged.addrsets.begin(), merged.addrsets.end(),
                         [&](const fw::AddrSet& s) { return s.name == file.addrsets[0].name; });
  if (it != merged.addrsets.end()) {
    *it = std::move(file.addrsets[0]);
  } else {
    merged.addrsets.push_back(std::move(file.addrsets[0]));
  }
  return Compile(*state, std::move(merged));
}

Status Switch::GetRules(const std::string& filter, std::string* text,
                        std::vector<fw::RuleStats>* stats, std::vector<fw::Rule>* rules) const {
  const PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  auto table = state->sfw->table();
  if (!table) {
    *text = "";
    return Status::Ok();
  }
  *text = fw::PrintRules(table->file());
  if (state->cluster_revision > 0) {
    *text = "# from the cluster's policies for VM " + state->spec.vm + ", etcd revision " +
            std::to_string(state->cluster_revision) + "\n" + *text;
  }
  if (stats) *stats = state->sfw->rule_stats();
  if (rules) *rules = table->rules();
  return Status::Ok();
}

Status Switch::GetAddrSets(const std::string& filter, std::string* text) const {
  const PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  // What the port's table enforces; a newer table for changed addresses may be compiling.
  auto table = state->sfw->table();
  *text = fw::PrintAddrSets(state->rules.addrsets, table ? table->compiled_members() : Members());
  return Status::Ok();
}

Status Switch::GetFlows(const std::string& filter, const fw::FlowSelector& sel,
                        std::vector<fw::FlowInfo>* out) const {
  const PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  // In pages, so a worker waits at most for one page at a time.
  uint32_t cursor = 0;
  const uint64_t now = NowNs();
  while (cursor != fw::ConnTable::kNil) cursor = state->sfw->Flows(cursor, 1024, sel, now, out);
  return Status::Ok();
}

Status Switch::GetFlowsPage(const std::string& filter, const fw::FlowSelector& sel,
                            uint32_t cursor, uint32_t max, std::vector<fw::FlowInfo>* out,
                            uint32_t* next) const {
  const PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  *next = state->sfw->Flows(cursor, max, sel, NowNs(), out);
  return Status::Ok();
}

Status Switch::FlushFlows(const std::string& filter, const fw::FlowSelector& sel, size_t* flushed) {
  PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  *flushed = state->sfw->Flush(sel, NowNs());
  return Status::Ok();
}

Status Switch::GetFirewall(const std::string& filter, FirewallStatus* out) const {
  const PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  out->options = state->sfw->options();
  out->flows = state->sfw->flow_count();
  out->table_bytes = state->sfw->memory_bytes();
  if (auto table = state->sfw->table()) {
    out->rules = static_cast<uint32_t>(table->rules().size());
    out->classifier = table->classifier().engine();
    out->classifier_bytes = table->classifier().memory_bytes();
  }
  return Status::Ok();
}

Status Switch::SetFirewallOptions(const std::string& filter, const fw::FirewallOptions& options) {
  config_changes_++;
  PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  if (options.conn_limit < 1 || options.conn_limit > 16000000) {
    return Status::Invalid("the connection limit must be 1-16000000");
  }
  return state->sfw->SetOptions(options);
}

Status Switch::UpdateFirewallOptions(const std::string& filter, std::optional<uint32_t> limit,
                                     std::optional<bool> recheck,
                                     const std::vector<std::pair<std::string, uint32_t>>& timeouts) {
  const PortState* state = FindFirewall(filter);
  if (state == nullptr) return NoFirewall(filter);
  fw::FirewallOptions o = state->sfw->options();
  if (limit) o.conn_limit = *limit;
  if (recheck) o.recheck = *recheck;
  for (const auto& [name, seconds] : timeouts) {
    if (Status s = o.timeouts.Set(name, seconds); !s.ok()) return s;
  }
  return SetFirewallOptions(filter, o);
}

}  // namespace palisade
