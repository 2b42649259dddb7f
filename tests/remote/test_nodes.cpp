// Several kyso-appliance processes on one PostgreSQL database, behind HAProxy, as a province runs
// them (docs/appliance-scaling.md): every part real and started here (initdb/pg_ctl as an
// unprivileged account, HAProxy and the nodes on free loopback ports, a SoftHSM token copy per
// node). What must hold across nodes: a SAD authorized on one node signs on another; the same SAD
// raced on two nodes is consumed exactly once; a node killed mid-batch or PostgreSQL restarted
// mid-batch costs the client retries, never a hash signed twice or outside the approval.

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "child.hpp"
#include "fixture.hpp"
#include "harness.hpp"
#include "kyso/appliance/state_store.hpp"
#include "kyso/core/error.hpp"
#include "kyso/remote/remote_signer.hpp"
#include "postgres_cluster.hpp"

using namespace kyso;
using namespace kyso::test;
using namespace kyso::test::remote;
using kyso::remote::CscAdapter;
using kyso::remote::CscClient;
using kyso::remote::RemoteSigner;
namespace fs = std::filesystem;

namespace {

void must(const std::string& cmd) {
  const auto [rc, out] = run(cmd + " 2>&1");
  if (rc != 0) throw std::runtime_error("failed (" + std::to_string(rc) + "): " + cmd + "\n" + out);
}

// N nodes on one database behind HAProxy (TCP mode: TLS passed through to the nodes; health
// check GET /health over TLS, which probes each node's HSM and the database).
class Province {
 public:
  explicit Province(int nodes) {
    static int n = 0;
    dir_ = env().dir + "/province" + std::to_string(++n);
    fs::create_directories(dir_);
    db_ = PgCluster::get().new_database();
    const std::string first = dir_ + "/node1";
    must("KYSO_REMOTE_STATE_DB='" + db_ + "' " + KYSO_PREPARE_APPLIANCE + " " + KYSO_APPLIANCE_EXE +
         " " + first + " " + fixture().dir);
    for (int k = 1; k <= nodes; ++k) {
      const std::string d = dir_ + "/node" + std::to_string(k);
      if (k > 1) {
        must("cp -a " + first + " " + d + " && rm -rf " + d + "/tokens && cp -a " + fixture().dir +
             "/tokens " + d + "/tokens");
        std::ofstream(d + "/softhsm2.conf") << "directories.tokendir = " << d
                                            << "/tokens\nobjectstore.backend = file\n"
                                               "log.level = ERROR\n";
      }
      std::error_code ec;
      fs::remove(d + "/port", ec);
      nodes_.push_back(std::make_unique<Child>(
          std::vector<std::string>{KYSO_APPLIANCE_EXE, "--config", d + "/appliance.toml",
                                   "--port-file", d + "/port"},
          std::vector<std::string>{"SOFTHSM2_CONF=" + d + "/softhsm2.conf"}, d + "/log"));
    }
    for (int k = 1; k <= nodes; ++k) {
      ports_.push_back(wait_port_file(dir_ + "/node" + std::to_string(k) + "/port"));
    }
    start_haproxy();
  }

