// RpcServer: serves the Palisade interface (palisade.capnp) on a unix socket (mode 0600) from
// its own thread running a kj event loop. Every call is carried to the control thread through
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

class RpcServer {
 public:
  // Listens on `path` and serves until destroyed. Fails when another process serves the path.
  static Status Start(const std::string& path, Switch* sw, ControlQueue* queue,
                      std::unique_ptr<RpcServer>* out);
  ~RpcServer();

 private:
  RpcServer() = default;
  void Main(std::string path, Switch* sw, ControlQueue* queue, std::promise<void>* ready);

  std::thread thread_;
  std::string path_;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop_;  // fulfilled to stop the thread
  std::string error_;                                 // why listening failed
};

}  // namespace palisade::rpc
