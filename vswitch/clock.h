// The switch's monotonic clock, read once per poll loop by workers and on each control tick,
// and passed into everything that needs time (bridge ageing, filters) so tests use fake values.
// Thread-safe.
#pragma once

#include <rte_cycles.h>

#include <time.h>

#include <cstdint>

namespace palisade {

inline uint64_t TscToNs(uint64_t tsc) {
  static const double ns_per_tick = 1e9 / static_cast<double>(rte_get_tsc_hz());
  return static_cast<uint64_t>(static_cast<double>(tsc) * ns_per_tick);
}

inline uint64_t NowNs() { return TscToNs(rte_rdtsc()); }

// CLOCK_BOOTTIME: the same for every process of one boot, so a restarted palisaded can place
// the previous one's deadlines (fw::ConnSegment::Stamp).
inline uint64_t BootNs() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace palisade
