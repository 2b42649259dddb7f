#pragma once
/// @file
/// The agent's audit log: every approval, refusal and signature in SQLite. Rows are
/// append-only (triggers refuse UPDATE and DELETE) and each row's hash covers the previous
/// row's hash, so removing or editing a row behind SQLite's back is detectable by verify().

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

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
  /// Appends many rows in one transaction (a batch's signatures).
  void append(std::span<const AuditRow> rows);

  /// Walks the chain from the first row; reports the first row whose hash or sequence breaks.
  static AuditVerifyResult verify(const std::filesystem::path& path);

 private:
  void append_locked(sqlite3_stmt* st, const AuditRow& row);

  sqlite3* db_ = nullptr;
  std::mutex mutex_;
  std::int64_t last_seq_ = 0;
  std::string last_hash_;
};

}  // namespace kyso::agent
