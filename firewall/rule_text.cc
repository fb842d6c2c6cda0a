#include "firewall/rule_text.h"

#include <tuple>
#include <algorithm>
#include <map>
#include <set>

#include "slot/mac_addr.h"

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade::fw {

const char* ActionName(Action a) {
  switch (a) {
    case Action::kAccept: return "accept";
    case Action::kDrop: return "drop";
    case Action::kReject: return "reject";
  }
  return "?";
}

const char* DirName(RuleDir d) {
  switch (d) {
    case RuleDir::kIn: return "in";
    case RuleDir::kOut: return "out";
    case RuleDir::kInOut: return "inout";
  }
  return "?";
}

std::string ProtoName(int proto) {
  switch (proto) {
    case kAny: return "any";
    case 1: return "icmp";
    case 6: return "tcp";
    case 17: return "udp";
    case 58: return "ipv6-icmp";
    default: return std::to_string(proto);
  }
}

namespace {

struct Token {
  std::string text;  // empty at the end of input
  int line, column;
};

std::vector<Token> Tokenize(std::string_view s) {
  std::vector<Token> out;
  int line = 1, col = 1;
  size_t i = 0;
  auto advance = [&](size_t n) {
    for (size_t k = 0; k < n; k++, i++) {
      if (s[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
  };
  while (i < s.size()) {
    const char c = s[i];
    if (c == '#') {
      while (i < s.size() && s[i] != '\n') advance(1);
    } else if (isspace(static_cast<unsigned char>(c))) {
      advance(1);
    } else if (c == '{' || c == '}' || c == ',' || c == ';') {
      out.push_back(Token{std::string(1, c), line, col});
      advance(1);
    } else {
      size_t j = i;
      while (j < s.size() && !isspace(static_cast<unsigned char>(s[j])) && s[j] != '{' &&
             s[j] != '}' && s[j] != ',' && s[j] != ';' && s[j] != '#') {
        j++;
      }
      out.push_back(Token{std::string(s.substr(i, j - i)), line, col});
      advance(j - i);
    }
  }
  out.push_back(Token{"", line, col});
  return out;
}

bool IsName(const std::string& t) {
  if (t.empty() || t.size() > 128) return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

bool ParseUint(const std::string& t, uint64_t max, uint64_t* out) {
  if (t.empty() || t.size() > 10) return false;
  uint64_t v = 0;
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) {
    for (size_t i = 2; i < t.size(); i++) {
      const char c = static_cast<char>(tolower(t[i]));
      if (!isxdigit(static_cast<unsigned char>(c))) return false;
      v = v * 16 + static_cast<uint64_t>(isdigit(static_cast<unsigned char>(c)) ? c - '0' : c - 'a' + 10);
    }
  } else {
    for (char c : t) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<uint64_t>(c - '0');
    }
  }
  if (v > max) return false;
  *out = v;
  return true;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : toks_(Tokenize(text)) {}

  Status File(RuleFile* out) {
    RuleFile f;
    bool have_l3 = false;
    std::set<std::string> set_names;
    while (!AtEnd()) {
      const Token kw = Peek();
      if (kw.text == "ruleset") {
        Next();
        Token name;
        if (Status s = ExpectName("a ruleset name", &name); !s.ok()) return s;
        const bool l2 = name.text.size() > 3 && name.text.ends_with("_L2");
        const std::string base = l2 ? name.text.substr(0, name.text.size() - 3) : name.text;
        if (l2 && base.size() > 3 && base.ends_with("_L2")) {
          // Its L3 companion would be named ..._L2, which reads as an L2 ruleset.
          return ErrorAt(name, "an L2 ruleset is named after its L3 ruleset + _L2, and an L3 "
                               "ruleset's name cannot end in _L2: '" + name.text + "'");
        }
        if ((l2 && f.has_l2) || (!l2 && have_l3)) {
          return ErrorAt(name, "a second " + std::string(l2 ? "L2 " : "") + "ruleset in one file");
        }
        if ((have_l3 || f.has_l2) && base != f.name) {
          const std::string want = l2 ? f.name + "_L2" : f.name;
          const std::string have = l2 ? f.name : f.name + "_L2";
          return ErrorAt(name, "expected ruleset " + want + " to go with ruleset " + have +
                                   ", got '" + name.text + "'");
        }
        f.name = base;
        if (Status s = Expect("{"); !s.ok()) return s;
        Status s = l2 ? L2Rules(&f.l2_rules) : Rules(&f.rules);
        if (!s.ok()) return s;
        (l2 ? f.has_l2 : have_l3) = true;
      } else if (kw.text == "addrset") {
        Next();
        AddrSet set;
        Token name;
        if (Status s = ExpectName("an address set name", &name); !s.ok()) return s;
        if (!set_names.insert(name.text).second) {
          return ErrorAt(name, "address set '" + name.text + "' is defined twice");
        }
        set.name = name.text;
        if (Status s = AddrSetBody(&set); !s.ok()) return s;
        f.addrsets.push_back(std::move(set));
      } else {
        return Error("expected 'ruleset' or 'addrset'");
      }
    }
    *out = std::move(f);
    return Status::Ok();
  }

 private:
  const Token& Peek() const { return toks_[pos_]; }
  const Token& Next() { return toks_[pos_ < toks_.size() - 1 ? pos_++ : pos_]; }
  bool AtEnd() const { return Peek().text.empty(); }

  Status ErrorAt(const Token& t, const std::string& message) const {
    return Status::Invalid("line " + std::to_string(t.line) + ", column " +
                           std::to_string(t.column) + ": " + message);
  }
  Status Error(const std::string& expected) const {
    const Token& t = Peek();
    return ErrorAt(t, expected + (t.text.empty() ? ", got the end of the text" : ", got '" + t.text + "'"));
  }
  Status Expect(const std::string& word) {
    if (Peek().text != word) return Error("expected '" + word + "'");
    Next();
    return Status::Ok();
  }
  bool Accept(const std::string& word) {
    if (Peek().text != word) return false;
    Next();
    return true;
  }
  Status ExpectName(const std::string& what, Token* out) {
    if (!IsName(Peek().text)) return Error("expected " + what);
    *out = Next();
    return Status::Ok();
  }
  Status ExpectUint(const std::string& what, uint64_t max, uint64_t* out) {
    if (!ParseUint(Peek().text, max, out)) {
      return Error("expected " + what + " (0-" + std::to_string(max) + ")");
    }
    Next();
    return Status::Ok();
  }

  // rule ID [at POS] DIR ...: the common head of L3 and L2 rules.
  Status RuleHead(uint32_t* id, uint32_t* pos, RuleDir* dir) {
    uint64_t v;
    if (Status s = ExpectUint("a rule id", 0xffffffffu, &v); !s.ok()) return s;
    *id = static_cast<uint32_t>(v);
    *pos = 0;
    if (Accept("at")) {
      if (Status s = ExpectUint("a position", 0xffffffu, &v); !s.ok()) return s;
      if (v == 0) return ErrorAt(toks_[pos_ - 1], "positions start at 1");
      *pos = static_cast<uint32_t>(v);
    }
    const std::string& d = Peek().text;
    if (d == "in") *dir = RuleDir::kIn;
    else if (d == "out") *dir = RuleDir::kOut;
    else if (d == "inout") *dir = RuleDir::kInOut;
    else return Error("expected a direction (in, out, inout)");
    Next();
    return Status::Ok();
  }

  Status Tail(Action* action, bool* log) {
    const std::string& a = Peek().text;
    if (a == "accept") *action = Action::kAccept;
    else if (a == "drop") *action = Action::kDrop;
    else if (a == "reject") *action = Action::kReject;
    else return Error("expected an action (accept, drop, reject)");
    Next();
    if (Accept("with")) {
      if (Status s = Expect("log"); !s.ok()) return s;
      *log = true;
    }
    return Expect(";");
  }

  // Orders a ruleset by position: all rules carry `at POS` (unique) or none do.
  template <typename R>
  Status Order(std::vector<R>* rules, const std::vector<Token>& heads) {
    size_t with_pos = 0;
    std::map<uint32_t, size_t> seen;
    for (size_t i = 0; i < rules->size(); i++) {
      if ((*rules)[i].pos == 0) continue;
      with_pos++;
      if (!seen.emplace((*rules)[i].pos, i).second) {
        return ErrorAt(heads[i], "position " + std::to_string((*rules)[i].pos) + " is used twice");
      }
    }
    if (with_pos != 0 && with_pos != rules->size()) {
      for (size_t i = 0; i < rules->size(); i++) {
        if ((*rules)[i].pos == 0) return ErrorAt(heads[i], "give 'at POS' for every rule or for none");
      }
    }
    std::stable_sort(rules->begin(), rules->end(), [](const R& a, const R& b) { return a.pos < b.pos; });
    for (size_t i = 0; i < rules->size(); i++) (*rules)[i].pos = static_cast<uint32_t>(i + 1);
    return Status::Ok();
  }

  Status Rules(std::vector<Rule>* out) {
    std::vector<Rule> rules;
    std::vector<Token> heads;
    while (!Accept("}")) {
      heads.push_back(Peek());
      if (Status s = Expect("rule"); !s.ok()) return Error("expected 'rule' or '}'");
      Rule r;
      if (Status s = OneRule(&r); !s.ok()) return s;
      rules.push_back(std::move(r));
    }
    if (Status s = Order(&rules, heads); !s.ok()) return s;
    *out = std::move(rules);
    return Status::Ok();
  }

  Status Flags(Rule* r) {
    while (true) {
      if (Accept("stateless")) r->stateless = true;
      else if (Accept("strict")) r->strict = true;
      else return Status::Ok();
    }
  }

  Status OneRule(Rule* r) {
    if (Status s = RuleHead(&r->id, &r->pos, &r->dir); !s.ok()) return s;
    if (Accept("inet")) r->family = Family::kInet;
    else if (Accept("inet6")) r->family = Family::kInet6;
    if (Status s = Expect("protocol"); !s.ok()) return s;
    const std::string p = Peek().text;
    uint64_t v;
    if (p == "any") r->proto = kAny;
    else if (p == "tcp") r->proto = 6;
    else if (p == "udp") r->proto = 17;
    else if (p == "icmp") r->proto = 1;
    else if (p == "ipv6-icmp" || p == "icmp6") r->proto = 58;
    else if (ParseUint(p, 255, &v)) r->proto = static_cast<int>(v);
    else return Error("expected a protocol (tcp, udp, icmp, ipv6-icmp, any or 0-255)");
    const Token proto_tok = Next();
    if (r->proto == 58 && r->family == Family::kInet) return ErrorAt(proto_tok, "ipv6-icmp in an inet rule");
    if (r->proto == 1 && r->family == Family::kInet6) return ErrorAt(proto_tok, "icmp in an inet6 rule");
    if (Peek().text == "icmptype") {
      if (r->proto != 1 && r->proto != 58) return Error("icmptype needs protocol icmp or ipv6-icmp; expected 'from'");  // points at icmptype
      Next();
      if (Status s = ExpectUint("an ICMP type", 255, &v); !s.ok()) return s;
      r->icmp_type = static_cast<int>(v);
      if (Accept("icmpcode")) {
        if (Status s = ExpectUint("an ICMP code", 255, &v); !s.ok()) return s;
        r->icmp_code = static_cast<int>(v);
      }
    }
    if (Status s = Flags(r); !s.ok()) return s;
    if (Status s = Expect("from"); !s.ok()) return s;
    if (Status s = IpEndpoint(r, &r->src); !s.ok()) return s;
    if (Status s = Expect("to"); !s.ok()) return s;
    if (Status s = IpEndpoint(r, &r->dst); !s.ok()) return s;
    if (Status s = Flags(r); !s.ok()) return s;
    if (r->strict && r->proto != 6) return Error("'strict' applies to protocol tcp only; expected an action");
    return Tail(&r->action, &r->log);
  }

  Status IpEndpoint(const Rule* r, Endpoint* e) {
    if (Accept("any")) {
      e->kind = Endpoint::Kind::kAny;
    } else {
      e->negate = Accept("not");
      if (Accept("addrset")) {
        Token name;
        if (Status s = ExpectName("an address set name", &name); !s.ok()) return s;
        e->kind = Endpoint::Kind::kAddrSet;
        e->set = name.text;
      } else if (Accept("ip")) {
        std::string error;
        auto prefix = IpPrefix::Parse(Peek().text, &error);
        if (!prefix) return Error("expected ADDR[/LEN] (" + error + ")");
        const Token& t = Next();
        if ((r->family == Family::kInet && !prefix->is_v4()) ||
            (r->family == Family::kInet6 && prefix->addr.is_v4())) {
          return ErrorAt(t, "address family of '" + t.text + "' differs from the rule's");
        }
        e->kind = Endpoint::Kind::kIp;
        e->prefix = *prefix;
      } else {
        return Error(e->negate ? "expected 'addrset' or 'ip' after 'not'"
                               : "expected an endpoint (any, addrset NAME, not addrset NAME, ip ADDR, not ip ADDR)");
      }
    }
    if (Peek().text == "port") {
      const Token port_tok = Next();
      if (r->proto != 6 && r->proto != 17) return ErrorAt(port_tok, "ports need protocol tcp or udp");
      return Ports(&e->ports);
    }
    return Status::Ok();
  }

  Status OnePortRange(PortRange* out) {
    const std::string t = Peek().text;
    const size_t dash = t.find('-');
    uint64_t lo, hi;
    bool ok = dash == std::string::npos
                  ? ParseUint(t, 65535, &lo) && (hi = lo, true)
                  : ParseUint(t.substr(0, dash), 65535, &lo) && ParseUint(t.substr(dash + 1), 65535, &hi);
    if (!ok || lo > hi) return Error("expected a port or range (P or P-Q, 0-65535, P <= Q)");
    Next();
    *out = PortRange{static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
    return Status::Ok();
  }

  Status Ports(std::vector<PortRange>* out) {
    if (!Accept("{")) {
      PortRange r;
      if (Status s = OnePortRange(&r); !s.ok()) return s;
      out->push_back(r);
      return Status::Ok();
    }
    do {
      PortRange r;
      if (Status s = OnePortRange(&r); !s.ok()) return s;
      out->push_back(r);
    } while (Accept(","));
    return Expect("}");
  }

  Status L2Rules(std::vector<L2Rule>* out) {
    std::vector<L2Rule> rules;
    std::vector<Token> heads;
    while (!Accept("}")) {
      heads.push_back(Peek());
      if (Status s = Expect("rule"); !s.ok()) return Error("expected 'rule' or '}'");
      L2Rule r;
      if (Status s = RuleHead(&r.id, &r.pos, &r.dir); !s.ok()) return s;
      if (Status s = Expect("ethertype"); !s.ok()) return s;
      const std::string t = Peek().text;
      uint64_t v;
      if (t == "any") r.ethertype = kAny;
      else if (t == "ipv4") r.ethertype = 0x0800;
      else if (t == "ipv6") r.ethertype = 0x86dd;
      else if (t == "arp") r.ethertype = 0x0806;
      else if (ParseUint(t, 0xffff, &v) && v >= 0x600) r.ethertype = static_cast<int>(v);
      else return Error("expected an ethertype (any, ipv4, ipv6, arp or 0x0600-0xffff)");
      Next();
      if (Status s = Expect("from"); !s.ok()) return s;
      if (Status s = MacEnd(&r.src); !s.ok()) return s;
      if (Status s = Expect("to"); !s.ok()) return s;
      if (Status s = MacEnd(&r.dst); !s.ok()) return s;
      if (Status s = Tail(&r.action, &r.log); !s.ok()) return s;
      if (r.action == Action::kReject) return ErrorAt(heads.back(), "L2 rules cannot reject (accept or drop)");
      rules.push_back(std::move(r));
    }
    if (Status s = Order(&rules, heads); !s.ok()) return s;
    *out = std::move(rules);
    return Status::Ok();
  }

  Status MacEnd(MacEndpoint* e) {
    if (Accept("any")) return Status::Ok();
    e->negate = Accept("not");
    if (Accept("addrset")) {
      Token name;
      if (Status s = ExpectName("an address set name", &name); !s.ok()) return s;
      e->kind = MacEndpoint::Kind::kAddrSet;
      e->set = name.text;
      return Status::Ok();
    }
    if (Accept("mac")) {
      auto mac = MacParse(Peek().text);
      if (!mac) return Error("expected a MAC address (aa:bb:cc:dd:ee:ff)");
      Next();
      e->kind = MacEndpoint::Kind::kMac;
      e->mac = *mac;
      return Status::Ok();
    }
    return Error("expected an L2 endpoint (any, addrset NAME, not addrset NAME, mac MAC)");
  }

  Status AddrSetBody(AddrSet* set) {
    if (Status s = Expect("{"); !s.ok()) return s;
    while (!Accept("}")) {
      if (Accept("ip")) {
        std::string error;
        auto prefix = IpPrefix::Parse(Peek().text, &error);
        if (!prefix) return Error("expected ADDR[/LEN] (" + error + ")");
        Next();
        set->ips.push_back(*prefix);
      } else if (Accept("mac")) {
        auto mac = MacParse(Peek().text);
        if (!mac) return Error("expected a MAC address (aa:bb:cc:dd:ee:ff)");
        Next();
        set->macs.push_back(*mac);
      } else if (Accept("vm")) {
        Token name;
        if (Status s = ExpectName("a VM name", &name); !s.ok()) return s;
        set->vms.push_back(name.text);
      } else if (Accept("group")) {
        Token name;
        if (Status s = ExpectName("a group name", &name); !s.ok()) return s;
        set->groups.push_back(name.text);
      } else {
        return Error("expected 'ip', 'mac', 'vm', 'group' or '}'");
      }
      // Members end with ',' (the getaddrsets shape); the last one may omit it.
      if (!Accept(",") && Peek().text != "}") return Error("expected ',' or '}'");
    }
    return Status::Ok();
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
};

std::string PortsText(const std::vector<PortRange>& ports) {
  auto one = [](const PortRange& r) {
    return r.lo == r.hi ? std::to_string(r.lo) : std::to_string(r.lo) + "-" + std::to_string(r.hi);
  };
  if (ports.size() == 1) return " port " + one(ports[0]);
  std::string s = " port {";
  for (size_t i = 0; i < ports.size(); i++) s += (i ? ", " : "") + one(ports[i]);
  return s + "}";
}

std::string EndpointText(const Endpoint& e) {
  std::string s;
  switch (e.kind) {
    case Endpoint::Kind::kAny: s = "any"; break;
    case Endpoint::Kind::kAddrSet: s = std::string(e.negate ? "not " : "") + "addrset " + e.set; break;
    case Endpoint::Kind::kIp: s = std::string(e.negate ? "not " : "") + "ip " + e.prefix.ToString(); break;
  }
  if (!e.ports.empty()) s += PortsText(e.ports);
  return s;
}

std::string MacEndText(const MacEndpoint& e) {
  switch (e.kind) {
    case MacEndpoint::Kind::kAny: return "any";
    case MacEndpoint::Kind::kAddrSet: return std::string(e.negate ? "not " : "") + "addrset " + e.set;
    case MacEndpoint::Kind::kMac: return std::string(e.negate ? "not " : "") + "mac " + MacToString(e.mac);
  }
  return "";
}

std::string EthertypeText(int t) {
  switch (t) {
    case kAny: return "any";
    case 0x0800: return "ipv4";
    case 0x86dd: return "ipv6";
    case 0x0806: return "arp";
  }
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%04x", t);
  return buf;
}

}  // namespace

Status ParseRuleFile(std::string_view text, RuleFile* out) { return Parser(text).File(out); }

std::string PrintRules(const RuleFile& f) {
  std::string s = "ruleset " + f.name + " {\n  # Filter rules\n";
  for (const Rule& r : f.rules) {
    s += "  rule " + std::to_string(r.id) + " at " + std::to_string(r.pos) + " " + DirName(r.dir);
    if (r.family == Family::kInet) s += " inet";
    if (r.family == Family::kInet6) s += " inet6";
    s += " protocol " + ProtoName(r.proto);
    if (r.icmp_type != kAny) s += " icmptype " + std::to_string(r.icmp_type);
    if (r.icmp_code != kAny) s += " icmpcode " + std::to_string(r.icmp_code);
    if (r.stateless) s += " stateless";
    if (r.strict) s += " strict";
    s += " from " + EndpointText(r.src) + " to " + EndpointText(r.dst) + " " + ActionName(r.action);
    s += r.log ? " with log;\n" : ";\n";
  }
  s += "}\n";
  if (f.has_l2) {
    s += "\nruleset " + f.name + "_L2 {\n  # Filter rules\n";
    for (const L2Rule& r : f.l2_rules) {
      s += "  rule " + std::to_string(r.id) + " at " + std::to_string(r.pos) + " " + DirName(r.dir) +
           " ethertype " + EthertypeText(r.ethertype) + " from " + MacEndText(r.src) + " to " +
           MacEndText(r.dst) + " " + ActionName(r.action) + (r.log ? " with log;\n" : ";\n");
    }
    s += "}\n";
  }
  return s;
}

std::string PrintRuleFile(const RuleFile& file) {
  std::string s = PrintAddrSets(file.addrsets);
  if (!file.name.empty() || file.has_l2 || !file.rules.empty()) s += PrintRules(file);
  return s;
}

std::string PrintAddrSets(const std::vector<AddrSet>& sets, const MemberAddresses& resolve) {
  std::string s;
  for (const AddrSet& set : sets) {
    s += "addrset " + set.name + " {\n";
    for (const IpPrefix& p : set.ips) s += "ip " + p.ToString() + ",\n";
    for (uint64_t m : set.macs) s += "mac " + MacToString(m) + ",\n";
    for (auto [kind, word, names] : {std::tuple{Member::kVm, "vm ", &set.vms},
                                     std::tuple{Member::kGroup, "group ", &set.groups}}) {
      for (const std::string& name : *names) {
        s += word + name + ",";
        if (resolve) {
          std::vector<IpPrefix> addrs = resolve(kind, name);
          s += "  # now:";
          if (addrs.empty()) s += " no addresses";
          for (const IpPrefix& a : addrs) s += " " + a.ToString();
        }
        s += "\n";
      }
    }
    s += "}\n";
  }
  return s;
}

}  // namespace palisade::fw
