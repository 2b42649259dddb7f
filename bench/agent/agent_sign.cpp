// bench/agent-sign: what the agent costs on top of the token.
//  - a 2,000-hash batch through kyso-agent over WebSocket vs the same hashes through raw PKCS#11
//    (C_SignInit + C_Sign on two sessions, as many as the batch uses) on the same SoftHSM token,
//    in the same run, for RSA-2048 and ECDSA P-256, with progress per item, every 100th item and
//    coalesced every 50 ms; best of N interleaved rounds; prints both rates and the ratio
//    (goal >= 0.90);
//  - p50/p99 of single `sign` round trips (approval + PIN by the scripted pinentry, one C_Login
//    each, as a user's every request needs);
//  - the agent's RSS when idle and with 100 connections open.
//
//   kyso-bench-agent-sign [--items N] [--singles N] [--rounds N] [--keys rsa,ec] [--dir DIR]
//                         [--agent BIN] [--modes item,every,interval,sigs]
//                         [--agent-wrapper "valgrind --tool=callgrind"]
// Without --dir it makes its own token with tests/pki/make-demo-token.sh in a temp dir.
// --modes runs some of the progress modes only (default all): item (an event per item, v1's
// default), every (progressEvery 100), interval (progressInterval 50 ms), sigs (and
// signaturesInEvents); e.g. `--modes item --agent-wrapper "valgrind --tool=callgrind"` for the
// agent's instructions per batch (difference of two --rounds).

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
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
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../common/agent_client.hpp"
#include "../common/agent_process.hpp"
#include "../common/raw_pkcs11.hpp"
#include "kyso/core/bytes.hpp"

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

