// Established connection entries made up for tests and benchmarks: n UDP flows from
// 10.0.0.0 + i (source ports 1024 + i % 60000) to 192.168.0.1 port 53, opened from the VM
// (OUT), as a filter whose rules admit UDP to port 53 takes them (ImportConns). Flow ids 1..n.
// Pure function.
#pragma once

#include <cstdint>
#include <vector>

#include "firewall/conn.h"

namespace palisade::fw {

inline std::vector<Conn> UdpConns(uint32_t n, uint32_t expires_s) {
  std::vector<Conn> conns(n);
  for (uint32_t i = 0; i < n; i++) {
    Conn& c = conns[i];
    c = Conn{};
    c.lo = IpAddr::V4(0x0a000000u + i);
    c.hi = IpAddr::V4(0xc0a80001u);
    c.lo_port = static_cast<uint16_t>(1024 + i % 60000);
    c.hi_port = 53;
    c.proto = 17;
    c.state = ConnState::kMultiple;
    c.flags = kConnOrigIsLo;
    c.rule_id = 1;
    c.rule_pos = 1;
    c.generation = 1;
    c.flow_id = i + 1;
    c.pkts[0] = c.pkts[1] = 3;
    c.bytes[0] = c.bytes[1] = 300;
    c.expires_s = expires_s;
  }
  return conns;
}

}  // namespace palisade::fw
