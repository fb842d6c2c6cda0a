// The cluster snapshot on disk: a switch's last view of the watched range (etcd's keys and
// values as they were, with the revision), so that a restart while etcd is down enforces the
// last policy it had. Written atomically (common/atomic_file.h); a file that
// cannot be read is refused whole, never half-read.
// Pure functions over files; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "common/status.h"

namespace palisade::cluster {

Status WriteSnapshot(const std::string& path, int64_t revision,
                     const std::map<std::string, std::string>& kvs);
Status ReadSnapshot(const std::string& path, int64_t* revision,
                    std::map<std::string, std::string>* kvs);

}  // namespace palisade::cluster
