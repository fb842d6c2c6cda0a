// RuleTable: one filter's compiled rules, immutable once built: the rule file it came from,
// its address sets resolved to addresses (static members and the current addresses of VM
// members), the L3/L4 classifier and the L2 rules with their MAC sets.
//
// A change (new rules, a set update, a VM that got a new address) compiles a new RuleTable
// with the next generation and swaps it into the filter whole; a bad input changes nothing.
// Thread-safe to share once built.
#pragma once

#include <cstdint>
#include <functional>
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

  const RuleFile& file() const { return file_; }
  const std::vector<Rule>& rules() const { return file_.rules; }
  uint32_t generation() const { return generation_; }
  const Classifier& classifier() const { return *classifier_; }
  bool has_dynamic_members() const { return has_dynamic_members_; }

  // First matching L2 rule (index), or -1.
  int MatchL2(bool in, uint16_t ethertype, uint64_t src_mac, uint64_t dst_mac) const;

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

  RuleFile file_;
  uint32_t generation_ = 0;
  bool has_dynamic_members_ = false;
  std::unique_ptr<const Classifier> classifier_;
  std::vector<L2> l2_;
};

}  // namespace palisade::fw
