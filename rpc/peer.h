// PeerDialer: how this switch reaches another switch's control plane for a live migration: a
// unix socket path (same host), or HOST:PORT over TLS with this switch's certificate. It
// introduces this switch (hello, kind "switch") and serves the migration protocol's Dialer
// (migration/migration_service.h) with the destination's `incoming` call.
// Thread-safety: the RPC thread only (its kj event loop).
#pragma once

#include <string>

#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include "migration/migration_service.h"

namespace palisade::rpc {

class PeerDialer {
 public:
  // tls: this switch's certificate and CA for HOST:PORT destinations (may be null); name: how
  // this switch introduces itself (its control socket).
  PeerDialer(kj::AsyncIoProvider& io, kj::TlsContext* tls, std::string name)
      : io_(io), tls_(tls), name_(std::move(name)) {}

  kj::Promise<kj::Own<migration::Destination>> Dial(const std::string& to);

 private:
  kj::AsyncIoProvider& io_;
  kj::TlsContext* tls_;
  std::string name_;
};

}  // namespace palisade::rpc
