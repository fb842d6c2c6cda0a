#include "slot/owner.h"

#include <immintrin.h>
#include <time.h>

namespace palisade {
namespace {

// The owner whose state this thread may touch now: the worker's own (while it runs) or the one
// whose call it is running. A call to it runs at once.
thread_local const Owner* tls_inside = nullptr;

}  // namespace

void Owner::RunHere(void (*fn)(void*), void* arg) {
  const Owner* outer = tls_inside;
  tls_inside = this;
  fn(arg);
  tls_inside = outer;
}

void Owner::Call(void (*fn)(void*), void* arg) {
  if (tls_inside == this) {
    fn(arg);
    return;
  }
  std::lock_guard lock(callers_);
  Request r{fn, arg};
  request_.store(&r, std::memory_order_seq_cst);
  for (unsigned spins = 0; !r.done.load(std::memory_order_acquire); spins++) {
    // Away (asleep, stopped): run it here, unless the owner took it on its way out.
    uint8_t away = kAway;
    if (state_.load(std::memory_order_seq_cst) == kAway &&
        state_.compare_exchange_strong(away, kBorrowed, std::memory_order_seq_cst)) {
      Request* mine = &r;
      const bool taken_back = request_.compare_exchange_strong(mine, nullptr, std::memory_order_seq_cst);
      if (taken_back) RunHere(fn, arg);
      state_.store(kAway, std::memory_order_release);
      if (taken_back) return;
      continue;  // the owner ran it before going away: done is (or is about to be) set
    }
    if (spins < 256) {
      _mm_pause();
    } else {
      timespec ts{0, 5000};  // the worker is in a burst: a loop takes microseconds
      nanosleep(&ts, nullptr);
    }
  }
}

void Owner::ServeSlow() {
  Request* r = request_.exchange(nullptr, std::memory_order_seq_cst);
  if (r == nullptr) return;  // its caller took it back
  r->fn(r->arg);             // tls_inside is this already (Back)
  r->done.store(true, std::memory_order_release);
}

bool Owner::Back() {
  uint8_t away = kAway;
  bool waited = false;
  while (!state_.compare_exchange_weak(away, kRunning, std::memory_order_seq_cst)) {
    waited |= away == kBorrowed;  // a caller is running a call: it ends in microseconds
    away = kAway;
    _mm_pause();
  }
  tls_inside = this;
  return waited;
}

void Owner::Away() {
  Serve();
  tls_inside = nullptr;
  state_.store(kAway, std::memory_order_seq_cst);
}

}  // namespace palisade
