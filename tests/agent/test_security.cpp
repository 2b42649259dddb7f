// What the agent refuses: before the upgrade (Host, Origin, other users), and on the socket
// (unpaired origins, oversized frames, malformed JSON, unknown methods, over-approved batches,
// Cancel, wrong PINs).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <catch2/catch.hpp>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "harness.hpp"
#include "kyso/agent/audit.hpp"

using namespace kyso;
using namespace kyso::test;
using json = nlohmann::json;
namespace websocket = boost::beast::websocket;

namespace {

json teacher_sign(const std::string& title) {
  return {{"role", "teacher"}, {"item", hash_item(title)}};
}

}  // namespace

TEST_CASE("upgrade_wrongHost_refusedBeforeUpgrade", "[ws][security]") {
  Agent a;
  const auto port = std::to_string(a.port());
  CHECK(upgrade_status(a.port(), kSchool, "evil.example:" + port) == 403);
  CHECK(upgrade_status(a.port(), kSchool, "127.0.0.1.nip.io:" + port) == 403);
  CHECK(upgrade_status(a.port(), kSchool, "127.0.0.1:1") == 403);
  CHECK(upgrade_status(a.port(), kSchool, "localhost:" + port) == 101);
  CHECK(upgrade_status(a.port(), kSchool, "[::1]:" + port) == 101);
}

TEST_CASE("upgrade_foreignOrigin_refusedBeforeUpgrade", "[ws][security]") {
  Agent a;
  const auto host = "127.0.0.1:" + std::to_string(a.port());
  CHECK(upgrade_status(a.port(), "http://evil.example", host) == 403);
  CHECK(upgrade_status(a.port(), "null", host) == 403);
  CHECK(upgrade_status(a.port(), "chrome-extension://abcdef", host) == 403);
  CHECK(upgrade_status(a.port(), kSchool, host) == 101);
  CHECK(a.server->connections() <= 1);
}

TEST_CASE("upgrade_missingOrigin_refusedBeforeUpgrade", "[ws][security]") {
  Agent a;
  CHECK(upgrade_status(a.port(), std::nullopt, "127.0.0.1:" + std::to_string(a.port())) == 403);
  const auto rows = agent::AuditLog::verify(a.state / "state" / "audit.db");
  CHECK(rows.ok);
  CHECK(rows.rows >= 1);  // the refusal is audited
}

