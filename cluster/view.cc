#include "cluster/view.h"

#include <algorithm>

#include <capnp/compat/json.h>
#include <capnp/message.h>

#include "cluster/intent.capnp.h"
#include "cluster/keys.h"
#include "common/kj_errors.h"
#include "firewall/rule_text.h"

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade::cluster {
namespace {

template <typename Reader>
std::string ToJson(Reader r) {
  capnp::JsonCodec codec;
  kj::String s = codec.encode(r);
  return std::string(s.cStr(), s.size());
}

// Decodes `json` into a message of type T, then hands its reader to `take`.
template <typename T, typename F>
Status FromJson(std::string_view json, F take) {
  capnp::MallocMessageBuilder message;
  Status result = Status::Ok();
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    capnp::JsonCodec codec;
    codec.decode(kj::ArrayPtr<const char>(json.data(), json.size()), message.initRoot<T>());
    result = take(message.getRoot<T>().asReader());
  })) {
    return Status::Invalid("not a valid value: " + std::string(e->getDescription().cStr()));
  }
  return result;
}

template <typename List>
void SetTexts(List list, const std::vector<std::string>& items) {
  for (unsigned i = 0; i < items.size(); i++) list.set(i, items[i]);
}

template <typename T>
void SortUnique(std::vector<T>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

}  // namespace

std::string EncodePolicy(const PolicyIntent& p) {
  capnp::MallocMessageBuilder m;
  auto b = m.initRoot<Policy>();
  b.setPriority(p.priority);
  SetTexts(b.initAppliedTo(static_cast<unsigned>(p.applied_to.size())), p.applied_to);
  b.setText(p.text);
  return ToJson(b.asReader());
}

std::string EncodeGroup(const GroupIntent& g) {
  capnp::MallocMessageBuilder m;
  auto b = m.initRoot<Group>();
  SetTexts(b.initMembers(static_cast<unsigned>(g.members.size())), g.members);
  return ToJson(b.asReader());
}

std::string EncodeLabels(const std::map<std::string, std::string>& labels) {
  capnp::MallocMessageBuilder m;
  auto list = m.initRoot<VmLabels>().initLabels(static_cast<unsigned>(labels.size()));
  unsigned i = 0;
  for (const auto& [k, v] : labels) {
    list[i].setKey(k);
    list[i++].setValue(v);
  }
  return ToJson(m.getRoot<VmLabels>().asReader());
}

std::string EncodeEndpoint(const EndpointInfo& e) {
  capnp::MallocMessageBuilder m;
  auto b = m.initRoot<Endpoint>();
  SetTexts(b.initMacs(static_cast<unsigned>(e.macs.size())), e.macs);
  auto addrs = b.initAddresses(static_cast<unsigned>(e.addresses.size()));
  for (unsigned i = 0; i < e.addresses.size(); i++) addrs.set(i, e.addresses[i].ToString());
  b.setGeneration(e.generation);
  b.setState(e.state);
  return ToJson(b.asReader());
}

Status ValidTarget(std::string_view target) {
  for (std::string_view kind : {"vm:", "group:"}) {
    if (target.substr(0, kind.size()) == kind && ValidName(target.substr(kind.size()))) return Status::Ok();
  }
  return Status::Invalid("'" + std::string(target) + "' is not a target (vm:NAME or group:NAME)");
}

Status ValidMember(std::string_view m) {
  auto after = [&](std::string_view kind) { return m.substr(0, kind.size()) == kind ? m.substr(kind.size()) : std::string_view(); };
  if (!after("vm:").empty() && ValidName(after("vm:"))) return Status::Ok();
  if (!after("group:").empty() && ValidName(after("group:"))) return Status::Ok();
  if (std::string_view l = after("label:"); !l.empty()) {
    const size_t eq = l.find('=');
    if (eq != std::string_view::npos && ValidName(l.substr(0, eq)) && !l.substr(eq + 1).empty()) return Status::Ok();
  }
  if (std::string_view ip = after("ip:"); !ip.empty() && fw::IpPrefix::Parse(ip)) return Status::Ok();
  return Status::Invalid("'" + std::string(m) +
                         "' is not a group member (vm:NAME, label:KEY=VALUE, group:NAME, ip:ADDR[/LEN])");
}

