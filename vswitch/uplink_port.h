// UplinkPort: any DPDK ethdev named by devargs (net_af_packet,iface=..., net_tap, a PCI NIC),
// hot-plugged when the port is added and removed with it. One RX queue polled by the owning
// worker, one TX queue per worker so workers never share a TX queue.
//
// Thread-safety: as Port. Create and destruction on the control thread.
#pragma once

#include <rte_mempool.h>

#include <memory>
#include <string>

#include "common/status.h"
#include "vswitch/port.h"

namespace palisade {

class UplinkPort : public Port {
 public:
  static Status Create(std::string name, uint16_t index, unsigned workers, std::string devargs,
                       rte_mempool* pool, std::unique_ptr<Port>* out);
  ~UplinkPort() override;

  bool link_up() const override;
  uint16_t queue_pairs() const override { return 1; }
  uint16_t Rx(rte_mbuf** pkts, uint16_t n) override;
  uint16_t Tx(uint16_t worker, rte_mbuf** pkts, uint16_t n, DropReason* why) override;


 private:
  UplinkPort(std::string name, uint16_t index, unsigned workers, std::string devargs);

  std::string devargs_;
  uint16_t eth_port_ = 0;
  bool probed_ = false;
  bool started_ = false;
};

}  // namespace palisade
