// bench/token-speed: what kyso-agent adds on a token as slow as a real one. The fault module
// (tests/fault-module) wraps the SoftHSM2 demo token and makes every RSA-2048 signature take
// --delay-ms (150 ms by default, a USB token's order) on one chip at a time, for the agent and
// for the baseline alike:
//  - a --items (40) hash batch through kyso-agent over WebSocket, timed from the approval (the
//    scripted pinentry's answer) to the summary, against the token's own time for the same
//    signatures (C_SignInit + C_Sign in a loop through the same module, same delay): the
//    agent's added time per item and in all, as a share of the token's (goal <= 1%);
//  - single `sign` requests: from the approval to the response, against the token's own time
//    for one C_Login + C_SignInit + C_Sign + C_Logout (goal <= 5 ms added).
// The dialog's own time (the pinentry program starting and answering) is printed apart: a
// person takes seconds there.
//
//   kyso-bench-token-speed [--items N] [--singles N] [--rounds N] [--delay-ms MS] [--dir DIR]

#include <p11-kit/pkcs11.h>
#include <CLI/CLI.hpp>

#include <dlfcn.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
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

constexpr const char* kPin = "123456";
constexpr const char* kOrigin = "https://bench.example.edu.vn";

double wall_now() {  // the scripted pinentry logs `date +%s.%N`
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// The time the scripted pinentry answered its last dialog (unix seconds).
double last_approval(const std::filesystem::path& log) {
  std::ifstream in(log);
  double at = 0;
  for (std::string line; std::getline(in, line);) {
    if (const auto p = line.find(" at="); p != std::string::npos)
      at = std::stod(line.substr(p + 4));
  }
  if (at == 0) throw std::runtime_error("no dialog in " + log.string());
  return at;
}

double median(std::vector<double> v) {
  std::ranges::sort(v);
  return v[v.size() / 2];
}

kyso::Bytes file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// One C_OpenSession + C_Login + C_SignInit + C_Sign + C_Logout + C_CloseSession, raw: the
/// token's own part of a single sign. Returns seconds.
double raw_single(const char* module, const std::vector<unsigned char>& input) {
  void* h = dlopen(module, RTLD_NOW | RTLD_NOLOAD);
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"));
  CK_FUNCTION_LIST* f = nullptr;
  kyso::bench::check_rv(get(&f), "C_GetFunctionList");
  CK_ULONG n = 0;
  kyso::bench::check_rv(f->C_GetSlotList(CK_TRUE, nullptr, &n), "C_GetSlotList");
  std::vector<CK_SLOT_ID> slots(n);
  kyso::bench::check_rv(f->C_GetSlotList(CK_TRUE, slots.data(), &n), "C_GetSlotList");
  CK_SLOT_ID slot = slots.at(0);
  for (auto s : slots) {
    CK_TOKEN_INFO ti{};
    f->C_GetTokenInfo(s, &ti);
    if (std::string_view(reinterpret_cast<const char*>(ti.label), 10) == "Kyso Demo ") slot = s;
  }
  const auto t0 = Clock::now();
  CK_SESSION_HANDLE s = 0;
  kyso::bench::check_rv(f->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s),
                        "C_OpenSession");
  kyso::bench::check_rv(
      f->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(kPin)), 6),
      "C_Login");
  unsigned char id = 0x01;
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, &id, 1}};
  CK_OBJECT_HANDLE key = 0;
  CK_ULONG found = 0;
  f->C_FindObjectsInit(s, tmpl, 2);
  f->C_FindObjects(s, &key, 1, &found);
  f->C_FindObjectsFinal(s);
  CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
  unsigned char sig[512];
  CK_ULONG len = sizeof sig;
  kyso::bench::check_rv(f->C_SignInit(s, &mech, key), "C_SignInit");
  kyso::bench::check_rv(f->C_Sign(s, const_cast<unsigned char*>(input.data()),
                                  static_cast<CK_ULONG>(input.size()), sig, &len),
                        "C_Sign");
  f->C_Logout(s);
  f->C_CloseSession(s);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::vector<unsigned char> digest_info_sha256(const kyso::Bytes& d) {
  std::vector<unsigned char> v{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                               0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
  v.insert(v.end(), d.begin(), d.end());
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int items = 40;
  int singles = 10;
  int rounds = 3;
  int delay_ms = 150;
  std::string dir_arg;
  CLI::App app{"kyso-bench-token-speed: the agent on a token as slow as a USB one"};
  app.add_option("--dir", dir_arg, "a token made by tests/pki/make-demo-token.sh")->required();
  app.add_option("--items", items, "items in the batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--singles", singles, "single signs timed")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--rounds", rounds, "rounds")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--delay-ms", delay_ms, "the slowed chip's time per signature")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (dir_arg.empty()) throw std::runtime_error("--dir DIR (a token from make-demo-token.sh)");
    const std::filesystem::path dir = dir_arg;
    const std::filesystem::path state = dir / "token-speed";
    std::filesystem::remove_all(state);
    std::filesystem::create_directories(state);
    // The same slow token for the agent (a child process) and the baseline (this process).
    ::setenv("SOFTHSM2_CONF", (dir / "softhsm2.conf").c_str(), 1);
    const std::string preset =
        "sign_delay_us=" + std::to_string(delay_ms * 1000) + ",sign_serial=1";
    ::setenv("KYSO_FAULT_PRESET", preset.c_str(), 1);
    ::setenv("KYSO_PINENTRY_ACTION", "ok", 1);
    ::setenv("KYSO_PINENTRY_PIN", kPin, 1);
    const auto pinentry_log = state / "pinentry.log";
    ::setenv("KYSO_PINENTRY_LOG", pinentry_log.c_str(), 1);

    const kyso::bench::AgentProcess agent(
        {KYSO_AGENT_BIN, "--port", "0", "--module", KYSO_FAULT_MODULE, "--no-system-modules",
         "--pinentry", std::string(KYSO_SOURCE_DIR) + "/tests/agent/scripted-pinentry.sh",
         "--state-dir", (state / "agent").string(), "--allow-origin", kOrigin, "--log-level",
         "warn"});
    const kyso::bench::RawPkcs11 raw(KYSO_FAULT_MODULE, "Kyso Demo ", kPin);
    kyso::bench::AgentClient c(agent.port(), kOrigin);
    const std::string cred = kyso::to_hex(kyso::sha256(file_bytes(dir / "certs" / "teacher.der")));

    std::vector<kyso::Bytes> digests;
    std::vector<std::vector<unsigned char>> inputs;
    json list = json::array();
    for (int i = 0; i < items; ++i) {
      const std::string doc = "Học bạ số " + std::to_string(i);
      digests.push_back(
          kyso::sha256({reinterpret_cast<const std::uint8_t*>(doc.data()), doc.size()}));
      inputs.push_back(digest_info_sha256(digests.back()));
      list.push_back({{"type", "hash"},
                      {"hash", kyso::to_base64(digests.back())},
                      {"hashAlgorithm", "sha256"},
                      {"title", doc}});
    }

    std::string load;
    std::getline(std::ifstream("/proc/loadavg"), load);
    std::printf(
        "bench/token-speed: RSA-2048 on the demo token slowed to %d ms per signature (fault "
        "module, one at a time), kyso-agent over ws://127.0.0.1:%u; load average %s\n",
        delay_ms, agent.port(), load.c_str());
    std::vector<double> token_batch, agent_batch, batch_dialog;
    for (int r = 0; r < rounds; ++r) {
      token_batch.push_back(static_cast<double>(items) / raw.run(0x01, CKM_RSA_PKCS, inputs, 1));
      const double sent = wall_now();
      const json res =
          c.call({{"id", "batch-" + std::to_string(r)},
                  {"method", "batch.sign"},
                  {"params", {{"role", "teacher"}, {"credentialId", cred}, {"items", list}}}});
      const double done = wall_now();
      if (!res.contains("result") || res["result"]["signed"] != items) {
        throw std::runtime_error("batch failed: " + res.dump().substr(0, 300));
      }
      const double approved = last_approval(pinentry_log);
      agent_batch.push_back(done - approved);
      batch_dialog.push_back(approved - sent);
    }
    const double tb = median(token_batch);
    const double ab = median(agent_batch);
    std::printf(
        "%d-item batch: token's own time %.1f ms (%.1f ms/signature); agent from approval to "
        "summary %.1f ms: added %.1f ms in all, %.2f ms per item, %.2f%% of the token's time "
        "(goal <= 1%%); the dialog before it %.1f ms (median of %d)\n",
        items, tb * 1e3, tb * 1e3 / items, ab * 1e3, (ab - tb) * 1e3, (ab - tb) * 1e3 / items,
        (ab - tb) / tb * 100, median(batch_dialog) * 1e3, rounds);

    std::vector<double> token_single, agent_single, single_dialog;
    for (int i = 0; i < singles; ++i) {
      token_single.push_back(raw_single(KYSO_FAULT_MODULE, inputs[0]));
      const json item = {{"type", "hash"},
                         {"hash", kyso::to_base64(digests[0])},
                         {"hashAlgorithm", "sha256"},
                         {"title", "Học bạ"}};
      const double sent = wall_now();
      const json res =
          c.call({{"id", i},
                  {"method", "sign"},
                  {"params", {{"role", "teacher"}, {"credentialId", cred}, {"item", item}}}});
      const double done = wall_now();
      if (!res.contains("result")) throw std::runtime_error("sign failed: " + res.dump());
      const double approved = last_approval(pinentry_log);
      agent_single.push_back(done - approved);
      single_dialog.push_back(approved - sent);
    }
    const double ts = median(token_single);
    const double as = median(agent_single);
    std::printf(
        "single sign: token's own time (C_Login + C_Sign + C_Logout) %.1f ms; agent from "
        "approval to response %.1f ms: added %.2f ms (goal <= 5 ms); the dialog before it "
        "%.1f ms (median of %d)\n",
        ts * 1e3, as * 1e3, (as - ts) * 1e3, median(single_dialog) * 1e3, singles);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench/token-speed: %s\n", e.what());
    return 1;
  }
  return 0;
}
