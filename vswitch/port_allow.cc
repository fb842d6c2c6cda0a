#include "vswitch/port_allow.h"

#include <algorithm>

namespace palisade {

Status ParsePortAllow(std::string_view list, PortAllow* out) {
  size_t pos = 0;
  while (pos <= list.size()) {
    const size_t comma = std::min(list.find(',', pos), list.size());
    const std::string_view name = list.substr(pos, comma - pos);
    if (name == "router") {
      out->router = true;
    } else if (name == "dhcp-server") {
      out->dhcp_server = true;
    } else if (name == "vlan") {
      out->vlan = true;
    } else {
      return Status::Invalid("unknown --allow '" + std::string(name) +
                             "' (expected router, dhcp-server or vlan)");
    }
    pos = comma + 1;
  }
  return Status::Ok();
}

std::vector<std::string> PortAllowNames(const PortAllow& allow) {
  std::vector<std::string> names;
  if (allow.router) names.push_back("router");
  if (allow.dhcp_server) names.push_back("dhcp-server");
  if (allow.vlan) names.push_back("vlan");
  return names;
}

}  // namespace palisade
