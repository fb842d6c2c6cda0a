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

// What the worker counts as control time: a call it served, or a wait on its way back while a
// caller ran one.
TEST(OwnerTest, ServeAndBackSayWhenTheOwnerSpentTimeOnACall) {
  Owner owner;
  EXPECT_FALSE(owner.Back()) << "nobody was running a call";
  EXPECT_FALSE(owner.Serve()) << "none waiting";
  owner.Away();
  std::atomic<bool> running{false}, release{false};
  std::thread caller([&] {
    owner.Call([&] {  // run here: the owner is away
      running = true;
      while (!release.load()) std::this_thread::yield();
    });
  });
  while (!running.load()) std::this_thread::yield();
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    release = true;
  });
  EXPECT_TRUE(owner.Back()) << "it came back while the caller ran a call";
  EXPECT_TRUE(release.load()) << "and waited for it";
  caller.join();
  releaser.join();
  std::thread served([&] { owner.Call([] {}); });
  bool ran = false;
  while (!ran) ran = owner.Serve();
  served.join();
  owner.Away();
}

// A worker's loop: bursts that change plain state, Serve between them, and now and then an idle
// sleep (away). Callers on three threads change the same state through Call. No call may meet a
// burst or another call, and none may be lost, whether the worker or its caller ran it.
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
