#include "rpc/server.h"

#include <sys/stat.h>

#include <kj/async-io.h>

#include "rpc/metrics.h"
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

// What went wrong, without kj's account of the call: "Address already in use", not
// "::bind(sockfd, &addr.generic, addrlen): Address already in use; toString() = ...".
std::string Reason(const kj::Exception& e) {
  std::string text = e.getDescription().cStr();
  if (size_t call = text.find("): "); text.rfind("::", 0) == 0 && call != std::string::npos) {
    text = text.substr(call + 3);
  }
  return text.substr(0, text.find("; toString() = "));
}

}  // namespace

Status RpcServer::Start(const Endpoints& endpoints, Switch* sw, ControlQueue* queue,
                        const cluster::ClusterAgent* cluster, std::unique_ptr<RpcServer>* out) {
  if (Status s = ClaimSocketPath(endpoints.path); !s.ok()) return Status(s.code(), "control socket: " + s.message());
  std::unique_ptr<RpcServer> server(new RpcServer());
  server->path_ = endpoints.path;
  std::promise<void> ready;
  auto started = ready.get_future();
  server->thread_ = std::thread([srv = server.get(), endpoints, sw, queue, cluster, &ready]() mutable {
    srv->Main(std::move(endpoints), sw, queue, cluster, &ready);
  });
  started.wait();
  if (!server->error_.empty()) {
    server->thread_.join();
    return Status::Unavailable(server->error_);
  }
  *out = std::move(server);
  return Status::Ok();
}

void RpcServer::Main(Endpoints endpoints, Switch* sw, ControlQueue* queue,
                     const cluster::ClusterAgent* cluster, std::promise<void>* ready) {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  auto stop = kj::newPromiseAndCrossThreadFulfiller<void>();
  stop_ = kj::mv(stop.fulfiller);
  kj::Own<kj::ConnectionReceiver> listener, tls_listener, metrics_listener;
  kj::Own<kj::TlsContext> tls_context;
  const TlsConfig* tls = endpoints.tls;
  const std::string& path = endpoints.path;
  std::string where = "control socket: cannot listen on " + path;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    auto addr = io.provider->getNetwork().parseAddress(kj::str("unix:", path.c_str())).wait(io.waitScope);
    const mode_t old = umask(0177);  // the socket is the switch's controls: owner only
    listener = addr->listen();
    umask(old);
    if (tls != nullptr && !tls->listen.empty()) {
      where = "--rpc-tls-listen: cannot listen on " + tls->listen;
      tls_context = ServerTlsContext(*tls, io.provider->getTimer());
      auto tcp = io.provider->getNetwork().parseAddress(tls->listen.c_str()).wait(io.waitScope);
      tls_listener = tls_context->wrapPort(tcp->listen());
    }
    if (!endpoints.metrics.empty()) {
      where = "--metrics-listen: cannot listen on " + endpoints.metrics;
      auto tcp = io.provider->getNetwork().parseAddress(endpoints.metrics.c_str()).wait(io.waitScope);
      metrics_listener = tcp->listen();
    }
  })) {
    error_ = where + ": " + Reason(*e);
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
  Background background;  // after the connections go: it waits for their compiles
  Connections connections;
  IgnoreErrors errors;
  kj::TaskSet tasks(errors);
  Bootstrap bootstrap = [&](std::shared_ptr<ConnectionRecord> record) -> capnp::Capability::Client {
    return NewPalisadeService(sw, queue, &connections, &migrations, cluster, &background, kj::mv(record));
  };
  auto serving = AcceptLoop(*listener, bootstrap, tasks, connections, "unix");
  if (tls_listener.get() != nullptr) {
    serving = serving.exclusiveJoin(AcceptLoop(*tls_listener, bootstrap, tasks, connections, "tls", &tls->roles));
  }
  // Metrics read the switch through the queue, and the migrations and cluster status here.
  std::unique_ptr<MetricsServer> metrics;
  kj::Promise<void> metrics_serving = kj::READY_NOW;
  if (metrics_listener.get() != nullptr) {
    metrics = std::make_unique<MetricsServer>(io.provider->getTimer(),
                                              MetricsSources{sw, queue, &migrations, cluster});
    // A failing accept ends the metrics alone, never the control plane.
    metrics_serving = metrics->Listen(*metrics_listener).eagerlyEvaluate([](kj::Exception&&) {});
  }
  stop.promise.exclusiveJoin(kj::mv(serving)).wait(io.waitScope);
}

RpcServer::~RpcServer() {
  if (stop_) stop_->fulfill();
  if (thread_.joinable()) thread_.join();
  unlink(path_.c_str());
}

}  // namespace palisade::rpc
