// Configuration files: what loads, and how each kind of mistake is reported (file, line, key).

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "kyso/config/agent_config.hpp"
#include "kyso/config/config_error.hpp"

namespace fs = std::filesystem;
using kyso::config::ConfigError;

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
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
};

// Loads `text` as an agent config and returns the error it must raise.
ConfigError agent_error(const std::string& text) {
  TempDir dir;
  const auto file = dir.write("kyso-agent.toml", text);
  try {
    (void)kyso::config::load_agent_config(file);
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
  const auto c = kyso::config::load_agent_config(file);
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
  CHECK_FALSE(c.system_modules);
  REQUIRE(c.remote.size() == 1);
  CHECK(c.remote[0].name == "Sở GD&ĐT - máy ký");
  CHECK(c.limits.max_connections == 4);
  CHECK(c.limits.approval_timeout == std::chrono::seconds(60));
}

TEST_CASE("loadAgentConfig_emptyFile_givesDefaults", "[config]") {
  TempDir dir;
  const auto c = kyso::config::load_agent_config(dir.write("empty.toml", ""));
  CHECK(c.port == kyso::config::kDefaultAgentPort);
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
    const auto e = agent_error("[origins]\nallowed = [\n  \"https://ok.vn\",\n  \"https://hocba.vn/app\",\n]\n");
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
  SECTION("remote service over http") {
    const auto e = agent_error("[[remote]]\nname = \"x\"\nurl = \"http://sign.vn/csc/v2\"\n");
    CHECK(e.key() == "remote[0].url");
    CHECK(e.line() == 3);
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
    (void)kyso::config::load_agent_config("/nonexistent/kyso-agent.toml");
    FAIL("no error");
  } catch (const ConfigError& e) {
    CHECK_THAT(e.detail(), Catch::StartsWith("/nonexistent/kyso-agent.toml: "));
    CHECK_THAT(e.located(kyso::Language::Vi), Catch::Contains("không mở được tệp"));
  }
}
