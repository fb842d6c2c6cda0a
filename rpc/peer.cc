#include "rpc/peer.h"

#include <capnp/rpc-twoparty.h>

#include "common/kj_errors.h"
#include "migration/port_state.h"
#include "rpc/palisade.capnp.h"

namespace palisade::rpc {
namespace {

// One connection to another switch; members go in reverse order: the client before the stream.
class PeerSwitch final : public migration::Destination {
 public:
  PeerSwitch(kj::Own<kj::AsyncIoStream> stream, const std::string& name)
      : stream_(kj::mv(stream)), client_(*stream_), palisade_(client_.bootstrap().castAs<Palisade>()) {
    auto hello = palisade_.helloRequest();
    hello.setKind("switch");
    hello.setName(name);
    hello_ = hello.send().ignoreResult().eagerlyEvaluate(nullptr);  // delivered before incoming (E-order)
  }

  kj::Promise<migration::Arrived> Incoming(const PortExport& state, const std::string& socket,
                                           migration::MigrationSource::Client source) override {
    auto req = palisade_.incomingRequest();
    migration::Write(state, req.initState());
    req.setSocket(socket);
    req.setSource(kj::mv(source));
    return req.send().then([](auto response) {
      return migration::Arrived{response.getSession(), response.getConnections()};
    });
  }

  kj::Promise<void> OnDisconnect() override { return client_.onDisconnect(); }

  kj::Promise<std::string> Handover(const std::string& port) override {
    auto req = palisade_.handoverRequest();
    req.setPort(port);
    return req.send().then([](auto response) { return std::string(response.getPhase().cStr()); });
  }

  kj::Promise<void> Reclaim(const std::string& port) override {
    auto req = palisade_.reclaimRequest();
    req.setPort(port);
    return req.send().ignoreResult();
  }

 private:
  kj::Own<kj::AsyncIoStream> stream_;
  capnp::TwoPartyClient client_;
  Palisade::Client palisade_;
  kj::Promise<void> hello_ = nullptr;
};

}  // namespace

kj::Promise<kj::Own<migration::Destination>> PeerDialer::Dial(const std::string& to) {
  auto wrap = [name = name_](kj::Own<kj::AsyncIoStream> s) -> kj::Own<migration::Destination> {
    return kj::heap<PeerSwitch>(kj::mv(s), name);
  };
  const bool unix_socket = to.rfind('/', 0) == 0 || to.rfind("unix:", 0) == 0;
  if (unix_socket) {
    const std::string path = to.rfind("unix:", 0) == 0 ? to : "unix:" + to;
    return io_.getNetwork().parseAddress(path.c_str()).then([](kj::Own<kj::NetworkAddress> a) {
      return a->connect();
    }).then(kj::mv(wrap));
  }
  if (tls_ == nullptr) {
    Fail("migrating to " + to + " (TCP) needs this switch's --tls-cert, --tls-key and --tls-ca");
  }
  const std::string host = to.substr(0, to.rfind(':'));
  return io_.getNetwork().parseAddress(to.c_str()).then([](kj::Own<kj::NetworkAddress> a) {
    return a->connect();
  }).then([this, host](kj::Own<kj::AsyncIoStream> s) {
    return tls_->wrapClient(kj::mv(s), host.c_str());
  }).then(kj::mv(wrap));
}

}  // namespace palisade::rpc
