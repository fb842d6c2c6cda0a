#include "vswitch/rcu.h"

#include <rte_rcu_qsbr.h>

#include <cstdlib>
#include <new>

namespace palisade {

Rcu::Rcu(unsigned workers) {
  const unsigned n = workers ? workers : 1;
  size_t size = rte_rcu_qsbr_get_memsize(n);
  qsbr_ = static_cast<rte_rcu_qsbr*>(std::aligned_alloc(RTE_CACHE_LINE_SIZE, size));
  if (qsbr_ == nullptr || rte_rcu_qsbr_init(qsbr_, n) != 0) throw std::bad_alloc();
}

Rcu::~Rcu() {
  Reclaim(/*wait=*/true);
  std::free(qsbr_);
}

void Rcu::Register(unsigned id) { rte_rcu_qsbr_thread_register(qsbr_, id); }
void Rcu::Unregister(unsigned id) { rte_rcu_qsbr_thread_unregister(qsbr_, id); }
void Rcu::Online(unsigned id) { rte_rcu_qsbr_thread_online(qsbr_, id); }
void Rcu::Offline(unsigned id) { rte_rcu_qsbr_thread_offline(qsbr_, id); }
void Rcu::Quiescent(unsigned id) { rte_rcu_qsbr_quiescent(qsbr_, id); }

void Rcu::Synchronize() { rte_rcu_qsbr_synchronize(qsbr_, RTE_QSBR_THRID_INVALID); }

void Rcu::Retire(std::function<void()> free_fn) {
  retired_.push_back(Retired{rte_rcu_qsbr_start(qsbr_), std::move(free_fn)});
}

void Rcu::Reclaim(bool wait) {
  // Tokens grow monotonically, so the retired list is in grace order.
  size_t done = 0;
  while (done < retired_.size() && rte_rcu_qsbr_check(qsbr_, retired_[done].token, wait) == 1) {
    done++;
  }
  std::vector<Retired> ready(std::make_move_iterator(retired_.begin()),
                             std::make_move_iterator(retired_.begin() + done));
  retired_.erase(retired_.begin(), retired_.begin() + done);
  for (Retired& r : ready) r.free_fn();  // may retire more (a snapshot releasing a port)
}

}  // namespace palisade
