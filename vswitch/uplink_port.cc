#include "vswitch/uplink_port.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

namespace palisade {
namespace {

constexpr uint16_t kRxDescriptors = 1024;
constexpr uint16_t kTxDescriptors = 1024;

std::string EthError(const std::string& what, int rc) {
  return what + ": " + rte_strerror(rc < 0 ? -rc : rc);
}

}  // namespace

UplinkPort::UplinkPort(std::string name, uint16_t index, unsigned workers, std::string devargs)
    : Port(std::move(name), index, workers), devargs_(std::move(devargs)) {}

Status UplinkPort::Create(std::string name, uint16_t index, unsigned workers, std::string devargs,
                          rte_mempool* pool, std::unique_ptr<Port>* out) {
  if (devargs.empty()) return Status::Invalid("uplink devargs are empty");
  std::unique_ptr<UplinkPort> port(new UplinkPort(std::move(name), index, workers, devargs));

  if (int rc = rte_dev_probe(devargs.c_str()); rc != 0) {
    return Status::Unavailable(EthError("cannot probe uplink '" + devargs + "'", rc));
  }
  rte_dev_iterator it;
  uint16_t eth_port = RTE_MAX_ETHPORTS;
  RTE_ETH_FOREACH_MATCHING_DEV(eth_port, devargs.c_str(), &it) {
    rte_eth_iterator_cleanup(&it);
    break;
  }
  if (eth_port >= RTE_MAX_ETHPORTS) {
    return Status::NotFound("uplink '" + devargs + "' probed but no ethdev matches it");
  }
  port->eth_port_ = eth_port;
  port->probed_ = true;  // from here on the destructor closes and removes the device

  rte_eth_conf conf{};
  const uint16_t txq = static_cast<uint16_t>(workers ? workers : 1);
  if (int rc = rte_eth_dev_configure(eth_port, 1, txq, &conf); rc != 0) {
    return Status::Unavailable(EthError("cannot configure uplink '" + devargs + "'", rc));
  }
  const int socket = rte_eth_dev_socket_id(eth_port);
  if (int rc = rte_eth_rx_queue_setup(eth_port, 0, kRxDescriptors, socket, nullptr, pool); rc != 0) {
    return Status::Unavailable(EthError("cannot set up uplink RX queue", rc));
  }
  for (uint16_t q = 0; q < txq; q++) {
    if (int rc = rte_eth_tx_queue_setup(eth_port, q, kTxDescriptors, socket, nullptr); rc != 0) {
      return Status::Unavailable(EthError("cannot set up uplink TX queue", rc));
    }
  }
  if (int rc = rte_eth_dev_start(eth_port); rc != 0) {
    return Status::Unavailable(EthError("cannot start uplink '" + devargs + "'", rc));
  }
  port->started_ = true;
  // A switch port receives frames for every MAC behind it.
  rte_eth_promiscuous_enable(eth_port);
  *out = std::move(port);
  return Status::Ok();
}

UplinkPort::~UplinkPort() {
  if (!probed_) return;
  rte_eth_dev_info info;
  rte_device* dev = rte_eth_dev_info_get(eth_port_, &info) == 0 ? info.device : nullptr;
  if (started_) rte_eth_dev_stop(eth_port_);
  rte_eth_dev_close(eth_port_);
  if (dev != nullptr) rte_dev_remove(dev);
}

bool UplinkPort::link_up() const {
  rte_eth_link link{};
  return rte_eth_link_get_nowait(eth_port_, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

uint16_t UplinkPort::Rx(rte_mbuf** pkts, uint16_t n) { return rte_eth_rx_burst(eth_port_, 0, pkts, n); }

uint16_t UplinkPort::Tx(uint16_t worker, rte_mbuf** pkts, uint16_t n, DropReason* why) {
  const uint16_t sent = rte_eth_tx_burst(eth_port_, worker, pkts, n);
  if (sent < n) {
    *why = DropReason::kTxFull;
    rte_pktmbuf_free_bulk(pkts + sent, n - sent);
  }
  return sent;
}

}  // namespace palisade
