// ControlQueue: the one hand-off into the switch's control thread (libev loop), which alone
// touches the Switch, from threads that run a kj event loop (the control plane's RPC thread,
// the live-migration protocol on it).
//
// A kj thread calls Run(fn): fn is queued, the control loop is woken (ev_async), runs it,
// and fulfils the returned promise across threads with fn's result, or rejects it with fn's
// kj::Exception. Results are plain values; capnp builders stay on the RPC thread.
//
// Thread-safety: Run() from any kj event-loop thread; construction, destruction and the jobs on
// the control thread. The queue itself is guarded by a mutex held only to push or pop.
#pragma once

#include <ev.h>

#include <deque>
#include <mutex>

#include <kj/async.h>
#include <kj/function.h>

namespace palisade {

class ControlQueue {
 public:
  explicit ControlQueue(struct ev_loop* loop);
  ~ControlQueue();

  // Runs fn on the control thread, from any thread; nothing comes back (threads without a kj
  // loop, such as the cluster agent's, hand their results over this way).
  void Post(kj::Function<void()> fn) { Push(kj::mv(fn)); }

  template <typename T>
  kj::Promise<T> Run(kj::Function<T()> fn) {
    auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
    Push([fn = kj::mv(fn), fulfiller = kj::mv(paf.fulfiller)]() mutable {
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { fulfiller->fulfill(fn()); })) {
        fulfiller->reject(kj::mv(*e));
      }
    });
    return kj::mv(paf.promise);
  }

 private:
  void Push(kj::Function<void()> job);
  static void OnWake(struct ev_loop* loop, ev_async* w, int revents);

  struct ev_loop* loop_;
  ev_async wake_;
  std::mutex mu_;
  std::deque<kj::Function<void()>> jobs_;
};

}  // namespace palisade
