// Port state on the wire and on disk: PortExport values (vswitch/switch.h) to and from the
// PortState / SwitchState messages of port_state.capnp. The same messages serve live
// migration (switch to switch) and restarts (palisaded saves them on a clean stop and restores
// them at start). A reader refuses a version it cannot read.
// Pure functions; thread-compatible.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "migration/port_state.capnp.h"
#include "vswitch/switch.h"

namespace palisade::migration {

void Write(const PortExport& in, PortState::Builder out);
Status Read(PortState::Reader in, PortExport* out);

// A live migration's delta (see PortDelta in port_state.capnp).
struct Delta {
  std::string name;
  uint32_t round = 0;
  bool final = false;
  std::vector<fw::Conn> changed;  // expires_s: seconds left
  std::vector<fw::ConnKey> removed;
};
void WriteDelta(const Delta& in, PortDelta::Builder out);
Status ReadDelta(PortDelta::Reader in, Delta* out);

// The whole switch, to a file written atomically and synced (a temporary file renamed into
// place, the directory synced after): a crash leaves the old file or the new, never a mix.
// mac_ageing_s: the switch's option (0: the default).
Status SaveSwitchState(const std::string& path, const std::vector<PortExport>& ports,
                       uint32_t mac_ageing_s = 0);
Status LoadSwitchState(const std::string& path, std::vector<PortExport>* ports,
                       uint32_t* mac_ageing_s = nullptr);

}  // namespace palisade::migration
