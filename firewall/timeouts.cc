#include "firewall/timeouts.h"

#include <utility>

namespace palisade::fw {
namespace {

template <typename T, typename F>
void ForEach(T& t, F&& f) {
  f("tcp_syn_sent", t.tcp_syn_sent);
  f("tcp_syn_recv", t.tcp_syn_recv);
  f("tcp_established", t.tcp_established);
  f("tcp_fin_wait", t.tcp_fin_wait);
  f("tcp_close_wait", t.tcp_close_wait);
  f("tcp_time_wait", t.tcp_time_wait);
  f("tcp_closed", t.tcp_closed);
  f("udp_first", t.udp_first);
  f("udp_multiple", t.udp_multiple);
  f("icmp_first", t.icmp_first);
  f("icmp_multiple", t.icmp_multiple);
  f("other_first", t.other_first);
  f("other_multiple", t.other_multiple);
}

}  // namespace

Status Timeouts::Set(std::string_view name, uint32_t seconds) {
  if (seconds < 1 || seconds > 1000000) {
    return Status::Invalid("timeout " + std::string(name) + " must be 1-1000000 seconds");
  }
  bool found = false;
  ForEach(*this, [&](const char* n, uint32_t& v) {
    if (name == n) {
      v = seconds;
      found = true;
    }
  });
  if (!found) {
    std::string names;
    ForEach(*this, [&](const char* n, uint32_t&) { names += std::string(names.empty() ? "" : ", ") + n; });
    return Status::Invalid("unknown timeout '" + std::string(name) + "' (known: " + names + ")");
  }
  return Status::Ok();
}

std::vector<std::pair<std::string, uint32_t>> Timeouts::List() const {
  std::vector<std::pair<std::string, uint32_t>> out;
  Timeouts copy = *this;
  ForEach(copy, [&](const char* n, uint32_t& v) { out.emplace_back(n, v); });
  return out;
}

std::string Timeouts::ToString() const {
  std::string s;
  Timeouts copy = *this;
  ForEach(copy, [&](const char* n, uint32_t& v) {
    s += std::string(s.empty() ? "" : " ") + n + "=" + std::to_string(v);
  });
  return s;
}

}  // namespace palisade::fw