TEST_CASE("connection_fromAnotherOsUser_refused", "[ws][security]") {
  if (::getuid() != 0) {
    WARN("needs root to act as another user; skipped");
    return;
  }
  Agent a;
  const auto port = a.port();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // The child becomes "nobody" and tries what any page of that user could.
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const int st = upgrade_status(port, kSchool, "127.0.0.1:" + std::to_string(port));
    ::_exit(st == 101 ? 1 : 0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(upgrade_status(port, kSchool, "127.0.0.1:" + std::to_string(port)) == 101);
}

TEST_CASE("sign_unpairedOrigin_originNotPaired", "[ws][security]") {
  Agent a;
  Client c(a.port(), "https://other-school.example.vn");
  const auto hello = c.call("hello", {{"protocols", {1}}});
  CHECK(hello["result"]["paired"] == false);
  CHECK(code_of(c.call("sign", teacher_sign("Học bạ - Nguyễn Văn A"))) == "ORIGIN_NOT_PAIRED");
  CHECK(code_of(c.call("credentials.list", json::object())) == "ORIGIN_NOT_PAIRED");
  CHECK(code_of(c.call("batch.sign", {{"role", "teacher"}, {"items", {hash_item("x")}}})) ==
        "ORIGIN_NOT_PAIRED");
  CHECK(pinentry_dialogs().empty());
  CHECK(Faults::get("count.C_Login") == 0);
}

TEST_CASE("pair_userConfirmsCode_originPairedThenRevoked", "[ws][security]") {
  Agent a;
  const std::string origin = "https://thpt-chuvanan.hanoi.edu.vn";
  Client c(a.port(), origin);
  const auto r = c.call("pair", json::object());
  REQUIRE(r.contains("result"));
  CHECK(r["result"]["paired"] == true);
  // The page got the code as an event first, and the agent's dialog showed the same code.
  REQUIRE(c.events.size() == 1);
  CHECK(c.events[0]["event"] == "pair.code");
  const auto code = c.events[0]["params"]["code"].get<std::string>();
  CHECK(code.size() == 7);
  const auto dialogs = pinentry_dialogs();
  REQUIRE(dialogs.size() == 1);
  CHECK(dialogs[0].starts_with("CONFIRM"));
  CHECK(dialogs[0].find(code) != std::string::npos);
  CHECK(dialogs[0].find(origin) != std::string::npos);

  CHECK(c.call("hello", json::object())["result"]["paired"] == true);
  CHECK(c.call("credentials.list", {{"role", "seal"}}).contains("result"));
  // Revoked (what `kyso origins revoke` does): the next request is refused.
  CHECK(a.service->pairings().remove(origin));
  CHECK(code_of(c.call("credentials.list", json::object())) == "ORIGIN_NOT_PAIRED");
}

TEST_CASE("pair_userCancels_notPaired", "[ws][security]") {
  pinentry_script("cancel", "");
  Agent a;
  Client c(a.port(), "https://other-school.example.vn");
  CHECK(code_of(c.call("pair", json::object())) == "USER_CANCELLED");
  CHECK(c.call("hello", json::object())["result"]["paired"] == false);
}

TEST_CASE("frame_overTheLimit_connectionClosedTooBig", "[ws][security]") {
  Agent a([](firmware_config::AgentConfig& cfg) { cfg.limits.max_frame_bytes = 4096; });
  Client c(a.port());
  CHECK(c.call("hello", json::object()).contains("result"));
  c.send_text(
      json{{"id", 1}, {"method", "hello"}, {"params", {{"pad", std::string(5000, 'x')}}}}.dump());
  CHECK_THROWS(c.read());
  CHECK(c.ws().reason().code == websocket::close_code::too_big);
}

TEST_CASE("message_malformedJson_badRequestAndConnectionStays", "[ws][security]") {
  Agent a;
  Client c(a.port());
  c.send_text("{\"id\": 1, \"method\": \"hello\"");
  auto r = c.read();
  CHECK(r["id"].is_null());
  CHECK(code_of(r) == "BAD_REQUEST");
  CHECK(r["error"]["message"]["vi"].get<std::string>().size() > 0);
  CHECK(r["error"]["message"]["en"].get<std::string>().size() > 0);
  c.send_text("[1,2,3]");
  CHECK(code_of(c.read()) == "BAD_REQUEST");
  c.send_text(R"({"id": {"x": 1}, "method": "hello"})");
  CHECK(code_of(c.read()) == "BAD_REQUEST");
  CHECK(c.call("hello", json::object()).contains("result"));
}

TEST_CASE("method_unknown_notSupported", "[ws][security]") {
  Agent a;
  Client c(a.port());
  CHECK(code_of(c.call("token.format", json::object())) == "NOT_SUPPORTED");
  CHECK(code_of(c.call("sign", {{"role", "teacher"}, {"item", {{"type", "docx"}}}})) ==
        "BAD_REQUEST");
  CHECK(code_of(c.call("sign", {{"role", "teacher"}, {"item", {{"type", "pdf"}}}})) ==
        "BAD_REQUEST");  // a document item without its document
  CHECK(code_of(c.call("sign", {{"role", "dean"}, {"item", hash_item("x")}})) == "BAD_REQUEST");
}

TEST_CASE("batch_approvedForNThenNPlusOne_batchLimitAndNeverSigned", "[ws][security]") {
  Agent a;
  Client c(a.port());
  // Announcing N and sending N+1 at once.
  CHECK(code_of(
            c.call("batch.sign", {{"role", "principal"},
                                  {"total", 2},
                                  {"items", {hash_item("a"), hash_item("b"), hash_item("c")}}})) ==
        "BATCH_LIMIT");
  // Approved for exactly 3, signed, then one more for the same approval.
  json items = {hash_item("Học bạ 1"), hash_item("Học bạ 2")};
  c.send_text(json{{"id", "b1"},
                   {"method", "batch.sign"},
                   {"params", {{"role", "principal"}, {"total", 3}, {"items", items}}}}
                  .dump());
  const auto more = c.call("batch.items", {{"batchId", "b1"}, {"items", {hash_item("Học bạ 3")}}});
  CHECK(more["result"]["received"] == 3);
  json summary;
  do {
    summary = c.read();
  } while (summary.contains("event") || summary.value("id", json()) != "b1");
  INFO(summary.dump());
  REQUIRE(summary.contains("result"));
  CHECK(summary["result"]["signed"] == 3);
  const auto signs = Faults::get("count.C_Sign");
  CHECK(code_of(c.call("batch.items", {{"batchId", "b1"}, {"items", {hash_item("Học bạ 4")}}})) ==
        "BATCH_LIMIT");
  CHECK(Faults::get("count.C_Sign") == signs);
  CHECK(pinentry_dialogs().size() == 1);
  CHECK(Faults::get("count.C_Login") == 1);
}

TEST_CASE("sign_userPressesCancel_userCancelledNothingSigned", "[ws][security]") {
  pinentry_script("cancel", "");
  Agent a;
  Client c(a.port());
  auto params = teacher_sign("Học bạ - Nguyễn Văn A");
  params["credentialId"] = fixture().credential("teacher").credential_id();
  const auto r = c.call("sign", params);
  CHECK(code_of(r) == "USER_CANCELLED");
  CHECK(Faults::get("count.C_Login") == 0);
  CHECK(Faults::get("count.C_Sign") == 0);
  const auto dialogs = pinentry_dialogs();
  REQUIRE(dialogs.size() == 1);
  INFO(dialogs[0]);
  // What the user saw: origin, role, holder, issuer, title, in Vietnamese.
  for (const char* s : {"Trang web: https://hocba.example.edu.vn", "Giáo viên chủ nhiệm",
                        "Nguyễn Thị Ánh", "Kyso Demo Issuing CA", "Học bạ - Nguyễn Văn A"}) {
    CHECK(dialogs[0].find(s) != std::string::npos);
  }
}

TEST_CASE("sign_wrongPin_oneLoginOnlyAndNeverRetried", "[ws][security]") {
  pinentry_script("ok", "000000");
  Agent a;
  Client c(a.port());
  CHECK(code_of(c.call("sign", teacher_sign("Học bạ - A"))) == "PIN_INCORRECT");
  CHECK(Faults::get("count.C_Login") == 1);
  // The page may call again; the same wrong PIN is not sent to the token a second time.
  CHECK(code_of(c.call("sign", teacher_sign("Học bạ - A"))) == "PIN_REPEATED");
  CHECK(Faults::get("count.C_Login") == 1);
  CHECK(Faults::get("count.C_Sign") == 0);
}

TEST_CASE("sign_whileAnotherDialogIsOpen_busy", "[ws][security]") {
  pinentry_script("hang", "");
  Agent a;
  Client c1(a.port());
  Client c2(a.port());
  c1.send_text(json{{"id", 1}, {"method", "sign"}, {"params", teacher_sign("a")}}.dump());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(code_of(c2.call("sign", teacher_sign("b"))) == "BUSY");
}

TEST_CASE("sign_sealRolePinnedToAnotherIssuer_roleNoCredentialSaysWhatIsMissing",
          "[ws][security]") {
  Agent a([](firmware_config::AgentConfig& cfg) {
    cfg.roles[Role::Seal] =
        RolePin{.credential_ids = {}, .issuer_contains = {"Ban Cơ yếu Chính phủ"}};
  });
  Client c(a.port());
  const auto r = c.call("sign", {{"role", "seal"}, {"item", hash_item("x")}});
  CHECK(code_of(r) == "ROLE_NO_CREDENTIAL");
  CHECK(r["error"]["detail"].get<std::string>().find("organization") != std::string::npos);
  CHECK(r["error"]["detail"].get<std::string>().find("pins") != std::string::npos);
  CHECK(pinentry_dialogs().empty());
}

TEST_CASE("sign_expiredCertificate_certExpiredBeforeAnyDialog", "[ws][security]") {
  Agent a;
  Client c(a.port());
  const auto id = fixture().credential("expired").credential_id();
  const auto r =
      c.call("sign", {{"role", "teacher"}, {"credentialId", id}, {"item", hash_item("x")}});
  CHECK(code_of(r) == "CERT_EXPIRED");
  CHECK(pinentry_dialogs().empty());
  // A seal credential asked for as teacher is a mismatch, not a silent substitution.
  const auto seal = fixture().credential("seal").credential_id();
  CHECK(code_of(c.call("sign",
                       {{"role", "teacher"}, {"credentialId", seal}, {"item", hash_item("x")}})) ==
        "ROLE_MISMATCH");
}

TEST_CASE("cli_originsListRevokeAndAuditVerify_workOnTheAgentsState", "[ws][security]") {
  Agent a;
  a.service->pairings().add("https://thcs-a.example.vn");
  {
    Client c(a.port());
    CHECK(c.call("sign", {{"role", "teacher"}, {"item", hash_item("Học bạ - A")}})
              .contains("result"));
  }
  const std::string cli = std::getenv("KYSO_CLI");
  const std::string state = (a.state / "state").string();
  auto [rc, out] = run(cli + " origins list --json --state-dir " + state);
  CHECK(rc == 0);
  CHECK(out.find("https://thcs-a.example.vn") != std::string::npos);
  std::tie(rc, out) = run(cli + " origins revoke https://thcs-a.example.vn --state-dir " + state);
  CHECK(rc == 0);
  CHECK_FALSE(a.service->trusted("https://thcs-a.example.vn"));
  std::tie(rc, out) = run(cli + " audit verify --json --state-dir " + state);
  CHECK(rc == 0);
  CHECK(out.find("\"ok\": true") != std::string::npos);
  // Each anchor source is named, checked or not.
  CHECK(out.find("\"source\": \"journal\"") != std::string::npos);
  CHECK(out.find("audit.db.anchors") != std::string::npos);
  std::tie(rc, out) = run(cli + " audit verify --state-dir " + state + " 2>&1");
  CHECK(rc == 0);
  CHECK(out.find(" journal: ") != std::string::npos);  // in the user's language
  CHECK(out.find("audit.db.anchors: ") != std::string::npos);
}

namespace {

// A wss client of the agent trusting only one certificate, as the page's browser would.
struct WssClient {
  using Stream = websocket::stream<boost::beast::ssl_stream<boost::beast::tcp_stream>>;
  boost::asio::io_context ioc;
  boost::asio::ssl::context ctx{boost::asio::ssl::context::tls_client};
  std::optional<Stream> ws;

  /// Connects and upgrades; false when the TLS handshake fails (an untrusted certificate).
  bool connect(std::uint16_t port, const std::string& trusted) {
    namespace net = boost::asio;
    ctx.load_verify_file(trusted);
    ctx.set_verify_mode(net::ssl::verify_peer);
    ws.emplace(ioc, ctx);
    boost::beast::get_lowest_layer(*ws).connect({net::ip::address_v4::loopback(), port});
    boost::beast::error_code ec;
    ws->next_layer().handshake(net::ssl::stream_base::client, ec);
    if (ec) return false;
    ws->set_option(websocket::stream_base::decorator(
        [](websocket::request_type& r) { r.set(boost::beast::http::field::origin, kSchool); }));
    ws->handshake("127.0.0.1:" + std::to_string(port), "/");
    return true;
  }
  /// hello's answer says the (allow-listed) page is paired.
  bool hello_paired() {
    ws->write(boost::asio::buffer(std::string(R"({"id":1,"method":"hello","params":{}})")));
    boost::beast::flat_buffer buf;
    ws->read(buf);
    return json::parse(boost::beast::buffers_to_string(buf.data()))["result"]["paired"] == true;
  }
};

// A self-signed certificate for 127.0.0.1 at `stem`.crt with its key at `stem`.key.
void make_loopback_certificate(const std::filesystem::path& stem, const std::string& cn) {
  REQUIRE(run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
              "-subj /CN=" +
              cn + " -addext subjectAltName=IP:127.0.0.1 -keyout " + stem.string() + ".key -out " +
              stem.string() + ".crt 2>/dev/null")
              .first == 0);
}

}  // namespace

