#include "watchdog.hpp"

#include <cstdlib>
#include <utility>

namespace kyso::pkcs11::detail {
namespace {

// The threads of this process that a caller gave up on (watchdog.hpp). Never destroyed: a
// thread stuck in a module for good may still hold it at exit.
struct Abandoned {
  std::mutex mutex;
  bool exiting = false;     // the atexit hook ran: a call that returns now must not go on
  bool hooked = false;      // the atexit hook is registered
  std::size_t in_call = 0;  // threads in a call whose caller gave up on it
  /// Threads of pools that were shut down while in an abandoned call; joined once it returned.
  std::vector<std::shared_ptr<void>> handed_over;
};

Abandoned& abandoned() {
  static auto* a = new Abandoned;
  return *a;
}

[[noreturn]] void block_for_good() noexcept {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
}

}  // namespace

// Out of the class's scope for the Worker type: the list holds workers type-erased.
namespace {
template <typename Worker>
void join_returned(std::vector<std::shared_ptr<void>>& list, bool let_go_the_rest) {
  std::vector<std::shared_ptr<Worker>> to_join;
  std::erase_if(list, [&](const std::shared_ptr<void>& p) {
    auto w = std::static_pointer_cast<Worker>(p);
    // A thread that is ending may be the one reaping (the pool's last owner): never itself.
    if (w->abandoned_call_returned && w->thread.get_id() != std::this_thread::get_id()) {
      to_join.push_back(std::move(w));
      return true;
    }
    return false;
  });
  if (let_go_the_rest) {
    // Still in a module at exit: it blocks for good if its call ever returns (work()).
    for (auto& p : list) std::static_pointer_cast<Worker>(p)->thread.detach();
    list.clear();
  }
  for (auto& w : to_join) w->thread.join();  // done with its call: it is ending
}
}  // namespace

std::optional<CK_RV> CallPool::run(std::function<CK_RV()> fn, std::chrono::milliseconds deadline,
                                   std::shared_ptr<StepClock> steps) {
  if (steps != nullptr) (void)steps->begin();  // until the run's first call: from the hand-off
  auto job = std::make_shared<Job>();
  job->fn = std::move(fn);
  {
    const std::lock_guard lock(mutex_);
    queue_.push_back(job);
    // One thread per call in flight: a call never waits behind another one (a batch signs on
    // two sessions at once), and a thread stuck in the module takes no one else's call.
    if (queue_.size() > idle_) {
      auto w = std::make_shared<Worker>();
      // The thread holds the pool: it may outlive the module, blocked in an abandoned call.
      w->thread = std::thread([self = shared_from_this(), w]() { self->work(w); });
      workers_.push_back(std::move(w));
    } else {
      wake_.notify_one();
    }
  }
  std::unique_lock lock(job->mutex);
  const auto done = [&] { return job->done; };
  if (steps == nullptr) {
    if (job->done_cv.wait_for(lock, deadline, done)) return job->rv;
  } else {
    for (;;) {
      const auto started = steps->started();
      if (job->done_cv.wait_until(lock, started + deadline, done)) return job->rv;
      if (steps->started() == started) break;  // the same call, past its deadline
    }
    steps->abandon();
  }
  job->abandoned = true;
  auto& a = abandoned();
  const std::lock_guard alock(a.mutex);
  ++a.in_call;
  if (!a.hooked) {
    // Registered now, after the module's C_Initialize, and so after the atexit cleanup of
    // the OpenSSL it uses: ours runs first (atexit runs in reverse), while OpenSSL still works.
    a.hooked = true;
    std::atexit([] {
      auto& ab = abandoned();
      std::unique_lock l(ab.mutex);
      ab.exiting = true;
      auto list = std::move(ab.handed_over);
      ab.handed_over.clear();
      l.unlock();
      join_returned<Worker>(list, true);
    });
  }
  return std::nullopt;
}

void CallPool::shutdown() noexcept {
  std::vector<std::shared_ptr<Worker>> to_join;
  {
    const std::lock_guard lock(mutex_);
    stop_ = true;
    wake_.notify_all();
    auto& a = abandoned();
    for (auto& w : workers_) {
      bool stuck = false;
      if (w->job != nullptr) {
        const std::lock_guard jl(w->job->mutex);
        stuck = w->job->abandoned && !w->job->done;
      }
      if (stuck) {
        const std::lock_guard al(a.mutex);
        if (!a.exiting) {
          a.handed_over.push_back(w);
        } else {
          w->thread.detach();  // at exit already: see block_for_good()
        }
      } else if (w->thread.get_id() == std::this_thread::get_id()) {
        // The pool's last owner was one of its own threads ending (a handed-over thread whose
        // call came back): it is being joined from the list of abandoned threads.
        w->thread.detach();
      } else {
        to_join.push_back(w);
      }
    }
    workers_.clear();
  }
  // Idle threads see stop_ and end; one finishing a call ends after it (its caller is gone:
  // the module is going, so no call of it is still awaited).
  for (auto& w : to_join) w->thread.join();
  // Threads handed over earlier whose call has come back since.
  std::vector<std::shared_ptr<void>> list;
  auto& a = abandoned();
  {
    const std::lock_guard al(a.mutex);
    if (a.exiting) return;
    list = std::move(a.handed_over);
    a.handed_over.clear();
  }
  join_returned<Worker>(list, false);
  if (!list.empty()) {
    const std::lock_guard al(a.mutex);
    for (auto& p : list) a.handed_over.push_back(std::move(p));
  }
}

CallPool::~CallPool() {
  shutdown();
}

std::size_t CallPool::abandoned_in_call() noexcept {
  auto& a = abandoned();
  const std::lock_guard al(a.mutex);
  return a.in_call;
}

void CallPool::work(const std::shared_ptr<Worker>& self) {
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping
    std::shared_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    self->job = job;
    lock.unlock();
    const CK_RV rv = job->fn();
    bool was_abandoned = false;
    {
      const std::lock_guard done(job->mutex);
      job->done = true;
      job->rv = rv;
      was_abandoned = job->abandoned;
    }
    job->done_cv.notify_one();
    if (was_abandoned) {
      auto& a = abandoned();
      std::unique_lock al(a.mutex);
      // The process is exiting (OpenSSL's cleanup may be running): nothing more of ours runs
      // here, not even the release of the call's buffers or this thread's end.
      if (a.exiting) {
        al.unlock();
        block_for_good();
      }
      --a.in_call;
      self->abandoned_call_returned = true;
    }
    job->fn = nullptr;  // the buffers a late answer wrote into
    lock.lock();
    self->job.reset();
    job.reset();
  }
}

}  // namespace kyso::pkcs11::detail
