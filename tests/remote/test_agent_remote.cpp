// The agent with a remote credential: kyso-appliance on loopback (its own SoftHSM token copy,
// TLS with a test CA, PIN + TOTP), the agent configured with it as a [[remote]] service and no
// token, a real WebSocket client as the page, and a scripted pinentry as the user (password,
// PIN, and an OTP from oathtool). Every signature is verified by OpenSSL against the returned
// certificate; the class's PDFs and XMLs signed on the remote key by xmlsec1, pdfsig and qpdf.

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "../agent/harness.hpp"
#include "format_support.hpp"
#include "harness.hpp"
#include "kyso/agent/audit.hpp"
#include "kyso/core/error.hpp"

using kyso::Bytes;
using kyso::SignAlgorithm;
using kyso::test::Agent;
using kyso::test::Client;
using kyso::test::fixture;
using kyso::test::openssl_verify;
using kyso::test::pinentry_dialogs;
using kyso::test::pki_path;
using kyso::test::run;
using kyso::test::ScratchDir;
using nlohmann::json;
namespace rt = kyso::test::remote;

namespace {

constexpr const char* kService = "Sở GD&ĐT – máy ký";

/// The scripted user: the principal's password, the HSM PIN, TOTPs from the principal's secret.
void user_types(const std::string& otp_override = {}) {
  ::setenv("KYSO_PINENTRY_ACTION", "ok", 1);
  ::setenv("KYSO_PINENTRY_PIN", fixture().user_pin.c_str(), 1);
  ::setenv("KYSO_PINENTRY_PASSWORD", rt::kPrincipalPassword, 1);
  ::setenv("KYSO_PINENTRY_TOTP", rt::kPrincipalTotp, 1);
  if (otp_override.empty()) {
    ::unsetenv("KYSO_PINENTRY_OTP");
  } else {
    ::setenv("KYSO_PINENTRY_OTP", otp_override.c_str(), 1);
  }
  static const std::string steps = rt::env().dir + "/otp-steps";
  ::setenv("KYSO_PINENTRY_OTP_STEPS", steps.c_str(), 1);
}

/// An agent with no token whose only credentials come from `url`.
/// `unavailable_wait`: how long the agent waits for a service gone away (default 30 s).
std::unique_ptr<Agent> remote_agent(
    const std::string& url, const std::filesystem::path& state_dir = {},
    std::chrono::seconds unavailable_wait = std::chrono::seconds(30)) {
  return std::make_unique<Agent>([&](kyso::firmware_config::AgentConfig& cfg) {
    cfg.pkcs11_modules.clear();
    cfg.system_modules = false;
    cfg.remote = {{kService, url, "principal", rt::env().ca_file, unavailable_wait}};
    if (!state_dir.empty()) cfg.state_dir = state_dir;
  });
}

json items(std::size_t n) {
  json a = json::array();
  for (std::size_t i = 0; i < n; ++i) {
    a.push_back(kyso::test::hash_item("Học bạ - Học sinh " + std::to_string(i + 1)));
  }
  return a;
}

std::size_t count(const std::vector<std::string>& dialogs, const std::string& what) {
  std::size_t n = 0;
  for (const auto& d : dialogs) n += d.find(what) != std::string::npos ? 1U : 0U;
  return n;
}

}  // namespace

