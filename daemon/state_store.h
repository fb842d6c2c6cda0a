// StateStore: what palisaded keeps so that a crash (SIGKILL, OOM) loses nothing accepted.
//
//  - The configuration, `DIR/config`: every port (vhost-user and uplink) with its slots, rule
//    tables, address sets and firewall options, and the switch's MAC ageing. Saved after every
//    control job that changed it (ControlQueue's hook), atomically and synced, before the
//    caller hears that the change succeeded.
//  - The connections, the state file (tmpfs by default: they outlive the process, not the
//    host): every port's connections and what port security learned, saved on a period that
//    grows with the cost of a save (every 200 ms, or 20 times a save's duration when that is
//    longer), and once more on a clean stop. The control thread only takes each port's
//    configuration and filter; a saver thread walks the tables (the filters are thread-safe)
//    and writes the file, so RPCs are not held up by a large table.
//
// Restore, at start and before the config file runs: the configuration, then the connections
// into the ports it brought back (re-checked against their rules). A port the connections file
// names but the configuration does not was removed since, and stays removed; without a stored
// configuration (a first start, or a file left by an older palisaded) the connections file's
// ports come back whole. A file that cannot be read (torn, corrupted, another version) is moved
// aside as FILE.bad-TIME with a message saying why, and the start goes on without it.
//
// Thread-safety: the control thread only (the saver thread is internal).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "vswitch/switch.h"

namespace palisade {

class StateStore {
 public:
  StateStore(Switch* sw, std::string config_path, std::string connections_path)
      : sw_(sw), config_path_(std::move(config_path)), connections_path_(std::move(connections_path)) {}
  ~StateStore();  // waits for a save in progress

  void Restore();
  // The configuration, if it changed since the last save.
  Status SaveConfig();
  // The connections, when due at `now_ms` (a monotonic clock).
  void Tick(uint64_t now_ms);
  // Everything, now (a clean stop).
  void SaveAll();

 private:
  // Each port's configuration and its stateful filter (control thread); then its connections
  // from the filter and the file (any thread).
  struct Snapshot {
    std::vector<PortExport> ports;
    std::vector<std::shared_ptr<fw::StatefulFilter>> filters;  // per port; null: none
  };
  Snapshot Take() const;
  Status Write(Snapshot snap, size_t* ports = nullptr, size_t* conns = nullptr) const;
  void SaverLoop();
  void SetAside(const std::string& path, const std::string& why);

  Switch* sw_;
  std::string config_path_, connections_path_;
  uint64_t saved_changes_ = UINT64_MAX;  // Switch::config_changes() at the last save
  uint64_t next_save_ms_ = 0;

  std::thread saver_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Snapshot> pending_;  // guarded by mu_
  bool busy_ = false, stop_ = false;  // guarded by mu_
  uint64_t last_save_ms_ = 0;         // guarded by mu_: how long the last save took
};

}  // namespace palisade
