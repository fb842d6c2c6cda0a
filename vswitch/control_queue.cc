#include "vswitch/control_queue.h"

namespace palisade {

ControlQueue::ControlQueue(struct ev_loop* loop) : loop_(loop) {
  ev_async_init(&wake_, OnWake);
  wake_.data = this;
  ev_async_start(loop_, &wake_);
}

ControlQueue::~ControlQueue() { ev_async_stop(loop_, &wake_); }

void ControlQueue::Push(kj::Function<void()> job) {
  {
    std::lock_guard lock(mu_);
    jobs_.push_back(kj::mv(job));
  }
  ev_async_send(loop_, &wake_);
}

void ControlQueue::OnWake(struct ev_loop*, ev_async* w, int) {
  auto* self = static_cast<ControlQueue*>(w->data);
  for (;;) {
    kj::Function<void()> job;
    {
      std::lock_guard lock(self->mu_);
      if (self->jobs_.empty()) return;
      job = kj::mv(self->jobs_.front());
      self->jobs_.pop_front();
    }
    job();
  }
}

}  // namespace palisade
