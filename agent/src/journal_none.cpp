// journal.hpp where there is no system journal Kyso writes to yet (Windows: the Event Log is
// still to come, docs/windows.md). The anchor file beside the log is then the only anchor.
#include "journal.hpp"

namespace kyso::agent::detail {

void journal_anchor(std::int64_t /*seq*/, const std::string& /*hash*/,
                    const std::filesystem::path& /*db*/) noexcept {}

AnchorCheck read_journal_anchors(const std::filesystem::path& /*db*/, Anchors& /*out*/) {
  return {.source = "journal",
          .available = false,
          .anchors = 0,
          .note =
              "unavailable: no system journal on this OS yet (the Windows Event Log is still "
              "to come), so no journal anchor was written or read"};
}

}  // namespace kyso::agent::detail
