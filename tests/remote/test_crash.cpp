// Crash consistency of kyso-appliance and its state store (issue 17, item 4): the appliance, a
// real process on its SQLite state (the default), is killed with SIGKILL at a random point of a
// batch of signHash requests (two lanes of 100 hashes, as the agent's CSC client sends them),
// then started again on the same state. Each time:
//  - the state file is whole (SQLite `PRAGMA integrity_check`) and the audit chain verifies
//    (`kyso-appliance verify-audit`, as IT runs it);
//  - every signature the client received verifies (OpenSSL), its hashes are marked signed, and
//    the audit's `sign` rows count it: nothing left the appliance unaudited;
//  - each request was taken whole or not at all (all of its hashes marked signed, or none), and
//    the audit counts no more signatures than the requests taken: a request taken but not
//    answered (killed while it signed) was either audited and lost on the way (at most the
//    requests in flight) or not audited and not signed;
//  - after the restart the same SAD and bearer still work, but only for the hashes no request
//    took: every hash the client received, or whose request was taken before the kill, is
//    refused (no SAD signs a hash twice), and the rest of the batch signs.
// Every other round the client retries as the agent's does (the same request id, while the
// service cannot be reached, for up to 30 s) and the appliance is started again at once on the
// same port: the batch then completes across the kill, every hash signed once for the client,
// and the audit counts at most the requests in flight twice (taken again by their own retry).
// KYSO_CRASH_REPEATS (default 3) kills per run, KYSO_CRASH_SEED replays one;
// tests/remote/crash-loop.sh runs 50 in a row.

#include <openssl/rand.h>
#include <sqlite3.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "child.hpp"
#include "fixture.hpp"
#include "harness.hpp"
#include "kyso/appliance/state_store.hpp"
#include "kyso/core/error.hpp"
#include "sqlite_integrity.hpp"

using namespace kyso;
using namespace kyso::test;
using namespace kyso::test::remote;
using kyso::remote::CscClient;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kChunk = 100;        // the profile's multisign
constexpr std::size_t kChunks = 10;        // one batch: 1,000 hashes
constexpr std::size_t kLanes = 2;          // requests in flight, as the agent's RemoteSigner
constexpr std::size_t kApproval = 10'000;  // one PIN + OTP: transaction_signatures' default
constexpr auto kApprovalAge = 4min;        // a SAD lives 5 minutes

std::string credential_id() {
  return fixture().credential("principal").credential_id();
}

/// The appliance's directory, prepared once: token copy, TLS, profile; its state in state.db.
/// Its HSM is the fault module over SoftHSM, slowed to 1 ms a signature: room to kill.
const std::string& appliance_dir() {
  static const std::string dir = [] {
    const std::string d = env().dir + "/crash-appliance";
    fs::remove_all(d);
    const auto [rc, out] =
        run("KYSO_REMOTE_MODULE='" + fixture().fault_module + "' " + KYSO_PREPARE_APPLIANCE + " " +
            KYSO_APPLIANCE_EXE + " " + d + " " + fixture().dir + " 2>&1");
    INFO(out);
    REQUIRE(rc == 0);
    // One port for every start, so that a retrying client finds the restarted process.
    const std::string port = std::to_string(free_loopback_port());
    REQUIRE(run("sed -i 's/^listen = \"127.0.0.1:0\"/listen = \"127.0.0.1:" + port + "\"/' '" + d +
                "/appliance.toml'")
                .first == 0);
    REQUIRE(
        run("grep -q '^listen = \"127.0.0.1:" + port + "\"' '" + d + "/appliance.toml'").first ==
        0);
    return d;
  }();
  return dir;
}

std::unique_ptr<Child> start_appliance(std::uint16_t& port) {
  const std::string& d = appliance_dir();
  std::error_code ec;
  fs::remove(d + "/port", ec);
  auto child = std::make_unique<Child>(
      std::vector<std::string>{KYSO_APPLIANCE_EXE, "--config", d + "/appliance.toml", "--port-file",
                               d + "/port"},
      std::vector<std::string>{"SOFTHSM2_CONF=" + d + "/softhsm2.conf",
                               "KYSO_FAULT_SIGN_DELAY_US=1000"},
      d + "/log");
  port = wait_port_file(d + "/port");
  return child;
}

