#include "firewall/rule_table.h"

#include <algorithm>

namespace palisade::fw {

bool RuleTable::MacMatch::Matches(uint64_t mac) const {
  if (any) return true;
  return std::binary_search(macs.begin(), macs.end(), mac) != negate;
}

Status RuleTable::Compile(RuleFile file, const MemberAddresses& members, uint32_t generation,
                          std::shared_ptr<const RuleTable>* out) {
  if (file.rules.size() > kMaxRules || file.l2_rules.size() > kMaxRules) {
    return Status::Invalid("a ruleset may hold at most " + std::to_string(kMaxRules) + " rules");
  }
  auto table = std::shared_ptr<RuleTable>(new RuleTable());
  ResolvedSets sets;
  std::unordered_map<std::string, const AddrSet*> by_name;
  for (const AddrSet& s : file.addrsets) {
    by_name[s.name] = &s;
    std::vector<IpPrefix>& ips = sets[s.name];
    ips = s.ips;
    for (auto [kind, names] : {std::pair{Member::kVm, &s.vms}, std::pair{Member::kGroup, &s.groups}}) {
      for (const std::string& name : *names) {
        table->has_dynamic_members_ = true;
        if (!members) continue;
        for (const IpPrefix& p : members(kind, name)) ips.push_back(p);
      }
    }
  }
  if (Status s = Classifier::Build(file.rules, sets, &table->classifier_); !s.ok()) return s;

  for (const L2Rule& r : file.l2_rules) {
    L2 l2{r.dir, r.ethertype, {}, {}};
    for (auto [end, match] : {std::pair{&r.src, &l2.src}, std::pair{&r.dst, &l2.dst}}) {
      if (end->kind == MacEndpoint::Kind::kAny) continue;
      match->any = false;
      match->negate = end->negate;
      if (end->kind == MacEndpoint::Kind::kMac) {
        match->macs = {end->mac};
      } else {
        auto it = by_name.find(end->set);
        if (it == by_name.end()) {
          return Status::NotFound("L2 rule " + std::to_string(r.id) + " at " + std::to_string(r.pos) +
                                  " names address set '" + end->set + "', which is not defined");
        }
        match->macs = it->second->macs;
        std::sort(match->macs.begin(), match->macs.end());
      }
    }
    table->l2_.push_back(std::move(l2));
  }
  table->file_ = std::move(file);
  table->generation_ = generation;
  *out = std::move(table);
  return Status::Ok();
}

int RuleTable::MatchL2(bool in, uint16_t ethertype, uint64_t src_mac, uint64_t dst_mac) const {
  for (size_t i = 0; i < l2_.size(); i++) {
    const L2& r = l2_[i];
    if (r.dir == (in ? RuleDir::kOut : RuleDir::kIn)) continue;
    if (r.ethertype != kAny && r.ethertype != ethertype) continue;
    if (!r.src.Matches(src_mac) || !r.dst.Matches(dst_mac)) continue;
    return static_cast<int>(i);
  }
  return -1;
}

}  // namespace palisade::fw
