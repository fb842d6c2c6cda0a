#include "vswitch/control.h"

#include <fstream>
#include <sstream>

#include "firewall/rule_text.h"

#include "common/json_writer.h"
#include "slot/mac_addr.h"

namespace palisade {
namespace {

std::string ErrorReply(const Status& s) {
  JsonWriter w;
  w.BeginObject().Field("ok", false).Field("error", s.message()).EndObject();
  return w.str();
}

void WriteTotals(JsonWriter& w, const PortTotals& t) {
  w.Field("rx_packets", t.rx_packets).Field("rx_bytes", t.rx_bytes);
  w.Field("tx_packets", t.tx_packets).Field("tx_bytes", t.tx_bytes);
  w.Field("consumed", t.consumed).Field("dropped", t.total_drops());
  w.Key("drops").BeginObject();
  for (size_t r = 1; r < static_cast<size_t>(DropReason::kCount); r++) {
    w.Field(DropReasonName(static_cast<DropReason>(r)), t.drops[r]);
  }
  w.EndObject();
}

void WritePort(JsonWriter& w, const PortInfo& p, bool stats) {
  w.BeginObject().Field("name", p.name).Field("index", uint64_t{p.index});
  if (p.spec.kind == PortKind::kVhostUser) {
    w.Field("type", "vhost-user").Field("socket", p.spec.path);
    w.Field("mode", p.spec.client ? "client" : "server");
  } else {
    w.Field("type", "uplink").Field("devargs", p.spec.devargs);
  }
  w.Field("link", p.link_up).Field("queue_pairs", uint64_t{p.queue_pairs});
  w.Field("worker", uint64_t{p.worker});
  if (stats) WriteTotals(w, p.totals);
  w.EndObject();
}

void WriteSlots(JsonWriter& w, const PortInfo& p) {
  w.BeginObject().Field("port", p.name).Key("slots").BeginArray();
  for (const SlotInfo& s : p.slots) {
    w.BeginObject().Field("slot", uint64_t{s.slot}).Field("name", s.name);
    w.Field("agent", s.agent).Field("state", s.agent.empty() ? "empty" : "IOChain Attached");
    w.Field("failurePolicy", FailurePolicyName(s.policy));
    if (s.agent == "palisade-count") {  // the counting probe's totals
      w.Field("out_packets", s.counts.packets[0]).Field("out_bytes", s.counts.bytes[0]);
      w.Field("in_packets", s.counts.packets[1]).Field("in_bytes", s.counts.bytes[1]);
    }
    w.EndObject();
  }
  w.EndArray().EndObject();
}

}  // namespace

std::string Execute(Switch& sw, const Command& cmd) {
  using Verb = Command::Verb;
  Status status;
  JsonWriter w;
  w.BeginObject().Field("ok", true);
  switch (cmd.verb) {
    case Verb::kHelp: w.Field("help", CommandHelp()); break;
    case Verb::kPortAdd: status = sw.AddPort(cmd.port); break;
    case Verb::kPortDel: status = sw.RemovePort(cmd.target); break;
    case Verb::kPortList:
    case Verb::kPortStats: {
      std::vector<PortInfo> ports;
      if (cmd.target.empty()) {
        ports = sw.Ports();
      } else {
        ports.resize(1);
        status = sw.GetPort(cmd.target, &ports[0]);
      }
      w.Key("ports").BeginArray();
      for (const PortInfo& p : ports) WritePort(w, p, cmd.verb == Verb::kPortStats);
      w.EndArray();
      break;
    }
    case Verb::kFilterAttach: status = sw.AttachFilter(cmd.target, cmd.filter); break;
    case Verb::kFilterDetach: status = sw.DetachFilter(cmd.target, cmd.filter.slot); break;
    case Verb::kFilterList:
      w.Key("ports").BeginArray();
      for (const PortInfo& p : sw.Ports()) WriteSlots(w, p);
      w.EndArray();
      break;
    case Verb::kWorkerStats: {
      w.Key("workers").BeginArray();
      uint16_t id = 0;
      for (const WorkerStats& s : sw.Workers()) {
        w.BeginObject().Field("worker", uint64_t{id++});
        w.Field("busy_cycles", s.busy_cycles).Field("idle_cycles", s.idle_cycles).Field("control_cycles", s.control_cycles);
        w.Field("rx_packets", s.rx_packets).Field("tx_packets", s.tx_packets);
        w.Field("loops", s.loops).Field("handoff_packets", s.handoff_packets).Key("cycles_per_packet").Double(s.cycles_per_packet());
        w.EndObject();
      }
      w.EndArray();
      break;
    }
    case Verb::kMacShow:
      w.Field("ageing_s", uint64_t{sw.mac_ageing_s()});
      w.Field("learn_events_lost", sw.learn_events_lost()).Key("macs").BeginArray();
      for (const MacInfo& m : sw.Macs()) {
        w.BeginObject().Field("mac", MacToString(m.mac)).Field("port", m.port);
        w.Field("age_s", uint64_t{m.age_s}).EndObject();
      }
      w.EndArray();
      break;
    case Verb::kMacFlush: w.Field("flushed", uint64_t{sw.FlushMacs()}); break;
    case Verb::kSetMacAgeing: status = sw.SetMacAgeing(cmd.value); break;
    case Verb::kRulesLoad: {
      std::ifstream in(cmd.path);
      if (!in) {
        status = Status::NotFound(cmd.path + ": cannot open the rule file");
        break;
      }
      std::stringstream text;
      text << in.rdbuf();
      status = sw.LoadRules(cmd.target, text.str());
      if (!status.ok()) status = Status::Invalid(cmd.path + ": " + status.message());
      break;
    }
    case Verb::kRulesShow: {
      std::string text;
      std::vector<fw::RuleStats> stats;
      std::vector<fw::Rule> rules;
      status = sw.GetRules(cmd.target, &text, &stats, &rules);
      if (!status.ok()) break;
      w.Field("text", text);
      if (cmd.stats) {
        w.Key("stats").BeginArray();
        for (size_t i = 0; i < stats.size() && i < rules.size(); i++) {
          w.BeginObject().Field("rule", uint64_t{rules[i].id}).Field("pos", uint64_t{rules[i].pos});
          w.Field("evals", stats[i].evals).Field("in_pkts", stats[i].pkts[0]);
          w.Field("out_pkts", stats[i].pkts[1]).Field("in_bytes", stats[i].bytes[0]);
          w.Field("out_bytes", stats[i].bytes[1]).EndObject();
        }
        w.EndArray();
      }
      break;
    }
    case Verb::kAddrSetsShow: {
      std::string text;
      status = sw.GetAddrSets(cmd.target, &text);
      w.Field("text", text);
      break;
    }
    case Verb::kAddrSetSet: status = sw.SetAddrSet(cmd.target, cmd.addrset); break;
    case Verb::kFlowsShow: {
      std::vector<fw::FlowInfo> flows;
      status = sw.GetFlows(cmd.target, cmd.selector, &flows);
      if (!status.ok()) break;
      w.Field("count", uint64_t{flows.size()});
      if (cmd.count) break;
      w.Key("flows").BeginArray();
      for (const fw::FlowInfo& f : flows) {
        char id[20];
        std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(f.flow_id));
        w.BeginObject().Field("flow_id", id).Field("state", fw::ConnStateName(f.state));
        w.Field("proto", fw::ProtoName(f.orig.proto)).Field("ethertype", f.v6 ? "86dd" : "0800");
        w.Field("direction", uint64_t{f.orig_in ? 0u : 1u}).Field("rule", uint64_t{f.rule_id});
        w.Field("src", f.orig.src.ToString()).Field("sport", uint64_t{f.orig.sport});
        w.Field("dst", f.orig.dst.ToString()).Field("dport", uint64_t{f.orig.dport});
        w.Field("orig_pkts", f.pkts[0]).Field("reply_pkts", f.pkts[1]);
        w.Field("orig_bytes", f.bytes[0]).Field("reply_bytes", f.bytes[1]);
        w.Field("expires_in_s", uint64_t{f.expires_in_s}).EndObject();
      }
      w.EndArray();
      break;
    }
    case Verb::kFlowsFlush: {
      size_t flushed = 0;
      status = sw.FlushFlows(cmd.target, cmd.selector, &flushed);
      w.Field("flushed", uint64_t{flushed});
      break;
    }
    case Verb::kFirewallShow: {
      Switch::FirewallStatus f;
      status = sw.GetFirewall(cmd.target, &f);
      w.Field("limit", uint64_t{f.options.conn_limit}).Field("recheck", f.options.recheck);
      w.Field("flows", uint64_t{f.flows}).Field("table_bytes", uint64_t{f.table_bytes});
      w.Field("rules", uint64_t{f.rules}).Field("classifier", f.classifier);
      w.Field("classifier_bytes", uint64_t{f.classifier_bytes});
      w.Field("timeouts", f.options.timeouts.ToString());
      const fw::PacketLog& log = sw.packet_log();
      w.Key("packet_log").BeginObject().Field("written", log.written());
      w.Field("suppressed", log.suppressed()).Field("lost", log.lost()).EndObject();
      break;
    }
    case Verb::kFirewallSet:
      status = sw.UpdateFirewallOptions(cmd.target, cmd.limit, cmd.recheck, cmd.timeouts);
      break;
  }
  if (!status.ok()) return ErrorReply(status);
  w.EndObject();
  return w.str();
}

