// Replacing a file so that a crash at any moment leaves the old one or the new one whole, never
// a mix: the new content goes to PATH.tmp, is synced, renamed over PATH, and the directory is
// synced so that the rename itself is on disk before the caller says the change is kept.
// Used for everything palisaded and the cluster agent keep across crashes.
// Thread-safe (no shared state); two writers of one path must not overlap.
#pragma once

#include <functional>
#include <string>

#include "common/status.h"

namespace palisade {

// `write` fills the open temporary file (fd); a failed write leaves PATH untouched and no
// temporary behind.
Status ReplaceFile(const std::string& path, const std::function<Status(int fd)>& write);

}  // namespace palisade
