// Timeouts: how long a connection entry lives without traffic, per protocol and state, in
// seconds. A profile is a value; a filter holds one and can be given another at run time
// (entries take the new values the next time they see a packet).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "firewall/conn.h"

namespace palisade::fw {

struct Timeouts {
  uint32_t tcp_syn_sent = 30;
  uint32_t tcp_syn_recv = 30;
  uint32_t tcp_established = 43200;
  uint32_t tcp_fin_wait = 45;
  uint32_t tcp_close_wait = 45;
  uint32_t tcp_time_wait = 20;
  uint32_t tcp_closed = 10;
  uint32_t udp_first = 30;
  uint32_t udp_multiple = 60;
  uint32_t icmp_first = 10;
  uint32_t icmp_multiple = 20;
  uint32_t other_first = 30;
  uint32_t other_multiple = 60;

  uint32_t For(uint8_t proto, ConnState state) const;  // inline: once per packet
  // Sets one value by name ("tcp_established", ...), 1..1,000,000 seconds.
  Status Set(std::string_view name, uint32_t seconds);
  std::string ToString() const;  // "name=value ..." in field order
  std::vector<std::pair<std::string, uint32_t>> List() const;  // in field order
  bool operator==(const Timeouts&) const = default;
};

inline uint32_t Timeouts::For(uint8_t proto, ConnState state) const {
  const bool multiple = state == ConnState::kMultiple;
  switch (proto) {
    case kProtoTcp:
      switch (state) {
        case ConnState::kSynSent: return tcp_syn_sent;
        case ConnState::kSynRecv: return tcp_syn_recv;
        case ConnState::kEstablished: return tcp_established;
        case ConnState::kFinWait: return tcp_fin_wait;
        case ConnState::kCloseWait: return tcp_close_wait;
        case ConnState::kTimeWait: return tcp_time_wait;
        default: return tcp_closed;
      }
    case kProtoUdp: return multiple ? udp_multiple : udp_first;
    case kProtoIcmp:
    case kProtoIcmp6: return multiple ? icmp_multiple : icmp_first;
    default: return multiple ? other_multiple : other_first;
  }
}

}  // namespace palisade::fw
