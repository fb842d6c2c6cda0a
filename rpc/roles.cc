#include "rpc/roles.h"

namespace palisade::rpc {

const char* RoleName(Role r) {
  switch (r) {
    case Role::kReader: return "reader";
    case Role::kPeer: return "peer";
    case Role::kOperator: return "operator";
  }
  return "?";
}

Role RolePolicy::Of(const std::string& common_name) const {
  if (operators.count(common_name)) return Role::kOperator;
  if (peers.count(common_name)) return Role::kPeer;
  return Role::kReader;
}

std::string Refused(Role role, std::string_view what) {
  return std::string("this connection's certificate makes it a ") + RoleName(role) + ": " + std::string(what) +
         " is refused (see palisaded --tls-operators, --tls-peers)";
}

bool MayCall(Role role, std::string_view method) {
  static const std::set<std::string_view> kViews = {
      "listPorts", "summarizeFilters", "getRules", "getAddrSets", "getFlows", "countFlows", "getFirewall",
      "workerStats", "macTable", "connections", "tailLog", "migrations", "clusterStatus", "hello", "execute"};
  static const std::set<std::string_view> kPeer = {"hello", "incoming", "handover", "reclaim"};
  switch (role) {
    case Role::kOperator: return true;
    case Role::kPeer: return kPeer.count(method) > 0;
    case Role::kReader: return kViews.count(method) > 0;
  }
  return false;
}

}  // namespace palisade::rpc
