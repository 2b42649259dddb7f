#include "kyso/agent/audit.hpp"

#include <sqlite3.h>

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "journal.hpp"
#include "kyso/core/bytes.hpp"
#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/hash_chain.hpp"
#include "kyso/core/platform.hpp"
#include "kyso/core/platform_files.hpp"

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

// Longest stored value per field: a page chooses the origin, role, titles and details, and a
// refused request must not cost the disk more than a few hundred bytes.
constexpr std::size_t kCapOrigin = 256;
constexpr std::size_t kCapRole = 64;
constexpr std::size_t kCapId = 256;
constexpr std::size_t kCapDetail = 1024;
// Kinds of refusal kept per counted origin, and origins counted apart; the rest are lumped.
constexpr std::size_t kCountedKinds = 8;
constexpr std::size_t kCountedOrigins = 64;
constexpr std::string_view kOtherOrigins = "(other untrusted origins)";

/// `v` cut to `cap` bytes at a UTF-8 boundary with a marker of what was cut, in `store`.
std::string_view capped(std::string_view v, std::size_t cap, std::string& store) {
  if (v.size() <= cap) return v;
  std::size_t n = cap - 24;
  while (n > 0 && (static_cast<unsigned char>(v[n]) & 0xC0U) == 0x80U) --n;
  store.assign(v.substr(0, n));
  store += "...[+" + std::to_string(v.size() - n) + " bytes]";
  return store;
}

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
  // SQLite takes UTF-8 file names on every OS (path::c_str() is wide on Windows).
  if (sqlite3_open_v2(platform::path_utf8(path).c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw Error(ErrorCode::ConfigInvalid, "cannot open audit log " + path.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

}  // namespace

AuditLog::AuditLog(const std::filesystem::path& path, Timing timing)
    : path_(std::filesystem::absolute(path)), timing_(timing) {
  db_ = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX);
  try {
    // WAL + NORMAL: a batch's rows cost one fsync-free commit, not one per signature.
    // wal_autocheckpoint=0: checkpoint() copies the log when the agent is idle, never inside
    // a batch's commit.
    // journal_size_limit: the WAL file shrinks back after a checkpoint instead of keeping its
    // largest size.
    exec(db_,
         "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0; "
         "PRAGMA journal_size_limit=1048576;");
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
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
    throw;
  }
  anchor_fd_ = platform::open_append_only(anchor_file(path_));
  {
    const std::lock_guard lock(mutex_);
    anchor();  // the head as found, so a log cut while the agent was stopped shows
  }
  timer_ = std::jthread([this](const std::stop_token& stop) { run_timer(stop); });
}

AuditLog::~AuditLog() {
  timer_.request_stop();
  timer_.join();
  try {
    flush_refused();
  } catch (...) {
    // A full disk at exit: the counts are lost, the log stays consistent.
  }
  {
    const std::lock_guard lock(mutex_);
    if (batch_ == nullptr && wal_pages_ > 0) {
      sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    }
  }
  platform::close_file(anchor_fd_);
  sqlite3_finalize(insert_);
  sqlite3_close(db_);
}

std::filesystem::path AuditLog::anchor_file(const std::filesystem::path& path) {
  auto p = path;
  p += ".anchors";
  return p;
}

void AuditLog::anchor() noexcept {
  // One line per committed head: "<seq> <hash>". Written with the log's own permissions: it
  // guards against a log cut or rewritten by someone who does not also rewrite this file.
  if (anchor_fd_ >= 0) {
    (void)platform::append_text(anchor_fd_, std::to_string(last_seq_) + " " + last_hash_ + "\n");
  }
  detail::journal_anchor(last_seq_, last_hash_, path_);
}

void AuditLog::run_timer(const std::stop_token& stop) {
  using Clock = std::chrono::steady_clock;
  const auto step = std::min({timing_.checkpoint_every, timing_.refusals_every,
                              std::chrono::milliseconds(std::chrono::seconds(5))});
  auto last_checkpoint = Clock::now();
  auto last_flush = Clock::now();
  std::unique_lock lock(timer_mutex_);
  while (!stop.stop_requested()) {
    timer_cv_.wait_for(lock, stop, step, [] { return false; });
    if (stop.stop_requested()) break;
    const auto now = Clock::now();
    try {
      if (now - last_flush >= timing_.refusals_every) {
        last_flush = now;
        flush_refused();
      }
      if (now - last_checkpoint >= timing_.checkpoint_every) {
        last_checkpoint = now;
        checkpoint_over(0);
      }
    } catch (...) {
      // A full disk: tried again at the next tick.
    }
  }
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

void AuditLog::insert(const RowView& given) {
  std::array<std::string, 6> store;
  const RowView row{
      .event = capped(given.event, kCapRole, store[0]),
      .origin = capped(given.origin, kCapOrigin, store[1]),
      .role = capped(given.role, kCapRole, store[2]),
      .credential_id = capped(given.credential_id, kCapId, store[3]),
      .digest = capped(given.digest, kCapId, store[4]),
      .result = given.result.size() <= kCapRole ? given.result : std::string_view("(too long)"),
      .detail = capped(given.detail, kCapDetail, store[5])};
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
    anchor();
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    last_seq_ = seq;
    last_hash_ = hash;
    throw;
  }
}

void AuditLog::refused(const AuditRow& row) {
  std::string origin = row.origin.substr(0, kCapOrigin);
  std::string what = row.detail.substr(0, 48);
  {
    const std::lock_guard lock(refused_mutex_);
    auto it = refused_.find({origin, row.result});
    if (it == refused_.end() && refused_.size() >= kCountedOrigins) {
      origin = kOtherOrigins;
      it = refused_.find({origin, row.result});
    }
    if (it != refused_.end()) {
      auto& c = it->second;
      ++c.count;
      auto k = std::ranges::find(c.what, what, &std::pair<std::string, std::int64_t>::first);
      if (k == c.what.end() && c.what.size() >= kCountedKinds) {
        what = "other";
        k = std::ranges::find(c.what, what, &std::pair<std::string, std::int64_t>::first);
      }
      if (k == c.what.end()) {
        c.what.emplace_back(what, 1);
      } else {
        ++k->second;
      }
      return;
    }
    refused_[{origin, row.result}].since = to_iso8601(std::chrono::system_clock::now());
  }
  // The first of its origin and code in this interval: its own row, at once.
  append(row);
}

void AuditLog::flush_refused() {
  std::vector<AuditRow> rows;
  {
    const std::lock_guard lock(refused_mutex_);
    for (auto it = refused_.begin(); it != refused_.end();) {
      auto& c = it->second;
      if (c.count == 0) {
        // Quiet since its row: the next refusal is written at once again.
        it = refused_.erase(it);
        continue;
      }
      std::string detail = std::to_string(c.count) + " more refused since " + c.since + " (";
      for (std::size_t i = 0; i < c.what.size(); ++i) {
        detail += (i == 0 ? "" : ", ") + c.what[i].first + ": " + std::to_string(c.what[i].second);
      }
      detail += ")";
      rows.push_back(AuditRow{.event = "refusals",
                              .origin = it->first.first,
                              .role = {},
                              .credential_id = {},
                              .digest = {},
                              .result = it->first.second,
                              .detail = std::move(detail)});
      // Still busy: counted on, one row per interval.
      c = Counted{.count = 0, .since = to_iso8601(std::chrono::system_clock::now()), .what = {}};
      ++it;
    }
  }
  append(rows);
}

void AuditLog::checkpoint() {
  // 512 KiB of log (about 50 single signatures' commits): the log stays small on disk for a
  // page that signs one hash at a time all day, and copying it back costs a few ms, off the
  // job's path.
  constexpr int kCheckpointPages = 128;
  checkpoint_over(kCheckpointPages - 1);
}

void AuditLog::checkpoint_over(int pages) {
  const std::lock_guard lock(mutex_);
  if (batch_ != nullptr || wal_pages_ <= pages) return;
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
  log_.anchor();
  // What is committed stays, whatever happens to the rest of the batch.
  seq_before_ = log_.last_seq_;
  hash_before_ = log_.last_hash_;
  log_.joined_.clear();
  exec(log_.db_, "BEGIN IMMEDIATE");
}

void AuditLog::Batch::commit() {
  const std::lock_guard lock(log_.mutex_);
  exec(log_.db_, "COMMIT");
  log_.anchor();
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

namespace {

using Anchors = std::vector<std::pair<std::int64_t, std::string>>;

AnchorCheck read_anchor_file(const std::filesystem::path& file, Anchors& out) {
  AnchorCheck c{.source = file.string(), .available = false, .anchors = 0, .note = {}};
  std::ifstream in(file);
  if (!in) {
    c.note = "missing: no anchor file to compare with";
    return c;
  }
  c.available = true;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::int64_t seq = 0;
    std::string hash;
    if (ls >> seq >> hash) out.emplace_back(seq, std::move(hash));
  }
  c.anchors = static_cast<std::int64_t>(out.size());
  const bool append_only = platform::append_only_flag(file);
  c.note = append_only ? "append-only (chattr +a): its user cannot rewrite it"
                       : "writable by the log's user: catches a log cut or rewritten without it, "
                         "not a user who rewrites both";
  return c;
}

}  // namespace

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
  std::vector<std::string> hashes;  // row_hash by seq - 1 (the chain keeps seq contiguous)
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
    std::string stored = column_text(st.get(), 10);
    const auto fields = chained_fields(view_of(row));
    std::string reason = chain.check({seq, time, fields, prev_hash, stored});
    ++out.rows;
    if (!reason.empty()) {
      out.ok = false;
      out.first_broken = seq;
      out.reason = std::move(reason);
      return out;
    }
    hashes.push_back(std::move(stored));
  }
  if (rc != SQLITE_DONE) {
    throw Error(ErrorCode::Internal, std::string("audit log read: ") + sqlite3_errmsg(db.get()));
  }
  // The chain holds; does it still hold every head written outside the file?
  const auto last = static_cast<std::int64_t>(hashes.size());
  const auto check = [&](const AnchorCheck& c, const Anchors& anchors) {
    for (const auto& [seq, hash] : anchors) {
      std::string reason;
      std::int64_t at = seq;
      if (seq > last) {
        at = last + 1;
        reason = c.source + " anchored row " + std::to_string(seq) + " but the log ends at row " +
                 std::to_string(last) + ": rows were cut from it";
      } else if (seq > 0 && hashes[static_cast<std::size_t>(seq - 1)] != hash) {
        reason = "row " + std::to_string(seq) + " differs from its anchor in " + c.source +
                 ": the chain was rewritten (rows deleted or changed)";
      }
      if (!reason.empty() && (out.ok || at < *out.first_broken)) {
        out.ok = false;
        out.first_broken = at;
        out.reason = std::move(reason);
      }
    }
  };
  Anchors journal;
  out.anchors.push_back(detail::read_journal_anchors(path, journal));
  check(out.anchors.back(), journal);
  Anchors file;
  out.anchors.push_back(read_anchor_file(anchor_file(path), file));
  check(out.anchors.back(), file);
  return out;
}

}  // namespace kyso::agent
