#include "kyso/agent/audit.hpp"

#include <sqlite3.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <memory>

#include "kyso/core/bytes.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/hash_chain.hpp"

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

using StmtPtr = std::unique_ptr<sqlite3_stmt, FnDeleter<sqlite3_finalize>>;

}  // namespace

/// A row's fields as they are hashed and stored, without owning them.
struct AuditLog::RowView {
  std::string_view event;
  std::string_view origin;
  std::string_view role;
  std::string_view credential_id;
  std::string_view digest;
  std::string_view result;
  std::string_view detail;
};

std::array<std::string_view, 7> AuditLog::chained_fields(const RowView& r) {
  return {r.event, r.origin, r.role, r.credential_id, r.digest, r.result, r.detail};
}

namespace {

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
    // wal_autocheckpoint=0: checkpoint() copies the log when the agent is idle, never inside
    // a batch's commit.
    exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0;");
    sqlite3_wal_hook(
        db_,
        [](void* self, sqlite3*, const char*, int pages) {
          static_cast<AuditLog*>(self)->wal_pages_ = pages;
          return SQLITE_OK;
        },
        this);
    exec(db_, kSchema);
    auto st = prepare(db_, "SELECT seq, row_hash FROM audit ORDER BY seq DESC LIMIT 1");
    if (sqlite3_step(st.get()) == SQLITE_ROW) {
      last_seq_ = sqlite3_column_int64(st.get(), 0);
      last_hash_ = column_text(st.get(), 1);
    } else {
      last_hash_ = kChainGenesis;
    }
    insert_ = prepare(db_,
                      "INSERT INTO audit (seq, time, event, origin, role, credential_id, digest, "
                      "result, detail, prev_hash, row_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
                  .release();
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

AuditLog::~AuditLog() {
  sqlite3_finalize(insert_);
  sqlite3_close(db_);
}

std::string_view AuditLog::now_text() {
  const auto now = std::chrono::system_clock::now();
  const auto second =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (second != time_second_) {
    time_second_ = second;
    time_text_ = to_iso8601(now);
  }
  return time_text_;
}

void AuditLog::insert(const RowView& row) {
  const std::int64_t seq = last_seq_ + 1;
  const std::string_view time = now_text();
  const std::string_view hash = hasher_.link(last_hash_, seq, time, chained_fields(row));
  sqlite3_reset(insert_);
  sqlite3_bind_int64(insert_, 1, seq);
  int i = 2;
  // SQLITE_STATIC: every value outlives the sqlite3_step below, so SQLite copies nothing.
  for (const std::string_view v :
       {time, row.event, row.origin, row.role, row.credential_id, row.digest, row.result,
        row.detail, std::string_view(last_hash_), hash}) {
    sqlite3_bind_text(insert_, i++, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  if (sqlite3_step(insert_) != SQLITE_DONE) {
    throw Error(ErrorCode::Internal, std::string("audit log insert: ") + sqlite3_errmsg(db_));
  }
  last_seq_ = seq;
  last_hash_.assign(hash);
}

AuditLog::RowView AuditLog::view_of(const AuditRow& r) {
  return {r.event, r.origin, r.role, r.credential_id, r.digest, r.result, r.detail};
}

void AuditLog::append(const AuditRow& row) {
  append(std::span<const AuditRow>(&row, 1));
}

void AuditLog::append(std::span<const AuditRow> rows) {
  if (rows.empty()) return;
  const std::lock_guard lock(mutex_);
  if (batch_ != nullptr) {
    // A batch's transaction is open on this connection: the rows join it, in chain order.
    for (const auto& r : rows) {
      insert(view_of(r));
      joined_.push_back(r);
    }
    return;
  }
  const auto seq = last_seq_;
  const auto hash = last_hash_;
  exec(db_, "BEGIN IMMEDIATE");
  try {
    for (const auto& r : rows) insert(view_of(r));
    exec(db_, "COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    last_seq_ = seq;
    last_hash_ = hash;
    throw;
  }
}

void AuditLog::checkpoint() {
  constexpr int kCheckpointPages = 1000;  // SQLite's own default threshold
  const std::lock_guard lock(mutex_);
  if (batch_ != nullptr || wal_pages_ < kCheckpointPages) return;
  sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  wal_pages_ = 0;
}

AuditLog::Batch::Batch(AuditLog& log, AuditRow common) : log_(log), common_(std::move(common)) {
  const std::lock_guard lock(log_.mutex_);
  if (log_.batch_ != nullptr) throw Error(ErrorCode::Internal, "audit log: batch already open");
  exec(log_.db_, "BEGIN IMMEDIATE");
  seq_before_ = log_.last_seq_;
  hash_before_ = log_.last_hash_;
  log_.batch_ = this;
}

void AuditLog::Batch::add(std::span<const std::uint8_t> digest, std::string_view result,
                          std::string_view detail) {
  const std::string hex = to_hex(digest);
  RowView row = view_of(common_);
  row.digest = hex;
  row.result = result;
  if (!detail.empty()) row.detail = detail;
  const std::lock_guard lock(log_.mutex_);
  log_.insert(row);
}

void AuditLog::Batch::flush() {
  const std::lock_guard lock(log_.mutex_);
  exec(log_.db_, "COMMIT");
  // What is committed stays, whatever happens to the rest of the batch.
  seq_before_ = log_.last_seq_;
  hash_before_ = log_.last_hash_;
  log_.joined_.clear();
  exec(log_.db_, "BEGIN IMMEDIATE");
}

void AuditLog::Batch::commit() {
  const std::lock_guard lock(log_.mutex_);
  exec(log_.db_, "COMMIT");
  done_ = true;
  log_.batch_ = nullptr;
  log_.joined_.clear();
}

AuditLog::Batch::~Batch() {
  if (done_) return;
  std::vector<AuditRow> joined;
  {
    const std::lock_guard lock(log_.mutex_);
    sqlite3_exec(log_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
    log_.last_seq_ = seq_before_;
    log_.last_hash_ = hash_before_;
    log_.batch_ = nullptr;
    joined.swap(log_.joined_);
  }
  try {
    log_.append(joined);  // the other connections' rows were not the batch's to lose
  } catch (...) {
    // The batch failed on the same database; nothing better to do in a destructor.
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
  ChainVerifier chain;
  int rc = 0;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    const std::int64_t seq = sqlite3_column_int64(st.get(), 0);
    const std::string time = column_text(st.get(), 1);
    const AuditRow row{.event = column_text(st.get(), 2),
                       .origin = column_text(st.get(), 3),
                       .role = column_text(st.get(), 4),
                       .credential_id = column_text(st.get(), 5),
                       .digest = column_text(st.get(), 6),
                       .result = column_text(st.get(), 7),
                       .detail = column_text(st.get(), 8)};
    const std::string prev_hash = column_text(st.get(), 9);
    const std::string stored = column_text(st.get(), 10);
    const auto fields = chained_fields(view_of(row));
    std::string reason = chain.check({seq, time, fields, prev_hash, stored});
    ++out.rows;
    if (!reason.empty()) {
      out.ok = false;
      out.first_broken = seq;
      out.reason = std::move(reason);
      return out;
    }
  }
  if (rc != SQLITE_DONE) {
    throw Error(ErrorCode::Internal, std::string("audit log read: ") + sqlite3_errmsg(db.get()));
  }
  return out;
}

}  // namespace kyso::agent
