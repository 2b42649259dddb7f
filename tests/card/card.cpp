#include "card.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"

namespace kyso::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

CardFixture load_card_fixture() {
  CardFixture f;
  if (const char* dir = std::getenv("KYSO_CARD_DIR"); dir != nullptr) {
    f.dir = dir;
  } else if (const char* pki = std::getenv("KYSO_TEST_DIR"); pki != nullptr) {
    f.dir = (fs::path(pki).parent_path() / "test-card").string();  // beside it (tests.cmake)
  } else {
    throw std::runtime_error("neither KYSO_CARD_DIR nor KYSO_TEST_DIR set: run through ctest");
  }
  if (std::ifstream skip(f.dir + "/skip.txt"); skip) {
    std::string reason;
    std::getline(skip, reason);
    std::cout << "SKIPPED: the OpenSC card tests cannot run here: " << reason << std::endl;
    std::_Exit(77);
  }
  std::ifstream in(f.dir + "/card.json");
  if (!in) throw std::runtime_error("no card.json in " + f.dir + " (fixture card.setup)");
  const auto j = nlohmann::json::parse(in);
  f.opensc_module = j.at("opensc_module");
  f.opensc_conf = j.at("opensc_conf");
  f.emulator = j.at("emulator");
  f.user_pin = j.at("user_pin");
  f.puk = j.at("puk");
  f.max_tries = j.at("max_tries");
  f.ports = j.at("readers").get<std::map<std::string, int>>();
  f.card_dirs = j.at("cards").get<std::map<std::string, std::string>>();
  for (const auto& c : j.at("credentials")) {
    CardCredential cc;
    cc.name = c.at("name");
    cc.card = c.at("card");
    cc.slot = c.at("slot");
    cc.key = c.at("key");
    cc.role = c.at("role");
    cc.cert_path = c.at("cert");
    cc.cert_der = read_file(c.at("cert_der").get<std::string>());
    f.credentials.push_back(std::move(cc));
  }
  // Before OpenSC's C_Initialize reads it.
  ::setenv("OPENSC_CONF", f.opensc_conf.c_str(), 1);
  return f;
}

fs::path make_temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "kyso-card-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

bool is_this_card(pkcs11::Token& token, const std::string& label) {
  try {
    return token.info().label == label;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace

std::string CardCredential::credential_id() const {
  return to_hex(sha256(cert_der));
}

const CardCredential& CardFixture::credential(const std::string& name) const {
  for (const auto& c : credentials) {
    if (c.name == name) return c;
  }
  throw std::runtime_error("no card credential " + name);
}

const CardFixture& card_fixture() {
  static const CardFixture f = load_card_fixture();
  return f;
}

std::unique_ptr<pkcs11::Library> opensc_library() {
  const auto& f = card_fixture();
  auto lib = std::make_unique<pkcs11::Library>(
      pkcs11::ModuleConfig{.paths = {f.opensc_module},
                           .use_p11kit = false,
                           .use_known = false,
                           .known_tokens = {},
                           .quirks = {},
                           .timeouts = {.quick = kCardCallTimeout, .sign = kCardCallTimeout}});
  if (!lib->modules().at(0).loaded) {
    throw std::runtime_error("OpenSC did not load: " + lib->modules().at(0).error);
  }
  return lib;
}

VirtualCard::VirtualCard(std::string card, Options options)
    : card_(std::move(card)), options_(options), dir_(make_temp_dir()) {
  const auto& f = card_fixture();
  fs::copy(f.card_dirs.at(card_), dir_, fs::copy_options::recursive);
  for (const auto& c : f.credentials) {
    if (c.card == card_ && c.slot == "9a") label_ = parse_certificate(c.cert_der).common_name;
  }
  insert(options_);
}

VirtualCard::~VirtualCard() {
  pull();
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void VirtualCard::insert(Options options) {
  pull();
  options_ = options;
  const auto& f = card_fixture();
  std::vector<std::string> args = {f.emulator,
                                   "--state",
                                   (dir_ / "state.json").string(),
                                   "--port",
                                   std::to_string(f.ports.at(card_)),
                                   "--log",
                                   (dir_ / "card.log").string(),
                                   "--exit-after-signatures",
                                   std::to_string(options.exit_after_signatures),
                                   "--sign-delay-ms",
                                   std::to_string(options.sign_delay_ms)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::execv(argv[0], argv.data());
    std::_Exit(127);
  }
  pid_ = pid;
}

void VirtualCard::pull() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

std::shared_ptr<pkcs11::Token> VirtualCard::wait_for_token(pkcs11::Library& library) const {
  // pcscd polls vpcd for the card: a card shows up within a second or two.
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    for (auto& t : library.tokens()) {
      if (is_this_card(*t, label_)) return t;
    }
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error("card " + card_ + " (" + label_ + ") did not show up in 15 s");
}

void VirtualCard::wait_until_gone(pkcs11::Library& library) const {
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline) {
    bool present = false;
    for (auto& t : library.tokens()) present = present || is_this_card(*t, label_);
    if (!present) return;
    std::this_thread::sleep_for(100ms);
  }
  throw std::runtime_error("card " + card_ + " still listed 15 s after it was pulled");
}

std::vector<std::string> VirtualCard::log() const {
  std::vector<std::string> out;
  std::ifstream in(dir_ / "card.log");
  for (std::string line; std::getline(in, line);) {
    // "<time> <what>": keep what.
    if (const auto sp = line.find(' '); sp != std::string::npos) out.push_back(line.substr(sp + 1));
  }
  return out;
}

}  // namespace kyso::test
