#include "migration/port_state.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <tuple>

#include <capnp/message.h>
#include <capnp/serialize-packed.h>

#include "common/atomic_file.h"
#include "common/kj_errors.h"
#include "common/utc_time.h"
#include "slot/mac_addr.h"

namespace palisade::migration {
namespace {

// A million connections is ~150 MB of message: well past capnp's default reading limit.
capnp::ReaderOptions LargeMessages() {
  capnp::ReaderOptions o;
  o.traversalLimitInWords = uint64_t{1} << 31;
  return o;
}

void WriteConn(const fw::Conn& c, Connection::Builder b) {
  b.setLo(capnp::Data::Reader(c.lo.b.data(), 16));
  b.setHi(capnp::Data::Reader(c.hi.b.data(), 16));
  b.setLoPort(c.lo_port);
  b.setHiPort(c.hi_port);
  b.setProto(c.proto);
  b.setState(static_cast<uint8_t>(c.state));
  b.setFlags(c.flags);
  b.setCloseReason(static_cast<uint8_t>(c.reason));
  b.setRuleId(c.rule_id);
  b.setRulePosition(c.rule_pos);
  b.setGeneration(c.generation);
  b.setFlowId(c.flow_id);
  b.setOrigPackets(c.pkts[0]);
  b.setReplyPackets(c.pkts[1]);
  b.setOrigBytes(c.bytes[0]);
  b.setReplyBytes(c.bytes[1]);
  b.setExpiresInSeconds(c.expires_s);
  auto peers = b.initPeers(2);
  for (unsigned p = 0; p < 2; p++) {
    peers[p].setEnd(c.peer[p].end);
    peers[p].setMaxEnd(c.peer[p].maxend);
    peers[p].setMaxWin(c.peer[p].maxwin);
    peers[p].setScale(c.peer[p].scale);
    peers[p].setFlags(c.peer[p].flags);
  }
}

// A list's claimed length costs the sender a few bytes (its elements may be empty): room is
// made for at most this many up front, the rest as real entries arrive.
size_t Reservable(size_t claimed) { return std::min<size_t>(claimed, 65536); }

bool ReadConn(Connection::Reader b, fw::Conn* out) {
  if (b.getLo().size() != 16 || b.getHi().size() != 16 || b.getPeers().size() != 2 ||
      b.getState() == 0 || b.getState() > static_cast<uint8_t>(fw::ConnState::kMultiple)) {
    return false;
  }
  fw::Conn c{};
  std::memcpy(c.lo.b.data(), b.getLo().begin(), 16);
  std::memcpy(c.hi.b.data(), b.getHi().begin(), 16);
  c.lo_port = b.getLoPort();
  c.hi_port = b.getHiPort();
  c.proto = b.getProto();
  c.state = static_cast<fw::ConnState>(b.getState());
  c.flags = b.getFlags();
  c.reason = static_cast<fw::CloseReason>(b.getCloseReason());
  c.rule_id = b.getRuleId();
  c.rule_pos = b.getRulePosition();
  c.generation = b.getGeneration();
  c.flow_id = b.getFlowId();
  c.pkts[0] = b.getOrigPackets();
  c.pkts[1] = b.getReplyPackets();
  c.bytes[0] = b.getOrigBytes();
  c.bytes[1] = b.getReplyBytes();
  c.expires_s = b.getExpiresInSeconds();
  for (unsigned p = 0; p < 2; p++) {
    auto peer = b.getPeers()[p];
    c.peer[p] = fw::TcpPeer{peer.getEnd(), peer.getMaxEnd(), peer.getMaxWin(), peer.getScale(),
                            peer.getFlags(), 0};
  }
  *out = c;
  return true;
}

Status CheckVersion(uint32_t version, const char* what) {
  if (version == CURRENT_VERSION) return Status::Ok();
  return Status::Invalid(std::string(what) + " version " + std::to_string(version) +
                         " cannot be read here (this switch reads version " +
                         std::to_string(CURRENT_VERSION) + ")");
}

}  // namespace

void Write(const PortExport& in, PortState::Builder out) {
  out.setVersion(CURRENT_VERSION);
  out.setName(in.spec.name);
  out.setVhostUser(in.spec.path);
  if (in.spec.kind == PortKind::kUplink) out.setUplink(in.spec.devargs);
  out.setMovedTo(in.moved_to);
  out.setClient(in.spec.client);
  out.setVm(in.spec.vm);
  if (in.spec.mac) out.setMac(MacToString(in.spec.mac));
  auto ips = out.initIps(static_cast<unsigned>(in.spec.ips.size()));
  for (unsigned i = 0; i < in.spec.ips.size(); i++) ips.set(i, in.spec.ips[i].ToString());
  const std::vector<std::string> allow = PortAllowNames(in.spec.allow);
  auto allowed = out.initAllow(static_cast<unsigned>(allow.size()));
  for (unsigned i = 0; i < allow.size(); i++) allowed.set(i, allow[i]);
  auto slots = out.initSlots(static_cast<unsigned>(in.slots.size()));
  for (unsigned i = 0; i < in.slots.size(); i++) {
    slots[i].setSlot(in.slots[i].slot);
    slots[i].setAgent(in.slots[i].agent);
    slots[i].setFailOpen(in.slots[i].policy == FailurePolicy::kFailOpen);
  }
  out.setRules(in.rules);
  out.setGeneration(in.generation);
  out.setConnectionLimit(in.options.conn_limit);
  out.setRecheck(in.options.recheck);
  const auto timeouts = in.options.timeouts.List();
  auto t = out.initTimeouts(static_cast<unsigned>(timeouts.size()));
  for (unsigned i = 0; i < timeouts.size(); i++) {
    t[i].setName(timeouts[i].first);
    t[i].setSeconds(timeouts[i].second);
  }
  if (in.learned_mac) out.setLearnedMac(MacToString(in.learned_mac));
  auto learned = out.initLearnedIps(static_cast<unsigned>(in.learned_ips.size()));
  for (unsigned i = 0; i < in.learned_ips.size(); i++) learned.set(i, in.learned_ips[i].ToString());
  auto vms = out.initVmAddresses(static_cast<unsigned>(in.vm_addresses.size()));
  unsigned v = 0;
  for (const auto& [vm, addrs] : in.vm_addresses) {
    vms[v].setVm(vm);
    auto list = vms[v++].initAddresses(static_cast<unsigned>(addrs.size()));
    for (unsigned i = 0; i < addrs.size(); i++) list.set(i, addrs[i].ToString());
  }
  auto conns = out.initConnections(static_cast<unsigned>(in.conns.size()));
  for (unsigned i = 0; i < in.conns.size(); i++) WriteConn(in.conns[i], conns[i]);
}

Status Read(PortState::Reader in, PortExport* out) {
  if (Status s = CheckVersion(in.getVersion(), "port state"); !s.ok()) return s;
  PortExport e;
  e.spec.name = Str(in.getName());
  if (in.getUplink().size() > 0) {
    e.spec.kind = PortKind::kUplink;
    e.spec.devargs = Str(in.getUplink());
  } else if (in.getVhostUser().size() == 0) {
    return Status::Invalid("port '" + e.spec.name + "' has no vhost-user socket");
  } else {
    e.spec.kind = PortKind::kVhostUser;
    e.spec.path = Str(in.getVhostUser());
  }
  e.spec.client = in.getClient();
  e.spec.vm = Str(in.getVm());
  // Lists cost a sender almost nothing to claim long: each is held to what a port can have.
  for (auto [size, max, what] : {std::tuple{in.getIps().size(), 256u, "bound addresses"},
                                 std::tuple{in.getAllow().size(), 8u, "allowances"},
                                 std::tuple{in.getSlots().size(), 15u, "slots"},
                                 std::tuple{in.getTimeouts().size(), 64u, "timeouts"},
                                 std::tuple{in.getLearnedIps().size(), 4096u, "learned addresses"},
                                 std::tuple{in.getVmAddresses().size(), 65536u, "VMs' addresses"}}) {
    if (size > max) {
      return Status::Invalid("port '" + e.spec.name + "': " + std::to_string(size) + " " + what +
                             " (at most " + std::to_string(max) + ")");
    }
  }
  if (in.getMac().size() > 0) {
    auto mac = MacParse(Str(in.getMac()));
    if (!mac) return Status::Invalid("port '" + e.spec.name + "': bad MAC '" + Str(in.getMac()) + "'");
    e.spec.mac = *mac;
  }
  for (auto ip : in.getIps()) {
    auto a = fw::IpAddr::Parse(Str(ip));
    if (!a) return Status::Invalid("port '" + e.spec.name + "': bad address '" + Str(ip) + "'");
    e.spec.ips.push_back(*a);
  }
  for (auto name : in.getAllow()) {
    if (Status s = ParsePortAllow(Str(name), &e.spec.allow); !s.ok()) {
      return Status::Invalid("port '" + e.spec.name + "': " + s.message());
    }
  }
  for (auto s : in.getSlots()) {
    if (s.getSlot() == 0 || s.getSlot() > 15) {
      return Status::Invalid("port '" + e.spec.name + "': slot " + std::to_string(s.getSlot()) + " (slots are 1-15)");
    }
    e.slots.push_back(FilterSpec{s.getSlot(), Str(s.getAgent()),
                                 s.getFailOpen() ? FailurePolicy::kFailOpen : FailurePolicy::kFailClosed});
  }
  e.rules = Str(in.getRules());
  e.moved_to = Str(in.getMovedTo());
  e.generation = in.getGeneration();
  e.options.conn_limit = in.getConnectionLimit();
  e.options.recheck = in.getRecheck();
  for (auto t : in.getTimeouts()) {
    if (Status s = e.options.timeouts.Set(Str(t.getName()), t.getSeconds()); !s.ok()) return s;
  }
  if (in.getLearnedMac().size() > 0) {
    auto mac = MacParse(Str(in.getLearnedMac()));
    if (!mac) return Status::Invalid("port '" + e.spec.name + "': bad learned MAC '" + Str(in.getLearnedMac()) + "'");
    e.learned_mac = *mac;
  }
  for (auto text : in.getLearnedIps()) {
    auto a = fw::IpAddr::Parse(Str(text));
    if (!a) return Status::Invalid("port '" + e.spec.name + "': bad learned address '" + Str(text) + "'");
    e.learned_ips.push_back(*a);
  }
  for (auto m : in.getVmAddresses()) {
    if (m.getAddresses().size() > 4096) {
      return Status::Invalid("port '" + e.spec.name + "': VM " + Str(m.getVm()) + " with " +
                             std::to_string(m.getAddresses().size()) + " addresses (at most 4096)");
    }
    auto& addrs = e.vm_addresses[Str(m.getVm())];
    for (auto text : m.getAddresses()) {
      auto a = fw::IpAddr::Parse(Str(text));
      if (!a) return Status::Invalid("port '" + e.spec.name + "': bad address '" + Str(text) + "' of VM " + Str(m.getVm()));
      addrs.push_back(*a);
    }
  }
  e.conns.reserve(Reservable(in.getConnections().size()));
  for (auto b : in.getConnections()) {
    fw::Conn c;
    if (!ReadConn(b, &c)) return Status::Invalid("port '" + e.spec.name + "': a malformed connection entry");
    e.conns.push_back(c);
  }
  *out = std::move(e);
  return Status::Ok();
}

void WriteDelta(const Delta& in, PortDelta::Builder out) {
  out.setVersion(CURRENT_VERSION);
  out.setName(in.name);
  out.setRound(in.round);
  out.setFinal(in.final);
  auto changed = out.initChanged(static_cast<unsigned>(in.changed.size()));
  for (unsigned i = 0; i < in.changed.size(); i++) WriteConn(in.changed[i], changed[i]);
  auto removed = out.initRemoved(static_cast<unsigned>(in.removed.size()));
  for (unsigned i = 0; i < in.removed.size(); i++) {
    const fw::ConnKey& k = in.removed[i];
    removed[i].setLo(capnp::Data::Reader(k.lo.b.data(), 16));
    removed[i].setHi(capnp::Data::Reader(k.hi.b.data(), 16));
    removed[i].setLoPort(k.lo_port);
    removed[i].setHiPort(k.hi_port);
    removed[i].setProto(k.proto);
  }
}

Status ReadDelta(PortDelta::Reader in, Delta* out) {
  if (Status s = CheckVersion(in.getVersion(), "port delta"); !s.ok()) return s;
  Delta d;
  d.name = Str(in.getName());
  d.round = in.getRound();
  d.final = in.getFinal();
  d.changed.reserve(Reservable(in.getChanged().size()));
  for (auto b : in.getChanged()) {
    fw::Conn c;
    if (!ReadConn(b, &c)) return Status::Invalid("port '" + d.name + "': a malformed connection entry in the delta");
    d.changed.push_back(c);
  }
  for (auto r : in.getRemoved()) {
    if (r.getLo().size() != 16 || r.getHi().size() != 16) {
      return Status::Invalid("port '" + d.name + "': a malformed key in the delta");
    }
    fw::ConnKey k;
    std::memcpy(k.lo.b.data(), r.getLo().begin(), 16);
    std::memcpy(k.hi.b.data(), r.getHi().begin(), 16);
    k.lo_port = r.getLoPort();
    k.hi_port = r.getHiPort();
    k.proto = r.getProto();
    d.removed.push_back(k);
  }
  *out = std::move(d);
  return Status::Ok();
}

Status SaveSwitchState(const std::string& path, const std::vector<PortExport>& ports,
                       uint32_t mac_ageing_s) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<SwitchState>();
  root.setVersion(CURRENT_VERSION);
  root.setSavedAt(UtcNowText());
  root.setMacAgeingSeconds(mac_ageing_s);
  auto list = root.initPorts(static_cast<unsigned>(ports.size()));
  for (unsigned i = 0; i < ports.size(); i++) Write(ports[i], list[i]);
  return ReplaceFile(path, [&](int fd) {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { capnp::writePackedMessageToFd(fd, message); })) {
      return Status::Unavailable(path + ": " + std::string(e->getDescription().cStr()));
    }
    return Status::Ok();
  });
}