Status DecodePolicy(std::string_view name, std::string_view json, PolicyIntent* out) {
  *out = PolicyIntent{};
  out->name = std::string(name);
  Status s = FromJson<Policy>(json, [&](Policy::Reader r) {
    out->priority = r.getPriority();
    for (auto t : r.getAppliedTo()) {
      if (Status v = ValidTarget(Str(t)); !v.ok()) return v;
      out->applied_to.push_back(Str(t));
    }
    out->text = Str(r.getText());
    return fw::ParseRuleFile(out->text, &out->file);
  });
  return s.ok() ? s : Status::Invalid("policy '" + std::string(name) + "': " + s.message());
}

Status DecodeGroup(std::string_view name, std::string_view json, GroupIntent* out) {
  *out = GroupIntent{std::string(name), {}};
  Status s = FromJson<Group>(json, [&](Group::Reader r) {
    for (auto m : r.getMembers()) {
      if (Status v = ValidMember(Str(m)); !v.ok()) return v;
      out->members.push_back(Str(m));
    }
    return Status::Ok();
  });
  return s.ok() ? s : Status::Invalid("group '" + std::string(name) + "': " + s.message());
}

Status DecodeLabels(std::string_view json, std::map<std::string, std::string>* out) {
  out->clear();
  return FromJson<VmLabels>(json, [&](VmLabels::Reader r) {
    for (auto l : r.getLabels()) (*out)[Str(l.getKey())] = Str(l.getValue());
    return Status::Ok();
  });
}

Status DecodeEndpoint(std::string_view vm, std::string_view host, std::string_view json,
                      EndpointInfo* out) {
  *out = EndpointInfo{std::string(vm), std::string(host), {}, {}, 0, "active"};
  return FromJson<Endpoint>(json, [&](Endpoint::Reader r) {
    for (auto m : r.getMacs()) out->macs.push_back(Str(m));
    for (auto a : r.getAddresses()) {
      auto addr = fw::IpAddr::Parse(Str(a));
      if (!addr) return Status::Invalid("endpoint " + std::string(vm) + "/" + std::string(host) +
                                        ": '" + Str(a) + "' is not an address");
      out->addresses.push_back(*addr);
    }
    out->generation = r.getGeneration();
    out->state = Str(r.getState());
    return Status::Ok();
  });
}

namespace {

// A decoded value goes into `map` under `key`; one that could not be decoded takes the key out.
template <typename Map, typename Value>
Status Store(Map& map, const typename Map::key_type& key, Status decoded, Value value) {
  if (!decoded.ok()) {
    map.erase(key);
    return decoded;
  }
  map[key] = std::move(value);
  return Status::Ok();
}

}  // namespace

Status ClusterView::Put(std::string_view key, std::string_view value) {
  auto rest = [&](std::string_view prefix) { return key.substr(prefix.size()); };
  auto under = [&](std::string_view prefix) { return key.substr(0, prefix.size()) == prefix; };
  if (under(kPolicies)) {
    PolicyIntent p;
    Status s = DecodePolicy(rest(kPolicies), value, &p);
    return Store(policies_, std::string(rest(kPolicies)), s, std::move(p));
  } else if (under(kGroups)) {
    GroupIntent g;
    Status s = DecodeGroup(rest(kGroups), value, &g);
    return Store(groups_, std::string(rest(kGroups)), s, std::move(g));
  } else if (under(kLabels)) {
    std::map<std::string, std::string> labels;
    Status s = DecodeLabels(value, &labels);
    const std::string vm(rest(kLabels));
    IndexLabels(vm, false);
    if (!s.ok()) {
      labels_.erase(vm);
      return Status::Invalid("labels of VM '" + vm + "': " + s.message());
    }
    labels_[vm] = std::move(labels);
    IndexLabels(vm, true);
  } else if (under(kEndpoints)) {
    std::pair<std::string, std::string> id;
    if (!ParseEndpointKey(key, &id.first, &id.second)) {
      return Status::Invalid("endpoint key '" + std::string(key) + "' names no host");
    }
    EndpointInfo e;
    Status s = DecodeEndpoint(id.first, id.second, value, &e);
    return Store(endpoints_, id, s, std::move(e));
  }
  return Status::Ok();
}

