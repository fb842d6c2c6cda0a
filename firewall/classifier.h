// Classifier: the compiled L3/L4 rule table. First match by position, found without scanning
// the rules. Two engines sit behind it: the bit-vector scheme here (one bit per rule), and one
// that a higher layer hands in for tables whose bit vectors would grow too large (the switch
// gives DPDK's rte_acl). Bit vectors build fast and stay robust on any mix of rules but grow
// with rules x intervals (a 100,000-host table would take 1.9 GB); rte_acl's tries stay small
// on tables of specific rules and blow up on overlapping wide ranges (bench/acl_bench.cc).
//
// Bit vectors: each field (source address, destination address, source port, destination port, and a
// combined direction/family/protocol key) is cut into intervals at every rule boundary; each
// interval holds the bit vector of the rules it satisfies. A lookup finds the interval of each
// field (binary search on addresses, direct tables on ports and protocol), ANDs the five
// vectors word by word, guided by one summary bit per word, and stops at the first set bit:
// the matching rule with the lowest position. ICMP type and code take the place of the ports.
//
// Built on the control thread from a rule list with its address sets resolved; immutable and
// shared by every worker afterwards. Lookup() is thread-safe. SetLargeTableEngine() is called
// once at start-up, before any table is built.
#pragma once

#include <cstdint>
#include <functional>
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

// One rule's constraint on one field, as every engine reads it: wildcard, or inclusive ranges
// (negated: everything but them). Addresses are IpAddr::value()s; ICMP type and code stand in
// for the ports.
struct FieldRanges {
  bool wild = true;
  bool negate = false;
  std::vector<std::pair<u128, u128>> ranges;
};
struct RuleFields {
  FieldRanges src, dst, sport, dport;
};
// Whether a rule applies to packets of this direction, family and protocol.
bool RuleAppliesTo(const Rule& r, bool in, bool v6, int proto);

class Classifier {
 public:
  virtual ~Classifier() = default;

  // Builds with bit vectors, or with the large-table engine when one is set and the vectors
  // would outgrow its budget (and with bit vectors after all when that engine refuses the
  // table). Fails when a rule names an address set that `sets` lacks.
  static Status Build(const std::vector<Rule>& rules, const ResolvedSets& sets,
                      std::unique_ptr<const Classifier>* out);

  // Index into the rule list of the first matching rule, or -1.
  virtual int Lookup(const ClassifyKey& key) const = 0;
  virtual size_t memory_bytes() const = 0;
  virtual const char* engine() const = 0;  // "bitvector", "rte_acl"
};

// An engine for large tables, handed in by a higher layer.
class ClassifierEngine {
 public:
  virtual ~ClassifierEngine() = default;
  // `fields[i]` is rules[i]'s constraints. May refuse (a table it cannot hold): the caller
  // then uses bit vectors.
  virtual Status Build(const std::vector<Rule>& rules, const std::vector<RuleFields>& fields,
                       std::unique_ptr<const Classifier>* out) const = 0;
};
// Tables whose bit vectors would take more than `max_bytes` go to `engine` (null: none);
// `warn` hears of each table the engine refused (then classified by bit vectors after all).
void SetLargeTableEngine(const ClassifierEngine* engine, size_t max_bytes,
                         std::function<void(const std::string&)> warn = nullptr);

class BitVectorClassifier final : public Classifier {
 public:
  // The most its vectors could take for these rules: one per interval of each field.
  static size_t MaxBytes(const std::vector<RuleFields>& fields);
  // Null when the vectors would take more than max_bytes (the build stops there).
  static std::unique_ptr<const Classifier> Build(const std::vector<RuleFields>& fields,
                                                 const std::vector<Rule>& rules, size_t max_bytes);
  int Lookup(const ClassifyKey& key) const override;
  size_t memory_bytes() const override;
  const char* engine() const override { return "bitvector"; }

 private:
  struct Field {
    std::vector<u128> starts;       // interval i covers [starts[i], starts[i+1])
    std::vector<uint32_t> vec_of;   // interval -> bit vector id
    std::vector<uint32_t> direct;   // for 16-bit fields: value -> bit vector id
    uint32_t Find(u128 v) const;
  };

  BitVectorClassifier() = default;

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
