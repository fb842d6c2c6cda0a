// Background: heavy control work for the RPC thread (BackgroundPool), each job's result coming
// back to it as a promise.
//
// Thread-safety: Run() on the RPC thread; jobs run on TBB's threads and must not touch the
// Switch. The destructor waits for the jobs still running.
#pragma once

#include <memory>
#include <optional>

#include <kj/async.h>
#include <kj/function.h>

#include "vswitch/background_pool.h"

namespace palisade::rpc {

class Background {
 public:
  template <typename T>
  kj::Promise<T> Run(kj::Function<T()> fn) {
    auto paf = kj::newPromiseAndCrossThreadFulfiller<T>();
    struct Job {
      kj::Function<T()> fn;
      kj::Own<kj::CrossThreadPromiseFulfiller<T>> fulfiller;
    };
    auto job = std::make_shared<Job>(Job{kj::mv(fn), kj::mv(paf.fulfiller)});
    pool_.Run([job]() {
      Job j = kj::mv(*job);  // gone before the pool's destructor may return
      std::optional<T> result;
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { result.emplace(j.fn()); })) {
        j.fulfiller->reject(kj::mv(*e));
      } else {
        j.fulfiller->fulfill(kj::mv(*result));
      }
    });
    return kj::mv(paf.promise);
  }

 private:
  BackgroundPool pool_;
};

}  // namespace palisade::rpc
