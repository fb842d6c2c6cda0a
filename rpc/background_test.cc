// Background: jobs run off the calling thread and their results come back as promises;
// failures come back as rejections; the destructor waits for running jobs whose promises nobody
// waits for. (That jobs run on a process pinned to one CPU is BackgroundPool's, tested there.)
#include "rpc/background.h"

#include <gtest/gtest.h>

#include <kj/async.h>
#include <kj/debug.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace palisade::rpc {
namespace {

TEST(BackgroundTest, ResultsComeBackFromOffTheCallingThread) {
  kj::EventLoop loop;
  kj::WaitScope ws(loop);
  Background background;
  const std::thread::id caller = std::this_thread::get_id();
  auto a = background.Run<bool>([caller]() { return std::this_thread::get_id() != caller; });
  auto b = background.Run<int>([]() { return 42; });
  EXPECT_TRUE(a.wait(ws)) << "on a thread of its own";
  EXPECT_EQ(b.wait(ws), 42);
}

TEST(BackgroundTest, AFailureComesBackAsARejection) {
  kj::EventLoop loop;
  kj::WaitScope ws(loop);
  Background background;
  auto p = background.Run<int>([]() -> int { KJ_FAIL_REQUIRE("no such table") { return 0; } });
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { (void)p.wait(ws); })) {
    EXPECT_NE(std::string(e->getDescription().cStr()).find("no such table"), std::string::npos);
  } else {
    ADD_FAILURE() << "the job's failure was lost";
  }
}

TEST(BackgroundTest, TheDestructorWaitsForRunningJobs) {
  std::atomic<bool> done{false};
  {
    kj::EventLoop loop;
    kj::WaitScope ws(loop);
    Background background;
    // Nobody waits for the promise: the job still runs to its end before the pool goes.
    (void)background.Run<bool>([&done]() {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      done = true;
      return true;
    });
  }
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace palisade::rpc
