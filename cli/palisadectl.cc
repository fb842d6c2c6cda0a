// palisadectl: the operator's client of palisaded's Cap'n Proto control plane. A thin client:
// each command is one or a few RPC calls, printed in the shapes of ../shared/FORMATS.md, or as
// JSON with --json (cli/json_output.h: numbers as numbers, ids as strings; `help json` lists
// each command's keys and types).
//
// Exit status: 0 done, 1 the switch refused or failed (its message is printed), 2 usage error.
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include "cli/cluster_commands.h"
#include "cli/input.h"
#include "cli/json_output.h"
#include "cli/pcapng.h"
#include "cli/views.h"
#include "cluster/intent.capnp.h"
#include "common/json_writer.h"
#include "rpc/palisade.capnp.h"

namespace palisade::cli {
namespace {

constexpr int kOk = 0, kSwitchError = 1, kUsage = 2;

volatile std::sig_atomic_t stop_capture = 0;  // SIGINT or SIGTERM during `capture`

// The switch's own message in an error it raised, without the prefixes capnp adds.
std::string SwitchError(const kj::Exception& e) {
  std::string d = e.getDescription().cStr();
  for (const char* prefix : {"remote exception: ", "expected s.ok(); "}) {
    if (d.rfind(prefix, 0) == 0) d = d.substr(std::strlen(prefix));
  }
  return d;
}

struct UsageError {
  std::string message;
};

struct ConnectError {
  std::string message;
};

const char* kMainHelp =
    "Usage: palisadectl [-s|--socket PATH] [--json] COMMAND [ARGS]\n"
    "       palisadectl -c|--connect HOST:PORT --tls-cert FILE --tls-key FILE --tls-ca FILE ...\n"
    "Controls a palisaded switch through its RPC socket (default /run/palisade/default.sock), or\n"
    "over TLS with a client certificate the switch's CA signed.\n"
    "\n"
    "Commands (each takes --help):\n"
    "  summarize-dvfilter                 the filter slots of every port\n"
    "  getrules -f FILTER [-s]            a filter's rule tables [with per-rule statistics]\n"
    "  setrules -f FILTER FILE|-          validate and replace them atomically\n"
    "  getaddrsets -f FILTER              its address sets, with what VM members resolve to\n"
    "  setaddrset -f FILTER NAME [ADDR[/LEN]]...   set a static address set\n"
    "  getflows -f FILTER [-n] [-s ADDR[/LEN]] [-d ADDR[/LEN]] [-p PROTO] [-x PORT] [-y PORT] [-F]\n"
    "  firewall show|set -f FILTER ...    connection limit, re-check, timeouts\n"
    "  port add|del|list|show|stats ...   ports (vhost-user, uplinks) and their counters\n"
    "  filter attach|detach PORT --slot N ...\n"
    "  worker stats                       datapath workers, cycles per packet\n"
    "  mac show                           the bridge's learned MACs\n"
    "  connection list                    who is connected to this switch's control plane\n"
    "  log tail [-n N]                    the packet log's last lines (default 20)\n"
    "  exec LINE...                       run one line of the config-file language; JSON reply\n"
    "  migrate PORT --to SOCKET|HOST:PORT [--socket PATH], migrate list|cancel   live migration\n"
    "  capture PORT --point pre|post[:SLOT] [--dir in|out|both] [-c N] [--snaplen N] -w FILE|-\n"
    "                                     a port's packets before/after its filters, as pcapng\n"
    "  cluster status                     this switch's connection to the cluster's etcd\n"
    "  help [json] [COMMAND]              a command's help; with json, what --json prints\n"
    "\n"
    "--json: counters and other quantities are JSON numbers, exact decimal integers (jq and\n"
    "JavaScript read them as doubles: exact up to 2^53, rounded past it); ids are strings (a\n"
    "flow's flowId in 16 hex digits, as getflows prints it). Each command's keys and types:\n"
    "palisadectl help json.\n"
    "\n"
    "Cluster intent, straight to etcd: palisadectl --etcd ENDPOINTS policy|group|vm ...\n"
    "  (policy apply|get|list|delete, group set|get|list|delete, vm label|list; see\n"
    "  palisadectl policy --help)\n"
    "\n"
    "FILTER is a filter name from summarize-dvfilter (nic-...-palisade-sfw.2) or a port name.\n"
    "Exit status: 0 done, 1 the switch refused or failed, 2 usage error.\n";

const std::map<std::string, const char*> kHelp = {
    {"summarize-dvfilter",
     "Usage: palisadectl summarize-dvfilter\n"
     "One block per port: 'world INDEX vmm0:VM', ' port INDEX NAME', then each filter slot\n"
     "(highest first) with name (what -f takes), agentName, state, vmState, failurePolicy\n"
     "(failClosed: drop while the filter cannot decide; failOpen: pass), slowPathID, source.\n"},
    {"getrules",
     "Usage: palisadectl getrules -f FILTER [-s]\n"
     "Prints the ruleset and its _L2 companion; what it prints loads back with setrules.\n"
     "-s adds per rule: 'rule ID: N evals, in P out Q pkts, in B out C bytes' (evals: first\n"
     "packets classified to the rule; in: toward the VM).\n"},
    {"setrules",
     "Usage: palisadectl setrules -f FILTER FILE|-\n"
     "Loads rule text (rulesets and address sets) from FILE or stdin. A malformed file is refused\n"
     "with its line and column, and the filter keeps its tables.\n"},
    {"getaddrsets", "Usage: palisadectl getaddrsets -f FILTER\n"},
    {"mac", "Usage: palisadectl mac show\nThe switch's MAC table: address, port, age; and the ageing time.\n"},
    {"cluster",
     "Usage: palisadectl cluster status\n"
     "This switch's link to the cluster's policy in etcd: connected, revision, time since etcd\n"
     "last answered, relists, reconnects, its lease and how many VMs it publishes.\n"},
    {"setaddrset", "Usage: palisadectl setaddrset -f FILTER NAME [ADDR[/LEN]]...\n"},
    {"getflows",
     "Usage: palisadectl getflows -f FILTER [-n] [-s ADDR[/LEN]] [-d ADDR[/LEN]] [-p PROTO]\n"
     "                          [-x SRCPORT] [-y DSTPORT] [-F]\n"
     "-n: count only; -s/-d/-p/-x/-y select by the originator's source/destination/protocol/\n"
     "ports; -F flushes the selected flows after printing them. Columns: flow id, Active,\n"
     "protocol, ethertype, direction (0 opened toward the VM, 1 from it), rule id, two reserved\n"
     "fields (0 0), source and destination with service names, total bytes, TCP or pseudo state,\n"
     "bytes original/reply, packets original/reply.\n"},
    {"firewall",
     "Usage: palisadectl firewall show -f FILTER\n"
     "       palisadectl firewall set -f FILTER [--limit N] [--recheck on|off] [--timeout NAME=SECONDS]...\n"},
    {"port",
     "Usage: palisadectl port add NAME --vhost-user PATH [--client] [--vm VM] [--mac MAC] [--ip ADDR]...\n"
     "                                [--allow router,dhcp-server,vlan]\n"
     "       palisadectl port add NAME --uplink DEVARGS\n"
     "       palisadectl port del NAME\n"
     "       palisadectl port list\n"
     "       palisadectl port show NAME\n"
     "       palisadectl port stats [NAME]\n"
     "list: index, type, socket or devargs, mode (server: the switch owns the socket; client:\n"
     "QEMU does), link, queue pairs, polling worker, VM. show: the same for one port with its\n"
     "bound MAC, addresses and allowances. stats: packets and bytes received from and sent to\n"
     "the port, drops in total and by reason.\n"
     "--allow: what the VM may do beyond a guest, all refused by default: send router\n"
     "advertisements and redirects (router), answer DHCP (dhcp-server), send VLAN-tagged\n"
     "frames (vlan; the bridge is not VLAN-aware).\n"},
    {"filter",
     "Usage: palisadectl filter attach PORT --slot N --agent sfw|swsec|counting|none [--fail-open]\n"
     "       palisadectl filter detach PORT --slot N\n"},
    {"worker",
     "Usage: palisadectl worker stats\n"
     "Per worker: packets received and sent, packets other workers handed over for this worker's\n"
     "ports (their IN chains run on the worker that polls the port), busy cycles (polls that moved\n"
     "packets), idle cycles, cycles per packet (busy cycles / packets received) and the busy share.\n"},
    {"mac", "Usage: palisadectl mac show\n"},
    {"log",
     "Usage: palisadectl log tail [-n N]\n"
     "The firewall packet log's last N lines (default 20, at most 1,000): `with log` rules,\n"
     "TERM lines of logged connections, state-limit and SpoofGuard drops.\n"},
    {"migrate",
     "Usage: palisadectl migrate PORT --to SOCKET|HOST:PORT [--socket PATH]\n"
     "       palisadectl migrate list\n"
     "       palisadectl migrate cancel PORT\n"
     "Live migration of PORT's whole filter state (bindings, slots, rules, options, every\n"
     "connection with its TCP windows, counters and flow id) to the switch at SOCKET (or\n"
     "HOST:PORT, with TLS and this switch's certificate), where the port is created closed (its\n"
     "vhost-user socket at PATH, when given). Run it before QMP `migrate`. When QEMU stops the\n"
     "guest's device here, the connections changed since go over too; when the device starts\n"
     "there, the port opens and announces the VM's MAC, and the port is removed here. If the\n"
     "guest starts again here, or on `migrate cancel`, the destination discards its copy and\n"
     "nothing changed here. `migrate list` shows migrations in progress and recent ones.\n"},
    {"exec",
     "Usage: palisadectl exec COMMAND...\n"
     "Runs one line of palisaded's config-file language (e.g. 'port stats', 'mac flush',\n"
     "'set mac-ageing 60'; 'exec help' lists them) and prints the JSON reply,\n"
     "{\"ok\":true,...} or {\"ok\":false,\"error\":\"...\"} (exit status 1).\n"},
    {"capture",
     "Usage: palisadectl capture PORT --point pre|post[:SLOT] [--dir in|out|both] [-c COUNT]\n"
     "                           [--snaplen N] -w FILE|-\n"
     "Captures PORT's packets at a point of its filter chain into a pcapng file (- : standard\n"
     "output, for tcpdump -r - or tshark -r -). pre: as they enter the chain (every packet);\n"
     "post: after the whole chain (what passed); post:SLOT: after that slot (what it and the\n"
     "slots before it passed). --dir: in (toward the VM), out (from it), both (default).\n"
     "Each packet carries a comment: port=NAME dir=in|out point=POINT verdict=pass|drop|consumed\n"
     "[reason=REASON], the verdict being what the whole chain did with it. Stops after COUNT\n"
     "packets, on Ctrl-C, or when the port is removed, and prints 'N packets captured, M lost' on\n"
     "stderr (lost: the switch's per-worker buffer was full). --snaplen: bytes kept per packet,\n"
     "1-2048 (default 2048). One capture per port at a time.\n"},
    {"connection",
     "Usage: palisadectl connection list\n"
     "The clients connected to this switch's RPC socket (CLI sessions, managers, peer switches).\n"},
};

const char* kJsonHelp =
    "What palisadectl --json prints, command by command: each value's jq path, its type, and a\n"
    "note. Every key is in every object (a text or list the switch left empty as \"\" or []), but\n"
    "of a union only its member in use. Numbers are integers in exact decimal; jq and JavaScript\n"
    "read them as doubles, exact up to 2^53 (9007199254740992) and rounded to about 16\n"
    "significant digits past it: a worker's cycle counters get there after about 35 days at\n"
    "3 GHz, a port's byte counters after about 80 days at 10 Gbit/s. Ids are strings, never\n"
    "rounded: a flow's flowId in 16 hex digits as getflows prints it, the cluster lease in\n"
    "decimal as cluster status prints it. For example, the ports that received packets:\n"
    "  palisadectl --json port stats | jq -r '.ports[] | select(.rxPackets > 0) | .spec.name'\n"
    "exec prints the switch's own reply (snake_case keys; exec help lists its commands). The\n"
    "cluster's lists: policy list {policies: [{name, priority, rules, appliedTo: [..]}],\n"
    "unreadable: [..]}; group get {name, members: [..], addresses: [..]}; group list {groups:\n"
    "[{name, members: [..]}]}; vm list {vms: [{name, hosts: [..], addresses: [..], labels:\n"
    "[\"KEY=VALUE\"], policies: [..]}]} (a host not yet active shows as HOST(incoming)).\n";

class Args {
 public:
  Args(std::vector<std::string> a) : a_(std::move(a)) {}
  bool Done() const { return i_ >= a_.size(); }
  const std::string& Peek() const { return a_[i_]; }
  std::string Next(const std::string& what) {
    if (Done()) throw UsageError{"expected " + what};
    return a_[i_++];
  }
  uint32_t Number(const std::string& what, uint32_t max) {
    std::string t = Next(what);
    if (t.empty() || t.size() > 9 || t.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(t) > max) {
      throw UsageError{"expected " + what + " (0-" + std::to_string(max) + "), got '" + t + "'"};
    }
    return static_cast<uint32_t>(std::stoul(t));
  }

