// Configuration files: what loads, and how each kind of mistake is reported (file, line, key).

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include <pwd.h>
#include <unistd.h>

#include "kyso/firmware_config/agent_config.hpp"
#include "kyso/firmware_config/appliance_config.hpp"
#include "kyso/firmware_config/config_error.hpp"
#include "kyso/firmware_config/provision.hpp"
#include "kyso/firmware_config/token_profiles.hpp"

namespace fs = std::filesystem;
using kyso::firmware_config::ConfigError;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() / ("kyso-config-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&&) = delete;
  TempDir& operator=(TempDir&&) = delete;
  fs::path write(const std::string& name, const std::string& text) const {
    const fs::path p = path / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
    return p;
  }
};

// Loads `text` as an agent config and returns the error it must raise.
ConfigError agent_error(const std::string& text) {
  TempDir dir;
  const auto file = dir.write("kyso-agent.toml", text);
  try {
    (void)kyso::firmware_config::load_agent_config(file);
  } catch (const ConfigError& e) {
    CHECK(e.file() == file.string());
    CHECK(e.code() == kyso::ErrorCode::ConfigInvalid);
    CHECK_THAT(e.detail(), Catch::StartsWith(file.string() + ":" + std::to_string(e.line()) + ":"));
    CHECK(!e.what_vi().empty());
    return e;
  }
  FAIL("no error for:\n" << text);
  throw std::logic_error("unreachable");
}

}  // namespace

// Issue 12 (finding 9): the agent's TLS key was world-readable and the agent took it. Each
// desktop user now has their own key (kyso-local-tls), which the agent refuses when others can
// read it, as the appliance and kyso-verifyd already did.
TEST_CASE("loadAgentConfig_tlsKeyReadableByOthers_refusedWithChmod600", "[config]") {
  TempDir dir;
  dir.write("agent.crt", "x");
  const auto key = dir.write("agent.key", "x");
  const auto file = dir.write("kyso-agent.toml",
                              "[tls]\nenabled = true\ncert = \"agent.crt\"\nkey = \"agent.key\"\n");
  CHECK(kyso::firmware_config::load_agent_config(file).tls_key_file == key.string());
  for (const auto others : {fs::perms::group_read, fs::perms::others_read}) {
    fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write | others);
    try {
      (void)kyso::firmware_config::load_agent_config(file);
      FAIL("a TLS key readable by others was accepted");
    } catch (const ConfigError& e) {
      CHECK(e.key() == "tls.key");
      CHECK(e.line() == 4);
      CHECK_THAT(e.detail(), Catch::Contains("chmod 600"));
      CHECK_THAT(e.what_vi(), Catch::Contains("chmod 600"));
    }
  }
  // Switched off, the files are not the agent's concern.
  const auto off =
      dir.write("off.toml", "[tls]\nenabled = false\ncert = \"agent.crt\"\nkey = \"agent.key\"\n");
  CHECK_FALSE(kyso::firmware_config::load_agent_config(off).tls);
}

// The installed configuration names each user's own certificate: /var/lib/kyso/tls/users/%u/.
TEST_CASE("loadAgentConfig_percentU_isTheLoginNameOfTheAgentsUser", "[config]") {
  TempDir dir;
  const passwd* me = ::getpwuid(::geteuid());
  REQUIRE(me != nullptr);
  const std::string user = me->pw_name;
  dir.write("users/" + user + "/agent.crt", "x");
  dir.write("users/" + user + "/agent.key", "x");
  const auto file = dir.write(
      "kyso-agent.toml", "[tls]\ncert = \"users/%u/agent.crt\"\nkey = \"users/%u/agent.key\"\n");
  const auto c = kyso::firmware_config::load_agent_config(file);
  CHECK(c.tls_cert_file == (dir.path / "users" / user / "agent.crt").string());
  CHECK(c.tls_key_file == (dir.path / "users" / user / "agent.key").string());
}

