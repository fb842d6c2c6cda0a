// StateStore: what palisaded keeps so that a crash (SIGKILL, OOM) loses nothing accepted.
//
//  - The configuration, `DIR/config`: every port (vhost-user and uplink) with its slots, rule
//    tables, address sets and firewall options, and the switch's MAC ageing. Saved after every
//    control job that changed it (ControlQueue's hook), atomically and synced, before the
//    caller hears that the change succeeded.
//  - The connections, in the connection directory (tmpfs): each stateful filter keeps its
//    table in a segment file there (fw::ConnSegment) that the datapath writes in place, so a
//    crash loses none of them. Without that directory they go into the state file instead.
//  - The state file (tmpfs by default: it outlives the process, not the host): what port
//    security learned, saved within a second of a change (with a connection directory) or on a
//    period that grows with the cost of a save (every 200 ms, or 20 times a save's duration)
//    when it holds the connections too; and everything once more on a clean stop, which then removes the
//    segments: a start after a clean stop reads the portable file, one after a crash the
//    segments. The control thread only takes each port's configuration and filter; a saver
//    thread walks the tables (the filters are thread-safe) and writes the file.
//
// Restore, at start: before the config file runs, the configuration, then the state file's
// connections into the ports it brought back; after the config file, the segments' (newer),
// into the ports that exist then, re-checked against their final rules. A port the connections name but the configuration does not was removed
// since, and stays removed; without a stored configuration (a first start, or a file left by
// an older palisaded) the state file's ports come back whole. A file that cannot be read (torn,
// corrupted, another version or layout, a segment from before a reboot) is moved aside as
// FILE.bad-TIME with a message saying why, and the start goes on without it. The previous
// segments are moved to DIR.restore first and removed once read, so a crash during the
// restore itself loses nothing either.
//
// Thread-safety: the control thread only (the saver thread is internal).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"
#include "vswitch/switch.h"

namespace palisade {

class StateStore {
 public:
  // conn_dir: where the switch's filters keep their segments (Switch::Options::conn_dir);
  // empty: none.
  StateStore(Switch* sw, std::string config_path, std::string connections_path, std::string conn_dir)
      : sw_(sw),
        config_path_(std::move(config_path)),
        connections_path_(std::move(connections_path)),
        conn_dir_(std::move(conn_dir)) {}
  ~StateStore();  // waits for a save in progress

  // Before any port exists and before the config file runs.
  void Restore();
  // After the config file ran.
  void RestoreSegments();
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
  Status Write(Snapshot snap, bool with_conns, size_t* ports = nullptr, size_t* conns = nullptr) const;
  void SaverLoop();
  // Renames path to FILE.bad-TIME in `dir` (default: its own directory).
  void SetAside(const std::string& path, const std::string& why, const std::string& dir = "");
  // Moves the previous process's segments out of the way of the new ones (the switch creates
  // them as filters attach), to DIR.restore.
  void PrepareConnDir();
  // The state file's connections and what port security learned.
  void RestoreFile(bool have_config, const std::set<std::string>& configured);

  Switch* sw_;
  std::string config_path_, connections_path_, conn_dir_;
  uint64_t saved_changes_ = UINT64_MAX;  // Switch::config_changes() at the last save
  uint64_t next_save_ms_ = 0;
  // (config_changes, learned_version) at the last periodic save.
  std::pair<uint64_t, uint64_t> saved_learned_{UINT64_MAX, UINT64_MAX};

  std::thread saver_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Snapshot> pending_;  // guarded by mu_
  bool busy_ = false, stop_ = false;  // guarded by mu_
  uint64_t last_save_ms_ = 0;         // guarded by mu_: how long the last save took
};

}  // namespace palisade
