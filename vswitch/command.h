// Command: the switch's control commands as text, one per line. The config file and the
// control socket speak the same language, so a config file is what an operator would type:
//
//   port add NAME --vhost-user PATH [--client]
//   port add NAME --uplink DEVARGS
//   port del NAME
//   port list | port stats [NAME]
//   filter attach PORT --slot N --agent counting|none [--policy failClosed|failOpen]
//   filter detach PORT --slot N
//   filter list
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

#include "common/status.h"
#include "vswitch/switch.h"

namespace palisade {

struct Command {
  enum class Verb {
    kPortAdd, kPortDel, kPortList, kPortStats, kFilterAttach, kFilterDetach, kFilterList,
    kWorkerStats, kMacShow, kMacFlush, kSetMacAgeing, kHelp,
  };
  Verb verb = Verb::kHelp;
  PortSpec port;       // kPortAdd
  FilterSpec filter;   // kFilterAttach, kFilterDetach (slot)
  std::string target;  // port name for del/stats/filter
  uint32_t value = 0;  // kSetMacAgeing

  // Whether the command changes the switch (the config file may hold only these).
  bool mutates() const;
};

// Errors read "column C: message".
Status ParseCommand(std::string_view line, Command* out);
const char* CommandHelp();

}  // namespace palisade