TEST_CASE("loadAgentConfig_fullExample_fillsEveryField", "[config]") {
  TempDir dir;
  dir.write("anchor.pem", "x");
  dir.write("agent.crt", "x");
  dir.write("agent.key", "x");
  const auto file = dir.write("kyso-agent.toml", R"(
port = 19600
language = "en"
pinentry = "/usr/bin/pinentry-gnome3"
state_dir = "state"

[tls]
enabled = true
cert = "agent.crt"
key = "agent.key"

[origins]
allowed = ["https://HocBa.Example.edu.vn", "https://truong.example.vn:8443", "http://localhost:3000",
           "https://x.example.vn:443"]

[roles.principal]
issuer_contains = ["VNPT-CA"]
[roles.seal]
credentials = ["0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]

[trust]
anchors = ["anchor.pem"]

[timestamp]
tsa_url = "http://tsa.example.vn/tsa"

[revocation]
check = true
on_failure = "warn"
ocsp_url = "http://127.0.0.1:18960/"

[pkcs11]
modules = ["/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"]
system_modules = false

[[remote]]
name = "Sở GD&ĐT - máy ký"
url = "https://sign.example.vn/csc/v2"
username = "gv.nguyenthianh"

[limits]
max_connections = 4
max_batch_items = 2000
approval_timeout_seconds = 60
)");
  const auto c = kyso::firmware_config::load_agent_config(file);
  CHECK(c.port == 19600);
  CHECK(c.language == "en");
  CHECK(c.tls);
  CHECK(c.tls_cert_file == (dir.path / "agent.crt").string());
  CHECK(c.state_dir == dir.path / "state");
  REQUIRE(c.allowed_origins.size() == 4);
  CHECK(c.allowed_origins[0] == "https://hocba.example.edu.vn");
  CHECK(c.allowed_origins[1] == "https://truong.example.vn:8443");
  CHECK(c.allowed_origins[3] == "https://x.example.vn");
  CHECK(c.roles.at(kyso::Role::Principal).issuer_contains == std::vector<std::string>{"VNPT-CA"});
  CHECK(c.roles.at(kyso::Role::Seal).credential_ids.size() == 1);
  CHECK(c.trust_anchors.size() == 1);
  CHECK(c.tsa_url == "http://tsa.example.vn/tsa");
  CHECK_FALSE(c.refuse_on_check_failure);
  CHECK(c.ocsp_url == "http://127.0.0.1:18960/");
  CHECK_FALSE(c.system_modules);
  REQUIRE(c.remote.size() == 1);
  CHECK(c.remote[0].name == "Sở GD&ĐT - máy ký");
  CHECK(c.remote[0].unavailable_wait == std::chrono::seconds(30));  // the default
  CHECK(c.limits.max_connections == 4);
  CHECK(c.limits.approval_timeout == std::chrono::seconds(60));
}

TEST_CASE("loadAgentConfig_emptyFile_givesDefaults", "[config]") {
  TempDir dir;
  const auto c = kyso::firmware_config::load_agent_config(dir.write("empty.toml", ""));
  CHECK(c.port == kyso::firmware_config::kDefaultAgentPort);
  CHECK(c.allowed_origins.empty());
  CHECK(c.revocation_check);
}

TEST_CASE("loadAgentConfig_mistakes_nameFileLineAndKey", "[config]") {
  SECTION("unknown key") {
    const auto e = agent_error("port = 19587\n\n[origins]\nalowed = [\"https://a.vn\"]\n");
    CHECK(e.line() == 4);
    CHECK(e.column() == 1);
    CHECK(e.key() == "origins.alowed");
    CHECK_THAT(e.detail(), Catch::Contains("unknown key"));
  }
  SECTION("unknown top-level section") {
    const auto e = agent_error("[origin]\nallowed = []\n");
    CHECK(e.line() == 1);
    CHECK(e.key() == "origin");
  }
  SECTION("wrong type") {
    const auto e = agent_error("language = \"vi\"\nport = \"19587\"\n");
    CHECK(e.line() == 2);
    CHECK(e.key() == "port");
    CHECK_THAT(e.detail(), Catch::Contains("must be an integer, not a string"));
  }
  SECTION("port out of range") {
    const auto e = agent_error("\nport = 80\n");
    CHECK(e.line() == 2);
    CHECK(e.key() == "port");
    CHECK_THAT(e.detail(), Catch::Contains("out of range"));
  }
  SECTION("origin with a path") {
    const auto e = agent_error(
        "[origins]\nallowed = [\n  \"https://ok.vn\",\n  \"https://hocba.vn/app\",\n]\n");
    CHECK(e.line() == 4);
    CHECK(e.column() == 3);
    CHECK(e.key() == "origins.allowed[1]");
    CHECK_THAT(e.detail(), Catch::Contains("no path"));
  }
  SECTION("origin with a trailing slash") {
    const auto e = agent_error("[origins]\nallowed = [\"https://hocba.vn/\"]\n");
    CHECK(e.key() == "origins.allowed[0]");
  }
  SECTION("origin without a scheme") {
    const auto e = agent_error("[origins]\nallowed = [\"hocba.vn\"]\n");
    CHECK_THAT(e.detail(), Catch::Contains("scheme://host[:port]"));
  }
  SECTION("origin with a wildcard") {
    const auto e = agent_error("[origins]\nallowed = [\"https://*.edu.vn\"]\n");
    CHECK_THAT(e.detail(), Catch::Contains("wildcard"));
  }
  SECTION("origin with a bad port") {
    const auto e = agent_error("[origins]\nallowed = [\"https://hocba.vn:99999\"]\n");
    CHECK_THAT(e.detail(), Catch::Contains("port"));
  }
  SECTION("origin with another scheme") {
    const auto e = agent_error("[origins]\nallowed = [\"ftp://hocba.vn\"]\n");
    CHECK_THAT(e.detail(), Catch::Contains("scheme"));
  }
  SECTION("missing trust anchor file") {
    const auto e = agent_error("[trust]\nanchors = [\"/nonexistent/neac.pem\"]\n");
    CHECK(e.line() == 2);
    CHECK(e.key() == "trust.anchors[0]");
    CHECK_THAT(e.detail(), Catch::Contains("file not found"));
  }
  SECTION("TLS enabled without certificate") {
    const auto e = agent_error("[tls]\nenabled = true\n");
    CHECK(e.key() == "tls.cert");
    CHECK(e.line() == 1);
  }
  SECTION("unknown role") {
    const auto e = agent_error("[roles.teacher]\nissuer_contains = [\"X\"]\n[roles.janitor]\n");
    CHECK(e.key() == "roles.janitor");
    CHECK(e.line() == 3);
  }
  SECTION("bad credential id") {
    const auto e = agent_error("[roles.seal]\ncredentials = [\"ABC\"]\n");
    CHECK(e.key() == "roles.seal.credentials[0]");
  }
  SECTION("bad enum value") {
    const auto e = agent_error("[revocation]\non_failure = \"ignore\"\n");
    CHECK(e.key() == "revocation.on_failure");
    CHECK(e.line() == 2);
  }
  SECTION("ocsp_url not http") {
    const auto e = agent_error("[revocation]\nocsp_url = \"ldap://ocsp.vn\"\n");
    CHECK(e.key() == "revocation.ocsp_url");
  }
  SECTION("remote service over http") {
    const auto e = agent_error("[[remote]]\nname = \"x\"\nurl = \"http://sign.vn/csc/v2\"\n");
    CHECK(e.key() == "remote[0].url");
    CHECK(e.line() == 3);
  }
  SECTION("remote service waiting longer than 10 minutes for the service") {
    const auto e = agent_error(
        "[[remote]]\nname = \"x\"\nurl = \"https://sign.vn/csc/v2\"\n"
        "unavailable_wait_seconds = 601\n");
    CHECK(e.key() == "remote[0].unavailable_wait_seconds");
    CHECK(e.line() == 4);
  }
  SECTION("remote service without url") {
    const auto e = agent_error("[[remote]]\nname = \"x\"\n");
    CHECK(e.key() == "remote[0].url");
    CHECK_THAT(e.detail(), Catch::Contains("required"));
  }
  SECTION("TOML syntax error") {
    const auto e = agent_error("port = 19587\nlanguage = \"vi\n");
    CHECK(e.line() == 2);
    CHECK_THAT(e.detail(), Catch::Contains("syntax"));
  }
}

TEST_CASE("loadAgentConfig_missingFile_saysSo", "[config]") {
  try {
    (void)kyso::firmware_config::load_agent_config("/nonexistent/kyso-agent.toml");
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.detail(), Catch::StartsWith("/nonexistent/kyso-agent.toml: "));
    CHECK_THAT(e.located(kyso::Language::Vi), Catch::Contains("không mở được tệp"));
  }
}

