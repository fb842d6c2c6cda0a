// VhostPort: a guest NIC attached through a vhost-user socket (DPDK's vhost library).
//
// Server mode: the switch creates the socket and the guest (QEMU, a virtio-user peer) connects.
// Client mode: the guest's QEMU owns the socket (server=on); the switch connects and reconnects
// after either side restarts, so a switch restart needs no guest restart.
//
// Negotiated: mergeable RX buffers, multiqueue, GUEST_ANNOUNCE, VHOST_F_LOG_ALL and the
// LOG_SHMFD/RARP protocol features (live migration), indirect descriptors, event index.
// Checksum and segmentation offloads are disabled: the switch and its filters see every frame
// whole and correct.
//
// The vhost library calls back on its own thread when a device starts (new_device) or stops
// (destroy_device). Workers read the device id with one atomic load per burst; destroy_device
// waits for an RCU grace period before it returns, so the library never frees a ring a worker
// is still using.
//
// Thread-safety: as Port. Create and destruction on the control thread.
#pragma once

#include <rte_mempool.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "vswitch/port.h"
#include "vswitch/rcu.h"

namespace palisade {

class VhostPort : public Port {
 public:
  struct Options {
    std::string path;
    bool client = false;
  };

  static Status Create(std::string name, uint16_t index, unsigned workers, Options options,
                       rte_mempool* pool, Rcu* rcu, std::unique_ptr<Port>* out);
  ~VhostPort() override;

  bool link_up() const override { return vid_.load(std::memory_order_acquire) >= 0; }
  uint16_t queue_pairs() const override;
  uint16_t Rx(rte_mbuf** pkts, uint16_t n) override;
  uint16_t Tx(uint16_t worker, rte_mbuf** pkts, uint16_t n, DropReason* why) override;

  const Options& options() const { return options_; }

  // Called on the vhost library's thread after a port's device has started (the guest's
  // driver is up, or a migrated guest resumed here) or stopped (the guest paused for the last
  // step of a live migration, shut down or went away): live migration's cut-over points. A
  // stop is reported after the workers have let go of the device, so the port's filter state
  // no longer changes from the guest's side. The listener is called outside the ports'
  // registry lock and must return quickly: the same thread serves every VM's vhost-user
  // messages. One listener per process (the vhost library's callbacks are process-wide too).
  using DeviceListener = std::function<void(const std::string& port, bool started)>;
  static void SetDeviceListener(DeviceListener listener);

  // Called by the vhost library's callbacks (vhost_port.cc).
  void DeviceStarted(int vid);
  void DeviceStopped();
  void VringStateChanged(uint16_t vring, bool enabled);

 private:
  VhostPort(std::string name, uint16_t index, unsigned workers, Options options,
            rte_mempool* pool, Rcu* rcu);

  Options options_;
  rte_mempool* pool_;
  Rcu* rcu_;
  bool registered_ = false;
  std::atomic<int> vid_{-1};
  std::atomic<uint32_t> enabled_vrings_{0};  // bit i: vring i enabled by the guest
  uint16_t next_rx_queue_ = 0;              // owned by the polling worker
};

}  // namespace palisade
