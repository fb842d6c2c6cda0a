#include "cli/input.h"

#include <fstream>
#include <iostream>
#include <sstream>

namespace palisade::cli {

std::optional<std::string> ReadFileOrStdin(const std::string& path) {
  std::stringstream text;
  if (path == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(path);
    if (!in) return std::nullopt;
    text << in.rdbuf();
  }
  return text.str();
}

}  // namespace palisade::cli