TEST_CASE("agentRemote_principalBatch_oneOtpEntryEverySignatureVerifies", "[csc][agent]") {
  rt::Harness h([](kyso::appliance::ApplianceConfig& c) { c.limits.multisign = 50; });
  user_types();
  const auto agent = remote_agent(h.base_url());
  Client c(agent->port());

  // Listing shows the configured service, signed out, and opens no dialog.
  auto l = c.call("credentials.list", json::object());
  REQUIRE(l.contains("result"));
  CHECK(l["result"]["credentials"].empty());
  REQUIRE(l["result"]["remoteServices"].size() == 1);
  CHECK(l["result"]["remoteServices"][0]["name"] == kService);
  CHECK(l["result"]["remoteServices"][0]["signedIn"] == false);
  CHECK(pinentry_dialogs().empty());

  // 120 items = 3 multisign chunks: password, then one approval with the PIN, then one OTP.
  const json batch = items(120);
  const auto r = c.call("batch.sign", {{"role", "principal"}, {"items", batch}}, "hieu-truong");
  REQUIRE(r.contains("result"));
  const auto& s = r["result"];
  CHECK(s["total"] == 120);
  CHECK(s["signed"] == 120);
  CHECK(s["failed"] == 0);
  CHECK(s["cancelled"] == false);
  const Bytes cert = kyso::from_base64(s["certificate"].get<std::string>());
  CHECK(cert == fixture().credential("principal").cert_der);
  CHECK(s["credentialId"] == fixture().credential("principal").credential_id());
  for (std::size_t i = 0; i < 120; ++i) {
    CHECK(s["results"][i]["index"] == i);
    CHECK(openssl_verify(cert, SignAlgorithm::RsaPkcs1Sha256, kyso::test::item_digest(batch[i]),
                         kyso::from_base64(s["results"][i]["signature"].get<std::string>())));
  }
  REQUIRE(c.events.size() == 120);
  for (std::size_t i = 0; i < 120; ++i) {
    CHECK(c.events[i]["event"] == "batch.progress");
    CHECK(c.events[i]["params"]["done"] == i + 1);
    CHECK(c.events[i]["params"]["index"] == i);
  }
  auto dialogs = pinentry_dialogs();
  REQUIRE(dialogs.size() == 3);
  CHECK(dialogs[0].find("prompt=Mật khẩu:") != std::string::npos);
  CHECK(dialogs[0].find(kService) != std::string::npos);
  CHECK(dialogs[0].find(kyso::test::kSchool) != std::string::npos);
  CHECK(dialogs[1].find("prompt=Mã PIN:") != std::string::npos);
  CHECK(dialogs[1].find("Ký 120 văn bản") != std::string::npos);
  CHECK(dialogs[1].find("Hiệu trưởng") != std::string::npos);
  CHECK(dialogs[1].find("Trần Văn Bình") != std::string::npos);
  CHECK(dialogs[2].find("prompt=Mã OTP:") != std::string::npos);
  CHECK(count(dialogs, "prompt=Mã OTP:") == 1);

  // Now listed next to token credentials, marked remote; still no dialog for listing.
  l = c.call("credentials.list", {{"role", "principal"}});
  REQUIRE(l["result"]["credentials"].size() == 1);
  const auto& cred = l["result"]["credentials"][0];
  CHECK(cred["source"]["kind"] == "remote");
  CHECK(cred["source"]["name"] == kService);
  CHECK(cred["source"]["module"] == h.base_url());
  CHECK(cred["suggestedRole"] == "principal");
  CHECK(l["result"]["remoteServices"][0]["signedIn"] == true);

  // A single sign in the same session: no password again, one approval + PIN, one OTP.
  const json one = kyso::test::hash_item("Học bạ - Học sinh 121");
  const auto r1 =
      c.call("sign", {{"role", "principal"}, {"credentialId", cred["id"]}, {"item", one}});
  REQUIRE(r1.contains("result"));
  CHECK(openssl_verify(cert, SignAlgorithm::RsaPkcs1Sha256, kyso::test::item_digest(one),
                       kyso::from_base64(r1["result"]["signature"].get<std::string>())));
  dialogs = pinentry_dialogs();
  CHECK(dialogs.size() == 5);
  CHECK(count(dialogs, "prompt=Mật khẩu:") == 1);

  // The audit log has the approval and every signature, and its chain holds.
  const auto audit = kyso::agent::AuditLog::verify(agent->state / "state" / "audit.db");
  CHECK(audit.ok);
  CHECK(audit.rows >= 121 + 2);
}

TEST_CASE("agentRemote_wrongOtp_refusedNotRetriedThenLockout", "[csc][agent][security]") {
  rt::Harness h([](kyso::appliance::ApplianceConfig& c) { c.limits.max_failures = 2; });
  user_types("000000");
  const auto agent = remote_agent(h.base_url());
  Client c(agent->port());
  const auto r = c.call("batch.sign", {{"role", "principal"}, {"items", items(10)}});
  REQUIRE(r.contains("error"));
  CHECK(r["error"]["code"] == "OTP_INCORRECT");
  CHECK(r["error"]["retriable"] == true);
  CHECK(r["error"]["message"]["vi"].get<std::string>().find("OTP") != std::string::npos);
  CHECK(r["error"]["message"]["en"].get<std::string>().find("OTP") != std::string::npos);
  CHECK(c.events.empty());
  // Asked once, never retried by the agent.
  CHECK(count(pinentry_dialogs(), "prompt=Mã OTP:") == 1);

  // The second wrong OTP locks the user at the service: the page gets REMOTE_LOCKED.
  (void)c.call("batch.sign", {{"role", "principal"}, {"items", items(10)}});
  const auto locked = c.call("batch.sign", {{"role", "principal"}, {"items", items(10)}});
  REQUIRE(locked.contains("error"));
  CHECK(locked["error"]["code"] == "REMOTE_LOCKED");
  CHECK(!locked["error"]["message"]["vi"].get<std::string>().empty());
}

