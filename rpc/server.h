// RpcServer: serves the Palisade interface (palisade.capnp) on a unix socket (mode 0600), and on
// TCP with TLS and client certificates when configured (switches and managers across hosts),
// from its own thread running a kj event loop. A TLS client without a certificate signed by the
// configured CA gets nothing. Every call is carried to the control thread through
// the ControlQueue, runs against the Switch there, and its plain result comes back to be
// written into the reply. Errors become exceptions carrying the Switch's message.
//
// Thread-safety: construct and destroy on the control thread; the server's work happens on its
// RPC thread and, through the queue, on the control thread.
#pragma once

#include <future>
#include <memory>
#include <string>
#include <thread>

#include <kj/async.h>

#include "common/status.h"
#include "rpc/control_queue.h"
#include "vswitch/switch.h"

namespace palisade::rpc {

// Serving on TCP too, only when asked: TLS with client certificates signed by `ca_pem`.
struct TlsConfig {
  std::string listen;  // HOST:PORT
  std::string cert_pem, key_pem, ca_pem;
};

class RpcServer {
 public:
  // Listens on `path` (and on tls->listen when given) and serves until destroyed. Fails when
  // another process serves the path or the TCP port cannot be bound.
  static Status Start(const std::string& path, const TlsConfig* tls, Switch* sw,
                      ControlQueue* queue, std::unique_ptr<RpcServer>* out);
  ~RpcServer();

 private:
  RpcServer() = default;
  void Main(std::string path, const TlsConfig* tls, Switch* sw, ControlQueue* queue,
            std::promise<void>* ready);

  std::thread thread_;
  std::string path_;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop_;  // fulfilled to stop the thread
  std::string error_;                                 // why listening failed
};

}  // namespace palisade::rpc