 private:
  std::vector<std::string> a_;
  size_t i_ = 0;
};

std::string Filter(Args& args) {
  if (args.Done() || args.Peek() != "-f") throw UsageError{"expected -f FILTER"};
  args.Next("-f");
  return args.Next("a filter name after -f");
}

std::string ReadAll(const std::string& path) {
  std::optional<std::string> text = ReadFileOrStdin(path);
  if (!text) throw UsageError{path + ": cannot open"};
  return *text;
}

// Where the switch is: its unix socket, or HOST:PORT over TLS with our client certificate.
struct Endpoint {
  std::string socket = "/run/palisade/default.sock";
  std::string connect;  // HOST:PORT: TLS
  std::string cert, key, ca;
};

std::string ReadPem(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in || ss.str().find("-----BEGIN") == std::string::npos) throw UsageError{path + ": cannot read a PEM file"};
  return ss.str();
}

class Ctl {
 public:
  Ctl(Endpoint endpoint, bool json)
      : endpoint_(std::move(endpoint)),
        socket_(endpoint_.connect.empty() ? endpoint_.socket : endpoint_.connect),
        json_(json) {}

  int Run(const std::string& cmd, Args& args) {
    kj::AsyncIoContext io = kj::setupAsyncIo();
    io_ = &io;
    auto& ws = io.waitScope;
    kj::Own<kj::AsyncIoStream> stream;
    kj::Own<kj::TlsContext> tls;
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { Connect(io, &stream, &tls); })) {
      throw ConnectError{e->getDescription().cStr()};
    }
    capnp::TwoPartyClient client(*stream);
    rpc::Palisade::Client sw = client.bootstrap().castAs<rpc::Palisade>();
    auto hello = sw.helloRequest();
    hello.setKind("cli");
    hello.setName("palisadectl " + std::to_string(getpid()));
    auto said = hello.send();  // in order before the command; its answer is not awaited
    return Dispatch(cmd, args, sw, ws);
  }

 private:
  void Connect(kj::AsyncIoContext& io, kj::Own<kj::AsyncIoStream>* stream_out,
               kj::Own<kj::TlsContext>* tls_out) {
    auto& ws = io.waitScope;
    kj::Own<kj::AsyncIoStream> stream;
    kj::Own<kj::TlsContext> tls;
    if (endpoint_.connect.empty()) {
      stream = io.provider->getNetwork().parseAddress(kj::str("unix:", endpoint_.socket.c_str()))
                   .wait(ws)->connect().wait(ws);
    } else {
      if (endpoint_.cert.empty() || endpoint_.key.empty() || endpoint_.ca.empty()) {
        throw UsageError{"--connect needs --tls-cert, --tls-key and --tls-ca"};
      }
      const std::string cert = ReadPem(endpoint_.cert), key = ReadPem(endpoint_.key), ca_pem = ReadPem(endpoint_.ca);
      kj::TlsKeypair keypair{kj::TlsPrivateKey(key.c_str()), kj::TlsCertificate(cert.c_str())};
      kj::TlsCertificate ca(ca_pem.c_str());
      kj::TlsContext::Options options;
      options.useSystemTrustStore = false;
      options.trustedCertificates = kj::arrayPtr(&ca, 1);
      options.defaultKeypair = keypair;
      tls = kj::heap<kj::TlsContext>(kj::mv(options));
      const std::string host = endpoint_.connect.substr(0, endpoint_.connect.rfind(':'));
      auto tcp = io.provider->getNetwork().parseAddress(endpoint_.connect.c_str()).wait(ws)->connect().wait(ws);
      stream = tls->wrapClient(kj::mv(tcp), host.c_str()).wait(ws);
    }
    *stream_out = kj::mv(stream);
    *tls_out = kj::mv(tls);
  }

  int Dispatch(const std::string& cmd, Args& args, rpc::Palisade::Client& sw, kj::WaitScope& ws) {
    auto out = [this](auto&& results, const std::string& text) { Print(results, text); };
    if (cmd == "summarize-dvfilter") {
      auto r = sw.summarizeFiltersRequest().send().wait(ws);
      out(r, SummarizeDvfilter(r.getPorts()));
    } else if (cmd == "getrules") {
      std::string f = Filter(args);
      bool stats = !args.Done() && args.Peek() == "-s" && !args.Next("").empty();
      auto req = sw.getRulesRequest();
      req.setFilter(f);
      auto r = req.send().wait(ws);
      std::string text(r.getText().cStr());
      out(r, stats ? text + RuleStatsLines(r.getStats()) : text);
    } else if (cmd == "setrules") {
      std::string f = Filter(args);
      std::string text = ReadAll(args.Next("FILE or -"));
      auto req = sw.setRulesRequest();
      req.setFilter(f);
      req.setText(text);
      auto r = req.send().wait(ws);
      out(r, "");
    } else if (cmd == "getaddrsets") {
      auto req = sw.getAddrSetsRequest();
      req.setFilter(Filter(args));
      auto r = req.send().wait(ws);
      out(r, std::string(r.getText().cStr()));
    } else if (cmd == "setaddrset") {
      auto req = sw.setAddrSetRequest();
      req.setFilter(Filter(args));
      req.setName(args.Next("an address set name"));
      std::vector<std::string> addrs;
      while (!args.Done()) addrs.push_back(args.Next(""));
      auto list = req.initAddresses(static_cast<unsigned>(addrs.size()));
      for (unsigned i = 0; i < addrs.size(); i++) list.set(i, addrs[i]);
      {
        auto r = req.send().wait(ws);
        out(r, "");
      }
    } else if (cmd == "getflows") {
      return GetFlows(sw, ws, args);
    } else if (cmd == "firewall") {
      std::string verb = args.Next("show or set");
      std::string f = Filter(args);
      if (verb == "show") {
        auto req = sw.getFirewallRequest();
        req.setFilter(f);
        auto r = req.send().wait(ws);
        out(r, FirewallView(f, r.getOptions()));
      } else if (verb == "set") {
        auto req = sw.setFirewallRequest();
        req.setFilter(f);
        req.setRecheck(-1);
        std::vector<std::pair<std::string, uint32_t>> timeouts;
        while (!args.Done()) {
          std::string opt = args.Next("");
          if (opt == "--limit") {
            req.setConnectionLimit(args.Number("a connection limit", 16000000));
          } else if (opt == "--recheck") {
            std::string v = args.Next("on or off");
            if (v != "on" && v != "off") throw UsageError{"--recheck takes on or off, got '" + v + "'"};
            req.setRecheck(v == "on" ? 1 : 0);
          } else if (opt == "--timeout") {
            std::string v = args.Next("NAME=SECONDS");
            size_t eq = v.find('=');
            std::string secs = eq == std::string::npos ? "" : v.substr(eq + 1);
            if (secs.empty() || secs.size() > 7 || secs.find_first_not_of("0123456789") != std::string::npos) {
              throw UsageError{"--timeout takes NAME=SECONDS, got '" + v + "'"};
            }
            timeouts.emplace_back(v.substr(0, eq), static_cast<uint32_t>(std::stoul(secs)));
          } else {
            throw UsageError{"unknown option '" + opt + "'"};
          }
        }
        auto list = req.initTimeouts(static_cast<unsigned>(timeouts.size()));
        for (unsigned i = 0; i < timeouts.size(); i++) {
          list[i].setName(timeouts[i].first);
          list[i].setSeconds(timeouts[i].second);
        }
        {
        auto r = req.send().wait(ws);
        out(r, "");
      }
      } else {
        throw UsageError{"expected show or set, got '" + verb + "'"};
      }
    } else if (cmd == "port") {
      return Port(sw, ws, args, out);
    } else if (cmd == "filter") {
      std::string verb = args.Next("attach or detach");
      std::string port = args.Next("a port name");
      int slot = -1;
      std::string agent;
      bool fail_open = false;
      while (!args.Done()) {
        std::string opt = args.Next("");
        if (opt == "--slot") slot = static_cast<int>(args.Number("a slot number", 15));
        else if (opt == "--agent" && verb == "attach") agent = args.Next("an agent");
        else if (opt == "--fail-open" && verb == "attach") fail_open = true;
        else throw UsageError{"unknown option '" + opt + "'"};
      }
      if (slot < 0) throw UsageError{"expected --slot N"};
      if (verb == "attach") {
        if (agent.empty()) throw UsageError{"expected --agent NAME"};
        auto req = sw.attachFilterRequest();
        req.setPort(port);
        req.setSlot(static_cast<uint8_t>(slot));
        req.setAgent(agent);
        req.setFailOpen(fail_open);
        {
        auto r = req.send().wait(ws);
        out(r, "");
      }
      } else if (verb == "detach") {
        auto req = sw.detachFilterRequest();
        req.setPort(port);
        req.setSlot(static_cast<uint8_t>(slot));
        {
        auto r = req.send().wait(ws);
        out(r, "");
      }
      } else {
        throw UsageError{"expected attach or detach, got '" + verb + "'"};
      }
    } else if (cmd == "worker") {
      Expect(args, "stats");
      auto r = sw.workerStatsRequest().send().wait(ws);
      out(r, WorkerTable(r.getWorkers()));
    } else if (cmd == "mac") {
      Expect(args, "show");
      auto r = sw.macTableRequest().send().wait(ws);
      out(r, MacTable(r.getMacs(), r.getAgeingSeconds()));
    } else if (cmd == "log") {
      Expect(args, "tail");
      uint32_t n = 20;
      if (!args.Done() && args.Peek() == "-n") {
        args.Next("-n");
        n = args.Number("a number of lines", 1000);
      }
      auto req = sw.tailLogRequest();
      req.setLines(n);
      auto r = req.send().wait(ws);
      std::string text;
      for (auto l : r.getLines()) text += std::string(l.cStr()) + "\n";
      if (r.getSuppressed() || r.getLost()) {
        text += "# " + std::to_string(r.getSuppressed()) + " lines suppressed by the rate limit, " +
                std::to_string(r.getLost()) + " events lost\n";
      }
      out(r, text);
    } else if (cmd == "migrate") {
      return Migrate(sw, ws, args);
    } else if (cmd == "capture") {
      return Capture(sw, ws, args);
    } else if (cmd == "exec") {
      std::string line;
      while (!args.Done()) line += (line.empty() ? "" : " ") + args.Next("");
      if (line.empty()) throw UsageError{"expected a command line"};
      std::istringstream words(line);
      std::vector<std::string> w{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
      if (w.size() == 4 && w[0] == "rules" && w[1] == "load") {
        // The switch opens no path for a client: the file is read here and its text sent.
        JsonWriter reply;
        std::ifstream in(w[3]);
        std::stringstream text;
        text << in.rdbuf();
        auto req = sw.setRulesRequest();
        req.setFilter(w[2]);
        req.setText(text.str());
        if (!in) {
          reply.BeginObject().Field("ok", false).Field("error", w[3] + ": cannot open the rule file").EndObject();
        } else KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] { req.send().wait(ws); })) {
          reply.BeginObject().Field("ok", false).Field("error", w[3] + ": " + SwitchError(*e)).EndObject();
        } else {
          reply.BeginObject().Field("ok", true).EndObject();
        }
        std::printf("%s\n", reply.str().c_str());
        return reply.str().rfind("{\"ok\":false", 0) == 0 ? kSwitchError : kOk;
      }
      auto req = sw.executeRequest();
      req.setLine(line);
      auto r = req.send().wait(ws);
      const std::string reply = r.getReply().cStr();
      std::printf("%s\n", reply.c_str());
      return reply.rfind("{\"ok\":false", 0) == 0 ? kSwitchError : kOk;
    } else if (cmd == "cluster") {
      Expect(args, "status");
      auto r = sw.clusterStatusRequest().send().wait(ws);
      auto s = r.getStatus();
      std::string text;
      if (!s.getEnabled()) {
        text = "cluster: not configured (palisaded --etcd ENDPOINTS --host NAME)\n";
      } else {
        text = "cluster: host " + std::string(s.getHost().cStr()) + ", etcd " + s.getEndpoints().cStr() + "\n" +
               "  connected: " + (s.getConnected() ? "yes" : "no") + "\n" +
               "  revision: " + std::to_string(s.getRevision()) + "\n" +
               "  last contact: " + (s.getLastContactMillis() < 0 ? std::string("never")
                                     : std::to_string(s.getLastContactMillis()) + " ms ago") + "\n" +
               "  lease: " + std::to_string(s.getLease()) + ", VMs published: " + std::to_string(s.getPublished()) + "\n" +
               "  relists: " + std::to_string(s.getRelists()) + ", reconnects: " + std::to_string(s.getReconnects()) +
               ", updates: " + std::to_string(s.getUpdates()) + "\n";
        if (s.getError().size() > 0) text += "  error: " + std::string(s.getError().cStr()) + "\n";
        if (s.getSnapshotPath().size() > 0) {
          text += "  snapshot: " + std::string(s.getSnapshotPath().cStr()) + ", " +
                  (s.getSnapshotRevision() > 0 ? "revision " + std::to_string(s.getSnapshotRevision())
                                               : std::string("none written yet")) + "\n";
          if (s.getSnapshotError().size() > 0)
            text += "  snapshot error: " + std::string(s.getSnapshotError().cStr()) + "\n";
        }
      }
      out(r, text);
    } else if (cmd == "connection") {
      Expect(args, "list");
      auto r = sw.connectionsRequest().send().wait(ws);
      out(r, ConnectionTable(socket_, r.getConnections()));
    } else {
      throw UsageError{"unknown command '" + cmd + "' (see palisadectl --help)"};
    }
    if (!args.Done()) throw UsageError{"unexpected '" + args.Peek() + "'"};
    return kOk;
  }

  // Packet capture at a point of a port's IOChain into a pcapng file (cli/pcapng.h): starts it,
  // reads what the switch recorded every 50 ms until the count is reached, the port goes, or
  // SIGINT/SIGTERM (or a closed output) stops it; then stops it and prints the totals on stderr.
  int Capture(rpc::Palisade::Client& sw, kj::WaitScope& ws, Args& args) {
    const std::string port = args.Next("a port name");
    std::string point, dir = "both", file;
    uint32_t count = 0, snaplen = 2048;
    while (!args.Done()) {
      std::string opt = args.Next("");
      if (opt == "--point") point = args.Next("pre, post or post:SLOT after --point");
      else if (opt == "--dir") dir = args.Next("in, out or both after --dir");
      else if (opt == "-c") count = args.Number("a packet count after -c", 1000000000);
      else if (opt == "--snaplen") snaplen = args.Number("a snap length after --snaplen", 2048);
      else if (opt == "-w") file = args.Next("a file name or - after -w");
      else throw UsageError{"unknown option '" + opt + "'"};
    }
    if (point.empty()) throw UsageError{"expected --point pre|post|post:SLOT"};
    if (file.empty()) throw UsageError{"expected -w FILE (- for standard output)"};
    if (dir != "in" && dir != "out" && dir != "both") {
      throw UsageError{"--dir takes in, out or both, got '" + dir + "'"};
    }
    if (snaplen == 0) throw UsageError{"--snaplen takes 1-2048"};
    std::FILE* f = file == "-" ? stdout : std::fopen(file.c_str(), "wb");
    if (f == nullptr) throw UsageError{file + ": cannot create: " + std::strerror(errno)};
    auto write = [f](const std::string& block) {
      return std::fwrite(block.data(), 1, block.size(), f) == block.size();
    };

    auto start = sw.startCaptureRequest();
    start.setPort(port);
    start.setPoint(point);
    start.setDir(dir);
    start.setSnaplen(snaplen);
    start.setCount(count);
    const uint64_t id = start.send().wait(ws).getId();

    // From here a signal stops the capture cleanly instead of killing the process.
    struct sigaction sa {};
    sa.sa_handler = [](int) { stop_capture = 1; };
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);  // a reader that goes away (tshark -r - quit) ends the capture

    bool ok = write(pcapng::SectionHeader()) && write(pcapng::InterfaceDescription(port, snaplen));
    ok = ok && std::fflush(f) == 0;
    const std::string where = " point=" + point;
    while (ok && !stop_capture) {
      auto req = sw.readCaptureRequest();
      req.setId(id);
      req.setMax(1024);
      auto r = req.send().wait(ws);
      for (auto p : r.getPackets()) {
        std::string comment = "port=" + port + " dir=" + p.getDir().cStr() + where +
                              " verdict=" + p.getVerdict().cStr();
        if (p.getReason().size() > 0) comment += std::string(" reason=") + p.getReason().cStr();
        auto data = p.getData();
        ok = ok && write(pcapng::EnhancedPacket(
                       0, p.getTimeNanos(),
                       std::string_view(reinterpret_cast<const char*>(data.begin()), data.size()),
                       p.getLength(), comment));
      }
      ok = ok && std::fflush(f) == 0;
      if (r.getEnded()) break;
      if (r.getPackets().size() == 0) io_->provider->getTimer().afterDelay(50 * kj::MILLISECONDS).wait(ws);
    }
    auto stop = sw.stopCaptureRequest();
    stop.setId(id);
    auto totals = stop.send().wait(ws);
    if (f != stdout) ok = std::fclose(f) == 0 && ok;
    std::fprintf(stderr, "%llu packets captured, %llu lost\n",
                 static_cast<unsigned long long>(totals.getCaptured()),
                 static_cast<unsigned long long>(totals.getLost()));
    if (!ok && !stop_capture) {
      std::fprintf(stderr, "palisadectl: capture: cannot write %s\n", file.c_str());
      return kSwitchError;
    }
    return kOk;
  }

  // Live migration of a port to another switch, its view and its cancellation.
  int Migrate(rpc::Palisade::Client& sw, kj::WaitScope& ws, Args& args) {
    const std::string first = args.Next("a port name, 'list' or 'cancel'");
    if (first == "list" || first == "show") {
      auto r = sw.migrationsRequest().send().wait(ws);
      Print(r, MigrationTable(r.getMigrations()));
      return kOk;
    }
    if (first == "cancel") {
      const std::string port = args.Next("a port name");
      auto req = sw.cancelMigrationRequest();
      req.setPort(port);
      auto r = req.send().wait(ws);
      Print(r, "cancelled the migration of " + port + "\n");
      return kOk;
    }
    auto req = sw.migrateRequest();
    req.setPort(first);
    while (!args.Done()) {
      std::string opt = args.Next("");
      if (opt == "--to") req.setTo(args.Next("the destination switch after --to"));
      else if (opt == "--socket") req.setSocket(args.Next("a vhost-user socket path after --socket"));
      else throw UsageError{"unknown option '" + opt + "'"};
    }
    if (req.getTo().size() == 0) throw UsageError{"expected --to SOCKET or --to HOST:PORT"};
    auto r = req.send().wait(ws);
    auto m = r.getMigration();
    char text[512];
    std::snprintf(text, sizeof text,
                  "migrating %s to %s: bulk copy of %u connection(s) in %llu ms; the port is "
                  "closed there until the guest stops here (QMP migrate) and starts there\n",
                  m.getPort().cStr(), m.getPeer().cStr(), m.getConnections(),
                  static_cast<unsigned long long>(m.getBulkMillis()));
    Print(r, text);
    return kOk;
  }

  // Human text, or with --json the whole result (cli/json_output.h).
  template <typename T>
  void Print(capnp::Response<T>& response, const std::string& text) {
    if (json_) {
      JsonWriter w(/*indent=*/true);
      typename T::Reader reader = response;
      WriteJson(w, capnp::toDynamic(reader));
      std::printf("%s\n", w.str().c_str());
    } else {
      std::fputs(text.c_str(), stdout);
    }
  }

  static void Expect(Args& args, const std::string& word) {
    std::string w = args.Next(word);
    if (w != word) throw UsageError{"expected " + word + ", got '" + w + "'"};
  }

  int GetFlows(rpc::Palisade::Client& sw, kj::WaitScope& ws, Args& args) {
    std::string filter = Filter(args);
    bool count_only = false, flush = false;
    capnp::MallocMessageBuilder msg;
    auto sel = msg.initRoot<rpc::FlowSelector>();
    while (!args.Done()) {
      std::string opt = args.Next("");
      if (opt == "-n") count_only = true;
      else if (opt == "-F") flush = true;
      else if (opt == "-s") sel.setSrc(args.Next("ADDR[/LEN] after -s"));
      else if (opt == "-d") sel.setDst(args.Next("ADDR[/LEN] after -d"));
      else if (opt == "-x") sel.setSrcPort(static_cast<int32_t>(args.Number("a port", 65535)));
      else if (opt == "-y") sel.setDstPort(static_cast<int32_t>(args.Number("a port", 65535)));
      else if (opt == "-p") {
        static const std::map<std::string, int> kProtos = {{"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"ipv6-icmp", 58}};
        std::string p = args.Next("a protocol");
        auto it = kProtos.find(p);
        if (it != kProtos.end()) sel.setProto(static_cast<int16_t>(it->second));
        else {
          Args num({p});
          sel.setProto(static_cast<int16_t>(num.Number("a protocol (tcp, udp, icmp, ipv6-icmp or 0-255)", 255)));
        }
      } else {
        throw UsageError{"unknown option '" + opt + "'"};
      }
    }
    // The JSON document is {"flows": [...], "count": N, "flushed": N}, in the order known.
    std::string text;
    JsonWriter json(/*indent=*/true);
    json.BeginObject();
    if (count_only) {
      auto req = sw.countFlowsRequest();
      req.setFilter(filter);
      req.setSelector(sel.asReader());
      auto r = req.send().wait(ws);
      text = FlowsHeader(r.getCount());
      json.Field("count", uint64_t{r.getCount()});
    } else {
      // Page through the table: a million flows never travel as one message.
      std::string lines;
      json.Key("flows").BeginArray();
      size_t n = 0;
      uint32_t cursor = 0;
      for (;;) {
        auto req = sw.getFlowsRequest();
        req.setFilter(filter);
        req.setSelector(sel.asReader());
        req.setCursor(cursor);
        req.setPageSize(4096);
        auto r = req.send().wait(ws);
        for (auto f : r.getFlows()) {
          if (json_) WriteJson(json, capnp::toDynamic(f));
          else lines += FlowLine(f);
          n++;
        }
        if (r.getDone()) break;
        cursor = r.getNextCursor();
      }
      json.EndArray().Field("count", uint64_t{n});
      text = FlowsHeader(n) + lines;
    }
    if (flush) {
      auto req = sw.flushFlowsRequest();
      req.setFilter(filter);
      req.setSelector(sel.asReader());
      auto r = req.send().wait(ws);
      text += "flushed " + std::to_string(r.getFlushed()) + "\n";
      json.Field("flushed", uint64_t{r.getFlushed()});
    }
    json.EndObject();
    std::fputs(json_ ? (json.str() + "\n").c_str() : text.c_str(), stdout);
    return kOk;
  }

  template <typename Out>
  int Port(rpc::Palisade::Client& sw, kj::WaitScope& ws, Args& args, Out&& out) {
    std::string verb = args.Next("add, del, list, show or stats");
    if (verb == "add") {
      auto req = sw.addPortRequest();
      auto spec = req.initSpec();
      spec.setName(args.Next("a port name"));
      std::vector<std::string> ips, allow;
      bool kind = false;
      while (!args.Done()) {
        std::string opt = args.Next("");
        if (opt == "--vhost-user" || opt == "--uplink") {
          if (kind) throw UsageError{"give only one of --vhost-user and --uplink"};
          kind = true;
          if (opt == "--uplink") spec.setUplink(args.Next("devargs after --uplink"));
          else spec.setVhostUser(args.Next("a socket path after --vhost-user"));
        } else if (opt == "--client") {
          spec.setClient(true);
        } else if (opt == "--vm") {
          spec.setVm(args.Next("a VM name after --vm"));
        } else if (opt == "--mac") {
          spec.setMac(args.Next("a MAC after --mac"));
        } else if (opt == "--ip") {
          ips.push_back(args.Next("an address after --ip"));
        } else if (opt == "--allow") {
          allow.push_back(args.Next("router, dhcp-server or vlan after --allow"));
        } else {
          throw UsageError{"unknown option '" + opt + "'"};
        }
      }
      if (!kind) throw UsageError{"expected --vhost-user PATH or --uplink DEVARGS"};
      auto list = spec.initIps(static_cast<unsigned>(ips.size()));
      for (unsigned i = 0; i < ips.size(); i++) list.set(i, ips[i]);
      auto allowed = spec.initAllow(static_cast<unsigned>(allow.size()));
      for (unsigned i = 0; i < allow.size(); i++) allowed.set(i, allow[i]);
      {
        auto r = req.send().wait(ws);
        out(r, "");
      }
    } else if (verb == "del") {
      auto req = sw.removePortRequest();
      req.setName(args.Next("a port name"));
      {
        auto r = req.send().wait(ws);
        out(r, "");
      }
    } else if (verb == "show") {
      auto req = sw.listPortsRequest();
      req.setName(args.Next("a port name"));
      auto r = req.send().wait(ws);
      out(r, r.getPorts().size() ? PortDetail(r.getPorts()[0]) : "");
    } else if (verb == "list" || verb == "stats") {
      auto req = sw.listPortsRequest();
      if (verb == "stats" && !args.Done()) req.setName(args.Next(""));
      auto r = req.send().wait(ws);
      out(r, PortTable(r.getPorts(), verb == "stats"));
    } else {
      throw UsageError{"expected add, del, list, show or stats, got '" + verb + "'"};
    }
    if (!args.Done()) throw UsageError{"unexpected '" + args.Peek() + "'"};
    return kOk;
  }

  Endpoint endpoint_;
  kj::AsyncIoContext* io_ = nullptr;  // the one event loop of this thread, while Run() runs
  std::string socket_;  // for display
  bool json_;
};

int CommandHelp(const std::string& cmd) {
  auto it = kHelp.find(cmd);
  if (!IsClusterCommand(cmd) && it == kHelp.end()) {  // a usage error, --help or not
    std::fprintf(stderr, "palisadectl: unknown command '%s'\nTry 'palisadectl --help'.\n", cmd.c_str());
    return kUsage;
  }
  std::fputs(IsClusterCommand(cmd) ? kClusterHelp : it->second, stdout);
  return kOk;
}

// `help json [COMMAND]`: what --json prints, from the results' schema (cli/json_output.h).
int JsonHelp(const std::string& only) {
  using capnp::Schema;
  using P = rpc::Palisade;
  struct Section {
    std::string commands;  // alternatives, comma-separated
    std::vector<JsonField> fields;
  };
  std::vector<JsonField> flows = DescribeJson(Schema::from<rpc::Flow>(), ".flows[]");
  flows.push_back({".count", "number", ""});
  flows.push_back({".flushed", "number", "with -F only"});
  const std::vector<Section> sections = {
      {"summarize-dvfilter", DescribeJson(Schema::from<P::SummarizeFiltersResults>())},
      {"getrules -f FILTER [-s]", DescribeJson(Schema::from<P::GetRulesResults>())},
      {"getaddrsets -f FILTER", DescribeJson(Schema::from<P::GetAddrSetsResults>())},
      {"getflows -f FILTER [SELECTORS] [-F]", flows},
      {"getflows -f FILTER -n [SELECTORS] [-F]",
       {{".count", "number", ""}, {".flushed", "number", "with -F only"}}},
      {"firewall show -f FILTER", DescribeJson(Schema::from<P::GetFirewallResults>())},
      {"port list, port stats [NAME]", DescribeJson(Schema::from<P::ListPortsResults>())},
      {"worker stats", DescribeJson(Schema::from<P::WorkerStatsResults>())},
      {"mac show", DescribeJson(Schema::from<P::MacTableResults>())},
      {"connection list", DescribeJson(Schema::from<P::ConnectionsResults>())},
      {"log tail [-n N]", DescribeJson(Schema::from<P::TailLogResults>())},
      {"migrate PORT --to SOCKET|HOST:PORT", DescribeJson(Schema::from<P::MigrateResults>())},
      {"migrate list", DescribeJson(Schema::from<P::MigrationsResults>())},
      {"cluster status", DescribeJson(Schema::from<P::ClusterStatusResults>())},
      {"setrules, setaddrset, firewall set, port add, port del, filter attach, filter detach, "
       "migrate cancel",
       {{"{}", "", "nothing but success (exit status 0)"}}},
      {"policy get NAME (--etcd)", DescribeJson(Schema::from<cluster::Policy>())},
      {"policy apply, policy delete, group set, group delete, vm label (--etcd)",
       {{".ok", "bool", ""}, {".message", "string", "what was done, as the text view says it"}}},
  };
  std::string out;
  for (const Section& s : sections) {
    bool match = only.empty();
    for (size_t begin = 0, end = 0; !match && end != std::string::npos; begin = end + 2) {
      end = s.commands.find(", ", begin);
      const std::string command = s.commands.substr(begin, end - begin);
      match = command == only || command.rfind(only + " ", 0) == 0;
    }
    if (!match) continue;
    size_t path_width = 0, type_width = 0;
    for (const JsonField& f : s.fields) {
      path_width = std::max(path_width, f.path.size());
      type_width = std::max(type_width, f.type.size());
    }
    out += "\n" + s.commands + "\n";
    for (const JsonField& f : s.fields) {
      std::string line = "  " + f.path + std::string(path_width - f.path.size() + 2, ' ') + f.type;
      if (!f.note.empty()) line += std::string(type_width - f.type.size() + 2, ' ') + f.note;
      out += line.substr(0, line.find_last_not_of(' ') + 1) + "\n";
    }
  }
  if (out.empty()) {
    std::fprintf(stderr, "palisadectl: no command '%s' prints JSON\nTry 'palisadectl help json'.\n",
                 only.c_str());
    return kUsage;
  }
  std::fputs(kJsonHelp, stdout);
  std::fputs(out.c_str(), stdout);
  return kOk;
}

// `help`, `help COMMAND`, `help json [COMMAND]`.
int Help(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fputs(kMainHelp, stdout);
    return kOk;
  }
  if (args[0] == "json" && args.size() <= 2) return JsonHelp(args.size() == 2 ? args[1] : "");
  if (args.size() == 1) return CommandHelp(args[0]);
  std::fputs("Usage: palisadectl help [json] [COMMAND]\n", stderr);
  return kUsage;
}

