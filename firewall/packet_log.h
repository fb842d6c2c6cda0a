// PacketLog: the firewall's packet log. Filters on the datapath push fixed-size events into a
// per-worker ring (never blocking, never allocating; a full ring counts the event as lost); the
// control side drains the rings and writes one line per event in the FORMATS.md shape:
//
//   2026-11-25T10:02:11.512Z 2041 INET match PASS web-tier/1006 OUT 60 TCP 172.16.10.12/44194->172.16.10.11/22 S
//   2026-11-25T10:07:40.220Z 2041 INET TERM PASS web-tier/1006 OUT TCP FIN 172.16.10.12/44194->172.16.10.11/22 19/18 3017/2957
//
// Writing is rate-limited (lines per second); what is over the limit is counted and reported
// in one line. Each filter also has a budget of its own (LogBudget), taken before its events
// enter the rings, so that one VM's flood of dropped packets neither fills the rings nor uses
// up the switch's lines: other VMs' lines still get through.
//
// Thread-safety: Push(worker, ...) from that worker's thread only, Push(kControl, ...) from the
// control thread; Drain() and the counters from the control thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "firewall/ip_addr.h"
#include "slot/spsc_ring.h"

namespace palisade::fw {

struct LogEvent {
  enum class Kind : uint8_t { kMatch, kTerm, kStateLimit, kSpoofGuard, kFragment, kShort };
  enum class Action : uint8_t { kPass, kDrop, kReject };
  uint64_t now_ns;  // the switch's monotonic clock
  uint32_t filter_id;
  uint32_t rule_id;
  Kind kind;
  Action action;
  bool in;          // toward the VM
  bool v6;
  uint8_t proto;
  uint8_t tcp_flags;
  uint8_t close_reason;  // CloseReason, for kTerm
  uint16_t len;
  uint16_t sport, dport;
  IpAddr src, dst;
  uint64_t pkts[2], bytes[2];  // kTerm: original and reply directions
  char ruleset[24];            // truncated ruleset name
};

// A filter's share of the packet log: at most `per_second` lines in each second of the
// switch's clock. Guarded by the owning filter's lock.
class LogBudget {
 public:
  static constexpr uint32_t kDefaultPerSecond = 100;
  explicit LogBudget(uint32_t per_second = kDefaultPerSecond) : per_second_(per_second) {}
  bool Take(uint64_t now_ns) {
    const uint64_t second = now_ns / 1000000000ull;
    if (second != second_) {
      second_ = second;
      used_ = 0;
    }
    if (used_ >= per_second_) return false;
    used_++;
    return true;
  }

 private:
  uint32_t per_second_;
  uint32_t used_ = 0;
  uint64_t second_ = 0;
};

class PacketLog {
 public:
  static constexpr unsigned kControl = ~0u;  // the ring of the control thread

  // wall_offset_ns: realtime minus the monotonic clock of now_ns, for timestamps.
  PacketLog(unsigned workers, int64_t wall_offset_ns, uint32_t lines_per_second = 1000);

  // Queues e unless `budget` (may be null) is used up for this second: then it is counted as
  // suppressed.
  bool Push(unsigned worker, const LogEvent& e, LogBudget* budget = nullptr);

  // Writes what the rings hold to `out` (or just counts it when out is null); returns lines.
  size_t Drain(std::FILE* out, uint64_t now_ns);
  static std::string Format(const LogEvent& e, int64_t wall_offset_ns);

  uint64_t lost() const;
  uint64_t suppressed() const;
  uint64_t written() const { return written_; }
  // Lines written for one filter id (a port's index: its port security and stateful filter
  // share it), for the metrics. Forget() drops the count of a port that is gone, whose index
  // the next port may take.
  uint64_t written_by(uint32_t filter_id) const;
  void Forget(uint32_t filter_id) { written_by_.erase(filter_id); }
  // The last lines written (at most kRecent), oldest first: what `log tail` shows.
  std::vector<std::string> Recent(size_t n) const;
  static constexpr size_t kRecent = 1000;

 private:
  struct alignas(64) PerWorker {
    SpscRing<LogEvent, 1024> ring;
    std::atomic<uint64_t> lost{0};
    std::atomic<uint64_t> over_budget{0};  // suppressed by a filter's budget
  };
  std::vector<std::unique_ptr<PerWorker>> workers_;
  int64_t wall_offset_ns_;
  uint32_t lines_per_second_;
  uint64_t second_ = 0;
  uint32_t in_second_ = 0;
  uint64_t suppressed_ = 0, reported_suppressed_ = 0, written_ = 0;
  std::deque<std::string> recent_;
  std::unordered_map<uint32_t, uint64_t> written_by_;  // filter id -> lines
};

}  // namespace palisade::fw