std::string ExecuteLine(Switch& sw, std::string_view line) {
  Command cmd;
  if (Status s = ParseCommand(line, &cmd); !s.ok()) return ErrorReply(s);
  if (cmd.verb == Command::Verb::kRulesLoad) {
    // A path the root daemon would open for whoever holds a connection: refused. The text comes
    // in setRules (palisadectl's exec rules load and setrules read the file themselves).
    return ErrorReply(Status::Invalid(
        "rules load names a file only in the config file; over the control plane send the rules' "
        "text (palisadectl setrules -f FILTER FILE, or palisadectl exec rules load FILTER FILE, "
        "which reads FILE itself)"));
  }
  return Execute(sw, cmd);
}

Status LoadConfig(const std::string& path, std::vector<Command>* out) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(path + ": cannot open the config file");
  std::vector<Command> cmds;
  std::string line;
  for (int n = 1; std::getline(in, line); n++) {
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    Command cmd;
    Status s = ParseCommand(line, &cmd);
    if (s.ok() && !cmd.mutates()) {
      s = Status::Invalid("column " + std::to_string(first + 1) +
                          ": only commands that configure the switch belong in a config file");
    }
    if (!s.ok()) {
      // "column C: msg" -> "FILE:LINE:C: msg"
      std::string m = s.message();
      if (m.rfind("column ", 0) == 0) m = m.substr(7);
      else m = "1: " + m;
      return Status::Invalid(path + ":" + std::to_string(n) + ":" + m);
    }
    cmds.push_back(std::move(cmd));
  }
  *out = std::move(cmds);
  return Status::Ok();
}

}  // namespace palisade
