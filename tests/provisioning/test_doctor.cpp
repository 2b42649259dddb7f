// `kyso doctor --json`: each check has a status; a token plugged in without its module, a module
// that does not load, PIN state and a certificate about to expire are all reported.

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fixture.hpp"
#include "kyso/config/provision.hpp"
#include "scratch_hsm.hpp"

using kyso::test::ScratchHsm;
using kyso::test::secret;

namespace {

std::vector<nlohmann::json> of_kind(const nlohmann::json& report, const std::string& kind) {
  std::vector<nlohmann::json> out;
  for (const auto& c : report.at("checks")) {
    if (c.at("check") == kind) out.push_back(c);
  }
  return out;
}

}  // namespace

TEST_CASE("doctorJson_fakeUsbInventory_reportsMissingModuleExpiringCertificateAndPinState",
          "[provision][doctor]") {
  ScratchHsm hsm;
  const auto pin = secret("123456");
  kyso::config::Provisioner p(hsm.module);
  (void)p.init_token("GV-DOCTOR", secret("12345678"), pin);
  (void)p.keygen("GV-DOCTOR", pin, kyso::pkcs11::KeyAlgorithm::EcP256, "kyso-sign");
  const auto csr = p.make_csr(
      "GV-DOCTOR", pin, "kyso-sign",
      kyso::config::parse_subject("C=VN, O=Trường X, UID=CCCD:001185012345, CN=Nguyễn Thị Ánh"));
  std::ofstream(hsm.path("req.csr")) << csr.pem;
  const std::string sub = kyso::test::fixture().manifest.at("pki").at("sub").get<std::string>();
  const std::string sub_key = std::filesystem::path(sub).parent_path() / "sub.key";
  const auto [rc_issue, issued] = kyso::test::run(
      "openssl x509 -req -in '" + hsm.path("req.csr") + "' -CA '" + sub + "' -CAkey '" + sub_key +
      "' -set_serial 4242 -days 10 -out '" + hsm.path("soon.crt") + "' 2>&1");
  INFO(issued);
  REQUIRE(rc_issue == 0);
  for (const auto& c : kyso::x509_read_file(hsm.path("soon.crt"))) {
    (void)p.import_certificate("GV-DOCTOR", pin,
                               std::vector<kyso::Bytes>{kyso::x509_to_der(c.get())});
  }

  // One wrong PIN: the token reports it (SoftHSM sets CKF_USER_PIN_COUNT_LOW), doctor warns.
  {
    auto session = p.admin().open(p.find_token("GV-DOCTOR").slot_id);
    CHECK_THROWS_AS(session.login_user(secret("000000")), kyso::Error);
  }

  // lsusb output: an ePass2003 and a SafeNet eToken; the school's profile knows both, with
  // modules that are not installed on this machine.
  std::ofstream(hsm.path("lsusb.txt"))
      << "Bus 001 Device 004: ID 096e:0807 Feitian Technologies, Inc. ePass2003\n"
         "Bus 001 Device 001: ID 1d6b:0002 Linux Foundation 2.0 root hub\n";
  std::ofstream(hsm.path("tokens.toml"))
      << "schema = 1\n[[token]]\nvendor = \"Feitian\"\nmodel = \"ePass2003\"\n"
         "usb = \"096e:0807\"\npackage = \"opensc-pkcs11\"\n[token.modules]\n"
         "linux = [\"/nonexistent/opensc-pkcs11.so\"]\n";
  const char* cli = std::getenv("KYSO_CLI");
  REQUIRE(cli != nullptr);
  const std::string cmd =
      std::string(cli) + " --module '" + hsm.module +
      "' --module /nonexistent/libbroken-pkcs11.so --no-system-modules --lang en doctor --json"
      " --usb-inventory '" +
      hsm.path("lsusb.txt") + "' --profiles '" + hsm.path("tokens.toml") + "'";
  const auto [rc, out] = kyso::test::run(cmd);
  INFO(out);
  CHECK(rc == 1);  // something failed
  const auto report = nlohmann::json::parse(out);
  for (const auto& c : report.at("checks")) {
    CHECK_THAT(c.at("status").get<std::string>(), Catch::Matches("ok|warn|fail|skip"));
    CHECK_FALSE(c.at("message").get<std::string>().empty());
  }

  const auto usb = of_kind(report, "usb");
  REQUIRE(usb.size() == 1);
  CHECK(usb[0].at("status") == "fail");
  CHECK_THAT(usb[0].at("message").get<std::string>(),
             Catch::Contains("ePass2003") && Catch::Contains("Install opensc-pkcs11"));

  const auto modules = of_kind(report, "module");
  REQUIRE(modules.size() == 2);
  CHECK(modules[0].at("status") == "ok");
  CHECK(modules[1].at("status") == "fail");

  const auto tokens = of_kind(report, "token");
  REQUIRE(tokens.size() == 1);
  CHECK(tokens[0].at("status") == "warn");
  CHECK(tokens[0].at("details").at("pinCountLow") == true);
  CHECK_THAT(tokens[0].at("message").get<std::string>(), Catch::Contains("wrong PINs"));
  CHECK(tokens[0].at("details").at("label") == "GV-DOCTOR");

  const auto certs = of_kind(report, "certificate");
  REQUIRE(certs.size() == 1);
  CHECK(certs[0].at("status") == "warn");
  CHECK(certs[0].at("details").at("daysLeft").get<int>() <= 10);
  CHECK_THAT(certs[0].at("message").get<std::string>(), Catch::Contains("Nguyễn Thị Ánh"));
  CHECK(report.at("summary").at("fail").get<int>() == 2);
}
