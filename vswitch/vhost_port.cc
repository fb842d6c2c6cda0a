#include "vswitch/vhost_port.h"

#include <rte_mbuf.h>
#include <rte_vhost.h>
#include <sys/un.h>

#include <bit>
#include <cstring>
#include <map>
#include <mutex>

#include "common/socket_path.h"

namespace palisade {
namespace {

// The vhost library's callbacks carry only a device id; the socket path leads back to the port.
// This map is the one piece of process-wide state the C API forces on us; it is touched only on
// control events (port add/remove, device start/stop), never per packet.
std::mutex registry_mu;
std::map<std::string, VhostPort*>& Registry() {
  static std::map<std::string, VhostPort*> ports;
  return ports;
}

VhostPort::DeviceListener& Listener() {
  static VhostPort::DeviceListener listener;
  return listener;
}

VhostPort* FindPort(int vid) {
  char path[PATH_MAX];
  if (rte_vhost_get_ifname(vid, path, sizeof path) != 0) return nullptr;
  auto it = Registry().find(path);
  return it == Registry().end() ? nullptr : it->second;
}

// The listener is told outside the registry's lock: it may take a moment, and every other
// port's vhost-user events need that lock meanwhile.
int OnNewDevice(int vid) {
  std::string name;
  VhostPort::DeviceListener listener;
  {
    std::lock_guard lock(registry_mu);
    VhostPort* port = FindPort(vid);
    if (port == nullptr) return -1;
    port->DeviceStarted(vid);
    name = port->name();
    listener = Listener();
  }
  if (listener) listener(name, true);
  return 0;
}

void OnDestroyDevice(int vid) {
  std::string name;
  VhostPort::DeviceListener listener;
  {
    std::lock_guard lock(registry_mu);
    VhostPort* port = FindPort(vid);
    if (port == nullptr) return;
    port->DeviceStopped();
    name = port->name();
    listener = Listener();
  }
  if (listener) listener(name, false);
}

int OnVringStateChanged(int vid, uint16_t vring, int enable) {
  std::lock_guard lock(registry_mu);
  if (VhostPort* port = FindPort(vid)) port->VringStateChanged(vring, enable != 0);
  return 0;
}

const rte_vhost_device_ops kDeviceOps = {
    .new_device = OnNewDevice,
    .destroy_device = OnDestroyDevice,
    .vring_state_changed = OnVringStateChanged,
    .features_changed = nullptr,
    .new_connection = nullptr,
    .destroy_connection = nullptr,
    .guest_notified = nullptr,
    .reserved = {nullptr},
};

// Feature bits from the virtio spec (5.1.3); linux/virtio_net.h is not C++-clean.
enum VirtioNetFeature : unsigned {
  kCsum = 0, kGuestCsum = 1, kGuestTso4 = 7, kGuestTso6 = 8, kGuestEcn = 9, kGuestUfo = 10,
  kHostTso4 = 11, kHostTso6 = 12, kHostEcn = 13, kHostUfo = 14,
};
constexpr uint64_t kDisabledFeatures =
    (1ULL << kCsum) | (1ULL << kGuestCsum) | (1ULL << kGuestTso4) | (1ULL << kGuestTso6) |
    (1ULL << kGuestEcn) | (1ULL << kGuestUfo) | (1ULL << kHostTso4) | (1ULL << kHostTso6) |
    (1ULL << kHostEcn) | (1ULL << kHostUfo);

}  // namespace

VhostPort::VhostPort(std::string name, uint16_t index, unsigned workers, Options options,
                     rte_mempool* pool, Rcu* rcu)
    : Port(std::move(name), index, workers), options_(std::move(options)), pool_(pool), rcu_(rcu) {}

Status VhostPort::Create(std::string name, uint16_t index, unsigned workers, Options options,
                         rte_mempool* pool, Rcu* rcu, std::unique_ptr<Port>* out) {
  const std::string path = options.path;
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status::Invalid("vhost-user socket path must be 1-107 characters: '" + path + "'");
  }
  if (!options.client) {
    if (Status s = ClaimSocketPath(path); !s.ok()) return s;
  }
  {
    std::lock_guard lock(registry_mu);
    if (Registry().count(path)) return Status::Exists("socket " + path + " is used by another port");
  }
  std::unique_ptr<VhostPort> port(
      new VhostPort(std::move(name), index, workers, std::move(options), pool, rcu));

