// The control plane's transport: accepting clients on a listener (the unix socket, or TCP
// wrapped in TLS), serving each with its own Cap'n Proto two-party RPC connection, and keeping
// the list of who is connected (`palisadectl connection list`).
// Thread-safety: the RPC thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <capnp/capability.h>
#include <kj/async-io.h>

#include "rpc/roles.h"

namespace palisade::rpc {

struct ConnectionRecord {
  std::string peer;
  std::string since;
  std::string kind = "unknown";  // until the client says (hello)
  std::string name;
  Role role = Role::kOperator;   // the unix socket's; a TLS client's from its certificate
};

// The connections the server has now.
using Connections = std::vector<std::shared_ptr<ConnectionRecord>>;

// Makes the capability a new connection is served with, given its entry in the connection list.
using Bootstrap = std::function<capnp::Capability::Client(std::shared_ptr<ConnectionRecord>)>;

// Accepts connections forever, serving each with its own bootstrap capability and recording who
// it is (`kind` until the peer is known: a unix peer's pid and uid, a TLS peer's certificate
// name and the role `roles` gives it; without `roles` every client is an operator). A
// connection that fails to be accepted (a TLS handshake without a valid client certificate) is
// dropped; the loop goes on.
kj::Promise<void> AcceptLoop(kj::ConnectionReceiver& listener, Bootstrap bootstrap,
                             kj::TaskSet& tasks, Connections& connections, std::string kind,
                             const RolePolicy* roles = nullptr);

}  // namespace palisade::rpc
