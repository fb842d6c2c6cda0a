// Background: jobs run off the calling thread and come back as promises, even in a process
// pinned to one CPU (as palisaded's control threads are), where TBB starts no worker thread by
// itself; failures come back as rejections; the destructor waits for running jobs.
#include "rpc/background.h"

#include <sched.h>

#include <gtest/gtest.h>

#include <kj/async.h>
#include <kj/debug.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace palisade::rpc {
namespace {

class BackgroundTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);  // before TBB starts
  }
};

TEST_F(BackgroundTest, RunsJobsOffTheCallingThreadOnOneCpu) {
  kj::EventLoop loop;
  kj::WaitScope ws(loop);
  Background background;
  const std::thread::id caller = std::this_thread::get_id();
  auto a = background.Run<bool>([caller]() { return std::this_thread::get_id() != caller; });
  auto b = background.Run<int>([]() { return 42; });
  EXPECT_TRUE(a.wait(ws)) << "on a thread of its own";
  EXPECT_EQ(b.wait(ws), 42);
}

TEST_F(BackgroundTest, AFailureComesBackAsARejection) {
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

TEST_F(BackgroundTest, TheDestructorWaitsForRunningJobs) {
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
