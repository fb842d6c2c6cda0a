#include "rpc/transport.h"

#include <sys/socket.h>

#include <capnp/rpc-twoparty.h>
#include <kj/compat/tls.h>

#include "common/utc_time.h"

namespace palisade::rpc {
namespace {

// One client connection; members are destroyed in reverse order: the RPC system before the
// network it uses, the network before the stream under it.
struct Served {
  Served(kj::Own<kj::AsyncIoStream> s, capnp::Capability::Client bootstrap)
      : stream(kj::mv(s)),
        network(*stream, capnp::rpc::twoparty::Side::SERVER),
        rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))) {}
  kj::Own<kj::AsyncIoStream> stream;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
};

}  // namespace

kj::Promise<void> AcceptLoop(kj::ConnectionReceiver& listener, Bootstrap bootstrap,
                             kj::TaskSet& tasks, Connections& connections, std::string kind,
                             const RolePolicy* roles) {
  return listener.acceptAuthenticated().then([bootstrap, &tasks, &connections, kind, roles](
                                                 kj::AuthenticatedStream authenticated) mutable {
    kj::Own<kj::AsyncIoStream> stream = kj::mv(authenticated.stream);
    auto record = std::make_shared<ConnectionRecord>();
    record->since = UtcNowText();
    record->peer = kind;
    if (roles != nullptr) {
      auto* tls = dynamic_cast<kj::TlsPeerIdentity*>(authenticated.peerIdentity.get());
      const std::string name = tls != nullptr && tls->hasCertificate() ? tls->getCommonName().cStr() : "";
      record->role = roles->Of(name);
      record->peer = kind + " CN=" + name + " (" + RoleName(record->role) + ")";
    } else KJ_IF_MAYBE(fd, stream->getFd()) {
      ucred cred{};
      socklen_t len = sizeof cred;
      if (getsockopt(*fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        record->peer = "unix pid " + std::to_string(cred.pid) + " uid " + std::to_string(cred.uid);
      }
    }
    connections.push_back(record);
    auto connection = kj::heap<Served>(kj::mv(stream), bootstrap(record));
    auto done = connection->network.onDisconnect();
    tasks.add(done.attach(kj::mv(connection)).then([&connections, record]() {
      std::erase(connections, record);
    }));
  }, [](kj::Exception&&) {}).then([&listener, bootstrap, &tasks, &connections, kind, roles]() mutable {
    return AcceptLoop(listener, bootstrap, tasks, connections, kind, roles);
  });
}

}  // namespace palisade::rpc