void ClusterView::Delete(std::string_view key) {
  auto rest = [&](std::string_view prefix) { return std::string(key.substr(prefix.size())); };
  auto under = [&](std::string_view prefix) { return key.substr(0, prefix.size()) == prefix; };
  if (under(kPolicies)) policies_.erase(rest(kPolicies));
  if (under(kGroups)) groups_.erase(rest(kGroups));
  if (under(kLabels)) {
    IndexLabels(rest(kLabels), false);
    labels_.erase(rest(kLabels));
  }
  std::pair<std::string, std::string> id;
  if (ParseEndpointKey(key, &id.first, &id.second)) endpoints_.erase(id);
}

void ClusterView::IndexLabels(const std::string& vm, bool add) {
  auto it = labels_.find(vm);
  if (it == labels_.end()) return;
  for (const auto& [k, v] : it->second) {
    auto& vms = by_label_[k + "=" + v];
    if (add) {
      vms.insert(vm);
    } else {
      vms.erase(vm);
      if (vms.empty()) by_label_.erase(k + "=" + v);
    }
  }
}

namespace {

// Whether `member` is KIND + name ("vm:web-01" for kind "vm:" and name "web-01").
bool Names(std::string_view member, std::string_view kind, std::string_view name) {
  return member.size() == kind.size() + name.size() && member.starts_with(kind) && member.substr(kind.size()) == name;
}

}  // namespace

bool ClusterView::InGroup(const std::string& vm, const std::string& group) const {
  std::vector<std::string_view> seen;
  return InGroup(vm, group, seen);
}

bool ClusterView::InGroup(std::string_view vm, std::string_view group, std::vector<std::string_view>& seen) const {
  if (std::find(seen.begin(), seen.end(), group) != seen.end()) return false;  // a cycle of groups
  auto g = groups_.find(group);
  if (g == groups_.end()) return false;
  const Labels* labels = nullptr;
  bool labels_looked_up = false, on_path = false;
  for (const std::string& m : g->second.members) {
    if (Names(m, "vm:", vm)) return true;
    if (m.starts_with("label:")) {
      if (!labels_looked_up) {
        auto l = labels_.find(vm);
        labels = l == labels_.end() ? nullptr : &l->second;
        labels_looked_up = true;
      }
      if (labels == nullptr) continue;
      const std::string_view kv = std::string_view(m).substr(6);
      const size_t eq = kv.find('=');
      auto v = labels->find(std::string(kv.substr(0, eq)));
      if (v != labels->end() && eq != std::string_view::npos && v->second == kv.substr(eq + 1)) return true;
    }
    if (m.starts_with("group:")) {
      if (!on_path) seen.push_back(group);  // only now: most groups nest none
      on_path = true;
      if (InGroup(vm, std::string_view(m).substr(6), seen)) return true;
    }
  }
  return false;
}

bool ClusterView::Applies(const std::string& name, const std::string& vm) const {
  auto p = policies_.find(name);
  if (p == policies_.end()) return false;
  std::vector<std::string_view> seen;
  for (const std::string& t : p->second.applied_to) {
    if (Names(t, "vm:", vm)) return true;
    if (!t.starts_with("group:")) continue;
    seen.clear();
    if (InGroup(vm, std::string_view(t).substr(6), seen)) return true;
  }
  return false;
}

void ClusterView::AddTargets(std::string_view group, std::vector<std::string_view>& seen, Targets* t) const {
  if (std::find(seen.begin(), seen.end(), group) != seen.end()) return;  // a cycle of groups
  seen.push_back(group);
  auto g = groups_.find(group);
  if (g == groups_.end()) return;
  for (const std::string& m : g->second.members) {
    const std::string_view rest = std::string_view(m).substr(m.find(':') + 1);
    if (m.starts_with("vm:")) t->vms.emplace(rest);
    if (m.starts_with("group:")) AddTargets(rest, seen, t);
    if (m.starts_with("label:")) {
      const size_t eq = rest.find('=');
      if (eq != std::string_view::npos) t->labels[std::string(rest.substr(0, eq))].emplace(rest.substr(eq + 1));
    }
  }
}

