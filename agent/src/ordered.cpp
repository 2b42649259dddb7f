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

namespace {

/// Which items finished, and the reporting side both run_ordered variants share: the calling
/// thread records finished items in order as they finish and reports them at most once per
/// `every` while they come fast.
class Reporter {
 public:
  explicit Reporter(std::size_t n) : n_(n), finished_(n, 0) {}

  /// Items [first, last) finished. Any thread.
  void mark(std::size_t first, std::size_t last) {
    const std::lock_guard lock(mutex_);
    for (std::size_t i = first; i < last && i < n_; ++i) finished_[i] = 1;
    const std::size_t before = ready_;
    while (ready_ < n_ && finished_[ready_] != 0) ++ready_;
    if (waiting_ && ready_ != before) cv_.notify_one();
  }

  /// Records and reports every item in order; returns after the last report. `record` and
  /// `report` may throw.
  void run(std::chrono::microseconds every,
           const std::function<void(std::size_t, std::size_t)>& record,
           const std::function<void(std::size_t, std::size_t)>& report) {
    std::size_t recorded = 0;
    std::size_t reported = 0;
    auto last_report = std::chrono::steady_clock::now() - every;
    while (reported < n_) {
      std::size_t upto = 0;
      {
        std::unique_lock lock(mutex_);
        waiting_ = true;
        const auto more = [&] { return ready_ > recorded; };
        if (recorded > reported) {
          // Recorded items wait for their report time; new ones are recorded meanwhile.
          cv_.wait_until(lock, last_report + every, more);
        } else {
          cv_.wait(lock, more);
        }
        waiting_ = false;
        upto = ready_;
      }
      if (upto > recorded) {
        record(recorded, upto);
        recorded = upto;
      }
      const auto now = std::chrono::steady_clock::now();
      if (recorded > reported && (recorded == n_ || now - last_report >= every)) {
        last_report = now;
        report(reported, recorded);
        reported = recorded;
      }
    }
  }

 private:
  std::size_t n_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<char> finished_;
  std::size_t ready_ = 0;  // items [0, ready_) have finished
  bool waiting_ = false;   // the reporter sleeps until ready_ moves (or its report time)
};

}  // namespace

