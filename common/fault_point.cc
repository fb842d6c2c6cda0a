#include "common/fault_point.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace palisade {

void FaultPoint(std::string_view name) {
  static const std::string fault = [] {
    const char* v = std::getenv("PALISADE_FAULT");
    return std::string(v ? v : "");
  }();
  if (fault.empty()) return;
  static std::atomic<int> hits{0};
  const size_t colon = fault.find(':');
  const std::string point = fault.substr(0, colon);
  if (point != name) return;
  const int nth = colon == std::string::npos ? 1 : std::atoi(fault.c_str() + colon + 1);
  if (++hits == nth) kill(getpid(), SIGKILL);
}

}  // namespace palisade
