#include "watchdog.hpp"

#include <thread>

namespace kyso::pkcs11::detail {

std::optional<CK_RV> CallPool::run(std::function<CK_RV()> fn, std::chrono::milliseconds deadline) {
  auto job = std::make_shared<Job>();
  job->fn = std::move(fn);
  {
    const std::lock_guard lock(mutex_);
    queue_.push_back(job);
    // One thread per call in flight: a call never waits behind another one (a batch signs on
    // two sessions at once), and a thread stuck in the module takes no one else's call.
    if (queue_.size() > idle_) {
      // The thread holds the pool: it may outlive the module, blocked in a call.
      std::thread([self = shared_from_this()] { self->work(); }).detach();
    } else {
      wake_.notify_one();
    }
  }
  std::unique_lock lock(job->mutex);
  if (!job->done_cv.wait_for(lock, deadline, [&] { return job->done; })) return std::nullopt;
  return job->rv;
}

void CallPool::shutdown() noexcept {
  const std::lock_guard lock(mutex_);
  stop_ = true;
  wake_.notify_all();
}

void CallPool::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping
    std::shared_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    const CK_RV rv = job->fn();
    {
      const std::lock_guard done(job->mutex);
      job->done = true;
      job->rv = rv;
    }
    job->done_cv.notify_one();
    job.reset();
    lock.lock();
  }
}

}  // namespace kyso::pkcs11::detail
