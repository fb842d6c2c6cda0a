// SpscRing: a fixed-size single-producer single-consumer queue of trivially copyable values.
// Used for events a worker hands to the control thread (e.g. MAC learning) without locks.
// Thread-safety: exactly one thread pushes and one thread pops.
#pragma once

#include <atomic>
#include <cstddef>
#include <type_traits>

namespace palisade {

template <typename T, size_t N>
class SpscRing {
  static_assert((N & (N - 1)) == 0, "N must be a power of two");
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  bool Push(const T& value) {
    size_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) == N) return false;
    items_[head & (N - 1)] = value;
    head_.store(head + 1, std::memory_order_release);
    return true;
  }

  // In place, for large items: the producer fills Reserve()'s slot (null when full) and
  // Publish()es it; the consumer reads Front() (null when empty) and Release()s it.
  T* Reserve() {
    size_t head = head_.load(std::memory_order_relaxed);
    if (head - tail_.load(std::memory_order_acquire) == N) return nullptr;
    return &items_[head & (N - 1)];
  }
  void Publish() { head_.store(head_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
  const T* Front() {
    size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire)) return nullptr;
    return &items_[tail & (N - 1)];
  }
  void Release() { tail_.store(tail_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  bool Pop(T* value) {
    size_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire)) return false;
    *value = items_[tail & (N - 1)];
    tail_.store(tail + 1, std::memory_order_release);
    return true;
  }

 private:
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
  T items_[N];
};

}  // namespace palisade
