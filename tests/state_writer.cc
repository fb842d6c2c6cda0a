// Writes a switch state file (migration/port_state.capnp's SwitchState) holding one vhost-user
// port with the stateful firewall, rules admitting UDP to port 53, and N established UDP
// connections: a palisaded started with it as --state-file has a port with N connections at
// once, as no guest could open them in a test's time.
// Usage: state_writer FILE PORT SOCKET N
#include <cstdio>
#include <cstdlib>
#include <string>

#include "firewall/conn_fixture.h"
#include "migration/port_state.h"

int main(int argc, char** argv) {
  using namespace palisade;
  if (argc != 5) {
    std::fprintf(stderr, "usage: state_writer FILE PORT SOCKET N\n");
    return 2;
  }
  const uint32_t n = static_cast<uint32_t>(std::strtoul(argv[4], nullptr, 10));
  PortExport e;
  e.spec.name = argv[2];
  e.spec.path = argv[3];
  e.slots = {FilterSpec{2, "sfw", FailurePolicy::kFailClosed}};
  e.rules = "ruleset big {\n  rule 1 at 1 out protocol udp from any to any port 53 accept;\n}\n";
  e.options.conn_limit = n + 1000;
  e.conns = fw::UdpConns(n, 600);
  if (Status s = migration::SaveSwitchState(argv[1], {e}); !s.ok()) {
    std::fprintf(stderr, "state_writer: %s\n", s.message().c_str());
    return 1;
  }
  return 0;
}