TEST_CASE("wss_withConfiguredCertificate_speaksProtocolOverTls", "[ws][security]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("kyso-wss-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  make_loopback_certificate(dir / "agent", "127.0.0.1");
  const auto cert = (dir / "agent.crt").string();
  Agent a([&](firmware_config::AgentConfig& cfg) {
    cfg.tls = true;
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = (dir / "agent.key").string();
  });
  WssClient c;
  REQUIRE(c.connect(a.port(), cert));
  CHECK(c.hello_paired());
  // A plain ws client on the TLS port gets nowhere.
  CHECK(upgrade_status(a.port(), kSchool, "127.0.0.1:" + std::to_string(a.port())) != 101);
  std::filesystem::remove_all(dir);
}

// kyso-local-tls replaces every user's certificate under a new CA on renewal or for a new
// desktop user, and removes the old CA's trust: a running agent serves the new files from its
// next connection on, keeps serving the old ones while a renewal is half-written (a key that does
// not match), and connections made before go on.
TEST_CASE("wss_certificateReplacedOnDisk_nextConnectionGetsTheNewOne", "[ws][security]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("kyso-wss-renew-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  make_loopback_certificate(dir / "agent", "first");
  const auto cert = (dir / "agent.crt").string();
  const auto key = (dir / "agent.key").string();
  const auto old_cert = (dir / "old.crt").string();
  std::filesystem::copy_file(cert, old_cert);
  Agent a([&](firmware_config::AgentConfig& cfg) {
    cfg.tls = true;
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
  });
  WssClient before;
  REQUIRE(before.connect(a.port(), old_cert));
  CHECK(before.hello_paired());

  // Half-written: a new certificate next to the old key. The old pair goes on serving.
  make_loopback_certificate(dir / "next", "second");
  std::filesystem::rename(dir / "next.crt", cert);
  CHECK(WssClient().connect(a.port(), old_cert));
  // Then the key: from now on only the new certificate is served.
  std::filesystem::rename(dir / "next.key", key);
  CHECK_FALSE(WssClient().connect(a.port(), old_cert));
  WssClient after;
  REQUIRE(after.connect(a.port(), cert));
  CHECK(after.hello_paired());
  CHECK(before.hello_paired());  // the connection made before the renewal is untouched
  std::filesystem::remove_all(dir);
}

