// Agent pieces without a token: Assuan escaping, the pinentry round trip, /proc/net/tcp parsing,
// origins, items and the audit chain.

#include <pwd.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "harness.hpp"
#include "kyso/agent/audit.hpp"
#include "kyso/agent/pairing.hpp"
#include "kyso/agent/peer.hpp"
#include "kyso/agent/pinentry.hpp"
#include "kyso/agent/service.hpp"
#include "kyso/core/hash_chain.hpp"
#include "ordered.hpp"

using namespace kyso;
using namespace kyso::agent;

TEST_CASE("assuan_escape escapes percent, CR, LF and control characters only", "[ws][security]") {
  CHECK(assuan_escape("Học bạ 100%\nNguyễn\r") == "Học bạ 100%25%0ANguyễn%0D");
  CHECK(assuan_escape("a\tb") == "a%09b");
}

TEST_CASE("pinentry_getPin_readsPinIntoSecretAndShowsDialogText", "[ws][security]") {
  const auto dir = std::filesystem::temp_directory_path() / "kyso-pinentry-unit";
  std::filesystem::create_directories(dir);
  ::setenv("KYSO_PINENTRY_LOG", (dir / "log").c_str(), 1);
  std::filesystem::remove(dir / "log");
  test::pinentry_script("ok", "12%34");
  Pinentry p(KYSO_TEST_PINENTRY, std::chrono::seconds(5));
  Dialog d{.title = "Kyso",
           .description = "Trang web: x\nVai trò: y",
           .prompt = "PIN:",
           .ok = "Ký",
           .cancel = "Hủy"};
  // The script sends the PIN unescaped; "%34" decodes to '4' on our side, as Assuan says.
  const Secret pin = p.get_pin(d);
  CHECK(pin.view() == "124");
  CHECK(p.confirm(d));
  test::pinentry_script("cancel", "");
  CHECK_FALSE(p.confirm(d));
  CHECK_THROWS_MATCHES(p.get_pin(d), Error, Catch::Predicate<Error>([](const Error& e) {
                         return e.code() == ErrorCode::UserCancelled;
                       }));
  std::ifstream in(dir / "log");
  std::string first;
  std::getline(in, first);
  // The script logs the description decoded, line breaks as " | ": the break arrived as %0A (an
  // unescaped one would have split SETDESC and cut the description short).
  CHECK(first.find("desc=Trang web: x | Vai trò: y") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("pinentry_userNeverAnswers_timesOutAndAbortCancels", "[ws][security]") {
  test::pinentry_script("hang", "");
  Pinentry p(KYSO_TEST_PINENTRY, std::chrono::seconds(1));
  Dialog d{.title = "t", .description = "d", .prompt = {}, .ok = {}, .cancel = {}};
  CHECK_THROWS_MATCHES(p.confirm(d), Error, Catch::Predicate<Error>([](const Error& e) {
                         return e.code() == ErrorCode::Timeout;
                       }));
  std::atomic<bool> abort{true};
  CHECK_THROWS_MATCHES(p.get_pin(d, &abort), Error, Catch::Predicate<Error>([](const Error& e) {
                         return e.code() == ErrorCode::UserCancelled;
                       }));
}

TEST_CASE("find_socket_uid reads the peer's row of /proc/net/tcp and tcp6", "[ws][security]") {
  using boost::asio::ip::make_address;
  using boost::asio::ip::tcp;
  const std::string v4 =
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
      "inode\n"
      "   0: 0100007F:4C93 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 "
      "1 1\n"
      "   1: 0100007F:A1B2 0100007F:4C93 01 00000000:00000000 00:00000000 00000000  1001        0 "
      "2 1\n";
  const tcp::endpoint peer(make_address("127.0.0.1"), 0xA1B2);
  const tcp::endpoint agent(make_address("127.0.0.1"), 0x4C93);
  CHECK(find_socket_uid(v4, peer, agent) == 1001U);
  CHECK_FALSE(find_socket_uid(v4, agent, tcp::endpoint(make_address("127.0.0.1"), 1)));
  const std::string v6 =
      "  sl  local_address                         remote_address                        st "
      "tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
      "   0: 00000000000000000000000001000000:C001 00000000000000000000000001000000:4C93 01 "
      "00000000:00000000 00:00000000 00000000   0        0 3 1\n";
  CHECK(find_socket_uid(v6, tcp::endpoint(make_address("::1"), 0xC001),
                        tcp::endpoint(make_address("::1"), 0x4C93)) == 0U);
}

TEST_CASE("run_ordered reports every item once, in order, and the last one without waiting",
          "[ws]") {
  using namespace std::chrono_literals;
  for (const std::size_t lanes : {std::size_t{1}, std::size_t{2}}) {
    constexpr std::size_t kItems = 500;
    std::vector<std::atomic<int>> worked(kItems);
    std::vector<std::pair<std::size_t, std::size_t>> records;
    std::vector<std::pair<std::size_t, std::size_t>> reports;
    const auto t0 = std::chrono::steady_clock::now();
    // Reports at most every 10 s while items are fast: the run ends when the last item does.
    agent::detail::run_ordered(
        kItems, lanes, 10s, [&](std::size_t i) { worked[i].fetch_add(1); },
        [&](std::size_t first, std::size_t last) { records.emplace_back(first, last); },
        [&](std::size_t first, std::size_t last) {
          REQUIRE_FALSE(records.empty());
          CHECK(records.back().second >= last);  // recorded before reported
          reports.emplace_back(first, last);
        });
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
    for (const auto& w : worked) CHECK(w.load() == 1);
    for (const auto* calls : {&records, &reports}) {
      REQUIRE_FALSE(calls->empty());
      std::size_t next = 0;
      for (const auto& [first, last] : *calls) {
        CHECK(first == next);
        CHECK(last > first);
        next = last;
      }
      CHECK(next == kItems);
    }
  }
  // A report that throws stops the lanes and reaches the caller.
  CHECK_THROWS_AS(agent::detail::run_ordered(
                      100, 2, 1ms, [](std::size_t) {}, [](std::size_t, std::size_t) {},
                      [](std::size_t, std::size_t) { throw Error(ErrorCode::Internal, "audit"); }),
                  Error);
}

// What is left when the last item finishes is what the page waits for with a core idle: the
// items finished since the last report are recorded (their audit rows written) while the lanes
// sign, not all at once at the end (issue 11).
TEST_CASE("run_ordered records items as they finish and reports them once per period", "[ws]") {
  using namespace std::chrono_literals;
  constexpr std::size_t kItems = 40;
  std::size_t record_calls = 0;
  std::size_t recorded = 0;
  std::vector<std::pair<std::size_t, std::size_t>> reports;
  agent::detail::run_ordered(
      kItems, 2, 10s, [](std::size_t) { std::this_thread::sleep_for(2ms); },
      [&](std::size_t first, std::size_t last) {
        CHECK(first == recorded);
        recorded = last;
        ++record_calls;
      },
      [&](std::size_t first, std::size_t last) { reports.emplace_back(first, last); });
  CHECK(recorded == kItems);
  // The first item at once (the page sees the signing start), then the rest when the last one
  // finished: nothing in between with a 10 s period; meanwhile items were recorded as they
  // finished, not in one go at the end.
  REQUIRE_FALSE(reports.empty());
  CHECK(reports.size() <= 2);
  CHECK(reports.back().second == kItems);
  CHECK(record_calls >= reports.size() + 4);
}

// Runs of fast items grow to 64; near the end they shrink, so that one lane does not sign its
// last long run alone while the other has nothing left (issue 11).
TEST_CASE("run_ordered's lanes take short runs near the end", "[ws]") {
  constexpr std::size_t kItems = 2000;
  std::mutex m;
  std::vector<std::pair<std::size_t, std::size_t>> runs;
  std::vector<std::atomic<int>> worked(kItems);
  agent::detail::run_ordered(
      kItems, 2, std::chrono::milliseconds(10), [&](std::size_t i) { worked[i].fetch_add(1); },
      [](std::size_t, std::size_t) {}, [](std::size_t, std::size_t) {},
      [&](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) worked[i].fetch_add(1);
        const std::lock_guard lock(m);
        runs.emplace_back(first, last);
      });
  for (const auto& w : worked) CHECK(w.load() == 1);
  std::size_t largest = 0;
  for (const auto& [first, last] : runs) {
    largest = std::max(largest, last - first);
    if (last + 32 >= kItems) CHECK(last - first <= 16);
  }
  CHECK(largest == agent::detail::kRunMax);
}

TEST_CASE("kernel_socket_uid finds the owner of a real loopback connection, v4 and v6",
          "[ws][security]") {
  using boost::asio::ip::make_address;
  using boost::asio::ip::tcp;
  boost::asio::io_context ioc;
  for (const char* address : {"127.0.0.1", "::1"}) {
    tcp::acceptor acceptor(ioc, tcp::endpoint(make_address(address), 0));
    tcp::socket client(ioc);
    client.connect(acceptor.local_endpoint());
    tcp::socket served = acceptor.accept();
    // The agent's view: its end is `served`, the page's end is `client`.
    CHECK(kernel_socket_uid(client.local_endpoint(), client.remote_endpoint()) == ::getuid());
    CHECK(peer_uid(served.local_endpoint(), served.remote_endpoint()) == ::getuid());
    // No such socket: nothing, not a guess.
    CHECK_FALSE(
        kernel_socket_uid(tcp::endpoint(make_address(address), 1), client.remote_endpoint()));
  }
}

TEST_CASE("origins: only https (or loopback http) can be paired", "[ws][security]") {
  CHECK(origin_pairable("https://hocba.example.edu.vn"));
  CHECK(origin_pairable("http://localhost:8080"));
  CHECK(origin_pairable("http://127.0.0.1:5173"));
  CHECK_FALSE(origin_pairable("http://evil.example"));
  CHECK_FALSE(origin_pairable("http://localhost.evil.example"));
  CHECK_FALSE(origin_pairable("null"));
  CHECK_FALSE(origin_pairable("file://"));
  CHECK_FALSE(origin_pairable("https://a.example/path"));
}

namespace {

/// `rows` committed signature rows in a fresh log under the temp directory's `name`, the log
/// closed (each commit also anchors the head).
std::filesystem::path filled_log(const std::string& name, int rows) {
  const auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto db = dir / "audit.db";
  AuditLog log(db);
  for (int i = 0; i < rows; ++i) {
    log.append(AuditRow{.event = "signature",
                        .origin = "https://a",
                        .role = "teacher",
                        .credential_id = "c",
                        .digest = std::to_string(i),
                        .result = "ok",
                        .detail = {}});
  }
  return db;
}

}  // namespace

TEST_CASE("audit_tamperedRow_verifyReportsFirstBrokenRow", "[security]") {
  const auto db = filled_log("kyso-audit-unit", 5);
  const auto dir = db.parent_path();
  auto ok = AuditLog::verify(db);
  CHECK(ok.ok);
  CHECK(ok.rows == 5);

  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  // The triggers refuse edits through SQLite...
  CHECK(sqlite3_exec(h, "UPDATE audit SET result='forged' WHERE seq=3", nullptr, nullptr,
                     nullptr) != SQLITE_OK);
  CHECK(sqlite3_exec(h, "DELETE FROM audit WHERE seq=3", nullptr, nullptr, nullptr) != SQLITE_OK);
  // ...and someone who drops them is caught by the chain.
  REQUIRE(sqlite3_exec(h,
                       "DROP TRIGGER audit_no_update; UPDATE audit SET result='forged' WHERE seq=3",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(h);
  auto bad = AuditLog::verify(db);
  CHECK_FALSE(bad.ok);
  CHECK(bad.first_broken == 3);

  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  REQUIRE(sqlite3_exec(h, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq=3", nullptr,
                       nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(h);
  bad = AuditLog::verify(db);
  CHECK_FALSE(bad.ok);
  CHECK(bad.first_broken == 4);
  std::filesystem::remove_all(dir);
}

TEST_CASE("audit_writesWithoutASigningJob_walCheckpointedOnATimer", "[security]") {
  // Issue 12, finding 3: the write-ahead log was copied only after a signing job, so refusals
  // alone grew it without bound.
  const auto dir = std::filesystem::temp_directory_path() / "kyso-audit-checkpoint-unit";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto db = dir / "audit.db";
  AuditLog log(db, AuditLog::Timing{.checkpoint_every = std::chrono::milliseconds(200),
                                    .refusals_every = std::chrono::milliseconds(200)});
  for (int i = 0; i < 300; ++i) {
    log.append(AuditRow{.event = "pairing",
                        .origin = "https://a",
                        .role = {},
                        .credential_id = {},
                        .digest = {},
                        .result = "ok",
                        .detail = std::string(500, 'd')});
  }
  const auto main_before = std::filesystem::file_size(db);
  CHECK(main_before < 64 * 1024);  // everything is still in the WAL
  auto main_after = main_before;
  for (int i = 0; i < 30 && main_after < 100 * 1024; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    main_after = std::filesystem::file_size(db);
  }
  CHECK(main_after >= 100 * 1024);  // copied into the database without anyone asking
  std::filesystem::remove_all(dir);
}

TEST_CASE("audit_pageChosenFields_cappedBeforeTheyAreStored", "[security]") {
  const auto dir = std::filesystem::temp_directory_path() / "kyso-audit-cap-unit";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto db = dir / "audit.db";
  {
    AuditLog log(db);
    log.append(AuditRow{.event = "refusal",
                        .origin = "https://" + std::string(900000, 'o') + ".example",
                        .role = std::string(900000, 'r'),
                        .credential_id = std::string(900000, 'c'),
                        .digest = {},
                        .result = "ORIGIN_NOT_PAIRED",
                        .detail = std::string(900000, 'd')});
  }
  CHECK(AuditLog::verify(db).ok);
  CHECK(std::filesystem::file_size(db) + std::filesystem::file_size(db.string() + "-wal") <
        64 * 1024);
  std::filesystem::remove_all(dir);
}

namespace {

/// Six committed rows (each commit anchors the head), the log closed.
std::filesystem::path anchored_log(const std::string& name) {
  return filled_log(name, 6);
}

/// What someone with write access to the file can do: drop the triggers, run `sql`, and
/// recompute every row's chain hash so that the chain alone holds again.
void tamper_and_rechain(const std::filesystem::path& db, const char* sql) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  REQUIRE(sqlite3_exec(h, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;", nullptr,
                       nullptr, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_exec(h, sql, nullptr, nullptr, nullptr) == SQLITE_OK);
  struct Row {
    std::int64_t seq;
    std::array<std::string, 8> text;  // time, then the 7 chained fields
  };
  std::vector<Row> rows;
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h,
                             "SELECT seq, time, event, origin, role, credential_id, digest, "
                             "result, detail FROM audit ORDER BY seq",
                             -1, &st, nullptr) == SQLITE_OK);
  while (sqlite3_step(st) == SQLITE_ROW) {
    Row r{.seq = sqlite3_column_int64(st, 0), .text = {}};
    for (std::size_t i = 0; i < 8; ++i) {
      r.text.at(i) =
          reinterpret_cast<const char*>(sqlite3_column_text(st, static_cast<int>(i) + 1));
    }
    rows.push_back(std::move(r));
  }
  sqlite3_finalize(st);
  REQUIRE(sqlite3_exec(h, "DELETE FROM audit", nullptr, nullptr, nullptr) == SQLITE_OK);
  ChainHasher hasher;
  std::string prev(kChainGenesis);
  std::int64_t seq = 0;
  for (const auto& r : rows) {
    ++seq;
    const std::array<std::string_view, 7> fields{r.text[1], r.text[2], r.text[3], r.text[4],
                                                 r.text[5], r.text[6], r.text[7]};
    const std::string hash(hasher.link(prev, seq, r.text[0], fields));
    REQUIRE(sqlite3_prepare_v2(h, "INSERT INTO audit VALUES (?,?,?,?,?,?,?,?,?,?,?)", -1, &st,
                               nullptr) == SQLITE_OK);
    sqlite3_bind_int64(st, 1, seq);
    for (std::size_t i = 0; i < 8; ++i) {
      sqlite3_bind_text(st, static_cast<int>(i) + 2, r.text.at(i).c_str(), -1, nullptr);
    }
    sqlite3_bind_text(st, 10, prev.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 11, hash.c_str(), -1, SQLITE_TRANSIENT);
    REQUIRE(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);
    prev = hash;
  }
  sqlite3_close(h);
}

/// tamper_and_rechain(db, sql), then the check every tampering must fail: `rows` rows left, the
/// first broken one named, and why.
AuditVerifyResult tampered_and_caught(const std::filesystem::path& db, const char* sql,
                                      std::int64_t rows, std::int64_t first_broken,
                                      std::string_view why) {
  tamper_and_rechain(db, sql);
  auto after = AuditLog::verify(db);
  CHECK(after.rows == rows);
  CHECK_FALSE(after.ok);
  CHECK(after.first_broken == first_broken);
  CHECK(after.reason.find(why) != std::string::npos);
  return after;
}

const AnchorCheck* anchor_source(const AuditVerifyResult& r, std::string_view source) {
  for (const auto& a : r.anchors) {
    if (a.source == source) return &a;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("audit_rowsDeletedAndChainRecomputed_detectedByTheAnchors", "[security]") {
  // Issue 12, finding 8: the chain is unkeyed and was anchored nowhere outside the file.
  const auto db = anchored_log("kyso-audit-anchor-rechain");
  const auto before = AuditLog::verify(db);
  REQUIRE(before.ok);
  const auto* file = anchor_source(before, AuditLog::anchor_file(db).string());
  REQUIRE(file != nullptr);
  CHECK(file->available);
  CHECK(file->anchors >= 6);
  // The journal is reported either way: checked, or said to be unavailable.
  const auto* journal = anchor_source(before, "journal");
  REQUIRE(journal != nullptr);
  if (!std::filesystem::exists("/run/systemd/journal/socket")) {
    CHECK_FALSE(journal->available);
    CHECK(journal->note.find("not running") != std::string::npos);
  }

  tampered_and_caught(db, "DELETE FROM audit WHERE seq = 3", 5, 3, "rewritten");
  std::filesystem::remove_all(db.parent_path());
}

TEST_CASE("audit_lastRowsCut_detectedByTheAnchors", "[security]") {
  const auto db = anchored_log("kyso-audit-anchor-cut");
  REQUIRE(AuditLog::verify(db).ok);
  tampered_and_caught(db, "DELETE FROM audit WHERE seq > 4", 4, 5, "cut");
  std::filesystem::remove_all(db.parent_path());
}

// Hidden from the normal run: ctest runs it beside a journald of its own
// (tests/support/with-journald.sh), as agent_ws:audit_journalAnchor.
TEST_CASE("audit_anchorFileRemovedAndRowsCut_theJournalAloneDetectsIt", "[.journal][security]") {
  // Issue 12, finding 8: the journal is the anchor its user cannot rewrite.
  REQUIRE(std::filesystem::exists("/run/systemd/journal/socket"));
  const auto db = anchored_log("kyso-audit-anchor-journal");
  // journald takes the entries asynchronously: wait until it has the six commits' anchors.
  const AnchorCheck* journal = nullptr;
  AuditVerifyResult before;
  for (int i = 0; i < 100; ++i) {
    before = AuditLog::verify(db);
    journal = anchor_source(before, "journal");
    if (journal != nullptr && journal->anchors >= 6) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(before.ok);
  REQUIRE(journal != nullptr);
  CHECK(journal->available);
  CHECK(journal->anchors >= 6);
  CHECK(journal->note.find("journald") != std::string::npos);
  // Whoever can write the state directory removes the anchor file too, then cuts the last rows
  // and recomputes the chain: the file alone looks whole.
  std::filesystem::remove(AuditLog::anchor_file(db));
  const auto after = tampered_and_caught(db, "DELETE FROM audit WHERE seq > 4", 4, 5, "cut");
  const auto* file = anchor_source(after, AuditLog::anchor_file(db).string());
  REQUIRE(file != nullptr);
  CHECK_FALSE(file->available);
  std::filesystem::remove_all(db.parent_path());
}

TEST_CASE("auditBatch_rowsOfOthersJoinItsTransaction_chainHoldsCommittedOrRolledBack",
          "[security]") {
  const auto dir = std::filesystem::temp_directory_path() / "kyso-audit-batch-unit";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const auto db = dir / "audit.db";
  const AuditRow common{.event = "signature",
                        .origin = "https://a",
                        .role = "principal",
                        .credential_id = "c",
                        .digest = {},
                        .result = {},
                        .detail = {}};
  const AuditRow refusal{.event = "refusal",
                         .origin = "http://evil.example",
                         .role = {},
                         .credential_id = {},
                         .digest = {},
                         .result = "ORIGIN_FORBIDDEN",
                         .detail = "upgrade refused"};
  const Bytes digest(32, 0xab);
  {
    AuditLog log(db);
    {
      AuditLog::Batch batch(log, common);
      batch.add(digest, "ok");
      log.append(refusal);  // another connection, meanwhile
      batch.add(digest, "TOKEN_REMOVED");
      batch.commit();
    }
    {
      // A batch that fails before its commit leaves none of its rows, but keeps the others'.
      AuditLog::Batch batch(log, common);
      batch.add(digest, "ok");
      log.append(refusal);
    }
    log.checkpoint();
  }
  const auto v = AuditLog::verify(db);
  CHECK(v.ok);
  CHECK(v.rows == 4);
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open(db.c_str(), &h) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h, "SELECT event, digest, result FROM audit ORDER BY seq", -1, &st,
                             nullptr) == SQLITE_OK);
  std::vector<std::string> rows;
  while (sqlite3_step(st) == SQLITE_ROW) {
    rows.push_back(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 0))) + " " +
                   reinterpret_cast<const char*>(sqlite3_column_text(st, 2)));
    if (rows.size() == 1) {
      CHECK(std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, 1))) ==
            to_hex(digest));
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  CHECK(rows == std::vector<std::string>{"signature ok", "refusal ORIGIN_FORBIDDEN",
                                         "signature TOKEN_REMOVED", "refusal ORIGIN_FORBIDDEN"});
  std::filesystem::remove_all(dir);
}

TEST_CASE("pinentry_descriptionOverAssuanLine_cutToFitAndPinentryStays", "[ws][security]") {
  const auto dir = std::filesystem::temp_directory_path() / "kyso-pinentry-long";
  std::filesystem::create_directories(dir);
  ::setenv("KYSO_PINENTRY_LOG", (dir / "log").c_str(), 1);
  std::filesystem::remove(dir / "log");
  test::pinentry_script("ok", "1234");
  Pinentry p(KYSO_TEST_PINENTRY, std::chrono::seconds(5));
  std::string desc;
  while (desc.size() < 3000) desc += "Học bạ 100%\n";
  Dialog d{.title = "Kyso", .description = desc, .prompt = "PIN:", .ok = "Ký", .cancel = "Hủy"};
  // The scripted pinentry exits on a line over 1000 bytes, as pinentry-tty does: INTERNAL before.
  CHECK(p.get_pin(d).view() == "1234");
  CHECK(escaped_size(fit_escaped(desc, 992)) <= 992);
  CHECK(fit_escaped(desc, 992).ends_with("…"));
  CHECK(fit_escaped("ngắn", 992) == "ngắn");
  std::filesystem::remove_all(dir);
}

// ---- Issue 12, findings 7 and 9
// --------------------------------------------------------------------

TEST_CASE("stateDir_withoutHome_fromThePasswordDatabaseNeverTmp", "[ws][security]") {
  const std::string home = std::getenv("HOME") != nullptr ? std::getenv("HOME") : "";
  const char* xdg = std::getenv("XDG_DATA_HOME");
  const std::string xdg_saved = xdg != nullptr ? xdg : "";
  ::unsetenv("HOME");
  ::unsetenv("XDG_DATA_HOME");
  const auto dir = default_state_dir();
  if (!home.empty()) ::setenv("HOME", home.c_str(), 1);
  if (xdg != nullptr) ::setenv("XDG_DATA_HOME", xdg_saved.c_str(), 1);
  // Before: /tmp/.local/share/kyso, where another local user could plant pairings.json.
  const passwd* pw = ::getpwuid(::getuid());
  REQUIRE(pw != nullptr);
  CHECK(dir == std::filesystem::path(pw->pw_dir) / ".local" / "share" / "kyso");
  CHECK_FALSE(dir.string().starts_with("/tmp"));
}

TEST_CASE("service_stateDirOfAnotherUser_refusedAndOursMade0700", "[ws][security]") {
  std::string tmpl = (std::filesystem::temp_directory_path() / "kyso-state-owner-XXXXXX").string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  const std::filesystem::path dir = tmpl;
  const auto service_on = [](const std::filesystem::path& state) {
    firmware_config::AgentConfig cfg;
    cfg.system_modules = false;
    cfg.state_dir = state;
    cfg.pinentry = "/bin/false";
    return std::make_shared<Service>(cfg);
  };
  // Another user's directory (here nobody's), with their pairings.json: refused.
  const auto theirs = dir / "theirs";
  std::filesystem::create_directories(theirs);
  std::ofstream(theirs / "pairings.json")
      << R"({"version":1,"pairings":[{"origin":"https://evil.example"}]})";
  REQUIRE(::chown(theirs.c_str(), 65534, 65534) == 0);
  REQUIRE(::chmod(theirs.c_str(), 0700) == 0);
  CHECK_THROWS_MATCHES(service_on(theirs), Error, Catch::Predicate<Error>([](const Error& e) {
                         return e.code() == ErrorCode::ConfigInvalid &&
                                e.detail().find("belongs to uid 65534") != std::string::npos;
                       }));
  // Ours but open to others: tightened to 0700; a missing one is made 0700.
  const auto open = dir / "open";
  std::filesystem::create_directories(open);
  REQUIRE(::chmod(open.c_str(), 0777) == 0);
  CHECK_NOTHROW(service_on(open));
  struct stat st {};
  REQUIRE(::stat(open.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK_NOTHROW(service_on(dir / "new"));
  REQUIRE(::stat((dir / "new").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  std::filesystem::remove_all(dir);
}

TEST_CASE("signerLabel_employerMstBeforeCccd_namesThePersonByTheirCccd", "[ws][security]") {
  // Issue 12, finding 9: the dialog named her by the first UID, her employer's tax code.
  CertificateInfo c;
  c.common_name = "Nguyễn Thị Ánh";
  c.uids = {{.prefix = "MST", .value = "0100686209", .raw = "MST:0100686209"},
            {.prefix = "CCCD", .value = "001185012345", .raw = "CCCD:001185012345"}};
  CHECK(signer_label(c) == "Nguyễn Thị Ánh (CCCD:001185012345)");
  c.uids[1] = {.prefix = "CMND", .value = "025123456", .raw = "CMND:025123456"};
  CHECK(signer_label(c) == "Nguyễn Thị Ánh (CMND:025123456)");
  // An organization (a seal) has no personal ID: its first UID.
  c.common_name = "Trường THPT Chu Văn An";
  c.uids = {{.prefix = "MNS", .value = "1047665", .raw = "MNS:1047665"},
            {.prefix = "MST", .value = "0100686209", .raw = "MST:0100686209"}};
  CHECK(signer_label(c) == "Trường THPT Chu Văn An (MNS:1047665)");
}

TEST_CASE("server_startedThenStopped_releasesItsServiceEveryTime", "[ws]") {
  // The token refresh timer's handler held the server: when stop() stopped the io_context
  // before the cancelled handler had run, the server, its Service (audit log, PKCS#11 library)
  // and its listener were never freed (found by LeakSanitizer under ./run test, issue 17).
  for (int round = 0; round < 20; ++round) {
    std::weak_ptr<Service> weak;
    {
      const test::Agent agent;
      weak = agent.service;
    }
    INFO("round " << round);
    REQUIRE(weak.expired());
  }
}
