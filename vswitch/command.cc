#include "vswitch/command.h"

#include <algorithm>
#include <vector>

#include "firewall/timeouts.h"
#include "slot/mac_addr.h"

namespace palisade {
namespace {

struct Word {
  std::string text;
  size_t column;  // 1-based
};

std::vector<Word> Split(std::string_view line) {
  std::vector<Word> words;
  size_t i = 0;
  while (i < line.size()) {
    if (isspace(static_cast<unsigned char>(line[i]))) {
      i++;
      continue;
    }
    size_t start = i;
    while (i < line.size() && !isspace(static_cast<unsigned char>(line[i]))) i++;
    words.push_back(Word{std::string(line.substr(start, i - start)), start + 1});
  }
  return words;
}

class Parser {
 public:
  Parser(std::string_view line) : words_(Split(line)), end_column_(line.size() + 1) {}

  bool Done() const { return pos_ == words_.size(); }
  const Word* Peek() const { return Done() ? nullptr : &words_[pos_]; }
  size_t Column() const { return Done() ? end_column_ : words_[pos_].column; }

  Status Error(const std::string& message) const {
    return Status::Invalid("column " + std::to_string(Column()) + ": " + message);
  }
  Status Expect(const std::string& what, std::string* out) {
    if (Done()) return Error("expected " + what);
    *out = words_[pos_++].text;
    return Status::Ok();
  }
  Status ExpectNumber(const std::string& what, uint32_t lo, uint32_t hi, uint32_t* out) {
    if (Done()) return Error("expected " + what);
    const std::string& t = words_[pos_].text;
    if (t.empty() || t.size() > 9 || !std::all_of(t.begin(), t.end(), ::isdigit) ||
        std::stoul(t) < lo || std::stoul(t) > hi) {
      return Error("expected " + what + " (" + std::to_string(lo) + "-" + std::to_string(hi) +
                   "), got '" + t + "'");
    }
    *out = static_cast<uint32_t>(std::stoul(t));
    pos_++;
    return Status::Ok();
  }
  Status End() const {
    if (!Done()) return Error("unexpected '" + words_[pos_].text + "'");
    return Status::Ok();
  }

