#pragma once
// A batch's items signed on token lanes and reported in item order on the calling thread: the
// one loop shared by hash and document jobs.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kyso/agent/audit.hpp"
#include "kyso/core/signer.hpp"

namespace kyso::agent::detail {

/// Batches this big sign on two token sessions at once.
inline constexpr std::size_t kParallelFrom = 8;
/// While items finish faster, they are committed and reported once per this (their audit rows
/// are written as they finish).
inline constexpr std::chrono::microseconds kReportEvery{10'000};

/// Runs `work(i)` for every item i < n on `lanes` threads of its own (one session each keeps a
/// token busy while the other lane prepares its next item) and, on the calling thread, calls
/// `record(first, last)` for the items [first, last) as soon as all of them have finished and
/// `report(first, last)` for recorded items, both in item order, each item exactly once and
/// recorded before it is reported. While items finish faster than `every`, reports come at most
/// once per `every` (one audit commit and one handoff per report, not per item) and items are
/// recorded meanwhile (their audit rows written while the lanes sign, so that little is left
/// when the last item finishes); a slow item is reported as soon as it finishes. Returns after
/// the last report.
///
/// `work` must not throw: it records an item's failure in the caller's results. `record` and
/// `report` may throw; the lanes then start no further item and the exception is rethrown once
/// they stop. With `lanes` 1 or fewer than 2 items, everything runs on the calling thread.
///
/// `work_range` (optional): lanes take runs of items [first, last) and do each run in one
/// call, runs that double while they take under kRunFast (up to kRunMax items) and halve
/// when they take over kRunSlow, so fast items cost one call per run and slow ones are done
/// and reported one by one; near the end a run is at most a quarter of a lane's share of the
/// items left, so that the lanes finish together.
void run_ordered(std::size_t n, std::size_t lanes, std::chrono::microseconds every,
                 const std::function<void(std::size_t)>& work,
                 const std::function<void(std::size_t, std::size_t)>& record,
                 const std::function<void(std::size_t, std::size_t)>& report,
                 const std::function<void(std::size_t, std::size_t)>& work_range = {});

/// Bounds of run_ordered's runs of items.
inline constexpr std::chrono::microseconds kRunFast{2'000};
inline constexpr std::chrono::microseconds kRunSlow{10'000};
inline constexpr std::size_t kRunMax = 64;

/// The same ordered recording and reporting for work that one call does for every item (a
/// remote service signing chunk after chunk): `work(done)` runs on a thread of its own and
/// calls `done(first, last)` once items [first, last) finished, from any thread and in any
/// order.
void run_ordered_chunks(
    std::size_t n, std::chrono::microseconds every,
    const std::function<void(const std::function<void(std::size_t, std::size_t)>&)>& work,
    const std::function<void(std::size_t, std::size_t)>& record,
    const std::function<void(std::size_t, std::size_t)>& report);

/// Results [first, first + results.size()) are ready; any thread, any order.
using ChunkDone = std::function<void(std::size_t first, std::span<const SignResult> results)>;

/// What a batch signs, for sign_in_order().
struct SignLoop {
  std::size_t items = 0;
  const std::atomic<bool>* cancel = nullptr;
  /// Signs item i: sets `r.signature` (hashes) or keeps its own output (documents); throws Error.
  std::function<void(std::size_t, SignResult& r)> sign;
  /// Besides `sign`, for a token key that needs no PIN before each signature (may be empty):
  /// signs items [first, first + count) in one go, one result per item (a token's run of
  /// signatures: one hand-off to the module's call pool for the run, not one per item).
  std::function<std::vector<SignResult>(std::size_t first, std::size_t count)> sign_many;
  /// Instead of `sign`, for a signer that signs in chunks (a remote service): signs every item,
  /// calling `chunk_done` as results arrive and stopping at `cancel`; one result per item.
  std::function<std::vector<SignResult>(const ChunkDone& chunk_done)> sign_all;
  /// Item i's approved digest, as its audit row records it.
  std::function<std::span<const std::uint8_t>(std::size_t)> digest;
  /// What item i's audit row says besides (may be empty; documents: what was produced).
  std::function<std::string(std::size_t)> detail;
  /// Drops item i's own output when its audit row could not be written (may be empty).
  std::function<void(std::size_t)> withhold;
};

/// The signing loop of every batch (hash and document items, token and remote): items on token
/// lanes (or chunks of a remote service), each
/// audited in `audit` in item order and committed before `progress` sees it. An error that
/// stops a batch (stops_batch()) or the page's cancel fails every item not yet started with it;
/// an audit failure withholds every signature whose row was not committed. `results` gets one
/// entry per item. Returns whether the batch was cancelled.
/// The rows name `origin`, `role` and `credential_id`.
bool sign_in_order(const SignLoop& loop, AuditLog& audit, const std::string& origin,
                   const std::string& role, const std::string& credential_id,
                   std::vector<SignResult>& results,
                   const std::function<void(std::size_t, const SignResult&)>& progress);

}  // namespace kyso::agent::detail
