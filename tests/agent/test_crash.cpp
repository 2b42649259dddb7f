// Crash consistency (issue 17, item 4): kyso-agent, a real process on the fixture's token, is
// killed with SIGKILL at a random point of a batch (before the dialog, while it signs, while it
// reports, after it answered), then started again on the same state directory. Each time:
//  - the log's file is whole (SQLite `PRAGMA integrity_check`), the audit chain verifies
//    (`kyso audit verify`, the independent reader of the log) and every row is whole (no NULL or
//    empty field a row must have, sequence without gaps);
//  - every signature the page received before the kill verifies (OpenSSL) and has its "ok"
//    signature row: nothing left the agent unaudited;
//  - every "ok" row of the batch the page did not receive is of an item after the last one it
//    received (the rows committed just before the kill, whose events were not sent yet), and
//    no item has two rows: nothing is audited as signed twice or out of order;
//  - the restarted agent signs again, and the log still verifies after it.
// KYSO_CRASH_REPEATS (default 3) kills per run; tests/agent/crash-loop.sh runs 50 in a row.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "harness.hpp"
#include "sqlite_integrity.hpp"

using namespace kyso;
using namespace kyso::test;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kItems = 300;

/// kyso-agent as a child process on a port of its own choosing (read from its first line).
struct AgentProcess {
  explicit AgentProcess(const std::filesystem::path& state) {
    const auto& f = fixture();
    std::vector<std::string> args = {KYSO_AGENT_BIN,
                                     "--port",
                                     "0",
                                     "--module",
                                     f.fault_module,
                                     "--no-system-modules",
                                     "--pinentry",
                                     KYSO_TEST_PINENTRY,
                                     "--state-dir",
                                     state.string(),
                                     "--allow-origin",
                                     kSchool,
                                     "--log-level",
                                     "error"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::array<int, 2> out{};
    REQUIRE(::pipe2(out.data(), O_CLOEXEC) == 0);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(out[1], STDOUT_FILENO);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    std::string line;
    char ch = 0;
    pollfd p{out[0], POLLIN, 0};
    while (::poll(&p, 1, 20000) > 0 && ::read(out[0], &ch, 1) == 1 && ch != '\n')
      line.push_back(ch);
    ::close(out[0]);
    INFO(line);
    // "kyso-agent listening on ws://127.0.0.1:<port>/"
    const auto colon = line.rfind(':');
    REQUIRE(colon != std::string::npos);
    port = static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
  }
  ~AgentProcess() { stop(SIGTERM); }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;
  AgentProcess(AgentProcess&&) = delete;
  AgentProcess& operator=(AgentProcess&&) = delete;

  void stop(int sig) {
    if (pid <= 0) return;
    ::kill(pid, sig);
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
  }
  pid_t pid = -1;
  std::uint16_t port = 0;
};

struct AuditRowSeen {
  std::int64_t seq;
  std::string event, digest, result;
  bool whole;
};

std::vector<AuditRowSeen> read_audit(const std::filesystem::path& db) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h,
                             "SELECT seq, time, event, origin, role, credential_id, digest, "
                             "result, detail, prev_hash, row_hash FROM audit ORDER BY seq",
                             -1, &st, nullptr) == SQLITE_OK);
  std::vector<AuditRowSeen> rows;
  auto text = [&](int col) {
    const auto* t = sqlite3_column_text(st, col);
    return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t));
  };
  while (sqlite3_step(st) == SQLITE_ROW) {
    bool whole = true;
    for (int col = 1; col <= 10; ++col) {
      if (sqlite3_column_type(st, col) == SQLITE_NULL) whole = false;
    }
    // A row always has its time, event, result and both hashes.
    for (int col : {1, 2, 7, 9, 10}) {
      if (text(col).empty()) whole = false;
    }
    rows.push_back({sqlite3_column_int64(st, 0), text(2), text(6), text(7), whole});
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return rows;
}

/// `kyso audit verify --json` on the log: the CLI's own reader, as IT runs it.
void audit_verifies(const std::filesystem::path& state, const std::string& when) {
  const auto [rc, out] = run(std::string(std::getenv("KYSO_CLI")) + " audit verify --json --db '" +
                             (state / "audit.db").string() + "'");
  INFO(when << ": " << out);
  REQUIRE(rc == 0);
  REQUIRE(json::parse(out).at("ok") == true);
}

