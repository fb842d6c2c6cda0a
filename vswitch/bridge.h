// Bridge: the switch's L2 forwarding decision with MAC learning and ageing.
//
// Workers call Forward() per frame: it learns the source (asking the control thread to record
// new or moved MACs through a per-worker ring, so workers never write the table's keys) and
// decides unicast to a learned port, flood (broadcast, multicast, unknown unicast), or drop.
// The control thread calls Poll() periodically: it records learned MACs, ages old ones out and
// compacts the table, retiring the old copy through the owner's RCU.
//
// Time is passed in (seconds on the switch's monotonic clock), so tests use a fake clock.
//
// Thread-safety: Forward(worker, ...) from worker `worker` only, one thread per worker index.
// Everything else, Dump() included, on the control thread.
#pragma once

#include <atomic>
#include <bitset>
#include <functional>
#include <memory>
#include <vector>

#include "slot/filter.h"
#include "vswitch/mac_table.h"
#include "slot/spsc_ring.h"

namespace palisade {

inline constexpr uint16_t kMaxPorts = 256;

class Bridge {
 public:
  struct Options {
    uint32_t max_entries = 8192;
    uint32_t ageing_s = 300;
    unsigned workers = 1;
  };
  // Frees an old table once no worker can still read it (the switch passes its RCU's retire).
  using Retire = std::function<void(std::function<void()> free_fn)>;

  static constexpr int32_t kFlood = -1;
  static constexpr int32_t kDrop = -2;

  struct Decision {
    int32_t port;  // a port index, kFlood or kDrop
    DropReason reason;
  };

  Bridge(Options options, Retire retire);
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Worker side. The frame is at least len bytes.
  Decision Forward(uint16_t worker, uint16_t in_port, const uint8_t* frame, uint32_t len,
                   uint32_t now_s);

  // Control side.
  void SetPortLive(uint16_t port, bool live);  // learn events for dead ports are ignored
  void Poll(uint32_t now_s);
  // Learns mac on port at once (control thread): a migrated VM's MAC at its new port.
  void Teach(uint64_t mac, uint16_t port, uint32_t now_s);
  size_t RemovePort(uint16_t port);
  size_t Flush();
  void set_ageing_s(uint32_t s) { options_.ageing_s = s; }
  uint32_t ageing_s() const { return options_.ageing_s; }

  std::vector<MacTable::Entry> Dump() const;
  uint64_t learn_events_lost() const;

 private:
  struct LearnEvent {
    uint64_t mac;
    uint16_t port;
  };
  struct alignas(64) PerWorker {
    SpscRing<LearnEvent, 1024> ring;
    uint64_t last_mac = ~uint64_t{0};  // last event sent, to avoid one event per packet
    uint16_t last_port = 0;
    uint32_t last_s = 0;
    std::atomic<uint64_t> lost{0};
  };

  void Learn(PerWorker& w, uint64_t mac, uint16_t port, uint32_t now_s);

  Options options_;
  Retire retire_;
  std::atomic<MacTable*> table_;
  std::vector<std::unique_ptr<PerWorker>> workers_;
  std::bitset<kMaxPorts> live_;
  uint32_t last_age_s_ = 0;
};

}  // namespace palisade
