// ClusterView: the cluster as one revision of etcd shows it (cluster/keys.h): operators'
// policies, groups and VM labels, and every host's published VM endpoints; and what follows from
// them for a switch: the rule file of a VM (the policies that apply to it, directly or through
// its groups, merged by priority, then name, then position), and the addresses of every VM and
// group, whichever host publishes them.
//
// An address belongs to the endpoint keys (VM, host) that publish it, so a delete of an old
// owner's key and the create of a new owner's, seen in either order, never remove the new
// owner's mapping.
//
// Value type without DPDK (many can run in one process); not thread-safe: the cluster agent
// builds and changes one on its thread and hands out copies.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "firewall/ip_addr.h"
#include "firewall/rule.h"

namespace palisade::cluster {

struct PolicyIntent {
  std::string name;
  int32_t priority = 100;
  std::vector<std::string> applied_to;  // vm:NAME, group:NAME
  std::string text;                     // FORMATS.md grammar
  fw::RuleFile file;                    // text, parsed
};

struct GroupIntent {
  std::string name;
  std::vector<std::string> members;  // vm:NAME, label:KEY=VALUE, group:NAME, ip:ADDR[/LEN]
};

struct EndpointInfo {
  std::string vm, host;
  std::vector<std::string> macs;
  std::vector<fw::IpAddr> addresses;
  uint64_t generation = 0;
  std::string state = "active";  // or incoming
  bool operator==(const EndpointInfo&) const = default;
};

// Values as stored in etcd (JSON of cluster/intent.capnp), and back. Decoding checks every
// field and says what was wrong.
std::string EncodePolicy(const PolicyIntent& p);
std::string EncodeGroup(const GroupIntent& g);
std::string EncodeLabels(const std::map<std::string, std::string>& labels);
std::string EncodeEndpoint(const EndpointInfo& e);
Status DecodePolicy(std::string_view name, std::string_view json, PolicyIntent* out);
Status DecodeGroup(std::string_view name, std::string_view json, GroupIntent* out);
Status DecodeLabels(std::string_view json, std::map<std::string, std::string>* out);
Status DecodeEndpoint(std::string_view vm, std::string_view host, std::string_view json,
                      EndpointInfo* out);

// Checks a target (vm:NAME, group:NAME) and a group member.
Status ValidTarget(std::string_view target);
Status ValidMember(std::string_view member);

// Hashes std::string and std::string_view alike, so that unordered maps keyed by std::string
// are looked up by string_view without a copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

class ClusterView {
 public:
  using Labels = std::map<std::string, std::string>;

  // A key's new value, or its removal. A value that cannot be read is left out (the key counts
  // as absent) and the error says which key; the rest of the revision applies.
  Status Put(std::string_view key, std::string_view value);
  void Delete(std::string_view key);

  int64_t revision() const { return revision_; }
  void set_revision(int64_t r) { revision_ = r; }

  const std::map<std::string, PolicyIntent>& policies() const { return policies_; }
  const std::map<std::string, GroupIntent, std::less<>>& groups() const { return groups_; }
  const std::unordered_map<std::string, Labels, StringHash, std::equal_to<>>& labels() const { return labels_; }
  const std::map<std::pair<std::string, std::string>, EndpointInfo>& endpoints() const {
    return endpoints_;
  }

  bool InGroup(const std::string& vm, const std::string& group) const;
  // Whether the policy named `name` (as the view has it now) applies to `vm`.
  bool Applies(const std::string& name, const std::string& vm) const;
  // Whom policies apply to, flattened once so that many VMs are checked against them without
  // looking the policies and their groups up again for each: the VMs named, directly or
  // through groups, and the labels (key -> values) that bring a VM in through a group.
  struct Targets {
    std::set<std::string, std::less<>> vms;
    std::map<std::string, std::set<std::string>, std::less<>> labels;
  };
  void AddTargets(const std::string& policy, Targets* t) const;  // adds the policy's, if any
  const Labels* LabelsOf(const std::string& vm) const;           // null: none
  // The policies that apply to a VM, in merge order.
  std::vector<const PolicyIntent*> PoliciesFor(const std::string& vm) const;
  // What several Render calls against an unchanged view work out once: every policy's targets
  // (a hundred VMs under a hundred policies were ten thousand Applies), and the merge of each
  // list of policies (VMs under the same policies differ only in their file's name: a group's
  // hundred VMs on a host merge their policies once).
  struct RenderMemo {
    bool flattened = false;
    std::vector<std::pair<const PolicyIntent*, Targets>> targets;  // in name order
    std::map<std::vector<const PolicyIntent*>, std::pair<Status, fw::RuleFile>> merged;
  };
  // The VM's rule file as text (empty: no policy applies), and parsed when `file` is given.
  // Fails when the policies cannot merge (an address set defined differently by two of them,
  // a rule id used twice).
  Status Render(const std::string& vm, std::string* text, fw::RuleFile* file = nullptr,
                RenderMemo* memo = nullptr) const;
  // A policy as `apply` would write it, checked against the others: its text parses, its
  // targets are well-formed, its rule ids are unique across the cluster and its address sets
  // agree with theirs.
  Status CheckPolicy(const PolicyIntent& p) const;

  std::vector<fw::IpAddr> VmAddresses(const std::string& vm) const;
  std::vector<fw::IpPrefix> GroupAddresses(const std::string& group) const;
  // Every VM the cluster knows: labelled, published or named by a target or a group.
  std::set<std::string> Vms() const;

 private:
  // seen: the groups on the way (a cycle ends there); no allocation for a group without
  // nested groups, as PoliciesFor asks this for every policy and VM.
  bool InGroup(std::string_view vm, std::string_view group, std::vector<std::string_view>& seen) const;
  // Whether t holds the VM, as Applies would say; with its labels looked up (null: none).
  static bool Matches(const Targets& t, const std::string& vm, const Labels* labels);
  void AddTargets(std::string_view group, std::vector<std::string_view>& seen, Targets* t) const;
  void GroupAddresses(const std::string& group, std::set<std::string>& seen,
                      std::vector<fw::IpPrefix>* out) const;

  int64_t revision_ = 0;
  std::map<std::string, PolicyIntent> policies_;
  // Looked up by string_view (std::less<>): membership checks run per VM per change.
  std::map<std::string, GroupIntent, std::less<>> groups_;
  // Hashed: every membership check by label looks its VM up here, among all the cluster's VMs
  // (a tree of 20,000 names cost a cache miss per level).
  std::unordered_map<std::string, Labels, StringHash, std::equal_to<>> labels_;
  // "KEY=VALUE" -> the VMs labelled so: label members resolve without a scan of every VM.
  std::map<std::string, std::set<std::string>> by_label_;
  void IndexLabels(const std::string& vm, bool add);
  std::map<std::pair<std::string, std::string>, EndpointInfo> endpoints_;  // (vm, host)
};

}  // namespace palisade::cluster
