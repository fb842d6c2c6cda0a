// RuleTable: one filter's compiled rules, immutable once built: the rule file it came from,
// its address sets resolved to addresses (static members and the current addresses of VM
// members), the L3/L4 classifier and the L2 rules with their MAC sets.
//
// A change (new rules, a set update, a VM that got a new address) compiles a new RuleTable
// with the next generation and swaps it into the filter whole; a bad input changes nothing.
// What is compiled is content-addressed: a table with the same rules and the same resolved
// sets as one alive anywhere in the process shares its classifier, rules and L2 matches (a
// thousand ports with one policy hold it once); only the generation and the ruleset's name
// (the cluster names each VM's table after the VM) are per table.
// Compile is thread-safe (the cache has a mutex); a table is thread-safe to share once built.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "firewall/classifier.h"
#include "firewall/rule.h"

namespace palisade::fw {

class RuleTable {
 public:
  static constexpr size_t kMaxRules = 65535;

  // Fails (naming the rule) when a rule names an undefined set or the table is too large.
  // `members` resolves the sets' dynamic members (may be null: they stand for nothing).
  static Status Compile(RuleFile file, const MemberAddresses& members, uint32_t generation,
                        std::shared_ptr<const RuleTable>* out);

  // The rule file it came from (a copy: control paths only).
  RuleFile file() const {
    RuleFile f = compiled_->file;
    f.name = name_;
    return f;
  }
  const std::string& name() const { return name_; }  // the ruleset's
  const std::vector<Rule>& rules() const { return compiled_->file.rules; }
  const std::vector<L2Rule>& l2_rules() const { return compiled_->file.l2_rules; }
  uint32_t generation() const { return generation_; }
  const Classifier& classifier() const { return *compiled_->classifier; }
  bool has_dynamic_members() const { return compiled_->has_dynamic_members; }
  // The addresses its VM and group members stood for when it compiled (what it enforces, while
  // a table for newer ones may still be compiling). Valid while the table lives.
  MemberAddresses compiled_members() const {
    return [this](Member kind, const std::string& name) {
      auto it = members_.find({kind, name});
      return it != members_.end() ? it->second : std::vector<IpPrefix>{};
    };
  }
  // Whether this table shares its compiled part with `other` (the same content).
  bool SharesWith(const RuleTable& other) const { return compiled_ == other.compiled_; }

  // First matching L2 rule (index), or -1.
  int MatchL2(bool in, uint16_t ethertype, uint64_t src_mac, uint64_t dst_mac) const {
    return compiled_->l2.empty() ? -1 : MatchL2Rules(in, ethertype, src_mac, dst_mac);  // per packet
  }

 private:
  struct MacMatch {
    bool any = true;
    bool negate = false;
    std::vector<uint64_t> macs;  // sorted
    bool Matches(uint64_t mac) const;
  };
  struct L2 {
    RuleDir dir;
    int ethertype;
    MacMatch src, dst;
  };

  // Everything the content decides, shared by the tables of equal content.
  struct Compiled {
    RuleFile file;
    bool has_dynamic_members = false;
    std::unique_ptr<const Classifier> classifier;
    std::vector<L2> l2;
  };
  static Status Build(RuleFile file, const ResolvedSets& sets, bool dynamic, std::shared_ptr<Compiled>* out);
  int MatchL2Rules(bool in, uint16_t ethertype, uint64_t src_mac, uint64_t dst_mac) const;

  std::shared_ptr<const Compiled> compiled_;  // its file's name is the first such table's
  uint32_t generation_ = 0;
  std::string name_;
  std::map<std::pair<Member, std::string>, std::vector<IpPrefix>> members_;
};

}  // namespace palisade::fw
