// The SQLite backend (one node: a school or a district's pilot), the backend choice and the audit
// chain's verification shared by both backends.
#include "kyso/appliance/state_store.hpp"

#include <sqlite3.h>

#include <array>
#include <mutex>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/hash_chain.hpp"
#include "postgres_store.hpp"
#include "store_time.hpp"

namespace kyso::appliance {
namespace {

[[noreturn]] void fail(sqlite3* db, const char* what) {
  throw Error(ErrorCode::Internal, std::string("SQLite ") + what + ": " + sqlite3_errmsg(db));
}

// One prepared statement; finalized on every path.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) fail(db, "prepare");
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt(Stmt&&) = delete;
  Stmt& operator=(Stmt&&) = delete;

  Stmt& bind(int i, std::string_view v) {
    check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  Stmt& bind_blob(int i, std::span<const std::uint8_t> v) {
    check(sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  /// true: a row is ready; false: done.
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, "step");
  }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  std::string text(int i) {
    const auto* p = sqlite3_column_text(s_, i);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<std::size_t>(sqlite3_column_bytes(s_, i)));
  }
  std::int64_t integer(int i) { return sqlite3_column_int64(s_, i); }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, "bind");
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back when an exception leaves the scope.
class Tx {
 public:
  explicit Tx(sqlite3* db) : db_(db) {
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      fail(db_, "begin");
    }
  }
  ~Tx() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;
  Tx(Tx&&) = delete;
  Tx& operator=(Tx&&) = delete;
  void commit() {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) fail(db_, "commit");
    done_ = true;
  }

 private:
  sqlite3* db_;
  bool done_ = false;
};

// Versioned schema: migration k brings user_version from k-1 to k. Version 1 is the schema from
// before versioning (CREATE ... IF NOT EXISTS, so an old file passes through it unchanged).
constexpr std::array<const char*, 3> kMigrations = {
    "CREATE TABLE IF NOT EXISTS tokens(token TEXT PRIMARY KEY, user TEXT NOT NULL,"
    " expires INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS failures(user TEXT NOT NULL, kind TEXT NOT NULL,"
    " count INTEGER NOT NULL, PRIMARY KEY(user, kind));"
    "CREATE TABLE IF NOT EXISTS locks(user TEXT PRIMARY KEY, until INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS totp(user TEXT PRIMARY KEY, counter INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY, time TEXT NOT NULL,"
    " user TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL,"
    " hash TEXT NOT NULL);"
    // Append-only: the database itself refuses to rewrite history.
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;",
    // 2: an approval is a transaction with its exact set of hashes, each signable once; a SAD
    // points at it and can be traded for a new one once. (The per-SAD hash lists of version 1
    // let an extension add hashes nobody approved.) In-flight approvals are dropped.
    "DROP TABLE IF EXISTS sad_hashes; DROP TABLE IF EXISTS sads;"
    " DROP TABLE IF EXISTS transactions;"
    "CREATE TABLE transactions(id TEXT PRIMARY KEY, user TEXT NOT NULL, bearer TEXT NOT NULL,"
    " credential TEXT NOT NULL, hash_alg TEXT NOT NULL, expires INTEGER NOT NULL);"
    "CREATE TABLE txn_hashes(txn TEXT NOT NULL, hash BLOB NOT NULL,"
    " signed INTEGER NOT NULL DEFAULT 0, request TEXT NOT NULL DEFAULT '',"
    " PRIMARY KEY(txn, hash)) WITHOUT ROWID;"
    "CREATE TABLE sads(sad TEXT PRIMARY KEY, txn TEXT NOT NULL, expires INTEGER NOT NULL,"
    " extended INTEGER NOT NULL DEFAULT 0, pin TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX sads_txn ON sads(txn);",
    // 3: an approval's hashes are kept in the order they were approved (a rowid table, found
    // through a unique index on (txn, hash)). Keyed by (txn, hash) the rows sat in hash order, so
    // the 100 hashes of one signHash chunk were spread over most leaf pages of the transaction:
    // each chunk of a 2,000-hash approval wrote 110-120 KB of WAL, on the signing cores. Now a
    // chunk's rows are neighbours (16-25 KB) and the index, whose columns never change, is not
    // rewritten.
    "CREATE TABLE txn_hashes_v3(txn TEXT NOT NULL, hash BLOB NOT NULL,"
    " signed INTEGER NOT NULL DEFAULT 0, request TEXT NOT NULL DEFAULT '');"
    "INSERT INTO txn_hashes_v3(txn, hash, signed, request)"
    " SELECT txn, hash, signed, request FROM txn_hashes;"
    "DROP TABLE txn_hashes;"
    "ALTER TABLE txn_hashes_v3 RENAME TO txn_hashes;"
    "CREATE UNIQUE INDEX txn_hashes_key ON txn_hashes(txn, hash);",
};

