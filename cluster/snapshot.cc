#include "cluster/snapshot.h"

#include <fcntl.h>
#include <unistd.h>


#include <capnp/message.h>
#include <capnp/serialize-packed.h>

#include "cluster/intent.capnp.h"
#include "common/atomic_file.h"
#include "common/kj_errors.h"

namespace palisade::cluster {

Status WriteSnapshot(const std::string& path, int64_t revision,
                     const std::map<std::string, std::string>& kvs) {
  capnp::MallocMessageBuilder m;
  auto snap = m.initRoot<Snapshot>();
  snap.setRevision(revision);
  auto keys = snap.initKeys(static_cast<unsigned>(kvs.size()));
  auto values = snap.initValues(static_cast<unsigned>(kvs.size()));
  unsigned i = 0;
  for (const auto& [k, v] : kvs) {
    keys.set(i, k);
    values.set(i++, v);
  }
  return ReplaceFile(path, [&](int fd) {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { capnp::writePackedMessageToFd(fd, m); })) {
      return Status::Unavailable("cannot write " + path + ": " + e->getDescription().cStr());
    }
    return Status::Ok();
  });
}

Status ReadSnapshot(const std::string& path, int64_t* revision,
                    std::map<std::string, std::string>* kvs) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Invalid("cannot read the cluster snapshot " + path);
  Status result = Status::Ok();
  std::map<std::string, std::string> read;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    capnp::ReaderOptions o;
    o.traversalLimitInWords = uint64_t{1} << 30;
    capnp::PackedFdMessageReader reader(fd, o);
    auto snap = reader.getRoot<Snapshot>();
    if (snap.getKeys().size() != snap.getValues().size()) {
      result = Status::Invalid("keys and values differ in number");
      return;
    }
    for (unsigned i = 0; i < snap.getKeys().size(); i++) read[Str(snap.getKeys()[i])] = Str(snap.getValues()[i]);
    *revision = snap.getRevision();
  })) {
    result = Status::Invalid(std::string(e->getDescription().cStr()));
  }
  close(fd);
  if (!result.ok()) {
    return Status::Invalid("the cluster snapshot " + path +
                           " cannot be read (move it away to start without it): " + result.message());
  }
  *kvs = std::move(read);
  return Status::Ok();
}

}  // namespace palisade::cluster
