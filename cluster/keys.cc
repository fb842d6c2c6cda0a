#include "cluster/keys.h"

namespace palisade::cluster {

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(end.back() + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

bool ValidName(std::string_view name) {
  if (name.empty() || name.size() > 128) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string EndpointKey(std::string_view vm, std::string_view host) {
  return std::string(kEndpoints) + std::string(vm) + "/" + std::string(host);
}

bool ParseEndpointKey(std::string_view key, std::string* vm, std::string* host) {
  if (!key.starts_with(kEndpoints)) return false;
  const std::string_view vm_host = key.substr(kEndpoints.size());
  const size_t slash = vm_host.find('/');
  if (slash == std::string_view::npos) return false;
  *vm = vm_host.substr(0, slash);
  *host = vm_host.substr(slash + 1);
  return true;
}

}  // namespace palisade::cluster
