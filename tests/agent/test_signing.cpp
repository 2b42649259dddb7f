// Signing through the agent as a page would: every algorithm, a class batch with progress, a
// token pulled out mid-batch, cancel, token events; each signature checked by OpenSSL alone.

#include <sqlite3.h>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "harness.hpp"
#include "kyso/agent/audit.hpp"

using namespace kyso;
using namespace kyso::test;
using json = nlohmann::json;
namespace beast = boost::beast;

namespace {

json batch_items(int n, const std::string& alg = "sha256") {
  json items = json::array();
  for (int i = 0; i < n; ++i)
    items.push_back(hash_item("Học bạ - Học sinh " + std::to_string(i + 1), alg));
  return items;
}

}  // namespace

TEST_CASE("status_getSlash_answersJsonWithoutUpgrade", "[ws]") {
  Agent a;
  boost::asio::io_context ioc;
  beast::tcp_stream s(ioc);
  s.connect({boost::asio::ip::address_v4::loopback(), a.port()});
  beast::http::request<beast::http::empty_body> req(beast::http::verb::get, "/", 11);
  req.set(beast::http::field::host, "127.0.0.1:" + std::to_string(a.port()));
  beast::http::write(s, req);
  beast::flat_buffer buf;
  beast::http::response<beast::http::string_body> res;
  beast::http::read(s, buf, res);
  CHECK(res.result() == beast::http::status::ok);
  const auto j = json::parse(res.body());
  CHECK(j["name"] == "kyso-agent");
  CHECK(j["protocols"] == json::array({1}));
}

TEST_CASE("credentialsList_roleSeal_onlyOrganizationCertificates", "[ws]") {
  Agent a;
  Client c(a.port());
  const auto r = c.call("credentials.list", {{"role", "seal"}});
  const auto& creds = r["result"]["credentials"];
  REQUIRE(creds.size() == 1);
  CHECK(creds[0]["certificate"]["kind"] == "organization");
  CHECK(creds[0]["certificate"]["mns"] == "1047665");
  CHECK(creds[0]["roles"] == json::array({"seal"}));
  const auto persons = c.call("credentials.list", {{"kind", "person"}, {"validNow", true}});
  for (const auto& p : persons["result"]["credentials"])
    CHECK(p["certificate"]["validNow"] == true);
  CHECK(persons["result"]["credentials"].size() >= 3);
}

TEST_CASE("sign_hashWithEveryAlgorithm_verifiesWithOpenSsl", "[ws]") {
  Agent a;
  Client c(a.port());
  struct Case {
    const char* cred;
    const char* alg;
    const char* hash;
  };
  const Case cases[] = {
      {"teacher", "rsa-sha256", "sha256"},      {"teacher", "rsa-sha384", "sha384"},
      {"teacher", "rsa-sha512", "sha512"},      {"teacher", "rsa-pss-sha256", "sha256"},
      {"teacher", "rsa-pss-sha384", "sha384"},  {"teacher", "rsa-pss-sha512", "sha512"},
      {"teacher-ec", "ecdsa-sha256", "sha256"}, {"teacher-ec", "ecdsa-sha384", "sha384"},
      {"teacher-ec", "ecdsa-sha512", "sha512"},
  };
  for (const auto& k : cases) {
    INFO(k.alg);
    const auto item = hash_item(std::string("Học bạ - ") + k.alg, k.hash);
    const auto r = c.call("sign", {{"role", "teacher"},
                                   {"credentialId", fixture().credential(k.cred).credential_id()},
                                   {"algorithm", k.alg},
                                   {"item", item}});
    REQUIRE(r.contains("result"));
    CHECK(r["result"]["algorithm"] == k.alg);
    CHECK(r["result"]["hash"] == to_hex(item_digest(item)));
    CHECK(r["result"]["chain"].size() == 2);
    const Bytes cert = from_base64(r["result"]["certificate"].get<std::string>());
    const Bytes sig = from_base64(r["result"]["signature"].get<std::string>());
    CHECK(openssl_verify(cert, *parse_sign_algorithm(k.alg), item_digest(item), sig));
  }
  // Default algorithm for an RSA key: PKCS#1 v1.5, what deployed systems verify.
  const auto item = hash_item("mặc định");
  const auto r = c.call("sign", {{"role", "principal"}, {"item", item}});
  CHECK(r["result"]["algorithm"] == "rsa-sha256");
  CHECK(r["result"]["credentialId"] == fixture().credential("principal").credential_id());
  // Every request needed its own login: the PIN is not kept between requests.
  CHECK(Faults::get("count.C_Login") == 10);
  CHECK(agent::AuditLog::verify(a.state / "state" / "audit.db").ok);
}

