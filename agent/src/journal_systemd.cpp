// journal.hpp over journald (Linux).
#include <systemd/sd-journal.h>

#include <charconv>
#include <cstring>
#include <memory>
#include <string_view>

#include "journal.hpp"

namespace kyso::agent::detail {
namespace {

// The journal entries that carry the chain's head (journalctl MESSAGE_ID=...).
constexpr const char* kAnchorMessageId = "5b0a5d2e8f9c4c1e9a4f0d6b7c3e2a91";

struct JournalCloser {
  void operator()(sd_journal* j) const noexcept { sd_journal_close(j); }
};

std::string journal_field(sd_journal* j, const char* field) {
  const void* data = nullptr;
  std::size_t len = 0;
  if (sd_journal_get_data(j, field, &data, &len) < 0) return {};
  const std::string_view v(static_cast<const char*>(data), len);
  const auto eq = v.find('=');
  return eq == std::string_view::npos ? std::string() : std::string(v.substr(eq + 1));
}

}  // namespace

AnchorCheck read_journal_anchors(const std::filesystem::path& db, Anchors& out) {
  AnchorCheck c{.source = "journal", .available = false, .anchors = 0, .note = {}};
  std::error_code ec;
  const bool running = std::filesystem::exists("/run/systemd/journal/socket", ec);
  sd_journal* j = nullptr;
  if (const int r = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY); r < 0) {
    c.note = "cannot open the system journal: " + std::string(std::strerror(-r));
    return c;
  }
  const std::unique_ptr<sd_journal, JournalCloser> guard(j);
  const std::string id = std::string("MESSAGE_ID=") + kAnchorMessageId;
  const std::string path = "KYSO_AUDIT_DB=" + std::filesystem::absolute(db).string();
  sd_journal_add_match(j, id.data(), id.size());
  sd_journal_add_match(j, path.data(), path.size());
  while (sd_journal_next(j) > 0) {
    const std::string seq = journal_field(j, "KYSO_AUDIT_SEQ");
    std::string hash = journal_field(j, "KYSO_AUDIT_HASH");
    std::int64_t n = 0;
    const auto [p, e] = std::from_chars(seq.data(), seq.data() + seq.size(), n);
    if (e == std::errc() && !hash.empty()) out.emplace_back(n, std::move(hash));
  }
  c.anchors = static_cast<std::int64_t>(out.size());
  c.available = running || c.anchors > 0;
  if (!c.available) {
    c.note =
        "unavailable: journald is not running here (no /run/systemd/journal/socket), so no "
        "journal anchor was written or read";
  } else if (c.anchors == 0) {
    c.note =
        "journald runs but holds no anchor of this log (a volatile journal since boot, "
        "entries rotated away, or a log older than its anchors)";
  } else {
    c.note = "written by journald, which its user cannot rewrite";
  }
  return c;
}

void journal_anchor(std::int64_t seq, const std::string& hash,
                    const std::filesystem::path& db) noexcept {
  // journald owns its files: the user can add entries but not change or remove them.
  sd_journal_send("MESSAGE=kyso-agent audit log head: row %lld, hash %s",
                  static_cast<long long>(seq), hash.c_str(), "MESSAGE_ID=%s", kAnchorMessageId,
                  "PRIORITY=6", "KYSO_AUDIT_SEQ=%lld", static_cast<long long>(seq),
                  "KYSO_AUDIT_HASH=%s", hash.c_str(), "KYSO_AUDIT_DB=%s", db.c_str(), nullptr);
}

}  // namespace kyso::agent::detail
