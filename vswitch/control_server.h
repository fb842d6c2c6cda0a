// ControlServer: the daemon's control socket. A unix stream socket (mode 0600) on the libev
// loop; each line a client sends is one command (command.h), answered by one JSON line.
// This is the thin interim front end; the Cap'n Proto RPC will serve the same Switch API.
//
// Thread-safety: everything on the control thread that runs the libev loop.
#pragma once

#include <ev.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "vswitch/switch.h"

namespace palisade {

class ControlServer {
 public:
  ControlServer(struct ev_loop* loop, Switch* sw);
  ~ControlServer();  // closes every connection and removes the socket

  // Fails when another live process answers on `path`; a stale socket file is replaced.
  Status Listen(const std::string& path);

 private:
  struct Client;
  static void OnAccept(struct ev_loop* loop, ev_io* w, int revents);
  static void OnRead(struct ev_loop* loop, ev_io* w, int revents);
  void Close(Client* client);

  struct ev_loop* loop_;
  Switch* sw_;
  std::string path_;
  int fd_ = -1;
  ev_io accept_watcher_;
  std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace palisade
