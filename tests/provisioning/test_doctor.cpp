// `kyso doctor --json`: each check has a status; a token plugged in without its module, a module
// that does not load, PIN state and a certificate about to expire are all reported; the clock
// against a real `openssl ts` TSA on loopback (in time, ten minutes off under faketime, not
// there); remote signing services (a kyso-appliance, a closed port, a CA that does not match).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "fixture.hpp"
#include "kyso/firmware_config/provision.hpp"
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
  kyso::firmware_config::Provisioner p(hsm.module);
  (void)p.init_token("GV-DOCTOR", secret("12345678"), pin);
  (void)p.keygen("GV-DOCTOR", pin, kyso::pkcs11::KeyAlgorithm::EcP256, "kyso-sign");
  const auto csr = p.make_csr("GV-DOCTOR", pin, "kyso-sign",
                              kyso::firmware_config::parse_subject(
                                  "C=VN, O=Trường X, UID=CCCD:001185012345, CN=Nguyễn Thị Ánh"));
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

  // The same profiles named by the agent's configuration ([pkcs11] profiles) instead of
  // --profiles: doctor checks with the profiles the agent runs with. A token only that file
  // knows tells which.
  std::ofstream(hsm.path("lsusb-school.txt"))
      << "Bus 001 Device 005: ID f055:c0de Kyso Test School Token\n";
  std::ofstream(hsm.path("tokens-school.toml"))
      << "schema = 1\n[[token]]\nvendor = \"Kyso Test\"\nmodel = \"School Token\"\n"
         "usb = \"f055:c0de\"\npackage = \"kyso-test-token\"\n[token.modules]\n"
         "linux = [\"/nonexistent/school-pkcs11.so\"]\n";
  std::ofstream(hsm.path("agent-profiles.toml"))
      << "[pkcs11]\nprofiles = \"" << hsm.path("tokens-school.toml") << "\"\n";
  const auto [rc2, out2] = kyso::test::run(
      std::string(cli) + " --module '" + hsm.module +
      "' --no-system-modules --lang en doctor --json --usb-inventory '" +
      hsm.path("lsusb-school.txt") + "' --config '" + hsm.path("agent-profiles.toml") + "'");
  INFO(out2);
  const auto usb2 = of_kind(nlohmann::json::parse(out2), "usb");
  REQUIRE(usb2.size() == 1);
  CHECK_THAT(usb2[0].at("message").get<std::string>(),
             Catch::Contains("School Token") && Catch::Contains("Install kyso-test-token"));
}

