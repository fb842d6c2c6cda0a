#include "slot/owner.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

namespace palisade {
namespace {

TEST(OwnerTest, AnOwnerAwayLetsTheCallerRunTheCall) {
  Owner owner;
  std::thread::id ran_on;
  owner.Call([&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(OwnerTest, CallsNestAndTheOwnersOwnCallsRunAtOnce) {
  Owner owner;
  int depth = 0;
  owner.Call([&] {
    depth++;
    owner.Call([&] { depth++; });  // from inside a call: would wait for itself otherwise
  });
  EXPECT_EQ(depth, 2);
  owner.Back();
  owner.Call([&] { depth++; });  // the owner's thread
  owner.Away();
  EXPECT_EQ(depth, 3);
}

// A worker napping in its idle back-off is woken for a call and runs it on its own thread (its
// state stays in its cache); the nap would last a minute otherwise.
TEST(OwnerTest, ANappingOwnerIsWokenAndRunsTheCallItself) {
  Owner owner;
  std::atomic<bool> stop{false}, napping{false};
  std::thread::id worker_id, ran_on;
  std::thread worker([&] {
    worker_id = std::this_thread::get_id();
    owner.Back();
    while (!stop.load()) {
      if (owner.Serve()) continue;
      napping = true;
      owner.Nap(60 * 1000000);
    }
    owner.Away();
  });
  while (!napping.load()) std::this_thread::yield();
  owner.Call([&] { ran_on = std::this_thread::get_id(); });
  EXPECT_EQ(ran_on, worker_id);
  stop = true;
  owner.Call([] {});  // wakes it to see stop
  worker.join();
}

// A worker's loop: bursts that change plain state, Serve between them, and now and then an idle
// sleep (away) or a nap. Callers on three threads change the same state through Call. No call
// may meet a burst or another call, and none may be lost, whether the worker or its caller ran
// it.
TEST(OwnerTest, CallsNeverMeetBurstsOrEachOther) {
  Owner owner;
  std::atomic<bool> stop{false};
  std::atomic<int> inside{0};  // bursts and calls running now
  std::atomic<int> overlaps{0};
  uint64_t bursts = 0, calls = 0;  // plain: only one side may touch them at a time
  auto enter = [&] {
    if (inside.fetch_add(1) != 0) overlaps++;
  };
  auto leave = [&] { inside.fetch_sub(1); };
  std::atomic<bool> started{false};
  std::thread worker([&] {
    owner.Back();
    started = true;
    for (uint64_t loop = 0; !stop.load(); loop++) {
      owner.Serve();
      enter();
      bursts++;
      leave();
      if (loop % 200000 == 0) {
        owner.Away();
        std::this_thread::sleep_for(std::chrono::microseconds(20));
        owner.Back();
      } else if (loop % 200000 == 100000) {
        owner.Nap(20);  // callers wake it instead
      }
    }
    owner.Away();
  });
  constexpr int kCallers = 3, kCalls = 20000;
  std::vector<std::thread> callers;
  std::atomic<uint64_t> ran_by_caller{0};
  while (!started.load()) std::this_thread::yield();
  for (int c = 0; c < kCallers; c++) {
    callers.emplace_back([&] {
      for (int i = 0; i < kCalls; i++) {
        const auto me = std::this_thread::get_id();
        owner.Call([&] {
          enter();
          calls++;
          if (std::this_thread::get_id() == me) ran_by_caller++;
          leave();
        });
      }
    });
  }
  for (std::thread& t : callers) t.join();
  stop = true;
  worker.join();
  // The worker is gone: calls now run on their callers.
  owner.Call([&] { calls++; });
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(calls, uint64_t{kCallers * kCalls + 1});
  EXPECT_GT(bursts, 0u);
  std::printf("%llu of %d calls ran on their callers (worker asleep)\n",
              static_cast<unsigned long long>(ran_by_caller.load()), kCallers * kCalls);
}

TEST(OwnerTest, ARunningOwnerRunsTheCallBetweenBursts) {
  Owner owner;
  std::atomic<bool> stop{false};
  std::atomic<bool> back{false};
  std::thread::id worker_id;
  std::thread worker([&] {
    worker_id = std::this_thread::get_id();
    owner.Back();
    back = true;
    while (!stop.load()) owner.Serve();
    owner.Away();
  });
  while (!back.load()) std::this_thread::yield();
  std::thread::id ran_on;
  owner.Call([&] { ran_on = std::this_thread::get_id(); });
  stop = true;
  worker.join();
  EXPECT_EQ(ran_on, worker_id);
}

}  // namespace
}  // namespace palisade
