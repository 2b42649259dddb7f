#include "kyso/appliance/state_store.hpp"

#include <sqlite3.h>

#include <array>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/hash_chain.hpp"

namespace kyso::appliance {
namespace {

// Times are Unix milliseconds: whole seconds would cut up to a second off short lifetimes.
std::int64_t to_unix(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
TimePoint from_unix(std::int64_t ms) {
  return TimePoint{std::chrono::duration_cast<TimePoint::duration>(std::chrono::milliseconds{ms})};
}

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

}  // namespace

StateStore::StateStore(const std::filesystem::path& path) {
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    const std::string why = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorCode::ConfigInvalid,
                "cannot open state database " + path.string() + ": " + why);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=NORMAL");
  exec(
      "CREATE TABLE IF NOT EXISTS tokens(token TEXT PRIMARY KEY, user TEXT NOT NULL,"
      " expires INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS failures(user TEXT NOT NULL, kind TEXT NOT NULL,"
      " count INTEGER NOT NULL, PRIMARY KEY(user, kind));"
      "CREATE TABLE IF NOT EXISTS locks(user TEXT PRIMARY KEY, until INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS totp(user TEXT PRIMARY KEY, counter INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS transactions(id TEXT PRIMARY KEY, user TEXT NOT NULL,"
      " bearer TEXT NOT NULL, credential TEXT NOT NULL, expires INTEGER NOT NULL,"
      " remaining INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS sads(sad TEXT PRIMARY KEY, user TEXT NOT NULL,"
      " bearer TEXT NOT NULL, credential TEXT NOT NULL, hash_alg TEXT NOT NULL,"
      " txn TEXT NOT NULL, expires INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS sad_hashes(sad TEXT NOT NULL, hash BLOB NOT NULL,"
      " remaining INTEGER NOT NULL, PRIMARY KEY(sad, hash));"
      "CREATE TABLE IF NOT EXISTS audit(seq INTEGER PRIMARY KEY, time TEXT NOT NULL,"
      " user TEXT NOT NULL, event TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL,"
      " hash TEXT NOT NULL);"
      // Append-only: the database itself refuses to rewrite history.
      "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
      " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
      "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
      " BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;");
  Stmt last(db_, "SELECT hash FROM audit ORDER BY seq DESC LIMIT 1");
  last_audit_hash_ = last.step() ? last.text(0) : std::string(kChainGenesis);
}

StateStore::~StateStore() {
  sqlite3_close_v2(db_);
}

void StateStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string why = err != nullptr ? err : "?";
    sqlite3_free(err);
    throw Error(ErrorCode::Internal, "SQLite: " + why);
  }
}

void StateStore::put_token(std::string_view token_hash, std::string_view user, TimePoint expires) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_, "INSERT INTO tokens(token, user, expires) VALUES(?, ?, ?)");
  s.bind(1, token_hash).bind(2, user).bind(3, to_unix(expires)).step();
}

std::optional<std::string> StateStore::token_user(std::string_view token_hash, TimePoint now) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_, "SELECT user FROM tokens WHERE token = ? AND expires > ?");
  s.bind(1, token_hash).bind(2, to_unix(now));
  if (!s.step()) return std::nullopt;
  return s.text(0);
}

void StateStore::revoke_token(std::string_view token_hash) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_, "DELETE FROM tokens WHERE token = ?");
  s.bind(1, token_hash).step();
}

bool StateStore::locked(std::string_view user, TimePoint now) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_, "SELECT 1 FROM locks WHERE user = ? AND until > ?");
  s.bind(1, user).bind(2, to_unix(now));
  return s.step();
}

bool StateStore::record_failure(std::string_view user, std::string_view kind, TimePoint now,
                                std::size_t max_failures, std::chrono::seconds lockout) {
  const std::lock_guard lock(mutex_);
  Tx tx(db_);
  Stmt up(db_,
          "INSERT INTO failures(user, kind, count) VALUES(?, ?, 1)"
          " ON CONFLICT(user, kind) DO UPDATE SET count = count + 1 RETURNING count");
  up.bind(1, user).bind(2, kind);
  const std::int64_t count = up.step() ? up.integer(0) : 1;
  up.reset();
  bool now_locked = false;
  if (count >= static_cast<std::int64_t>(max_failures)) {
    Stmt l(db_, "INSERT OR REPLACE INTO locks(user, until) VALUES(?, ?)");
    l.bind(1, user).bind(2, to_unix(now + lockout)).step();
    Stmt c(db_, "DELETE FROM failures WHERE user = ? AND kind = ?");
    c.bind(1, user).bind(2, kind).step();
    now_locked = true;
  }
  tx.commit();
  return now_locked;
}

void StateStore::clear_failures(std::string_view user, std::string_view kind) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_, "DELETE FROM failures WHERE user = ? AND kind = ?");
  s.bind(1, user).bind(2, kind).step();
}

bool StateStore::accept_totp_counter(std::string_view user, std::uint64_t counter) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_,
         "INSERT INTO totp(user, counter) VALUES(?1, ?2)"
         " ON CONFLICT(user) DO UPDATE SET counter = ?2 WHERE counter < ?2");
  s.bind(1, user).bind(2, static_cast<std::int64_t>(counter)).step();
  return sqlite3_changes(db_) == 1;
}

