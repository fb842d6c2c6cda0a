#include "cli/cluster_commands.h"

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>

#include "cli/input.h"
#include "cluster/keys.h"
#include "cluster/view.h"
#include "common/json_writer.h"
#include "firewall/rule_text.h"

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ with a short literal
// (GCC bug 105329), which would stop the release build.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

namespace palisade::cli {
namespace {

constexpr int kOk = 0, kFailed = 1, kUsage = 2;

struct Usage {
  std::string message;
};
struct Failed {
  std::string message;
};

void Check(const Status& s) {
  if (!s.ok()) throw Failed{s.message()};
}

// etcd answers "unavailable" for a moment while its members elect a leader: a command tries a
// few times over two seconds before it gives up.
template <typename F>
Status Retried(F call) {
  Status s = call();
  for (int i = 0; i < 4 && s.code() == StatusCode::kUnavailable; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    s = call();
  }
  return s;
}

std::string ReadText(const std::string& path) {
  std::optional<std::string> text = ReadFileOrStdin(path);
  if (!text) throw Usage{path + ": cannot open"};
  return *text;
}

std::vector<std::string> Split(const std::string& list) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    if (comma > pos) out.push_back(list.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

std::string Join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

class Cluster {
 public:
  Cluster(const cluster::EtcdOptions& options, bool json) : json_(json) {
    Check(cluster::EtcdClient::Connect(options, &etcd_));
  }

  // The intent now, with each key's mod revision.
  void Load() {
    std::vector<cluster::KeyValue> kvs;
    Check(Retried([&] { return etcd_->RangeAll(cluster::kWatchBegin, cluster::kWatchEnd, &kvs, &revision_); }));
    for (const cluster::KeyValue& kv : kvs) {
      mods_[kv.key] = kv.mod_revision;
      if (Status s = view_.Put(kv.key, kv.value); !s.ok()) unreadable_.push_back(s.message());
    }
  }

  int Policy(const std::vector<std::string>& args) {
    const std::string verb = Arg(args, 0, "apply, get, list or delete");
    if (verb == "apply") {
      cluster::PolicyIntent p;
      p.name = Arg(args, 1, "a policy name");
      std::string file;
      for (size_t i = 2; i < args.size(); i++) {
        if (args[i] == "--applied-to") {
          for (const std::string& t : Split(Arg(args, ++i, "TARGET[,TARGET...] after --applied-to"))) {
            p.applied_to.push_back(t);
          }
        } else if (args[i] == "--priority") {
          const std::string n = Arg(args, ++i, "a number after --priority");
          if (n.empty() || n.size() > 6 || n.find_first_not_of("0123456789") != std::string::npos) {
            throw Usage{"--priority takes a number from 0 to 999999, got '" + n + "'"};
          }
          p.priority = std::stoi(n);
        } else if (file.empty() && (args[i] == "-" || args[i][0] != '-')) {
          file = args[i];
        } else {
          throw Usage{"unexpected '" + args[i] + "'"};
        }
      }
      if (file.empty()) throw Usage{"expected FILE or - (the policy's rule text)"};
      if (p.applied_to.empty()) throw Usage{"expected --applied-to vm:NAME|group:NAME[,...]"};
      p.text = ReadText(file);
      if (Status s = fw::ParseRuleFile(p.text, &p.file); !s.ok()) {
        throw Failed{(file == "-" ? std::string("<stdin>") : file) + ": " + s.message() + " (nothing written)"};
      }
      for (int attempt = 0;; attempt++) {
        Load();
        if (Status s = view_.CheckPolicy(p); !s.ok()) throw Failed{s.message() + " (nothing written)"};
        const std::string key = std::string(cluster::kPolicies) + p.name;
        // One transaction, refused if any policy changed since it was read.
        std::vector<std::pair<std::string, int64_t>> expect = {{key, Mod(key)}};
        for (const auto& [name, other] : view_.policies()) {
          if (name != p.name) expect.push_back({std::string(cluster::kPolicies) + name, Mod(std::string(cluster::kPolicies) + name)});
        }
        bool applied = false;
        Check(Retried([&] { return etcd_->Txn(expect, {{key, cluster::EncodePolicy(p)}}, {}, &applied); }));
        if (applied) break;
        if (attempt == 2) throw Failed{"the policies kept changing while this one was checked; try again"};
        view_ = cluster::ClusterView{};
        mods_.clear();
      }
      Say("policy " + p.name + " applied to " + Join(p.applied_to) + " (priority " +
          std::to_string(p.priority) + ", " + std::to_string(p.file.rules.size() + p.file.l2_rules.size()) + " rules)");
      return kOk;
    }
    Load();
    if (verb == "get") {
      const std::string name = Arg(args, 1, "a policy name");
      auto it = view_.policies().find(name);
      if (it == view_.policies().end()) throw Failed{"no policy '" + name + "'"};
      if (json_) {
        std::printf("%s\n", cluster::EncodePolicy(it->second).c_str());
      } else {
        std::printf("# policy %s, priority %d, applied to %s\n%s", name.c_str(), it->second.priority,
                    Join(it->second.applied_to).c_str(), it->second.text.c_str());
      }
      return kOk;
    }
    if (verb == "list") {
      if (json_) {
        JsonWriter w(/*indent=*/true);
        w.BeginObject().Key("policies").BeginArray();
        for (const auto& [name, p] : view_.policies()) {
          w.BeginObject().Field("name", name).Key("priority").Int(p.priority);
          w.Field("rules", uint64_t{p.file.rules.size() + p.file.l2_rules.size()});
          Strings(w, "appliedTo", p.applied_to).EndObject();
        }
        w.EndArray();
        Strings(w, "unreadable", unreadable_).EndObject();
        std::printf("%s\n", w.str().c_str());
        return kOk;
      }
      std::printf("%-24s %8s %6s  %s\n", "POLICY", "PRIORITY", "RULES", "APPLIED TO");
      for (const auto& [name, p] : view_.policies()) {
        std::printf("%-24s %8d %6zu  %s\n", name.c_str(), p.priority, p.file.rules.size() + p.file.l2_rules.size(),
                    Join(p.applied_to).c_str());
      }
      for (const std::string& e : unreadable_) std::printf("# unreadable: %s\n", e.c_str());
      return kOk;
    }
    if (verb == "delete") return Delete(std::string(cluster::kPolicies), Arg(args, 1, "a policy name"), "policy");
    throw Usage{"expected apply, get, list or delete, got '" + verb + "'"};
  }

  int Group(const std::vector<std::string>& args) {
    const std::string verb = Arg(args, 0, "set, get, list or delete");
    if (verb == "set") {
      cluster::GroupIntent g{Arg(args, 1, "a group name"), {}};
      if (!cluster::ValidName(g.name)) throw Usage{"'" + g.name + "' is not a group name (letters, digits, . _ -)"};
      for (size_t i = 2; i < args.size(); i++) {
        if (Status s = cluster::ValidMember(args[i]); !s.ok()) throw Usage{s.message()};
        g.members.push_back(args[i]);
      }
      Check(Retried([&] { return etcd_->Put(std::string(cluster::kGroups) + g.name, cluster::EncodeGroup(g)); }));
      Say("group " + g.name + ": " + (g.members.empty() ? std::string("no members") : Join(g.members, " ")));
      return kOk;
    }
    Load();
    if (verb == "get") {
      const std::string name = Arg(args, 1, "a group name");
      auto it = view_.groups().find(name);
      if (it == view_.groups().end()) throw Failed{"no group '" + name + "'"};
      std::string now;
      std::vector<std::string> addresses;
      for (const fw::IpPrefix& a : view_.GroupAddresses(name)) {
        now += " " + a.ToString();
        addresses.push_back(a.ToString());
      }
      if (json_) {
        JsonWriter w(/*indent=*/true);
        w.BeginObject().Field("name", name);
        Strings(w, "members", it->second.members);
        Strings(w, "addresses", addresses).EndObject();
        std::printf("%s\n", w.str().c_str());
        return kOk;
      }
      std::printf("group %s\n  members: %s\n  now:%s\n", name.c_str(), Join(it->second.members, " ").c_str(),
                  now.empty() ? " no addresses" : now.c_str());
      return kOk;
    }
    if (verb == "list") {
      if (json_) {
        JsonWriter w(/*indent=*/true);
        w.BeginObject().Key("groups").BeginArray();
        for (const auto& [name, g] : view_.groups()) Strings(w.BeginObject().Field("name", name), "members", g.members).EndObject();
        w.EndArray().EndObject();
        std::printf("%s\n", w.str().c_str());
        return kOk;
      }
      for (const auto& [name, g] : view_.groups()) std::printf("%-24s %s\n", name.c_str(), Join(g.members, " ").c_str());
      return kOk;
    }
    if (verb == "delete") return Delete(std::string(cluster::kGroups), Arg(args, 1, "a group name"), "group");
    throw Usage{"expected set, get, list or delete, got '" + verb + "'"};
  }

  int Vm(const std::vector<std::string>& args) {
    const std::string verb = Arg(args, 0, "label or list");
    Load();
    if (verb == "label") {
      const std::string vm = Arg(args, 1, "a VM name");
      if (!cluster::ValidName(vm)) throw Usage{"'" + vm + "' is not a VM name"};
      std::map<std::string, std::string> labels;
      if (auto it = view_.labels().find(vm); it != view_.labels().end()) labels = it->second;
      if (args.size() < 3) throw Usage{"expected KEY=VALUE..."};
      for (size_t i = 2; i < args.size(); i++) {
        const size_t eq = args[i].find('=');
        if (eq == std::string::npos || !cluster::ValidName(args[i].substr(0, eq))) {
          throw Usage{"expected KEY=VALUE (KEY= removes the label), got '" + args[i] + "'"};
        }
        if (eq + 1 == args[i].size()) labels.erase(args[i].substr(0, eq));
        else labels[args[i].substr(0, eq)] = args[i].substr(eq + 1);
      }
      Check(Retried([&] { return etcd_->Put(std::string(cluster::kLabels) + vm, cluster::EncodeLabels(labels)); }));
      std::string text;
      for (const auto& [k, v] : labels) text += " " + k + "=" + v;
      Say("vm " + vm + ":" + (text.empty() ? " no labels" : text));
      return kOk;
    }
    if (verb == "list") {
      JsonWriter w(/*indent=*/true);
      if (json_) w.BeginObject().Key("vms").BeginArray();
      else std::printf("%-20s %-16s %-32s %-20s %s\n", "VM", "HOSTS", "ADDRESSES", "LABELS", "POLICIES");
      for (const std::string& vm : view_.Vms()) {
        std::vector<std::string> hosts, addrs, labels, policies;
        for (const auto& [id, e] : view_.endpoints()) {
          if (id.first == vm) hosts.push_back(id.second + (e.state == "active" ? "" : "(" + e.state + ")"));
        }
        for (const fw::IpAddr& a : view_.VmAddresses(vm)) addrs.push_back(a.ToString());
        if (auto it = view_.labels().find(vm); it != view_.labels().end()) {
          for (const auto& [k, v] : it->second) labels.push_back(k + "=" + v);
        }
        for (const cluster::PolicyIntent* p : view_.PoliciesFor(vm)) policies.push_back(p->name);
        if (json_) {
          w.BeginObject().Field("name", vm);
          for (auto [key, list] : {std::pair{"hosts", &hosts}, std::pair{"addresses", &addrs},
                                   std::pair{"labels", &labels}, std::pair{"policies", &policies}}) {
            Strings(w, key, *list);
          }
          w.EndObject();
          continue;
        }
        auto col = [](const std::vector<std::string>& v) { return v.empty() ? std::string("-") : Join(v); };
        std::printf("%-20s %-16s %-32s %-20s %s\n", vm.c_str(), col(hosts).c_str(), col(addrs).c_str(),
                    col(labels).c_str(), col(policies).c_str());
      }
      if (json_) std::printf("%s\n", w.EndArray().EndObject().str().c_str());
      return kOk;
    }
    throw Usage{"expected label or list, got '" + verb + "'"};
  }

 private:
  static JsonWriter& Strings(JsonWriter& w, std::string_view key, const std::vector<std::string>& values) {
    w.Key(key).BeginArray();
    for (const std::string& v : values) w.String(v);
    return w.EndArray();
  }
  static std::string Arg(const std::vector<std::string>& args, size_t i, const std::string& what) {
    if (i >= args.size()) throw Usage{"expected " + what};
    return args[i];
  }
  int64_t Mod(const std::string& key) const {
    auto it = mods_.find(key);
    return it == mods_.end() ? 0 : it->second;
  }
  int Delete(const std::string& prefix, const std::string& name, const char* what) {
    int64_t deleted = 0;
    Check(Retried([&] { return etcd_->Delete(prefix + name, {}, &deleted); }));
    if (deleted == 0) throw Failed{std::string("no ") + what + " '" + name + "'"};
    Say(std::string(what) + " " + name + " deleted");
    return kOk;
  }
  void Say(const std::string& text) {
    if (json_) {
      JsonWriter w;
      w.BeginObject().Field("ok", true).Field("message", text).EndObject();
      std::printf("%s\n", w.str().c_str());
    } else {
      std::printf("%s\n", text.c_str());
    }
  }

  bool json_;
  std::unique_ptr<cluster::EtcdClient> etcd_;
  cluster::ClusterView view_;
  std::map<std::string, int64_t> mods_;
  int64_t revision_ = 0;
  std::vector<std::string> unreadable_;
};

}  // namespace

const char* const kClusterHelp =
    "Cluster intent, written straight to etcd (needs --etcd ENDPOINTS; TLS with --etcd-cert,\n"
    "--etcd-key, --etcd-ca):\n"
    "  policy apply NAME --applied-to TARGET[,TARGET...] [--priority N] FILE|-\n"
    "      FILE: one ruleset (with its _L2 companion) and address sets in the getrules grammar;\n"
    "      an address set may name `vm NAME,` and `group NAME,` members. TARGET: vm:NAME or\n"
    "      group:NAME. Policies that apply to a VM merge by priority (lower first), then name.\n"
    "      Checked first (text, rule ids unique across the cluster, address sets that agree);\n"
    "      a refused policy writes nothing.\n"
    "  policy get NAME | policy list | policy delete NAME\n"
    "  group set NAME MEMBER...     MEMBER: vm:NAME, label:KEY=VALUE, group:NAME, ip:ADDR[/LEN]\n"
    "  group get NAME | group list | group delete NAME\n"
    "  vm label NAME KEY=VALUE...   (KEY= removes a label)\n"
    "  vm list                      each VM's hosts, addresses, labels and policies\n";

bool IsClusterCommand(const std::string& cmd) { return cmd == "policy" || cmd == "group" || cmd == "vm"; }

int RunClusterCommand(const cluster::EtcdOptions& etcd, bool json, const std::string& cmd,
                      const std::vector<std::string>& args) {
  try {
    if (etcd.endpoints.empty()) throw Usage{"'" + cmd + "' works on the cluster: give --etcd ENDPOINTS"};
    Cluster c(etcd, json);
    if (cmd == "policy") return c.Policy(args);
    if (cmd == "group") return c.Group(args);
    return c.Vm(args);
  } catch (const Usage& e) {
    std::fprintf(stderr, "palisadectl %s: %s\nTry 'palisadectl %s --help'.\n", cmd.c_str(), e.message.c_str(), cmd.c_str());
    return kUsage;
  } catch (const Failed& e) {
    std::fprintf(stderr, "palisadectl %s: %s\n", cmd.c_str(), e.message.c_str());
    return kFailed;
  }
}

}  // namespace palisade::cli
