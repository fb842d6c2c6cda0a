#include "firewall/packet_log.h"

#include <ctime>

#include "firewall/conn.h"

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade::fw {
namespace {

const char* KindName(LogEvent::Kind k) {
  switch (k) {
    case LogEvent::Kind::kMatch: return "match";
    case LogEvent::Kind::kTerm: return "TERM";
    case LogEvent::Kind::kStateLimit: return "state-limit";
    case LogEvent::Kind::kSpoofGuard: return "SpoofGuard";
    case LogEvent::Kind::kFragment: return "fragment";
    case LogEvent::Kind::kShort: return "short";
  }
  return "?";
}

const char* ActionText(LogEvent::Action a) {
  switch (a) {
    case LogEvent::Action::kPass: return "PASS";
    case LogEvent::Action::kDrop: return "DROP";
    case LogEvent::Action::kReject: return "REJECT";
  }
  return "?";
}

std::string ProtoText(uint8_t proto) {
  switch (proto) {
    case kProtoTcp: return "TCP";
    case kProtoUdp: return "UDP";
    case kProtoIcmp: return "ICMP";
    case kProtoIcmp6: return "IPV6-ICMP";
    default: return "PROTO" + std::to_string(proto);
  }
}

std::string Flags(uint8_t f) {
  std::string s;
  if (f & tcp::kSyn) s += 'S';
  if (f & tcp::kAck) s += 'A';
  if (f & tcp::kFin) s += 'F';
  if (f & tcp::kRst) s += 'R';
  if (f & tcp::kPsh) s += 'P';
  return s;
}

}  // namespace

PacketLog::PacketLog(unsigned workers, int64_t wall_offset_ns, uint32_t lines_per_second)
    : wall_offset_ns_(wall_offset_ns), lines_per_second_(lines_per_second) {
  // One ring per worker, and the last one for the control thread.
  for (unsigned i = 0; i <= (workers ? workers : 1); i++) workers_.push_back(std::make_unique<PerWorker>());
}

bool PacketLog::Push(unsigned worker, const LogEvent& e, LogBudget* budget) {
  PerWorker& w = *workers_[worker < workers_.size() - 1 ? worker : workers_.size() - 1];
  if (budget != nullptr && !budget->Take(e.now_ns)) {
    w.over_budget.store(w.over_budget.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return false;
  }
  if (w.ring.Push(e)) return true;
  w.lost.store(w.lost.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return false;
}

std::vector<std::string> PacketLog::Recent(size_t n) const {
  const size_t k = n < recent_.size() ? n : recent_.size();
  return std::vector<std::string>(recent_.end() - static_cast<std::ptrdiff_t>(k), recent_.end());
}

uint64_t PacketLog::suppressed() const {
  uint64_t n = suppressed_;
  for (const auto& w : workers_) n += w->over_budget.load(std::memory_order_relaxed);
  return n;
}

uint64_t PacketLog::written_by(uint32_t filter_id) const {
  auto it = written_by_.find(filter_id);
  return it == written_by_.end() ? 0 : it->second;
}

uint64_t PacketLog::lost() const {
  uint64_t n = 0;
  for (const auto& w : workers_) n += w->lost.load(std::memory_order_relaxed);
  return n;
}

std::string PacketLog::Format(const LogEvent& e, int64_t wall_offset_ns) {
  const int64_t wall = static_cast<int64_t>(e.now_ns) + wall_offset_ns;
  const std::time_t secs = static_cast<std::time_t>(wall / 1000000000);
  std::tm tm;
  gmtime_r(&secs, &tm);
  char stamp[40];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ", static_cast<int>((wall / 1000000) % 1000));
  std::string s = std::string(stamp) + ms + " " + std::to_string(e.filter_id) + (e.v6 ? " INET6 " : " INET ") +
                  KindName(e.kind) + " " + ActionText(e.action) + " " + e.ruleset + "/" +
                  std::to_string(e.rule_id) + (e.in ? " IN " : " OUT ");
  const std::string ends = e.src.ToString() + "/" + std::to_string(e.sport) + "->" +
                           e.dst.ToString() + "/" + std::to_string(e.dport);
  if (e.kind == LogEvent::Kind::kTerm) {
    s += ProtoText(e.proto) + " " + CloseReasonName(static_cast<CloseReason>(e.close_reason)) +
         " " + ends + " " + std::to_string(e.pkts[0]) + "/" + std::to_string(e.pkts[1]) + " " +
         std::to_string(e.bytes[0]) + "/" + std::to_string(e.bytes[1]);
  } else {
    s += std::to_string(e.len) + " " + ProtoText(e.proto) + " " + ends;
    if (e.proto == kProtoTcp) s += " " + Flags(e.tcp_flags);
  }
  return s;
}

size_t PacketLog::Drain(std::FILE* out, uint64_t now_ns) {
  size_t lines = 0;
  const uint64_t second = now_ns / 1000000000ull;
  if (second != second_) {
    second_ = second;
    in_second_ = 0;
  }
  for (auto& w : workers_) {
    LogEvent e;
    while (w->ring.Pop(&e)) {
      if (in_second_ >= lines_per_second_) {
        suppressed_++;
        continue;
      }
      in_second_++;
      std::string line = Format(e, wall_offset_ns_);
      if (out != nullptr) std::fprintf(out, "%s\n", line.c_str());
      recent_.push_back(std::move(line));
      if (recent_.size() > kRecent) recent_.pop_front();
      lines++;
      written_++;
      written_by_[e.filter_id]++;
    }
  }
  const uint64_t suppressed_now = suppressed();
  if (suppressed_now != reported_suppressed_ && in_second_ < lines_per_second_ && out != nullptr) {
    std::fprintf(out, "# %llu log lines suppressed (over %u per second, or over a filter's %u)\n",
                 static_cast<unsigned long long>(suppressed_now - reported_suppressed_),
                 lines_per_second_, LogBudget::kDefaultPerSecond);
    reported_suppressed_ = suppressed_now;
  }
  if (out != nullptr && lines > 0) std::fflush(out);
  return lines;
}

}  // namespace palisade::fw
