// The `kyso provision` subcommands as IT types them, PINs from files (never from argv).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "fixture.hpp"
#include "kyso/pkcs11/admin.hpp"
#include "scratch_hsm.hpp"

using kyso::test::ScratchHsm;

namespace {

std::pair<int, std::string> kyso_cli(const ScratchHsm& hsm, const std::string& args) {
  const char* cli = std::getenv("KYSO_CLI");
  REQUIRE(cli != nullptr);
  return kyso::test::run(std::string(cli) + " --module '" + hsm.module +
                         "' --no-system-modules --lang en " + args + " 2>&1");
}

}  // namespace

TEST_CASE("cliProvision_initKeygenCsrImport_thenCredentialListed", "[provision][cli]") {
  ScratchHsm hsm;
  const std::string pins = " --pin-file '" + hsm.pin_file + "'";
  {
    const auto [rc, out] =
        kyso_cli(hsm, "provision init-token --label 'Hiệu trưởng' --so-pin-file '" +
                          hsm.so_pin_file + "'" + pins + " --json");
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(nlohmann::json::parse(out).at("label") == "Hiệu trưởng");
  }
  {
    const auto [rc, out] = kyso_cli(
        hsm,
        "provision keygen --token 'Hiệu trưởng' --alg rsa2048 --label ht-sign --id 0a0b" + pins);
    INFO(out);
    REQUIRE(rc == 0);
    CHECK_THAT(out, Catch::Contains("RSA  id 0a0b"));
  }
  const std::string csr = hsm.path("ht.csr");
  {
    const auto [rc, out] = kyso_cli(
        hsm, "provision csr --token 'Hiệu trưởng' --key 0a0b --out '" + csr +
                 "' --subject 'C=VN, ST=HÀ NỘI, O=Trường THPT Chu Văn An, title=Hiệu trưởng, "
                 "UID=CCCD:001080054321, CN=Trần Văn Bình'" +
                 pins);
    INFO(out);
    REQUIRE(rc == 0);
  }
  const auto [vrc, vout] = kyso::test::run("openssl req -in '" + csr + "' -verify -noout 2>&1");
  CHECK(vrc == 0);
  const std::string sub = kyso::test::fixture().manifest.at("pki").at("sub").get<std::string>();
  const std::string crt = hsm.path("ht.crt");
  const auto [irc, iout] =
      kyso::test::run("openssl x509 -req -in '" + csr + "' -CA '" + sub + "' -CAkey '" +
                      (std::filesystem::path(sub).parent_path() / "sub.key").string() +
                      "' -set_serial 77 -days 100 -copy_extensions copy -out '" + crt + "' 2>&1");
  REQUIRE(irc == 0);
  {
    const auto [rc, out] =
        kyso_cli(hsm, "provision import-cert --token 'Hiệu trưởng' --cert '" + crt + "' --cert '" +
                          kyso::test::fixture().manifest.at("pki").at("chain").get<std::string>() +
                          "' --json" + pins);
    INFO(out);
    REQUIRE(rc == 0);
    const auto j = nlohmann::json::parse(out);
    CHECK(j.at("keyId") == "0a0b");
    CHECK(j.at("label") == "ht-sign");
    CHECK(j.at("chainAdded") == 2);
  }
  // The token layer lists it as a principal's credential, chain included.
  const auto [rc, out] = kyso_cli(hsm, "credentials --role principal --json");
  INFO(out);
  REQUIRE(rc == 0);
  const auto creds = nlohmann::json::parse(out).at("credentials");
  REQUIRE(creds.size() == 1);
  CHECK(creds[0].dump().find("Trần Văn Bình") != std::string::npos);
}

TEST_CASE("cliProvision_pinOnCommandLine_isNotAnOption", "[provision][cli][security]") {
  ScratchHsm hsm;
  const auto [rc, out] =
      kyso_cli(hsm, "provision init-token --label X --so-pin 12345678 --pin 123456");
  CHECK(rc != 0);
  CHECK_THAT(out, Catch::Contains("--so-pin") || Catch::Contains("--pin"));
  kyso::pkcs11::Admin admin(hsm.module);
  for (const auto& s : admin.slots()) CHECK_FALSE(s.initialized);
}

