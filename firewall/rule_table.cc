#include "firewall/rule_table.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>

namespace palisade::fw {
namespace {

// What decides a compiled table: its rule file and its sets as resolved, field by field in
// binary (printing the rule text cost most of a cached load of a 10,000-rule table).
class KeyWriter {
 public:
  void Num(uint64_t v) { key_.append(reinterpret_cast<const char*>(&v), sizeof v); }
  void Str(const std::string& s) {
    Num(s.size());
    key_ += s;
  }
  void Prefix(const IpPrefix& p) {
    key_.append(reinterpret_cast<const char*>(p.addr.b.data()), p.addr.b.size());
    key_ += static_cast<char>(p.len);
  }
  void Ip(const Endpoint& e) {
    Num(static_cast<uint64_t>(e.kind) | uint64_t{e.negate} << 8);
    Str(e.set);
    Prefix(e.prefix);
    Num(e.ports.size());
    for (const PortRange& r : e.ports) Num(uint64_t{r.lo} << 16 | r.hi);
  }
  void Mac(const MacEndpoint& e) {
    Num(static_cast<uint64_t>(e.kind) | uint64_t{e.negate} << 8);
    Str(e.set);
    Num(e.mac);
  }
  std::string Take() { return std::move(key_); }

 private:
  std::string key_;
};

uint64_t Signed(int v) { return static_cast<uint64_t>(static_cast<int64_t>(v)); }

std::string ContentKey(const RuleFile& file, const ResolvedSets& sets) {
  KeyWriter w;  // not the ruleset's name: tables that differ only in it share (RuleTable::name)
  w.Num(file.rules.size());
  for (const Rule& r : file.rules) {
    w.Num(uint64_t{r.id} << 32 | r.pos);
    w.Num(static_cast<uint64_t>(r.dir) | static_cast<uint64_t>(r.family) << 8 | uint64_t{r.stateless} << 16 |
          uint64_t{r.strict} << 17 | uint64_t{r.log} << 18 | static_cast<uint64_t>(r.action) << 24);
    w.Num(Signed(r.proto));
    w.Num(Signed(r.icmp_type));
    w.Num(Signed(r.icmp_code));
    w.Ip(r.src);
    w.Ip(r.dst);
  }
  w.Num(file.has_l2 ? file.l2_rules.size() + 1 : 0);
  for (const L2Rule& r : file.l2_rules) {
    w.Num(uint64_t{r.id} << 32 | r.pos);
    w.Num(static_cast<uint64_t>(r.dir) | uint64_t{r.log} << 16 | static_cast<uint64_t>(r.action) << 24);
    w.Num(Signed(r.ethertype));
    w.Mac(r.src);
    w.Mac(r.dst);
  }
  // Sets by name: as written (the table keeps its file), and their addresses as resolved.
  std::vector<const AddrSet*> ordered;
  for (const AddrSet& s : file.addrsets) ordered.push_back(&s);
  std::sort(ordered.begin(), ordered.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (const AddrSet* s : ordered) {
    w.Str(s->name);
    w.Num(s->ips.size());  // the first of the resolved addresses
    w.Num(s->macs.size());
    for (uint64_t m : s->macs) w.Num(m);
    for (const std::vector<std::string>* names : {&s->vms, &s->groups}) {
      w.Num(names->size());
      for (const std::string& name : *names) w.Str(name);
    }
    auto it = sets.find(s->name);
    const size_t n = it == sets.end() ? 0 : it->second.size();
    w.Num(n);
    for (size_t i = 0; i < n; i++) w.Prefix(it->second[i]);
  }
  return w.Take();
}

// Tables alive anywhere in the process, by content; an entry goes with its last table.
class CompiledCache {
 public:
  template <typename T>
  std::shared_ptr<const T> Find(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return nullptr;
    return std::static_pointer_cast<const T>(it->second.lock());
  }
  void Put(std::string key, std::shared_ptr<const void> compiled) {
    std::lock_guard lock(mu_);
    if (entries_.size() >= prune_at_) {
      std::erase_if(entries_, [](const auto& e) { return e.second.expired(); });
      prune_at_ = std::max<size_t>(64, 2 * entries_.size());
    }
    entries_[std::move(key)] = compiled;
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::weak_ptr<const void>> entries_;
  size_t prune_at_ = 64;
};

CompiledCache& Cache() {
  static CompiledCache* cache = new CompiledCache();  // never destroyed: tables may outlive main
  return *cache;
}

}  // namespace

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
  bool dynamic = false;
  for (const AddrSet& s : file.addrsets) {
    std::vector<IpPrefix>& ips = sets[s.name];
    ips = s.ips;
    for (auto [kind, names] : {std::pair{Member::kVm, &s.vms}, std::pair{Member::kGroup, &s.groups}}) {
      for (const std::string& name : *names) {
        dynamic = true;
        if (!members) continue;
        const std::vector<IpPrefix>& addrs = table->members_[{kind, name}] = members(kind, name);
        ips.insert(ips.end(), addrs.begin(), addrs.end());
      }
    }
  }
  std::string key = ContentKey(file, sets);
  std::string name = file.name;
  std::shared_ptr<const Compiled> compiled = Cache().Find<Compiled>(key);
  if (!compiled) {
    std::shared_ptr<Compiled> built;
    if (Status s = Build(std::move(file), sets, dynamic, &built); !s.ok()) return s;
    compiled = built;
    Cache().Put(std::move(key), compiled);
  }
  table->compiled_ = std::move(compiled);
  table->generation_ = generation;
  table->name_ = std::move(name);
  *out = std::move(table);
  return Status::Ok();
}

Status RuleTable::Build(RuleFile file, const ResolvedSets& sets, bool dynamic, std::shared_ptr<Compiled>* out) {
  auto c = std::make_shared<Compiled>();
  c->has_dynamic_members = dynamic;
  if (Status s = Classifier::Build(file.rules, sets, &c->classifier); !s.ok()) return s;
  std::unordered_map<std::string, const AddrSet*> by_name;
  for (const AddrSet& s : file.addrsets) by_name[s.name] = &s;
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
    c->l2.push_back(std::move(l2));
  }
  c->file = std::move(file);
  *out = std::move(c);
  return Status::Ok();
}

int RuleTable::MatchL2Rules(bool in, uint16_t ethertype, uint64_t src_mac, uint64_t dst_mac) const {
  const std::vector<L2>& l2 = compiled_->l2;
  for (size_t i = 0; i < l2.size(); i++) {
    const L2& r = l2[i];
    if (r.dir == (in ? RuleDir::kOut : RuleDir::kIn)) continue;
    if (r.ethertype != kAny && r.ethertype != ethertype) continue;
    if (!r.src.Matches(src_mac) || !r.dst.Matches(dst_mac)) continue;
    return static_cast<int>(i);
  }
  return -1;
}

}  // namespace palisade::fw
