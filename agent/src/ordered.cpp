#include "ordered.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace kyso::agent::detail {

void run_ordered(std::size_t n, std::size_t lanes, std::chrono::microseconds every,
                 const std::function<void(std::size_t)>& work,
                 const std::function<void(std::size_t, std::size_t)>& report) {
  if (n == 0) return;
  if (lanes <= 1 || n < 2) {
    for (std::size_t i = 0; i < n; ++i) {
      work(i);
      report(i, i + 1);
    }
    return;
  }

  std::atomic<std::size_t> next{0};
  std::mutex mutex;
  std::condition_variable ready_cv;
  std::vector<char> finished(n, 0);
  std::size_t ready = 0;  // items [0, ready) have finished
  bool waiting = false;   // the reporter sleeps until `ready` moves
  auto lane = [&] {
    for (;;) {
      const std::size_t i = next.fetch_add(1);
      if (i >= n) return;
      work(i);
      const std::lock_guard lock(mutex);
      finished[i] = 1;
      const std::size_t before = ready;
      while (ready < n && finished[ready] != 0) ++ready;
      if ((waiting && ready != before) || (ready == n && before != n)) ready_cv.notify_one();
    }
  };

  std::vector<std::thread> threads;
  threads.reserve(lanes);
  std::exception_ptr failure;
  try {
    for (std::size_t l = 0; l < lanes; ++l) threads.emplace_back(lane);
    std::size_t reported = 0;
    auto last_report = std::chrono::steady_clock::now() - every;
    while (reported < n) {
      std::size_t upto = 0;
      {
        std::unique_lock lock(mutex);
        // Let a burst of fast items collect, so that they cost one report; the last item ends
        // the wait at once.
        ready_cv.wait_until(lock, last_report + every, [&] { return ready == n; });
        waiting = true;
        ready_cv.wait(lock, [&] { return ready > reported; });
        waiting = false;
        upto = ready;
      }
      last_report = std::chrono::steady_clock::now();
      report(reported, upto);
      reported = upto;
    }
  } catch (...) {
    failure = std::current_exception();
    next = n;  // no lane starts another item
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
}

void withhold(std::vector<SignResult>& results, std::size_t first, std::size_t last,
              const Error& why) {
  for (std::size_t i = first; i < last && i < results.size(); ++i) {
    if (!results[i].ok()) continue;
    std::ranges::fill(results[i].signature, std::uint8_t{0});
    results[i].signature.clear();
    results[i].error = why;
  }
}

}  // namespace kyso::agent::detail
