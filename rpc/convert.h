// Conversions between the control plane's messages (palisade.capnp) and the switch's values:
// requests are parsed and validated here (errors name the bad value), results are written into
// replies. Pure functions; thread-compatible.
#pragma once

#include "common/status.h"
#include "firewall/stateful_filter.h"
#include "migration/migration_service.h"
#include "rpc/palisade.capnp.h"
#include "vswitch/switch.h"

namespace palisade::rpc {

Status ToSpec(PortSpec::Reader r, palisade::PortSpec* out);
void FromSpec(const palisade::PortSpec& s, PortSpec::Builder b);
Status ToSelector(FlowSelector::Reader r, fw::FlowSelector* out);

void FillPort(const palisade::PortInfo& p, PortInfo::Builder b);
void FillFilters(const palisade::PortInfo& p, PortFilters::Builder b);
void FillFlow(const fw::FlowInfo& f, Flow::Builder b);
void FillMigration(const migration::MigrationInfo& m, Migration::Builder b);

}  // namespace palisade::rpc
