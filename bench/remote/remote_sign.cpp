// bench/remote-sign: N hashes (default 2,000) to kyso-appliance (HTTPS on loopback, in this
// process) -> SoftHSM2, two ways, each against raw PKCS#11 C_Sign on the same key of the same
// token in the same run, with as many sessions as the appliance signs with:
//  - agent: a batch.sign through kyso-agent (a child process, as users run it, configured with
//    the appliance as a [[remote]] service) over WebSocket, the scripted pinentry typing the
//    password, the PIN and a TOTP: what a principal's batch costs end to end;
//  - client: Kyso's CSC client (RemoteSigner) in this process, no agent.
// Prints the rates, the ratios remote/raw (goal >= 0.75) and the HTTP round trips counted by the
// appliance (goal <= 2 per multisign chunk + a constant); then the CPU seconds each part spends
// per batch (raw, the appliance's threads, the agent, the page or client, PostgreSQL's processes
// with --db-pid), the appliance threads' context switches and, with --state-db, the database
// round trips.
//
//   kyso-bench-remote-sign --dir DIR [--hashes N] [--multisign M] [--threads T] [--rounds R]
//                          [--pipeline K]
// DIR is a token made by tests/pki/make-demo-token.sh (bench/run-all.sh makes one). --pipeline
// sets the client row's connections with chunks in flight (default 2, the agent's).
//
//   kyso-bench-remote-sign --dir DIR --url URL --ca FILE [--hashes N] [--pipeline K] ...
// One client run against a service already running: the multi-node mode, driven by
// bench/remote/multi-node.sh (1..N nodes on PostgreSQL behind HAProxy, a slowed HSM).

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../common/agent_process.hpp"
#include "../common/raw_pkcs11.hpp"
#include "kyso/appliance/appliance.hpp"
#include "kyso/appliance/security.hpp"
#include "kyso/appliance/state_store.hpp"
#include "kyso/core/bytes.hpp"
#include "kyso/core/random.hpp"
#include "kyso/remote/remote_signer.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr const char* kModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kTotp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using json = nlohmann::json;
constexpr const char* kAgentTotp = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
constexpr const char* kOrigin = "https://bench.example.edu.vn";

void sh(const std::string& cmd) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) {
    throw std::runtime_error("failed: " + cmd);
  }
}

kyso::Secret secret(std::string_view s) {
  kyso::Secret out;
  out.assign(s);
  return out;
}

/// The page: a WebSocket client that waits for a response and counts the events before it.
struct Page {
  net::io_context ioc;
  websocket::stream<net::ip::tcp::socket> ws{ioc};
  beast::flat_buffer buf;
  explicit Page(std::uint16_t port) {
    ws.next_layer().connect({net::ip::address_v4::loopback(), port});
    ws.set_option(websocket::stream_base::decorator(
        [](websocket::request_type& r) { r.set(beast::http::field::origin, kOrigin); }));
    ws.read_message_max(64UL * 1024 * 1024);
    ws.handshake("127.0.0.1:" + std::to_string(port), "/");
  }
  json call(const json& req, std::size_t* events) {
    ws.text(true);
    ws.write(net::buffer(req.dump()));
    for (;;) {
      ws.read(buf);
      json m = json::parse(beast::buffers_to_string(buf.data()));
      buf.consume(buf.size());
      if (m.contains("event")) {
        ++*events;
        continue;
      }
      if (m["id"] == req["id"]) return m;
    }
  }
};

/// When the scripted pinentry answered its last dialog (the OTP), as a system_clock time.
double last_dialog_at(const std::string& log) {
  std::ifstream in(log);
  double at = 0;
  for (std::string l; std::getline(in, l);) {
    const auto p = l.find(" at=");
    if (p != std::string::npos) at = std::stod(l.substr(p + 4));
  }
  return at;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::ranges::sort(v);
  return v[v.size() / 2];
}

