#pragma once
/// @file
/// The appliance's state: bearer tokens, signing transactions (each with the exact set of hashes
/// the user approved), SADs, brute-force counters, TOTP replay counters, and the append-only
/// audit log whose rows are chained by SHA-256.
///
/// StateStore is the interface; open_state_store() picks the backend from the profile's
/// `state_db`: a file path (SQLite, one node) or a `postgresql://` URL (several nodes sharing one
/// database). Every guarantee (a hash signed once, a SAD extended once, a TOTP step used once,
/// the attempt counters, the audit chain) is one database transaction, so it holds across
/// processes and nodes (docs/appliance-scaling.md). Secrets are never stored: tokens and SADs
/// are kept as their SHA-256.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"

namespace kyso::appliance {

using TimePoint = std::chrono::system_clock::time_point;

/// One approval: the user's PIN + OTP over exactly `hashes` (distinct, all of one algorithm).
struct TransactionRecord {
  std::string user;
  std::string bearer;          ///< SHA-256 hex of the bearer token it is bound to
  std::string credential;      ///< credential id
  std::string hash_algorithm;  ///< OID
  TimePoint expires;
};

/// A SAD and the transaction it stands for.
struct SadRecord {
  std::string transaction;  ///< id (SHA-256 hex) of the transaction
  TransactionRecord approval;
  TimePoint expires;      ///< never beyond the transaction's
  bool extended = false;  ///< already traded for a new SAD (extendTransaction): dead
  /// The HSM PIN the user gave, encrypted under a key only the SAD itself yields (the store keeps
  /// the SAD's hash, never the SAD): another node logs in to its HSM session with it.
  std::string sealed_pin;
};

/// What consume() and check_unsigned() found.
struct HashCheck {
  bool ok = true;
  std::size_t first_bad = 0;  ///< when !ok: index of the first hash outside the approved set,
                              ///< already signed, or (for consume) the SAD no longer live
  bool sad_dead = false;      ///< the SAD was extended or expired meanwhile
};

/// The outcome of reserving an attempt before a secret is checked.
enum class Attempt {
  Allowed,  ///< counted; check the secret, then report it with attempt_failed/_succeeded
  Locked,   ///< the user is locked, or `max` attempts are already counted: do not check
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

/// The database cannot be reached now (connection lost, server restarting, a deadlock or
/// serialisation failure): the request fails with 503 and may be retried; nothing was half-done.
class StoreUnavailable : public Error {
 public:
  explicit StoreUnavailable(std::string detail) : Error(ErrorCode::Internal, std::move(detail)) {}
};

class StateStore {
 public:
  StateStore() = default;
  virtual ~StateStore() = default;
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;
  StateStore(StateStore&&) = delete;
  StateStore& operator=(StateStore&&) = delete;

  /// "sqlite" or "postgresql".
  [[nodiscard]] virtual std::string_view backend() const noexcept = 0;
  /// A cheap round trip to the database (the health endpoint). Throws Error(Internal).
  virtual void ping() = 0;
  /// The schema version the database is at (migrations applied).
  virtual int schema_version() = 0;
  /// Network round trips to the database so far, by every PostgreSQL store of this process
  /// (benchmarks count them per signHash); 0 for SQLite, which runs in the process.
  [[nodiscard]] virtual std::uint64_t round_trips() const noexcept { return 0; }

  virtual void put_token(std::string_view token_hash, std::string_view user, TimePoint expires) = 0;
  /// The user of a bearer token that exists and has not expired.
  virtual std::optional<std::string> token_user(std::string_view token_hash, TimePoint now) = 0;
  virtual void revoke_token(std::string_view token_hash) = 0;

  /// Whether `user` is locked out at `now`.
  virtual bool locked(std::string_view user, TimePoint now) = 0;
  /// Counts one attempt of `kind` ("login", "authorize") *before* its secret is checked, in one
  /// atomic step: refused when the user is locked or `max` attempts of that kind are already
  /// counted (failed or still being checked), so parallel guesses never evaluate more than
  /// `max` secrets.
  virtual Attempt begin_attempt(std::string_view user, std::string_view kind, TimePoint now,
                                std::size_t max) = 0;
  /// The attempt's secret was wrong: it stays counted; once `max` are counted the user is locked
  /// until now + lockout. Returns true when this failure locked the user.
  virtual bool attempt_failed(std::string_view user, std::string_view kind, TimePoint now,
                              std::size_t max, std::chrono::seconds lockout) = 0;
  /// The attempt's secret was right: the count starts again.
  virtual void attempt_succeeded(std::string_view user, std::string_view kind) = 0;