TEST_CASE("agentRemote_wrongOtpThenRightOne_signsOnTheNextRequest", "[csc][agent]") {
  rt::Harness h;
  user_types("000000");
  const auto agent = remote_agent(h.base_url());
  Client c(agent->port());
  const auto bad = c.call("sign", {{"role", "principal"}, {"item", items(1)[0]}});
  REQUIRE(bad.contains("error"));
  CHECK(bad["error"]["code"] == "OTP_INCORRECT");
  user_types();
  const json one = items(1)[0];
  const auto good = c.call("sign", {{"role", "principal"}, {"item", one}});
  REQUIRE(good.contains("result"));
  CHECK(openssl_verify(kyso::from_base64(good["result"]["certificate"].get<std::string>()),
                       SignAlgorithm::RsaPkcs1Sha256, kyso::test::item_digest(one),
                       kyso::from_base64(good["result"]["signature"].get<std::string>())));
}

TEST_CASE("agentRemote_unreachableService_saysSoWithoutAskingAnything", "[csc][agent]") {
  std::string url;
  {
    rt::Harness h;  // a port that was just an appliance's and is closed now
    url = h.base_url();
  }
  user_types();
  const auto agent = remote_agent(url);
  Client c(agent->port());
  const auto r = c.call("batch.sign", {{"role", "principal"}, {"items", items(5)}});
  REQUIRE(r.contains("error"));
  CHECK(r["error"]["code"] == "REMOTE_UNREACHABLE");
  CHECK(r["error"]["retriable"] == true);
  CHECK(r["error"]["message"]["vi"].get<std::string>().find("từ xa") != std::string::npos);
  CHECK(pinentry_dialogs().empty());
  const auto l = c.call("credentials.list", {{"signIn", true}});
  REQUIRE(l.contains("error"));
  CHECK(l["error"]["code"] == "REMOTE_UNREACHABLE");
}

TEST_CASE("agentRemote_restart_listsCachedCredentialsWithoutDialog", "[csc][agent]") {
  rt::Harness h;
  user_types();
  const auto state =
      std::filesystem::path(rt::env().dir) / ("agent-state-" + std::to_string(::getpid()));
  {
    const auto agent = remote_agent(h.base_url(), state);
    Client c(agent->port());
    const auto l = c.call("credentials.list", {{"signIn", true}});
    REQUIRE(l.contains("result"));
    CHECK(l["result"]["credentials"].size() == 1);
    CHECK(count(pinentry_dialogs(), "prompt=Mật khẩu:") == 1);
  }
  const auto agent = remote_agent(h.base_url(), state);
  Client c(agent->port());
  const auto l = c.call("credentials.list", {{"role", "principal"}});
  REQUIRE(l["result"]["credentials"].size() == 1);
  CHECK(l["result"]["credentials"][0]["source"]["kind"] == "remote");
  CHECK(l["result"]["remoteServices"][0]["signedIn"] == false);
  CHECK(pinentry_dialogs().empty());
  // Signing with the cached credential signs in first (password), then PIN and OTP.
  const json one = items(1)[0];
  const auto r = c.call("sign", {{"role", "principal"},
                                 {"credentialId", l["result"]["credentials"][0]["id"]},
                                 {"item", one}});
  REQUIRE(r.contains("result"));
  CHECK(pinentry_dialogs().size() == 3);
  std::error_code ec;
  std::filesystem::remove_all(state, ec);
}

