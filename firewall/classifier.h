// Classifier: the compiled L3/L4 rule table. First match by position, found without scanning
// the rules: a bit-vector scheme (one bit per rule).
//
// Each field (source address, destination address, source port, destination port, and a
// combined direction/family/protocol key) is cut into intervals at every rule boundary; each
// interval holds the bit vector of the rules it satisfies. A lookup finds the interval of each
// field (binary search on addresses, direct tables on ports and protocol), ANDs the five
// vectors word by word, guided by one summary bit per word, and stops at the first set bit:
// the matching rule with the lowest position. ICMP type and code take the place of the ports.
//
// Built on the control thread from a rule list with its address sets resolved; immutable and
// shared by every worker afterwards. Lookup() is thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "firewall/ip_addr.h"
#include "firewall/rule.h"

namespace palisade::fw {

// What the classifier looks at in a packet.
struct ClassifyKey {
  bool in;  // toward the VM
  bool v6;
  uint8_t proto;
  IpAddr src, dst;
  uint16_t sport, dport;  // ICMP: type and code
};

// Address sets resolved to prefixes (static members plus the current addresses of VMs).
using ResolvedSets = std::unordered_map<std::string, std::vector<IpPrefix>>;

class Classifier {
 public:
  // Fails when a rule names an address set that `sets` lacks.
  static Status Build(const std::vector<Rule>& rules, const ResolvedSets& sets,
                      std::unique_ptr<const Classifier>* out);

  // Index into the rule list of the first matching rule, or -1.
  int Lookup(const ClassifyKey& key) const;

  size_t memory_bytes() const;

 private:
  struct Field {
    std::vector<u128> starts;       // interval i covers [starts[i], starts[i+1])
    std::vector<uint32_t> vec_of;   // interval -> bit vector id
    std::vector<uint32_t> direct;   // for 16-bit fields: value -> bit vector id
    uint32_t Find(u128 v) const;
  };

  Classifier() = default;

  size_t nrules_ = 0;
  size_t nwords_ = 0;         // words per bit vector
  size_t nsummary_ = 0;       // summary words per vector
  std::vector<uint64_t> words_;    // all vectors: id * nwords_
  std::vector<uint64_t> summary_;  // id * nsummary_
  Field src_, dst_, sport_, dport_;
  std::vector<uint32_t> misc_;  // (in, v6, proto) -> vector id

  friend class ClassifierBuilder;
};

}  // namespace palisade::fw
