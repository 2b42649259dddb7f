#pragma once
/// @file
/// The agent's audit log: every approval, refusal and signature in SQLite. Rows are
/// append-only (triggers refuse UPDATE and DELETE) and chained (kyso::ChainHasher: each row's
/// hash covers the previous row's hash), so removing or editing a row behind SQLite's back is
/// detectable by verify(). After every commit the chain's head (row count and last hash) is also
/// written outside the file, as an anchor: to the system journal (sd_journal_send) when journald
/// runs, and to `<db>.anchors`. verify() checks the rows against every anchor it can read, so rows
/// cut from the end or a chain recomputed after deleting rows are detected while an anchor
/// survives (docs/security.md says which anchor survives what).
///
/// Refusals of origins that are not trusted (a hostile page can send thousands a second) go
/// through refused(): the first of each origin and code in an interval is a row, the others are
/// counted into one "refusals" row at the interval's end. Every field is capped in length before
/// it is stored, and a timer checkpoints the write-ahead log.

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kyso/core/hash_chain.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace kyso::agent {

struct AuditRow {
  std::string event;  ///< "approval", "refusal", "signature", "pairing"
  std::string origin;
  std::string role;
  std::string credential_id;
  std::string digest;  ///< hex digest signed (or, for a batch approval, SHA-256 of all digests)
  std::string result;  ///< "ok" or an error code name ("USER_CANCELLED", ...)
  std::string detail;  ///< what else helps support (title count, algorithm); never a secret
};

/// What verify() found in one anchor source.
struct AnchorCheck {
  std::string source;        ///< "journal" or the anchor file's path
  bool available = false;    ///< false: nothing could be read from it (see `note`)
  std::int64_t anchors = 0;  ///< anchors of this log found and compared
  std::string note;          ///< why unavailable, or what the source can and cannot prove
};

struct AuditVerifyResult {
  bool ok = true;
  std::int64_t rows = 0;
  std::optional<std::int64_t> first_broken;  ///< sequence number of the first bad row
  std::string reason;
  std::vector<AnchorCheck> anchors;  ///< one per source, available or not
};

class AuditLog {
 public:
  /// How often the timer acts.
  struct Timing {
    /// The write-ahead log is copied into the database this often when it holds anything.
    std::chrono::milliseconds checkpoint_every = std::chrono::seconds(30);
    /// Counted refusals are written as one row per origin and code this often.
    std::chrono::milliseconds refusals_every = std::chrono::seconds(60);
  };

  /// Opens (creating when missing) the log at `path`, its anchor file beside it.
  explicit AuditLog(const std::filesystem::path& path) : AuditLog(path, Timing{}) {}
  AuditLog(const std::filesystem::path& path, Timing timing);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;
  AuditLog(AuditLog&&) = delete;
  AuditLog& operator=(AuditLog&&) = delete;

  void append(const AuditRow& row);
  /// Appends many rows in one transaction.
  void append(std::span<const AuditRow> rows);
  /// A refusal of an origin that is not trusted: written at once when it is the first of its
  /// origin and code in this interval, else counted into the interval's "refusals" row, whose
  /// detail starts with how many it stands for ("4999 more refused since ...").
  void refused(const AuditRow& row);
  /// Writes the counted refusals now (the timer and the destructor call it).
  void flush_refused();
  /// A batch's signature rows, written as its items finish (while the token signs the next
  /// ones) inside a transaction that flush() commits and reopens and commit() ends: a
  /// signature leaves the agent only after flush() or commit() covered its row. Rows others
  /// append meanwhile (a refused connection) join that transaction in chain order; nobody waits
  /// longer than one insert. Destroyed without commit(): the rows since the last flush() are
  /// rolled back, and those other rows are written again.
  class Batch {
   public:
    /// `common` gives every field but the digest and the result. One batch at a time.
    Batch(AuditLog& log, AuditRow common);
    ~Batch();
    Batch(const Batch&) = delete;
    Batch& operator=(const Batch&) = delete;
    Batch(Batch&&) = delete;
    Batch& operator=(Batch&&) = delete;

    /// One signature's row: its digest (hex in the log), result ("ok" or an error code) and,
    /// for documents, what was signed and produced.
    void add(std::span<const std::uint8_t> digest, std::string_view result,
             std::string_view detail = {});
    /// Commits the rows so far and opens the next transaction.
    void flush();
    void commit();

   private:
    AuditLog& log_;
    AuditRow common_;
    std::int64_t seq_before_ = 0;
    std::string hash_before_;
    bool done_ = false;
  };

  /// Copies the write-ahead log into the database when it has grown (SQLite's automatic
  /// checkpoint is off so that it never lands in a batch's commit). Call when idle.
  void checkpoint();

  /// Walks the chain from the first row; reports the first row whose hash or sequence breaks,
  /// then compares the rows with every anchor found (journal, anchor file): an anchored row
  /// that is missing or has another hash breaks the log.
  static AuditVerifyResult verify(const std::filesystem::path& path);
  /// The anchor file of the log at `path`.
  static std::filesystem::path anchor_file(const std::filesystem::path& path);

 private:
  struct RowView;
  static RowView view_of(const AuditRow& r);
  /// The fields in the order they are chained (after the sequence number and time).
  static std::array<std::string_view, 7> chained_fields(const RowView& r);
  void insert(const RowView& row);
  /// Records the committed head (journal, anchor file); called with mutex_ held.
  void anchor() noexcept;
  void checkpoint_over(int pages);
  void run_timer(const std::stop_token& stop);
  [[nodiscard]] std::string_view now_text();

  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;  // prepared once, reused for every row
  ChainHasher hasher_;
  std::mutex mutex_;
  std::int64_t last_seq_ = 0;
  std::string last_hash_;
  Batch* batch_ = nullptr;         // the open batch transaction, if any
  std::vector<AuditRow> joined_;   // rows others appended into it (written again on rollback)
  std::int64_t time_second_ = -1;  // now_text()'s cache: rows carry the time to the second
  std::string time_text_;
  int wal_pages_ = 0;  // from sqlite3_wal_hook, for checkpoint()
  std::filesystem::path path_;
  int anchor_fd_ = -1;  // <db>.anchors, O_APPEND

  struct Counted {
    std::int64_t count = 0;
    std::string since;                                       // when the interval began
    std::vector<std::pair<std::string, std::int64_t>> what;  // detail -> count, a few kinds
  };
  std::mutex refused_mutex_;  // taken before mutex_, never after
  std::map<std::pair<std::string, std::string>, Counted> refused_;  // (origin, code)

  Timing timing_;
  std::mutex timer_mutex_;
  std::condition_variable_any timer_cv_;
  std::jthread timer_;  // last: stopped before the rest goes
};

}  // namespace kyso::agent