/// `retrying`: as the agent's client (re-sends a signHash with its request id while the service
/// cannot be reached, 30 s); otherwise a request the kill cut is not re-sent, so that the test
/// sees what the dead process left.
kyso::remote::ClientOptions options(std::uint16_t port, bool retrying = false) {
  kyso::remote::ClientOptions o;
  o.base_url = "https://127.0.0.1:" + std::to_string(port) + "/csc/v2";
  o.ca_file = appliance_dir() + "/ca.crt";
  o.request_timeout = 20s;
  if (!retrying) {
    o.retries = 0;
    o.unavailable_wait = 0ms;
  }
  return o;
}

/// How many of `hashes` the state marks signed.
std::size_t marked_signed(const std::string& db, std::span<const Bytes> hashes) {
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h, "SELECT signed FROM txn_hashes WHERE hash = ?", -1, &st, nullptr) ==
          SQLITE_OK);
  std::size_t n = 0;
  for (const auto& hash : hashes) {
    sqlite3_bind_blob(st, 1, hash.data(), static_cast<int>(hash.size()), SQLITE_TRANSIENT);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);  // every approved hash has its row
    if (sqlite3_column_int(st, 0) != 0) ++n;
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return n;
}

/// Signatures the audit's `sign` rows count ("credential principal, 100 signatures, ...").
std::size_t audited_signatures(const std::string& db) {
  std::size_t total = 0;
  for (const auto& e : kyso::appliance::open_state_store(db, false)->audit_log()) {
    if (e.event == "sign") total += std::stoul(e.detail.substr(e.detail.find(", ") + 2));
  }
  return total;
}

void audit_verifies(const std::string& db, const std::string& when) {
  const auto [rc, out] = run(std::string(KYSO_APPLIANCE_EXE) + " verify-audit --db '" + db + "'");
  INFO(when << ": " << out);
  REQUIRE(rc == 0);
}

struct Approval {
  std::string sad;
  std::vector<Bytes> hashes;
  std::size_t next = 0;
  std::chrono::steady_clock::time_point at;
};

enum class Outcome { NotSent, Received, Failed };

struct Totals {
  std::size_t retried_rounds = 0;      // rounds whose batch completed across the kill
  std::size_t audited_twice = 0;       // retried requests audited by the dead and the new process
  std::size_t received = 0;            // signatures the client got before the kills
  std::size_t audited_unanswered = 0;  // audited, taken, answer lost in the kill
  std::size_t taken_unaudited = 0;     // taken, killed before its signatures and row
  std::size_t after_restart = 0;       // signed by the restarted appliance
};

