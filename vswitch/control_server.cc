#include "vswitch/control_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "vswitch/control.h"
#include "vswitch/log.h"
#include "vswitch/socket_path.h"

namespace palisade {
namespace {

constexpr size_t kMaxLine = 64 * 1024;

sockaddr_un Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return addr;
}

}  // namespace

struct ControlServer::Client {
  ControlServer* server;
  int fd;
  ev_io watcher;
  std::string buffer;
};

ControlServer::ControlServer(struct ev_loop* loop, Switch* sw) : loop_(loop), sw_(sw) {}

ControlServer::~ControlServer() {
  while (!clients_.empty()) Close(clients_.back().get());
  if (fd_ >= 0) {
    ev_io_stop(loop_, &accept_watcher_);
    close(fd_);
    unlink(path_.c_str());
  }
}

Status ControlServer::Listen(const std::string& path) {
  if (Status s = ClaimSocketPath(path); !s.ok()) return s;
  std::error_code ec;
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_un addr = Address(path);
  // Bind under a 0177 umask so the socket is never reachable by others, even briefly.
  mode_t old = umask(0177);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc != 0 || listen(fd, 16) != 0) {
    Status s = Status::Unavailable("cannot listen on " + path + ": " + std::strerror(errno));
    close(fd);
    return s;
  }
  fd_ = fd;
  path_ = path;
  ev_io_init(&accept_watcher_, OnAccept, fd_, EV_READ);
  accept_watcher_.data = this;
  ev_io_start(loop_, &accept_watcher_);
  return Status::Ok();
}

void ControlServer::OnAccept(struct ev_loop* loop, ev_io* w, int) {
  auto* self = static_cast<ControlServer*>(w->data);
  int fd = accept4(self->fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) return;
  auto client = std::make_unique<Client>();
  client->server = self;
  client->fd = fd;
  ev_io_init(&client->watcher, OnRead, fd, EV_READ);
  client->watcher.data = client.get();
  ev_io_start(loop, &client->watcher);
  self->clients_.push_back(std::move(client));
}

void ControlServer::OnRead(struct ev_loop*, ev_io* w, int) {
  auto* client = static_cast<Client*>(w->data);
  ControlServer* self = client->server;
  char buf[4096];
  ssize_t n = read(client->fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    self->Close(client);
    return;
  }
  if (n < 0) return;
  client->buffer.append(buf, static_cast<size_t>(n));
  size_t nl;
  while ((nl = client->buffer.find('\n')) != std::string::npos) {
    std::string line = client->buffer.substr(0, nl);
    client->buffer.erase(0, nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string reply = ExecuteLine(*self->sw_, line) + "\n";
    // Replies are small; a client that does not read them is dropped rather than waited for.
    int flags = fcntl(client->fd, F_GETFL);
    fcntl(client->fd, F_SETFL, flags & ~O_NONBLOCK);
    timeval tv{2, 0};
    setsockopt(client->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    bool ok = send(client->fd, reply.data(), reply.size(), MSG_NOSIGNAL) ==
              static_cast<ssize_t>(reply.size());
    fcntl(client->fd, F_SETFL, flags);
    if (!ok) {
      self->Close(client);
      return;
    }
  }
  if (client->buffer.size() > kMaxLine) {
    Log(LogLevel::kWarning, "control client sent a line over %zu bytes; disconnected", kMaxLine);
    self->Close(client);
  }
}

void ControlServer::Close(Client* client) {
  ev_io_stop(loop_, &client->watcher);
  close(client->fd);
  for (auto it = clients_.begin(); it != clients_.end(); ++it) {
    if (it->get() == client) {
      clients_.erase(it);
      break;
    }
  }
}

}  // namespace palisade