  [[nodiscard]] const std::string& db() const { return db_; }
  [[nodiscard]] kyso::remote::ClientOptions via_balancer() const { return options(lb_port_); }
  [[nodiscard]] kyso::remote::ClientOptions node(std::size_t k) const {
    return options(ports_.at(k));
  }
  void kill_node(std::size_t k) { nodes_.at(k)->stop(SIGKILL); }
  /// Lines of node k's JSON log for `target` answered with `status`.
  [[nodiscard]] std::size_t answered(std::size_t k, const std::string& target, int status) const {
    std::ifstream in(dir_ + "/node" + std::to_string(k + 1) + "/log");
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("target", "") == target && j.value("status", 0) == status) ++n;
    }
    return n;
  }
  std::shared_ptr<CscClient> login(const kyso::remote::ClientOptions& o) const {
    auto c = std::make_shared<CscClient>(o);
    c->login("principal", secret(kPrincipalPassword));
    return c;
  }

 private:
  kyso::remote::ClientOptions options(std::uint16_t port) const {
    kyso::remote::ClientOptions o;
    o.base_url = "https://127.0.0.1:" + std::to_string(port) + "/csc/v2";
    o.ca_file = dir_ + "/node1/ca.crt";
    o.request_timeout = std::chrono::seconds(30);
    // unavailable_wait: the default (30 s), as the agent runs it.
    return o;
  }

  void start_haproxy() {
    for (int attempt = 0; attempt < 3; ++attempt) {
      lb_port_ = static_cast<std::uint16_t>(free_loopback_port());
      std::ofstream cfg(dir_ + "/haproxy.cfg");
      cfg << "global\n  maxconn 512\n"
             "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 60s\n"
             "  timeout server 60s\n  retries 3\n  option redispatch\n"
             "frontend csc\n  bind 127.0.0.1:"
          << lb_port_
          << "\n  default_backend nodes\n"
             // "first": every connection to node 1 while it is up, so the tests know which
             // node carries the batch.
             "backend nodes\n  balance first\n  option httpchk\n"
             "  http-check send meth GET uri /health ver HTTP/1.1 hdr Host localhost\n"
             "  http-check expect status 200\n";
      for (std::size_t k = 0; k < ports_.size(); ++k) {
        cfg << "  server n" << k + 1 << " 127.0.0.1:" << ports_[k]
            << " check check-ssl verify none inter 300 fall 2 rise 1\n";
      }
      cfg.close();
      haproxy_ = std::make_unique<Child>(
          std::vector<std::string>{"/usr/sbin/haproxy", "-db", "-f", dir_ + "/haproxy.cfg"},
          std::vector<std::string>{}, dir_ + "/haproxy.log");
      for (int i = 0; i < 100; ++i) {
        try {
          CscClient probe(via_balancer());
          (void)probe.info();
          return;
        } catch (const Error&) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      }
      haproxy_.reset();
    }
    throw std::runtime_error("HAProxy did not come up; see " + dir_ + "/haproxy.log");
  }

  std::string dir_;
  std::string db_;
  std::vector<std::unique_ptr<Child>> nodes_;
  std::vector<std::uint16_t> ports_;
  std::unique_ptr<Child> haproxy_;
  std::uint16_t lb_port_ = 0;
};

std::vector<Bytes> random_digests(std::size_t count) {
  std::vector<Bytes> out;
  for (std::size_t i = 0; i < count; ++i) {
    Bytes d(32);
    REQUIRE(RAND_bytes(d.data(), 32) == 1);
    out.push_back(std::move(d));
  }
  return out;
}

std::string credential_id() {
  return fixture().credential("principal").credential_id();
}

std::size_t signed_in_audit(const std::string& db) {
  std::size_t total = 0;
  for (const auto& e : kyso::appliance::open_state_store(db, false)->audit_log()) {
    if (e.event == "sign") total += std::stoul(e.detail.substr(e.detail.find(", ") + 2));
  }
  return total;
}

}  // namespace

TEST_CASE("nodes_sadAuthorizedOnNode1_signsOnNode2", "[csc][nodes]") {
  Province p(2);
  auto one = p.login(p.node(0));
  CscClient two(p.node(1));
  two.set_access_token(one->access_token());  // the bearer is a row in PostgreSQL
  OtpSource otp(kPrincipalTotp);
  const Secret pin = secret(fixture().user_pin);
  const Secret code = otp.next();
  const auto digests = random_digests(3);
  const auto sad = one->authorize(credential_id(), digests, HashAlgorithm::Sha256, &pin, &code).sad;
  const auto sigs = two.sign_hash(credential_id(), sad, digests, SignAlgorithm::RsaPkcs1Sha256);
  REQUIRE(sigs.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(openssl_verify(fixture().credential("principal").cert_der, SignAlgorithm::RsaPkcs1Sha256,
                         digests[i], sigs[i]));
  }
  // Signed once, whichever node is asked next.
  const std::vector<Bytes> first{digests[0]};
  CHECK_THROWS(one->sign_hash(credential_id(), sad, first, SignAlgorithm::RsaPkcs1Sha256));
  CHECK_FALSE(kyso::appliance::open_state_store(p.db(), false)->verify_audit_chain().has_value());
}

TEST_CASE("nodes_sameSadRacedOnTwoNodes_exactlyOneWins", "[csc][nodes][security]") {
  Province p(2);
  auto one = p.login(p.node(0));
  auto two = std::make_shared<CscClient>(p.node(1));
  two->set_access_token(one->access_token());
  OtpSource otp(kPrincipalTotp);
  const Secret pin = secret(fixture().user_pin);
  for (int round = 0; round < 5; ++round) {
    const Secret code = otp.next();
    const auto digests = random_digests(50);
    const auto sad =
        one->authorize(credential_id(), digests, HashAlgorithm::Sha256, &pin, &code).sad;
    std::atomic<int> wins{0};
    std::atomic<int> refused{0};
    auto race = [&](CscClient& c) {
      try {
        (void)c.sign_hash(credential_id(), sad, digests, SignAlgorithm::RsaPkcs1Sha256);
        ++wins;
      } catch (const Error& e) {
        if (e.detail().find("invalid_request") != std::string::npos) ++refused;
      }
    };
    std::thread a([&] { race(*one); });
    std::thread b([&] { race(*two); });
    a.join();
    b.join();
    CHECK(wins == 1);
    CHECK(refused == 1);
  }
  CHECK(signed_in_audit(p.db()) == 5 * 50);
  CHECK_FALSE(kyso::appliance::open_state_store(p.db(), false)->verify_audit_chain().has_value());
}

