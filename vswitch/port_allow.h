// PortAllow: what a VM may do beyond an ordinary guest (`port add ... --allow LIST`): route
// (send router advertisements and redirects), serve DHCP, send VLAN-tagged frames. Everything
// is refused by default, as OpenStack's port security does.
// Value type; thread-compatible.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace palisade {

struct PortAllow {
  bool router = false;       // "router"
  bool dhcp_server = false;  // "dhcp-server"
  bool vlan = false;         // "vlan": tagged frames pass (the bridge is not VLAN-aware)
  bool any() const { return router || dhcp_server || vlan; }
  bool operator==(const PortAllow&) const = default;
};

// Adds the names in `list` ("router,dhcp-server", commas or one name) to *out.
Status ParsePortAllow(std::string_view list, PortAllow* out);
std::vector<std::string> PortAllowNames(const PortAllow& allow);

}  // namespace palisade
