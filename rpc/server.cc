#include "rpc/server.h"

#include <sys/stat.h>

#include <kj/async-io.h>

#include "rpc/peer.h"
#include "rpc/service.h"
#include "common/socket_path.h"
#include "rpc/transport.h"

namespace palisade::rpc {
namespace {

class IgnoreErrors : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& exception) override {}  // a client went away mid-call
};

}  // namespace

Status RpcServer::Start(const std::string& path, const TlsConfig* tls, Switch* sw,
                        ControlQueue* queue, const cluster::ClusterAgent* cluster,
                        std::unique_ptr<RpcServer>* out) {
  if (Status s = ClaimSocketPath(path); !s.ok()) return s;
  std::unique_ptr<RpcServer> server(new RpcServer());
  server->path_ = path;
  std::promise<void> ready;
  auto started = ready.get_future();
  server->thread_ = std::thread([srv = server.get(), path, tls, sw, queue, cluster, &ready]() mutable {
    srv->Main(path, tls, sw, queue, cluster, &ready);
  });
  started.wait();
  if (!server->error_.empty()) {
    server->thread_.join();
    return Status::Unavailable(server->error_);
  }
  *out = std::move(server);
  return Status::Ok();
}

void RpcServer::Main(std::string path, const TlsConfig* tls, Switch* sw, ControlQueue* queue,
                     const cluster::ClusterAgent* cluster, std::promise<void>* ready) {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  auto stop = kj::newPromiseAndCrossThreadFulfiller<void>();
  stop_ = kj::mv(stop.fulfiller);
  kj::Own<kj::ConnectionReceiver> listener, tls_listener;
  kj::Own<kj::TlsContext> tls_context;
  std::string where = path;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    auto addr = io.provider->getNetwork().parseAddress(kj::str("unix:", path.c_str())).wait(io.waitScope);
    const mode_t old = umask(0177);  // the socket is the switch's controls: owner only
    listener = addr->listen();
    umask(old);
    if (tls != nullptr && !tls->listen.empty()) {
      where = tls->listen;
      tls_context = ServerTlsContext(*tls, io.provider->getTimer());
      auto tcp = io.provider->getNetwork().parseAddress(tls->listen.c_str()).wait(io.waitScope);
      tls_listener = tls_context->wrapPort(tcp->listen());
    }
  })) {
    error_ = "cannot listen on " + where + ": " + std::string(e->getDescription().cStr());
    ready->set_value();
    return;
  }
  // Dialing other switches (live migration to HOST:PORT): this switch's certificate, their CA.
  kj::Own<kj::TlsContext> tls_client;
  if (tls != nullptr) tls_client = ClientTlsContext(*tls);
  ready->set_value();
  PeerDialer peers(*io.provider, tls_client.get(), path);
  migration::MigrationService migrations(
      sw, queue, io.provider->getTimer(),
      [&peers](const std::string& to) { return peers.Dial(to); });
  Connections connections;
  IgnoreErrors errors;
  kj::TaskSet tasks(errors);
  Bootstrap bootstrap = [&](std::shared_ptr<ConnectionRecord> record) -> capnp::Capability::Client {
    return NewPalisadeService(sw, queue, &connections, &migrations, cluster, kj::mv(record));
  };
  auto serving = AcceptLoop(*listener, bootstrap, tasks, connections, "unix");
  if (tls_listener.get() != nullptr) {
    serving = serving.exclusiveJoin(AcceptLoop(*tls_listener, bootstrap, tasks, connections, "tls", &tls->roles));
  }
  stop.promise.exclusiveJoin(kj::mv(serving)).wait(io.waitScope);
}

RpcServer::~RpcServer() {
  if (stop_) stop_->fulfill();
  if (thread_.joinable()) thread_.join();
  unlink(path_.c_str());
}

}  // namespace palisade::rpc
