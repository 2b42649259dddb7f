#include "kyso/agent/audit.hpp"

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <memory>

#include "kyso/core/bytes.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"

namespace kyso::agent {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS audit (
  seq           INTEGER PRIMARY KEY,
  time          TEXT NOT NULL,
  event         TEXT NOT NULL,
  origin        TEXT NOT NULL,
  role          TEXT NOT NULL,
  credential_id TEXT NOT NULL,
  digest        TEXT NOT NULL,
  result        TEXT NOT NULL,
  detail        TEXT NOT NULL,
  prev_hash     TEXT NOT NULL,
  row_hash      TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
  BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
)sql";

// The chain starts from a fixed value so that removing the first rows is detected too.
const std::string kGenesis(64, '0');

using StmtPtr = std::unique_ptr<sqlite3_stmt, FnDeleter<sqlite3_finalize>>;

struct Fields {
  std::int64_t seq = 0;
  std::string time;
  AuditRow row;
  std::string prev_hash;
};

/// SHA-256 over the previous hash and every field, each length-prefixed so that no two
/// different rows serialize the same.
std::string row_hash(const Fields& f) {
  std::string buf;
  auto put = [&](std::string_view s) {
    buf += std::to_string(s.size());
    buf.push_back(':');
    buf.append(s);
  };
  put(f.prev_hash);
  put(std::to_string(f.seq));
  put(f.time);
  put(f.row.event);
  put(f.row.origin);
  put(f.row.role);
  put(f.row.credential_id);
  put(f.row.digest);
  put(f.row.result);
  put(f.row.detail);
  const auto* p = reinterpret_cast<const std::uint8_t*>(buf.data());
  return to_hex(sha256({p, buf.size()}));
}

void exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err != nullptr ? err : "unknown";
    sqlite3_free(err);
    throw Error(ErrorCode::Internal, "audit log: " + msg);
  }
}

StmtPtr prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) {
    throw Error(ErrorCode::Internal, std::string("audit log: ") + sqlite3_errmsg(db));
  }
  return StmtPtr(st);
}

std::string column_text(sqlite3_stmt* st, int col) {
  const auto* t = sqlite3_column_text(st, col);
  return t != nullptr ? reinterpret_cast<const char*>(t) : "";
}

sqlite3* open_db(const std::filesystem::path& path, int flags) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw Error(ErrorCode::ConfigInvalid, "cannot open audit log " + path.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

}  // namespace

AuditLog::AuditLog(const std::filesystem::path& path) {
  db_ = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX);
  try {
    // WAL + NORMAL: a batch's rows cost one fsync-free commit, not one per signature.
    exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    exec(db_, kSchema);
    auto st = prepare(db_, "SELECT seq, row_hash FROM audit ORDER BY seq DESC LIMIT 1");
    if (sqlite3_step(st.get()) == SQLITE_ROW) {
      last_seq_ = sqlite3_column_int64(st.get(), 0);
      last_hash_ = column_text(st.get(), 1);
    } else {
      last_hash_ = kGenesis;
    }
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

AuditLog::~AuditLog() {
  sqlite3_close(db_);
}

void AuditLog::append_locked(sqlite3_stmt* st, const AuditRow& row) {
  Fields f{.seq = last_seq_ + 1,
           .time = to_iso8601(std::chrono::system_clock::now()),
           .row = row,
           .prev_hash = last_hash_};
  const std::string hash = row_hash(f);
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, f.seq);
  int i = 2;
  const std::array<const std::string*, 10> values{
      &f.time,     &row.event,  &row.origin, &row.role,    &row.credential_id,
      &row.digest, &row.result, &row.detail, &f.prev_hash, &hash};
  for (const std::string* s : values) {
    sqlite3_bind_text(st, i++, s->c_str(), static_cast<int>(s->size()), SQLITE_TRANSIENT);
  }
  if (sqlite3_step(st) != SQLITE_DONE) {
    throw Error(ErrorCode::Internal, std::string("audit log insert: ") + sqlite3_errmsg(db_));
  }
  last_seq_ = f.seq;
  last_hash_ = hash;
}

void AuditLog::append(const AuditRow& row) {
  append(std::span<const AuditRow>(&row, 1));
}

void AuditLog::append(std::span<const AuditRow> rows) {
  if (rows.empty()) return;
  const std::lock_guard lock(mutex_);
  const auto seq = last_seq_;
  const auto hash = last_hash_;
  // One prepared statement and one transaction for all rows (a batch's signatures).
  auto st = prepare(db_,
                    "INSERT INTO audit (seq, time, event, origin, role, credential_id, digest, "
                    "result, detail, prev_hash, row_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
  exec(db_, "BEGIN IMMEDIATE");
  try {
    for (const auto& r : rows) append_locked(st.get(), r);
    exec(db_, "COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    last_seq_ = seq;
    last_hash_ = hash;
    throw;
  }
}

AuditVerifyResult AuditLog::verify(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) {
    throw Error(ErrorCode::ConfigInvalid, "no audit log at " + path.string());
  }
  sqlite3* raw = open_db(path, SQLITE_OPEN_READONLY);
  const std::unique_ptr<sqlite3, FnDeleter<sqlite3_close>> db(raw);
  auto st = prepare(db.get(),
                    "SELECT seq, time, event, origin, role, credential_id, digest, result, detail, "
                    "prev_hash, row_hash FROM audit ORDER BY seq");
  AuditVerifyResult out;
  std::string prev = kGenesis;
  std::int64_t expected_seq = 1;
  int rc = 0;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    Fields f;
    f.seq = sqlite3_column_int64(st.get(), 0);
    f.time = column_text(st.get(), 1);
    f.row = {.event = column_text(st.get(), 2),
             .origin = column_text(st.get(), 3),
             .role = column_text(st.get(), 4),
             .credential_id = column_text(st.get(), 5),
             .digest = column_text(st.get(), 6),
             .result = column_text(st.get(), 7),
             .detail = column_text(st.get(), 8)};
    f.prev_hash = column_text(st.get(), 9);
    const std::string stored = column_text(st.get(), 10);
    ++out.rows;
    std::string reason;
    if (f.seq != expected_seq) {
      reason =
          "row(s) missing before this one (expected sequence " + std::to_string(expected_seq) + ")";
    } else if (f.prev_hash != prev) {
      reason = "does not chain to the previous row";
    } else if (row_hash(f) != stored) {
      reason = "content does not match its hash (edited)";
    }
    if (!reason.empty()) {
      out.ok = false;
      out.first_broken = f.seq;
      out.reason = reason;
      return out;
    }
    prev = stored;
    expected_seq = f.seq + 1;
  }
  if (rc != SQLITE_DONE) {
    throw Error(ErrorCode::Internal, std::string("audit log read: ") + sqlite3_errmsg(db.get()));
  }
  return out;
}

}  // namespace kyso::agent