namespace {

/// Starts a 100-item principal batch on an appliance whose HSM is slowed down, and returns
/// once its first progress event arrived.
void start_slow_batch(Client& c, const json& batch) {
  c.send_text(json{
      {"id", 7}, {"method", "batch.sign"}, {"params", {{"role", "principal"}, {"items", batch}}}}
                  .dump());
  while (c.events.empty()) {
    auto m = c.read();
    REQUIRE(m.contains("event"));
    c.events.push_back(m);
  }
}

/// Every item reported signed verifies; every other one carries `code`. Returns how many signed.
int check_summary(const json& s, const json& batch, const std::string& code) {
  const Bytes cert = kyso::from_base64(s["certificate"].get<std::string>());
  int ok = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& e = s["results"][i];
    CHECK(e["index"] == i);
    if (e["ok"] == true) {
      ++ok;
      CHECK(openssl_verify(cert, SignAlgorithm::RsaPkcs1Sha256, kyso::test::item_digest(batch[i]),
                           kyso::from_base64(e["signature"].get<std::string>())));
    } else {
      CHECK(e["error"]["code"] == code);
      CHECK_FALSE(e.contains("signature"));
    }
  }
  CHECK(s["signed"] == ok);
  CHECK(s["failed"] == static_cast<int>(batch.size()) - ok);
  return ok;
}

}  // namespace

TEST_CASE("agentRemote_batchCancelled_summarySaysExactlyWhichItemsWereSigned", "[csc][agent]") {
  rt::Harness h([](kyso::appliance::ApplianceConfig& c) {
    c.pkcs11_modules = {fixture().fault_module};  // SoftHSM, slowed down below
    c.limits.multisign = 10;
  });
  user_types();
  const auto agent = remote_agent(h.base_url());
  kyso::test::Faults::set("sign_delay_us", 20000);
  Client c(agent->port());
  const json batch = items(100);
  start_slow_batch(c, batch);
  c.send_text(json{{"id", 8}, {"method", "batch.cancel"}, {"params", {{"batchId", 7}}}}.dump());
  const auto summary = read_until_id(c, 7);
  kyso::test::Faults::set("sign_delay_us", 0);
  REQUIRE(summary.contains("result"));
  CHECK(summary["result"]["cancelled"] == true);
  const int signed_n = check_summary(summary["result"], batch, "USER_CANCELLED");
  CHECK(signed_n >= 10);
  CHECK(signed_n < 100);
  CHECK(signed_n % 10 == 0);  // whole chunks: a sent chunk finishes, no new one starts
  CHECK(c.events.size() == 100);
}

TEST_CASE("agentRemote_serviceGoneMidBatch_summarySaysExactlyWhichItemsWereSigned",
          "[csc][agent]") {
  rt::Harness h([](kyso::appliance::ApplianceConfig& c) {
    c.pkcs11_modules = {fixture().fault_module};
    c.limits.multisign = 10;
  });
  user_types();
  // The agent waits up to 3 s for the service to come back, then reports.
  const auto agent = remote_agent(h.base_url(), {}, std::chrono::seconds(3));
  kyso::test::Faults::set("sign_delay_us", 20000);
  Client c(agent->port());
  const json batch = items(100);
  start_slow_batch(c, batch);
  h.kill();  // the service goes away with chunks in flight
  const auto gone = std::chrono::steady_clock::now();
  const auto summary = read_until_id(c, 7);
  const auto waited = std::chrono::steady_clock::now() - gone;
  CHECK(waited >= std::chrono::milliseconds(2500));  // it did wait for the service ...
  CHECK(waited <= std::chrono::seconds(15));         // ... a bounded time
  kyso::test::Faults::set("sign_delay_us", 0);
  REQUIRE(summary.contains("result"));
  CHECK(summary["result"]["cancelled"] == false);
  const int signed_n = check_summary(summary["result"], batch, "REMOTE_UNREACHABLE");
  CHECK(signed_n >= 10);
  CHECK(signed_n < 100);
  CHECK(c.events.size() == 100);
}

// ---- documents on the remote key -----------------------------------------------------------