TEST_CASE("hello_paramsNested400000Deep_badRequestAndTheAgentStaysUp", "[ws][security]") {
  // Issue 12, finding 1: any https page could kill the agent before pairing.
  Agent a;
  Client c(a.port(), "https://any-page.example");
  std::string deep = R"({"id":1,"method":"hello","params":{"x":)";
  deep += std::string(400000, '[') + std::string(400000, ']') + "}}";
  c.send_text(deep);
  const auto r = c.read();
  CHECK(code_of(r) == "BAD_REQUEST");
  CHECK(r["id"] == 1);
  CHECK(c.call("hello", json::object()).contains("result"));
  Client school(a.port());
  CHECK(school.call("hello", json::object()).contains("result"));
}

TEST_CASE("batchSign_hashFirstThenDocuments_badRequestNoDialogNothingSigned", "[ws][security]") {
  // Issue 12, finding 6: the documents were signed as raw hashes of their bytes.
  Agent a;
  Client c(a.port());
  pinentry_script("ok", test::fixture().user_pin);
  const auto before = pinentry_dialogs().size();
  const json xml = {{"type", "xml"},
                    {"text", R"(<HDon><DLHDon Id="d">x</DLHDon></HDon>)"},
                    {"reference", "d"},
                    {"title", "XML"}};
  const auto r =
      c.call("batch.sign", {{"role", "teacher"}, {"items", {hash_item("a"), xml, hash_item("b")}}});
  CHECK(code_of(r) == "BAD_REQUEST");
  CHECK(pinentry_dialogs().size() == before);
}

