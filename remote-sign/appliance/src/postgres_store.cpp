// PostgreSQL state for several appliance nodes (docs/appliance-scaling.md): each guarantee is one
// transaction whose row locks (or advisory lock, for the audit chain) serialise the nodes.
#include "postgres_store.hpp"

#include <libpq-fe.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/hash_chain.hpp"
#include "store_time.hpp"

namespace kyso::appliance {
namespace {

// The audit chain's advisory lock key ("kyso" in ASCII).
constexpr const char* kAuditLock = "SELECT pg_advisory_xact_lock(1803121519)";

// Versioned schema; migration k brings schema_version from k-1 to k.
constexpr std::array<const char*, 1> kMigrations = {
    "CREATE TABLE tokens(token text PRIMARY KEY, \"user\" text NOT NULL, expires bigint NOT NULL);"
    "CREATE TABLE failures(\"user\" text NOT NULL, kind text NOT NULL, count integer NOT NULL,"
    " PRIMARY KEY(\"user\", kind));"
    "CREATE TABLE locks(\"user\" text PRIMARY KEY, until bigint NOT NULL);"
    "CREATE TABLE totp(\"user\" text PRIMARY KEY, counter bigint NOT NULL);"
    "CREATE TABLE transactions(id text PRIMARY KEY, \"user\" text NOT NULL, bearer text NOT NULL,"
    " credential text NOT NULL, hash_alg text NOT NULL, expires bigint NOT NULL);"
    "CREATE TABLE txn_hashes(txn text NOT NULL, hash bytea NOT NULL,"
    " signed boolean NOT NULL DEFAULT false, request text NOT NULL DEFAULT '',"
    " PRIMARY KEY(txn, hash));"
    "CREATE TABLE sads(sad text PRIMARY KEY, txn text NOT NULL, expires bigint NOT NULL,"
    " extended boolean NOT NULL DEFAULT false, pin text NOT NULL DEFAULT '');"
    "CREATE INDEX sads_txn ON sads(txn);"
    "CREATE TABLE audit(seq bigint PRIMARY KEY, time text NOT NULL, \"user\" text NOT NULL,"
    " event text NOT NULL, detail text NOT NULL, prev text NOT NULL, hash text NOT NULL);"
    // Append-only twice over: no privilege to change rows, and a trigger for the owner.
    "CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS"
    " $$BEGIN RAISE EXCEPTION 'audit log is append-only'; END$$;"
    "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit"
    " FOR EACH ROW EXECUTE FUNCTION audit_append_only();"
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();"
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit FROM PUBLIC;",
};

// Round trips to the server, for StateStore::round_trips().
std::atomic<std::uint64_t> g_round_trips{0};

[[noreturn]] void unavailable(PGconn* c, const std::string& what) {
  std::string why = c != nullptr ? PQerrorMessage(c) : "no connection";
  while (!why.empty() && (why.back() == '\n' || why.back() == ' ')) why.pop_back();
  throw StoreUnavailable("PostgreSQL " + what + ": " + why);
}

struct ResultDeleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

// The statements prepared on each open connection, by their SQL: each is parsed once per
// connection (and planned once when a generic plan fits) instead of at every use, the largest
// share of the server's work for these small statements (issue 13). A connection's names go
// with it (ConnDeleter). A pooler in transaction mode that moves a session's statements between
// server connections (PgBouncer before 1.21) does not keep them: connect to PostgreSQL directly.
class PreparedStatements {
 public:
  /// The name of `sql`'s statement on `c`, and whether it is prepared there already.
  std::pair<std::string, bool> find(const PGconn* c, const char* sql) {
    const std::lock_guard lock(mutex_);
    auto& names = by_conn_[c];
    if (auto it = names.find(sql); it != names.end()) return {it->second, true};
    return {"kyso_" + std::to_string(next_++), false};
  }
  void prepared(const PGconn* c, const char* sql, const std::string& name) {
    const std::lock_guard lock(mutex_);
    by_conn_[c].emplace(sql, name);
  }
  void forget(const PGconn* c) noexcept {
    const std::lock_guard lock(mutex_);
    by_conn_.erase(c);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<const PGconn*, std::unordered_map<std::string, std::string>> by_conn_;
  std::uint64_t next_ = 0;
};

PreparedStatements& prepared_statements() {
  static auto* p = new PreparedStatements;  // never destroyed: connections may close at exit
  return *p;
}

struct ConnDeleter {
  void operator()(PGconn* c) const noexcept {
    prepared_statements().forget(c);
    PQfinish(c);
  }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;

Conn connect(const std::string& url) {
  Conn c(PQconnectdb(url.c_str()));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) unavailable(c.get(), "connect");
  return c;
}

/// One statement of a pipeline: its SQL and its parameters as text.
struct Statement {
  const char* sql;
  std::vector<std::string> params;
};

// Statements sent together and answered together: one network round trip (libpq's pipeline
// mode) where one per statement used to be (issue 13: 11 round trips per signHash chunk were the
// database's share). Within an explicit transaction (BEGIN first, or a Tx around it) they commit
// or roll back together; a failed one fails the rest, which the transaction then rolls back. The
// results in order, each checked as exec() checks it.
std::vector<Result> pipeline(PGconn* c, const std::vector<Statement>& statements) {
  if (PQenterPipelineMode(c) != 1) unavailable(c, "pipeline mode");
  struct Exit {
    PGconn* c;
    ~Exit() { (void)PQexitPipelineMode(c); }
  } exit_pipeline{c};
  // A statement not yet prepared on this connection is prepared in the same pipeline, right
  // before its first use.
  std::vector<std::pair<std::string, bool>> names;
  names.reserve(statements.size());
  for (const auto& st : statements) {
    names.push_back(prepared_statements().find(c, st.sql));
    const auto& [name, ready] = names.back();
    std::vector<const char*> values;
    values.reserve(st.params.size());
    for (const auto& p : st.params) values.push_back(p.c_str());
    if (!ready &&
        PQsendPrepare(c, name.c_str(), st.sql, static_cast<int>(values.size()), nullptr) != 1) {
      unavailable(c, "send");
    }
    if (PQsendQueryPrepared(c, name.c_str(), static_cast<int>(values.size()), values.data(),
                            nullptr, nullptr, 0) != 1) {
      unavailable(c, "send");
    }
  }
  if (PQpipelineSync(c) != 1) unavailable(c, "pipeline sync");
  g_round_trips.fetch_add(1, std::memory_order_relaxed);
  std::vector<Result> results;
  results.reserve(statements.size());
  std::optional<std::size_t> failed;
  auto next = [&] {
    Result r(PQgetResult(c));
    if (!r) unavailable(c, "connection lost");
    while (PGresult* extra = PQgetResult(c)) PQclear(extra);  // the NULL ending this query
    return r;
  };
  for (std::size_t i = 0; i < statements.size(); ++i) {
    Result prep;
    if (!names[i].second) {
      prep = next();
      if (PQresultStatus(prep.get()) == PGRES_COMMAND_OK) {
        prepared_statements().prepared(c, statements[i].sql, names[i].first);
        prep.reset();
      }
    }
    Result r = next();
    if (prep) r = std::move(prep);  // not prepared: that is the statement's error
    const auto status = PQresultStatus(r.get());
    if (!failed && status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) failed = i;
    results.push_back(std::move(r));
  }
  const Result sync(PQgetResult(c));
  if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
    unavailable(c, "pipeline not in sync");
  }
  if (failed) {
    const Result& r = results[*failed];
    if (PQstatus(c) != CONNECTION_OK) unavailable(c, "connection lost");
    const char* state = PQresultErrorField(r.get(), PG_DIAG_SQLSTATE);
    const std::string code = state != nullptr ? state : "";
    const std::string sql(statements[*failed].sql);
    if (code.starts_with("40") || code.starts_with("57") || code.starts_with("08")) {
      throw StoreUnavailable("PostgreSQL " + sql.substr(0, 40) + ": " +
                             PQresultErrorMessage(r.get()));
    }
    throw Error(ErrorCode::Internal, "PostgreSQL: " + std::string(PQresultErrorMessage(r.get())) +
                                         " in " + sql.substr(0, 60));
  }
  return results;
}

// Parameters as text (bytea as hex); every statement goes through here or pipeline(), as a
// prepared statement of its connection.
Result exec(PGconn* c, const char* sql, std::initializer_list<std::string_view> params = {}) {
  const auto [name, ready] = prepared_statements().find(c, sql);
  if (!ready) {
    // Prepared and run in one round trip.
    auto r = pipeline(c, {{sql, std::vector<std::string>(params.begin(), params.end())}});
    return std::move(r.front());
  }
  std::vector<std::string> owned(params.begin(), params.end());
  std::vector<const char*> values;
  values.reserve(owned.size());
  for (const auto& p : owned) values.push_back(p.c_str());
  g_round_trips.fetch_add(1, std::memory_order_relaxed);
  Result r(PQexecPrepared(c, name.c_str(), static_cast<int>(values.size()), values.data(), nullptr,
                          nullptr, 0));
  const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    if (PQstatus(c) != CONNECTION_OK) unavailable(c, "connection lost");
    const char* state = r ? PQresultErrorField(r.get(), PG_DIAG_SQLSTATE) : nullptr;
    const std::string code = state != nullptr ? state : "";
    // Serialisation failures, deadlocks, a server shutting down: worth a retry later.
    if (code.starts_with("40") || code.starts_with("57") || code.starts_with("08")) {
      unavailable(c, std::string(sql).substr(0, 40));
    }
    throw Error(ErrorCode::Internal, "PostgreSQL: " + std::string(PQresultErrorMessage(r.get())) +
                                         " in " + std::string(sql).substr(0, 60));
  }
  return r;
}

// Several statements without parameters (a migration): the simple query protocol.
void exec_script(PGconn* c, const char* sql) {
  const Result r(PQexec(c, sql));
  if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    if (PQstatus(c) != CONNECTION_OK) unavailable(c, "connection lost");
    throw Error(ErrorCode::Internal,
                "PostgreSQL migration: " + std::string(r ? PQresultErrorMessage(r.get()) : "?"));
  }
}

