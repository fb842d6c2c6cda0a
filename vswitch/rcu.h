// Rcu: publishing control changes to datapath workers without pausing them, on DPDK's
// rte_rcu_qsbr.
//
// Workers register once, report a quiescent state after every poll loop, and go offline while
// they sleep in their idle back-off. The control thread swaps a pointer, hands the old object to
// Retire(), and Reclaim() frees it once every online worker has passed a quiescent state.
// Synchronize() blocks until that point (used by vhost device teardown, which must not return
// while a worker may still be inside a burst on the device).
//
// Thread-safety: Online/Offline/Quiescent from worker `id` only. Retire/Reclaim on the control
// thread. Synchronize from any non-worker thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

struct rte_rcu_qsbr;

namespace palisade {

class Rcu {
 public:
  explicit Rcu(unsigned workers);
  ~Rcu();
  Rcu(const Rcu&) = delete;
  Rcu& operator=(const Rcu&) = delete;

  void Register(unsigned id);
  void Unregister(unsigned id);
  void Online(unsigned id);
  void Offline(unsigned id);
  void Quiescent(unsigned id);

  void Synchronize();
  void Retire(std::function<void()> free_fn);
  // Frees what is safe to free now; with wait, blocks until everything retired is freed.
  void Reclaim(bool wait = false);

 private:
  struct Retired {
    uint64_t token;
    std::function<void()> free_fn;
  };
  rte_rcu_qsbr* qsbr_;
  std::vector<Retired> retired_;
};

}  // namespace palisade
