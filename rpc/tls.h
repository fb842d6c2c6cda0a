// TLS for the control plane across hosts (kj-tls): the server's context, which accepts only
// clients whose certificate the configured CA signed, and the client context a switch dials
// other switches with (its own certificate, their CA). A connection that has not finished its
// handshake within kHandshakeTimeoutSeconds is dropped, so silent peers hold nothing open.
// Thread-safety: the contexts belong to the RPC thread that made them.
#pragma once

#include <string>

#include <kj/compat/tls.h>

#include "rpc/roles.h"

namespace palisade::rpc {

struct TlsConfig {
  std::string listen;  // HOST:PORT to serve on; empty: dial only
  std::string cert_pem, key_pem, ca_pem;
  RolePolicy roles;    // what each client certificate may do (rpc/roles.h)
};

inline constexpr int kHandshakeTimeoutSeconds = 10;

kj::Own<kj::TlsContext> ServerTlsContext(const TlsConfig& tls, kj::Timer& timer);
kj::Own<kj::TlsContext> ClientTlsContext(const TlsConfig& tls);

}  // namespace palisade::rpc
