#include "daemon/state_store.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "common/utc_time.h"
#include "daemon/log.h"
#include "firewall/conn_segment.h"
#include "migration/port_state.h"
#include "vswitch/clock.h"

namespace palisade {
namespace {

namespace fs = std::filesystem;

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Saves of the state file when it holds what port security learned but no connections.
constexpr uint64_t kLearnedSaveMs = 1000;

bool IsSegment(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.rfind("port-", 0) == 0 &&
         (name.ends_with(".conns") || name.ends_with(".conns.later"));
}

}  // namespace

void StateStore::SetAside(const std::string& path, const std::string& why, const std::string& dir) {
  std::string stamp = UtcNowText();
  std::replace(stamp.begin(), stamp.end(), ':', '-');
  const std::string aside =
      (dir.empty() ? path : (fs::path(dir) / fs::path(path).filename()).string()) + ".bad-" + stamp;
  if (std::rename(path.c_str(), aside.c_str()) != 0) {
    Log(LogLevel::kError, "%s cannot be read (%s) nor moved aside: starting without it", path.c_str(), why.c_str());
    return;
  }
  Log(LogLevel::kError, "%s cannot be read (%s): kept as %s, starting without it", path.c_str(), why.c_str(),
      aside.c_str());
}

void StateStore::PrepareConnDir() {
  if (conn_dir_.empty()) return;
  const fs::path dir(conn_dir_), prev(conn_dir_ + ".restore");
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::exists(prev, ec)) {
      fs::rename(dir, prev, ec);
    } else {
      // A start that was cut off while restoring: its segments hold what it took from prev
      // and what changed since; both are read, prev first.
      for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
        if (IsSegment(e.path()) && e.path().extension() == ".conns") {
          fs::rename(e.path(), prev / (e.path().filename().string() + ".later"), ec);
        }
      }
    }
  }
  fs::create_directories(dir, ec);
  if (ec) Log(LogLevel::kError, "cannot create %s: %s", conn_dir_.c_str(), ec.message().c_str());
}

void StateStore::RestoreSegments() {
  const fs::path prev(conn_dir_ + ".restore");
  std::error_code ec;
  if (conn_dir_.empty() || !fs::exists(prev, ec)) return;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(prev, ec)) files.push_back(e.path());
  std::sort(files.begin(), files.end());  // port-X.conns before port-X.conns.later
  const std::string boot_id = fw::BootId();
  size_t ports = 0, conns = 0;
  for (const fs::path& file : files) {
    std::string name = file.filename().string();
    if (!IsSegment(file)) {
      if (name.find(".bad-") != std::string::npos) fs::rename(file, fs::path(conn_dir_) / name, ec);
      continue;
    }
    name = name.substr(5, name.find(".conns") - 5);
    PortInfo port;
    if (!sw_->GetPort(name, &port).ok()) continue;  // removed since
    std::vector<fw::Conn> entries;
    if (Status s = fw::ReadSegment(file.string(), boot_id, BootNs(), &entries); !s.ok()) {
      SetAside(file.string(), s.message(), conn_dir_);
      continue;
    }
    size_t taken = 0;
    if (Status s = sw_->ApplyDelta(name, entries, {}, &taken); !s.ok()) {
      Log(LogLevel::kError, "%s: %s", file.c_str(), s.message().c_str());
      continue;
    }
    ports++;
    conns += taken;
  }
  fs::remove_all(prev, ec);
  if (files.empty()) return;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  Log(LogLevel::kInfo, "restored %zu connection(s) of %zu port(s) from %s in %lld ms", conns, ports,
      conn_dir_.c_str(), static_cast<long long>(ms.count()));
}

void StateStore::Restore() {
  // A crash during a save leaves its temporary file; the last complete one is in place.
  for (const std::string& path : {config_path_, connections_path_}) unlink((path + ".tmp").c_str());
  PrepareConnDir();

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
        if (!p.moved_to.empty()) {
          Log(LogLevel::kWarning,
              "port %s: its guest was being handed over to %s when the switch stopped: the port stays closed "
              "until %s says where the guest is, or the guest starts here again",
              p.spec.name.c_str(), p.moved_to.c_str(), p.moved_to.c_str());
        }
      }
      Log(LogLevel::kInfo, "restored the configuration of %zu port(s) from %s", configured.size(),
          config_path_.c_str());
    }
  }
  RestoreFile(have_config, configured);
}

