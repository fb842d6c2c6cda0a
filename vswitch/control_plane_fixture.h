// Test scaffolding for the control plane as palisaded runs it, for unit tests only: DPDK's EAL
// without hugepages (once per test binary), a Switch whose workers never start, and a libev
// control loop with its ControlQueue on a thread of its own.
//
// Thread-safety: the fixture's methods from the test's thread; Run() hands work to the loop.
#pragma once

#include <ev.h>
#include <rte_eal.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "vswitch/control_queue.h"
#include "vswitch/switch.h"

namespace palisade::testenv {

// EAL with 128 MB of private memory, its runtime files named after `name` and this process.
inline bool InitTestEal(const std::string& name) {
  std::vector<std::string> args = {name, "--no-huge", "-m", "128", "--no-pci",
                                   "--file-prefix=palisade-" + name + "-" + std::to_string(getpid()),
                                   "--log-level=lib.*:error", "--no-telemetry"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return rte_eal_init(static_cast<int>(argv.size()), argv.data()) >= 0;
}
inline void CleanupTestEal() {
  const std::string dir = rte_eal_get_runtime_dir();
  rte_eal_cleanup();
  std::filesystem::remove_all(dir);
}

// A Switch for the control plane alone: its one worker is never started.
inline Status ControlPlaneSwitch(std::unique_ptr<Switch>* out) {
  Switch::Options o;
  o.worker_lcores = {1};
  o.mbufs = 2047;
  return Switch::Create(o, out);
}

// A libev loop running on its own thread, with the queue that hands work to it.
class ControlLoopThread {
 public:
  ControlLoopThread() : loop_(ev_loop_new(0)), queue_(std::make_unique<ControlQueue>(loop_)) {
    ev_async_init(&stop_, [](struct ev_loop* l, ev_async*, int) { ev_break(l, EVBREAK_ALL); });
    ev_async_start(loop_, &stop_);
    thread_ = std::thread([this] { ev_run(loop_, 0); });
  }
  ~ControlLoopThread() {
    ev_async_send(loop_, &stop_);
    thread_.join();
    queue_.reset();
    ev_loop_destroy(loop_);
  }
  ControlLoopThread(const ControlLoopThread&) = delete;
  ControlLoopThread& operator=(const ControlLoopThread&) = delete;

  ControlQueue* queue() { return queue_.get(); }
  // Runs f on the loop's thread and waits for it.
  void Run(std::function<void()> f) {
    std::promise<void> done;
    queue_->Post([&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  struct ev_loop* loop_;
  std::unique_ptr<ControlQueue> queue_;
  ev_async stop_;
  std::thread thread_;
};

}  // namespace palisade::testenv