void StateStore::put_transaction(std::string_view id, const TransactionRecord& t) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_,
         "INSERT INTO transactions(id, user, bearer, credential, expires, remaining)"
         " VALUES(?, ?, ?, ?, ?, ?)");
  s.bind(1, id).bind(2, t.user).bind(3, t.bearer).bind(4, t.credential);
  s.bind(5, to_unix(t.expires)).bind(6, t.remaining).step();
}

std::optional<TransactionRecord> StateStore::transaction(std::string_view id) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_, "SELECT user, bearer, credential, expires, remaining FROM transactions WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return TransactionRecord{s.text(0), s.text(1), s.text(2), from_unix(s.integer(3)), s.integer(4)};
}

bool StateStore::take_from_transaction(std::string_view id, std::int64_t count) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_,
         "UPDATE transactions SET remaining = remaining - ?1 WHERE id = ?2 AND remaining >= ?1");
  s.bind(1, count).bind(2, id).step();
  return sqlite3_changes(db_) == 1;
}

void StateStore::put_sad(std::string_view sad_hash, const SadRecord& sad,
                         std::span<const Bytes> hashes) {
  const std::lock_guard lock(mutex_);
  Tx tx(db_);
  Stmt s(db_,
         "INSERT INTO sads(sad, user, bearer, credential, hash_alg, txn, expires)"
         " VALUES(?, ?, ?, ?, ?, ?, ?)");
  s.bind(1, sad_hash).bind(2, sad.user).bind(3, sad.bearer).bind(4, sad.credential);
  s.bind(5, sad.hash_algorithm).bind(6, sad.transaction).bind(7, to_unix(sad.expires)).step();
  Stmt h(db_,
         "INSERT INTO sad_hashes(sad, hash, remaining) VALUES(?, ?, 1)"
         " ON CONFLICT(sad, hash) DO UPDATE SET remaining = remaining + 1");
  for (const auto& hash : hashes) {
    h.bind(1, sad_hash).bind_blob(2, hash).step();
    h.reset();
  }
  tx.commit();
}

std::optional<SadRecord> StateStore::sad(std::string_view sad_hash) {
  const std::lock_guard lock(mutex_);
  Stmt s(db_, "SELECT user, bearer, credential, hash_alg, txn, expires FROM sads WHERE sad = ?");
  s.bind(1, sad_hash);
  if (!s.step()) return std::nullopt;
  return SadRecord{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), from_unix(s.integer(5))};
}

bool StateStore::consume(std::string_view sad_hash, std::span<const Bytes> hashes) {
  const std::lock_guard lock(mutex_);
  Tx tx(db_);
  Stmt s(db_,
         "UPDATE sad_hashes SET remaining = remaining - 1"
         " WHERE sad = ? AND hash = ? AND remaining > 0");
  for (const auto& hash : hashes) {
    s.bind(1, sad_hash).bind_blob(2, hash).step();
    if (sqlite3_changes(db_) != 1) return false;  // Tx rolls back: nothing consumed
    s.reset();
  }
  tx.commit();
  return true;
}

void StateStore::purge(TimePoint now) {
  const std::lock_guard lock(mutex_);
  Tx tx(db_);
  const std::int64_t t = to_unix(now);
  for (const char* sql :
       {"DELETE FROM tokens WHERE expires <= ?",
        "DELETE FROM sad_hashes WHERE sad IN (SELECT sad FROM sads WHERE expires <= ?)",
        "DELETE FROM sads WHERE expires <= ?", "DELETE FROM transactions WHERE expires <= ?",
        "DELETE FROM locks WHERE until <= ?"}) {
    Stmt s(db_, sql);
    s.bind(1, t).step();
  }
  tx.commit();
}

void StateStore::audit(std::string_view user, std::string_view event, std::string_view detail) {
  const std::lock_guard lock(mutex_);
  Tx tx(db_);
  Stmt next(db_, "SELECT COALESCE(MAX(seq), 0) + 1 FROM audit");
  next.step();
  const std::int64_t seq = next.integer(0);
  const std::string time = to_iso8601(std::chrono::system_clock::now());
  const std::array<std::string_view, 3> fields{user, event, detail};
  const std::string hash(ChainHasher().link(last_audit_hash_, seq, time, fields));
  Stmt s(
      db_,
      "INSERT INTO audit(seq, time, user, event, detail, prev, hash) VALUES(?, ?, ?, ?, ?, ?, ?)");
  s.bind(1, seq).bind(2, time).bind(3, user).bind(4, event).bind(5, detail);
  s.bind(6, last_audit_hash_).bind(7, hash).step();
  tx.commit();
  last_audit_hash_ = hash;
}

std::vector<AuditEntry> StateStore::audit_log() {
  const std::lock_guard lock(mutex_);
  std::vector<AuditEntry> out;
  Stmt s(db_, "SELECT seq, time, user, event, detail, prev, hash FROM audit ORDER BY seq");
  while (s.step()) {
    out.push_back({s.integer(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6)});
  }
  return out;
}

std::optional<std::int64_t> StateStore::verify_audit_chain() {
  ChainVerifier chain;
  for (const auto& e : audit_log()) {
    const std::array<std::string_view, 3> fields{e.user, e.event, e.detail};
    if (!chain.check({e.seq, e.time, fields, e.prev_hash, e.hash}).empty()) return e.seq;
  }
  return std::nullopt;
}

}  // namespace kyso::appliance
