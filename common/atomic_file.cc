#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/fault_point.h"

namespace palisade {

Status ReplaceFile(const std::string& path, const std::function<Status(int fd)>& write) {
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Unavailable(tmp + ": " + std::strerror(errno));
  if (Status s = write(fd); !s.ok()) {
    close(fd);
    unlink(tmp.c_str());
    return s;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    const std::string error = std::strerror(errno);
    unlink(tmp.c_str());
    return Status::Unavailable(path + ": " + error);
  }
  FaultPoint("replace-" + path.substr(path.rfind('/') + 1));  // written and synced, not yet in place
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string error = std::strerror(errno);
    unlink(tmp.c_str());
    return Status::Unavailable(path + ": " + error);
  }
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    const std::string error = std::strerror(errno);
    if (dfd >= 0) close(dfd);
    return Status::Unavailable(dir + ": " + error);
  }
  close(dfd);
  return Status::Ok();
}

}  // namespace palisade
