// core's shared utilities: the hash chain both audit logs use, random bytes, PIN tags, ASCII
// folding and the HTTP client (URL parsing, deadlines against a silent loopback server). No token.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/hash_chain.hpp"
#include "kyso/core/http.hpp"
#include "kyso/core/pin_tag.hpp"
#include "kyso/core/random.hpp"
#include "kyso/core/text.hpp"

namespace {

// The canonical form written out by hand: "<len>:<bytes>" for prev, seq, time, each field.
std::string canonical(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += std::to_string(p.size()) + ":" + p;
  return out;
}

std::string sha256_hex(const std::string& s) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
  return kyso::to_hex(kyso::sha256({p, s.size()}));
}

struct Row {
  std::int64_t seq;
  std::string time;
  std::vector<std::string> fields;
  std::string prev;
  std::string hash;
};

// A chain of three rows as a store would hold them.
std::vector<Row> chain_of_three() {
  kyso::ChainHasher h;
  std::vector<Row> rows;
  std::string prev(kyso::kChainGenesis);
  for (std::int64_t seq = 1; seq <= 3; ++seq) {
    Row r{seq,
          "2026-12-02T05:00:0" + std::to_string(seq) + "Z",
          {"signature", "https://hocba.example.edu.vn", "teacher:" + std::to_string(seq)},
          prev,
          {}};
    const std::vector<std::string_view> f(r.fields.begin(), r.fields.end());
    r.hash = std::string(h.link(prev, seq, r.time, f));
    prev = r.hash;
    rows.push_back(std::move(r));
  }
  return rows;
}

// The first row the verifier refuses (0: none) and why.
std::pair<std::int64_t, std::string> verify(const std::vector<Row>& rows) {
  kyso::ChainVerifier v;
  for (const auto& r : rows) {
    const std::vector<std::string_view> f(r.fields.begin(), r.fields.end());
    auto why = v.check({r.seq, r.time, f, r.prev, r.hash});
    if (!why.empty()) return {r.seq, why};
  }
  return {0, ""};
}

}  // namespace

TEST_CASE("ChainHasher hashes the canonical row form, chained from the genesis", "[core][chain]") {
  kyso::ChainHasher h;
  const std::vector<std::string_view> fields{"approval", "", "a:b"};
  const std::string expected = sha256_hex(canonical(
      {std::string(kyso::kChainGenesis), "7", "2026-12-02T05:00:00Z", "approval", "", "a:b"}));
  CHECK(h.link(kyso::kChainGenesis, 7, "2026-12-02T05:00:00Z", fields) == expected);
  // Length prefixes: moving a byte from one field to the next changes the hash.
  const std::vector<std::string_view> shifted{"approval:", "", "b"};
  CHECK(h.link(kyso::kChainGenesis, 7, "2026-12-02T05:00:00Z", shifted) != expected);
}

TEST_CASE("ChainVerifier accepts an intact chain and names the first broken row", "[core][chain]") {
  auto rows = chain_of_three();
  CHECK(verify(rows).first == 0);

  auto edited = rows;
  edited[1].fields[2] = "teacher:9";
  CHECK(verify(edited) ==
        std::pair<std::int64_t, std::string>{2, "content does not match its hash (edited)"});

  auto removed = rows;
  removed.erase(removed.begin() + 1);
  CHECK(verify(removed).first == 3);
  CHECK_THAT(verify(removed).second, Catch::Contains("missing before this one"));

  auto first_gone = rows;
  first_gone.erase(first_gone.begin());
  CHECK(verify(first_gone).first == 2);

  auto relinked = rows;
  relinked[2].prev = relinked[0].hash;
  CHECK(verify(relinked) ==
        std::pair<std::int64_t, std::string>{3, "does not chain to the previous row"});
}

TEST_CASE("random_bytes fills what it is given, differently each time", "[core][security]") {
  std::set<kyso::Bytes> seen;
  for (int i = 0; i < 8; ++i) seen.insert(kyso::random_bytes(32));
  CHECK(seen.size() == 8);
  CHECK(kyso::random_bytes(0).empty());
}

