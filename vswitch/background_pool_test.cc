// BackgroundPool: jobs run off the calling thread even in a process pinned to one CPU (as
// palisaded's control threads are), where TBB starts no worker thread by itself; the
// destructor waits for running jobs.
#include "vswitch/background_pool.h"

#include <sched.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace palisade {
namespace {

class BackgroundPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);  // before TBB starts
  }
};

TEST_F(BackgroundPoolTest, RunsJobsOffTheCallingThreadOnOneCpu) {
  BackgroundPool pool;
  const std::thread::id caller = std::this_thread::get_id();
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  bool elsewhere = true;
  for (int i = 0; i < 3; i++) {
    pool.Run([&] {
      std::lock_guard lock(mu);
      elsewhere &= std::this_thread::get_id() != caller;
      done++;
      cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return done == 3; }))
      << "the jobs ran without anyone waiting on the pool";
  EXPECT_TRUE(elsewhere);
}

TEST_F(BackgroundPoolTest, TheDestructorWaitsForRunningJobs) {
  std::atomic<bool> done{false};
  {
    BackgroundPool pool;
    pool.Run([&done] {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      done = true;
    });
  }
  EXPECT_TRUE(done);
}

}  // namespace
}  // namespace palisade
