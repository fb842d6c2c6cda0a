// Worker: one datapath thread. Each loop it polls its ports in bursts of kBurstSize and moves
// every burst through the ingress port's IOChain (OUT), the bridge, and each egress port's
// IOChain (IN) to the egress port. An egress port another worker polls gets the burst through
// a hand-off ring instead (handoff.h): that worker runs the port's IN chain, so each port's
// filters run on one worker. No locks, allocations or exceptions per packet; drops are
// counted by reason on the port where they happen.
//
// Idle back-off: after a run of empty polls the worker sleeps, doubling up to kMaxSleepUs, and
// is offline for RCU while it sleeps, so an idle switch leaves the CPU to its guests.
//
// Control work on the filters of this worker's ports runs through its Owner (slot/owner.h):
// between two loops while it runs, on the caller while it sleeps or before it starts.
//
// Thread-safety: Run() on its own lcore; Stats(), Stop() and owner() from any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "vswitch/bridge.h"
#include "vswitch/capture.h"
#include "vswitch/handoff.h"
#include "vswitch/port.h"
#include "vswitch/rcu.h"
#include "vswitch/snapshot.h"
#include "slot/owner.h"
#include "slot/spsc_ring.h"

struct rte_mbuf;
struct rte_mempool;

namespace palisade {

struct WorkerStats {
  uint64_t busy_cycles = 0;  // loops that moved packets
  uint64_t idle_cycles = 0;  // empty loops and back-off sleeps
  // Control calls (slot/owner.h) run between polls; in neither of the above.
  uint64_t control_cycles = 0;
  uint64_t rx_packets = 0;
  uint64_t tx_packets = 0;
  uint64_t loops = 0;
  uint64_t handoff_packets = 0;  // sent to this worker's ports by other workers (handoff.h)
  double cycles_per_packet() const {
    return rx_packets ? static_cast<double>(busy_cycles) / static_cast<double>(rx_packets) : 0.0;
  }
};

class Worker {
 public:
  static constexpr unsigned kSpinLoops = 256;
  static constexpr unsigned kMaxSleepUs = 128;

  // captures: per port index, the port's active capture or null (Switch::StartCapture).
  Worker(uint16_t id, const std::atomic<const Snapshot*>* snapshot,
         const std::atomic<Capture*>* captures, Bridge* bridge, Rcu* rcu, rte_mempool* pool,
         Handoffs* handoffs);

  // A frame the switch itself sends as if the port had received it (skipping the port's OUT
  // chain): a migrated VM's announcement, so bridges and uplinks learn where it is now.
  struct InjectedFrame {
    uint16_t port;
    uint16_t len;
    uint8_t data[64];
  };
  // From the control thread only (the one producer); false when the queue is full.
  bool Inject(const InjectedFrame& frame) { return injected_.Push(frame); }

  void Run();  // returns after Stop()
  void Stop() { stop_.store(true, std::memory_order_release); }
  WorkerStats Stats() const;
  uint16_t id() const { return id_; }
  // What the filters of the ports this worker polls run their control methods through.
  Owner* owner() { return &owner_; }

 private:
  uint32_t PollPort(const Snapshot& snap, uint16_t in, uint64_t now_ns);
  // Bridges one packet that passed its ingress chain: stages it toward its egress port(s).
  void Forward(const Snapshot& snap, uint16_t in, rte_mbuf* m, uint8_t slot, uint32_t now_s);
  void SendInjected(const Snapshot& snap, uint64_t now_ns);
  void Stage(uint16_t port, rte_mbuf* m, uint8_t slot);
  // Sends the staged bursts on: through their IN chains here, or to the worker that polls
  // their port. `in`: the ingress port.
  void Flush(const Snapshot& snap, uint16_t in, uint64_t now_ns);
  // Runs port out's IN chain on n packets (their scratch alongside) and transmits what passes.
  void Deliver(const Snapshot& snap, uint16_t out, rte_mbuf** pkts, PacketScratch* const* scratch,
               uint16_t n, uint64_t now_ns);
  void HandOff(const Snapshot& snap, uint16_t out, uint16_t in, rte_mbuf** pkts, uint16_t n);
  // The bursts other workers handed to this one; returns how many packets they held.
  uint32_t TakeHandoffs(const Snapshot& snap, uint64_t now_ns);
  void Idle();
  void SendEmitted(const Snapshot& snap, uint16_t in);
  // Sends n packets out of port and counts what left and what was dropped, and why.
  void Transmit(Port& port, rte_mbuf** pkts, uint16_t n);

  // Frames filters built (rejects) go back out of the port being polled, after the burst.
  class BackToIngress : public Emitter {
   public:
    explicit BackToIngress(Worker* w) : w_(w) {}
    bool Emit(const uint8_t* frame, uint32_t len) override;

   private:
    Worker* w_;
  };

  const uint16_t id_;
  const std::atomic<const Snapshot*>* snapshot_;
  const std::atomic<Capture*>* captures_;
  Bridge* bridge_;
  Rcu* rcu_;
  rte_mempool* pool_;
  Handoffs* handoffs_;
  std::atomic<bool> stop_{false};
  Owner owner_;
  SpscRing<InjectedFrame, 16> injected_;
  BackToIngress emitter_{this};
  rte_mbuf* emitted_[2 * kBurstSize];  // OUT chain and IN chains of one burst
  uint16_t nemitted_ = 0;

  // Per-burst egress staging, owned by this worker's thread.
  PacketScratch scratch_[kBurstSize];        // of the burst being forwarded
  PacketScratch handoff_scratch_[kBurstSize];  // of a burst handed over: parsed afresh here
  rte_mbuf* staged_[kMaxPorts][kBurstSize];
  uint8_t staged_slot_[kMaxPorts][kBurstSize];  // which scratch each staged packet owns
  uint16_t staged_count_[kMaxPorts] = {};
  uint16_t touched_[kMaxPorts];
  uint16_t ntouched_ = 0;
  unsigned idle_loops_ = 0;
  unsigned sleep_us_ = 1;

  Counter busy_cycles_, idle_cycles_, control_cycles_, rx_packets_, tx_packets_, loops_, handed_in_;
};

}  // namespace palisade