TEST_CASE("PinTagger tags a PIN without keeping it, under a key of its own", "[core][security]") {
  kyso::Secret a;
  a.assign("123456");
  kyso::Secret b;
  b.assign("123457");
  const kyso::PinTagger t;
  CHECK(kyso::PinTagger::same(t.tag(a), t.tag(a)));
  CHECK_FALSE(kyso::PinTagger::same(t.tag(a), t.tag(b)));
  const kyso::PinTagger other;  // another process, another key: tags never compare across
  CHECK_FALSE(kyso::PinTagger::same(t.tag(a), other.tag(a)));
}

TEST_CASE("ascii_lower folds A-Z only", "[core]") {
  CHECK(kyso::ascii_lower("HocBa.EXAMPLE.edu.VN:19587") == "hocba.example.edu.vn:19587");
  CHECK(kyso::ascii_lower("Ký SỐ") == "ký sỐ");  // UTF-8 bytes untouched
  CHECK(kyso::ascii_iequals("CCCD", "cccd"));
  CHECK_FALSE(kyso::ascii_iequals("CCCD", "cccd "));
}

TEST_CASE("http::Url takes http and https URLs and nothing else", "[core][http]") {
  const auto u = kyso::http::Url::parse("https://sign.example.vn/csc/v2/");
  CHECK(u.tls);
  CHECK(u.host == "sign.example.vn");
  CHECK(u.port == "443");
  CHECK(u.path == "/csc/v2");
  const auto v = kyso::http::Url::parse("http://[::1]:8080");
  CHECK_FALSE(v.tls);
  CHECK(v.host == "::1");
  CHECK(v.port == "8080");
  CHECK(v.path.empty());
  CHECK_THROWS_AS(kyso::http::Url::parse("ftp://example.vn/"), kyso::Error);
  CHECK_THROWS_AS(kyso::http::Url::parse("https:///nohost"), kyso::Error);
}

namespace {

// A server that the kernel lets in (the listen backlog accepts the connection) but that never
// reads or answers: a hung agent, appliance or TSA.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 4) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
  }
  ~SilentServer() { ::close(fd_); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  [[nodiscard]] std::string url(const char* scheme) const {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(port_);
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace

TEST_CASE("http::Client gives up on a server that accepts and never answers", "[core][http]") {
  SilentServer silent;
  kyso::http::Options o;
  o.connect_timeout = std::chrono::milliseconds(300);
  o.request_timeout = std::chrono::milliseconds(300);
  o.verify_peer = false;
  for (const char* scheme : {"http", "https"}) {
    INFO(scheme);
    kyso::http::Client client(silent.url(scheme), o);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      (void)client.request("GET", "/", {}, {}, {}, false);
      FAIL("a silent server answered");
    } catch (const kyso::Error& e) {
      CHECK(e.code() == kyso::ErrorCode::RemoteUnreachable);
    }
    // Within the deadline and some slack, not forever (the synchronous reads before this test
    // ignored the deadline: kyso doctor hung on a stopped agent).
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  }
}

TEST_CASE("http::trust_context parses the anchors once per CA file, and again when it changes",
          "[core][http]") {
  // Every https client used to parse the system bundle (about 150 certificates) on its own: each
  // of a remote batch's connections, each https TSA or OCSP request.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kyso-trust-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto make_ca = [&](const std::string& name) {
    const auto pem = dir / (name + ".pem");
    const std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
        "-nodes -days 1 -subj /CN=" +
        name + " -keyout /dev/null -out " + pem.string() + " 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    return pem;
  };
  const auto ca = (dir / "ca.pem").string();
  std::filesystem::rename(make_ca("first"), ca);

  const auto a = kyso::http::trust_context(ca);
  REQUIRE(a != nullptr);
  CHECK(kyso::http::trust_context(ca) == a);
  const auto system = kyso::http::trust_context("");
  CHECK(system != a);
  CHECK(kyso::http::trust_context("") == system);
  // A renewed CA file (written beside, then renamed over, as installers do) is read again.
  std::filesystem::rename(make_ca("second"), ca);
  const auto b = kyso::http::trust_context(ca);
  CHECK(b != a);
  CHECK(kyso::http::trust_context(ca) == b);
  try {
    (void)kyso::http::trust_context((dir / "missing.pem").string());
    FAIL("a missing CA file was accepted");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::ConfigInvalid);
  }
  std::filesystem::remove_all(dir);
}