void StateStore::RestoreFile(bool have_config, const std::set<std::string>& configured) {
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
  if (Status s = migration::SaveSwitchState(config_path_, Take().ports, sw_->mac_ageing_s()); !s.ok()) {
    Log(LogLevel::kError, "cannot save the configuration: %s", s.message().c_str());
    return Status::Unavailable("the change is in effect but not saved (" + s.message() +
                               "): a restart would lose it");
  }
  saved_changes_ = sw_->config_changes();
  return Status::Ok();
}

StateStore::~StateStore() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (saver_.joinable()) saver_.join();
}

StateStore::Snapshot StateStore::Take() const {
  Snapshot snap;
  for (const std::string& name : sw_->PortNames()) {
    PortExport e;
    if (!sw_->ExportPort(name, &e, /*with_connections=*/false).ok()) continue;  // still arriving
    std::shared_ptr<fw::StatefulFilter> filter;
    (void)sw_->StatefulFilterOf(name, &filter);
    snap.ports.push_back(std::move(e));
    snap.filters.push_back(std::move(filter));
  }
  return snap;
}

Status StateStore::Write(Snapshot snap, bool with_conns, size_t* port_count, size_t* conn_count) const {
  size_t conns = 0;
  for (size_t i = 0; i < snap.ports.size(); i++) {
    if (!snap.filters[i] || !with_conns) continue;
    const uint64_t now = NowNs();
    std::vector<fw::Conn>& out = snap.ports[i].conns;
    uint32_t cursor = 0;
    while (cursor != fw::ConnTable::kNil) cursor = snap.filters[i]->ExportConns(cursor, 4096, now, &out);
    conns += out.size();
  }
  if (port_count) *port_count = snap.ports.size();
  if (conn_count) *conn_count = conns;
  return migration::SaveSwitchState(connections_path_, snap.ports);
}

void StateStore::SaverLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return stop_ || pending_.has_value(); });
    if (stop_) return;
    Snapshot snap = std::move(*pending_);
    pending_.reset();
    lock.unlock();
    const auto t0 = std::chrono::steady_clock::now();
    if (Status s = Write(std::move(snap), conn_dir_.empty()); !s.ok()) {
      Log(LogLevel::kError, "cannot save the connections: %s", s.message().c_str());
    }
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    lock.lock();
    busy_ = false;
    last_save_ms_ = static_cast<uint64_t>(took.count());
    cv_.notify_all();
  }
}

void StateStore::Tick(uint64_t now_ms) {
  if (now_ms < next_save_ms_) return;
  // With a connection directory the file holds only what was learned: written when that (or
  // the set of ports) changed, not every period.
  const std::pair<uint64_t, uint64_t> version{sw_->config_changes(), sw_->learned_version()};
  if (!conn_dir_.empty() && version == saved_learned_) return;
  uint64_t last;
  {
    std::lock_guard lock(mu_);
    if (busy_) return;  // the previous save is still being written
    last = last_save_ms_;
  }
  Snapshot snap = Take();
  saved_learned_ = version;
  {
    std::lock_guard lock(mu_);
    pending_ = std::move(snap);
    busy_ = true;
  }
  if (!saver_.joinable()) saver_ = std::thread([this] { SaverLoop(); });
  cv_.notify_all();
  next_save_ms_ = now_ms + (conn_dir_.empty() ? std::max<uint64_t>(200, 20 * last) : kLearnedSaveMs);
}

void StateStore::SaveAll() {
  (void)SaveConfig();
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !busy_; });
  }
  size_t ports = 0, conns = 0;
  if (Status s = Write(Take(), /*with_conns=*/true, &ports, &conns); !s.ok()) {
    Log(LogLevel::kError, "cannot save the connections: %s (the segments in %s keep them)", s.message().c_str(),
        conn_dir_.c_str());
    return;
  }
  Log(LogLevel::kInfo, "saved %zu port(s) and %zu connection(s) to %s", ports, conns, connections_path_.c_str());
  // The file holds them now, in a form any later build reads; segments would only be read twice.
  std::error_code ec;
  if (!conn_dir_.empty()) {
    for (const fs::directory_entry& e : fs::directory_iterator(conn_dir_, ec)) {
      if (IsSegment(e.path())) fs::remove(e.path(), ec);
    }
  }
}

}  // namespace palisade