namespace {

std::size_t audit_count(const std::filesystem::path& db, const std::string& where) {
  const auto [rc, out] =
      run("sqlite3 " + db.string() + " \"select count(*) from audit where " + where + "\"");
  REQUIRE(rc == 0);
  return static_cast<std::size_t>(std::stoul(out));
}

/// The principal's place in a transcript XML (as the demo page and the agent's tests put it).
json principal_xml(const kyso::test::Transcript& t) {
  return {{"type", "xml"},
          {"text", kyso::test::transcript_xml(t)},
          {"title", "Học bạ (XML) - " + t.name},
          {"reference", t.id + "-dl"},
          {"parent", t.id},
          {"container", "ChuKyHieuTruong"}};
}

const Bytes kNotPdf = {'k', 'h', 'o', 'n', 'g', ' ', 'P', 'D', 'F'};

json principal_pdf(const kyso::test::Transcript& t) {
  return {{"type", "pdf"},
          {"document", kyso::to_base64(kyso::test::transcript_pdf(t))},
          {"title", "Học bạ (PDF) - " + t.name},
          {"location", "Hà Nội"},
          {"visible", {{"x", 212}, {"y", 40}}}};
}

std::string upload(Client& c, const Bytes& data) {
  const auto begin =
      c.call("upload.begin", {{"size", data.size()}, {"sha256", kyso::to_hex(kyso::sha256(data))}});
  REQUIRE(begin.contains("result"));
  const auto id = begin["result"]["uploadId"].get<std::string>();
  const auto chunk =
      c.call("upload.chunk", {{"uploadId", id}, {"offset", 0}, {"data", kyso::to_base64(data)}});
  REQUIRE(chunk["result"]["received"] == data.size());
  REQUIRE(c.call("upload.end", {{"uploadId", id}}).contains("result"));
  return id;
}

Bytes output_of(Client& c, const json& entry) {
  if (entry.contains("document")) return kyso::from_base64(entry["document"].get<std::string>());
  const auto id = entry.at("downloadId").get<std::string>();
  Bytes out;
  for (;;) {
    const auto r = c.call("download.chunk", {{"downloadId", id}, {"offset", out.size()}});
    REQUIRE(r.contains("result"));
    const auto part = kyso::from_base64(r["result"]["data"].get<std::string>());
    out.insert(out.end(), part.begin(), part.end());
    if (r["result"]["eof"] == true) break;
  }
  (void)c.call("download.end", {{"downloadId", id}});
  return out;
}

}  // namespace

