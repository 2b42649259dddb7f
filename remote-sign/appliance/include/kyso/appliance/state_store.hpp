#pragma once
/// @file
/// The appliance's state in SQLite: bearer tokens, SADs and the hashes each may sign, signing
/// transactions, brute-force counters, TOTP replay counters, and the append-only audit log whose
/// rows are chained by SHA-256 (each row's hash covers the previous row's hash).
///
/// Secrets are never stored: tokens and SADs are kept as their SHA-256. Thread-safe (one
/// connection behind a mutex; every call is a short transaction).

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/core/bytes.hpp"

struct sqlite3;

namespace kyso::appliance {

using TimePoint = std::chrono::system_clock::time_point;

struct SadRecord {
  std::string user;
  std::string bearer;          ///< SHA-256 hex of the bearer token it is bound to
  std::string credential;      ///< credential id
  std::string hash_algorithm;  ///< OID
  std::string transaction;     ///< id of the transaction (first authorization) it belongs to
  TimePoint expires;
};

struct TransactionRecord {
  std::string user;
  std::string bearer;
  std::string credential;
  TimePoint expires;
  std::int64_t remaining = 0;  ///< hashes that extensions may still add
};

struct AuditEntry {
  std::int64_t seq = 0;
  std::string time;
  std::string user;
  std::string event;
  std::string detail;
  std::string prev_hash;
  std::string hash;
};

class StateStore {
 public:
  /// Opens (creating) the database; ":memory:" keeps nothing.
  explicit StateStore(const std::filesystem::path& path);
  ~StateStore();
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;
  StateStore(StateStore&&) = delete;
  StateStore& operator=(StateStore&&) = delete;

  void put_token(std::string_view token_hash, std::string_view user, TimePoint expires);
  /// The user of a bearer token that exists and has not expired.
  std::optional<std::string> token_user(std::string_view token_hash, TimePoint now);
  void revoke_token(std::string_view token_hash);

  /// Whether `user` is locked out (any kind of failure reached the limit) at `now`.
  bool locked(std::string_view user, TimePoint now);
  /// Counts one failure of `kind` ("login", "pin", "otp"); locks the user until now + lockout
  /// once `max_failures` follow each other. Returns true when this failure locked the user.
  bool record_failure(std::string_view user, std::string_view kind, TimePoint now,
                      std::size_t max_failures, std::chrono::seconds lockout);
  void clear_failures(std::string_view user, std::string_view kind);

  /// Accepts a TOTP time-step counter only if it is newer than the last one accepted for this
  /// user (an OTP is good once).
  bool accept_totp_counter(std::string_view user, std::uint64_t counter);

  void put_transaction(std::string_view id, const TransactionRecord& t);
  std::optional<TransactionRecord> transaction(std::string_view id);
  /// Takes `count` hashes off the transaction's allowance; false when not enough remain.
  bool take_from_transaction(std::string_view id, std::int64_t count);

  void put_sad(std::string_view sad_hash, const SadRecord& sad, std::span<const Bytes> hashes);
  std::optional<SadRecord> sad(std::string_view sad_hash);
  /// Consumes one use of each hash (a hash listed twice may be signed twice), all or nothing.
  /// Returns false, consuming nothing, when any hash is not (or no longer) authorized.
  bool consume(std::string_view sad_hash, std::span<const Bytes> hashes);

  /// Removes expired tokens, SADs and transactions.
  void purge(TimePoint now);

  /// Appends one audit row (never a secret in `detail`).
  void audit(std::string_view user, std::string_view event, std::string_view detail);
  std::vector<AuditEntry> audit_log();
  /// Recomputes the chain; the seq of the first broken row, or nullopt when intact.
  std::optional<std::int64_t> verify_audit_chain();

 private:
  void exec(const char* sql);
  sqlite3* db_ = nullptr;
  std::mutex mutex_;
  std::string last_audit_hash_;
};

}  // namespace kyso::appliance
