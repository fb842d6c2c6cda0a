#include "common/utc_time.h"

#include <ctime>

namespace palisade {

std::string UtcNowText() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm;
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  return buf;
}

}  // namespace palisade