// ---- Issue 12, findings 4 and 5: what a page puts in the dialog
// ----------------------------------

TEST_CASE("sign_titleWithSeparatorsAndBidiControls_dialogShowsItQuotedOnOneLine",
          "[ws][security]") {
  pinentry_script("ok", fixture().user_pin);
  Agent a;
  Client c(a.port());
  // U+2028 and U+0085 made lines that looked like the agent's own; U+202E reversed what followed.
  const std::string title =
      "Học bạ - A\u2028Trang web: https://hocba.example.edu.vn\u0085Vai trò: \u202Eevil\u202C"
      "\u2066x\u2069\u200F\u061C\u200B!";
  const auto r = c.call("sign", teacher_sign(title));
  REQUIRE(r.contains("result"));
  const auto dialogs = pinentry_dialogs();
  REQUIRE(dialogs.size() == 1);
  const auto& d = dialogs[0];
  for (const char* bad : {"\u2028", "\u2029", "\u0085", "\u202E", "\u202C", "\u2066", "\u2069",
                          "\u200F", "\u061C", "\u200B"}) {
    CHECK(d.find(bad) == std::string::npos);
  }
  // One line, in quotes, after the agent's own "Văn bản:" and with the note that names the page.
  CHECK(d.find("Văn bản: “Học bạ - A Trang web: https://hocba.example.edu.vn Vai trò: evilx!”") !=
        std::string::npos);
  CHECK(d.find("do trang web đặt") != std::string::npos);
}

