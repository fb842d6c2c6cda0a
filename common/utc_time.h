// The current wall-clock time as operators read it in logs, state files and views:
// 2026-11-25T10:02:11Z (UTC, seconds). Thread-safe.
#pragma once

#include <string>

namespace palisade {

std::string UtcNowText();

}  // namespace palisade
