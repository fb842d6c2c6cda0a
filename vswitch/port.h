// Port: one attachment point of the switch (a vhost-user guest NIC or an uplink ethdev), with
// its per-worker counters.
//
// Thread-safety: Rx() only from the worker that polls the port (one at a time). Tx() from any
// worker, each passing its own index. Counters: each worker writes its own row; Totals() from
// any thread. Creation and destruction on the control thread; a port is destroyed only after
// every worker has stopped seeing it (see switch.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slot/filter.h"

struct rte_mbuf;

namespace palisade {

// A counter with one writer: relaxed load+store compiles to a plain add, readers see whole values.
class Counter {
 public:
  void Add(uint64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t Get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

struct alignas(64) PortCounters {
  Counter rx_packets, rx_bytes, tx_packets, tx_bytes, consumed;
  Counter drops[static_cast<size_t>(DropReason::kCount)];
  void Drop(DropReason r, uint64_t n = 1) { drops[static_cast<size_t>(r)].Add(n); }
};

struct PortTotals {
  uint64_t rx_packets = 0, rx_bytes = 0, tx_packets = 0, tx_bytes = 0, consumed = 0;
  uint64_t drops[static_cast<size_t>(DropReason::kCount)] = {};
  uint64_t total_drops() const;
};

enum class PortKind { kVhostUser, kUplink };

class Port {
 public:
  Port(std::string name, uint16_t index, unsigned workers);
  virtual ~Port() = default;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  const std::string& name() const { return name_; }
  uint16_t index() const { return index_; }
  // Unique in the process: tells this port from a later one at the same index.
  uint64_t uid() const { return uid_; }
  virtual bool link_up() const = 0;
  virtual uint16_t queue_pairs() const = 0;  // queue pairs in use now

  // Receives up to n packets. The caller owns them.
  virtual uint16_t Rx(rte_mbuf** pkts, uint16_t n) = 0;
  // Takes ownership of all n packets and returns how many left through the port; the rest are
  // freed and their reason stored in *why.
  virtual uint16_t Tx(uint16_t worker, rte_mbuf** pkts, uint16_t n, DropReason* why) = 0;

  PortCounters& counters(uint16_t worker) { return counters_[worker]; }
  PortTotals Totals() const;

  // VLAN-tagged frames received here are dropped (vlan-tagged) before its filters: a VM must
  // not reach other VLANs through an uplink trunk, since the bridge is not VLAN-aware. Set
  // before the port is published; read by workers.
  bool drop_tagged() const { return drop_tagged_; }
  void set_drop_tagged(bool drop) { drop_tagged_ = drop; }

 private:
  std::string name_;
  uint16_t index_;
  uint64_t uid_;
  bool drop_tagged_ = false;
  std::vector<PortCounters> counters_;
};

}  // namespace palisade