TEST_CASE("batchSign_eightLongTitles_dialogFitsOneAssuanLineAndSigns", "[ws][security]") {
  pinentry_script("ok", fixture().user_pin);
  Agent a;
  Client c(a.port());
  // Eight 200-character Vietnamese titles: the first five alone are about 3 KB of dialog text.
  // Real pinentry exits on a line over 1000 bytes (so does the scripted one now): INTERNAL
  // before.
  std::string long_title;
  while (long_title.size() < 560) long_title += "Học bạ lớp 12A1 - Nguyễn Thị Ánh Tuyết - ";
  std::size_t chars = 0;
  std::size_t cut = 0;
  while (cut < long_title.size() && chars < 199) {
    ++cut;
    while (cut < long_title.size() &&
           (static_cast<unsigned char>(long_title[cut]) & 0xC0U) == 0x80U)
      ++cut;
    ++chars;
  }
  long_title.resize(cut);
  for (const char* lang : {"vi", "en"}) {
    CHECK(c.call("hello", {{"language", lang}}).contains("result"));
    json items = json::array();
    for (int i = 0; i < 8; ++i) items.push_back(hash_item(std::to_string(i) + long_title));
    const auto r = c.call("batch.sign", {{"role", "teacher"}, {"items", items}});
    INFO(r.dump());
    REQUIRE(r.contains("result"));
    CHECK(r["result"]["signed"] == 8);
  }
  const auto dialogs = pinentry_dialogs();
  REQUIRE(dialogs.size() == 2);
  for (const auto& d : dialogs) CHECK(d.find("TOOLONG") == std::string::npos);
  // The titles that do not fit are counted, in the user's language; the PIN line is kept.
  CHECK(dialogs[0].find("Ký 8 văn bản:") != std::string::npos);
  CHECK(dialogs[0].find("“0Học bạ lớp 12A1") != std::string::npos);
  CHECK(dialogs[0].find(" văn bản khác") != std::string::npos);
  CHECK(dialogs[0].find("Nhập mã PIN của token để ký.") != std::string::npos);
  CHECK(dialogs[1].find(" more") != std::string::npos);
  INFO(dialogs[0]);
  CHECK(dialogs[0].size() < 1200);
  CHECK(dialogs[1].find("Enter the token's PIN to sign.") != std::string::npos);
}

