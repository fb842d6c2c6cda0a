#include "vswitch/background_pool.h"

#include <tbb/info.h>

#include <algorithm>
#include <memory>
#include <utility>

namespace palisade {

BackgroundPool::BackgroundPool() : arena_(std::max(2, tbb::info::default_concurrency()), 0) {}

BackgroundPool::~BackgroundPool() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [this] { return running_ == 0; });
}

void BackgroundPool::Run(std::function<void()> job) {
  {
    std::lock_guard lock(mu_);
    running_++;
  }
  // The arena copies its functor and calls it const: the job itself is shared.
  auto shared = std::make_shared<std::function<void()>>(std::move(job));
  arena_.enqueue([this, shared]() {
    {
      std::function<void()> j = std::move(*shared);  // what it holds goes before the destructor may return
      j();
    }
    std::lock_guard lock(mu_);
    if (--running_ == 0) idle_.notify_all();
  });
}

}  // namespace palisade
