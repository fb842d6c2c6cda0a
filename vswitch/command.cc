#include "vswitch/command.h"

#include <algorithm>
#include <vector>

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
    } else {
      return Status::Invalid("column " + std::to_string(column) + ": unknown option '" + opt +
                             "' (expected --vhost-user PATH, --uplink DEVARGS or --client)");
    }
  }
  if (!have_kind) return p.Error("expected --vhost-user PATH or --uplink DEVARGS");
  if (cmd->port.client && cmd->port.kind != PortKind::kVhostUser) {
    return Status::Invalid("--client applies to vhost-user ports only");
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

}  // namespace

bool Command::mutates() const {
  switch (verb) {
    case Verb::kPortAdd:
    case Verb::kPortDel:
    case Verb::kFilterAttach:
    case Verb::kFilterDetach:
    case Verb::kMacFlush:
    case Verb::kSetMacAgeing: return true;
    default: return false;
  }
}

const char* CommandHelp() {
  return "port add NAME --vhost-user PATH [--client]\n"
         "port add NAME --uplink DEVARGS\n"
         "port del NAME\n"
         "port list\n"
         "port stats [NAME]\n"
         "filter attach PORT --slot N --agent counting|none [--policy failClosed|failOpen]\n"
         "filter detach PORT --slot N\n"
         "filter list\n"
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
  if (Status s = p.Expect("a command (port, filter, worker, mac, set or help)", &noun); !s.ok()) {
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
  } else {
    return Status::Invalid("column 1: unknown command '" + noun +
                           "' (expected port, filter, worker, mac, set or help)");
  }
  if (Status s = p.End(); !s.ok()) return s;
  *out = std::move(cmd);
  return Status::Ok();
}

}  // namespace palisade