void kill_mid_batch(std::mt19937& rng, OtpSource& otp, std::string& bearer, Approval& approval,
                    Totals& totals, bool retrying) {
  const std::string db = appliance_dir() + "/state.db";
  const auto& cert = fixture().credential("principal").cert_der;
  const auto alg = SignAlgorithm::RsaPkcs1Sha256;
  std::uint16_t port = 0;
  auto app = start_appliance(port);
  CscClient client(options(port));
  if (bearer.empty()) {
    client.login("principal", secret(kPrincipalPassword));
    bearer = client.access_token();
  } else {
    client.set_access_token(bearer);  // the bearer outlives the process: it is a row
  }
  if (approval.next + kChunk * kChunks > approval.hashes.size() ||
      std::chrono::steady_clock::now() - approval.at > kApprovalAge) {
    approval = {};
    for (std::size_t i = 0; i < kApproval; ++i) {
      Bytes d(32);
      REQUIRE(RAND_bytes(d.data(), 32) == 1);
      approval.hashes.push_back(std::move(d));
    }
    const Secret pin = secret(fixture().user_pin);
    const Secret code = otp.next();
    approval.sad =
        client.authorize(credential_id(), approval.hashes, HashAlgorithm::Sha256, &pin, &code).sad;
    approval.at = std::chrono::steady_clock::now();
  }
  std::vector<std::vector<Bytes>> chunks;
  for (std::size_t k = 0; k < kChunks; ++k) {
    const auto first = approval.hashes.begin() + static_cast<std::ptrdiff_t>(approval.next);
    chunks.emplace_back(first, first + kChunk);
    approval.next += kChunk;
  }
  const std::size_t audited_before = audited_signatures(db);

  // The batch: lane l sends chunks l, l + kLanes, ... one after another, until one fails.
  std::vector<Outcome> outcome(kChunks, Outcome::NotSent);
  std::vector<std::vector<Bytes>> got(kChunks);
  std::vector<std::string> why(kChunks);
  std::vector<std::thread> lanes;
  const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1200)(rng));
  for (std::size_t l = 0; l < kLanes; ++l) {
    lanes.emplace_back([&, l] {
      auto lane = std::make_unique<CscClient>(options(port, retrying));
      lane->set_access_token(bearer);
      for (std::size_t k = l; k < kChunks; k += kLanes) {
        try {
          got[k] = lane->sign_hash(credential_id(), approval.sad, chunks[k], alg);
          outcome[k] = Outcome::Received;
        } catch (const Error& e) {
          outcome[k] = Outcome::Failed;
          why[k] = std::string(e.name()) + ": " + e.detail();
          return;
        }
      }
    });
  }
  std::this_thread::sleep_for(delay);
  app->stop(SIGKILL);
  INFO("killed " << delay.count() << " ms into the batch" << (retrying ? ", client retrying" : ""));
  if (retrying) {
    // Started again at once: the lanes' retries (same request ids) reach the new process.
    app = start_appliance(port);
    for (auto& t : lanes) t.join();
    REQUIRE(kyso::test::sqlite_integrity(db) == "ok");
    std::size_t received = 0;
    for (std::size_t k = 0; k < kChunks; ++k) {
      INFO("chunk " << k << ": " << why[k]);
      REQUIRE(outcome[k] == Outcome::Received);  // the batch completed across the kill
      REQUIRE(got[k].size() == kChunk);
      for (std::size_t i = 0; i < kChunk; ++i) {
        REQUIRE(openssl_verify(cert, alg, chunks[k][i], got[k][i]));
      }
      REQUIRE(marked_signed(db, chunks[k]) == kChunk);
      received += kChunk;
      // No second use of the SAD for these hashes under another request id.
      try {
        (void)client.sign_hash(credential_id(), approval.sad, chunks[k], alg);
        FAIL("a signed hash was signed again");
      } catch (const Error& e) {
        REQUIRE(e.detail().find("invalid_request") != std::string::npos);
      }
    }
    const std::size_t audited = audited_signatures(db) - audited_before;
    INFO("received " << received << ", audited " << audited);
    REQUIRE(audited >= received);
    REQUIRE(audited - received <= kLanes * kChunk);  // requests in flight, retaken by their retry
    totals.received += received;
    totals.audited_twice += audited - received;
    ++totals.retried_rounds;
    app->stop(SIGTERM);
    REQUIRE(kyso::test::sqlite_integrity(db) == "ok");
    audit_verifies(db, "after the retried batch");
    return;
  }
  for (auto& t : lanes) t.join();

  // What the dead process left.
  REQUIRE(kyso::test::sqlite_integrity(db) == "ok");
  audit_verifies(db, "after the kill");
  std::size_t received = 0;
  std::size_t taken = 0;
  std::size_t unanswered = 0;  // requests in flight at the kill
  std::vector<bool> was_taken(kChunks);
  for (std::size_t k = 0; k < kChunks; ++k) {
    INFO("chunk " << k);
    const std::size_t marked = marked_signed(db, chunks[k]);
    REQUIRE((marked == 0 || marked == kChunk));  // a request is taken whole or not at all
    was_taken[k] = marked == kChunk;
    if (was_taken[k]) taken += kChunk;
    if (outcome[k] == Outcome::Received) {
      REQUIRE(was_taken[k]);
      REQUIRE(got[k].size() == kChunk);
      for (std::size_t i = 0; i < kChunk; ++i)
        REQUIRE(openssl_verify(cert, alg, chunks[k][i], got[k][i]));
      received += kChunk;
    } else if (outcome[k] == Outcome::NotSent) {
      REQUIRE_FALSE(was_taken[k]);
    } else if (was_taken[k]) {
      ++unanswered;
    }
  }
  const std::size_t audited = audited_signatures(db) - audited_before;
  INFO("received " << received << ", taken " << taken << ", audited " << audited);
  REQUIRE(audited >= received);                        // every signature received is audited
  REQUIRE(audited <= taken);                           // nothing audited that no request took
  REQUIRE(audited - received <= unanswered * kChunk);  // the rest: answers lost in the kill
  totals.received += received;
  totals.audited_unanswered += audited - received;
  totals.taken_unaudited += taken - audited;

  // Restarted on the same state: the bearer and the SAD still work, for untaken hashes only.
  app = start_appliance(port);
  CscClient again(options(port));
  again.set_access_token(bearer);
  std::size_t signed_now = 0;
  for (std::size_t k = 0; k < kChunks; ++k) {
    INFO("chunk " << k << " after the restart");
    if (was_taken[k]) {
      try {
        (void)again.sign_hash(credential_id(), approval.sad, chunks[k], alg);
        FAIL("a hash taken before the kill was signed again");
      } catch (const Error& e) {
        REQUIRE(e.detail().find("invalid_request") != std::string::npos);
      }
    } else {
      const auto sigs = again.sign_hash(credential_id(), approval.sad, chunks[k], alg);
      REQUIRE(sigs.size() == kChunk);
      for (std::size_t i = 0; i < kChunk; ++i)
        REQUIRE(openssl_verify(cert, alg, chunks[k][i], sigs[i]));
      signed_now += kChunk;
    }
    REQUIRE(marked_signed(db, chunks[k]) == kChunk);
  }
  REQUIRE(audited_signatures(db) - audited_before == audited + signed_now);
  totals.after_restart += signed_now;
  app->stop(SIGTERM);
  REQUIRE(kyso::test::sqlite_integrity(db) == "ok");
  audit_verifies(db, "after the restart");
}

}  // namespace