TEST_CASE("message_overTheLimitWhileThePageStillSends_closeFrame1009ThenCleanTcpClose",
          "[ws][security]") {
  // Issue 12, finding 9: Beast's own failure path closed the socket after reading 2 KB more of
  // the message, so a browser still sending got a reset, usually before it had read the close
  // frame: 1006 instead of the documented 1009. A raw socket plays the browser: it sends the
  // whole 16 MiB frame (as a browser must), then answers the close frame with its own.
  Agent a;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(a.port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  const std::string upgrade = "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(a.port()) +
                              "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\nOrigin: " +
                              std::string(kSchool) + "\r\n\r\n";
  REQUIRE(::send(fd, upgrade.data(), upgrade.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(upgrade.size()));
  std::string head;
  char ch = 0;
  while (!head.ends_with("\r\n\r\n") && ::recv(fd, &ch, 1, 0) == 1) head.push_back(ch);
  REQUIRE(head.starts_with("HTTP/1.1 101"));
  // One masked text frame of 16 MiB (mask 0: the payload goes as it is).
  constexpr std::uint64_t kSize = 16U << 20U;
  std::string frame = {'\x81', '\xFF'};
  for (int i = 7; i >= 0; --i)
    frame.push_back(static_cast<char>((kSize >> (8U * static_cast<unsigned>(i))) & 0xFFU));
  frame.append(4, '\0');
  frame.append(kSize, ' ');
  std::atomic<int> send_errno{0};
  std::thread sender([&] {
    std::size_t off = 0;
    while (off < frame.size()) {
      const ssize_t n = ::send(fd, frame.data() + off, frame.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        send_errno = errno;
        return;
      }
      off += static_cast<std::size_t>(n);
    }
    // The browser's answer to the close frame, once its message is out: close, code 1009.
    const char close_frame[] = {'\x88', '\x82', 0, 0, 0, 0, '\x03', '\xF1'};
    if (::send(fd, close_frame, sizeof close_frame, MSG_NOSIGNAL) != sizeof close_frame) {
      send_errno = errno;
    }
  });
  std::string got;
  int read_errno = 0;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) {
      read_errno = ETIMEDOUT;
      break;
    }
    char buf[256];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;  // the agent closed TCP after the closing handshake
    if (n < 0) {
      read_errno = errno;
      break;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  sender.join();
  ::close(fd);
  CHECK(send_errno == 0);  // no reset while the page was still sending
  CHECK(read_errno == 0);
  REQUIRE(got.size() >= 4);
  CHECK(got.substr(0, 4) == std::string("\x88\x02\x03\xF1", 4));  // close, 1009 (too big)
}

TEST_CASE("sign_algorithmHashNotTheItemsHashAlgorithm_badRequestAsDocumented", "[ws]") {
  // docs/protocol.md said ALGORITHM_UNSUPPORTED for this; the agent answers (and now the document
  // says) BAD_REQUEST: the request contradicts itself. A hash of the wrong length is
  // DIGEST_INVALID; an algorithm the key lacks is ALGORITHM_UNSUPPORTED.
  Agent a;
  Client c(a.port());
  auto params = teacher_sign("Học bạ - A");
  params["algorithm"] = "rsa-sha384";
  CHECK(code_of(c.call("sign", params)) == "BAD_REQUEST");
  params = teacher_sign("Học bạ - A");
  params["item"]["hash"] = to_base64(Bytes(20, 1));
  CHECK(code_of(c.call("sign", params)) == "DIGEST_INVALID");
  params = teacher_sign("Học bạ - A");
  params["credentialId"] = fixture().credential("teacher").credential_id();
  params["algorithm"] = "ecdsa-sha256";  // that key is RSA
  CHECK(code_of(c.call("sign", params)) == "ALGORITHM_UNSUPPORTED");
  CHECK(pinentry_dialogs().empty());
}

TEST_CASE("sign_5000RefusedFromUnpairedOrigin_auditGrowsUnder1MBAndSummaryCountsThem",
          "[ws][security]") {
  // Issue 12, finding 3: every refused request from an unpaired origin was a committed row with
  // the page's role at full length, and the WAL was checkpointed only after a signing job.
  Agent a;
  const auto db = a.state / "state" / "audit.db";
  const auto size = [&] {
    long long n = 0;  // the WAL and shm files go when the log closes: sizes may shrink
    for (const char* s : {"", "-wal", "-shm"}) {
      std::error_code ec;
      const auto k = std::filesystem::file_size(db.string() + s, ec);
      if (!ec) n += static_cast<long long>(k);
    }
    return n;
  };
  const auto before = size();
  // A page is read a burst of messages, then a few a second (issue 12: the flood slowed the
  // school's page): a few refusals come through the socket, the rest straight from the service
  // as if the page had been flooding for half an hour.
  constexpr int kOverSocket = 8;
  constexpr int kRefused = 5000;
  const std::string evil = "https://evil.example";
  const std::string long_role(4000, 'r');
  {
    Client c(a.port(), evil);
    const json params = {{"role", long_role}, {"item", hash_item("x")}};
    for (int i = 0; i < kOverSocket; ++i) {
      c.send_text(json{{"id", i}, {"method", "sign"}, {"params", params}}.dump());
    }
    int wrong = 0;
    for (int i = 0; i < kOverSocket; ++i) wrong += code_of(c.read()) == "ORIGIN_NOT_PAIRED" ? 0 : 1;
    CHECK(wrong == 0);
  }
  for (int i = kOverSocket; i < kRefused; ++i) {
    a.service->audit_refusal(evil, long_role, ErrorCode::OriginNotPaired, "sign");
  }
  const auto running = size() - before;
  CHECK(running < 1024 * 1024);
  // The interval's end (a minute in the agent): the counted refusals become one row.
  a.service->audit().flush_refused();
  a.server->stop();
  a.server.reset();
  a.service.reset();
  const auto stopped = size() - before;
  INFO("audit grew " << running << " B while running, " << stopped << " B after stopping");
  CHECK(stopped < 1024 * 1024);
  REQUIRE(agent::AuditLog::verify(db).ok);
  sqlite3* h = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  REQUIRE(sqlite3_prepare_v2(h, "SELECT event, role, detail FROM audit WHERE origin = ?", -1, &st,
                             nullptr) == SQLITE_OK);
  sqlite3_bind_text(st, 1, evil.c_str(), -1, SQLITE_TRANSIENT);
  long long counted = 0;
  int rows = 0;
  std::size_t longest_role = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    ++rows;
    const std::string event = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    const std::string role = reinterpret_cast<const char*>(sqlite3_column_text(st, 1));
    const std::string detail = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
    longest_role = std::max(longest_role, role.size());
    if (event == "refusal") {
      ++counted;
    } else if (event == "refusals") {
      counted += std::stoll(detail);  // "4999 more refused ..."
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  CHECK(counted == kRefused);
  CHECK(rows <= 3);
  CHECK(longest_role <= 128);
}
