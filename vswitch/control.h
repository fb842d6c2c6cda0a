// Control: runs parsed commands against the Switch and renders the reply as one JSON line,
// {"ok":true,...} or {"ok":false,"error":"..."}. Also loads the config file.
// Control thread only.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "vswitch/command.h"
#include "vswitch/switch.h"

namespace palisade {

// Runs one command and returns the JSON reply (no trailing newline).
std::string Execute(Switch& sw, const Command& cmd);
// Parses and runs one line from a client of the control plane: `rules load PATH` is refused
// there (the daemon opens no file a client names; the text comes through setRules).
std::string ExecuteLine(Switch& sw, std::string_view line);

// Reads a config file: one command per line, '#' comments, blank lines ignored; only commands
// that change the switch. Errors read "FILE:LINE:COLUMN: message". Nothing is applied here.
Status LoadConfig(const std::string& path, std::vector<Command>* out);

}  // namespace palisade
