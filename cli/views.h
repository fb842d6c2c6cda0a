// The operator's views of palisadectl: RPC results rendered in the shapes of
// ../shared/FORMATS.md (summarize-dvfilter, getrules -s, getflows, ...) and as tables.
// Pure functions of the results; thread-compatible.
#pragma once

#include <string>

#include "rpc/palisade.capnp.h"

namespace palisade::cli {

std::string SummarizeDvfilter(capnp::List<rpc::PortFilters>::Reader ports);
std::string RuleStatsLines(capnp::List<rpc::RuleStats>::Reader stats);
std::string FlowsHeader(size_t active);
std::string FlowLine(rpc::Flow::Reader f);
std::string PortTable(capnp::List<rpc::PortInfo>::Reader ports, bool stats);
// One port's bindings: socket and mode, link, VM, MAC, addresses, allowances.
std::string PortDetail(rpc::PortInfo::Reader port);
std::string WorkerTable(capnp::List<rpc::WorkerStats>::Reader workers);
std::string MacTable(capnp::List<rpc::MacEntry>::Reader macs, uint32_t ageing);
std::string FirewallView(const std::string& filter, rpc::FirewallOptions::Reader o);
std::string MigrationTable(capnp::List<rpc::Migration>::Reader migrations);
std::string ConnectionTable(const std::string& socket, capnp::List<rpc::Connection>::Reader conns);

// "ssh(22)", "Unknown(44194)": the service names getflows prints.
std::string Service(uint16_t port);

}  // namespace palisade::cli