std::string text(const Result& r, int row, int col) {
  return {PQgetvalue(r.get(), row, col), static_cast<std::size_t>(PQgetlength(r.get(), row, col))};
}
std::int64_t integer(const Result& r, int row, int col) {
  return std::stoll(text(r, row, col));
}
std::string num(std::int64_t v) {
  return std::to_string(v);
}
// Hashes as one comma-separated hex list, unnested in SQL WITH ORDINALITY.
std::string hex_list(std::span<const Bytes> hashes) {
  std::string out;
  for (const auto& h : hashes) {
    if (!out.empty()) out += ',';
    out += to_hex(h);
  }
  return out;
}

int current_version(PGconn* c) {
  exec(c, "CREATE TABLE IF NOT EXISTS schema_version(version integer NOT NULL)");
  const Result r = exec(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
  return static_cast<int>(integer(r, 0, 0));
}

constexpr const char* kTokenQuery = "SELECT \"user\" FROM tokens WHERE token = $1 AND expires > $2";
constexpr const char* kSadQuery =
    "SELECT s.txn, t.\"user\", t.bearer, t.credential, t.hash_alg, t.expires,"
    " s.expires, s.extended, s.pin FROM sads s JOIN transactions t ON t.id = s.txn"
    " WHERE s.sad = $1";

std::optional<SadRecord> sad_record(const Result& r) {
  if (PQntuples(r.get()) == 0) return std::nullopt;
  return SadRecord{
      text(r, 0, 0),
      {text(r, 0, 1), text(r, 0, 2), text(r, 0, 3), text(r, 0, 4), from_unix_ms(integer(r, 0, 5))},
      from_unix_ms(integer(r, 0, 6)),
      text(r, 0, 7) == "t",
      text(r, 0, 8)};
}

class PostgresStore final : public StateStore {
 public:
  PostgresStore(std::string url, std::size_t pool_size) : url_(std::move(url)) {
    for (std::size_t i = 0; i < pool_size; ++i) idle_.push_back(connect(url_));
  }

  [[nodiscard]] std::string_view backend() const noexcept override { return "postgresql"; }
  [[nodiscard]] std::uint64_t round_trips() const noexcept override {
    return g_round_trips.load(std::memory_order_relaxed);
  }

  void ping() override {
    Lease c(*this);
    exec(c.get(), "SELECT 1");
  }

  int schema_version() override {
    Lease c(*this);
    const Result r = exec(c.get(), "SELECT COALESCE(MAX(version), 0) FROM schema_version");
    return static_cast<int>(integer(r, 0, 0));
  }

  void put_token(std::string_view token_hash, std::string_view user, TimePoint expires) override {
    Lease c(*this);
    exec(c.get(), "INSERT INTO tokens(token, \"user\", expires) VALUES($1, $2, $3)",
         {token_hash, user, num(to_unix_ms(expires))});
  }

  std::optional<std::string> token_user(std::string_view token_hash, TimePoint now) override {
    Lease c(*this);
    const Result r = exec(c.get(), kTokenQuery, {token_hash, num(to_unix_ms(now))});
    if (PQntuples(r.get()) == 0) return std::nullopt;
    return text(r, 0, 0);
  }

  void revoke_token(std::string_view token_hash) override {
    Lease c(*this);
    exec(c.get(), "DELETE FROM tokens WHERE token = $1", {token_hash});
  }

  bool locked(std::string_view user, TimePoint now) override {
    Lease c(*this);
    const Result r = exec(c.get(), "SELECT 1 FROM locks WHERE \"user\" = $1 AND until > $2",
                          {user, num(to_unix_ms(now))});
    return PQntuples(r.get()) > 0;
  }

  /// Serialises one user's login attempts across nodes until the transaction ends (the two-key
  /// advisory lock space, apart from the single-key locks of the audit chain and expiry).
  static void lock_user(PGconn* c, std::string_view user) {
    exec(c, "SELECT pg_advisory_xact_lock(1803121522, hashtext($1))", {user});
  }

  Attempt begin_attempt(std::string_view user, std::string_view kind, TimePoint now,
                        std::size_t max) override {
    Lease c(*this);
    // The user's attempts take turns across nodes (a transaction-scoped advisory lock on the
    // user), so the lock check below sees a lockout another node has just committed; without it
    // an upsert waiting on a row that attempt_failed deletes re-inserts it and counts from 1.
    Tx tx(c.get());
    lock_user(c.get(), user);
    // Not locked, and counted only while below the limit.
    const Result r = exec(c.get(),
                          "INSERT INTO failures(\"user\", kind, count)"
                          " SELECT $1, $2, 1 WHERE NOT EXISTS"
                          " (SELECT 1 FROM locks WHERE \"user\" = $1 AND until > $4)"
                          " ON CONFLICT(\"user\", kind) DO UPDATE SET count = failures.count + 1"
                          " WHERE failures.count < $3 RETURNING count",
                          {user, kind, num(static_cast<std::int64_t>(max)), num(to_unix_ms(now))});
    const bool counted = PQntuples(r.get()) == 1;
    tx.commit();
    return counted ? Attempt::Allowed : Attempt::Locked;
  }

  bool attempt_failed(std::string_view user, std::string_view kind, TimePoint now, std::size_t max,
                      std::chrono::seconds lockout) override {
    Lease c(*this);
    Tx tx(c.get());
    lock_user(c.get(), user);
    const Result r = exec(c.get(),
                          "DELETE FROM failures WHERE \"user\" = $1 AND kind = $2 AND count >= $3"
                          " RETURNING count",
                          {user, kind, num(static_cast<std::int64_t>(max))});
    const bool now_locked = PQntuples(r.get()) == 1;
    if (now_locked) {
      exec(c.get(),
           "INSERT INTO locks(\"user\", until) VALUES($1, $2)"
           " ON CONFLICT(\"user\") DO UPDATE SET until = EXCLUDED.until",
           {user, num(to_unix_ms(now + lockout))});
    }
    tx.commit();
    return now_locked;
  }

  void attempt_succeeded(std::string_view user, std::string_view kind) override {
    Lease c(*this);
    exec(c.get(), "DELETE FROM failures WHERE \"user\" = $1 AND kind = $2", {user, kind});
  }

  bool accept_totp_counter(std::string_view user, std::uint64_t counter) override {
    Lease c(*this);
    const Result r = exec(c.get(),
                          "INSERT INTO totp(\"user\", counter) VALUES($1, $2)"
                          " ON CONFLICT(\"user\") DO UPDATE SET counter = EXCLUDED.counter"
                          " WHERE totp.counter < EXCLUDED.counter RETURNING 1",
                          {user, num(static_cast<std::int64_t>(counter))});
    return PQntuples(r.get()) == 1;
  }

  void put_transaction(std::string_view id, const TransactionRecord& t,
                       std::span<const Bytes> hashes, std::string_view sad_hash,
                       TimePoint sad_expires, std::string_view sealed_pin) override {
    Lease c(*this);
    // One round trip: the three inserts between BEGIN and COMMIT.
    Tx tx(c.get(), Tx::kBegun);
    const std::string txn(id);
    (void)pipeline(
        c.get(),
        {{"BEGIN", {}},
         {"INSERT INTO transactions(id, \"user\", bearer, credential, hash_alg, expires)"
          " VALUES($1, $2, $3, $4, $5, $6)",
          {txn, t.user, t.bearer, t.credential, t.hash_algorithm, num(to_unix_ms(t.expires))}},
         {"INSERT INTO txn_hashes(txn, hash)"
          " SELECT $1, decode(h, 'hex') FROM unnest(string_to_array($2, ',')) AS h",
          {txn, hex_list(hashes)}},
         {"INSERT INTO sads(sad, txn, expires, pin) VALUES($1, $2, $3, $4)",
          {std::string(sad_hash), txn, num(to_unix_ms(sad_expires)), std::string(sealed_pin)}},
         {"COMMIT", {}}});
    tx.committed();
  }

  std::optional<SadRecord> sad(std::string_view sad_hash) override {
    Lease c(*this);
    return sad_record(exec(c.get(), kSadQuery, {sad_hash}));
  }

  std::pair<std::optional<std::string>, std::optional<SadRecord>> token_user_and_sad(
      std::string_view token_hash, std::string_view sad_hash, TimePoint now) override {
    Lease c(*this);
    // Two independent reads in one pipeline: one round trip where signHash made two.
    const auto r =
        pipeline(c.get(), {{kTokenQuery, {std::string(token_hash), num(to_unix_ms(now))}},
                           {kSadQuery, {std::string(sad_hash)}}});
    std::optional<std::string> user;
    if (PQntuples(r[0].get()) != 0) user = text(r[0], 0, 0);
    return {std::move(user), sad_record(r[1])};
  }

  bool extend_sad(std::string_view old_sad_hash, std::string_view new_sad_hash,
                  TimePoint new_expires, TimePoint now, std::string_view sealed_pin) override {
    Lease c(*this);
    // One statement: the old SAD's row lock makes two nodes extending it take turns, and the
    // second finds it extended.
    const Result r = exec(c.get(),
                          "WITH old AS (UPDATE sads SET extended = true WHERE sad = $1"
                          " AND NOT extended AND expires > $3 RETURNING txn)"
                          " INSERT INTO sads(sad, txn, expires, pin) SELECT $2, txn, $4, $5"
                          " FROM old RETURNING 1",
                          {old_sad_hash, new_sad_hash, num(to_unix_ms(now)),
                           num(to_unix_ms(new_expires)), sealed_pin});
    return PQntuples(r.get()) == 1;
  }

  HashCheck check_unsigned(std::string_view transaction, std::span<const Bytes> hashes) override {
    Lease c(*this);
    const Result r = exec(c.get(),
                          "SELECT min(w.i) FROM unnest(string_to_array($2, ','))"
                          " WITH ORDINALITY AS w(h, i) WHERE NOT EXISTS (SELECT 1 FROM txn_hashes"
                          " t WHERE t.txn = $1 AND t.hash = decode(w.h, 'hex') AND NOT t.signed)",
                          {transaction, hex_list(hashes)});
    if (PQgetisnull(r.get(), 0, 0) != 0) return {};
    return {false, static_cast<std::size_t>(integer(r, 0, 0) - 1), false};
  }

  HashCheck consume(std::string_view sad_hash, std::span<const Bytes> hashes, TimePoint now,
                    std::string_view request) override {
    Lease c(*this);
    // One statement, so one round trip and its own transaction (committed, and durable, when
    // its answer arrives). s: the live SAD, FOR SHARE, so an extension of it on another node
    // waits for this statement (and this one for it): a SAD is never used after it was traded.
    // l: the approved hashes this request may take, locked; a node racing for the same ones
    // waits, then finds them signed (its re-check drops them from its l). u: updates them only
    // if l holds every hash asked for, else nothing; so all or nothing without a BEGIN, a
    // decision in the client and a COMMIT (issue 13: 2 round trips before).
    const Result r = exec(
        c.get(),
        "WITH s AS (SELECT txn FROM sads WHERE sad = $1 AND NOT extended AND expires > $4"
        " FOR SHARE),"
        " w AS (SELECT decode(h, 'hex') AS hash, i FROM"
        " unnest(string_to_array($2, ',')) WITH ORDINALITY AS x(h, i)),"
        " l AS (SELECT t.hash FROM txn_hashes t JOIN s ON t.txn = s.txn"
        " WHERE t.hash IN (SELECT hash FROM w) AND (NOT t.signed OR (t.request = $3 AND $3 <> ''))"
        " FOR UPDATE OF t),"
        " bad AS (SELECT min(i) AS i FROM w WHERE hash NOT IN (SELECT hash FROM l)),"
        " u AS (UPDATE txn_hashes SET signed = true, request = $3"
        " WHERE txn = (SELECT txn FROM s) AND hash IN (SELECT hash FROM l)"
        " AND (SELECT i FROM bad) IS NULL RETURNING 1)"
        " SELECT (SELECT count(*) FROM s), (SELECT i FROM bad), (SELECT count(*) FROM u)",
        {sad_hash, hex_list(hashes), request, num(to_unix_ms(now))});
    if (integer(r, 0, 0) == 0) return {false, 0, true};
    if (PQgetisnull(r.get(), 0, 1) == 0) {
      return {false, static_cast<std::size_t>(integer(r, 0, 1) - 1), false};  // nothing taken
    }
    return {};
  }

  void purge(TimePoint now) override {
    Lease c(*this);
    Tx tx(c.get());
    // One node at a time; the others skip this minute.
    const Result got = exec(c.get(), "SELECT pg_try_advisory_xact_lock(1803121520)");
    if (text(got, 0, 0) != "t") return;
    const std::string t = num(to_unix_ms(now));
    for (const char* sql :
         {"DELETE FROM tokens WHERE expires <= $1", "DELETE FROM sads WHERE expires <= $1",
          "DELETE FROM txn_hashes WHERE txn IN (SELECT id FROM transactions WHERE expires <= $1)",
          "DELETE FROM transactions WHERE expires <= $1", "DELETE FROM locks WHERE until <= $1"}) {
      exec(c.get(), sql, {t});
    }
    tx.commit();
  }

  void audit(std::string_view user, std::string_view event, std::string_view detail) override {
    Lease c(*this);
    // Two round trips: BEGIN, the lock (appends from every node in one order) and the last row;
    // then the new row and COMMIT.
    Tx tx(c.get(), Tx::kBegun);
    const auto begun =
        pipeline(c.get(), {{"BEGIN", {}},
                           {kAuditLock, {}},
                           {"SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", {}}});
    const Result& last = begun[2];
    const bool any = PQntuples(last.get()) == 1;
    const std::int64_t seq = any ? integer(last, 0, 0) + 1 : 1;
    const std::string prev = any ? text(last, 0, 1) : std::string(kChainGenesis);
    const std::string time = to_iso8601(std::chrono::system_clock::now());
    const std::array<std::string_view, 3> fields{user, event, detail};
    const std::string hash(ChainHasher().link(prev, seq, time, fields));
    (void)pipeline(
        c.get(),
        {{"INSERT INTO audit(seq, time, \"user\", event, detail, prev, hash)"
          " VALUES($1, $2, $3, $4, $5, $6, $7)",
          {num(seq), time, std::string(user), std::string(event), std::string(detail), prev, hash}},
         {"COMMIT", {}}});
    tx.committed();
  }

  std::vector<AuditEntry> audit_log() override {
    Lease c(*this);
    const Result r = exec(
        c.get(), "SELECT seq, time, \"user\", event, detail, prev, hash FROM audit ORDER BY seq");
    std::vector<AuditEntry> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      out.push_back({integer(r, i, 0), text(r, i, 1), text(r, i, 2), text(r, i, 3), text(r, i, 4),
                     text(r, i, 5), text(r, i, 6)});
    }
    return out;
  }

 private:
  // One pooled connection for the length of a call; a broken one is replaced at the next lease.
  class Lease {
   public:
    explicit Lease(PostgresStore& s) : store_(s) {
      std::unique_lock lock(s.mutex_);
      s.cv_.wait(lock, [&] { return !s.idle_.empty(); });
      conn_ = std::move(s.idle_.back());
      s.idle_.pop_back();
      lock.unlock();
      if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
        try {
          conn_ = connect(s.url_);
        } catch (...) {
          give_back();
          throw;
        }
      }
    }
    ~Lease() { give_back(); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease(Lease&&) = delete;
    Lease& operator=(Lease&&) = delete;
    [[nodiscard]] PGconn* get() const noexcept { return conn_.get(); }

   private:
    void give_back() noexcept {
      // Never pooled mid-transaction or mid-pipeline (a call that failed half-way and could not
      // roll back): the next lease opens a fresh connection instead.
      if (conn_ && (PQpipelineStatus(conn_.get()) != PQ_PIPELINE_OFF ||
                    PQtransactionStatus(conn_.get()) != PQTRANS_IDLE)) {
        conn_.reset();
      }
      {
        const std::lock_guard lock(store_.mutex_);
        store_.idle_.push_back(std::move(conn_));
      }
      store_.cv_.notify_one();
    }
    PostgresStore& store_;
    Conn conn_;
  };

  // BEGIN ... COMMIT on one connection, rolled back when an exception or an early return
  // leaves the scope.
  class Tx {
   public:
    /// The caller sends BEGIN itself (first in a pipeline).
    static constexpr struct Begun {
    } kBegun{};
    explicit Tx(PGconn* c) : c_(c) { exec(c_, "BEGIN"); }
    Tx(PGconn* c, Begun /*tag*/) : c_(c) {}
    ~Tx() {
      if (!done_ && PQstatus(c_) == CONNECTION_OK) {
        g_round_trips.fetch_add(1, std::memory_order_relaxed);
        PQclear(PQexec(c_, "ROLLBACK"));
      }
    }
    Tx(const Tx&) = delete;
    Tx& operator=(const Tx&) = delete;
    Tx(Tx&&) = delete;
    Tx& operator=(Tx&&) = delete;
    void commit() {
      exec(c_, "COMMIT");
      done_ = true;
    }
    /// COMMIT went out with the last statements (and succeeded).
    void committed() noexcept { done_ = true; }

   private:
    PGconn* c_;
    bool done_ = false;
  };

  std::string url_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Conn> idle_;
};

}  // namespace

