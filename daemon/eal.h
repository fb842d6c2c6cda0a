// Eal: starting and stopping DPDK's EAL for one palisaded instance.
//
// Each instance has its own file prefix (palisade-NAME) so several switches run side by side.
// Hugepages are used when mounted with free pages (or required with --hugepages on); without
// them the EAL runs on --no-huge anonymous memory (the switch copies to and from guest memory,
// which the guest shares with us, so our own buffers need not be shared). Worker CPUs become
// EAL lcores 1..N; lcore 0 is the control thread, kept off the worker CPUs when possible.
//
// Thread-safety: call from main() only, once each.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "daemon/options.h"

namespace palisade {

struct EalInfo {
  bool hugepages = false;
  std::vector<unsigned> worker_lcores;
  std::string runtime_dir;  // /var/run/dpdk/palisade-NAME, removed by StopEal
};

// The EAL arguments StartEal would use (for the log and for tests).
std::vector<std::string> EalArguments(const Options& options, bool hugepages);
// Whether hugetlbfs is mounted and has free pages.
bool HugepagesAvailable();

Status StartEal(const Options& options, EalInfo* info);
void StopEal(const EalInfo& info);

}  // namespace palisade