void ClusterView::AddTargets(const std::string& policy, Targets* t) const {
  auto p = policies_.find(policy);
  if (p == policies_.end()) return;
  std::vector<std::string_view> seen;
  for (const std::string& target : p->second.applied_to) {
    if (target.starts_with("vm:")) t->vms.insert(target.substr(3));
    if (target.starts_with("group:")) AddTargets(std::string_view(target).substr(6), seen, t);
  }
}

const ClusterView::Labels* ClusterView::LabelsOf(const std::string& vm) const {
  auto l = labels_.find(vm);
  return l == labels_.end() ? nullptr : &l->second;
}

bool ClusterView::Matches(const Targets& t, const std::string& vm, const Labels* labels) {
  if (t.vms.count(vm)) return true;
  if (t.labels.empty() || labels == nullptr) return false;
  for (const auto& [key, value] : *labels) {
    auto values = t.labels.find(key);
    if (values != t.labels.end() && values->second.count(value)) return true;
  }
  return false;
}

namespace {

void MergeOrder(std::vector<const PolicyIntent*>* policies) {
  std::stable_sort(policies->begin(), policies->end(), [](const PolicyIntent* a, const PolicyIntent* b) {
    return a->priority < b->priority;  // then by name: they come in name order
  });
}

}  // namespace

std::vector<const PolicyIntent*> ClusterView::PoliciesFor(const std::string& vm) const {
  std::vector<const PolicyIntent*> out;
  for (const auto& [name, p] : policies_) {
    if (Applies(name, vm)) out.push_back(&p);
  }
  MergeOrder(&out);
  return out;
}

namespace {

// Merges `p` into `merged`; `owners` says which policy defined each set and rule id so far.
Status Merge(const PolicyIntent& p, fw::RuleFile* merged, std::map<std::string, std::string>* set_owner,
             std::map<uint32_t, std::string>* id_owner) {
  for (const fw::AddrSet& set : p.file.addrsets) {
    auto it = std::find_if(merged->addrsets.begin(), merged->addrsets.end(),
                           [&](const fw::AddrSet& s) { return s.name == set.name; });
    if (it == merged->addrsets.end()) {
      merged->addrsets.push_back(set);
      (*set_owner)[set.name] = p.name;
    } else if (!(*it == set)) {
      return Status::Invalid("address set '" + set.name + "' is defined differently by policies '" +
                             (*set_owner)[set.name] + "' and '" + p.name + "'");
    }
  }
  auto claim = [&](uint32_t id) {
    auto [it, fresh] = id_owner->emplace(id, p.name);
    if (fresh || it->second == p.name) return Status::Ok();
    return Status::Exists("rule id " + std::to_string(id) + " is used by policies '" + it->second +
                          "' and '" + p.name + "' (rule ids are unique across the cluster)");
  };
  for (const fw::Rule& r : p.file.rules) {
    if (Status s = claim(r.id); !s.ok()) return s;
    merged->rules.push_back(r);
  }
  for (const fw::L2Rule& r : p.file.l2_rules) {
    if (Status s = claim(r.id); !s.ok()) return s;
    merged->l2_rules.push_back(r);
  }
  merged->has_l2 |= p.file.has_l2;
  return Status::Ok();
}

}  // namespace

Status ClusterView::Render(const std::string& vm, std::string* text, fw::RuleFile* file,
                           RenderMemo* memo) const {
  text->clear();
  std::vector<const PolicyIntent*> policies;
  if (memo == nullptr) {
    policies = PoliciesFor(vm);
  } else {
    if (!memo->flattened) {
      for (const auto& [name, p] : policies_) AddTargets(name, &memo->targets.emplace_back(&p, Targets{}).second);
      memo->flattened = true;
    }
    const Labels* labels = LabelsOf(vm);
    for (const auto& [p, targets] : memo->targets) {
      if (Matches(targets, vm, labels)) policies.push_back(p);
    }
    MergeOrder(&policies);
  }
  if (policies.empty()) return Status::Ok();
  RenderMemo local;
  if (memo == nullptr) memo = &local;
  auto [it, fresh] = memo->merged.try_emplace(std::move(policies));
  auto& [status, merged_once] = it->second;
  if (fresh) {
    std::map<std::string, std::string> set_owner;
    std::map<uint32_t, std::string> id_owner;
    for (const PolicyIntent* p : it->first) {
      status = Merge(*p, &merged_once, &set_owner, &id_owner);
      if (!status.ok()) break;
    }
    for (size_t i = 0; i < merged_once.rules.size(); i++) merged_once.rules[i].pos = static_cast<uint32_t>(i + 1);
    for (size_t i = 0; i < merged_once.l2_rules.size(); i++) merged_once.l2_rules[i].pos = static_cast<uint32_t>(i + 1);
  }
  if (!status.ok()) return Status::Invalid("VM " + vm + ": " + status.message());
  fw::RuleFile merged = merged_once;
  merged.name = "cluster-" + vm;
  *text = fw::PrintRuleFile(merged);
  if (file) *file = std::move(merged);
  return Status::Ok();
}

