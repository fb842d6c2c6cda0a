// SpinLock: a test-and-test-and-set lock for short critical sections shared by datapath
// workers and the control thread (taken once per batch, never per packet). Thread-safe.
#pragma once

#include <atomic>

#include <immintrin.h>

namespace palisade::fw {

class SpinLock {
 public:
  void lock() {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) _mm_pause();
    }
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace palisade::fw
