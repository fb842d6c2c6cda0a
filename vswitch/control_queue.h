// ControlQueue: the one hand-off into the switch's control thread (libev loop), which alone
// touches the Switch, from threads that run a kj event loop (the control plane's RPC thread,
// the live-migration protocol on it).
//
// A kj thread calls Run(fn): fn is queued, the control loop is woken (ev_async), runs it,
// and fulfils the returned promise across threads with fn's result, or rejects it with fn's
// kj::Exception. Results are plain values; capnp builders stay on the RPC thread.
//
// After every job, and before its promise is settled, the queue calls the `after` hook (the
// daemon's durable store: a change is on disk before the caller hears it succeeded); a hook
// that fails turns the job's answer into its error.
//
// Thread-safety: Run() and Post() from any thread; construction, destruction, set_after and
// the jobs on the control thread. The queue itself is guarded by a mutex held only to push or
// pop.
#pragma once

#include <ev.h>

#include <deque>
#include <functional>
#include <mutex>
#include <optional>

#include <kj/async.h>
#include <kj/function.h>

#include "common/kj_errors.h"
#include "common/status.h"

namespace palisade {

class ControlQueue {
 public:
  explicit ControlQueue(struct ev_loop* loop);
  ~ControlQueue();

  // Runs fn on the control thread, from any thread; nothing comes back (threads without a kj
  // loop, such as the cluster agent's, hand their results over this way).
  void Post(kj::Function<void()> fn) {
    Push([this, fn = kj::mv(fn)]() mutable {
      fn();
      (void)After();  // nobody waits for an answer: the hook reports its own failure
    });
  }

  template <typename T>
  kj::Promise<T> Run(kj::Function<T()> fn) {
    auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
    Push([this, fn = kj::mv(fn), fulfiller = kj::mv(paf.fulfiller)]() mutable {
      std::optional<T> result;
      auto error = kj::runCatchingExceptions([&]() { result.emplace(fn()); });
      // A job that failed half-way may have changed something too: the hook runs either way.
      const Status kept = After();
      KJ_IF_MAYBE(e, error) {
        fulfiller->reject(kj::mv(*e));
      } else if (!kept.ok()) {
        fulfiller->reject(Failure(kept.message()));
      } else {
        fulfiller->fulfill(kj::mv(*result));
      }
    });
    return kj::mv(paf.promise);
  }

  void set_after(std::function<Status()> after) { after_ = std::move(after); }

 private:
  void Push(kj::Function<void()> job);
  static void OnWake(struct ev_loop* loop, ev_async* w, int revents);
  Status After() { return after_ ? after_() : Status::Ok(); }

  struct ev_loop* loop_;
  ev_async wake_;
  std::mutex mu_;
  std::deque<kj::Function<void()>> jobs_;
  std::function<Status()> after_;  // control thread only
};

}  // namespace palisade