TEST_CASE("batchSign_signaturesInEvents_eachSignatureLeavesOnlyAfterItsAuditRow", "[ws]") {
  Agent a;
  Client c(a.port());
  const auto items = batch_items(300);
  c.send_text(json{{"id", "lop-12A3"},
                   {"method", "batch.sign"},
                   {"params",
                    {{"role", "principal"},
                     {"items", items},
                     {"progressInterval", 1},
                     {"signaturesInEvents", true}}}}
                  .dump());
  // The page's view of the audit log: a second, read-only connection sees committed rows only.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2((a.state / "state" / "audit.db").c_str(), &db, SQLITE_OPEN_READONLY,
                          nullptr) == SQLITE_OK);
  sqlite3_stmt* row = nullptr;
  REQUIRE(sqlite3_prepare_v2(db,
                             "SELECT COUNT(*) FROM audit WHERE event = 'signature' AND "
                             "result = 'ok' AND digest = ?",
                             -1, &row, nullptr) == SQLITE_OK);
  auto audited = [&](std::size_t i) {
    const std::string hex = to_hex(item_digest(items[i]));
    sqlite3_reset(row);
    sqlite3_bind_text(row, 1, hex.c_str(), -1, SQLITE_TRANSIENT);
    return sqlite3_step(row) == SQLITE_ROW && sqlite3_column_int(row, 0) == 1;
  };
  std::map<std::size_t, Bytes> sigs;
  std::size_t events = 0;
  json summary;
  for (;;) {
    json m = c.read();
    if (!m.contains("event")) {
      summary = std::move(m);
      break;
    }
    ++events;
    for (const auto& s : m["params"]["signatures"]) {
      const auto i = s["index"].get<std::size_t>();
      CHECK(audited(i));
      sigs[i] = from_base64(s["signature"].get<std::string>());
    }
  }
  sqlite3_finalize(row);
  sqlite3_close(db);
  CHECK(events >= 2);
  REQUIRE(summary.contains("result"));
  const auto& s = summary["result"];
  CHECK(s["signed"] == 300);
  // Each signature went out once, in an event; the summary only says which items succeeded.
  REQUIRE(sigs.size() == 300);
  const Bytes cert = from_base64(s["certificate"].get<std::string>());
  for (std::size_t i = 0; i < 300; ++i) {
    CHECK(s["results"][i]["index"] == i);
    CHECK(s["results"][i]["ok"] == true);
    CHECK_FALSE(s["results"][i].contains("signature"));
    CHECK(openssl_verify(cert, SignAlgorithm::RsaPkcs1Sha256, item_digest(items[i]), sigs[i]));
  }
  // Coalesced events are what makes every item's signature arrive; a boolean, nothing else.
  CHECK(code_of(c.call("batch.sign", {{"role", "principal"},
                                      {"items", batch_items(2)},
                                      {"signaturesInEvents", true}})) == "BAD_REQUEST");
  CHECK(code_of(c.call("batch.sign", {{"role", "principal"},
                                      {"items", batch_items(2)},
                                      {"progressInterval", 50},
                                      {"signaturesInEvents", "yes"}})) == "BAD_REQUEST");
  CHECK(agent::AuditLog::verify(a.state / "state" / "audit.db").ok);
}

TEST_CASE("batchSign_40Items_oneDialogOneLoginProgressEventsAllVerify", "[ws]") {
  Agent a;
  Client c(a.port());
  const auto items = batch_items(40);
  const auto r = c.call("batch.sign", {{"role", "principal"}, {"items", items}}, "lop-12A1");
  REQUIRE(r.contains("result"));
  const auto& s = r["result"];
  CHECK(s["total"] == 40);
  CHECK(s["signed"] == 40);
  CHECK(s["failed"] == 0);
  REQUIRE(c.events.size() == 40);
  for (std::size_t i = 0; i < 40; ++i) {
    CHECK(c.events[i]["event"] == "batch.progress");
    CHECK(c.events[i]["id"] == "lop-12A1");
    CHECK(c.events[i]["params"]["done"] == i + 1);
    CHECK(c.events[i]["params"]["total"] == 40);
  }
  const Bytes cert = from_base64(s["certificate"].get<std::string>());
  for (std::size_t i = 0; i < 40; ++i) {
    CHECK(s["results"][i]["index"] == i);
    const Bytes sig = from_base64(s["results"][i]["signature"].get<std::string>());
    CHECK(openssl_verify(cert, SignAlgorithm::RsaPkcs1Sha256, item_digest(items[i]), sig));
  }
  CHECK(Faults::get("count.C_Login") == 1);
  const auto dialogs = pinentry_dialogs();
  REQUIRE(dialogs.size() == 1);
  CHECK(dialogs[0].find("Ký 40 văn bản") != std::string::npos);
  CHECK(dialogs[0].find("Học bạ - Học sinh 1") != std::string::npos);
  CHECK(dialogs[0].find("và 35 văn bản khác") != std::string::npos);
  CHECK(dialogs[0].find("Hiệu trưởng") != std::string::npos);
}