namespace {

// A principal's 2,000-hash batch through the balancer with Kyso's CSC client (the agent's), and
// `disrupt` called once the third chunk is back.
constexpr const char* kSignHash = "/csc/v2/signatures/signHash";

// Returns the chunks (of 20) back when `disrupt` had returned: fewer than 20 means the batch was
// still running when the node died or the database came back.
std::size_t batch_through_balancer(Province& p, const std::function<void()>& disrupt) {
  auto client = p.login(p.via_balancer());
  auto adapter = std::make_shared<CscAdapter>("province", client);
  const auto creds = adapter->credentials();
  REQUIRE(creds.size() == 1);
  RemoteSigner signer(adapter, creds.front());
  const auto digests = random_digests(2000);
  OtpSource otp(kPrincipalTotp);
  const Secret pin = secret(fixture().user_pin);
  const Secret code = otp.next();
  signer.authorize({.pin = &pin, .otp = &code}, digests);
  std::atomic<int> chunks{0};
  std::atomic<int> chunks_after{0};
  std::thread disruptor;
  kyso::remote::SignControl control;
  control.chunk_done = [&](std::size_t, std::span<const SignResult>) {
    if (++chunks == 3) {
      disruptor = std::thread([&] {
        disrupt();
        chunks_after = chunks.load();
      });
    }
  };
  const auto results =
      signer.sign_digests(SignAlgorithm::RsaPkcs1Sha256, digests, SignatureEncoding::Der, control);
  if (disruptor.joinable()) disruptor.join();
  REQUIRE(chunks >= 3);
  std::size_t ok = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    if (!results[i].ok()) continue;
    ++ok;
    CHECK(openssl_verify(creds.front().cert.der, SignAlgorithm::RsaPkcs1Sha256, digests[i],
                         results[i].signature));
  }
  CHECK(ok == digests.size());  // the batch completed
  // Every approved hash taken exactly once in the shared state (a retried request takes its own
  // hashes again under its request id, never another's), ...
  const auto& pg = PgCluster::get();
  const auto [rc, taken] =
      pg.psql(pg.admin_url(p.db()),
              "SELECT count(*) || ' ' || count(*) FILTER (WHERE signed) || ' ' "
              "|| count(DISTINCT hash) FROM txn_hashes");
  CHECK(rc == 0);
  CHECK(taken == "2000 2000 2000\n");
  // ... the audit rows count every signature the nodes gave out: at least the batch, and at most
  // the requests in flight when the node or the database went away (2 lanes of 100) again, ...
  const std::size_t audited = signed_in_audit(p.db());
  CHECK(audited >= digests.size());
  CHECK(audited <= digests.size() + 200);
  // ... and the nodes' rows form one intact chain.
  CHECK_FALSE(kyso::appliance::open_state_store(p.db(), false)->verify_audit_chain().has_value());
  return static_cast<std::size_t>(chunks_after.load());
}

}  // namespace

TEST_CASE("nodes_node1KilledMidBatch_clientRetriesOnAnotherNodeEveryHashOnce", "[csc][nodes]") {
  Province p(3);
  const std::size_t chunks_at_kill = batch_through_balancer(p, [&] { p.kill_node(0); });
  CHECK(chunks_at_kill < 20);
  // Node 1 carried the start of the batch ("balance first"), the others the rest.
  CHECK(p.answered(0, kSignHash, 200) >= 3);
  CHECK(p.answered(1, kSignHash, 200) + p.answered(2, kSignHash, 200) > 0);
}

TEST_CASE("nodes_postgresRestartedMidBatch_batchResumesEveryHashOnce", "[csc][nodes]") {
  Province p(2);
  const std::size_t chunks_at_restart = batch_through_balancer(p, [] {
    PgCluster::get().stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    PgCluster::get().start();
  });
  CHECK(chunks_at_restart < 20);
  // The nodes answered "temporarily unavailable" while the database was away; the client
  // re-sent those requests (same request ids) once it was back.
  CHECK(p.answered(0, kSignHash, 503) + p.answered(1, kSignHash, 503) > 0);
  WARN("chunks back when PostgreSQL was up again: " << chunks_at_restart);
}
