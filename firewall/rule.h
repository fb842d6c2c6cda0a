// The firewall's rule model: rule tables (an L3/L4 ruleset and its _L2 companion) and address
// sets, as parsed from and printed to the rule text operators know (../shared/FORMATS.md).
// Value types; immutable once built and then shared read-only between threads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "firewall/ip_addr.h"

namespace palisade::fw {

// Direction as seen from the VM: in = toward it, out = from it.
enum class RuleDir : uint8_t { kIn = 1, kOut = 2, kInOut = 3 };
enum class Action : uint8_t { kAccept, kDrop, kReject };
enum class Family : uint8_t { kAny, kInet, kInet6 };

inline constexpr int kAny = -1;

struct PortRange {
  uint16_t lo, hi;
  bool operator==(const PortRange&) const = default;
};

// An IP endpoint: any, an address set, or a prefix, optionally negated, with ports.
struct Endpoint {
  enum class Kind : uint8_t { kAny, kAddrSet, kIp };
  Kind kind = Kind::kAny;
  bool negate = false;
  std::string set;                // kAddrSet
  IpPrefix prefix{};              // kIp
  std::vector<PortRange> ports;   // empty: any port
  bool operator==(const Endpoint&) const = default;
};

struct Rule {
  uint32_t id = 0;
  uint32_t pos = 0;               // 1-based place in the table
  RuleDir dir = RuleDir::kInOut;
  Family family = Family::kAny;
  int proto = kAny;               // IP protocol number, or kAny
  int icmp_type = kAny, icmp_code = kAny;
  Endpoint src, dst;
  bool stateless = false;         // no connection tracking
  bool strict = false;            // TCP must start with a SYN
  Action action = Action::kAccept;
  bool log = false;
  bool operator==(const Rule&) const = default;
};

// An L2 endpoint: any, a MAC set, or one MAC, optionally negated.
struct MacEndpoint {
  enum class Kind : uint8_t { kAny, kAddrSet, kMac };
  Kind kind = Kind::kAny;
  bool negate = false;
  std::string set;
  uint64_t mac = 0;
  bool operator==(const MacEndpoint&) const = default;
};

struct L2Rule {
  uint32_t id = 0;
  uint32_t pos = 0;
  RuleDir dir = RuleDir::kInOut;
  int ethertype = kAny;
  MacEndpoint src, dst;
  Action action = Action::kAccept;
  bool log = false;
  bool operator==(const L2Rule&) const = default;
};

// An address set. Members are static addresses/prefixes, MACs (for L2 rules), or dynamic:
// VMs (`vm NAME`) and the cluster's groups of VMs (`group NAME`), whose addresses the switch
// knows and which it resolves again whenever they change.
struct AddrSet {
  std::string name;
  std::vector<IpPrefix> ips;
  std::vector<uint64_t> macs;
  std::vector<std::string> vms;
  std::vector<std::string> groups;
  bool operator==(const AddrSet&) const = default;
};

// What a dynamic member stands for right now: a VM's addresses, or a group's addresses and
// prefixes.
enum class Member : uint8_t { kVm, kGroup };
using MemberAddresses = std::function<std::vector<IpPrefix>(Member kind, const std::string& name)>;

// What one rule file holds: a ruleset, optionally its _L2 companion, and address sets.
struct RuleFile {
  std::string name;  // the L3 ruleset's name; the L2 one is name + "_L2"
  std::vector<Rule> rules;
  bool has_l2 = false;
  std::vector<L2Rule> l2_rules;
  std::vector<AddrSet> addrsets;
  bool operator==(const RuleFile&) const = default;
};

const char* ActionName(Action a);
const char* DirName(RuleDir d);
// "tcp", "udp", "icmp", "ipv6-icmp", "any", or the number.
std::string ProtoName(int proto);

}  // namespace palisade::fw