namespace {

// Starts a command in the background; its pid, for kill() at the end of the test.
struct Background {
  long pid = 0;
  explicit Background(const std::string& cmd) {
    // stdout away from run()'s pipe, or it would wait for the process to end.
    const auto [rc, out] = kyso::test::run(cmd + " >/dev/null & echo $!");
    REQUIRE(rc == 0);
    pid = std::stol(out);
  }
  ~Background() {
    if (pid > 0) (void)kyso::test::run("kill " + std::to_string(pid) + " 2>/dev/null");
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  Background(Background&&) = delete;
  Background& operator=(Background&&) = delete;
};

std::string wait_for_port(const std::string& port_file) {
  for (int i = 0; i < 100; ++i) {
    std::ifstream in(port_file);
    std::string port;
    if (in >> port && !port.empty()) return port;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("no port in " << port_file);
  return "";
}

// A loopback RFC 3161 TSA: `openssl ts -reply` with the demo PKI's TSA key and its own serial
// file, behind tests/provisioning/tsa_http.py; `offset` runs openssl under faketime.
std::string start_tsa(const ScratchHsm& hsm, const std::string& name, const std::string& offset,
                      std::unique_ptr<Background>& process) {
  const auto& pki = kyso::test::fixture().manifest.at("pki");
  const std::string dir = hsm.path(name);
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tsa-serial") << "01\n";
  std::ofstream(dir + "/openssl.cnf")
      << "[ tsa ]\ndefault_tsa = tsa_config\n[ tsa_config ]\nserial = " << dir
      << "/tsa-serial\nsigner_cert = " << pki.at("tsa_cert").get<std::string>()
      << "\ncerts = " << pki.at("chain").get<std::string>()
      << "\nsigner_key = " << pki.at("tsa_key").get<std::string>()
      << "\nsigner_digest = sha256\ndefault_policy = 2.999.1.1\ndigests = sha256\n"
         "accuracy = secs:1\nordering = no\ntsa_name = yes\ness_cert_id_alg = sha256\n";
  process = std::make_unique<Background>("python3 '" + std::string(KYSO_TSA_HTTP) + "' '" + dir +
                                         "/openssl.cnf' '" + dir + "/port' " + offset + " 2>'" +
                                         dir + "/log' >/dev/null");
  return "http://127.0.0.1:" + wait_for_port(dir + "/port") + "/tsa";
}

// A port nothing listens on: bound, then closed.
std::string dead_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return std::to_string(ntohs(addr.sin_port));
}

// The agent configuration `kyso doctor` reads: `tsa_url` with the demo PKI's root as trust
// anchor (the TSA's signature and name are checked against it).
std::string with_tsa(const std::string& url) {
  return "[timestamp]\ntsa_url = \"" + url + "\"\n[trust]\nanchors = [\"" +
         kyso::test::fixture().manifest.at("pki").at("root").get<std::string>() + "\"]\n";
}

nlohmann::json doctor(const ScratchHsm& hsm, const std::string& agent_toml,
                      const std::string& extra = "") {
  std::ofstream(hsm.path("kyso-agent.toml")) << agent_toml;
  const auto [rc, out] = kyso::test::run(std::string(std::getenv("KYSO_CLI")) +
                                         " --no-system-modules --lang en doctor --json --config '" +
                                         hsm.path("kyso-agent.toml") + "' " + extra);
  INFO(out);
  return nlohmann::json::parse(out);
}

void must(const std::string& cmd) {
  const auto [rc, out] = kyso::test::run(cmd + " 2>&1");
  INFO(cmd << "\n" << out);
  REQUIRE(rc == 0);
}

}  // namespace

TEST_CASE("doctorTsa_clockAgainstOpensslTsa_okSkewedWarnsUnreachableFails", "[doctor]") {
  ScratchHsm hsm;
  std::unique_ptr<Background> good_tsa;
  std::unique_ptr<Background> skewed_tsa;
  const std::string good = start_tsa(hsm, "tsa-good", "", good_tsa);
  const std::string skewed = start_tsa(hsm, "tsa-skewed", "+600s", skewed_tsa);

  // In time: ok, the skew within a second or two (genTime has whole seconds).
  auto report = doctor(hsm, with_tsa(good));
  auto tsa = of_kind(report, "tsa");
  REQUIRE(tsa.size() == 1);
  CHECK(tsa[0].at("status") == "ok");
  CHECK(std::abs(tsa[0].at("details").at("skewMs").get<long long>()) <= 2500);
  CHECK(tsa[0].at("details").at("roundTripMs").get<long long>() >= 0);
  CHECK(tsa[0].at("details").at("url") == good);

  // Ten minutes apart: a warning that says by how much and what to do, in both languages.
  report = doctor(hsm, with_tsa(skewed));
  tsa = of_kind(report, "tsa");
  REQUIRE(tsa.size() == 1);
  CHECK(tsa[0].at("status") == "warn");
  const auto skew = tsa[0].at("details").at("skewMs").get<long long>();
  CHECK(skew > 597000);
  CHECK(skew < 603000);
  CHECK_THAT(tsa[0].at("message").get<std::string>(),
             Catch::Matches(".* is \\+(59[7-9]|60[0-3])\\.[0-9] s off .*\\(limit 60 "
                            "s\\).*timedatectl set-ntp true.*"));
  // ... unless the limit allows it.
  report = doctor(hsm, with_tsa(skewed), "--max-clock-skew 900");
  CHECK(of_kind(report, "tsa").at(0).at("status") == "ok");
  // Vietnamese by default.
  std::ofstream(hsm.path("vi.toml")) << with_tsa(skewed);
  const auto [rc_vi, out_vi] =
      kyso::test::run(std::string(std::getenv("KYSO_CLI")) +
                      " --no-system-modules doctor --json --config '" + hsm.path("vi.toml") + "'");
  CHECK_THAT(nlohmann::json::parse(out_vi).dump(), Catch::Contains("Đồng hồ máy tính lệch"));

  // Nothing listening: the check fails (signatures with a timestamp cannot be made).
  const std::string dead = "http://127.0.0.1:" + dead_port() + "/tsa";
  report = doctor(hsm, with_tsa(dead));
  tsa = of_kind(report, "tsa");
  REQUIRE(tsa.size() == 1);
  CHECK(tsa[0].at("status") == "fail");
  CHECK(tsa[0].at("details").at("error") == "TSA_UNAVAILABLE");

  // No TSA configured: skipped, said so.
  report = doctor(hsm, "port = 19600\n");
  CHECK(of_kind(report, "tsa").at(0).at("status") == "skip");
  CHECK(of_kind(report, "remote").at(0).at("status") == "skip");
}

TEST_CASE("doctorRemote_applianceAnswersInfo_unreachableAndUntrustedFail", "[doctor][csc]") {
  ScratchHsm hsm;
  kyso::firmware_config::Provisioner p(hsm.module);
  (void)p.init_token("HSM-DOCTOR", secret("12345678"), secret("123456"));
  // The appliance's TLS certificate from a throw-away CA; another CA nobody used.
  const std::string d = hsm.dir.string();
  must(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "
      "'/CN=Kyso doctor test CA' -keyout " +
      d + "/ca.key -out " + d + "/ca.crt");
  must(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "
      "'/CN=Another CA' -keyout " +
      d + "/other.key -out " + d + "/other.crt");
  must(
      "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 "
      "-keyout " +
      d + "/tls.key -out " + d + "/tls.csr");
  std::ofstream(d + "/san.ext") << "subjectAltName=IP:127.0.0.1\n";
  must("openssl x509 -req -in " + d + "/tls.csr -CA " + d + "/ca.crt -CAkey " + d +
       "/ca.key -CAcreateserial -days 2 -extfile " + d + "/san.ext -out " + d + "/tls.crt");
  std::ofstream(hsm.path("appliance.toml"))
      << "[server]\nname = \"Máy ký Sở GD&ĐT\"\nlisten = \"127.0.0.1:0\"\nstate_db = \"state.db\"\n"
         "[tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"\n[hsm]\nmodule = \""
      << hsm.module << "\"\ntoken_label = \"HSM-DOCTOR\"\n";
  Background appliance("'" + std::string(KYSO_APPLIANCE) + "' --config '" +
                       hsm.path("appliance.toml") + "' --port-file '" + hsm.path("port") + "' 2>'" +
                       hsm.path("appliance.log") + "'");
  const std::string url = "https://127.0.0.1:" + wait_for_port(hsm.path("port")) + "/csc/v2";
  const std::string dead = "https://127.0.0.1:" + dead_port() + "/csc/v2";

  const auto report = doctor(hsm, "[[remote]]\nname = \"Sở\"\nurl = \"" + url +
                                      "\"\nca_file = \"ca.crt\"\n"
                                      "[[remote]]\nname = \"Tắt\"\nurl = \"" +
                                      dead +
                                      "\"\nca_file = \"ca.crt\"\n"
                                      "[[remote]]\nname = \"CA khác\"\nurl = \"" +
                                      url + "\"\nca_file = \"other.crt\"\n");
  const auto remote = of_kind(report, "remote");
  REQUIRE(remote.size() == 3);
  CHECK(remote[0].at("status") == "ok");
  CHECK(remote[0].at("details").at("specs").get<std::string>().starts_with("2."));
  CHECK(remote[0].at("details").at("serverName") == "Máy ký Sở GD&ĐT");
  CHECK(remote[0].at("details").at("roundTripMs").get<long long>() >= 0);
  CHECK(remote[1].at("status") == "fail");
  CHECK(remote[1].at("details").at("error") == "REMOTE_UNREACHABLE");
  CHECK_THAT(remote[1].at("message").get<std::string>(), Catch::Contains("Check the network"));
  CHECK(remote[2].at("status") == "fail");
  CHECK_THAT(remote[2].at("message").get<std::string>(), Catch::Contains("TLS certificate"));
}

TEST_CASE("doctorAgent_runningAgentAnswers_stoppedAgentFails", "[doctor]") {
  ScratchHsm hsm;
  const std::string port = dead_port();
  std::ofstream(hsm.path("agent.toml"))
      << "port = " << port << "\nstate_dir = \"" << hsm.path("state") << "\"\n";
  Background agent("'" + std::string(KYSO_AGENT) + "' --no-system-modules --config '" +
                   hsm.path("agent.toml") + "' 2>'" + hsm.path("agent.log") + "'");
  const auto check = [&] {
    const auto [rc, out] = kyso::test::run(
        std::string(std::getenv("KYSO_CLI")) +
        " --no-system-modules --lang en doctor --json --config '" + hsm.path("agent.toml") + "'");
    INFO(out);
    return of_kind(nlohmann::json::parse(out), "agent").at(0);
  };
  nlohmann::json c;
  for (int i = 0; i < 100; ++i) {
    c = check();
    if (c.at("details").at("listening") == true) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(c.dump());
  CHECK(c.at("status") == "ok");
  CHECK(c.at("details").at("process") == "kyso-agent");
  CHECK(c.at("details").at("status").at("name") == "kyso-agent");
  CHECK_THAT(c.at("message").get<std::string>(),
             Catch::Contains("answers at ws://127.0.0.1:" + port));

  // Stopped (as if hung): the port is still held, the kernel still accepts, nothing answers.
  must("kill -STOP " + std::to_string(agent.pid));
  c = check();
  must("kill -CONT " + std::to_string(agent.pid));
  INFO(c.dump());
  CHECK(c.at("status") == "fail");
  CHECK_THAT(c.at("message").get<std::string>(),
             Catch::Contains("does not answer") && Catch::Contains("systemctl --user restart"));
}

TEST_CASE("doctorDocuments_moduleLoadsOrNamesWhyXmlPdfCannotBeSigned", "[doctor]") {
  ScratchHsm hsm;
  // The build tree's kyso finds kyso-formats-documents.so next to itself and loads it.
  auto report = doctor(hsm, "", "--usb-inventory /dev/null");
  auto docs = of_kind(report, "documents");
  REQUIRE(docs.size() == 1);
  CHECK(docs[0].at("status") == "ok");
  CHECK_THAT(docs[0].at("details").at("path").get<std::string>(),
             Catch::EndsWith("kyso-formats-documents.so"));

  // The configuration names a file that is not there: the agent would answer
  // FORMATS_UNAVAILABLE for xml and pdf items, and doctor says so with the path.
  report = doctor(hsm, "formats_module = \"" + hsm.path("missing.so") + "\"\n",
                  "--usb-inventory /dev/null");
  docs = of_kind(report, "documents");
  REQUIRE(docs.size() == 1);
  CHECK(docs[0].at("status") == "fail");
  CHECK_THAT(docs[0].at("message").get<std::string>(),
             Catch::Contains("FORMATS_UNAVAILABLE") && Catch::Contains(hsm.path("missing.so")) &&
                 Catch::Contains("hash and CMS signing still work"));

  // A file that is not Kyso's module (no entry point): refused, not called.
  report = doctor(hsm, "formats_module = \"" + kyso::test::fixture().fault_module + "\"\n",
                  "--usb-inventory /dev/null");
  docs = of_kind(report, "documents");
  REQUIRE(docs.size() == 1);
  CHECK(docs[0].at("status") == "fail");
  CHECK_THAT(docs[0].at("details").at("error").get<std::string>(),
             Catch::Contains("kyso_formats_documents_v1"));
}