double clock_seconds(clockid_t clock) {
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) return 0;
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// This process's threads now, the main one left out.
std::vector<pid_t> own_threads() {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc/self/task")) {
    const pid_t tid = static_cast<pid_t>(std::stol(e.path().filename().string()));
    if (tid != ::getpid()) out.push_back(tid);
  }
  return out;
}

/// CPU seconds of each thread of this process but the main one (the kernel's per-thread CPU
/// clock of a tid): the appliance's io, worker and signing threads and the PKCS#11 watchdog's.
std::map<pid_t, double> threads_cpu() {
  std::map<pid_t, double> out;
  for (const pid_t tid : own_threads()) {
    out[tid] = clock_seconds(static_cast<clockid_t>((~static_cast<clockid_t>(tid) << 3) | 6));
  }
  return out;
}

/// Voluntary context switches of this process's threads but the main one (each hand-off of a
/// call to another thread costs one; load-independent, unlike CPU time on a shared machine).
std::map<pid_t, double> threads_switches() {
  std::map<pid_t, double> out;
  for (const pid_t tid : own_threads()) {
    std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/status");
    for (std::string l; std::getline(in, l);) {
      if (l.starts_with("voluntary_ctxt_switches:")) out[tid] = std::stod(l.substr(24));
    }
  }
  return out;
}

/// What the threads alive at `after` spent since `before` (a thread born meanwhile from 0; one
/// that ended meanwhile, a client lane, is not the appliance's and not counted).
double threads_delta(const std::map<pid_t, double>& before, const std::map<pid_t, double>& after) {
  double sum = 0;
  for (const auto& [tid, cpu] : after) {
    const auto it = before.find(tid);
    sum += cpu - (it == before.end() ? 0.0 : it->second);
  }
  return sum;
}

/// CPU seconds of a process tree one level deep (PostgreSQL's postmaster and its backends), from
/// /proc/PID/schedstat (nanoseconds on a CPU); 0 without a pid.
double tree_cpu(pid_t root) {
  if (root <= 0) return 0;
  double sum = 0;
  auto add = [&](const std::string& pid) {
    std::ifstream in("/proc/" + pid + "/schedstat");
    double ns = 0;
    if (in >> ns) sum += ns * 1e-9;
  };
  add(std::to_string(root));
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in("/proc/" + name + "/stat");
    std::string line;
    std::getline(in, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == root) add(name);
  }
  return sum;
}

/// CPU seconds by part, sampled before and after a batch.
struct CpuSample {
  double process = 0;  // this process: the appliance, the page or the client, raw C_Sign
  std::map<pid_t, double> threads;   // the appliance's (HTTPS, JSON, state store, C_Sign)
  std::map<pid_t, double> switches;  // the same threads' voluntary context switches
  double agent = 0;                  // the kyso-agent child
  double database = 0;  // PostgreSQL's processes (0 on SQLite: in the appliance's threads)
};

}  // namespace

// One client run against a service already running (several nodes behind HAProxy, started by
// bench/remote/multi-node.sh, users as tests/remote/prepare-appliance.sh makes them): login,
// one authorization for every hash, signHash on `pipeline` connections. Prints one line:
// "client <sig/s> raw <sig/s>", raw being C_Sign on `threads` sessions of `raw_module` (the
// same slowed HSM one node has) in this process, with the key the service signs with: the
// principal's RSA-3072 (CKA_ID 02), the credential prepare-appliance.sh gives the user. (Until
// 2026-12-02 the raw side signed with the teacher's RSA-2048 key, 01, about 3.4 times cheaper.)
constexpr unsigned char kPrincipalKeyId = 0x02;  // tests/pki/make-demo-token.sh

