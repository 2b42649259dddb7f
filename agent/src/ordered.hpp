#pragma once
// A batch's items signed on token lanes and reported in item order on the calling thread: the
// one loop shared by hash and document jobs.

#include <chrono>
#include <cstddef>
#include <functional>
#include <vector>

#include "kyso/core/signer.hpp"

namespace kyso::agent::detail {

/// Batches this big sign on two token sessions at once.
inline constexpr std::size_t kParallelFrom = 8;
/// While items finish faster, they are audited, committed and reported once per this.
inline constexpr std::chrono::microseconds kReportEvery{10'000};

/// Runs `work(i)` for every item i < n on `lanes` threads of its own (one session each keeps a
/// token busy while the other lane prepares its next item) and calls `report(first, last)` on
/// the calling thread for the items [first, last) once all of them have finished, in item order,
/// each item exactly once. While items finish faster than `every`, reports come at most once per
/// `every` (one audit commit and one handoff per report, not per item); a slow item is reported
/// as soon as it finishes. Returns after the last report.
///
/// `work` must not throw: it records an item's failure in the caller's results. `report` may
/// throw; the lanes then start no further item and the exception is rethrown once they stop.
/// With `lanes` 1 or fewer than 2 items, everything runs on the calling thread.
void run_ordered(std::size_t n, std::size_t lanes, std::chrono::microseconds every,
                 const std::function<void(std::size_t)>& work,
                 const std::function<void(std::size_t, std::size_t)>& report);

/// Items [first, last) lose their signatures and fail with `why` (their audit rows could not be
/// written).
void withhold(std::vector<SignResult>& results, std::size_t first, std::size_t last,
              const Error& why);

}  // namespace kyso::agent::detail