namespace {

ConfigError error_of(const std::function<void(const fs::path&)>& load, const TempDir& dir,
                     const std::string& name, const std::string& text) {
  const auto file = dir.write(name, text);
  try {
    load(file);
  } catch (const ConfigError& e) {
    CHECK(e.file() == file.string());
    return e;
  }
  FAIL("no error for:\n" << text);
  throw std::logic_error("unreachable");
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A real certificate (openssl), for [[credentials]] certificate = "...".
void make_certificate(const fs::path& cert) {
  fs::create_directories(cert.parent_path());
  const std::string cmd =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "
      "/CN=test -keyout '" +
      cert.string() + ".key' -out '" + cert.string() + "' >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
}

// The certificate's SHA-256 as OpenSSL computes it, lower-case hex without colons.
std::string sha256_fingerprint(const fs::path& cert) {
  const std::string out_file = cert.string() + ".fp";
  const std::string cmd =
      "openssl x509 -noout -fingerprint -sha256 -in '" + cert.string() + "' > '" + out_file + "'";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::string fp;
  for (const char ch : slurp(out_file).substr(slurp(out_file).find('=') + 1)) {
    if (std::isxdigit(static_cast<unsigned char>(ch)) != 0) {
      fp.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    }
  }
  return fp;
}

}  // namespace

TEST_CASE("defaultTokenProfiles_coverDomainTable_andMatchBuiltinTable", "[config]") {
  const auto& profiles = kyso::firmware_config::default_token_profiles();
  REQUIRE(profiles.size() == 5);
  const auto* epass = kyso::firmware_config::find_profile(profiles, 0x096e, 0x0807);
  REQUIRE(epass != nullptr);
  CHECK(epass->token.model == "ePass2003");
  CHECK(epass->token.linux_package == "opensc-pkcs11");
  CHECK_FALSE(epass->token.windows_modules.empty());
  REQUIRE(kyso::firmware_config::find_profile(profiles, 0x0529, 0x0620) != nullptr);
  CHECK(kyso::firmware_config::find_profile(profiles, 0x0529, 0x0620)->token.model ==
        "eToken 5110");
  CHECK(kyso::firmware_config::find_profile(profiles, 0x08e6, 0x34cc) != nullptr);
  const auto known = kyso::firmware_config::to_known_tokens(profiles);
  for (const auto& b : kyso::pkcs11::builtin_known_tokens()) {
    const auto* p = kyso::firmware_config::find_profile(profiles, b.vendor_id, b.product_id);
    REQUIRE(p != nullptr);
    CHECK(p->token.linux_modules.front() == b.linux_modules.front());
  }
  // A fake inventory: an ePass2003 on a machine without any module installed.
  const std::vector<kyso::pkcs11::UsbDevice> devices{{0x096e, 0x0807, 1, 4}};
  const auto status =
      kyso::pkcs11::diagnose_usb(devices, known, [](const std::string&) { return false; });
  REQUIRE(status.size() == 1);
  CHECK_FALSE(status[0].module.has_value());
  CHECK_THAT(status[0].hint_en, Catch::Contains("opensc-pkcs11"));
}

TEST_CASE("tokenProfiles_mistakes_nameFileLineAndKey", "[config]") {
  TempDir dir;
  auto load = [](const fs::path& f) { (void)kyso::firmware_config::load_token_profiles(f); };
  const std::string head = "schema = 1\n[[token]]\nvendor = \"F\"\nmodel = \"M\"\n";
  SECTION("bad VID:PID") {
    const auto e = error_of(load, dir, "t.toml",
                            head + "usb = \"96e:807\"\n[token.modules]\nlinux = [\"/x.so\"]\n");
    CHECK(e.key() == "token[0].usb");
    CHECK(e.line() == 5);
  }
  SECTION("duplicate VID:PID") {
    const auto e = error_of(load, dir, "t.toml",
                            head + "usb = \"096e:0807\"\n[token.modules]\nlinux = [\"/x.so\"]\n" +
                                "[[token]]\nvendor = \"F\"\nmodel = \"N\"\nusb = \"096E:0807\"\n");
    CHECK(e.key() == "token[1].usb");
    CHECK(e.line() == 11);
  }
  SECTION("relative Linux module") {
    const auto e =
        error_of(load, dir, "t.toml",
                 head + "usb = \"096e:0807\"\n[token.modules]\nlinux = [\"opensc-pkcs11.so\"]\n");
    CHECK(e.key() == "token[0].modules.linux[0]");
    CHECK(e.line() == 7);
  }
  SECTION("bad PIN policy") {
    const auto e = error_of(load, dir, "t.toml",
                            head +
                                "usb = \"096e:0807\"\n[token.modules]\nlinux = "
                                "[\"/x.so\"]\n[token.pin]\nmin_length = 9\nmax_length = 8\n");
    CHECK(e.key() == "token[0].pin.min_length");
    CHECK(e.line() == 9);
  }
  SECTION("unknown algorithm") {
    const auto e = error_of(load, dir, "t.toml",
                            head +
                                "usb = \"096e:0807\"\nalgorithms = "
                                "[\"rsa1024\"]\n[token.modules]\nlinux = [\"/x.so\"]\n");
    CHECK(e.key() == "token[0].algorithms[0]");
  }
  SECTION("missing schema") {
    const auto e = error_of(load, dir, "t.toml", "[[token]]\n");
    CHECK(e.key() == "schema");
  }
  SECTION("unknown family in a quirk") {
    const auto e = error_of(load, dir, "t.toml",
                            head +
                                "usb = \"096e:0807\"\n[token.modules]\nlinux = [\"/x.so\"]\n"
                                "[[token.quirks]]\navoid = [\"ecdsa\", \"dsa\"]\n");
    CHECK(e.key() == "token[0].quirks[0].avoid[1]");
    CHECK(e.line() == 9);
  }
  SECTION("bad firmware version in a quirk") {
    const auto e = error_of(load, dir, "t.toml",
                            head +
                                "usb = \"096e:0807\"\n[token.modules]\nlinux = [\"/x.so\"]\n"
                                "[[token.quirks]]\nfirmware_min = \"2\"\n");
    CHECK(e.key() == "token[0].quirks[0].firmware_min");
  }
}

TEST_CASE("tokenProfiles_quirks_parsedAndMatchedByWhatTheTokenReports", "[config]") {
  const auto profiles = kyso::firmware_config::parse_token_profiles(
      "schema = 1\n[[token]]\nvendor = \"Feitian\"\nmodel = \"ePass2003\"\n"
      "usb = \"096e:0807\"\n[token.modules]\nlinux = [\"/x.so\"]\n"
      "[[token.quirks]]\nmanufacturer = \"EnterSafe\"\nfirmware_min = \"2.3\"\n"
      "avoid = [\"rsa\", \"rsa-pss\"]\nprefer = [\"ecdsa\"]\n"
      "login_survives_session_close = false\nnote = \"RSA fails\"\n"
      "[[token.quirks]]\nmanufacturer = \"EnterSafe\"\n",
      "t.toml");
  const auto quirks = kyso::firmware_config::to_token_quirks(profiles);
  REQUIRE(quirks.size() == 2);
  const auto& q = quirks[0];
  CHECK(q.profile == "Feitian ePass2003");
  CHECK(q.avoid == std::vector{kyso::pkcs11::KeyFamily::Rsa, kyso::pkcs11::KeyFamily::RsaPss});
  CHECK(q.prefer == std::vector{kyso::pkcs11::KeyFamily::Ecdsa});
  CHECK_FALSE(q.login_survives_session_close);
  CHECK_FALSE(q.reinitialize_after_hotplug);
  CHECK(q.note == "RSA fails");
  CHECK(q.matches("EnterSafe", "PKCS#15", {2, 3}));
  CHECK(q.matches("EnterSafe", "PKCS#15", {3, 0}));
  CHECK_FALSE(q.matches("EnterSafe", "PKCS#15", {2, 2}));
  CHECK_FALSE(q.matches("SafeNet, Inc.", "eToken", {2, 3}));
  CHECK(quirks[1].matches("EnterSafe", "", {0, 1}));  // no range: any firmware
  // The built-in table carries the known ones.
  const auto builtin =
      kyso::firmware_config::to_token_quirks(kyso::firmware_config::default_token_profiles());
  CHECK(std::ranges::any_of(builtin, [](const auto& b) { return b.reinitialize_after_hotplug; }));
  CHECK(std::ranges::any_of(builtin, [](const auto& b) { return !b.prefer.empty(); }));
}

TEST_CASE("pinPolicy_check_refusesWhatTheTokenWould", "[config]") {
  kyso::firmware_config::PinPolicy p{
      .min_length = 6, .max_length = 8, .charset = kyso::firmware_config::PinCharset::Digits};
  kyso::Secret ok;
  ok.assign("123456");
  CHECK_NOTHROW(p.check(ok));
  kyso::Secret shortpin;
  shortpin.assign("1234");
  CHECK_THROWS_AS(p.check(shortpin), kyso::Error);
  kyso::Secret letters;
  letters.assign("12345a");
  CHECK_THROWS_AS(p.check(letters), kyso::Error);
}

TEST_CASE("examples_loadWithoutError", "[config]") {
  const fs::path examples = KYSO_EXAMPLES_DIR;
  TempDir dir;
  // The examples' relative files, as an installation would have them.
  for (const char* f : {"tls/agent.crt", "tls/agent.key", "ca/neac-root.pem", "ca/vgca-root.pem",
                        "tls/appliance.crt", "tls/appliance.key"}) {
    dir.write(f, "x");
  }
  const auto agent = kyso::firmware_config::load_agent_config(
      dir.write("kyso-agent.toml", slurp(examples / "kyso-agent.toml")));
  CHECK(agent.allowed_origins.size() == 2);
  CHECK(agent.remote.size() == 1);
  // The example's module path may not exist here; the appliance refuses a missing module.
  std::string appliance_text = slurp(examples / "kyso-appliance.toml");
  const auto module_line = appliance_text.find("/usr/lib/softhsm/libsofthsm2.so");
  appliance_text.replace(module_line, std::string("/usr/lib/softhsm/libsofthsm2.so").size(),
                         "tls/appliance.crt");
  make_certificate(dir.path / "certs/gv-nguyenthianh.pem");
  make_certificate(dir.path / "certs/ht-tranvanbinh.pem");
  dir.write("secrets/gv.nguyenthianh.totp", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n");
  dir.write("secrets/ht.tranvanbinh.totp", "gezd gnbv gy3t qojq gezd gnbv gy3t qojq\n");
  const auto appliance = kyso::firmware_config::load_appliance_config(
      dir.write("kyso-appliance.toml", appliance_text));
  CHECK(appliance.listen_address == "0.0.0.0");
  CHECK(appliance.port == 8443);
  CHECK(appliance.name == "Sở GD&ĐT Hà Nội - máy ký");
  CHECK(appliance.hsm_token_label == "Kyso HSM");
  CHECK_FALSE(appliance.hsm_slot.has_value());
  CHECK(appliance.state_db == "/var/lib/kyso-appliance/state.db");
  REQUIRE(appliance.users.size() == 2);
  CHECK(appliance.users[0].name == "gv.nguyenthianh");
  CHECK(appliance.users[1].totp_secret == "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
  REQUIRE(appliance.users[1].credentials.size() == 1);
  CHECK(appliance.users[1].credentials[0] ==
        sha256_fingerprint(dir.path / "certs/ht-tranvanbinh.pem"));
  REQUIRE(appliance.clients.size() == 1);
  CHECK(appliance.clients[0].user == "ht.tranvanbinh");
  CHECK(appliance.limits.multisign == 100);
  CHECK(appliance.limits.lockout == std::chrono::seconds(900));
  const auto school = kyso::firmware_config::load_token_profiles(examples / "tokens-school.toml");
  REQUIRE(school.size() == 1);
  CHECK(school[0].pin.charset == kyso::firmware_config::PinCharset::Digits);
  const auto rows = kyso::firmware_config::read_batch_csv(examples / "staff.csv",
                                                          {{"o", "Trường THPT Chu Văn An"}});
  REQUIRE(rows.size() == 3);
  CHECK(rows[2].subject.size() == 6);  // C, O, title, UID CCCD, UID MST, CN
}

TEST_CASE("applianceConfig_mistakes_nameFileLineAndKey", "[config]") {
  TempDir dir;
  dir.write("a.crt", "x");
  dir.write("a.key", "x");
  dir.write("m.so", "x");
  dir.write("u.totp", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n");
  make_certificate(dir.path / "c.pem");
  auto load = [](const fs::path& f) { (void)kyso::firmware_config::load_appliance_config(f); };
  // Lines 1-9; a case's own lines start at 10.
  const std::string base =
      "[server]\nlisten = \"0.0.0.0:8443\"\n[tls]\ncert = \"a.crt\"\nkey = \"a.key\"\n"
      "[hsm]\nmodule = \"m.so\"\ntoken_label = \"HSM\"\n\n";
  const std::string cred = "[[credentials]]\nid = \"c\"\ncertificate = \"c.pem\"\n";  // 10-12
  const std::string hash = "\"$scrypt$ln=10,r=8,p=1$c2FsdA$a2V5\"";
  const auto check = [&](const std::string& text, const std::string& key, std::uint32_t line,
                         const std::string& says = "") {
    const auto e = error_of(load, dir, "a.toml", text);
    CHECK(e.key() == key);
    CHECK(e.line() == line);
    CHECK_THAT(e.detail(), Catch::StartsWith((dir.path / "a.toml").string() + ":" +
                                             std::to_string(line) + ":"));
    if (!key.empty()) CHECK_THAT(e.detail(), Catch::Contains(": " + key + ": "));
    CHECK_FALSE(e.what_vi().empty());
    if (!says.empty()) CHECK_THAT(e.detail(), Catch::Contains(says));
  };
  SECTION("bad listen port") {
    check("[server]\nlisten = \"0.0.0.0:70000\"\n", "server.listen", 2);
  }
  SECTION("listen on a host name") {
    check("[server]\nlisten = \"sign.example.vn:8443\"\n", "server.listen", 2, "IP address");
  }
  SECTION("no [tls]") {
    check("[server]\nlisten = \"0.0.0.0:8443\"\n", "tls", 1, "HTTPS");
  }
  SECTION("TLS key readable by others") {
    fs::permissions(dir.path / "a.key", fs::perms::group_read, fs::perm_options::add);
    check(base, "tls.key", 5, "chmod 600");
  }
  SECTION("missing module file") {
    std::string text = base;
    text.replace(text.find("m.so"), 4, "nope.so");
    check(text, "hsm.module", 7, "file not found");
  }
  SECTION("unknown sub-table") {
    check(base + "[hsm.x]\n", "hsm.x", 10, "unknown key");
  }
  SECTION("slot and token label together") {
    std::string text = base;
    text.insert(text.find("token_label"), "slot = 1\n");
    check(text, "hsm.slot", 8, "exactly one");
  }
  SECTION("an HSM PIN file") {
    std::string text = base;
    text.insert(text.find("token_label"), "pin_file = \"a.key\"\n");
    check(text, "hsm.pin_file", 8, "never stores the HSM PIN");
  }
  SECTION("credential with certificate and sha256") {
    check(base + cred + "sha256 = \"" + std::string(64, 'a') + "\"\n", "credentials[0].sha256", 13,
          "exactly one");
  }
  SECTION("credential certificate that is not one") {
    check(base + "[[credentials]]\nid = \"c\"\ncertificate = \"a.crt\"\n",
          "credentials[0].certificate", 12, "not a certificate");
  }
  SECTION("credential sha256 that is not one") {
    check(base + "[[credentials]]\nid = \"c\"\nsha256 = \"abc\"\n", "credentials[0].sha256", 12,
          "64 hex digits");
  }
  SECTION("duplicate credential id") {
    check(base + cred + cred, "credentials[1].id", 14, "duplicate");
  }
  SECTION("user with an unknown credential") {
    check(
        base + cred +
            "[[users]]\nname = \"gv\"\nsecond_factor = \"none\"\ncredentials = [\"c\", \"nope\"]\n",
        "users[0].credentials[1]", 16, "no [[credentials]] with id nope");
  }
  SECTION("password instead of its hash") {
    check(base + "[[users]]\nname = \"gv\"\npassword_hash = \"123456\"\n", "users[0].password_hash",
          12, "hash-password");
  }
  SECTION("TOTP without a secret file") {
    check(base + "[[users]]\nname = \"gv\"\npassword_hash = " + hash + "\n",
          "users[0].totp_secret_file", 10, "second_factor");
  }
  SECTION("TOTP secret readable by others") {
    fs::permissions(dir.path / "u.totp", fs::perms::others_read, fs::perm_options::add);
    check(base + "[[users]]\nname = \"gv\"\ntotp_secret_file = \"u.totp\"\n",
          "users[0].totp_secret_file", 12, "chmod 600");
  }
  SECTION("TOTP secret not base32") {
    dir.write("bad.totp", "JBSWY3DPEHPK3PXP1BSWY3DPEHPK3PXP\n");
    check(base + "[[users]]\nname = \"gv\"\ntotp_secret_file = \"bad.totp\"\n",
          "users[0].totp_secret_file", 12, "base32");
  }
  SECTION("TOTP secret too short") {
    dir.write("short.totp", "JBSWY3DPEHPK3PXP\n");
    check(base + "[[users]]\nname = \"gv\"\ntotp_secret_file = \"short.totp\"\n",
          "users[0].totp_secret_file", 12, "128 bits");
  }
  SECTION("unknown second factor") {
    check(base + "[[users]]\nname = \"gv\"\nsecond_factor = \"sms\"\n", "users[0].second_factor",
          12);
  }
  SECTION("duplicate user") {
    const std::string u = "[[users]]\nname = \"gv\"\nsecond_factor = \"none\"\n";
    check(base + u + u, "users[1].name", 14, "duplicate");
  }
  SECTION("client for an unknown user") {
    check(base + "[[clients]]\nclient_id = \"s\"\nsecret_hash = " + hash + "\nuser = \"nobody\"\n",
          "clients[0].user", 13, "no [[users]] named nobody");
  }
  SECTION("limit of the wrong type") {
    check(base + "[limits]\nmultisign = \"many\"\n", "limits.multisign", 11);
  }
  SECTION("limit out of range") {
    check(base + "[limits]\nmax_failures = 0\n", "limits.max_failures", 11);
  }
  SECTION("misspelt key") {
    check(base + "[limits]\nmultisig = 10\n", "limits.multisig", 11, "unknown key");
  }
  SECTION("TOML syntax error") {
    check(base + "[limits\n", "", 10, "TOML syntax error");
  }
}

TEST_CASE("applianceConfig_minimal_defaultsAndPaths", "[config]") {
  TempDir dir;
  dir.write("a.crt", "x");
  dir.write("a.key", "x");
  dir.write("m.so", "x");
  make_certificate(dir.path / "c.pem");
  const auto file = dir.write("sub/a.toml",
                              "[server]\nlisten = \"[::1]:0\"\nstate_db = \"state/s.db\"\n"
                              "[tls]\ncert = \"../a.crt\"\nkey = \"../a.key\"\n"
                              "[hsm]\nmodule = \"../m.so\"\nslot = 3\n"
                              "[[credentials]]\nid = \"c\"\nsha256 = \"" +
                                  std::string(64, 'A') +
                                  "\"\n"
                                  "[[users]]\nname = \"gv\"\nsecond_factor = \"none\"\n"
                                  "credentials = [\"c\"]\n");
  const auto c = kyso::firmware_config::load_appliance_config(file);
  CHECK(c.listen_address == "::1");
  CHECK(c.port == 0);
  CHECK(c.state_db == dir.path / "sub/state/s.db");
  CHECK(c.tls_cert_file == (dir.path / "a.crt").string());
  REQUIRE(c.pkcs11_modules.size() == 1);
  CHECK(c.pkcs11_modules[0] == (dir.path / "m.so").string());
  CHECK(c.hsm_slot == 3UL);
  CHECK(c.hsm_token_label.empty());
  REQUIRE(c.users.size() == 1);
  CHECK(c.users[0].totp_secret.empty());
  CHECK(c.users[0].password_hash.empty());
  CHECK(c.users[0].credentials == std::vector<std::string>{std::string(64, 'a')});
  CHECK(c.limits.multisign == 100);
}