/// CPU time of a process (all its threads, live and ended), in seconds.
double cpu_seconds(clockid_t clock) {
  timespec ts{};
  if (::clock_gettime(clock, &ts) != 0) throw std::runtime_error("clock_gettime");
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// kyso-agent's command line for the benchmark; `wrapper` (e.g. "valgrind --tool=callgrind")
/// runs in front of the agent, for profiling.
std::vector<std::string> agent_command(const std::filesystem::path& dir,
                                       const std::string& pinentry, const std::string& binary,
                                       const std::string& wrapper) {
  std::vector<std::string> args;
  for (std::size_t b = 0, e = 0; b < wrapper.size(); b = e + 1) {
    e = wrapper.find(' ', b);
    if (e == std::string::npos) e = wrapper.size();
    if (e > b) args.push_back(wrapper.substr(b, e - b));
  }
  const std::vector<std::string> agent_args{binary,
                                            "--port",
                                            "0",
                                            "--module",
                                            kModule,
                                            "--no-system-modules",
                                            "--pinentry",
                                            pinentry,
                                            "--state-dir",
                                            (dir / "agent-state").string(),
                                            "--allow-origin",
                                            kOrigin,
                                            "--log-level",
                                            "warn",
                                            "--max-connections",
                                            "128"};
  args.insert(args.end(), agent_args.begin(), agent_args.end());
  return args;
}

struct Client : kyso::bench::AgentClient {
  explicit Client(std::uint16_t port) : AgentClient(port, kOrigin) {}

  struct BatchRun {
    std::size_t events = 0;
    double cpu_seconds = 0;  ///< agent + this client, from the first event to the summary
    std::size_t done_at_first_event = 0;
    Clock::time_point first_event;
    Clock::time_point last_event;
    Clock::time_point summary;
    double summary_parse_ms = 0;     ///< this client's SAX scan of the summary
    std::size_t items_reported = 0;  ///< per-item results the events carried (see Scan)
    std::size_t signed_count = 0;    ///< the summary's "signed"
    std::size_t signatures = 0;  ///< non-empty "signature" strings in the events and the summary
    std::string error;
  };

  /// batch.sign: reads every progress event and the summary as a page would, with a SAX scan
  /// (no document tree): each event's done/from and signatures (signaturesInEvents), the
  /// summary's signed count and signatures.
  BatchRun batch(const json& req, clockid_t agent_cpu) {
    send(req);
    BatchRun run;
    double cpu0 = 0;
    for (;;) {
      ws.read(buf);
      const auto* p = static_cast<const char*>(buf.data().data());
      Scan scan;
      const auto parse0 = Clock::now();
      json::sax_parse(p, p + buf.size(), &scan);
      const auto parse1 = Clock::now();
      buf.consume(buf.size());
      if (scan.event) {
        if (run.events++ == 0) {
          run.first_event = Clock::now();
          cpu0 = cpu_seconds(agent_cpu) + cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
          run.done_at_first_event = scan.done;
        }
        run.last_event = Clock::now();
        // An event covers items from..done-1 (coalesced) or just one.
        run.items_reported += scan.done - (scan.has_from ? scan.from : scan.done - 1);
        run.signatures += scan.signatures;
        continue;
      }
      run.summary = Clock::now();
      run.summary_parse_ms = std::chrono::duration<double, std::milli>(parse1 - parse0).count();
      run.cpu_seconds = cpu_seconds(agent_cpu) + cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
      run.signed_count = scan.signed_count;
      run.signatures += scan.signatures;
      run.error = scan.error_code;
      return run;
    }
  }

  /// What the benchmark checks in a message, read with nlohmann's SAX interface.
  struct Scan final : nlohmann::json_sax<json> {
    bool event = false;
    bool has_from = false;
    std::size_t done = 0;
    std::size_t from = 0;
    std::size_t signed_count = 0;
    std::size_t signatures = 0;
    std::string error_code;
    std::vector<std::string> path;  // keys from the root
    std::string key_;

    [[nodiscard]] bool at(std::initializer_list<const char*> want) const {
      if (path.size() != want.size()) return false;
      std::size_t i = 0;
      for (const char* w : want) {
        if (path[i++] != w) return false;
      }
      return true;
    }
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t v) override {
      path.push_back(key_);
      if (at({"params", "done"})) done = v;
      if (at({"params", "from"})) {
        from = v;
        has_from = true;
      }
      if (at({"result", "signed"})) signed_count = v;
      path.pop_back();
      return true;
    }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t& v) override {
      if (path.empty() && key_ == "event") event = true;
      if (key_ == "signature" && !v.empty()) ++signatures;
      if (path.size() == 1 && path[0] == "error" && key_ == "code") error_code = v;
      return true;
    }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override {
      if (depth_++ > 0) path.push_back(key_);
      return true;
    }
    bool key(string_t& k) override {
      key_ = k;
      return true;
    }
    bool end_object() override {
      if (--depth_ > 0) path.pop_back();
      return true;
    }
    bool start_array(std::size_t) override {
      path.push_back(key_);
      ++depth_;
      return true;
    }
    bool end_array() override {
      path.pop_back();
      --depth_;
      return true;
    }
    bool parse_error(std::size_t, const std::string&,
                     const nlohmann::detail::exception& e) override {
      throw std::runtime_error(std::string("agent sent bad JSON: ") + e.what());
    }

   private:
    int depth_ = 0;
  };
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
  int rounds = 3;
  std::string keys = "rsa,ec";
  std::string dir_arg;
  std::string agent_bin = KYSO_AGENT_BIN;
  std::string wrapper;
  std::string mode_list = "item,every,interval,sigs";
  CLI::App app{
      "kyso-bench-agent-sign: a batch through kyso-agent over WebSocket against raw "
      "PKCS#11 C_Sign"};
  app.add_option("--dir", dir_arg,
                 "a token made by tests/pki/make-demo-token.sh (default: a new one)");
  app.add_option("--items", items, "hashes per batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--singles", singles, "single signs timed (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--rounds", rounds, "interleaved rounds, the best kept")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--keys", keys, "rsa, ec or both")->capture_default_str();
  app.add_option("--modes", mode_list, "progress modes: item, every, interval, sigs")
      ->capture_default_str();
  app.add_option("--agent", agent_bin, "the kyso-agent to run")->capture_default_str();
  app.add_option("--agent-wrapper", wrapper, "a profiler in front of the agent, e.g. valgrind");
  CLI11_PARSE(app, argc, argv);
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

    const kyso::bench::AgentProcess agent(agent_command(dir, pinentry, agent_bin, wrapper));
    ::sleep(1);
    const double idle_rss = agent.rss_mb();
    const kyso::bench::RawPkcs11 raw(kModule, "Kyso Demo ", kPin);
    const auto digests = make_digests(items);

    std::printf(
        "bench/agent-sign: %d-hash batch, kyso-agent over ws://127.0.0.1:%u vs raw PKCS#11 "
        "(SoftHSM2), best of %d interleaved rounds\n",
        items, agent.port(), rounds);
    std::printf("%-12s %14s %14s %8s\n", "key", "raw sig/s", "agent sig/s", "ratio");
    std::printf(
        "(raw: C_SignInit+C_Sign on 2 sessions, as many as the agent's batch uses; agent: "
        "signing phase of batch.sign, from the first progress event to the summary read and "
        "checked, approval excluded)\n");
    struct Key {
      const char* name;
      const char* cred;
      unsigned char id;
      CK_MECHANISM_TYPE mech;
    };
    // Ways a page can ask for progress: an event per item (v1's default), every 100th item
    // (progressEvery), coalesced events at most every 50 ms that still carry each item's result
    // (progressInterval), and those events carrying the items' signatures too, so that the
    // summary is small (signaturesInEvents; what the JS SDK asks for).
    struct Mode {
      const char* key;
      const char* name;
      json params;
    };
    const std::array<Mode, 4> all_modes{
        Mode{"item", "event per item", json::object()},
        Mode{"every", "progressEvery 100", {{"progressEvery", 100}}},
        Mode{"interval", "progressInterval 50ms", {{"progressInterval", 50}}},
        Mode{"sigs",
             "50ms + sigs in events",
             {{"progressInterval", 50}, {"signaturesInEvents", true}}}};
    std::vector<Mode> modes;
    for (const auto& m : all_modes) {
      if (("," + mode_list + ",").find(std::string(",") + m.key + ",") != std::string::npos) {
        modes.push_back(m);
      }
    }
    if (modes.empty()) throw std::runtime_error("--modes: none of item, every, interval, sigs");
    Client c(agent.port());
    const clockid_t agent_cpu = agent.cpu_clock();
    for (const Key& k : {Key{"RSA-2048", "teacher", 0x01, CKM_RSA_PKCS},
                         Key{"ECDSA P-256", "teacher-ec", 0x04, CKM_ECDSA}}) {
      if (keys.find(k.mech == CKM_RSA_PKCS ? "rsa" : "ec") == std::string::npos) continue;
      std::vector<kyso::Bytes> inputs;
      for (const auto& d : digests) {
        inputs.push_back(k.mech == CKM_RSA_PKCS ? digest_info_sha256(d) : d);
      }
      std::printf("%-12s raw PKCS#11 with 1 session (context): %.0f sig/s\n", k.name,
                  raw.run(k.id, k.mech, inputs));
      const std::string cred =
          kyso::to_hex(kyso::sha256(file_bytes(dir / "certs" / (std::string(k.cred) + ".der"))));
      json list = json::array();
      for (int i = 0; i < items; ++i) {
        list.push_back({{"type", "hash"},
                        {"hash", kyso::to_base64(digests[static_cast<std::size_t>(i)])},
                        {"hashAlgorithm", "sha256"},
                        {"title", "Học bạ số " + std::to_string(i)}});
      }
      struct Best {
        double phase_rate = 0;
        double end_to_end = 0;
        double cpu_per_sig = 1e9;
        Client::BatchRun run;
      };
      std::vector<Best> best(modes.size());
      double raw_rate = 0;
      double raw_cpu_per_sig = 1e9;
      for (int round = 0; round < rounds; ++round) {
        // The baseline uses the same two sessions the agent's batch signs on; measured next to
        // each agent run so that both see the same machine.
        const double cpu0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
        raw_rate = std::max(raw_rate, raw.run(k.id, k.mech, inputs, 2));
        raw_cpu_per_sig =
            std::min(raw_cpu_per_sig, (cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / items);
        for (std::size_t mi = 0; mi < modes.size(); ++mi) {
          const Mode& m = modes[mi];
          json params = {{"role", "teacher"}, {"credentialId", cred}, {"items", list}};
          params.update(m.params);
          const auto t0 = Clock::now();
          auto run = c.batch({{"id", std::string("batch-") + k.cred + "-" + std::to_string(round) +
                                         "-" + std::to_string(mi)},
                              {"method", "batch.sign"},
                              {"params", params}},
                             agent_cpu);
          const auto t1 = Clock::now();
          if (!run.error.empty() || run.signed_count != static_cast<std::size_t>(items) ||
              run.signatures != static_cast<std::size_t>(items)) {
            throw std::runtime_error("batch failed: " + run.error + ", signed " +
                                     std::to_string(run.signed_count));
          }
          const double phase = std::chrono::duration<double>(t1 - run.first_event).count();
          const double phase_rate =
              static_cast<double>(static_cast<std::size_t>(items) - run.done_at_first_event) /
              phase;
          const double end_to_end = items / std::chrono::duration<double>(t1 - t0).count();
          const double cpu_per_sig =
              run.cpu_seconds /
              static_cast<double>(static_cast<std::size_t>(items) - run.done_at_first_event);
          if (phase_rate > best[mi].phase_rate) {
            best[mi] = {phase_rate, end_to_end, std::min(cpu_per_sig, best[mi].cpu_per_sig), run};
          } else {
            best[mi].cpu_per_sig = std::min(cpu_per_sig, best[mi].cpu_per_sig);
          }
        }
      }
      for (std::size_t mi = 0; mi < modes.size(); ++mi) {
        const auto& b = best[mi];
        std::printf(
            "%-12s %14.0f %14.0f %8.2f   %-22s %4zu events (%4zu item results); CPU per "
            "signature %.1f us vs raw %.1f us (%.2f); last event to summary %.1f ms (its "
            "parse %.1f ms); end to end incl. dialog+login %.0f sig/s (%.2f)\n",
            k.name, raw_rate, b.phase_rate, b.phase_rate / raw_rate, modes[mi].name, b.run.events,
            b.run.items_reported, b.cpu_per_sig * 1e6, raw_cpu_per_sig * 1e6,
            raw_cpu_per_sig / b.cpu_per_sig,
            std::chrono::duration<double, std::milli>(b.run.summary - b.run.last_event).count(),
            b.run.summary_parse_ms, b.end_to_end, b.end_to_end / raw_rate);
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
    if (!rtt.empty()) {
      std::printf(
          "single sign round trip (pinentry approval + PIN + C_Login + C_Sign + C_Logout): "
          "p50 %.1f ms, p99 %.1f ms over %d\n",
          percentile(rtt, 0.50), percentile(rtt, 0.99), singles);
    }

    std::vector<std::unique_ptr<Client>> many;
    for (int i = 0; i < 100; ++i) {
      many.push_back(std::make_unique<Client>(agent.port()));
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
