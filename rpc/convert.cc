#include "rpc/convert.h"

#include "common/kj_errors.h"
#include "slot/mac_addr.h"

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade::rpc {

Status ToSpec(PortSpec::Reader r, palisade::PortSpec* out) {
  out->name = Str(r.getName());
  if (r.isVhostUser()) {
    out->kind = PortKind::kVhostUser;
    out->path = Str(r.getVhostUser());
  } else {
    out->kind = PortKind::kUplink;
    out->devargs = Str(r.getUplink());
  }
  out->client = r.getClient();
  out->vm = Str(r.getVm());
  if (r.hasMac() && r.getMac().size() > 0) {
    auto mac = MacParse(Str(r.getMac()));
    if (!mac || MacIsMulticast(*mac) || *mac == 0) {
      return Status::Invalid("'" + Str(r.getMac()) + "' is not a unicast MAC address");
    }
    out->mac = *mac;
  }
  for (auto ip : r.getIps()) {
    auto a = fw::IpAddr::Parse(Str(ip));
    if (!a) return Status::Invalid("'" + Str(ip) + "' is not an IPv4 or IPv6 address");
    out->ips.push_back(*a);
  }
  for (auto name : r.getAllow()) {
    if (Status s = ParsePortAllow(Str(name), &out->allow); !s.ok()) return s;
  }
  if ((out->client || !out->vm.empty() || out->mac || !out->ips.empty() || out->allow.any()) &&
      out->kind != PortKind::kVhostUser) {
    return Status::Invalid("client, vm, mac, ips and allow apply to vhost-user ports only");
  }
  return Status::Ok();
}

void FromSpec(const palisade::PortSpec& s, PortSpec::Builder b) {
  b.setName(s.name);
  if (s.kind == PortKind::kVhostUser) {
    b.setVhostUser(s.path);
  } else {
    b.setUplink(s.devargs);
  }
  b.setClient(s.client);
  b.setVm(s.vm);
  if (s.mac) b.setMac(MacToString(s.mac));
  auto ips = b.initIps(static_cast<unsigned>(s.ips.size()));
  for (unsigned i = 0; i < s.ips.size(); i++) ips.set(i, s.ips[i].ToString());
  const std::vector<std::string> allow = PortAllowNames(s.allow);
  auto list = b.initAllow(static_cast<unsigned>(allow.size()));
  for (unsigned i = 0; i < allow.size(); i++) list.set(i, allow[i]);
}

Status ToSelector(FlowSelector::Reader r, fw::FlowSelector* out) {
  std::string error;
  if (r.getSrc().size() > 0) {
    auto p = fw::IpPrefix::Parse(Str(r.getSrc()), &error);
    if (!p) return Status::Invalid("source selector: " + error);
    out->has_src = true;
    out->src = *p;
  }
  if (r.getDst().size() > 0) {
    auto p = fw::IpPrefix::Parse(Str(r.getDst()), &error);
    if (!p) return Status::Invalid("destination selector: " + error);
    out->has_dst = true;
    out->dst = *p;
  }
  if (r.getProto() > 255 || r.getSrcPort() > 65535 || r.getDstPort() > 65535) {
    return Status::Invalid("protocol must be 0-255 and ports 0-65535");
  }
  out->proto = r.getProto() < 0 ? fw::kAny : r.getProto();
  out->sport = r.getSrcPort() < 0 ? fw::kAny : r.getSrcPort();
  out->dport = r.getDstPort() < 0 ? fw::kAny : r.getDstPort();
  return Status::Ok();
}

void FillPort(const palisade::PortInfo& p, PortInfo::Builder b) {
  FromSpec(p.spec, b.initSpec());
  b.setIndex(p.index);
  b.setLink(p.link_up);
  b.setQueuePairs(p.queue_pairs);
  b.setWorker(p.worker);
  b.setRxPackets(p.totals.rx_packets);
  b.setRxBytes(p.totals.rx_bytes);
  b.setTxPackets(p.totals.tx_packets);
  b.setTxBytes(p.totals.tx_bytes);
  b.setConsumed(p.totals.consumed);
  const unsigned n = static_cast<unsigned>(DropReason::kCount) - 1;
  auto drops = b.initDrops(n);
  for (unsigned r = 0; r < n; r++) {
    drops[r].setReason(DropReasonName(static_cast<DropReason>(r + 1)));
    drops[r].setPackets(p.totals.drops[r + 1]);
  }
}

void FillFilters(const palisade::PortInfo& p, PortFilters::Builder b) {
  b.setPort(p.name);
  b.setIndex(p.index);
  b.setVm(p.spec.vm);
  b.setClusterRevision(p.cluster_revision);
  auto slots = b.initSlots(static_cast<unsigned>(p.slots.size()));
  for (unsigned s = 0; s < p.slots.size(); s++) {
    const SlotInfo& si = p.slots[s];
    slots[s].setSlot(si.slot);
    slots[s].setName(si.name);
    slots[s].setAgent(si.agent);
    slots[s].setFailOpen(si.policy == FailurePolicy::kFailOpen);
  }
}

void FillFlow(const fw::FlowInfo& f, Flow::Builder b) {
  b.setFlowId(f.flow_id);
  b.setState(fw::ConnStateName(f.state));
  b.setProto(f.orig.proto);
  b.setV6(f.v6);
  b.setTowardVm(f.orig_in);
  b.setRuleId(f.rule_id);
  b.setSrc(f.orig.src.ToString());
  b.setSrcPort(f.orig.sport);
  b.setDst(f.orig.dst.ToString());
  b.setDstPort(f.orig.dport);
  b.setOrigPackets(f.pkts[0]);
  b.setReplyPackets(f.pkts[1]);
  b.setOrigBytes(f.bytes[0]);
  b.setReplyBytes(f.bytes[1]);
  b.setExpiresInSeconds(f.expires_in_s);
}

void FillMigration(const migration::MigrationInfo& m, Migration::Builder b) {
  b.setPort(m.port);
  b.setDirection(m.direction);
  b.setPeer(m.peer);
  b.setPhase(m.phase);
  b.setStarted(m.started);
  b.setConnections(m.connections);
  b.setDeltaChanged(m.delta_changed);
  b.setDeltaRemoved(m.delta_removed);
  b.setPauseMicros(m.pause_us);
  b.setBulkMillis(m.bulk_ms);
  b.setError(m.error);
  b.setRounds(m.rounds);
  b.setRoundEntries(m.round_entries);
}

}  // namespace palisade::rpc