 private:
  std::vector<Word> words_;
  size_t end_column_;
  size_t pos_ = 0;
};

Status ParsePortAdd(Parser& p, Command* cmd) {
  cmd->verb = Command::Verb::kPortAdd;
  if (Status s = p.Expect("a port name", &cmd->port.name); !s.ok()) return s;
  bool have_kind = false;
  while (!p.Done()) {
    std::string opt;
    size_t column = p.Column();
    (void)p.Expect("", &opt);
    if (opt == "--vhost-user" || opt == "--uplink") {
      if (have_kind) return Status::Invalid("column " + std::to_string(column) +
                                            ": give only one of --vhost-user and --uplink");
      have_kind = true;
      cmd->port.kind = opt == "--uplink" ? PortKind::kUplink : PortKind::kVhostUser;
      std::string* arg = opt == "--uplink" ? &cmd->port.devargs : &cmd->port.path;
      if (Status s = p.Expect(opt == "--uplink" ? "devargs after --uplink"
                                                : "a socket path after --vhost-user",
                              arg);
          !s.ok()) {
        return s;
      }
    } else if (opt == "--client") {
      cmd->port.client = true;
    } else if (opt == "--vm") {
      if (Status s = p.Expect("a VM name after --vm", &cmd->port.vm); !s.ok()) return s;
    } else if (opt == "--mac") {
      std::string mac;
      const size_t mc = p.Column();
      if (Status s = p.Expect("a MAC address after --mac", &mac); !s.ok()) return s;
      auto parsed = MacParse(mac);
      if (!parsed || MacIsMulticast(*parsed) || *parsed == 0) {
        return Status::Invalid("column " + std::to_string(mc) + ": '" + mac + "' is not a unicast MAC address");
      }
      cmd->port.mac = *parsed;
    } else if (opt == "--ip") {
      std::string ip;
      const size_t ic = p.Column();
      if (Status s = p.Expect("an address after --ip", &ip); !s.ok()) return s;
      auto parsed = fw::IpAddr::Parse(ip);
      if (!parsed) return Status::Invalid("column " + std::to_string(ic) + ": '" + ip + "' is not an IPv4 or IPv6 address");
      cmd->port.ips.push_back(*parsed);
    } else if (opt == "--allow") {
      std::string list;
      const size_t ac = p.Column();
      if (Status s = p.Expect("router, dhcp-server or vlan after --allow", &list); !s.ok()) return s;
      if (Status s = ParsePortAllow(list, &cmd->port.allow); !s.ok()) {
        return Status::Invalid("column " + std::to_string(ac) + ": " + s.message());
      }
    } else {
      return Status::Invalid("column " + std::to_string(column) + ": unknown option '" + opt +
                             "' (expected --vhost-user PATH, --uplink DEVARGS, --client, --vm, --mac, --ip or --allow)");
    }
  }
  if (!have_kind) return p.Error("expected --vhost-user PATH or --uplink DEVARGS");
  if ((cmd->port.client || !cmd->port.vm.empty() || cmd->port.mac || !cmd->port.ips.empty() ||
       cmd->port.allow.any()) &&
      cmd->port.kind != PortKind::kVhostUser) {
    return Status::Invalid("--client, --vm, --mac, --ip and --allow apply to vhost-user ports only");
  }
  return Status::Ok();
}

Status ParseFilter(Parser& p, Command* cmd, bool attach) {
  cmd->verb = attach ? Command::Verb::kFilterAttach : Command::Verb::kFilterDetach;
  if (Status s = p.Expect("a port name", &cmd->target); !s.ok()) return s;
  bool have_slot = false, have_agent = false;
  while (!p.Done()) {
    std::string opt;
    size_t column = p.Column();
    (void)p.Expect("", &opt);
    if (opt == "--slot") {
      uint32_t slot;
      if (Status s = p.ExpectNumber("a slot number", 1, 15, &slot); !s.ok()) return s;
      cmd->filter.slot = static_cast<uint8_t>(slot);
      have_slot = true;
    } else if (attach && opt == "--agent") {
      if (Status s = p.Expect("an agent name (counting, none)", &cmd->filter.agent); !s.ok()) return s;
      have_agent = true;
    } else if (attach && opt == "--policy") {
      std::string policy;
      size_t pc = p.Column();
      if (Status s = p.Expect("failClosed or failOpen", &policy); !s.ok()) return s;
      if (policy == "failClosed") cmd->filter.policy = FailurePolicy::kFailClosed;
      else if (policy == "failOpen") cmd->filter.policy = FailurePolicy::kFailOpen;
      else return Status::Invalid("column " + std::to_string(pc) + ": expected failClosed or failOpen, got '" + policy + "'");
    } else {
      return Status::Invalid("column " + std::to_string(column) + ": unknown option '" + opt + "'");
    }
  }
  if (!have_slot) return p.Error("expected --slot N");
  if (attach && !have_agent) return p.Error("expected --agent NAME");
  return Status::Ok();
}


Status ParseSelectors(Parser& p, Command* cmd, bool allow_count) {
  fw::FlowSelector& sel = cmd->selector;
  while (!p.Done()) {
    std::string opt;
    const size_t column = p.Column();
    (void)p.Expect("", &opt);
    auto bad = [&](const std::string& m) { return Status::Invalid("column " + std::to_string(column) + ": " + m); };
    if (opt == "--count" && allow_count) {
      cmd->count = true;
    } else if (opt == "--src" || opt == "--dst") {
      std::string text, error;
      const size_t ac = p.Column();
      if (Status s = p.Expect("ADDR[/LEN] after " + opt, &text); !s.ok()) return s;
      auto prefix = fw::IpPrefix::Parse(text, &error);
      if (!prefix) return Status::Invalid("column " + std::to_string(ac) + ": " + error);
      (opt == "--src" ? sel.src : sel.dst) = *prefix;
      (opt == "--src" ? sel.has_src : sel.has_dst) = true;
    } else if (opt == "--proto") {
      std::string proto;
      const size_t pc = p.Column();
      if (Status s = p.Expect("a protocol after --proto", &proto); !s.ok()) return s;
      if (proto == "tcp") sel.proto = 6;
      else if (proto == "udp") sel.proto = 17;
      else if (proto == "icmp") sel.proto = 1;
      else if (proto == "ipv6-icmp") sel.proto = 58;
      else if (!proto.empty() && proto.size() <= 3 && std::all_of(proto.begin(), proto.end(), ::isdigit) && std::stoi(proto) < 256) sel.proto = std::stoi(proto);
      else return Status::Invalid("column " + std::to_string(pc) + ": expected tcp, udp, icmp, ipv6-icmp or 0-255, got '" + proto + "'");
    } else if (opt == "--sport" || opt == "--dport") {
      uint32_t port;
      if (Status s = p.ExpectNumber("a port", 0, 65535, &port); !s.ok()) return s;
      (opt == "--sport" ? sel.sport : sel.dport) = static_cast<int>(port);
    } else {
      return bad("unknown option '" + opt + "' (expected" + (allow_count ? " --count," : "") +
                 " --src, --dst, --proto, --sport or --dport)");
    }
  }
  return Status::Ok();
}

Status ParseFirewallSet(Parser& p, Command* cmd) {
  while (!p.Done()) {
    std::string opt;
    const size_t column = p.Column();
    (void)p.Expect("", &opt);
    if (opt == "--limit") {
      uint32_t n;
      if (Status s = p.ExpectNumber("a connection limit", 1, 16000000, &n); !s.ok()) return s;
      cmd->limit = n;
    } else if (opt == "--recheck") {
      std::string v;
      const size_t vc = p.Column();
      if (Status s = p.Expect("on or off", &v); !s.ok()) return s;
      if (v != "on" && v != "off") return Status::Invalid("column " + std::to_string(vc) + ": expected on or off, got '" + v + "'");
      cmd->recheck = v == "on";
    } else if (opt == "--timeout") {
      std::string v;
      const size_t vc = p.Column();
      if (Status s = p.Expect("NAME=SECONDS", &v); !s.ok()) return s;
      const size_t eq = v.find('=');
      fw::Timeouts probe;
      const std::string secs = eq == std::string::npos ? "" : v.substr(eq + 1);
      if (eq == std::string::npos || secs.empty() || secs.size() > 7 ||
          !std::all_of(secs.begin(), secs.end(), ::isdigit)) {
        return Status::Invalid("column " + std::to_string(vc) + ": expected NAME=SECONDS, got '" + v + "'");
      }
      if (Status s = probe.Set(v.substr(0, eq), static_cast<uint32_t>(std::stoul(secs))); !s.ok()) {
        return Status::Invalid("column " + std::to_string(vc) + ": " + s.message());
      }
      cmd->timeouts.emplace_back(v.substr(0, eq), static_cast<uint32_t>(std::stoul(secs)));
    } else {
      return Status::Invalid("column " + std::to_string(column) + ": unknown option '" + opt +
                             "' (expected --limit, --recheck or --timeout)");
    }
  }
  if (!cmd->limit && !cmd->recheck && cmd->timeouts.empty()) {
    return p.Error("expected --limit N, --recheck on|off or --timeout NAME=SECONDS");
  }
  return Status::Ok();
}

}  // namespace

bool Command::mutates() const {
  switch (verb) {
    case Verb::kPortAdd:
    case Verb::kPortDel:
    case Verb::kFilterAttach:
    case Verb::kFilterDetach:
    case Verb::kMacFlush:
    case Verb::kSetMacAgeing:
    case Verb::kRulesLoad:
    case Verb::kAddrSetSet:
    case Verb::kFlowsFlush:
    case Verb::kFirewallSet: return true;
    default: return false;
  }
}

const char* CommandHelp() {
  return "port add NAME --vhost-user PATH [--client] [--vm VM] [--mac MAC] [--ip ADDR]...\n"
         "         [--allow router,dhcp-server,vlan]\n"
         "port add NAME --uplink DEVARGS\n"
         "port del NAME\n"
         "port list\n"
         "port stats [NAME]\n"
         "filter attach PORT --slot N --agent sfw|swsec|counting|none [--policy failClosed|failOpen]\n"
         "filter detach PORT --slot N\n"
         "filter list\n"
         "rules load FILTER PATH\n"
         "rules show FILTER [--stats]\n"
         "addrsets show FILTER\n"
         "addrset set FILTER NAME [ADDR[/LEN]]...\n"
         "flows show FILTER [--count] [--src ADDR[/LEN]] [--dst ADDR[/LEN]] [--proto P] [--sport N] [--dport N]\n"
         "flows flush FILTER [--src ADDR[/LEN]] [--dst ADDR[/LEN]] [--proto P] [--sport N] [--dport N]\n"
         "firewall show FILTER\n"
         "firewall set FILTER [--limit N] [--recheck on|off] [--timeout NAME=SECONDS]...\n"
         "worker stats\n"
         "mac show\n"
         "mac flush\n"
         "set mac-ageing SECONDS\n"
         "help\n";
}

Status ParseCommand(std::string_view line, Command* out) {
  Parser p(line);
  Command cmd;
  std::string noun, verb;
  if (Status s = p.Expect("a command (port, filter, rules, addrsets, addrset, flows, firewall, worker, mac, set or help)", &noun); !s.ok()) {
    return s;
  }
  if (noun == "help") {
    cmd.verb = Command::Verb::kHelp;
  } else if (noun == "port") {
    size_t column = p.Column();
    if (Status s = p.Expect("add, del, list or stats", &verb); !s.ok()) return s;
    if (verb == "add") {
      if (Status s = ParsePortAdd(p, &cmd); !s.ok()) return s;
    } else if (verb == "del") {
      cmd.verb = Command::Verb::kPortDel;
      if (Status s = p.Expect("a port name", &cmd.target); !s.ok()) return s;
    } else if (verb == "list") {
      cmd.verb = Command::Verb::kPortList;
    } else if (verb == "stats") {
      cmd.verb = Command::Verb::kPortStats;
      if (!p.Done()) (void)p.Expect("", &cmd.target);
    } else {
      return Status::Invalid("column " + std::to_string(column) + ": expected add, del, list or stats, got '" + verb + "'");
    }
  } else if (noun == "filter") {
    size_t column = p.Column();
    if (Status s = p.Expect("attach, detach or list", &verb); !s.ok()) return s;
    if (verb == "attach" || verb == "detach") {
      if (Status s = ParseFilter(p, &cmd, verb == "attach"); !s.ok()) return s;
    } else if (verb == "list") {
      cmd.verb = Command::Verb::kFilterList;
    } else {
      return Status::Invalid("column " + std::to_string(column) + ": expected attach, detach or list, got '" + verb + "'");
    }
  } else if (noun == "worker") {
    size_t column = p.Column();
    if (Status s = p.Expect("stats", &verb); !s.ok()) return s;
    if (verb != "stats") return Status::Invalid("column " + std::to_string(column) + ": expected stats, got '" + verb + "'");
    cmd.verb = Command::Verb::kWorkerStats;
  } else if (noun == "mac") {
    size_t column = p.Column();
    if (Status s = p.Expect("show or flush", &verb); !s.ok()) return s;
    if (verb == "show") cmd.verb = Command::Verb::kMacShow;
    else if (verb == "flush") cmd.verb = Command::Verb::kMacFlush;
    else return Status::Invalid("column " + std::to_string(column) + ": expected show or flush, got '" + verb + "'");
  } else if (noun == "set") {
    size_t column = p.Column();
    if (Status s = p.Expect("mac-ageing", &verb); !s.ok()) return s;
    if (verb != "mac-ageing") return Status::Invalid("column " + std::to_string(column) + ": expected mac-ageing, got '" + verb + "'");
    cmd.verb = Command::Verb::kSetMacAgeing;
    if (Status s = p.ExpectNumber("seconds", 1, 1000000, &cmd.value); !s.ok()) return s;
  } else if (noun == "rules") {
    const size_t column = p.Column();
    if (Status s = p.Expect("load or show", &verb); !s.ok()) return s;
    if (verb != "load" && verb != "show") return Status::Invalid("column " + std::to_string(column) + ": expected load or show, got '" + verb + "'");
    if (Status s = p.Expect("a filter or port name", &cmd.target); !s.ok()) return s;
    if (verb == "load") {
      cmd.verb = Command::Verb::kRulesLoad;
      if (Status s = p.Expect("the path of a rule file", &cmd.path); !s.ok()) return s;
    } else {
      cmd.verb = Command::Verb::kRulesShow;
      if (p.Peek() && p.Peek()->text == "--stats") {
        cmd.stats = true;
        (void)p.Expect("", &verb);
      }
    }
  } else if (noun == "addrsets") {
    const size_t column = p.Column();
    if (Status s = p.Expect("show", &verb); !s.ok()) return s;
    if (verb != "show") return Status::Invalid("column " + std::to_string(column) + ": expected show, got '" + verb + "'");
    cmd.verb = Command::Verb::kAddrSetsShow;
    if (Status s = p.Expect("a filter or port name", &cmd.target); !s.ok()) return s;
  } else if (noun == "addrset") {
    const size_t column = p.Column();
    if (Status s = p.Expect("set", &verb); !s.ok()) return s;
    if (verb != "set") return Status::Invalid("column " + std::to_string(column) + ": expected set, got '" + verb + "'");
    cmd.verb = Command::Verb::kAddrSetSet;
    if (Status s = p.Expect("a filter or port name", &cmd.target); !s.ok()) return s;
    if (Status s = p.Expect("an address set name", &cmd.addrset.name); !s.ok()) return s;
    while (!p.Done()) {
      std::string text, error;
      const size_t ac = p.Column();
      (void)p.Expect("", &text);
      auto prefix = fw::IpPrefix::Parse(text, &error);
      if (!prefix) return Status::Invalid("column " + std::to_string(ac) + ": " + error);
      cmd.addrset.ips.push_back(*prefix);
    }
  } else if (noun == "flows") {
    const size_t column = p.Column();
    if (Status s = p.Expect("show or flush", &verb); !s.ok()) return s;
    if (verb != "show" && verb != "flush") return Status::Invalid("column " + std::to_string(column) + ": expected show or flush, got '" + verb + "'");
    cmd.verb = verb == "show" ? Command::Verb::kFlowsShow : Command::Verb::kFlowsFlush;
    if (Status s = p.Expect("a filter or port name", &cmd.target); !s.ok()) return s;
    if (Status s = ParseSelectors(p, &cmd, verb == "show"); !s.ok()) return s;
  } else if (noun == "firewall") {
    const size_t column = p.Column();
    if (Status s = p.Expect("show or set", &verb); !s.ok()) return s;
    if (verb != "show" && verb != "set") return Status::Invalid("column " + std::to_string(column) + ": expected show or set, got '" + verb + "'");
    if (Status s = p.Expect("a filter or port name", &cmd.target); !s.ok()) return s;
    if (verb == "show") {
      cmd.verb = Command::Verb::kFirewallShow;
    } else {
      cmd.verb = Command::Verb::kFirewallSet;
      if (Status s = ParseFirewallSet(p, &cmd); !s.ok()) return s;
    }
  } else {
    return Status::Invalid("column 1: unknown command '" + noun +
                           "' (expected port, filter, rules, addrsets, addrset, flows, firewall, worker, mac, set or help)");
  }
  if (Status s = p.End(); !s.ok()) return s;
  *out = std::move(cmd);
  return Status::Ok();
}

}  // namespace palisade
