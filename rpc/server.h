// RpcServer: the control plane's thread. It runs a kj event loop that serves the Palisade
// interface (rpc/service.h) on a unix socket (mode 0600), and on TCP with TLS and client
// certificates when configured (rpc/tls.h: switches and managers across hosts; a client without
// a certificate signed by the configured CA gets nothing), runs the live-migration protocol
// (migration/migration_service.h), which reaches other switches through rpc/peer.h, and serves
// Prometheus metrics over HTTP when configured (rpc/metrics.h).
//
// Thread-safety: construct and destroy on the control thread; the server's work happens on its
// RPC thread and, through the queue, on the control thread.
#pragma once

#include <future>
#include <memory>
#include <string>
#include <thread>

#include <kj/async.h>

#include "cluster/agent.h"
#include "common/status.h"
#include "rpc/tls.h"
#include "vswitch/control_queue.h"
#include "vswitch/switch.h"

namespace palisade::rpc {

class RpcServer {
 public:
  // Where the server listens.
  struct Endpoints {
    std::string path;                // the unix socket
    const TlsConfig* tls = nullptr;  // TCP with TLS at tls->listen when given; also for
                                     // dialing other switches (may be null)
    std::string metrics;             // HTTP /metrics at ADDR:PORT (empty: none)
  };

  // Listens on every endpoint given and serves until destroyed. Fails when another process
  // serves the path or a TCP port cannot be bound; the message names which endpoint (the
  // option that gave it, for the TCP ones).
  // cluster: the cluster agent whose status the control plane shows (null without --etcd).
  static Status Start(const Endpoints& endpoints, Switch* sw, ControlQueue* queue,
                      const cluster::ClusterAgent* cluster, std::unique_ptr<RpcServer>* out);
  ~RpcServer();

 private:
  RpcServer() = default;
  void Main(Endpoints endpoints, Switch* sw, ControlQueue* queue,
            const cluster::ClusterAgent* cluster, std::promise<void>* ready);

  std::thread thread_;
  std::string path_;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop_;  // fulfilled to stop the thread
  std::string error_;                                 // why listening failed
};

}  // namespace palisade::rpc
