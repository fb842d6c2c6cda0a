// Owner: the one thread that touches a filter's state, and the way other threads get work done
// there. A port's filters run on the datapath worker that polls the port (OUT and IN: other
// workers hand their bursts over), so their state needs no lock on the datapath. A control
// method (a rule table swap, a page of flows, an import slice) runs through Call: while the
// worker is running it takes the call between two of its bursts (Serve, once per loop: one
// load when nothing waits); while it naps in its idle back-off (Nap) the caller wakes it and
// it takes the call the same way; while it is away (not started, stopped) the caller runs the
// call itself, and a worker coming back waits for it before it touches a filter. Either way
// each call runs alone against the worker's bursts and other calls, and the worker's state
// stays in its own cache: a call run by the caller for a napping worker had pulled it over to
// the caller's CPU, and the worker, waking meanwhile, waited for it (5-18% of its cycles at
// 100,000 connection setups a second).
//
// Calls nest: a call made from inside a call, or from the worker's own thread, runs at once.
//
// Thread-safety: Call from any thread; Serve, Nap, Back and Away from the owner's thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <type_traits>

namespace palisade {

class Owner {
 public:
  // Runs f() (no arguments, nothing returned) against the owner's bursts; returns once it ran.
  template <typename F>
  void Call(F&& f) {
    using Fn = std::remove_reference_t<F>;
    Call(+[](void* arg) { (*static_cast<Fn*>(arg))(); }, &f);
  }
  void Call(void (*fn)(void*), void* arg);

  // The owner's side. Back: it is about to touch its filters (it waits while a caller runs a
  // call). Serve: between bursts, runs the call waiting, if any (true if one waited). Away: it
  // will touch none until Back (calls run on their callers meanwhile). An owner starts away.
  void Back();
  bool Serve() {
    if (request_.load(std::memory_order_relaxed) == nullptr) return false;
    ServeSlow();
    return true;
  }
  void Away();
  // Sleeps up to `us` microseconds, or until a caller posts a call; true if one waits (for the
  // next Serve). Between Back and Away only; the owner touches no state meanwhile.
  bool Nap(uint32_t us);

 private:
  enum State : uint8_t { kAway, kRunning, kBorrowed, kNapping };
  struct Request {
    void (*fn)(void*);
    void* arg;
    std::atomic<bool> done{false};
  };
  void ServeSlow();
  void RunHere(void (*fn)(void*), void* arg);

  std::mutex callers_;  // one call at a time (callers only; the owner never takes it)
  std::atomic<uint8_t> state_{kAway};
  std::atomic<Request*> request_{nullptr};
  std::atomic<uint32_t> wakes_{0};  // a futex word: callers bump it to end a nap
};

}  // namespace palisade
