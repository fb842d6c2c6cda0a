// The switch's monotonic clock, read once per poll loop by workers and on each control tick,
// and passed into everything that needs time (bridge ageing, filters) so tests use fake values.
// Thread-safe.
#pragma once

#include <rte_cycles.h>

#include <cstdint>

namespace palisade {

inline uint64_t TscToNs(uint64_t tsc) {
  static const double ns_per_tick = 1e9 / static_cast<double>(rte_get_tsc_hz());
  return static_cast<uint64_t>(static_cast<double>(tsc) * ns_per_tick);
}

inline uint64_t NowNs() { return TscToNs(rte_rdtsc()); }

}  // namespace palisade
