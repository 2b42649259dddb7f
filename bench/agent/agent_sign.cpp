// bench/agent-sign: what the agent costs on top of the token.
//  - a 2,000-hash batch through kyso-agent over WebSocket vs the same hashes through raw PKCS#11
//    (C_SignInit + C_Sign, one session) on the same SoftHSM token, in the same run, for RSA-2048
//    and ECDSA P-256; prints both rates and the ratio (goal >= 0.90);
//  - p50/p99 of single `sign` round trips (approval + PIN by the scripted pinentry, one C_Login
//    each, as a user's every request needs);
//  - the agent's RSS when idle and with 100 connections open.
//
//   kyso-bench-agent-sign [--items N] [--singles N] [--dir DIR]
// Without --dir it makes its own token with tests/pki/make-demo-token.sh in a temp dir.

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

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
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../common/raw_pkcs11.hpp"
#include "kyso/core/bytes.hpp"

extern char** environ;

namespace {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kModule = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kPin = "123456";
constexpr const char* kOrigin = "https://bench.example.edu.vn";

/// kyso-agent as a child process, as users run it.
struct AgentProcess {
  pid_t pid = -1;
  std::uint16_t port = 0;

  AgentProcess(const std::filesystem::path& dir, const std::string& pinentry) {
    std::array<int, 2> out{};
    if (::pipe(out.data()) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    const std::string state = (dir / "agent-state").string();
    std::vector<std::string> args{KYSO_AGENT_BIN, "--port",         "0",
                                  "--module",     kModule,          "--no-system-modules",
                                  "--pinentry",   pinentry,         "--state-dir",
                                  state,          "--allow-origin", kOrigin,
                                  "--log-level",  "warn",           "--max-connections",
                                  "128"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid, KYSO_AGENT_BIN, &fa, nullptr, argv.data(), environ) != 0) {
      throw std::runtime_error("cannot start kyso-agent");
    }
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    std::string line;
    char c = 0;
    while (::read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
    ::close(out[0]);
    const auto colon = line.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("kyso-agent did not start: " + line);
    port = static_cast<std::uint16_t>(std::stoi(line.substr(colon + 1)));
  }
  ~AgentProcess() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      int st = 0;
      ::waitpid(pid, &st, 0);
    }
  }
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;
  AgentProcess(AgentProcess&&) = delete;
  AgentProcess& operator=(AgentProcess&&) = delete;

  [[nodiscard]] double rss_mb() const {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string l; std::getline(in, l);) {
      if (l.starts_with("VmRSS:")) return std::stod(l.substr(6)) / 1024.0;
    }
    return -1;
  }
};

struct Client {
  net::io_context ioc;
  websocket::stream<tcp::socket> ws{ioc};
  beast::flat_buffer buf;
  Clock::time_point first_event;
  explicit Client(std::uint16_t port) {
    ws.next_layer().connect({net::ip::address_v4::loopback(), port});
    ws.set_option(websocket::stream_base::decorator(
        [](websocket::request_type& r) { r.set(beast::http::field::origin, kOrigin); }));
    ws.read_message_max(64UL * 1024 * 1024);
    ws.handshake("127.0.0.1:" + std::to_string(port), "/");
  }
  void send(const json& j) {
    ws.text(true);
    ws.write(net::buffer(j.dump()));
  }
  json read() {
    ws.read(buf);
    json j = json::parse(beast::buffers_to_string(buf.data()));
    buf.consume(buf.size());
    return j;
  }
  /// Sends and waits for the response; counts events on the way.
  json call(const json& req, std::size_t* events = nullptr) {
    send(req);
    for (;;) {
      json m = read();
      if (m.contains("event")) {
        if (events != nullptr && (*events)++ == 0) first_event = Clock::now();
        continue;
      }
      if (m["id"] == req["id"]) return m;
    }
  }
};

kyso::Bytes file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<kyso::Bytes> make_digests(int n) {
  std::vector<kyso::Bytes> out;
  for (int i = 0; i < n; ++i) {
    const std::string s = "Học bạ số " + std::to_string(i);
    out.push_back(kyso::sha256({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}));
  }
  return out;
}

kyso::Bytes digest_info_sha256(const kyso::Bytes& d) {
  static const std::uint8_t kPrefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                         0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  kyso::Bytes out(std::begin(kPrefix), std::end(kPrefix));
  out.insert(out.end(), d.begin(), d.end());
  return out;
}

