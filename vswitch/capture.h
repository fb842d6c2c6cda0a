// Capture: copies of the packets passing one point of one port's IOChain, for
// `palisadectl capture` (a pcapng file, as a hypervisor's packet capture before and after a
// vNIC's filters).
//
// Points: kPre, as packets enter the chain (before its first slot; every packet, with the
// verdict the whole chain gave it); kPost, after the whole chain (only what passed), or after
// slot N (what every slot up to N, in the direction's order, passed; with its final verdict).
//
// Off, a capture costs the datapath one pointer load and one predictable branch per batch: the
// worker reads the port's capture pointer (Switch) once per batch and hands it to IOChain::Run.
// On, IOChain::Run marks the packets to record while the slots run and, after the chain, copies
// up to snaplen bytes of each into the calling worker's own ring of fixed-size records. The
// worker never blocks: a full ring loses the packet and counts it.
//
// Thread-safety: the settings are immutable. Record() from datapath workers, each on its own
// ring (batch.worker); Drain(), the counters and Stop() from the control thread. The control
// thread frees a Capture only after an RCU grace period once no port points to it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slot/filter.h"
#include "slot/spsc_ring.h"

namespace palisade {

enum class CapturePoint : uint8_t { kPre, kPost };

struct CaptureSpec {
  std::string port;
  CapturePoint point = CapturePoint::kPre;
  uint8_t after_slot = 0;  // kPost: after this slot (0: after the whole chain)
  bool in = true;          // toward the VM (the port's IN chain)
  bool out = true;         // from the VM (its OUT chain)
  uint32_t snaplen = 0;    // bytes kept per packet, 1..kCaptureMaxBytes
  uint64_t count = 0;      // stop after this many packets (0: until stopped)
};

inline constexpr uint32_t kCaptureMaxBytes = 2048;

// One captured packet, as a worker writes it into its ring.
struct CaptureRecord {
  uint64_t now_ns;  // the worker's clock (vswitch/clock.h), not wall time
  uint32_t len;     // the packet's length
  uint16_t caplen;  // bytes in data
  Direction dir;
  Verdict verdict;
  DropReason reason;
  uint8_t data[kCaptureMaxBytes];
};

class Capture {
 public:
  static constexpr size_t kRingRecords = 512;  // per worker: about 1 MiB

  Capture(CaptureSpec spec, uint16_t workers);

  const CaptureSpec& spec() const { return spec_; }
  bool wants(Direction dir) const { return dir == Direction::kIn ? spec_.in : spec_.out; }

  // Datapath, worker batch.worker: records the packets whose bit is set in `mask` (bit i:
  // batch.pkts[i]), with their verdicts in batch.
  void Record(const FilterBatch& batch, uint32_t mask);

  // Control thread: moves up to `max` records, in time order, into out.
  void Drain(size_t max, std::vector<CaptureRecord>* out);
  uint64_t lost() const;

 private:
  struct PerWorker {
    SpscRing<CaptureRecord, kRingRecords> ring;
    std::atomic<uint64_t> lost{0};  // written by its worker only
  };
  const CaptureSpec spec_;
  std::vector<std::unique_ptr<PerWorker>> workers_;
};

}  // namespace palisade