TEST_CASE("agentRemote_principalSignsClassPdfsAndXmls_oneOtpEveryDocumentVerifies",
          "[csc][agent][items]") {
  // 4 per signHash: the class's documents go to the appliance in several chunks.
  rt::Harness h([](kyso::appliance::ApplianceConfig& c) { c.limits.multisign = 4; });
  user_types();
  const auto agent = remote_agent(h.base_url());
  Client c(agent->port());
  ScratchDir dir;
  const auto ts = kyso::test::sample_class(6);

  // The class: each transcript's XML and PDF (the last PDF uploaded), a JSON package as CMS, and
  // one file that is not a PDF, which fails alone before any dialog.
  json batch = json::array();
  for (std::size_t i = 0; i < ts.size(); ++i) {
    batch.push_back(principal_xml(ts[i]));
    json pdf = principal_pdf(ts[i]);
    if (i + 1 == ts.size()) {
      pdf.erase("document");
      pdf["uploadId"] = upload(c, kyso::test::transcript_pdf(ts[i]));
    }
    batch.push_back(pdf);
    if (i == 2) {
      batch.push_back(
          {{"type", "pdf"}, {"document", kyso::to_base64(kNotPdf)}, {"title", "Tệp hỏng"}});
    }
  }
  const std::string package = json{{"lop", "10A1"}, {"soHocSinh", ts.size()}}.dump();
  kyso::test::write_text(dir.file("package.json"), package);
  batch.push_back(
      {{"type", "cms"}, {"text", package}, {"detached", true}, {"title", "Gói học bạ lớp 10A1"}});
  const std::size_t broken = 6;  // its index
  const std::size_t n = batch.size();
  REQUIRE(n == 14);

  const auto r = c.call("batch.sign", {{"role", "principal"}, {"items", batch}});
  INFO(r.dump().substr(0, 3000));
  REQUIRE(r.contains("result"));
  const auto& s = r["result"];
  CHECK(s["total"] == n);
  CHECK(s["signed"] == n - 1);
  CHECK(s["failed"] == 1);
  CHECK(s["cancelled"] == false);
  CHECK(s["credentialId"] == fixture().credential("principal").credential_id());
  CHECK(s["results"][broken]["error"]["code"] == "DOCUMENT_INVALID");

  // Progress per item in order, as for a token.
  REQUIRE(c.events.size() == n);
  for (std::size_t i = 0; i < n; ++i) CHECK(c.events[i]["params"]["index"] == i);

  // Every output checked by an independent tool.
  std::vector<std::string> checks;
  std::size_t pdfs = 0;
  std::size_t xmls = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (i == broken) continue;
    const auto& e = s["results"][i];
    REQUIRE_FALSE(e.contains("error"));
    const Bytes out = output_of(c, e);
    CHECK(kyso::to_hex(kyso::sha256(out)) == e["sha256"]);
    const std::string type = batch[i]["type"];
    const auto path = dir.file("out-" + std::to_string(i) + "." + (type == "cms" ? "p7s" : type));
    kyso::test::write_bytes(path, out);
    if (type == "xml") {
      ++xmls;
      checks.push_back("xmlsec1 --verify --trusted-pem " + pki_path("root") + " --untrusted-pem " +
                       pki_path("sub") + " --id-attr:Id HocBa --id-attr:Id DuLieuHocBa" +
                       " --node-xpath \"//*[@Id='" + e["signatureId"].get<std::string>() + "']\" " +
                       path + " >/dev/null 2>&1");
    } else if (type == "pdf") {
      ++pdfs;
      CHECK(e["fieldName"].is_string());
      checks.push_back("test $(pdfsig " + path + " 2>&1 | grep -c 'Signature is Valid') = 1");
      checks.push_back("pdfsig " + path + " 2>&1 | grep -q 'Trần Văn Bình'");
      checks.push_back("qpdf --check " + path + " >/dev/null 2>&1");
    } else {
      checks.push_back("openssl cms -verify -binary -inform DER -in " + path + " -content " +
                       dir.file("package.json") + " -CAfile " + pki_path("root") +
                       " -purpose any -out /dev/null 2>&1");
    }
  }
  CHECK(pdfs == 6);
  CHECK(xmls == 6);
  const auto failed = kyso::test::run_all(checks);
  for (auto i : failed) INFO(checks[i] << "\n" << run(checks[i]).second);
  CHECK(failed.empty());

  // Password, one approval (the 13 documents that could be prepared) with the PIN, one OTP.
  const auto dialogs = pinentry_dialogs();
  REQUIRE(dialogs.size() == 3);
  CHECK(dialogs[1].find("prompt=Mã PIN:") != std::string::npos);
  CHECK(dialogs[1].find("Ký 13 văn bản") != std::string::npos);
  CHECK(dialogs[1].find("[PDF · PAdES B-B") != std::string::npos);
  CHECK(dialogs[1].find("[XML · XML-DSig") != std::string::npos);
  CHECK(dialogs[1].find("Tệp hỏng") == std::string::npos);
  CHECK(count(dialogs, "prompt=Mã OTP:") == 1);

  // The audit log: one approval, and a row per document with what the appliance signed and
  // what came back; the broken file's refusal; the chain holds.
  const auto db = agent->state / "state" / "audit.db";
  CHECK(kyso::agent::AuditLog::verify(db).ok);
  CHECK(audit_count(db, "event='approval' and detail like '13 document(s)%remote%'") == 1);
  CHECK(audit_count(db,
                    "event='signature' and result='ok' and detail like "
                    "'% signed-digest=% output-sha256=%'") == n - 1);
  CHECK(audit_count(db, "event='signature' and result='DOCUMENT_INVALID'") == 1);
}

TEST_CASE("agentRemote_documentsWrongOtp_nothingSignedNotRetried", "[csc][agent][items]") {
  rt::Harness h;
  user_types("000000");
  const auto agent = remote_agent(h.base_url());
  Client c(agent->port());
  const auto ts = kyso::test::sample_class(2);
  const json batch = {principal_xml(ts[0]), principal_pdf(ts[0]), principal_xml(ts[1]),
                      principal_pdf(ts[1])};
  const auto r = c.call("batch.sign", {{"role", "principal"}, {"items", batch}});
  INFO(r.dump().substr(0, 2000));
  REQUIRE(r.contains("error"));
  CHECK(r["error"]["code"] == "OTP_INCORRECT");
  CHECK(c.events.empty());
  CHECK(count(pinentry_dialogs(), "prompt=Mã OTP:") == 1);  // asked once, never retried
  const auto db = agent->state / "state" / "audit.db";
  CHECK(audit_count(db, "event='signature'") == 0);
  CHECK(audit_count(db, "event='refusal' and result='OTP_INCORRECT'") == 1);
}
