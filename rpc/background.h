// Background: heavy control work (compiling a large rule table) run on TBB's threads, off both
// the RPC thread and the switch's control thread, so that neither stops answering or ticking
// while it runs. Each job's result comes back to the RPC thread as a promise.
//
// Jobs are enqueued into an arena of their own, not spawned: the daemon's control threads are
// pinned to one CPU, where TBB would start no worker thread of its own accord and a spawned
// job would wait for a thread to join it; an enqueued one is run by a worker TBB starts for it
// (on the control CPUs: it inherits their affinity, so the switch's workers are not disturbed).
// As many slots as the control CPUs, and at least two: a job's own parallel loops (the rte_acl
// contexts) have a second thread even where the control threads have one CPU.
//
// Thread-safety: Run() on the RPC thread; jobs run on TBB's threads and must not touch the
// Switch. The destructor waits for the jobs still running.
#pragma once

#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include <kj/async.h>
#include <kj/function.h>

namespace palisade::rpc {

class Background {
 public:
  Background() = default;
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  ~Background() {
    std::unique_lock lock(mu_);
    idle_.wait(lock, [this] { return running_ == 0; });
  }

  template <typename T>
  kj::Promise<T> Run(kj::Function<T()> fn) {
    auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
    struct Job {
      kj::Function<T()> fn;
      kj::Own<kj::CrossThreadPromiseFulfiller<T>> fulfiller;
    };
    // The arena copies its functor: the job itself is shared.
    auto job = std::make_shared<Job>(Job{kj::mv(fn), kj::mv(paf.fulfiller)});
    {
      std::lock_guard lock(mu_);
      running_++;
    }
    arena_.enqueue([this, job]() {
      {
        Job j = kj::mv(*job);  // gone before the destructor may return
        std::optional<T> result;
        KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { result.emplace(j.fn()); })) {
          j.fulfiller->reject(kj::mv(*e));
        } else {
          j.fulfiller->fulfill(kj::mv(*result));
        }
      }
      std::lock_guard lock(mu_);
      if (--running_ == 0) idle_.notify_all();
    });
    return kj::mv(paf.promise);
  }

 private:
  tbb::task_arena arena_{std::max(2, tbb::info::default_concurrency()), 0};
  std::mutex mu_;
  std::condition_variable idle_;
  int running_ = 0;  // guarded by mu_
};

}  // namespace palisade::rpc