int Main(int argc, char** argv) {
  Endpoint endpoint;
  cluster::EtcdOptions etcd;
  etcd.timeout_ms = 3000;
  std::string etcd_cert, etcd_key, etcd_ca;
  bool json = false;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if ((a == "-s" || a == "--socket") && has_value) {
      endpoint.socket = argv[++i];
    } else if ((a == "-c" || a == "--connect") && has_value) {
      endpoint.connect = argv[++i];
    } else if (a == "--tls-cert" && has_value) {
      endpoint.cert = argv[++i];
    } else if (a == "--tls-key" && has_value) {
      endpoint.key = argv[++i];
    } else if (a == "--tls-ca" && has_value) {
      endpoint.ca = argv[++i];
    } else if (a == "--etcd" && has_value) {
      etcd.endpoints = argv[++i];
    } else if (a == "--etcd-cert" && has_value) {
      etcd_cert = argv[++i];
    } else if (a == "--etcd-key" && has_value) {
      etcd_key = argv[++i];
    } else if (a == "--etcd-ca" && has_value) {
      etcd_ca = argv[++i];
    } else if (a == "--json") {
      json = true;
    } else if (a == "-h" || a == "--help") {
      std::fputs(kMainHelp, stdout);
      return kOk;
    } else {
      std::fprintf(stderr, "palisadectl: unknown option '%s'\nTry 'palisadectl --help'.\n", a.c_str());
      return kUsage;
    }
  }
  if (i >= argc) {
    std::fputs(kMainHelp, stderr);
    return kUsage;
  }
  const std::string cmd = argv[i++];
  std::vector<std::string> rest(argv + i, argv + argc);
  if (cmd == "help") return Help(rest);
  for (const std::string& a : rest) {
    if (a == "--help" || a == "-h") return CommandHelp(cmd);
  }
  if (IsClusterCommand(cmd)) {
    try {
      if (!etcd_cert.empty()) etcd.cert_pem = ReadPem(etcd_cert);
      if (!etcd_key.empty()) etcd.key_pem = ReadPem(etcd_key);
      if (!etcd_ca.empty()) etcd.ca_pem = ReadPem(etcd_ca);
    } catch (const UsageError& e) {
      std::fprintf(stderr, "palisadectl: %s\n", e.message.c_str());
      return kUsage;
    }
    return RunClusterCommand(etcd, json, cmd, rest);
  }
  Args args(rest);
  try {
    return Ctl(endpoint, json).Run(cmd, args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "palisadectl %s: %s\nTry 'palisadectl %s --help'.\n", cmd.c_str(),
                 e.message.c_str(), cmd.c_str());
    return kUsage;
  } catch (const ConnectError& e) {
    std::fprintf(stderr, "palisadectl: cannot reach the switch at %s: %s\n",
                 (endpoint.connect.empty() ? endpoint.socket : endpoint.connect).c_str(), e.message.c_str());
    return kSwitchError;
  } catch (const kj::Exception& e) {
    const std::string d = SwitchError(e);
    if (e.getType() == kj::Exception::Type::DISCONNECTED) {
      std::fprintf(stderr, "palisadectl: cannot reach the switch at %s: %s\n",
                   (endpoint.connect.empty() ? endpoint.socket : endpoint.connect).c_str(), d.c_str());
    } else {
      std::fprintf(stderr, "palisadectl: %s\n", d.c_str());
    }
    return kSwitchError;
  }
}

}  // namespace
}  // namespace palisade::cli

int main(int argc, char** argv) {
  // gRPC's own log lines (a failed TLS handshake, say) would repeat on stderr what the
  // command's error message says; the caller may still ask for them.
  setenv("GRPC_VERBOSITY", "NONE", /*overwrite=*/0);
  return palisade::cli::Main(argc, argv);
}
