// libFuzzer target: the rule parser must never crash, and whatever it accepts must print to text
// that parses back to the same tables (the round-trip property of getrules/getaddrsets).
#include <cstddef>
#include <cstdint>
#include <string>

#include "firewall/rule_text.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  palisade::fw::RuleFile file;
  if (!palisade::fw::ParseRuleFile(text, &file).ok()) return 0;
  const std::string printed = palisade::fw::PrintRuleFile(file);
  palisade::fw::RuleFile again;
  if (!palisade::fw::ParseRuleFile(printed, &again).ok() || !(again == file)) __builtin_trap();
  return 0;
}