TEST_CASE("cliDoctor_badConfig_reportsFileLineAndKey", "[provision][cli][doctor]") {
  ScratchHsm hsm;
  std::ofstream(hsm.path("agent.toml"))
      << "port = 19587\n[origins]\nallowed = [\"https://hocba.vn/app\"]\n";
  const auto [rc, out] = kyso_cli(
      hsm, "doctor --json --usb-inventory /dev/null --config '" + hsm.path("agent.toml") + "'");
  INFO(out);
  CHECK(rc == 1);
  const auto report = nlohmann::json::parse(out);
  bool seen = false;
  for (const auto& c : report.at("checks")) {
    if (c.at("check") != "config") continue;
    seen = true;
    CHECK(c.at("status") == "fail");
    CHECK(c.at("details").at("line") == 3);
    CHECK(c.at("details").at("key") == "origins.allowed[0]");
    CHECK_THAT(c.at("message").get<std::string>(),
               Catch::StartsWith(hsm.path("agent.toml") + ":3:"));
  }
  CHECK(seen);
}

TEST_CASE("cliDoctor_portHeldByAnotherProgram_namesIt", "[provision][cli][doctor]") {
  ScratchHsm hsm;
  // This test process holds a port; doctor, told that the agent uses it, must name the holder.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  // A free port in the agent's range (1024..65533).
  std::random_device rd;
  int port = 0;
  for (int attempt = 0; attempt < 50 && port == 0; ++attempt) {
    const int candidate = 30000 + static_cast<int>(rd() % 30000U);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(candidate));
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) port = candidate;
  }
  REQUIRE(port != 0);
  REQUIRE(::listen(fd, 1) == 0);
  std::ofstream(hsm.path("agent.toml")) << "port = " << port << "\n";
  const auto [rc, out] = kyso_cli(
      hsm, "doctor --json --usb-inventory /dev/null --config '" + hsm.path("agent.toml") + "'");
  ::close(fd);
  INFO(out);
  const auto report = nlohmann::json::parse(out);
  bool seen = false;
  for (const auto& c : report.at("checks")) {
    if (c.at("check") != "agent" || !c.at("details").at("listening").get<bool>()) continue;
    seen = true;
    CHECK(c.at("status") == "warn");
    CHECK(c.at("details").at("port") == port);
    CHECK(c.at("details").at("pid") == ::getpid());
    CHECK_THAT(c.at("message").get<std::string>(), Catch::Contains("held by another program"));
  }
  CHECK(seen);
}

TEST_CASE("cliDoctor_localTlsNotSetUp_warnsWithTheFix", "[provision][cli][doctor]") {
  ScratchHsm hsm;
  if (!std::filesystem::exists(KYSO_LOCAL_TLS_TOOL)) {
    WARN("installer/tls/kyso-local-tls not in this tree: nothing to ask");
    return;
  }
  // An empty root: the installer's tool reports the local CA as not installed.
  std::filesystem::create_directories(hsm.path("root"));
  ::setenv("KYSO_TLS_ROOT", hsm.path("root").c_str(), 1);
  const auto [rc, out] = kyso_cli(hsm, "doctor --json --usb-inventory /dev/null --local-tls '" +
                                           std::string(KYSO_LOCAL_TLS_TOOL) + "'");
  ::unsetenv("KYSO_TLS_ROOT");
  INFO(out);
  const auto report = nlohmann::json::parse(out);
  bool seen = false;
  for (const auto& c : report.at("checks")) {
    if (c.at("check") != "tls") continue;
    seen = true;
    CHECK(c.at("status") == "warn");
    CHECK(c.at("details").at("installed") == false);
    CHECK_THAT(c.at("message").get<std::string>(), Catch::Contains("kyso-local-tls install"));
  }
  CHECK(seen);
}
