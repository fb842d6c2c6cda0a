#include "slot/owner.h"

#include <immintrin.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

namespace palisade {
namespace {

// The owner whose state this thread may touch now: the worker's own (while it runs) or the one
// whose call it is running. A call to it runs at once.
thread_local const Owner* tls_inside = nullptr;

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && std::atomic<uint32_t>::is_always_lock_free,
              "a futex word");
uint32_t* Word(std::atomic<uint32_t>* a) { return reinterpret_cast<uint32_t*>(a); }

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
    if (state_.load(std::memory_order_seq_cst) == kNapping) {
      // Whether the nap has begun or not: it checks for a request after it read wakes_.
      wakes_.fetch_add(1, std::memory_order_seq_cst);
      syscall(SYS_futex, Word(&wakes_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
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

void Owner::Back() {
  uint8_t away = kAway;
  while (!state_.compare_exchange_weak(away, kRunning, std::memory_order_seq_cst)) {
    away = kAway;  // a caller is running a call: it ends in microseconds
    _mm_pause();
  }
  tls_inside = this;
}

bool Owner::Nap(uint32_t us) {
  state_.store(kNapping, std::memory_order_seq_cst);
  const uint32_t wakes = wakes_.load(std::memory_order_seq_cst);
  if (request_.load(std::memory_order_seq_cst) == nullptr) {
    const timespec ts{static_cast<time_t>(us / 1000000), static_cast<long>(us % 1000000) * 1000};
    syscall(SYS_futex, Word(&wakes_), FUTEX_WAIT_PRIVATE, wakes, &ts, nullptr, 0);
  }
  state_.store(kRunning, std::memory_order_seq_cst);  // callers never take a napping owner
  return request_.load(std::memory_order_relaxed) != nullptr;
}

void Owner::Away() {
  Serve();
  tls_inside = nullptr;
  state_.store(kAway, std::memory_order_seq_cst);
}

}  // namespace palisade