void run_ordered(std::size_t n, std::size_t lanes, std::chrono::microseconds every,
                 const std::function<void(std::size_t)>& work,
                 const std::function<void(std::size_t, std::size_t)>& record,
                 const std::function<void(std::size_t, std::size_t)>& report,
                 const std::function<void(std::size_t, std::size_t)>& work_range) {
  if (n == 0) return;
  if (lanes <= 1 || n < 2) {
    for (std::size_t i = 0; i < n; ++i) {
      work(i);
      record(i, i + 1);
      report(i, i + 1);
    }
    return;
  }
  std::atomic<std::size_t> next{0};
  Reporter reporter(n);
  auto lane = [&] {
    if (work_range) {
      std::size_t k = 1;
      for (;;) {
        // Near the end a run takes at most a quarter of each lane's share of what is left, so
        // that the lanes finish together instead of one signing its last long run alone.
        const std::size_t left = n - std::min(n, next.load());
        const std::size_t take = std::clamp<std::size_t>(left / (2 * lanes), 1, k);
        const std::size_t first = next.fetch_add(take);
        if (first >= n) return;
        const std::size_t last = std::min(n, first + take);
        const auto t0 = std::chrono::steady_clock::now();
        work_range(first, last);
        reporter.mark(first, last);
        const auto took = std::chrono::steady_clock::now() - t0;
        if (took < kRunFast && k < kRunMax) {
          k *= 2;
        } else if (took > kRunSlow && k > 1) {
          k /= 2;
        }
      }
    }
    for (;;) {
      const std::size_t i = next.fetch_add(1);
      if (i >= n) return;
      work(i);
      reporter.mark(i, i + 1);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(lanes);
  std::exception_ptr failure;
  try {
    for (std::size_t l = 0; l < lanes; ++l) threads.emplace_back(lane);
    reporter.run(every, record, report);
  } catch (...) {
    failure = std::current_exception();
    next = n;  // no lane starts another item
  }
  for (auto& t : threads) t.join();
  if (failure) std::rethrow_exception(failure);
}

void run_ordered_chunks(
    std::size_t n, std::chrono::microseconds every,
    const std::function<void(const std::function<void(std::size_t, std::size_t)>&)>& work,
    const std::function<void(std::size_t, std::size_t)>& record,
    const std::function<void(std::size_t, std::size_t)>& report) {
  if (n == 0) return;
  Reporter reporter(n);
  std::exception_ptr work_failure;
  std::thread worker([&] {
    try {
      work([&](std::size_t first, std::size_t last) { reporter.mark(first, last); });
    } catch (...) {
      work_failure = std::current_exception();
    }
    reporter.mark(0, n);  // whatever was not reported is finished now
  });
  std::exception_ptr failure;
  try {
    reporter.run(every, record, report);
  } catch (...) {
    failure = std::current_exception();
  }
  worker.join();
  if (failure) std::rethrow_exception(failure);
  if (work_failure) std::rethrow_exception(work_failure);
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
  auto stopping = [&] {
    {
      const std::lock_guard lock(fatal_mutex);
      if (fatal) return true;
    }
    return loop.cancel != nullptr && loop.cancel->load();
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
  // Rows are written as items finish, while the lanes sign; each report commits them first.
  auto record = [&](std::size_t first, std::size_t last) {
    if (audit_failure) return;
    try {
      for (std::size_t i = first; i < last; ++i) {
        const SignResult& r = results[i];
        rows.add(loop.digest(i), r.ok() ? std::string_view("ok") : r.error->name(),
                 loop.detail ? loop.detail(i) : std::string());
      }
    } catch (const Error& e) {
      audit_failure = e;  // the rows since the last commit are rolled back with the batch
      stop_with(e);
    }
  };
  auto report = [&](std::size_t first, std::size_t last) {
    if (!audit_failure) {
      try {
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
  if (loop.sign_all) {
    // A remote service: one call signs every item, chunk after chunk; the chunks' results are
    // copied in as they arrive and reported in order like the lanes'.
    run_ordered_chunks(
        n, kReportEvery,
        [&](const std::function<void(std::size_t, std::size_t)>& done) {
          std::vector<char> filled(n, 0);  // the producer's own: which results are in
          std::mutex filling;
          const ChunkDone chunk_done = [&](std::size_t first, std::span<const SignResult> rs) {
            const std::size_t last = std::min(n, first + rs.size());
            {
              const std::lock_guard lock(filling);
              for (std::size_t i = first; i < last; ++i) {
                results[i] = rs[i - first];
                filled[i] = 1;
              }
            }
            done(first, last);
          };
          auto all = loop.sign_all(chunk_done);
          const std::lock_guard lock(filling);
          for (std::size_t i = 0; i < n; ++i) {
            if (filled[i] != 0) continue;
            if (i < all.size()) {
              results[i] = std::move(all[i]);
            } else {
              results[i].error = Error(ErrorCode::Internal, "the service answered fewer results");
            }
          }
          if (loop.cancel != nullptr && loop.cancel->load() &&
              std::ranges::any_of(results, [](const SignResult& r) {
                return r.error && r.error->code() == ErrorCode::UserCancelled;
              })) {
            cancelled = true;
          }
        },
        record, report);
  } else {
    // A token key's lanes sign runs of items, each run in one hand-off to the module's call
    // pool; a run is not started once the batch stopped or was cancelled.
    std::function<void(std::size_t, std::size_t)> work_range;
    if (loop.sign_many) {
      work_range = [&](std::size_t first, std::size_t last) {
        if (stopping()) {
          for (std::size_t i = first; i < last; ++i) work(i);
          return;
        }
        std::vector<SignResult> rs;
        try {
          rs = loop.sign_many(first, last - first);
        } catch (const Error& e) {
          rs.assign(last - first, SignResult{.signature = {}, .error = e});
        } catch (const std::exception& e) {
          rs.assign(last - first,
                    SignResult{.signature = {}, .error = Error(ErrorCode::Internal, e.what())});
        }
        for (std::size_t i = first; i < last; ++i) {
          SignResult& r = results[i];
          if (i - first < rs.size()) {
            r = std::move(rs[i - first]);
          } else {
            r.error = Error(ErrorCode::Internal, "the token answered fewer results");
          }
          if (r.error && stops_batch(r.error->code())) stop_with(*r.error);
        }
      };
    }
    run_ordered(n, n >= kParallelFrom ? 2 : 1, kReportEvery, work, record, report, work_range);
  }
  if (!audit_failure) rows.commit();
  return cancelled.load();
}

}  // namespace kyso::agent::detail