int migrate_postgres(const std::string& url, const std::string& role) {
  Conn c = connect(url);
  exec(c.get(), "BEGIN");
  // One migrator at a time, even when every node is started with `migrate` at once.
  exec(c.get(), "SELECT pg_advisory_xact_lock(1803121521)");
  int version = current_version(c.get());
  for (; version < static_cast<int>(kMigrations.size()); ++version) {
    exec_script(c.get(), kMigrations[static_cast<std::size_t>(version)]);
    exec(c.get(), "INSERT INTO schema_version(version) VALUES($1)", {num(version + 1)});
  }
  if (!role.empty()) {
    const std::unique_ptr<char, decltype(&PQfreemem)> quoted(
        PQescapeIdentifier(c.get(), role.c_str(), role.size()), &PQfreemem);
    if (!quoted) unavailable(c.get(), "escape role");
    const std::string r = quoted.get();
    exec(c.get(), ("GRANT SELECT, INSERT, UPDATE, DELETE ON tokens, failures, locks, totp,"
                   " transactions, txn_hashes, sads TO " +
                   r)
                      .c_str());
    exec(c.get(), ("GRANT SELECT ON schema_version TO " + r).c_str());
    exec(c.get(), ("GRANT SELECT, INSERT ON audit TO " + r).c_str());
    exec(c.get(), ("REVOKE UPDATE, DELETE, TRUNCATE ON audit FROM " + r).c_str());
  }
  exec(c.get(), "COMMIT");
  return version;
}

std::unique_ptr<StateStore> open_postgres_store(const std::string& url, bool migrate) {
  if (migrate) migrate_postgres(url, "");
  auto store = std::make_unique<PostgresStore>(url, 8);
  if (const int v = store->schema_version(); v != static_cast<int>(kMigrations.size())) {
    throw Error(ErrorCode::ConfigInvalid, "the state database is at schema version " +
                                              std::to_string(v) + ", this build needs " +
                                              std::to_string(kMigrations.size()) +
                                              ": run `kyso-appliance migrate` first");
  }
  return store;
}

}  // namespace kyso::appliance