Status ClusterView::CheckPolicy(const PolicyIntent& p) const {
  if (!ValidName(p.name)) return Status::Invalid("'" + p.name + "' is not a policy name (letters, digits, . _ -)");
  if (p.applied_to.empty()) return Status::Invalid("policy '" + p.name + "' applies to nothing (--applied-to)");
  for (const std::string& t : p.applied_to) {
    if (Status s = ValidTarget(t); !s.ok()) return s;
  }
  fw::RuleFile merged;
  std::map<std::string, std::string> set_owner;
  std::map<uint32_t, std::string> id_owner;
  for (const auto& [name, other] : policies_) {
    if (name != p.name) (void)Merge(other, &merged, &set_owner, &id_owner);
  }
  return Merge(p, &merged, &set_owner, &id_owner);
}

std::vector<fw::IpAddr> ClusterView::VmAddresses(const std::string& vm) const {
  std::vector<fw::IpAddr> out;
  for (auto it = endpoints_.lower_bound({vm, ""}); it != endpoints_.end() && it->first.first == vm; ++it) {
    out.insert(out.end(), it->second.addresses.begin(), it->second.addresses.end());
  }
  SortUnique(&out);
  return out;
}

void ClusterView::GroupAddresses(const std::string& group, std::set<std::string>& seen,
                                 std::vector<fw::IpPrefix>* out) const {
  if (!seen.insert(group).second) return;
  auto g = groups_.find(group);
  if (g == groups_.end()) return;
  // Duplicates are taken out once, at the end (a group of thousands of VMs stays linear).
  auto add_vm = [&](const std::string& vm) {
    for (auto it = endpoints_.lower_bound({vm, ""}); it != endpoints_.end() && it->first.first == vm; ++it) {
      for (const fw::IpAddr& a : it->second.addresses) out->push_back(fw::IpPrefix::Host(a));
    }
  };
  for (const std::string& m : g->second.members) {
    if (m.rfind("vm:", 0) == 0) add_vm(m.substr(3));
    if (m.rfind("group:", 0) == 0) GroupAddresses(m.substr(6), seen, out);
    if (m.rfind("ip:", 0) == 0) {
      if (auto p = fw::IpPrefix::Parse(m.substr(3))) out->push_back(*p);
    }
    if (m.rfind("label:", 0) == 0) {
      if (auto it = by_label_.find(m.substr(6)); it != by_label_.end()) {
        for (const std::string& vm : it->second) add_vm(vm);
      }
    }
  }
}

std::vector<fw::IpPrefix> ClusterView::GroupAddresses(const std::string& group) const {
  std::vector<fw::IpPrefix> out;
  std::set<std::string> seen;
  GroupAddresses(group, seen, &out);
  SortUnique(&out);
  return out;
}

std::set<std::string> ClusterView::Vms() const {
  std::set<std::string> out;
  for (const auto& [vm, labels] : labels_) out.insert(vm);
  for (const auto& [id, e] : endpoints_) out.insert(id.first);
  for (const auto& [name, p] : policies_) {
    for (const std::string& t : p.applied_to) {
      if (t.rfind("vm:", 0) == 0) out.insert(t.substr(3));
    }
  }
  for (const auto& [name, g] : groups_) {
    for (const std::string& m : g.members) {
      if (m.rfind("vm:", 0) == 0) out.insert(m.substr(3));
    }
  }
  return out;
}

}  // namespace palisade::cluster
