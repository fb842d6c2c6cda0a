// BackgroundPool: heavy control work (compiling a large rule table) run on TBB's threads, off
// the threads that must keep answering and ticking (the RPC thread, the switch's control
// loop). A job hands its result back itself (a promise's fulfiller, a post to the control
// loop).
//
// Jobs are enqueued into an arena of their own, not spawned: the daemon's control threads are
// pinned to one CPU, where TBB would start no worker thread of its own accord and a spawned
// job would wait for a thread to join it; an enqueued one is run by a worker TBB starts for it
// (on the control CPUs: it inherits their affinity, so the switch's workers are not disturbed).
// As many slots as the control CPUs, and at least two: a job's own parallel loops (the rte_acl
// contexts) have a second thread even where the control threads have one CPU.
//
// Thread-safety: Run() from any thread; jobs run on TBB's threads and must not touch the
// Switch. The destructor waits for the jobs still running.
#pragma once

#include <tbb/task_arena.h>

#include <condition_variable>
#include <functional>
#include <mutex>

namespace palisade {

class BackgroundPool {
 public:
  BackgroundPool();
  BackgroundPool(const BackgroundPool&) = delete;
  BackgroundPool& operator=(const BackgroundPool&) = delete;
  ~BackgroundPool();

  void Run(std::function<void()> job);

 private:
  tbb::task_arena arena_;
  std::mutex mu_;
  std::condition_variable idle_;
  int running_ = 0;  // guarded by mu_
};

}  // namespace palisade