Status LoadSwitchState(const std::string& path, std::vector<PortExport>* ports, uint32_t* mac_ageing_s) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound(path + ": " + std::strerror(errno));
  Status status;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
    // The packed form expands at most 128 words per byte of file (a run of zero words costs two
    // bytes): a file's claim to be larger is refused before anything is allocated for it.
    struct stat st{};
    capnp::ReaderOptions limits = LargeMessages();
    if (fstat(fd, &st) == 0) {
      limits.traversalLimitInWords =
          std::min<uint64_t>(limits.traversalLimitInWords, 1024 + 128 * static_cast<uint64_t>(st.st_size));
    }
    capnp::PackedFdMessageReader reader(fd, limits);
    auto root = reader.getRoot<SwitchState>();
    if (status = CheckVersion(root.getVersion(), "switch state"); !status.ok()) {
      status = Status::Invalid(path + ": " + status.message());
      return;
    }
    if (mac_ageing_s) *mac_ageing_s = root.getMacAgeingSeconds();
    for (auto p : root.getPorts()) {
      PortExport e;
      if (status = Read(p, &e); !status.ok()) return;
      ports->push_back(std::move(e));
    }
  })) {
    status = Status::Invalid(path + ": not a switch state file: " + std::string(e->getDescription().cStr()));
  }
  close(fd);
  return status;
}

}  // namespace palisade::migration
