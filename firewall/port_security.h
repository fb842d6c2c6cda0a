// PortSecurity: anti-spoofing for one VM port (IOChain slot 1, agent palisade-swsec).
//
// A port is bound to its MAC and IP addresses: configured, or learned trust-on-first-use from
// the VM's own ARP (sender address), IPv6 neighbour discovery (NA target, NS source) and the
// DHCP ACKs it receives (the assigned address), up to a limit. A learned address is forgotten
// once the VM has not used it for the learning timeout, and never learned when another port
// holds it (SetReserved) or when it is a router's (named by a DHCP ACK toward the VM, or the
// source of a router advertisement toward it). Every frame from the VM is
// checked, malformed or not: another source MAC, an IP packet from another source address
// (except 0.0.0.0 for DHCP and :: for duplicate address detection), ARP or NA claiming another
// address, and any ARP that is not well-formed Ethernet/IPv4 ARP are dropped (SpoofGuard) and
// logged; other malformed frames are dropped as malformed. A VM is not a router nor a DHCP
// server unless its binding says so: router advertisements and redirects (ICMPv6 134 and 137,
// ICMP 5) are dropped as RAGuard, DHCP and DHCPv6 server messages (UDP from port 67 or 547) as
// DHCPGuard. Packets toward the VM pass.
//
// Thread-safety: Process() runs, OUT and IN, on the worker that polls the port (the switch
// hands other workers' bursts over), with no lock; the control methods (any thread) run their
// work on that worker through the filter's owner (slot/owner.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "firewall/ip_addr.h"
#include "firewall/packet.h"
#include "firewall/packet_log.h"
#include "slot/filter.h"

namespace palisade::fw {

struct PortBinding {
  uint64_t mac = 0;             // 0: learn the first source MAC
  std::vector<IpAddr> ips;      // configured addresses
  bool learn = true;            // trust-on-first-use for addresses beyond the configured ones
  unsigned max_learned = 8;
  uint32_t learn_timeout_s = 1800;  // a learned address the VM has not used this long goes
  bool router = false;          // the VM may send router advertisements and redirects
  bool dhcp_server = false;     // the VM may answer DHCP and DHCPv6
};

class PortSecurity : public Filter {
 public:
  PortSecurity(uint32_t filter_id, PortBinding binding, PacketLog* log);

  std::string_view agent() const override { return "palisade-swsec"; }
  void Process(FilterBatch& batch) override;

  // The addresses the port is bound to now (configured, then learned), and its MAC.
  std::vector<IpAddr> addresses() const;
  uint64_t mac() const;
  // What was learned (the MAC when none was configured, addresses beyond the configured ones),
  // and taking it over from another switch or an earlier run (migration, restart), so that a
  // moved or restarted port does not learn afresh: a VM could claim another address at first use.
  uint64_t learned_mac() const;
  std::vector<IpAddr> learned() const;
  void Restore(uint64_t mac, const std::vector<IpAddr>& learned);
  // True once after the learned addresses changed (the switch then re-resolves address sets).
  bool TakeChanged() { return changed_.exchange(false, std::memory_order_acq_rel); }
  // Grows whenever what was learned (MAC or addresses) changed: a store saves only then.
  uint64_t learned_version() const { return learned_version_.load(std::memory_order_relaxed); }
  // Addresses other ports hold (bound or learned): never learned here, and forgotten here if
  // learned already. Control thread.
  void SetReserved(std::vector<IpAddr> reserved);
  // Forgets learned addresses unused for the learning timeout; true when any went.
  bool Expire(uint64_t now_ns);

 private:
  struct Learned {
    IpAddr addr;
    uint32_t last_used_s;
  };
  std::vector<IpAddr> Copy(bool bound) const;  // learned addresses, after the bound ones if asked
  bool Allowed(const IpAddr& a) const;
  // Allowed, refreshing a learned address's use.
  bool Permit(const IpAddr& a, uint32_t now_s);
  void LearnFromInbound(const uint8_t* frame, const Packet& p, uint32_t now_s);
  bool Claim(const IpAddr& a, uint32_t now_s);  // allowed, or learned now
  bool Learnable(const IpAddr& a) const;
  void Log(const FilterBatch& b, uint16_t i, const IpAddr& src, const IpAddr& dst, uint8_t proto);
  // Why a frame from the VM must not pass (DropReason::kNone: it may).
  DropReason Check(const FilterBatch& b, uint16_t i, const Packet& p, uint32_t now_s);

  const uint32_t filter_id_;
  PacketLog* log_;
  PortBinding binding_;         // on the owner
  bool mac_learned_ = false;    // on the owner
  std::vector<Learned> learned_;  // on the owner
  std::vector<IpAddr> reserved_;  // on the owner
  static constexpr size_t kMaxRouters = 8;
  std::vector<IpAddr> routers_;   // on the owner; the last kMaxRouters seen
  LogBudget log_budget_;        // on the owner
  void MarkChanged() {
    learned_version_.fetch_add(1, std::memory_order_relaxed);
    changed_.store(true, std::memory_order_release);
  }
  std::atomic<bool> changed_{false};
  std::atomic<uint64_t> learned_version_{0};
};

}  // namespace palisade::fw