TEST_CASE("crash_applianceKilledMidBatch_stateWholeEveryHashOnceAuditMatches", "[csc][crash]") {
  const char* env_n = std::getenv("KYSO_CRASH_REPEATS");
  const int repeats = env_n != nullptr ? std::max(1, std::atoi(env_n)) : 3;
  const char* seed_env = std::getenv("KYSO_CRASH_SEED");
  const auto seed = seed_env != nullptr ? static_cast<unsigned>(std::strtoul(seed_env, nullptr, 10))
                                        : std::random_device{}();
  std::printf("appliance crash test: KYSO_CRASH_SEED=%u, %d kills\n", seed, repeats);
  std::fflush(stdout);
  std::mt19937 rng(seed);
  OtpSource otp(kPrincipalTotp);
  std::string bearer;
  Approval approval;
  Totals totals;
  for (int round = 0; round < repeats; ++round) {
    INFO("round " << round << " of " << repeats << ", KYSO_CRASH_SEED=" << seed);
    kill_mid_batch(rng, otp, bearer, approval, totals, round % 2 == 1);
  }
  WARN(repeats << " kills (seed " << seed << "): " << totals.received
               << " signatures received, all audited; " << totals.audited_unanswered
               << " audited and lost in the kill; " << totals.taken_unaudited
               << " hashes taken but never signed (killed mid-request); " << totals.after_restart
               << " signed after the restarts, none twice; " << totals.retried_rounds
               << " batches completed across the kill by the client's retries ("
               << totals.audited_twice << " signatures audited twice: taken again by their retry)");
}
