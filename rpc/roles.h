// Who may call what on the control plane. The unix socket (owner-only) is the host's own
// operator. Over TLS the client certificate's common name decides: names listed as operators
// (--tls-operators) may change the switch; names listed as peers (--tls-peers: other switches)
// may only send a port here by live migration (hello, incoming); any other certificate the CA
// signed reads (views, flows, counters, the log) and changes nothing.
// Thread-safety: values; read-only after start.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace palisade::rpc {

enum class Role { kReader, kPeer, kOperator };
const char* RoleName(Role r);

struct RolePolicy {
  std::set<std::string> operators, peers;  // certificate common names
  Role Of(const std::string& common_name) const;
};

// Whether `role` may call the Palisade method named `method` (palisade.capnp). `execute` is
// allowed to readers here and checked again for the command it carries.
bool MayCall(Role role, std::string_view method);

// What a refused caller is told: its role, what was refused, and where roles are given.
std::string Refused(Role role, std::string_view what);

}  // namespace palisade::rpc
