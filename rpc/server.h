// RpcServer: the control plane's thread. It runs a kj event loop that serves the Palisade
// interface (rpc/service.h) on a unix socket (mode 0600), and on TCP with TLS and client
// certificates when configured (rpc/tls.h: switches and managers across hosts; a client without
// a certificate signed by the configured CA gets nothing), and runs the live-migration protocol
// (migration/migration_service.h), which reaches other switches through rpc/peer.h.
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
  // Listens on `path` (and on tls->listen when given) and serves until destroyed; `tls` (may be
  // null) also serves for dialing other switches. Fails when another process serves the path
  // or the TCP port cannot be bound.
  // cluster: the cluster agent whose status the control plane shows (null without --etcd).
  static Status Start(const std::string& path, const TlsConfig* tls, Switch* sw,
                      ControlQueue* queue, const cluster::ClusterAgent* cluster,
                      std::unique_ptr<RpcServer>* out);
  ~RpcServer();

 private:
  RpcServer() = default;
  void Main(std::string path, const TlsConfig* tls, Switch* sw, ControlQueue* queue,
            const cluster::ClusterAgent* cluster, std::promise<void>* ready);

  std::thread thread_;
  std::string path_;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop_;  // fulfilled to stop the thread
  std::string error_;                                 // why listening failed
};

}  // namespace palisade::rpc