static int client_run(const std::string& url, const std::string& ca, const std::string& pin,
                      int hashes, std::size_t pipeline, unsigned threads,
                      const std::string& raw_module) {
  std::vector<kyso::Bytes> digests(static_cast<std::size_t>(hashes), kyso::Bytes(32));
  for (auto& d : digests) kyso::random_bytes(std::span(d.data(), 32));
  kyso::remote::ClientOptions opts;
  opts.base_url = url;
  opts.ca_file = ca;
  const auto start = Clock::now();
  auto client = std::make_shared<kyso::remote::CscClient>(opts);
  client->login("principal", secret("mật khẩu hiệu trưởng"));
  auto adapter = std::make_shared<kyso::remote::CscAdapter>("bench", client, pipeline);
  kyso::remote::RemoteSigner signer(adapter, adapter->credentials().front());
  const kyso::Secret key_pin = secret(pin);
  const kyso::Secret otp = secret(kyso::appliance::totp_generate(kTotp, std::time(nullptr)));
  signer.authorize({.pin = &key_pin, .otp = &otp}, digests);
  const auto results = signer.sign_digests(kyso::SignAlgorithm::RsaPkcs1Sha256, digests);
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto& x : results) {
    if (!x.ok()) throw *x.error;
  }
  double raw_rate = 0;
  if (!raw_module.empty()) {
    const kyso::bench::RawPkcs11 raw(raw_module.c_str(), "Kyso Demo ", pin);
    static const std::array<unsigned char, 19> kPrefix = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                                          0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                                          0x01, 0x05, 0x00, 0x04, 0x20};
    std::vector<std::vector<unsigned char>> inputs;
    for (const auto& d : digests) {
      inputs.emplace_back(kPrefix.begin(), kPrefix.end());
      inputs.back().insert(inputs.back().end(), d.begin(), d.end());
    }
    raw_rate = raw.run(kPrincipalKeyId, CKM_RSA_PKCS, inputs, static_cast<int>(threads));
  }
  std::printf("client %.1f raw %.1f\n", hashes / secs, raw_rate);
  return 0;
}