double percentile(std::vector<double> v, double p) {
  std::ranges::sort(v);
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  int items = 2000;
  int singles = 50;
  std::string dir_arg;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--items")
      items = std::stoi(argv[i + 1]);
    else if (a == "--singles")
      singles = std::stoi(argv[i + 1]);
    else if (a == "--dir")
      dir_arg = argv[i + 1];
  }
  try {
    std::filesystem::path dir = dir_arg;
    bool own = false;
    if (dir.empty()) {
      std::string tmpl =
          (std::filesystem::temp_directory_path() / "kyso-bench-agent-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp");
      dir = std::filesystem::path(tmpl) / "token";
      own = true;
      const std::string cmd = std::string(KYSO_SOURCE_DIR) + "/tests/pki/make-demo-token.sh " +
                              dir.string() + " 2>/dev/null";
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("make-demo-token.sh failed");
    }
    ::setenv("SOFTHSM2_CONF", (dir / "softhsm2.conf").c_str(), 1);
    // The scripted pinentry approves and types the PIN, as a user would.
    ::setenv("KYSO_PINENTRY_ACTION", "ok", 1);
    ::setenv("KYSO_PINENTRY_PIN", kPin, 1);
    const std::string pinentry = std::string(KYSO_SOURCE_DIR) + "/tests/agent/scripted-pinentry.sh";

    AgentProcess agent(dir, pinentry);
    ::sleep(1);
    const double idle_rss = agent.rss_mb();
    const kyso::bench::RawPkcs11 raw(kModule, "Kyso Demo ", kPin);
    const auto digests = make_digests(items);

    std::printf(
        "bench/agent-sign: %d-hash batch, kyso-agent over ws://127.0.0.1:%u vs raw PKCS#11 "
        "(SoftHSM2)\n",
        items, agent.port);
    std::printf("%-12s %14s %14s %8s\n", "key", "raw sig/s", "agent sig/s", "ratio");
    std::printf(
        "(raw: C_SignInit+C_Sign on 2 sessions, as many as the agent's batch uses; agent: "
        "signing phase of batch.sign, approval excluded)\n");
    struct Key {
      const char* name;
      const char* cred;
      unsigned char id;
      CK_MECHANISM_TYPE mech;
    };
    Client c(agent.port);
    for (const Key& k : {Key{"RSA-2048", "teacher", 0x01, CKM_RSA_PKCS},
                         Key{"ECDSA P-256", "teacher-ec", 0x04, CKM_ECDSA}}) {
      std::vector<kyso::Bytes> inputs;
      for (const auto& d : digests) {
        inputs.push_back(k.mech == CKM_RSA_PKCS ? digest_info_sha256(d) : d);
      }
      // The baseline uses the same two sessions the agent's batch signs on.
      std::printf("%-12s raw PKCS#11 with 1 session (context): %.0f sig/s\n", k.name,
                  raw.run(k.id, k.mech, inputs));
      const double raw_rate = raw.run(k.id, k.mech, inputs, 2);
      const std::string cred =
          kyso::to_hex(kyso::sha256(file_bytes(dir / "certs" / (std::string(k.cred) + ".der"))));
      json list = json::array();
      for (int i = 0; i < items; ++i) {
        list.push_back({{"type", "hash"},
                        {"hash", kyso::to_base64(digests[static_cast<std::size_t>(i)])},
                        {"hashAlgorithm", "sha256"},
                        {"title", "Học bạ số " + std::to_string(i)}});
      }
      for (const int every : {1, 100}) {
        std::size_t events = 0;
        json params = {{"role", "teacher"}, {"credentialId", cred}, {"items", list}};
        if (every > 1) params["progressEvery"] = every;
        const auto t0 = Clock::now();
        const json r = c.call({{"id", std::string("batch-") + k.cred + std::to_string(every)},
                               {"method", "batch.sign"},
                               {"params", params}},
                              &events);
        const auto t1 = Clock::now();
        const double secs = std::chrono::duration<double>(t1 - t0).count();
        if (!r.contains("result") || r["result"]["signed"] != items) {
          throw std::runtime_error("batch failed: " + r.dump().substr(0, 400));
        }
        const double agent_rate = items / secs;
        // Signing phase: from the first progress event to the summary (approval excluded).
        const double phase = std::chrono::duration<double>(t1 - c.first_event).count();
        const double phase_rate = (every == 1 ? items - 1 : items - every) / phase;
        std::printf(
            "%-12s %14.0f %14.0f %8.2f   events every %3d item(s): %4zu; end to end incl. "
            "dialog+login %.0f sig/s (%.2f)\n",
            k.name, raw_rate, phase_rate, phase_rate / raw_rate, every, events, agent_rate,
            agent_rate / raw_rate);
      }
    }

    std::vector<double> rtt;
    for (int i = 0; i < singles; ++i) {
      const auto& d = digests[static_cast<std::size_t>(i)];
      const auto t0 = Clock::now();
      const json item = {{"type", "hash"},
                         {"hash", kyso::to_hex(d)},
                         {"hashAlgorithm", "sha256"},
                         {"title", "Học bạ"}};
      const json params = {{"role", "teacher"}, {"item", item}};
      const json r = c.call({{"id", i}, {"method", "sign"}, {"params", params}});
      if (!r.contains("result")) throw std::runtime_error("sign failed: " + r.dump());
      rtt.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::printf(
        "single sign round trip (pinentry approval + PIN + C_Login + C_Sign + C_Logout): "
        "p50 %.1f ms, p99 %.1f ms over %d\n",
        percentile(rtt, 0.50), percentile(rtt, 0.99), singles);

    std::vector<std::unique_ptr<Client>> many;
    for (int i = 0; i < 100; ++i) {
      many.push_back(std::make_unique<Client>(agent.port));
      many.back()->call({{"id", 1}, {"method", "hello"}, {"params", json::object()}});
    }
    std::printf("agent RSS: idle %.1f MB (goal < 15), with 100 connections %.1f MB\n", idle_rss,
                agent.rss_mb());
    many.clear();
    if (own) std::filesystem::remove_all(dir.parent_path());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench/agent-sign: %s\n", e.what());
    return 1;
  }
  return 0;
}
