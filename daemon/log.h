// Logging for the daemon's control side (never the datapath: it counts instead). Messages go
// through DPDK's log stream under the "palisade" type, so they land in the same place as DPDK's
// own (stderr, or the file chosen with --log-dir), each with a UTC timestamp.
// Thread-safe.
#pragma once

namespace palisade {

enum class LogLevel { kError, kWarning, kInfo };

void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace palisade
