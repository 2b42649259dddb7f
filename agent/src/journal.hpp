#pragma once
// The system journal's side of the audit log's anchors (audit.cpp, kyso/agent/audit.hpp): the
// committed head written where the log's user cannot rewrite it, and read back by verify().
// journald on Linux (journal_systemd.cpp); none yet on Windows (journal_none.cpp, where the
// Event Log is what remains: docs/windows.md). CMake compiles one of the two.

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "kyso/agent/audit.hpp"

namespace kyso::agent::detail {

using Anchors = std::vector<std::pair<std::int64_t, std::string>>;

/// Records row `seq` with hash `hash` as the head of the log at `db`.
void journal_anchor(std::int64_t seq, const std::string& hash,
                    const std::filesystem::path& db) noexcept;
/// The anchors of the log at `db` found in the journal, appended to `out`, and what that proves.
AnchorCheck read_journal_anchors(const std::filesystem::path& db, Anchors& out);

}  // namespace kyso::agent::detail
