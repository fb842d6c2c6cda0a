// ClaimSocketPath: makes a unix socket path free to bind. A socket file left behind by a process
// that died is removed; one that a live process answers on is an error, as is any other file.
// Thread-safe (touches only the filesystem).
#pragma once

#include <string>

#include "common/status.h"

namespace palisade {

Status ClaimSocketPath(const std::string& path);

}  // namespace palisade