int main(int argc, char** argv) {
  std::string dir;
  std::string url_mode;
  std::string ca_mode;
  std::size_t pipeline = 2;
  std::string raw_module;
  std::string state_db;
  pid_t db_pid = 0;
  int hashes = 2000;
  std::size_t multisign = 100;
  unsigned threads = 2;
  int rounds = 3;
  CLI::App app{
      "kyso-bench-remote-sign: a batch through kyso-appliance (and kyso-agent) against "
      "raw PKCS#11 C_Sign"};
  app.add_option("--dir", dir, "a token made by tests/pki/make-demo-token.sh")->required();
  app.add_option("--hashes", hashes, "hashes per batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--multisign", multisign, "hashes per signHash request")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--threads", threads, "the appliance's HSM sessions (and raw's)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--rounds", rounds, "paired rounds, the median kept")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--pipeline", pipeline, "the client's chunks in flight")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--state-db", state_db, "the appliance's state: a postgresql:// URL");
  app.add_option("--db-pid", db_pid, "PostgreSQL's postmaster, for its processes' CPU");
  app.add_option("--url", url_mode, "one client run against a running service (multi-node.sh)");
  app.add_option("--ca", ca_mode, "with --url: the service's CA certificate");
  app.add_option("--raw-module", raw_module, "with --url: the PKCS#11 module raw C_Sign uses");
  CLI11_PARSE(app, argc, argv);
  try {
    ::setenv("SOFTHSM2_CONF", (dir + "/softhsm2.conf").c_str(), 1);
    std::string pin;
    std::ifstream(dir + "/pin.txt") >> pin;
    if (!url_mode.empty())
      return client_run(url_mode, ca_mode, pin, hashes, pipeline, threads, raw_module);
    std::ifstream der_in(dir + "/certs/teacher.der", std::ios::binary);
    const kyso::Bytes der{std::istreambuf_iterator<char>(der_in), std::istreambuf_iterator<char>()};
    const std::string cred_id = kyso::to_hex(kyso::sha256(der));

    // TLS for the appliance: a throw-away CA and a loopback certificate.
    std::string tmp = (fs::temp_directory_path() / "kyso-bench-remote.XXXXXX").string();
    if (mkdtemp(tmp.data()) == nullptr) throw std::runtime_error("mkdtemp");
    struct Cleanup {
      std::string d;
      ~Cleanup() {
        std::error_code ec;
        fs::remove_all(d, ec);
      }
    } cleanup{tmp};
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=ca"
       " -keyout " +
       tmp + "/ca.key -out " + tmp + "/ca.crt");
    sh("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1"
       " -keyout " +
       tmp + "/tls.key -out " + tmp + "/tls.csr");
    std::ofstream(tmp + "/san.ext") << "subjectAltName=IP:127.0.0.1\n";
    sh("openssl x509 -req -in " + tmp + "/tls.csr -CA " + tmp + "/ca.crt -CAkey " + tmp +
       "/ca.key -CAcreateserial -days 1 -extfile " + tmp + "/san.ext -out " + tmp + "/tls.crt");

    kyso::appliance::ApplianceConfig cfg;
    cfg.port = 0;
    cfg.tls_cert_file = tmp + "/tls.crt";
    cfg.tls_key_file = tmp + "/tls.key";
    cfg.pkcs11_modules = {kModule};
    // The appliance's state: a SQLite file (one node, the default) or an empty, migrated
    // PostgreSQL database (bench/remote/postgres.sh).
    cfg.state_db = state_db.empty() ? tmp + "/state.db" : state_db;
    // Two users with the same credential and their own TOTP secrets, so the in-process client
    // and the agent never present the same time step (the appliance accepts each once).
    const std::string agent_password = "mật khẩu bench";
    cfg.users = {
        {"bench", kyso::appliance::hash_password(secret("bench-pw"), 12), kTotp, {cred_id}},
        {"bench-agent",
         kyso::appliance::hash_password(secret(agent_password), 12),
         kAgentTotp,
         {cred_id}}};
    cfg.limits.multisign = multisign;
    cfg.limits.sign_threads = threads;
    cfg.limits.totp_window = 2 + static_cast<unsigned>(rounds);
    kyso::appliance::Appliance appliance(cfg);
    appliance.start();
    const std::string url = "https://127.0.0.1:" + std::to_string(appliance.port()) + "/csc/v2";

    kyso::remote::ClientOptions opts;
    opts.base_url = url;
    opts.ca_file = tmp + "/ca.crt";

    // The agent: no token, the appliance as its remote service; the scripted pinentry types the
    // password, the PIN and a TOTP (oathtool) like the principal would.
    std::ofstream(tmp + "/kyso-agent.toml")
        << "[[remote]]\nname = \"bench appliance\"\nurl = \"" << url
        << "\"\nusername = \"bench-agent\"\nca_file = \"" << tmp << "/ca.crt\"\n";
    const std::string dialogs = tmp + "/pinentry.log";
    ::setenv("KYSO_PINENTRY_ACTION", "ok", 1);
    ::setenv("KYSO_PINENTRY_PIN", pin.c_str(), 1);
    ::setenv("KYSO_PINENTRY_PASSWORD", agent_password.c_str(), 1);
    ::setenv("KYSO_PINENTRY_TOTP", kAgentTotp, 1);
    ::setenv("KYSO_PINENTRY_OTP_STEPS", (tmp + "/otp-steps").c_str(), 1);
    ::setenv("KYSO_PINENTRY_LOG", dialogs.c_str(), 1);
    const kyso::bench::AgentProcess agent(
        {KYSO_AGENT_BIN, "--config", tmp + "/kyso-agent.toml", "--port", "0", "--no-system-modules",
         "--pinentry", std::string(KYSO_SOURCE_DIR) + "/tests/agent/scripted-pinentry.sh",
         "--state-dir", tmp + "/agent-state", "--allow-origin", kOrigin, "--log-level", "warn"});
    Page page(agent.port());
    const clockid_t agent_clock = agent.cpu_clock();
    auto sample = [&] {
      return CpuSample{clock_seconds(CLOCK_PROCESS_CPUTIME_ID), threads_cpu(), threads_switches(),
                       clock_seconds(agent_clock), tree_cpu(db_pid)};
    };
    // Per round: raw, then agent (appliance, agent, page, database) and client (appliance,
    // client, database) CPU seconds for the whole batch.
    struct CpuRound {
      double raw, a_app, a_agent, a_page, a_db, c_app, c_client, c_db, c_switches;
    };
    std::vector<CpuRound> cpu_rounds;

    const kyso::bench::RawPkcs11 raw(kModule, "Kyso Demo ", pin);
    std::vector<kyso::Bytes> digests(static_cast<std::size_t>(hashes), kyso::Bytes(32));
    const std::size_t chunks = (static_cast<std::size_t>(hashes) + multisign - 1) / multisign;
    std::printf(
        "bench/remote-sign: %d hashes, RSA-2048 rsa-sha256, SoftHSM2, multisign %zu (%zu chunks), "
        "appliance signing on %u sessions, its state on %s; raw = C_SignInit+C_Sign on %u "
        "sessions; %d rounds\n",
        hashes, multisign, chunks, threads, state_db.empty() ? "SQLite" : "PostgreSQL", threads,
        rounds);
    std::printf(
        "agent:  page -> kyso-agent (WebSocket, batch.sign, a progress event per item) -> "
        "kyso-appliance (HTTPS) -> SoftHSM2, timed from the OTP dialog's answer to the summary\n"
        "client: CscClient/RemoteSigner in this process -> kyso-appliance, timed from login to "
        "the last signature\n");
    std::printf("%-6s %10s %10s %7s %12s %6s %10s %7s %6s\n", "round", "raw sig/s", "agent",
                "ratio", "agent+dialog", "trips", "client", "ratio", "trips");
    // Per round: the fraction of the timed window the appliance's HSM sessions spent signing
    // (1.0: never idle; what is missing is time a session waited for work).
    std::vector<double> agent_busy;
    std::vector<double> client_busy;
    std::vector<double> agent_ratios;
    std::vector<double> client_ratios;
    std::vector<double> raws;
    std::vector<double> agents;
    std::vector<double> clients;
    std::size_t agent_trips = 0;
    std::size_t agent_first_trips = 0;
    std::size_t client_trips = 0;
    std::uint64_t agent_db_trips = 0;  // PostgreSQL round trips of the last batch
    std::uint64_t client_db_trips = 0;
    std::vector<std::vector<unsigned char>> inputs(static_cast<std::size_t>(hashes));
    auto make_inputs = [&] {
      // CKM_RSA_PKCS over DigestInfo(SHA-256) || digest: what rsa-sha256 over a hash needs.
      static const std::array<unsigned char, 19> kPrefix = {
          0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
          0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
      for (std::size_t i = 0; i < digests.size(); ++i) {
        kyso::random_bytes(std::span(digests[i].data(), 32));
        inputs[i].assign(kPrefix.begin(), kPrefix.end());
        inputs[i].insert(inputs[i].end(), digests[i].begin(), digests[i].end());
      }
    };
    make_inputs();
    (void)raw.run(0x01, CKM_RSA_PKCS,
                  std::vector<std::vector<unsigned char>>(inputs.begin(), inputs.begin() + 100),
                  static_cast<int>(threads));  // warm up the key and sessions
    for (int r = 0; r < rounds; ++r) {
      make_inputs();
      const double raw_cpu0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
      const double raw_rate = raw.run(0x01, CKM_RSA_PKCS, inputs, static_cast<int>(threads));
      const double raw_cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - raw_cpu0;

      // Through the agent, as the page does it: one batch.sign, one approval + PIN, one OTP.
      json items = json::array();
      for (std::size_t i = 0; i < digests.size(); ++i) {
        items.push_back({{"type", "hash"},
                         {"hash", kyso::to_base64(digests[i])},
                         {"hashAlgorithm", "sha256"},
                         {"title", "Học bạ số " + std::to_string(i + 1)}});
      }
      const std::uint64_t before = appliance.requests();
      const std::uint64_t db_before = appliance.store().round_trips();
      const double signing_before = appliance.signing_seconds();
      std::size_t events = 0;
      const double t0 = unix_now();
      const CpuSample a0 = sample();
      const json res = page.call({{"id", "batch-" + std::to_string(r)},
                                  {"method", "batch.sign"},
                                  {"params", {{"role", "teacher"}, {"items", std::move(items)}}}},
                                 &events);
      const double t1 = unix_now();
      const CpuSample a1 = sample();
      if (!res.contains("result") || res["result"]["signed"] != hashes) {
        throw std::runtime_error("agent batch failed: " + res.dump().substr(0, 400));
      }
      const std::size_t trips_a = appliance.requests() - before;
      agent_db_trips = appliance.store().round_trips() - db_before;
      (r == 0 ? agent_first_trips : agent_trips) = trips_a;
      const double after_otp = last_dialog_at(dialogs);
      const double agent_rate = hashes / (t1 - after_otp);
      agent_busy.push_back((appliance.signing_seconds() - signing_before) /
                           (threads * (t1 - after_otp)));
      const double agent_e2e = hashes / (t1 - t0);

      // The client alone: log in, list, one authorization, sign.
      const std::uint64_t before_c = appliance.requests();
      const std::uint64_t db_before_c = appliance.store().round_trips();
      const double signing_before_c = appliance.signing_seconds();
      const CpuSample c0 = sample();
      const auto start = Clock::now();
      auto client = std::make_shared<kyso::remote::CscClient>(opts);
      client->login("bench", secret("bench-pw"));
      auto adapter = std::make_shared<kyso::remote::CscAdapter>("bench", client, pipeline);
      kyso::remote::RemoteSigner signer(adapter, adapter->credentials().front());
      const kyso::Secret key_pin = secret(pin);
      const kyso::Secret otp =
          secret(kyso::appliance::totp_generate(kTotp, std::time(nullptr) + 30L * (r - 1)));
      signer.authorize({.pin = &key_pin, .otp = &otp}, digests);
      const auto results = signer.sign_digests(kyso::SignAlgorithm::RsaPkcs1Sha256, digests);
      const double secs = std::chrono::duration<double>(Clock::now() - start).count();
      const CpuSample c1 = sample();
      for (const auto& x : results) {
        if (!x.ok()) throw *x.error;
      }
      const double a_app = threads_delta(a0.threads, a1.threads);
      const double c_app = threads_delta(c0.threads, c1.threads);
      cpu_rounds.push_back({raw_cpu, a_app, a1.agent - a0.agent, (a1.process - a0.process) - a_app,
                            a1.database - a0.database, c_app, (c1.process - c0.process) - c_app,
                            c1.database - c0.database, threads_delta(c0.switches, c1.switches)});
      const double client_rate = hashes / secs;
      client_busy.push_back((appliance.signing_seconds() - signing_before_c) / (threads * secs));
      client_trips = appliance.requests() - before_c;
      client_db_trips = appliance.store().round_trips() - db_before_c;

      std::printf("%-6d %10.0f %10.0f %7.3f %12.0f %6zu %10.0f %7.3f %6zu\n", r + 1, raw_rate,
                  agent_rate, agent_rate / raw_rate, agent_e2e, trips_a, client_rate,
                  client_rate / raw_rate, client_trips);
      raws.push_back(raw_rate);
      agents.push_back(agent_rate);
      clients.push_back(client_rate);
      agent_ratios.push_back(agent_rate / raw_rate);
      client_ratios.push_back(client_rate / raw_rate);
    }
    // Each round pairs raw and remote back to back; the median of those ratios is the least
    // sensitive to other load on the machine.
    std::printf(
        "median  raw %.0f sig/s | agent -> appliance %.0f sig/s, ratio %.3f | client -> "
        "appliance %.0f sig/s, ratio %.3f   (goal >= 0.75)\n",
        median(raws), median(agents), median(agent_ratios), median(clients), median(client_ratios));
    // CPU seconds per batch, load-independent: what the 2 cores spend, whoever else runs.
    std::printf(
        "CPU seconds per %d-hash batch (median of rounds; the appliance's include its C_Sign):\n"
        "%-6s %7s | %9s %7s %7s %7s %7s %6s | %9s %7s %7s %7s %6s\n",
        hashes, "round", "raw", "appliance", "agent", "page", "db", "total", "raw/", "appliance",
        "client", "db", "total", "raw/");
    std::vector<double> agent_cpu_ratios;
    std::vector<double> client_cpu_ratios;
    for (std::size_t r = 0; r < cpu_rounds.size(); ++r) {
      const auto& c = cpu_rounds[r];
      const double at = c.a_app + c.a_agent + c.a_page + c.a_db;
      const double ct = c.c_app + c.c_client + c.c_db;
      agent_cpu_ratios.push_back(c.raw / at);
      client_cpu_ratios.push_back(c.raw / ct);
      std::printf(
          "%-6zu %7.3f | %9.3f %7.3f %7.3f %7.3f %7.3f %6.3f | %9.3f %7.3f %7.3f %7.3f %6.3f\n",
          r + 1, c.raw, c.a_app, c.a_agent, c.a_page, c.a_db, at, c.raw / at, c.c_app, c.c_client,
          c.c_db, ct, c.raw / ct);
    }
    std::vector<double> switches;
    for (const auto& c : cpu_rounds) switches.push_back(c.c_switches);
    std::printf(
        "median CPU ratio raw/remote: agent %.3f, client %.3f; the appliance's threads switched "
        "context %.0f times per client batch (%.2f per signature)\n",
        median(agent_cpu_ratios), median(client_cpu_ratios), median(switches),
        median(switches) / hashes);
    std::printf(
        "HSM sessions busy (signing time / (%u sessions x the timed window)), median: agent %.3f, "
        "client %.3f (the client's window includes its login)\n",
        threads, median(agent_busy), median(client_busy));
    // A batch after the first reuses the agent's sign-in; with one round there is none.
    const std::string agent_later =
        agent_trips == 0 ? std::string("(no second batch: --rounds 1)")
                         : std::to_string(agent_trips) + " = " + std::to_string(chunks) +
                               " signHash + " + std::to_string(agent_trips - chunks) +
                               " (authorize with every hash; credentials/list + info: session "
                               "check)";
    std::printf(
        "HTTP round trips (counted by the appliance), %zu chunks: agent %s, first batch %zu (+ "
        "info, auth/login); client %zu = %zu signHash + %zu (login, list, info, authorize)   "
        "(goal <= 2 per chunk + constant)\n",
        chunks, agent_later.c_str(), agent_first_trips, client_trips, chunks,
        client_trips - chunks);
    if (!state_db.empty()) {
      std::printf(
          "PostgreSQL round trips (counted by the appliance's store), last batch: agent %llu, "
          "client %llu (%.1f per signHash chunk with the batch's constant spread over them)\n",
          static_cast<unsigned long long>(agent_db_trips),
          static_cast<unsigned long long>(client_db_trips),
          static_cast<double>(client_db_trips) / static_cast<double>(chunks));
    }
    appliance.stop();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench/remote-sign: %s\n", e.what());
    return 1;
  }
}