  /// Accepts a TOTP time-step counter only if it is newer than the last one accepted for this
  /// user (an OTP is good once).
  virtual bool accept_totp_counter(std::string_view user, std::uint64_t counter) = 0;

  /// Stores one approval and its first SAD, atomically: the transaction, its `hashes` (distinct;
  /// each signable once) and the SAD with its sealed PIN.
  virtual void put_transaction(std::string_view id, const TransactionRecord& t,
                               std::span<const Bytes> hashes, std::string_view sad_hash,
                               TimePoint sad_expires, std::string_view sealed_pin) = 0;
  virtual std::optional<SadRecord> sad(std::string_view sad_hash) = 0;
  /// token_user() and sad() together (signHash needs both before anything else): one round
  /// trip on PostgreSQL. The SAD is looked up whatever the token's answer; the caller checks
  /// the token first.
  virtual std::pair<std::optional<std::string>, std::optional<SadRecord>> token_user_and_sad(
      std::string_view token_hash, std::string_view sad_hash, TimePoint now) {
    auto user = token_user(token_hash, now);
    return {std::move(user), sad(sad_hash)};
  }
  /// extendTransaction: trades a live SAD for a new one over the same approval, once. False when
  /// the SAD was already extended or has expired at `now`.
  virtual bool extend_sad(std::string_view old_sad_hash, std::string_view new_sad_hash,
                          TimePoint new_expires, TimePoint now, std::string_view sealed_pin) = 0;
  /// Whether every hash is in the SAD's transaction and not signed yet (nothing is changed).
  virtual HashCheck check_unsigned(std::string_view transaction, std::span<const Bytes> hashes) = 0;
  /// signHash: marks each hash signed by `request` (the client's request
  /// id), all or nothing, while the SAD is live at `now`. On refusal
  /// nothing is consumed. A hash already marked by the same non-empty
  /// request id is taken again: that is the client retrying a request whose
  /// answer was lost (a node died), never a way to a hash outside the
  /// approval.
  virtual HashCheck consume(std::string_view sad_hash, std::span<const Bytes> hashes, TimePoint now,
                            std::string_view request) = 0;

  /// Removes expired tokens, SADs, transactions and locks.
  virtual void purge(TimePoint now) = 0;

  /// Appends one audit row (never a secret in `detail`); appends are
  /// serialised across nodes.
  virtual void audit(std::string_view user, std::string_view event, std::string_view detail) = 0;
  virtual std::vector<AuditEntry> audit_log() = 0;
  /// Recomputes the chain; the seq of the first broken row, or nullopt when
  /// intact.
  std::optional<std::int64_t> verify_audit_chain();
};

/// Opens the state named by a profile's `state_db`: `postgresql://...` (or `postgres://`, or a
/// libpq "key=value" string starting with `postgresql:`) for PostgreSQL, anything else a SQLite
/// file (":memory:" keeps nothing). Runs the schema migrations when `migrate` is true (SQLite
/// always migrates; a PostgreSQL node refuses to start on an old schema, run
/// `kyso-appliance migrate` first). Throws Error(ConfigInvalid) when it cannot open it.
std::unique_ptr<StateStore> open_state_store(const std::string& location, bool migrate = true);

/// `kyso-appliance migrate`: brings the schema up to date and returns its version. For PostgreSQL,
/// run it as the database's owner; `grant_role` (the nodes' login) then gets what a node needs:
/// SELECT and INSERT only on the audit log, all on the other tables.
int migrate_state_store(const std::string& location, const std::string& grant_role = {});

/// Whether `location` names a PostgreSQL database.
bool is_postgres_url(std::string_view location);

}  // namespace kyso::appliance
