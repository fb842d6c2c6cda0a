// The filter slot contract: what a filter in a port's IOChain sees and what it returns.
//
// A filter gets a batch of up to kBurstSize packets travelling in one direction through one
// port and writes a verdict per packet. It sees packets as read-only views (pointer + length),
// never as mbufs, so firewall/ builds and is tested without DPDK's EAL.
//
// Thread-safety: Process() is called on the datapath worker that polls the filter's port, for
// both of the port's chains (other workers hand their bursts for the port over to it), so a
// filter's state has one thread. A filter whose state the control side changes or reads in
// place runs those methods through its owner (OnOwner, slot/owner.h); a filter without one
// (unit tests, benches) has one thread, its caller's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "slot/owner.h"

namespace palisade {

inline constexpr uint16_t kBurstSize = 32;

// OUT: from the VM toward the switch. IN: from the switch toward the VM.
enum class Direction : uint8_t { kOut = 0, kIn = 1 };

enum class Verdict : uint8_t {
  kPass,       // hand on to the next slot, then to the bridge or the port
  kDrop,       // drop, counted on the port under batch.reason[i]
  kConsumed,   // the filter has dealt with the packet itself; the chain stops here, no drop
  kUndecided,  // the filter cannot decide (not configured, being replaced): failure policy applies
};

// Why a packet was dropped. Counted per port; names are what operators see.
enum class DropReason : uint8_t {
  kNone = 0,
  kFailClosed,         // a slot could not decide and its policy is failClosed
  kFilter,             // a filter dropped it
  kRunt,               // shorter than an Ethernet header
  kBadSource,          // multicast or zero source MAC
  kReservedMulticast,  // IEEE 802.1D link-local group (01:80:c2:00:00:0x), never forwarded
  kSamePort,           // destination learned on the ingress port
  kPortDown,           // egress vhost-user device not running
  kTxFull,             // egress queue full
  // Set by the firewall's filters:
  kRule,               // a rule drops it
  kReject,             // a rule rejects it (a TCP RST or ICMP error went back to the sender)
  kDefault,            // no rule matches
  kMalformed,          // a header is truncated or inconsistent
  kFragment,           // a later fragment of a datagram whose first fragment was not admitted
  kTcpInvalid,         // outside the connection's sequence window, or not a valid opener
  kStateLimit,         // the connection table is full
  kSpoofGuard,         // the VM used an address it is not bound to
  kMigrating,          // the port is arriving by live migration: closed until its state is in
  kRaGuard,            // a VM not allowed to route sent a router advertisement or redirect
  kDhcpGuard,          // a VM not allowed to serve DHCP answered as a DHCP server
  kVlanTagged,         // a VLAN-tagged frame from a VM whose port does not carry VLANs
  kStateHeadroom,      // a burst of new connections outran the table's memory backed ahead
  kCount,
};

const char* DropReasonName(DropReason reason);

struct PacketRef {
  const uint8_t* data;
  uint32_t len;
};

// Per-packet scratch for one burst, shared by every chain the packet passes (OUT at its ingress
// port, IN at each egress port). The bytes of a packet do not change on the way, so a filter may
// keep what it derived from them here (a parsed header, under its own tag) and later slots and
// chains reuse it instead of deriving it again. The worker clears `tag` for each new burst.
struct alignas(64) PacketScratch {
  uint32_t tag;
  alignas(8) uint8_t bytes[252];
};

// Sends a frame the filter built (a TCP RST, an ICMP error) back out of the port where the
// batch's packets entered the switch, bypassing filters. Returns false when no buffer is free.
class Emitter {
 public:
  virtual ~Emitter() = default;
  virtual bool Emit(const uint8_t* frame, uint32_t len) = 0;
};

struct FilterBatch {
  Direction dir;
  uint16_t worker;  // index of the calling worker, for per-worker state
  uint16_t count;
  uint64_t now_ns;  // time is passed in; filters never read a clock
  PacketRef pkts[kBurstSize];
  Verdict verdict[kBurstSize];
  DropReason reason[kBurstSize];  // read when verdict is kDrop; kNone means kFilter
  Emitter* emit = nullptr;        // null where nothing may be sent (unit tests without one)
  PacketScratch* scratch[kBurstSize] = {};  // null entries: no scratch (filters work without)
};

class Filter {
 public:
  virtual ~Filter() = default;
  // The agent name shown in the filter's name (nic-<id>-<ifname>-<agent>.<slot>).
  virtual std::string_view agent() const = 0;
  // Fills batch.verdict[0..count) (prefilled with kPass) and, for drops, batch.reason.
  virtual void Process(FilterBatch& batch) = 0;

  // The worker that runs the filter: set once, before the filter is attached to a chain.
  void set_owner(Owner* owner) { owner_ = owner; }

 protected:
  // Runs f() where it cannot meet Process() (see owner.h): through the owner, or at once.
  template <typename F>
  void OnOwner(F&& f) const {
    if (owner_ != nullptr) {
      owner_->Call(f);
    } else {
      f();
    }
  }

 private:
  Owner* owner_ = nullptr;
};

}  // namespace palisade