TEST_CASE("batchSign_tokenRemovedMidway_reportsExactlySignedDocuments", "[ws][security]") {
  Agent a;
  Client c(a.port());
  const auto items = batch_items(10);
  Faults::set("remove_after_signs", 4);
  const auto r =
      c.call("batch.sign", {{"role", "teacher"},
                            {"credentialId", fixture().credential("teacher").credential_id()},
                            {"items", items}});
  REQUIRE(r.contains("result"));
  const auto& s = r["result"];
  CHECK(s["signed"] == 4);
  CHECK(s["failed"] == 6);
  // Exactly the items reported signed carry a signature that verifies; every other one says the
  // token was removed (two sessions sign at once, so which four is not fixed).
  const Bytes cert = from_base64(s["certificate"].get<std::string>());
  int ok = 0;
  for (std::size_t i = 0; i < 10; ++i) {
    const auto& e = s["results"][i];
    CHECK(e["index"] == i);
    if (e["ok"] == true) {
      ++ok;
      CHECK(openssl_verify(cert, SignAlgorithm::RsaPkcs1Sha256, item_digest(items[i]),
                           from_base64(e["signature"].get<std::string>())));
    } else {
      CHECK(e["error"]["code"] == "TOKEN_REMOVED");
      CHECK_FALSE(e.contains("signature"));
    }
  }
  CHECK(ok == 4);
  for (std::size_t i = 0; i < c.events.size(); ++i) CHECK(c.events[i]["params"]["index"] == i);
  CHECK(c.events.size() == 10);
}

TEST_CASE("batchCancel_midway_summaryMarksUnsignedItemsCancelled", "[ws]") {
  Agent a;
  Client c(a.port());
  Faults::set("sign_delay_us", 20000);
  c.send_text(json{{"id", 7},
                   {"method", "batch.sign"},
                   {"params", {{"role", "teacher"}, {"items", batch_items(100)}}}}
                  .dump());
  // Wait until signing started, then cancel.
  while (c.events.empty()) {
    auto m = c.read();
    if (m.contains("event")) c.events.push_back(m);
  }
  c.send_text(json{{"id", 8}, {"method", "batch.cancel"}, {"params", {{"batchId", 7}}}}.dump());
  const auto summary = read_until_id(c, 7);
  REQUIRE(summary.contains("result"));
  CHECK(summary["result"]["cancelled"] == true);
  const auto signed_n = summary["result"]["signed"].get<int>();
  CHECK(signed_n >= 1);
  CHECK(signed_n < 100);
  CHECK(summary["result"]["results"][99]["error"]["code"] == "USER_CANCELLED");
}

TEST_CASE("tokenEvents_removedAndInserted_sentToPairedPages", "[ws]") {
  Agent a;
  Client c(a.port());
  CHECK(c.call("hello", json::object())["result"]["paired"] == true);
  Faults::set("removed", 1);
  json e = c.read();
  CHECK(e["event"] == "token.removed");
  CHECK(e["params"]["token"]["label"].is_string());
  Faults::set("removed", 0);
  // Removal is module-wide: both of the fixture's tokens leave, then both come back.
  do {
    e = c.read();
  } while (e["event"] == "token.removed");
  CHECK(e["event"] == "token.inserted");
}

