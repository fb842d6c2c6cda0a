// Command: the switch's control commands as text, one per line. The config file and
// `palisadectl exec` (the RPC's execute method) speak this language:
//
//   port add NAME --vhost-user PATH [--client] [--vm VM] [--mac MAC] [--ip ADDR]...
//   port add NAME --uplink DEVARGS
//   port del NAME
//   port list | port stats [NAME]
//   filter attach PORT --slot N --agent sfw|swsec|counting|none [--policy failClosed|failOpen]
//   filter detach PORT --slot N
//   filter list
//   rules load FILTER PATH | rules show FILTER [--stats]
//   addrsets show FILTER | addrset set FILTER NAME [ADDR[/LEN]]...
//   flows show FILTER [--count] [SELECTORS] | flows flush FILTER [SELECTORS]
//      SELECTORS: --src ADDR[/LEN] --dst ADDR[/LEN] --proto P --sport N --dport N
//   firewall show FILTER
//   firewall set FILTER [--limit N] [--recheck on|off] [--timeout NAME=SECONDS]...
//   worker stats
//   mac show | mac flush
//   set mac-ageing SECONDS
//   help
//
// Parsing is pure (no switch needed); errors give the column of the offending word.
// Value types; thread-compatible.
#pragma once

#include <string>
#include <string_view>

#include <optional>
#include <utility>
#include <vector>

#include "common/status.h"
#include "vswitch/switch.h"

namespace palisade {

struct Command {
  enum class Verb {
    kPortAdd, kPortDel, kPortList, kPortStats, kFilterAttach, kFilterDetach, kFilterList,
    kWorkerStats, kMacShow, kMacFlush, kSetMacAgeing, kHelp,
    kRulesLoad, kRulesShow, kAddrSetsShow, kAddrSetSet, kFlowsShow, kFlowsFlush,
    kFirewallShow, kFirewallSet,
  };
  Verb verb = Verb::kHelp;
  PortSpec port;       // kPortAdd
  FilterSpec filter;   // kFilterAttach, kFilterDetach (slot)
  std::string target;  // port name for del/stats/filter
  uint32_t value = 0;  // kSetMacAgeing
  std::string path;    // kRulesLoad
  bool stats = false;  // kRulesShow --stats
  bool count = false;  // kFlowsShow --count
  fw::FlowSelector selector;
  fw::AddrSet addrset;
  std::optional<uint32_t> limit;
  std::optional<bool> recheck;
  std::vector<std::pair<std::string, uint32_t>> timeouts;

  // Whether the command changes the switch (the config file may hold only these).
  bool mutates() const;
};

// Errors read "column C: message".
Status ParseCommand(std::string_view line, Command* out);
const char* CommandHelp();

}  // namespace palisade
