#pragma once
/// @file
/// The agent's audit log: every approval, refusal and signature in SQLite. Rows are
/// append-only (triggers refuse UPDATE and DELETE) and chained (kyso::ChainHasher: each row's
/// hash covers the previous row's hash), so removing or editing a row behind SQLite's back is
/// detectable by verify().

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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

struct AuditVerifyResult {
  bool ok = true;
  std::int64_t rows = 0;
  std::optional<std::int64_t> first_broken;  ///< sequence number of the first bad row
  std::string reason;
};

class AuditLog {
 public:
  /// Opens (creating when missing) the log at `path`.
  explicit AuditLog(const std::filesystem::path& path);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;
  AuditLog(AuditLog&&) = delete;
  AuditLog& operator=(AuditLog&&) = delete;

  void append(const AuditRow& row);
  /// Appends many rows in one transaction.
  void append(std::span<const AuditRow> rows);
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

  /// Walks the chain from the first row; reports the first row whose hash or sequence breaks.
  static AuditVerifyResult verify(const std::filesystem::path& path);

 private:
  struct RowView;
  static RowView view_of(const AuditRow& r);
  /// The fields in the order they are chained (after the sequence number and time).
  static std::array<std::string_view, 7> chained_fields(const RowView& r);
  void insert(const RowView& row);
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
};

}  // namespace kyso::agent
