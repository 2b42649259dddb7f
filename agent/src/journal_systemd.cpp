// journal.hpp over journald (Linux).
//
// Written with journald's native protocol (one datagram on /run/systemd/journal/socket,
// systemd.io/JOURNAL_NATIVE_PROTOCOL, what sd_journal_send itself sends), read back with
// libsystemd's sd_journal_* loaded the first time verify() runs. kyso-agent writes an anchor at
// start and after every commit but never reads one: linking libsystemd for that one datagram mapped
// it and its six libraries (libgcrypt, libgpg-error, liblzma, libzstd, liblz4, libcap) into every
// teacher's always-running agent, 1.3-1.4 MB of its idle RSS (issue 11).
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-journal.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>

#include "journal.hpp"
#include "kyso/core/platform.hpp"

namespace kyso::agent::detail {
namespace {

// The journal entries that carry the chain's head (journalctl MESSAGE_ID=...).
constexpr const char* kAnchorMessageId = "5b0a5d2e8f9c4c1e9a4f0d6b7c3e2a91";
constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

/// One field of a native-protocol entry: `NAME=value\n`, or, when the value holds a newline,
/// `NAME\n`, its length as 64-bit little-endian, the value and `\n`.
void add_field(std::string& out, std::string_view name, std::string_view value) {
  out += name;
  if (value.find('\n') == std::string_view::npos) {
    out += '=';
  } else {
    out += '\n';
    auto n = static_cast<std::uint64_t>(value.size());
    for (int i = 0; i < 8; ++i, n >>= 8) out += static_cast<char>(n & 0xffU);
  }
  out += value;
  out += '\n';
}

/// libsystemd's journal reader, loaded by the first verify() and kept (a library once used
/// stays mapped: platform.hpp).
class JournalReader {
 public:
  JournalReader() {
    std::string why;
    lib_ = platform::load_library("libsystemd.so.0", why);
    if (lib_ == nullptr) {
      why_ = "libsystemd.so.0 cannot be loaded (" + why + ")";
      return;
    }
    if (!(bind(open_, "sd_journal_open") && bind(close_, "sd_journal_close") &&
          bind(add_match_, "sd_journal_add_match") && bind(next_, "sd_journal_next") &&
          bind(get_data_, "sd_journal_get_data"))) {
      why_ = "libsystemd.so.0 lacks sd_journal_*";
    }
  }
  ~JournalReader() = default;
  JournalReader(const JournalReader&) = delete;
  JournalReader& operator=(const JournalReader&) = delete;
  JournalReader(JournalReader&&) = delete;
  JournalReader& operator=(JournalReader&&) = delete;

  /// Empty when it can read the journal; else why not.
  [[nodiscard]] const std::string& why_not() const noexcept { return why_; }

  decltype(&sd_journal_open) open_ = nullptr;
  decltype(&sd_journal_close) close_ = nullptr;
  decltype(&sd_journal_add_match) add_match_ = nullptr;
  decltype(&sd_journal_next) next_ = nullptr;
  decltype(&sd_journal_get_data) get_data_ = nullptr;

 private:
  template <typename Fn>
  bool bind(Fn& fn, const char* name) noexcept {
    fn = reinterpret_cast<Fn>(platform::library_symbol(lib_, name));
    return fn != nullptr;
  }

  void* lib_ = nullptr;
  std::string why_;
};

std::string journal_field(const JournalReader& r, sd_journal* j, const char* field) {
  const void* data = nullptr;
  std::size_t len = 0;
  if (r.get_data_(j, field, &data, &len) < 0) return {};
  const std::string_view v(static_cast<const char*>(data), len);
  const auto eq = v.find('=');
  return eq == std::string_view::npos ? std::string() : std::string(v.substr(eq + 1));
}

}  // namespace

AnchorCheck read_journal_anchors(const std::filesystem::path& db, Anchors& out) {
  AnchorCheck c{.source = "journal", .available = false, .anchors = 0, .note = {}};
  std::error_code ec;
  const bool running = std::filesystem::exists(kJournalSocket, ec);
  static const JournalReader r;
  if (!r.why_not().empty()) {
    c.note = "cannot read the system journal: " + r.why_not();
    return c;
  }
  sd_journal* j = nullptr;
  if (const int rc = r.open_(&j, SD_JOURNAL_LOCAL_ONLY); rc < 0) {
    c.note = "cannot open the system journal: " + std::string(std::strerror(-rc));
    return c;
  }
  const auto closer = [](sd_journal* p) noexcept { r.close_(p); };
  const std::unique_ptr<sd_journal, decltype(closer)> guard(j, closer);
  const std::string id = std::string("MESSAGE_ID=") + kAnchorMessageId;
  const std::string path = "KYSO_AUDIT_DB=" + std::filesystem::absolute(db).string();
  r.add_match_(j, id.data(), id.size());
  r.add_match_(j, path.data(), path.size());
  while (r.next_(j) > 0) {
    const std::string seq = journal_field(r, j, "KYSO_AUDIT_SEQ");
    std::string hash = journal_field(r, j, "KYSO_AUDIT_HASH");
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
  try {
    const std::string n = std::to_string(seq);
    std::string entry;
    add_field(entry, "MESSAGE", "kyso-agent audit log head: row " + n + ", hash " + hash);
    add_field(entry, "MESSAGE_ID", kAnchorMessageId);
    add_field(entry, "PRIORITY", "6");
    add_field(entry, "KYSO_AUDIT_SEQ", n);
    add_field(entry, "KYSO_AUDIT_HASH", hash);
    add_field(entry, "KYSO_AUDIT_DB", db.native());
    // One socket for the process, unconnected: a journald restarted since is found again.
    static const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    sockaddr_un to{};
    to.sun_family = AF_UNIX;
    std::strncpy(to.sun_path, kJournalSocket, sizeof to.sun_path - 1);
    // An entry is a few hundred bytes (a path at most 4 KiB): always one datagram. No journald
    // (containers): ENOENT, and the anchor file beside the log is the anchor left.
    (void)::sendto(fd, entry.data(), entry.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&to),
                   sizeof to);
  } catch (...) {
    // Out of memory for a few hundred bytes: the anchor file still has the head.
  }
}

}  // namespace kyso::agent::detail