class SqliteStore final : public StateStore {
 public:
  explicit SqliteStore(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                        nullptr) != SQLITE_OK) {
      const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw Error(ErrorCode::ConfigInvalid, "cannot open state database " + path + ": " + why);
    }
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=NORMAL");
    migrate();
  }
  ~SqliteStore() override { sqlite3_close_v2(db_); }
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  SqliteStore(SqliteStore&&) = delete;
  SqliteStore& operator=(SqliteStore&&) = delete;

  [[nodiscard]] std::string_view backend() const noexcept override { return "sqlite"; }

  void ping() override {
    const std::lock_guard lock(mutex_);
    Stmt s(db_, "SELECT 1");
    s.step();
  }

  int schema_version() override {
    const std::lock_guard lock(mutex_);
    Stmt s(db_, "PRAGMA user_version");
    return s.step() ? static_cast<int>(s.integer(0)) : 0;
  }

  void put_token(std::string_view token_hash, std::string_view user, TimePoint expires) override {
    const std::lock_guard lock(mutex_);
    Stmt s(db_, "INSERT INTO tokens(token, user, expires) VALUES(?, ?, ?)");
    s.bind(1, token_hash).bind(2, user).bind(3, to_unix_ms(expires)).step();
  }

  std::optional<std::string> token_user(std::string_view token_hash, TimePoint now) override {
    const std::lock_guard lock(mutex_);
    Stmt s(db_, "SELECT user FROM tokens WHERE token = ? AND expires > ?");
    s.bind(1, token_hash).bind(2, to_unix_ms(now));
    if (!s.step()) return std::nullopt;
    return s.text(0);
  }

  void revoke_token(std::string_view token_hash) override {
    const std::lock_guard lock(mutex_);
    Stmt s(db_, "DELETE FROM tokens WHERE token = ?");
    s.bind(1, token_hash).step();
  }

  bool locked(std::string_view user, TimePoint now) override {
    const std::lock_guard lock(mutex_);
    return locked_unlocked(user, now);
  }

  Attempt begin_attempt(std::string_view user, std::string_view kind, TimePoint now,
                        std::size_t max) override {
    const std::lock_guard lock(mutex_);
    Tx tx(db_);
    if (locked_unlocked(user, now)) return Attempt::Locked;
    // Counted only while below the limit: the row count says whether this attempt got a place.
    Stmt up(db_,
            "INSERT INTO failures(user, kind, count) VALUES(?1, ?2, 1)"
            " ON CONFLICT(user, kind) DO UPDATE SET count = count + 1 WHERE count < ?3");
    up.bind(1, user).bind(2, kind).bind(3, static_cast<std::int64_t>(max)).step();
    const bool counted = sqlite3_changes(db_) == 1;
    tx.commit();
    return counted ? Attempt::Allowed : Attempt::Locked;
  }

  bool attempt_failed(std::string_view user, std::string_view kind, TimePoint now, std::size_t max,
                      std::chrono::seconds lockout) override {
    const std::lock_guard lock(mutex_);
    Tx tx(db_);
    Stmt c(db_, "SELECT count FROM failures WHERE user = ? AND kind = ?");
    c.bind(1, user).bind(2, kind);
    const std::int64_t count = c.step() ? c.integer(0) : 0;
    bool now_locked = false;
    if (count >= static_cast<std::int64_t>(max)) {
      Stmt l(db_, "INSERT OR REPLACE INTO locks(user, until) VALUES(?, ?)");
      l.bind(1, user).bind(2, to_unix_ms(now + lockout)).step();
      Stmt d(db_, "DELETE FROM failures WHERE user = ? AND kind = ?");
      d.bind(1, user).bind(2, kind).step();
      now_locked = true;
    }
    tx.commit();
    return now_locked;
  }

  void attempt_succeeded(std::string_view user, std::string_view kind) override {
    const std::lock_guard lock(mutex_);
    Stmt s(db_, "DELETE FROM failures WHERE user = ? AND kind = ?");
    s.bind(1, user).bind(2, kind).step();
  }

  bool accept_totp_counter(std::string_view user, std::uint64_t counter) override {
    const std::lock_guard lock(mutex_);
    Stmt s(db_,
           "INSERT INTO totp(user, counter) VALUES(?1, ?2)"
           " ON CONFLICT(user) DO UPDATE SET counter = ?2 WHERE counter < ?2");
    s.bind(1, user).bind(2, static_cast<std::int64_t>(counter)).step();
    return sqlite3_changes(db_) == 1;
  }

  void put_transaction(std::string_view id, const TransactionRecord& t,
                       std::span<const Bytes> hashes, std::string_view sad_hash,
                       TimePoint sad_expires, std::string_view sealed_pin) override {
    const std::lock_guard lock(mutex_);
    Tx tx(db_);
    Stmt s(db_,
           "INSERT INTO transactions(id, user, bearer, credential, hash_alg, expires)"
           " VALUES(?, ?, ?, ?, ?, ?)");
    s.bind(1, id).bind(2, t.user).bind(3, t.bearer).bind(4, t.credential);
    s.bind(5, t.hash_algorithm).bind(6, to_unix_ms(t.expires)).step();
    Stmt h(db_, "INSERT INTO txn_hashes(txn, hash) VALUES(?, ?)");
    for (const auto& hash : hashes) {
      h.bind(1, id).bind_blob(2, hash).step();
      h.reset();
    }
    Stmt sad(db_, "INSERT INTO sads(sad, txn, expires, pin) VALUES(?, ?, ?, ?)");
    sad.bind(1, sad_hash).bind(2, id).bind(3, to_unix_ms(sad_expires)).bind(4, sealed_pin).step();
    tx.commit();
  }

  std::optional<SadRecord> sad(std::string_view sad_hash) override {
    const std::lock_guard lock(mutex_);
    Stmt s(db_,
           "SELECT s.txn, t.user, t.bearer, t.credential, t.hash_alg, t.expires, s.expires,"
           " s.extended, s.pin FROM sads s JOIN transactions t ON t.id = s.txn WHERE s.sad = ?");
    s.bind(1, sad_hash);
    if (!s.step()) return std::nullopt;
    return SadRecord{s.text(0),
                     {s.text(1), s.text(2), s.text(3), s.text(4), from_unix_ms(s.integer(5))},
                     from_unix_ms(s.integer(6)),
                     s.integer(7) != 0,
                     s.text(8)};
  }

  bool extend_sad(std::string_view old_sad_hash, std::string_view new_sad_hash,
                  TimePoint new_expires, TimePoint now, std::string_view sealed_pin) override {
    const std::lock_guard lock(mutex_);
    Tx tx(db_);
    Stmt u(db_, "UPDATE sads SET extended = 1 WHERE sad = ? AND extended = 0 AND expires > ?");
    u.bind(1, old_sad_hash).bind(2, to_unix_ms(now)).step();
    if (sqlite3_changes(db_) != 1) return false;
    Stmt i(db_,
           "INSERT INTO sads(sad, txn, expires, pin) SELECT ?, txn, ?, ? FROM sads WHERE sad = ?");
    i.bind(1, new_sad_hash).bind(2, to_unix_ms(new_expires)).bind(3, sealed_pin);
    i.bind(4, old_sad_hash).step();
    tx.commit();
    return true;
  }

  HashCheck check_unsigned(std::string_view transaction, std::span<const Bytes> hashes) override {
    const std::lock_guard lock(mutex_);
    Stmt s(db_, "SELECT 1 FROM txn_hashes WHERE txn = ? AND hash = ? AND signed = 0");
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      s.bind(1, transaction).bind_blob(2, hashes[i]);
      const bool found = s.step();
      s.reset();
      if (!found) return {false, i, false};
    }
    return {};
  }

  HashCheck consume(std::string_view sad_hash, std::span<const Bytes> hashes, TimePoint now,
                    std::string_view request) override {
    const std::lock_guard lock(mutex_);
    Tx tx(db_);
    Stmt live(db_, "SELECT txn FROM sads WHERE sad = ? AND extended = 0 AND expires > ?");
    live.bind(1, sad_hash).bind(2, to_unix_ms(now));
    if (!live.step()) return {false, 0, true};
    const std::string txn = live.text(0);
    Stmt s(db_,
           "UPDATE txn_hashes SET signed = 1, request = ?3 WHERE txn = ?1 AND hash = ?2"
           " AND (signed = 0 OR (request = ?3 AND ?3 <> ''))");
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      s.bind(1, txn).bind_blob(2, hashes[i]).bind(3, request).step();
      if (sqlite3_changes(db_) != 1) return {false, i, false};  // Tx rolls back
      s.reset();
    }
    tx.commit();
    return {};
  }

  void purge(TimePoint now) override {
    const std::lock_guard lock(mutex_);
    Tx tx(db_);
    const std::int64_t t = to_unix_ms(now);
    for (const char* sql :
         {"DELETE FROM tokens WHERE expires <= ?", "DELETE FROM sads WHERE expires <= ?",
          "DELETE FROM txn_hashes WHERE txn IN (SELECT id FROM transactions WHERE expires <= ?)",
          "DELETE FROM transactions WHERE expires <= ?", "DELETE FROM locks WHERE until <= ?"}) {
      Stmt s(db_, sql);
      s.bind(1, t).step();
    }
    tx.commit();
  }

  void audit(std::string_view user, std::string_view event, std::string_view detail) override {
    const std::lock_guard lock(mutex_);
    Tx tx(db_);  // BEGIN IMMEDIATE: another process appending waits here
    Stmt last(db_, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1");
    const bool any = last.step();
    const std::int64_t seq = any ? last.integer(0) + 1 : 1;
    const std::string prev = any ? last.text(1) : std::string(kChainGenesis);
    const std::string time = to_iso8601(std::chrono::system_clock::now());
    const std::array<std::string_view, 3> fields{user, event, detail};
    const std::string hash(ChainHasher().link(prev, seq, time, fields));
    Stmt s(db_,
           "INSERT INTO audit(seq, time, user, event, detail, prev, hash)"
           " VALUES(?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, seq).bind(2, time).bind(3, user).bind(4, event).bind(5, detail);
    s.bind(6, prev).bind(7, hash).step();
    tx.commit();
  }

  std::vector<AuditEntry> audit_log() override {
    const std::lock_guard lock(mutex_);
    std::vector<AuditEntry> out;
    Stmt s(db_, "SELECT seq, time, user, event, detail, prev, hash FROM audit ORDER BY seq");
    while (s.step()) {
      out.push_back(
          {s.integer(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6)});
    }
    return out;
  }

 private:
  void exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string why = err != nullptr ? err : "?";
      sqlite3_free(err);
      throw Error(ErrorCode::Internal, "SQLite: " + why);
    }
  }

  void migrate() {
    Tx tx(db_);
    Stmt v(db_, "PRAGMA user_version");
    int version = v.step() ? static_cast<int>(v.integer(0)) : 0;
    v.reset();
    for (; version < static_cast<int>(kMigrations.size()); ++version) {
      exec(kMigrations[static_cast<std::size_t>(version)]);
      exec(("PRAGMA user_version = " + std::to_string(version + 1)).c_str());
    }
    tx.commit();
  }

  bool locked_unlocked(std::string_view user, TimePoint now) {
    Stmt s(db_, "SELECT 1 FROM locks WHERE user = ? AND until > ?");
    s.bind(1, user).bind(2, to_unix_ms(now));
    return s.step();
  }

  sqlite3* db_ = nullptr;
  std::mutex mutex_;
};

}  // namespace

std::optional<std::int64_t> StateStore::verify_audit_chain() {
  ChainVerifier chain;
  for (const auto& e : audit_log()) {
    const std::array<std::string_view, 3> fields{e.user, e.event, e.detail};
    if (!chain.check({e.seq, e.time, fields, e.prev_hash, e.hash}).empty()) return e.seq;
  }
  return std::nullopt;
}

bool is_postgres_url(std::string_view location) {
  return location.starts_with("postgresql://") || location.starts_with("postgres://") ||
         location.starts_with("postgresql:");
}

int migrate_state_store(const std::string& location, const std::string& grant_role) {
  if (is_postgres_url(location)) return migrate_postgres(location, grant_role);
  return SqliteStore(location).schema_version();
}

std::unique_ptr<StateStore> open_state_store(const std::string& location, bool migrate) {
  if (is_postgres_url(location)) return open_postgres_store(location, migrate);
  return std::make_unique<SqliteStore>(location);
}

}  // namespace kyso::appliance
