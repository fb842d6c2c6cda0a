// palisadectl's cluster commands: intent written straight to etcd (cluster/keys.h), never
// through a switch. Rule text is checked with the switch's own parser and against the other
// policies (rule ids unique across the cluster, address sets that agree) before anything is
// written; each change is one etcd transaction, refused when the policies changed meanwhile.
//
//   policy apply NAME --applied-to TARGET[,TARGET...] [--priority N] FILE|-
//   policy get NAME | policy list | policy delete NAME
//   group set NAME MEMBER... | group get NAME | group list | group delete NAME
//   vm label NAME KEY=VALUE... (KEY= removes a label) | vm list
//
// Not thread-safe (one command per process).
#pragma once

#include <string>
#include <vector>

#include "cluster/etcd_client.h"

namespace palisade::cli {

bool IsClusterCommand(const std::string& cmd);
// Runs one command; prints its result (JSON with `json`) or error. Returns the exit status:
// 0 done, 1 etcd refused or failed, 2 usage error.
int RunClusterCommand(const cluster::EtcdOptions& etcd, bool json, const std::string& cmd,
                      const std::vector<std::string>& args);
extern const char* const kClusterHelp;

}  // namespace palisade::cli
