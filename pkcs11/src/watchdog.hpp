#pragma once
// The watchdog on PKCS#11 calls. A module call that never returns (OpenSC 0.23 after the card
// is pulled mid-operation waits forever on a mutex in sc_unlock) would hold the signing job,
// and with it the agent, for good. So every call runs on a thread of the module's own pool
// while the caller waits with a deadline; a call past its deadline is abandoned: its thread
// stays blocked in the module, the caller gets an answer, and the module is quarantined
// (module.cpp) so that nothing calls into it again.

#include <p11-kit/pkcs11.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>

namespace kyso::pkcs11::detail {

class CallPool : public std::enable_shared_from_this<CallPool> {
 public:
  CallPool() = default;
  CallPool(const CallPool&) = delete;
  CallPool& operator=(const CallPool&) = delete;
  CallPool(CallPool&&) = delete;
  CallPool& operator=(CallPool&&) = delete;
  ~CallPool() = default;

  /// Runs `fn` on a pool thread and waits for it until `deadline` has passed. nullopt: it did
  /// not return in time, and its thread is left to it. Whatever `fn` writes must outlive that
  /// thread: `fn` owns it (captures it), or the caller accepts that a late answer is lost.
  std::optional<CK_RV> run(std::function<CK_RV()> fn, std::chrono::milliseconds deadline);

  /// Lets the idle threads end (the module is going). Threads still in a call end after it.
  void shutdown() noexcept;

 private:
  struct Job {
    std::function<CK_RV()> fn;
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    CK_RV rv = CKR_OK;
  };
  void work();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::size_t idle_ = 0;
  bool stop_ = false;
};

}  // namespace kyso::pkcs11::detail
