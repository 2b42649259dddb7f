#pragma once
// The watchdog on PKCS#11 calls. A module call that never returns (OpenSC 0.23 after the card
// is pulled mid-operation waits forever on a mutex in sc_unlock) would hold the signing job,
// and with it the agent, for good. So every call runs on a thread of the module's own pool
// while the caller waits with a deadline; a call past its deadline is abandoned: its thread
// stays blocked in the module, the caller gets an answer, and the module is quarantined
// (module.cpp) so that nothing calls into it again.
//
// The pool's threads are owned, never detached while they can still run: shutdown() joins
// every thread that is idle or finishing a call, so that nothing of ours, and no module's or
// OpenSSL's thread-exit cleanup, runs on a pool thread after the module is finalized or after
// main returns (OpenSSL frees its per-thread state when a thread ends; a thread that ends
// after OpenSSL's atexit cleanup frees it twice, and one still alive at exit leaks it). The
// one exception is a thread still inside an abandoned call: it goes to a process-wide list,
// is joined when its call comes back, and is let go at exit only if its call never did; if
// such a call returns while the process exits, its thread blocks for good instead of running.

#include "cryptoki.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace kyso::pkcs11::detail {

/// When the call in progress of a run of calls began (CallPool::run): the run marks each call
/// with begin() right before making it, the caller waiting for the run reads it.
class StepClock {
 public:
  /// Marks the start of the run's next call. false: the caller gave up on the run (a call
  /// passed its deadline and came back late): make no further call.
  bool begin() noexcept {
    started_ns_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                      std::memory_order_relaxed);
    return !abandoned_.load();
  }
  void abandon() noexcept { abandoned_.store(true); }
  [[nodiscard]] std::chrono::steady_clock::time_point started() const noexcept {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(started_ns_.load(std::memory_order_relaxed)));
  }

 private:
  std::atomic<std::chrono::steady_clock::rep> started_ns_{0};
  std::atomic<bool> abandoned_{false};
};

class CallPool : public std::enable_shared_from_this<CallPool> {
 public:
  CallPool() = default;
  CallPool(const CallPool&) = delete;
  CallPool& operator=(const CallPool&) = delete;
  CallPool(CallPool&&) = delete;
  CallPool& operator=(CallPool&&) = delete;
  ~CallPool();

  /// Runs `fn` on a pool thread and waits for it until `deadline` has passed. nullopt: it did
  /// not return in time; its thread is left to it (and `fn` is destroyed when it returns).
  /// Whatever `fn` writes must outlive that: `fn` owns it (captures it), or the caller accepts
  /// that a late answer is lost.
  ///
  /// With `steps`, `fn` is a run of calls (a batch's signatures on one session) that marks the
  /// start of each call on it: the deadline then applies to each call, counted from its start,
  /// and the run as a whole may take as long as its calls keep returning. One hand-off for the
  /// run instead of one per call: a futex wake and wait on two threads each time, and on a busy
  /// machine a wait for a CPU, while the token sits idle (issue 13).
  std::optional<CK_RV> run(std::function<CK_RV()> fn, std::chrono::milliseconds deadline,
                           std::shared_ptr<StepClock> steps = nullptr);

  /// Stops the pool and joins its threads before returning: the idle ones, and those finishing
  /// a call whose caller had its answer. A thread still in an abandoned call (the module is
  /// quarantined) is handed to the process-wide list of abandoned threads instead. The module
  /// calls it after its last call (C_Finalize) and before it goes; never from a pool thread.
  void shutdown() noexcept;

  /// Threads of this process that are in a call whose caller gave up on it (for tests and
  /// diagnostics).
  static std::size_t abandoned_in_call() noexcept;

 private:
  struct Job {
    std::function<CK_RV()> fn;
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    bool abandoned = false;  // the caller's deadline passed before `done`
    CK_RV rv = CKR_OK;
  };
  struct Worker {
    std::thread thread;
    std::shared_ptr<Job> job;  // the call it is in, if any (guarded by the pool's mutex)
    bool abandoned_call_returned = false;  // guarded by the abandoned threads' mutex
  };
  void work(const std::shared_ptr<Worker>& self);

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::shared_ptr<Worker>> workers_;
  std::size_t idle_ = 0;
  bool stop_ = false;
};

}  // namespace kyso::pkcs11::detail