TEST_CASE("sign_tokenWithPinPad_confirmDialogOnlyNoPinSent", "[ws][security]") {
  ::setenv("KYSO_FAULT_PINPAD_PIN", fixture().user_pin.c_str(), 1);
  pinentry_script("ok", "must-not-be-used");
  Agent a;
  Faults::set("token_flags_or", 0x100);  // CKF_PROTECTED_AUTHENTICATION_PATH
  Client c(a.port());
  const auto item = hash_item("Học bạ - bàn phím PIN");
  const auto r = c.call("sign", {{"role", "teacher"},
                                 {"credentialId", fixture().credential("teacher").credential_id()},
                                 {"item", item}});
  REQUIRE(r.contains("result"));
  CHECK(openssl_verify(from_base64(r["result"]["certificate"].get<std::string>()),
                       SignAlgorithm::RsaPkcs1Sha256, item_digest(item),
                       from_base64(r["result"]["signature"].get<std::string>())));
  const auto dialogs = pinentry_dialogs();
  REQUIRE(dialogs.size() == 1);
  CHECK(dialogs[0].starts_with("CONFIRM"));
  CHECK(Faults::get("count.C_Login") == 1);
}

namespace {

/// A token profile whose quirks match the fault module's SoftHSM2 token and ask the PIN for
/// each signature of a key that needs it every time.
std::string pin_per_signature_profile() {
  const auto dir =
      std::filesystem::temp_directory_path() / ("kyso-profiles-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "tokens.toml";
  std::ofstream(file) << "schema = 1\n\n[[token]]\nvendor = \"Kyso\"\nmodel = \"Test Token\"\n"
                         "usb = \"f055:c0de\"\npackage = \"kyso-test\"\n"
                         "algorithms = [\"rsa2048\"]\n[token.modules]\nlinux = [\""
                      << fixture().fault_module
                      << "\"]\n[[token.quirks]]\nmanufacturer = \"SoftHSM\"\n"
                         "pin_per_signature = true\nnote = \"IT's policy for signature keys\"\n";
  return file.string();
}

std::vector<std::string> approval_details(const std::filesystem::path& db) {
  const auto rows = run("sqlite3 " + db.string() +
                        " \"select detail from audit where event='approval' order by rowid\"");
  std::vector<std::string> out;
  std::istringstream in(rows.second);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("batchSign_alwaysAuthenticateKey_keepsThePinForTheBatch_oneDialog", "[ws][security]") {
  ::setenv("KYSO_FAULT_CONTEXT_PIN", fixture().user_pin.c_str(), 1);
  Agent a;
  Faults::set("always_authenticate", 1);
  Client c(a.port());
  const auto items = batch_items(5);
  const auto r = c.call("batch.sign", {{"role", "principal"}, {"items", items}});
  INFO(r.dump());
  REQUIRE(r.contains("result"));
  CHECK(r["result"]["signed"] == 5);
  CHECK(pinentry_dialogs().size() == 1);
  CHECK(Faults::get("count.C_Login.context") == 5);
  const auto approvals = approval_details(a.state / "state" / "audit.db");
  REQUIRE(approvals.size() == 1);
  CHECK(approvals[0].find("PIN kept for the batch") != std::string::npos);
}

TEST_CASE("batchSign_alwaysAuthenticateKey_profileSaysPinPerSignature_aDialogBeforeEach",
          "[ws][security]") {
  ::setenv("KYSO_FAULT_CONTEXT_PIN", fixture().user_pin.c_str(), 1);
  const std::string profile = pin_per_signature_profile();
  Agent a([&](firmware_config::AgentConfig& cfg) { cfg.token_profiles = profile; });
  Faults::set("always_authenticate", 1);
  Client c(a.port());
  const auto items = batch_items(4);
  const auto r = c.call("batch.sign", {{"role", "principal"}, {"items", items}});
  INFO(r.dump());
  REQUIRE(r.contains("result"));
  const auto& s = r["result"];
  CHECK(s["signed"] == 4);
  const Bytes cert = from_base64(s["certificate"].get<std::string>());
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(openssl_verify(cert, SignAlgorithm::RsaPkcs1Sha256, item_digest(items[i]),
                         from_base64(s["results"][i]["signature"].get<std::string>())));
  }
  // The approval's PIN signs the first item; the user types it again for each other one.
  const auto dialogs = pinentry_dialogs();
  REQUIRE(dialogs.size() == 4);
  CHECK(dialogs[1].find("Mã PIN cho chữ ký 2/4") != std::string::npos);
  CHECK(dialogs[3].find("Mã PIN cho chữ ký 4/4") != std::string::npos);
  CHECK(Faults::get("count.C_Login") == 5);  // the user login and four context logins
  CHECK(Faults::get("count.C_Login.context") == 4);
  const auto approvals = approval_details(a.state / "state" / "audit.db");
  REQUIRE(approvals.size() == 1);
  CHECK(approvals[0].find("PIN asked for each signature") != std::string::npos);
}
