// Rule text: parsing and printing the rule and address-set language of FORMATS.md.
//
//   ruleset NAME {
//     rule ID [at POS] DIR [inet|inet6] protocol P [icmptype T [icmpcode C]] [stateless] [strict]
//          from ENDPOINT [port PORTS] to ENDPOINT [port PORTS] ACTION [with log];
//   }
//   ruleset NAME_L2 {
//     rule ID [at POS] DIR ethertype (any|ipv4|ipv6|arp|0xNNNN) from MACEND to MACEND ACTION [with log];
//   }
//   addrset NAME { ip ADDR[/LEN], mac MAC, vm VMNAME, ... }
//
// DIR is in, out or inout; ENDPOINT is any, addrset NAME, not addrset NAME, ip ADDR[/LEN] or
// not ip ADDR[/LEN]; PORTS is P, P-Q or {P, Q-R, ...}; ACTION is accept, drop or reject. '#'
// starts a comment. Positions (`at POS`) are given for every rule or for none; the table is in
// position order and printed renumbered 1..n, so what is printed parses back to the same table.
//
// Pure functions; thread-safe.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "firewall/rule.h"

namespace palisade::fw {

// Errors read "line L, column C: expected ..., got '...'".
Status ParseRuleFile(std::string_view text, RuleFile* out);

// The getrules view: the ruleset, then the _L2 one when present.
std::string PrintRules(const RuleFile& file);

// The whole file: address sets, then the rulesets when there are any. Parses back to `file`.
std::string PrintRuleFile(const RuleFile& file);

// The getaddrsets view. `resolve`, when given, says what a VM member stands for right now; it
// is printed as a comment so the text still parses back to the same definition.
std::string PrintAddrSets(const std::vector<AddrSet>& sets, const MemberAddresses& resolve = nullptr);

}  // namespace palisade::fw
