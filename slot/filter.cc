#include "slot/filter.h"

namespace palisade {

const char* DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kNone: return "none";
    case DropReason::kFailClosed: return "fail-closed";
    case DropReason::kFilter: return "filter";
    case DropReason::kRunt: return "runt";
    case DropReason::kBadSource: return "bad-source";
    case DropReason::kReservedMulticast: return "reserved-multicast";
    case DropReason::kSamePort: return "same-port";
    case DropReason::kPortDown: return "port-down";
    case DropReason::kTxFull: return "tx-full";
    case DropReason::kRule: return "rule";
    case DropReason::kReject: return "reject";
    case DropReason::kDefault: return "default";
    case DropReason::kMalformed: return "malformed";
    case DropReason::kFragment: return "fragment";
    case DropReason::kTcpInvalid: return "tcp-invalid";
    case DropReason::kStateLimit: return "state-limit";
    case DropReason::kSpoofGuard: return "SpoofGuard";
    case DropReason::kMigrating: return "migrating";
    case DropReason::kRaGuard: return "RAGuard";
    case DropReason::kDhcpGuard: return "DHCPGuard";
    case DropReason::kVlanTagged: return "vlan-tagged";
    case DropReason::kStateHeadroom: return "state-headroom";
    case DropReason::kCount: break;
  }
  return "unknown";
}

}  // namespace palisade
