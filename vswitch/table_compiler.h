// TableCompiler: rule tables compiled off the control loop. Each is prepared on the control
// thread (Switch::PrepareRules and friends: the file and the addresses its sets name, copied),
// compiled on a BackgroundPool, and installed by a post back to the control thread
// (Switch::CommitRules, which compiles again in place if what it depends on changed meanwhile).
// At most one table per port is on its way: a file load supersedes what is pending (the later
// file wins, the earlier is dropped, never installed over it); a recompile for new addresses
// waits for what is pending and starts after it, so it never drops a file.
//
// Thread-safety: everything on the control thread; the pool's jobs touch only their prepared
// rules. The destructor waits for compiles in the pool; their posts are then dropped.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "vswitch/background_pool.h"
#include "vswitch/control_queue.h"
#include "vswitch/switch.h"

namespace palisade {

class TableCompiler {
 public:
  using Done = std::function<void(const Status&)>;  // on the control thread, after the commit

  TableCompiler(Switch* sw, ControlQueue* queue) : sw_(sw), queue_(queue) {}
  ~TableCompiler() { *alive_ = false; }

  // A prepared rule file: compiled and installed unless a later file for the port comes first.
  void Load(const std::string& port, std::shared_ptr<Switch::PreparedRules> p, Done done);
  // The port's table again, with the addresses its sets name today (nothing when the port has
  // no table): now, or after what is on its way for the port.
  void Recompile(const std::string& port, Done done);
  // Whether a file (not a recompile) is on its way for the port.
  bool FileLoading(const std::string& port) const {
    auto it = pending_.find(port);
    return it != pending_.end() && it->second.file;
  }
  // What is on its way for the port is dropped (its table was set in place meanwhile, or its
  // file failed); a recompile waiting for it starts now.
  void Forget(const std::string& port);

 private:
  void Compile(const std::string& port, std::shared_ptr<Switch::PreparedRules> p, bool file, Done done);

  Switch* sw_;
  ControlQueue* queue_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // posted jobs check it
  struct Pending {
    uint64_t seq;
    bool file;
    Done again;  // a recompile asked for meanwhile, to start once this one is in
  };
  std::map<std::string, Pending> pending_;
  uint64_t compiles_ = 0;
  BackgroundPool pool_;  // last: its destructor waits for compiles, whose posts find alive_ false
};

}  // namespace palisade
