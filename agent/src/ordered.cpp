#include "ordered.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
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

bool sign_in_order(const SignLoop& loop, AuditLog& audit, const std::string& origin,
                   const std::string& role, const std::string& credential_id,
                   std::vector<SignResult>& results,
                   const std::function<void(std::size_t, const SignResult&)>& progress) {
  const std::size_t n = loop.items;
  results.assign(n, SignResult{});
  std::atomic<bool> cancelled{false};
  std::mutex fatal_mutex;
  std::optional<Error> fatal;  // the first error that stops the rest of the batch
  auto stop_with = [&](const Error& e) {
    const std::lock_guard lock(fatal_mutex);
    if (!fatal) fatal = e;
  };
  auto work = [&](std::size_t i) {
    SignResult& r = results[i];
    std::optional<Error> stop;
    {
      const std::lock_guard lock(fatal_mutex);
      stop = fatal;
    }
    if (stop) {
      r.error = std::move(stop);
    } else if (loop.cancel != nullptr && loop.cancel->load()) {
      cancelled = true;
      r.error = Error(ErrorCode::UserCancelled, "batch cancelled before this item");
    } else {
      try {
        loop.sign(i, r);
      } catch (const Error& e) {
        r.error = e;
        if (stops_batch(e.code())) stop_with(e);
      } catch (const std::exception& e) {
        r.error = Error(ErrorCode::Internal, e.what());
      }
    }
  };
  AuditLog::Batch rows(audit, AuditRow{.event = "signature",
                                       .origin = origin,
                                       .role = role,
                                       .credential_id = credential_id,
                                       .digest = {},
                                       .result = {},
                                       .detail = {}});
  std::optional<Error> audit_failure;
  auto report = [&](std::size_t first, std::size_t last) {
    if (!audit_failure) {
      try {
        for (std::size_t i = first; i < last; ++i) {
          const SignResult& r = results[i];
          rows.add(loop.digest(i), r.ok() ? std::string_view("ok") : r.error->name(),
                   loop.detail ? loop.detail(i) : std::string());
        }
        rows.flush();
      } catch (const Error& e) {
        audit_failure = e;
        stop_with(e);
      }
    }
    if (audit_failure) {
      // A signature whose row is not in the log does not leave the agent.
      for (std::size_t i = first; i < last; ++i) {
        SignResult& r = results[i];
        if (!r.ok()) continue;
        std::ranges::fill(r.signature, std::uint8_t{0});
        r.signature.clear();
        r.error = audit_failure;
        if (loop.withhold) loop.withhold(i);
      }
    }
    if (progress) {
      for (std::size_t i = first; i < last; ++i) progress(i, results[i]);
    }
  };
  run_ordered(n, n >= kParallelFrom ? 2 : 1, kReportEvery, work, report);
  if (!audit_failure) rows.commit();
  return cancelled.load();
}

}  // namespace kyso::agent::detail
