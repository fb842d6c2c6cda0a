#include "vswitch/table_compiler.h"

namespace palisade {

void TableCompiler::Load(const std::string& port, std::shared_ptr<Switch::PreparedRules> p, Done done) {
  Done again;  // a recompile waiting for the superseded table waits for this one instead
  if (auto it = pending_.find(port); it != pending_.end()) again = std::move(it->second.again);
  Compile(port, std::move(p), /*file=*/true, std::move(done));
  pending_[port].again = std::move(again);
}

void TableCompiler::Recompile(const std::string& port, Done done) {
  if (auto it = pending_.find(port); it != pending_.end()) {
    it->second.again = std::move(done);  // one recompile after it covers every change until then
    return;
  }
  auto p = std::make_shared<Switch::PreparedRules>();
  if (!sw_->PrepareRecompile(port, p.get()).ok()) return;  // gone, or no table yet
  Compile(port, std::move(p), /*file=*/false, std::move(done));
}

void TableCompiler::Forget(const std::string& port) {
  auto it = pending_.find(port);
  if (it == pending_.end()) return;
  Done again = std::move(it->second.again);
  pending_.erase(it);
  if (again) Recompile(port, std::move(again));
}

void TableCompiler::Compile(const std::string& port, std::shared_ptr<Switch::PreparedRules> p, bool file,
                            Done done) {
  const uint64_t seq = ++compiles_;
  pending_[port] = Pending{seq, file, nullptr};
  pool_.Run([this, alive = alive_, queue = queue_, p = std::move(p), port, seq, done = std::move(done)]() {
    Switch::CompileRules(p.get());
    queue->Post([this, alive, p, port, seq, done]() {
      if (!*alive) return;
      auto it = pending_.find(port);
      if (it == pending_.end() || it->second.seq != seq) return;  // a later table for the port is on its way
      Done again = std::move(it->second.again);
      pending_.erase(it);
      done(sw_->CommitRules(std::move(*p)));
      if (again) Recompile(port, std::move(again));
    });
  });
}

}  // namespace palisade