  uint64_t flags = port->options_.client ? RTE_VHOST_USER_CLIENT : 0;
  if (rte_vhost_driver_register(path.c_str(), flags) != 0) {
    return Status::Unavailable("cannot register vhost-user socket " + path);
  }
  port->registered_ = true;
  {
    std::lock_guard lock(registry_mu);
    Registry()[path] = port.get();
  }
  if (rte_vhost_driver_disable_features(path.c_str(), kDisabledFeatures) != 0 ||
      rte_vhost_driver_callback_register(path.c_str(), &kDeviceOps) != 0) {
    return Status::Internal("cannot configure vhost-user socket " + path);
  }
  if (rte_vhost_driver_start(path.c_str()) != 0) {
    return Status::Unavailable("cannot " + std::string(port->options_.client ? "connect to" : "listen on") +
                               " vhost-user socket " + path + " (is its directory writable?)");
  }
  *out = std::move(port);
  return Status::Ok();
}

VhostPort::~VhostPort() {
  if (registered_) {
    // Stops the device first (destroy_device runs, and waits for the workers), then closes and,
    // in server mode, removes the socket.
    rte_vhost_driver_unregister(options_.path.c_str());
  }
  std::lock_guard lock(registry_mu);
  Registry().erase(options_.path);
}

void VhostPort::SetDeviceListener(DeviceListener listener) {
  std::lock_guard lock(registry_mu);
  Listener() = std::move(listener);
}

void VhostPort::DeviceStarted(int vid) {
  // The switch polls: guests need not kick us.
  for (uint16_t q = 0; q < rte_vhost_get_vring_num(vid); q++) {
    rte_vhost_enable_guest_notification(vid, q, 0);
  }
  vid_.store(vid, std::memory_order_release);
}

void VhostPort::DeviceStopped() {
  vid_.store(-1, std::memory_order_release);
  enabled_vrings_.store(0, std::memory_order_release);
  rcu_->Synchronize();
}

void VhostPort::VringStateChanged(uint16_t vring, bool enabled) {
  if (vring >= 32) return;
  if (enabled) {
    enabled_vrings_.fetch_or(1u << vring, std::memory_order_acq_rel);
  } else {
    enabled_vrings_.fetch_and(~(1u << vring), std::memory_order_acq_rel);
  }
}

uint16_t VhostPort::queue_pairs() const {
  // Even vrings carry packets toward the guest, odd ones from it.
  return std::popcount(enabled_vrings_.load(std::memory_order_acquire) & 0x55555555u);
}

namespace {
// The n-th set bit of mask, counting from 0 (n < popcount(mask)).
uint16_t NthBit(uint32_t mask, unsigned n) {
  for (; n > 0; n--) mask &= mask - 1;
  return static_cast<uint16_t>(std::countr_zero(mask));
}
}  // namespace

uint16_t VhostPort::Rx(rte_mbuf** pkts, uint16_t n) {
  const int vid = vid_.load(std::memory_order_acquire);
  if (vid < 0) return 0;
  const uint32_t from_guest = enabled_vrings_.load(std::memory_order_acquire) & 0xaaaaaaaau;
  const unsigned queues = std::popcount(from_guest);
  if (queues == 0) return 0;
  // One queue per call, round robin, so a busy queue cannot starve the others.
  const uint16_t vring = NthBit(from_guest, next_rx_queue_++ % queues);
  return rte_vhost_dequeue_burst(vid, vring, pool_, pkts, n);
}

uint16_t VhostPort::Tx(uint16_t worker, rte_mbuf** pkts, uint16_t n, DropReason* why) {
  const int vid = vid_.load(std::memory_order_acquire);
  const uint32_t to_guest = enabled_vrings_.load(std::memory_order_acquire) & 0x55555555u;
  uint16_t sent = 0;
  if (vid < 0 || to_guest == 0) {
    *why = DropReason::kPortDown;
  } else {
    // Workers spread over the guest's queues; the vhost library serialises a shared queue.
    const uint16_t vring = NthBit(to_guest, worker % std::popcount(to_guest));
    sent = rte_vhost_enqueue_burst(vid, vring, pkts, n);
    *why = DropReason::kTxFull;
  }
  rte_pktmbuf_free_bulk(pkts, n);  // enqueue copies into guest memory
  return sent;
}

}  // namespace palisade
