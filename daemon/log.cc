#include "daemon/log.h"

#include <rte_log.h>

#include <cstdarg>
#include <cstdio>
#include <string>

#include "common/utc_time.h"

RTE_LOG_REGISTER_DEFAULT(palisade_logtype, INFO);

namespace palisade {

void Log(LogLevel level, const char* fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const std::string stamp = UtcNowText();
  static const char* const kNames[] = {"ERROR", "WARNING", "INFO"};
  static const uint32_t kLevels[] = {RTE_LOG_ERR, RTE_LOG_WARNING, RTE_LOG_INFO};
  const int i = static_cast<int>(level);
  rte_log(kLevels[i], palisade_logtype, "%s palisaded %s: %s\n", stamp.c_str(), kNames[i], msg);
}

}  // namespace palisade