/// One kill: returns how many signatures the page had received before it.
std::size_t kill_mid_batch(const std::filesystem::path& state, std::mt19937& rng, int round,
                           std::size_t& audited_not_received) {
  const auto& f = fixture();
  const auto& cred = f.credential("principal");
  std::vector<json> items;
  std::map<std::string, std::size_t> index_of;  // digest hex -> item index
  for (std::size_t i = 0; i < kItems; ++i) {
    items.push_back(hash_item("round " + std::to_string(round) + " item " + std::to_string(i)));
    index_of[to_hex(item_digest(items.back()))] = i;
  }
  std::map<std::size_t, Bytes> received;
  int delay_ms = 0;
  {
    AgentProcess agent(state);
    Client c(agent.port);
    // Before the dialog, during it, while signing (about 1 s with the token slowed), after it.
    delay_ms = std::uniform_int_distribution<int>(0, 1600)(rng);
    const auto delay = std::chrono::milliseconds(delay_ms);
    c.send_text(json{{"id", 1},
                     {"method", "batch.sign"},
                     {"params",
                      {{"role", "principal"},
                       {"credentialId", cred.credential_id()},
                       {"progressInterval", 5},
                       {"signaturesInEvents", true},
                       {"items", items}}}}
                    .dump());
    std::thread killer([&agent, delay] {
      std::this_thread::sleep_for(delay);
      ::kill(agent.pid, SIGKILL);
    });
    // Everything the agent wrote before it died still arrives; then the socket closes.
    for (;;) {
      json m;
      try {
        m = c.read();
      } catch (const std::exception&) {
        break;
      }
      const json* sigs = nullptr;
      if (m.contains("event") && m["params"].contains("signatures"))
        sigs = &m["params"]["signatures"];
      if (m.contains("result")) sigs = &m["result"]["results"];
      if (sigs == nullptr) continue;
      for (const auto& s : *sigs) {
        if (!s.contains("signature")) continue;
        const auto i = s.at("index").get<std::size_t>();
        REQUIRE(received.count(i) == 0);  // each signature in exactly one message
        received[i] = from_base64(s.at("signature").get<std::string>());
      }
    }
    killer.join();
    agent.stop(SIGKILL);
  }
  INFO("killed " << delay_ms << " ms after the batch was sent; the page got " << received.size());
  for (const auto& [i, sig] : received) {
    INFO("item " << i);
    REQUIRE(
        openssl_verify(cred.cert_der, SignAlgorithm::RsaPkcs1Sha256, item_digest(items[i]), sig));
  }

  REQUIRE(kyso::test::sqlite_integrity(state / "audit.db") == "ok");
  audit_verifies(state, "after the kill");
  const auto rows = read_audit(state / "audit.db");
  std::map<std::size_t, int> ok_rows;
  for (std::size_t k = 0; k < rows.size(); ++k) {
    INFO("row " << rows[k].seq);
    REQUIRE(rows[k].whole);
    REQUIRE(rows[k].seq == static_cast<std::int64_t>(k + 1));
    if (rows[k].event != "signature" || rows[k].result != "ok") continue;
    const auto it = index_of.find(rows[k].digest);
    if (it != index_of.end()) ++ok_rows[it->second];
  }
  std::size_t last_received = 0;
  for (const auto& [i, sig] : received) {
    INFO("received item " << i);
    REQUIRE(ok_rows.count(i) == 1);
    last_received = std::max(last_received, i);
  }
  for (const auto& [i, n] : ok_rows) {
    INFO("audited item " << i);
    REQUIRE(n == 1);
    if (received.count(i) == 0) {
      REQUIRE((received.empty() || i > last_received));
      ++audited_not_received;
    }
  }

  // The agent starts again on that state and signs; the log still verifies.
  {
    AgentProcess agent(state);
    Client c(agent.port);
    const auto r =
        c.call("batch.sign", {{"role", "principal"},
                              {"credentialId", cred.credential_id()},
                              {"items", {hash_item("after round " + std::to_string(round))}}});
    INFO(r.dump());
    REQUIRE(r["result"]["signed"] == 1);
  }
  audit_verifies(state, "after the restart");
  return received.size();
}

}  // namespace

TEST_CASE("crash_kill9AtRandomPointsOfABatch_auditVerifiesAndMatchesWhatThePageGot",
          "[ws][crash]") {
  const auto& f = fixture();
  pinentry_script("ok", f.user_pin);
  ::setenv("KYSO_FAULT_SIGN_DELAY_US", "5000", 1);  // the agent's token signs slowly: room to kill
  const char* env = std::getenv("KYSO_CRASH_REPEATS");
  const int repeats = env != nullptr ? std::max(1, std::atoi(env)) : 3;
  const char* seed_env = std::getenv("KYSO_CRASH_SEED");
  const auto seed = seed_env != nullptr ? static_cast<unsigned>(std::strtoul(seed_env, nullptr, 10))
                                        : std::random_device{}();
  std::printf("agent crash test: KYSO_CRASH_SEED=%u, %d kills\n", seed, repeats);
  std::fflush(stdout);
  std::mt19937 rng(seed);
  std::string tmpl = (std::filesystem::temp_directory_path() / "kyso-crash-XXXXXX").string();
  REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
  const std::filesystem::path state = std::filesystem::path(tmpl) / "state";
  std::size_t total_received = 0;
  std::size_t total_unreceived = 0;
  for (int round = 0; round < repeats; ++round) {
    INFO("round " << round << " of " << repeats << ", KYSO_CRASH_SEED=" << seed);
    total_received += kill_mid_batch(state, rng, round, total_unreceived);
  }
  WARN(repeats << " kills (seed " << seed << "): " << total_received
               << " signatures received, all audited; " << total_unreceived
               << " audited but not received (committed just before the kill)");
  ::unsetenv("KYSO_FAULT_SIGN_DELAY_US");
  std::filesystem::remove_all(tmpl);
}
