#include "daemon/eal.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <sched.h>

#include <filesystem>
#include <fstream>
#include <sstream>

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade {
namespace {

std::string CpuSet(const std::vector<unsigned>& cpus) {
  std::string s;
  for (unsigned c : cpus) s += (s.empty() ? "" : ",") + std::to_string(c);
  return s;
}

// CPUs for the control thread: those we may run on that no worker uses, else all of them.
std::vector<unsigned> ControlCpus(const std::vector<unsigned>& workers) {
  cpu_set_t set;
  CPU_ZERO(&set);
  sched_getaffinity(0, sizeof set, &set);
  std::vector<unsigned> all, free;
  for (unsigned c = 0; c < CPU_SETSIZE; c++) {
    if (!CPU_ISSET(c, &set)) continue;
    all.push_back(c);
    bool used = false;
    for (unsigned w : workers) used |= w == c;
    if (!used) free.push_back(c);
  }
  return free.empty() ? all : free;
}

}  // namespace

bool HugepagesAvailable() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  bool mounted = false;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string dev, dir, type;
    in >> dev >> dir >> type;
    mounted |= type == "hugetlbfs";
  }
  if (!mounted) return false;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/kernel/mm/hugepages", ec)) {
    std::ifstream f(entry.path() / "free_hugepages");
    unsigned long free_pages = 0;
    if (f >> free_pages && free_pages > 0) return true;
  }
  return false;
}

std::vector<std::string> EalArguments(const Options& options, bool hugepages) {
  std::vector<std::string> args = {"palisaded", "--file-prefix=palisade-" + options.instance,
                                   "--proc-type=primary", "--log-level=lib.eal:notice"};
  std::string lcores = "0@(" + CpuSet(ControlCpus(options.cores)) + ")";
  for (size_t i = 0; i < options.cores.size(); i++) {
    lcores += "," + std::to_string(i + 1) + "@" + std::to_string(options.cores[i]);
  }
  args.push_back("--lcores=" + lcores);
  args.push_back("--main-lcore=0");
  if (!hugepages) {
    args.push_back("--no-huge");
    args.push_back("-m");
    args.push_back(std::to_string(options.memory_mb));
    args.push_back("--no-pci");  // PCI NICs need hugepage-backed DMA memory
  }
  return args;
}

Status StartEal(const Options& options, EalInfo* info) {
  bool hugepages = false;
  switch (options.hugepages) {
    case HugepageMode::kOff: break;
    case HugepageMode::kAuto: hugepages = HugepagesAvailable(); break;
    case HugepageMode::kOn:
      if (!HugepagesAvailable()) {
        return Status::Unavailable(
            "--hugepages on: no hugetlbfs mount with free pages (reserve some in "
            "/proc/sys/vm/nr_hugepages and mount hugetlbfs, or use --hugepages auto|off)");
      }
      hugepages = true;
      break;
  }
  std::vector<std::string> args = EalArguments(options, hugepages);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (rte_eal_init(static_cast<int>(args.size()), argv.data()) < 0) {
    return Status::Unavailable(std::string("DPDK EAL failed to start: ") + rte_strerror(rte_errno));
  }
  info->hugepages = hugepages;
  info->worker_lcores.clear();
  for (size_t i = 0; i < options.cores.size(); i++) {
    info->worker_lcores.push_back(static_cast<unsigned>(i + 1));
  }
  info->runtime_dir = rte_eal_get_runtime_dir();
  return Status::Ok();
}

void StopEal(const EalInfo& info) {
  rte_eal_cleanup();
  // EAL leaves its runtime files (config, memseg lists, mp socket) behind; a clean stop does not.
  std::error_code ec;
  if (!info.runtime_dir.empty()) std::filesystem::remove_all(info.runtime_dir, ec);
}

}  // namespace palisade
