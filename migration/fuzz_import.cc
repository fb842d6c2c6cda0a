// libFuzzer target: bytes from a peer switch or a state file (a PortState, a PortDelta or a whole
// SwitchState, packed or not, or a connection segment, as the first byte chooses), read as the
// import path reads them and handed to a stateful filter under a fixed policy.
//
// The oracle: reading never crashes and refuses what it cannot read; and every entry the filter
// took (whatever the bytes claimed, the sender's `recheck off` included) is one the policy
// admits in its original direction, in a state of its protocol, with no more time left than
// the filter's timeout for that state. Anything else traps.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <capnp/serialize-packed.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include "firewall/conn_segment.h"
#include "firewall/rule_text.h"
#include "firewall/stateful_filter.h"
#include "migration/port_state.h"

namespace palisade::migration {
namespace {

constexpr char kPolicy[] = R"(ruleset fuzz {
  rule 1 at 1 out protocol tcp from any to any port 80 accept;
  rule 2 at 2 in protocol udp from any to any port 53 accept;
  rule 3 at 3 inout protocol any from any to any drop;
}
)";

bool Admitted(const fw::FlowInfo& f) {
  if (f.orig.proto == fw::kProtoTcp) return !f.orig_in && f.orig.dport == 80;
  if (f.orig.proto == fw::kProtoUdp) return f.orig_in && f.orig.dport == 53;
  return false;
}

void Check(std::vector<fw::Conn> conns, bool recheck) {
  static const std::shared_ptr<const fw::RuleTable> table = [] {
    fw::RuleFile f;
    if (!fw::ParseRuleFile(kPolicy, &f).ok()) std::abort();
    std::shared_ptr<const fw::RuleTable> t;
    if (!fw::RuleTable::Compile(f, nullptr, 1, &t).ok()) std::abort();
    return t;
  }();
  static fw::PacketLog log(1, 0);
  fw::FirewallOptions options;
  options.recheck = recheck;  // as a sender's PortState may say
  options.conn_limit = 64;
  fw::StatefulFilter filter(1, &log, options, 7);
  filter.SetTable(table);
  const uint64_t now = 1000ull * 1000000000ull;
  if (conns.size() > 256) conns.resize(256);
  filter.ImportConns(conns, now);
  std::vector<fw::FlowInfo> flows;
  filter.Flows(0, 1000, fw::FlowSelector{}, now, &flows);
  for (const fw::FlowInfo& f : flows) {
    const bool tcp = f.orig.proto == fw::kProtoTcp;
    const bool state_ok = tcp ? f.state >= fw::ConnState::kSynSent && f.state <= fw::ConnState::kClosed
                              : f.state == fw::ConnState::kNew || f.state == fw::ConnState::kMultiple;
    if (!Admitted(f) || !state_ok || f.expires_in_s > options.timeouts.For(f.orig.proto, f.state)) {
      __builtin_trap();
    }
  }
}

}  // namespace
}  // namespace palisade::migration

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace palisade;
  using namespace palisade::migration;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  data++;
  size--;
  if ((mode & 3) >= 2) {  // a state file or a connection segment: through the file reader
    int fd = memfd_create("state", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) != static_cast<ssize_t>(size)) {
      close(fd);
      return 0;
    }
    const std::string path = "/proc/self/fd/" + std::to_string(fd);
    if ((mode & 3) == 2) {
      std::vector<PortExport> ports;
      if (LoadSwitchState(path, &ports).ok()) {
        for (const PortExport& p : ports) Check(p.conns, p.options.recheck);
      }
    } else {
      std::vector<fw::Conn> conns;
      if (fw::ReadSegment(path, "fuzz", 2000ull * 1000000000ull, &conns).ok()) Check(conns, true);
    }
    close(fd);
    return 0;
  }
  // Words, as a message arrives; the packed form through its own reader.
  std::vector<capnp::word> words((size + 7) / 8);
  if (size > 0) std::memcpy(words.data(), data, size);
  capnp::ReaderOptions limits;
  limits.traversalLimitInWords = 1 << 20;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    kj::ArrayInputStream bytes(kj::arrayPtr(data, size));
    kj::Own<capnp::MessageReader> reader;
    if (mode & 4) {
      reader = kj::heap<capnp::PackedMessageReader>(bytes, limits);
    } else {
      reader = kj::heap<capnp::FlatArrayMessageReader>(kj::arrayPtr(words.data(), words.size()), limits);
    }
    if ((mode & 3) == 0) {
      PortExport e;
      if (Read(reader->getRoot<PortState>(), &e).ok()) Check(e.conns, e.options.recheck);
    } else {
      Delta d;
      if (ReadDelta(reader->getRoot<PortDelta>(), &d).ok()) Check(d.changed, true);
    }
  })) {
    (void)e;  // unreadable: refused, as it must be
  }
  return 0;
}
