#include "daemon/state_store.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>

#include "common/utc_time.h"
#include "daemon/log.h"
#include "migration/port_state.h"

namespace palisade {
namespace {

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

}  // namespace

void StateStore::SetAside(const std::string& path, const std::string& why) {
  std::string stamp = UtcNowText();
  std::replace(stamp.begin(), stamp.end(), ':', '-');
  const std::string aside = path + ".bad-" + stamp;
  if (std::rename(path.c_str(), aside.c_str()) != 0) {
    Log(LogLevel::kError, "%s cannot be read (%s) nor moved aside: starting without it", path.c_str(), why.c_str());
    return;
  }
  Log(LogLevel::kError, "%s cannot be read (%s): kept as %s, starting without it", path.c_str(), why.c_str(),
      aside.c_str());
}

void StateStore::Restore() {
  // A crash during a save leaves its temporary file; the last complete one is in place.
  for (const std::string& path : {config_path_, connections_path_}) unlink((path + ".tmp").c_str());

  bool have_config = false;
  std::set<std::string> configured;
  if (Exists(config_path_)) {
    std::vector<PortExport> ports;
    uint32_t ageing = 0;
    if (Status s = migration::LoadSwitchState(config_path_, &ports, &ageing); !s.ok()) {
      SetAside(config_path_, s.message());
    } else {
      have_config = true;
      if (ageing != 0) (void)sw_->SetMacAgeing(ageing);
      for (PortExport& p : ports) {
        p.conns.clear();
        if (Status s = sw_->ImportPort(p); !s.ok()) {
          Log(LogLevel::kError, "%s: port '%s' not restored: %s", config_path_.c_str(), p.spec.name.c_str(),
              s.message().c_str());
          continue;
        }
        configured.insert(p.spec.name);
      }
      Log(LogLevel::kInfo, "restored the configuration of %zu port(s) from %s", configured.size(),
          config_path_.c_str());
    }
  }
  if (!Exists(connections_path_)) return;
  std::vector<PortExport> ports;
  if (Status s = migration::LoadSwitchState(connections_path_, &ports); !s.ok()) {
    SetAside(connections_path_, s.message());
    return;
  }
  size_t conns = 0, restored = 0;
  for (const PortExport& p : ports) {
    size_t taken = 0;
    Status s;
    if (configured.count(p.spec.name)) {
      s = sw_->RestoreConnections(p, &taken);
    } else if (!have_config) {
      s = sw_->ImportPort(p, &taken);  // no configuration kept: the port comes back whole
    } else {
      continue;  // removed since the connections were saved
    }
    if (!s.ok()) {
      Log(LogLevel::kError, "%s: port '%s': %s", connections_path_.c_str(), p.spec.name.c_str(), s.message().c_str());
      continue;
    }
    restored++;
    conns += taken;
  }
  // Restored once: a start after a clean stop without a save must not bring back connections
  // that have ended since.
  std::rename(connections_path_.c_str(), (connections_path_ + ".restored").c_str());
  Log(LogLevel::kInfo, "restored %zu port(s) and %zu connection(s) from %s", restored, conns,
      connections_path_.c_str());
}

Status StateStore::SaveConfig() {
  if (sw_->config_changes() == saved_changes_) return Status::Ok();
  std::vector<PortExport> ports;
  for (const std::string& name : sw_->PortNames()) {
    PortExport e;
    if (sw_->ExportPort(name, &e, /*with_connections=*/false).ok()) ports.push_back(std::move(e));
  }
  if (Status s = migration::SaveSwitchState(config_path_, ports, sw_->mac_ageing_s()); !s.ok()) {
    Log(LogLevel::kError, "cannot save the configuration: %s", s.message().c_str());
    return Status::Unavailable("the change is in effect but not saved (" + s.message() +
                               "): a restart would lose it");
  }
  saved_changes_ = sw_->config_changes();
  return Status::Ok();
}

Status StateStore::SaveConnections(size_t* port_count, size_t* conn_count) {
  std::vector<PortExport> ports;
  size_t conns = 0;
  for (const std::string& name : sw_->PortNames()) {
    PortExport e;
    if (!sw_->ExportPort(name, &e).ok()) continue;  // still arriving by live migration
    conns += e.conns.size();
    ports.push_back(std::move(e));
  }
  if (port_count) *port_count = ports.size();
  if (conn_count) *conn_count = conns;
  return migration::SaveSwitchState(connections_path_, ports);
}

void StateStore::Tick(uint64_t now_ms) {
  if (now_ms < next_save_ms_) return;
  const auto t0 = std::chrono::steady_clock::now();
  if (Status s = SaveConnections(); !s.ok()) Log(LogLevel::kError, "cannot save the connections: %s", s.message().c_str());
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  next_save_ms_ = now_ms + std::max<uint64_t>(200, 20 * static_cast<uint64_t>(took.count()));
}

void StateStore::SaveAll() {
  (void)SaveConfig();
  size_t ports = 0, conns = 0;
  if (Status s = SaveConnections(&ports, &conns); !s.ok()) {
    Log(LogLevel::kError, "cannot save the connections: %s", s.message().c_str());
    return;
  }
  Log(LogLevel::kInfo, "saved %zu port(s) and %zu connection(s) to %s", ports, conns, connections_path_.c_str());
}

}  // namespace palisade
