// What palisadectl reads: a file's text, or standard input for "-". Not thread-safe.
#pragma once

#include <optional>
#include <string>

namespace palisade::cli {

// nullopt when the file cannot be opened.
std::optional<std::string> ReadFileOrStdin(const std::string& path);

}  // namespace palisade::cli
