// AclClassifierEngine: the firewall's classifier for tables too large for bit vectors, on
// DPDK's rte_acl, handed to the firewall library with fw::SetLargeTableEngine() once EAL has
// started.
//
// A table becomes four rte_acl contexts, one per (family, direction), each holding the rules
// that apply there. A rule is expanded into the cross product of its fields' ranges (address
// sets give several, a negated endpoint its complement; an IPv4 address range is one 32-bit
// range, an IPv6 one at most seven boxes of ranges on its four 32-bit words, where prefixes
// would take up to 254 and make rte_acl's tries explode); rte_acl's priority keeps the first rule by
// position. A table with more than kMaxNegated rules of negated addresses, whose expansion
// would exceed kMaxExpanded rules, or that rte_acl cannot build within kMaxBytes, is refused,
// and the firewall uses bit vectors for it.
//
// Build() runs on any control thread (rte_acl_create and its heap are thread-safe) and builds
// the four contexts in parallel with TBB; a built classifier is immutable and Lookup() is
// thread-safe (rte_acl_classify only reads).
#pragma once

#include <cstddef>

#include "firewall/classifier.h"

namespace palisade {

class AclClassifierEngine final : public fw::ClassifierEngine {
 public:
  // Build time grows faster than the rules it holds: 100,000 host rules build in 2-6 s, 30,000
  // security-group rules (210,000 expanded) in 3.8 s, 100,000 of them (700,000) not at all
  // within kMaxBytes after 17 s.
  static constexpr size_t kMaxExpanded = 250'000;
  // Negated addresses become complements: wide ranges that overlap every other rule's, on
  // which rte_acl's tries explode (30,000 security-group rules, a tenth of them negated: 21 s,
  // then refused; none negated: 3.8 s and 60 MB). Tables with more are left to bit vectors.
  static constexpr size_t kMaxNegated = 100;
  static constexpr size_t kMaxBytes = size_t{64} << 20;

  Status Build(const std::vector<fw::Rule>& rules, const std::vector<fw::RuleFields>& fields,
               std::unique_ptr<const fw::Classifier>* out) const override;
};

}  // namespace palisade
