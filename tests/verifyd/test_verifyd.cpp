// kyso-verifyd on the demo PKI: the transcripts signed by teacher, principal and seal are
// TOTAL-PASSED with the right people and roles; each kind of failure has its own ETSI verdict;
// the sealed PDF report verifies in pdfsig; the page works in real chromium.

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <sstream>

#include "kyso/formats/cms.hpp"
#include "kyso/formats/extend.hpp"
#include "verifyd_support.hpp"

using namespace kyso::test;
using nlohmann::json;

namespace {

const json& sig(const json& report, std::size_t i) {
  return report["signatures"].at(i);
}

}  // namespace

TEST_CASE("verifyd: the demo transcripts (XML, PDF) are TOTAL-PASSED with names and roles",
          "[verifyd]") {
  ScratchDir dir;
  OcspResponder ocsp;
  RunningVerifyd vd(demo_profile(ocsp.url(), dir.path().string()));
  for (const auto& file : {signed_transcript_xml(dir), signed_transcript_pdf(dir)}) {
    const auto a = post_file(vd.url("/v1/validate"), file);
    INFO(file << "\n" << a.body);
    REQUIRE(a.status == 200);
    const json r = a.json();
    CHECK(schema_errors(r).empty());
    CHECK(r["indication"] == "TOTAL-PASSED");
    CHECK(r["subIndication"].is_null());
    CHECK(r["summary"]["passed"] == 3);
    REQUIRE(r["signatures"].size() == 3);
    CHECK(sig(r, 0)["signer"]["name"] == "Nguyễn Thị Ánh");
    CHECK(sig(r, 0)["signer"]["identifiers"][0] ==
          json{{"type", "CCCD"}, {"value", "001185012345"}});
    CHECK(sig(r, 0)["signer"]["kind"] == "person");
    CHECK(sig(r, 0)["role"]["code"] == "teacher");
    CHECK(sig(r, 0)["role"]["vi"] == "Giáo viên chủ nhiệm");
    CHECK(sig(r, 1)["signer"]["name"] == "Trần Văn Bình");
    CHECK(sig(r, 1)["role"]["code"] == "principal");
    CHECK(sig(r, 2)["signer"]["name"] == "Trường THPT Chu Văn An");
    CHECK(sig(r, 2)["signer"]["kind"] == "organization");
    CHECK(sig(r, 2)["signer"]["identifiers"][0]["type"] == "MNS");
    CHECK(sig(r, 2)["role"]["code"] == "seal");
    for (const auto& s : r["signatures"]) {
      CHECK(s["indication"] == "TOTAL-PASSED");
      CHECK(s["level"] == "B-B");
      CHECK(s["signingTime"]["proof"] == "claimed");
      CHECK(s["certificate"]["status"]["status"] == "good");
      CHECK(s["certificate"]["status"]["source"] == "ocsp");
      CHECK(s["certificate"]["chain"]["status"] == "ok");
    }
    // TT 15/2025 asks for RSA-PSS: the PKCS#1 v1.5 signatures are flagged, the PSS one is not.
    auto has_warning = [](const json& s, const std::string& code) {
      return s["warnings"].dump().find("\"" + code + "\"") != std::string::npos;
    };
    CHECK(has_warning(sig(r, 0), "RSA_PKCS1_V15"));
    CHECK_FALSE(has_warning(sig(r, 1), "RSA_PKCS1_V15"));
    CHECK(sig(r, 1)["algorithm"]["padding"] == "pss");
    if (r["document"]["kind"] == "pdf") {
      CHECK(sig(r, 0)["laterChanges"]["kind"] == "signatures-or-form-fields");
      CHECK(sig(r, 2)["laterChanges"]["kind"] == "none");
    }
  }
}

TEST_CASE("verifyd: B-T signatures show the timestamp as the proof of the signing time",
          "[verifyd]") {
  ScratchDir dir;
  LoopbackTsa tsa;
  RunningVerifyd vd(demo_profile("", dir.path().string()));  // OCSP down: the CRL answers
  const auto a =
      post_file(vd.url("/v1/validate"),
                signed_transcript_pdf(dir, {{"teacher", "principal", "seal"}, tsa.url()}));
  INFO(a.body);
  REQUIRE(a.status == 200);
  const json r = a.json();
  CHECK(schema_errors(r).empty());
  CHECK(r["indication"] == "TOTAL-PASSED");
  for (const auto& s : r["signatures"]) {
    CHECK(s["level"] == "B-T");
    CHECK(s["signingTime"]["proof"] == "timestamp");
    CHECK(s["signingTime"]["time"] == s["signingTime"]["timestamp"]);
    CHECK(s["certificate"]["status"]["source"] == "crl");
  }
}

TEST_CASE("verifyd: B-LT and B-LTA transcripts are named so and judged from their own data",
          "[verifyd][longterm]") {
  ScratchDir dir;
  LoopbackTsa tsa;
  std::string pdf;
  std::string xml;
  {
    OcspResponder ocsp;  // only while extending: the service never reaches it
    kyso::formats::ExtendOptions e;
    e.trust.anchors = {pki_path("root")};
    e.trust.ocsp_url = ocsp.url();
    e.tsa = kyso::formats::TsaConfig{.url = tsa.url(), .trusted_pem = {pki_path("root")}};
    pdf = signed_transcript_pdf(dir, {{"teacher", "principal", "seal"}, tsa.url()});
    e.to = kyso::formats::BaselineLevel::LT;
    CHECK(kyso::formats::extend_file(pdf, e).after == kyso::formats::BaselineLevel::LT);
    ScratchDir d;
    xml = dir.file("hocba-lta.xml");
    std::filesystem::copy_file(
        signed_transcript_xml(d, {{"teacher", "principal", "seal"}, tsa.url()}), xml);
    e.to = kyso::formats::BaselineLevel::LTA;
    CHECK(kyso::formats::extend_file(xml, e).after == kyso::formats::BaselineLevel::LTA);
  }
  // No OCSP responder and no CRL: what proves the status is in the documents.
  auto profile = demo_profile("", dir.path().string());
  profile.crl_files.clear();
  RunningVerifyd vd(profile);
  for (const auto& [file, level] : {std::pair{pdf, "B-LT"}, std::pair{xml, "B-LTA"}}) {
    const auto a = post_file(vd.url("/v1/validate"), file);
    INFO(file << "\n" << a.body);
    REQUIRE(a.status == 200);
    const json r = a.json();
    CHECK(schema_errors(r).empty());
    CHECK(r["indication"] == "TOTAL-PASSED");
    REQUIRE(r["signatures"].size() == 3);
    for (const auto& s : r["signatures"]) {
      CHECK(s["level"] == level);
      CHECK(s["longTerm"]["offline"] == true);
      CHECK(s["longTerm"]["coveredUntil"].is_string());
      CHECK(s["certificate"]["status"]["status"] == "good");
      CHECK(s["certificate"]["status"]["source"] == "embedded");
      CHECK(s["certificate"]["status"]["judgedAt"] == s["signingTime"]["timestamp"]);
    }
    CHECK(sig(r, 1)["signer"]["name"] == "Trần Văn Bình");
    CHECK(sig(r, 1)["role"]["code"] == "principal");
    CHECK((std::string(level) == "B-LTA") == !sig(r, 0)["longTerm"]["archiveTimestamps"].empty());
  }
}

TEST_CASE("verifyd: tampered, expired, revoked, untrusted and changed-after each get their verdict",
          "[verifyd]") {
  ScratchDir dir;
  LoopbackTsa tsa;
  OcspResponder ocsp;
  RunningVerifyd vd(demo_profile(ocsp.url(), dir.path().string()));
  std::set<std::pair<std::string, std::string>> verdicts;
  auto check = [&](const std::string& what, const std::string& file, const std::string& indication,
                   const std::string& sub, const std::string& reason, std::size_t which) {
    const auto a = post_file(vd.url("/v1/validate"), file);
    INFO(what << "\n" << a.body);
    REQUIRE(a.status == 200);
    const json r = a.json();
    CHECK(schema_errors(r).empty());
    CHECK(r["indication"] == indication);
    CHECK(r["subIndication"] == sub);
    CHECK(sig(r, which)["indication"] == indication);
    CHECK(sig(r, which)["subIndication"] == sub);
    CHECK(sig(r, which)["reason"] == reason);
    verdicts.emplace(indication, sub);
  };

  {  // one byte of the marks changed after signing
    ScratchDir d;
    const auto path = signed_transcript_xml(d);
    const auto bytes = read_bytes(path);
    flip_byte(path, static_cast<long>(std::string(bytes.begin(), bytes.end()).find("Ngữ văn")));
    check("tampered", path, "TOTAL-FAILED", "HASH_FAILURE", "DOCUMENT_CHANGED", 0);
  }
  {  // the teacher's certificate expired in 2025; the timestamp proves it signed after
    ScratchDir d;
    check("expired", signed_transcript_pdf(d, {{"expired", "principal", "seal"}, tsa.url()}),
          "TOTAL-FAILED", "EXPIRED", "CERTIFICATE_EXPIRED_AT_SIGNING", 0);
  }
  {  // revoked before a timestamped signature
    ScratchDir d;
    check("revoked", signed_transcript_xml(d, {{"revoked", "principal", "seal"}, tsa.url()}),
          "TOTAL-FAILED", "REVOKED", "CERTIFICATE_REVOKED", 0);
  }
  {  // a revoked signer with only a claimed time: no proof it signed before the revocation
    ScratchDir d;
    check("revoked, no POE", signed_transcript_xml(d, {{"revoked", "principal", "seal"}, ""}),
          "INDETERMINATE", "REVOKED_NO_POE", "CERTIFICATE_REVOKED", 0);
  }
  {  // the page's text replaced in a later revision
    ScratchDir d;
    const auto path = signed_transcript_pdf(d);
    const std::string text = "BT /F1 11 Tf 50 760 Td (Toan: 10.0  Ngu van: 10.0) Tj ET\n";
    append_pdf_revision(path, {{4, "<< /Length " + std::to_string(text.size()) + " >>\nstream\n" +
                                       text + "endstream"}});
    check("changed after signing", path, "TOTAL-FAILED", "FORMAT_FAILURE",
          "CONTENT_CHANGED_AFTER_SIGNING", 0);
  }
  {  // a service that trusts another root
    ScratchDir d;
    REQUIRE(run("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + d.file("k.pem") + " -out " +
                d.file("other-root.pem") +
                " -subj '/C=VN/O=Other/CN=Other Root' -days 30 2>/dev/null")
                .first == 0);
    auto profile = demo_profile(ocsp.url(), d.path().string());
    profile.anchors = {d.file("other-root.pem")};
    RunningVerifyd other(profile);
    const auto a = post_file(other.url("/v1/validate"), signed_transcript_xml(d));
    INFO(a.body);
    REQUIRE(a.status == 200);
    const json r = a.json();
    CHECK(r["indication"] == "INDETERMINATE");
    CHECK(r["subIndication"] == "NO_CERTIFICATE_CHAIN_FOUND");
    CHECK(sig(r, 0)["reason"] == "UNTRUSTED_CHAIN");
    verdicts.emplace(r["indication"].get<std::string>(), r["subIndication"].get<std::string>());
  }
  CHECK(verdicts.size() == 6);  // each case its own verdict
}

TEST_CASE("verifyd: a detached CMS with its content, sent as multipart", "[verifyd][cms]") {
  ScratchDir dir;
  OcspResponder ocsp;
  RunningVerifyd vd(demo_profile(ocsp.url(), dir.path().string()));
  const std::string data = R"({"hocSinh":"Nguyễn Văn An","ketQua":"Lên lớp"})";
  write_text(dir.file("goi.json"), data);
  write_bytes(dir.file("goi.p7s"),
              kyso::formats::sign_cms(
                  *demo_signer("seal"),
                  {reinterpret_cast<const std::uint8_t*>(data.data()), data.size()}, {}));
  auto a = curl("-F signature=@" + dir.file("goi.p7s") + " -F content=@" + dir.file("goi.json") +
                " '" + vd.url("/v1/validate") + "'");
  INFO(a.body);
  REQUIRE(a.status == 200);
  CHECK(a.json()["indication"] == "TOTAL-PASSED");
  CHECK(a.json()["document"]["kind"] == "cms");
  CHECK(schema_errors(a.json()).empty());
  write_text(dir.file("other.json"), R"({"hocSinh":"Nguyễn Văn Bình"})");
  a = curl("-F signature=@" + dir.file("goi.p7s") + " -F content=@" + dir.file("other.json") +
           " '" + vd.url("/v1/validate") + "'");
  REQUIRE(a.status == 200);
  CHECK(a.json()["subIndication"] == "HASH_FAILURE");
}

TEST_CASE("verifyd: the PDF report is sealed by the service and verifies in pdfsig", "[verifyd]") {
  ScratchDir dir;
  OcspResponder ocsp;
  auto profile = demo_profile(ocsp.url(), dir.path().string());
  add_demo_seal(profile);
  RunningVerifyd vd(profile);
  const auto doc = signed_transcript_pdf(dir);
  for (const std::string lang : {"vi", "en"}) {
    const auto a = post_file(vd.url("/v1/validate?report=pdf&lang=" + lang), doc);
    REQUIRE(a.status == 200);
    REQUIRE(a.body.rfind("%PDF-", 0) == 0);
    const auto report = dir.file("report-" + lang + ".pdf");
    write_text(report, a.body);
    const auto [rc, out] = run("pdfsig " + report + " 2>&1");
    INFO(out);
    CHECK(out.find("Signature Validation: Signature is Valid") != std::string::npos);
    CHECK(out.find("Trường THPT Chu Văn An") != std::string::npos);
    CHECK(run("qpdf --check " + report + " >/dev/null 2>&1").first == 0);
    const auto text = run("pdftotext -enc UTF-8 " + report + " -").second;
    INFO(text);
    if (lang == "vi") {
      CHECK(text.find("KẾT LUẬN: HỢP LỆ") != std::string::npos);
      CHECK(text.find("Người ký: Nguyễn Thị Ánh, CCCD 001185012345") != std::string::npos);
      CHECK(text.find("Vai trò: Hiệu trưởng") != std::string::npos);
    } else {
      CHECK(text.find("RESULT: VALID") != std::string::npos);
      CHECK(text.find("Role: School seal") != std::string::npos);
    }
  }
  // Without a seal configured the PDF report is refused, clearly.
  RunningVerifyd plain(demo_profile(ocsp.url(), dir.path().string()));
  const auto a = post_file(plain.url("/v1/validate?report=pdf"), doc);
  CHECK(a.status == 501);
  CHECK(a.json()["error"]["code"] == "NOT_SUPPORTED");
}

TEST_CASE("verifyd: logs carry the hash and the verdict only, and no document is kept",
          "[verifyd][privacy]") {
  ScratchDir dir;
  std::ostringstream log;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
  {
    RunningVerifyd vd(demo_profile("", dir.path().string()));
    const auto doc = signed_transcript_xml(dir);
    const auto a = post_file(vd.url("/v1/validate"), doc);
    REQUIRE(a.status == 200);
    const auto sha = a.json()["document"]["sha256"].get<std::string>();
    CHECK(log.str().find("sha256=" + sha) != std::string::npos);
    CHECK(log.str().find("indication=TOTAL-PASSED") != std::string::npos);
    for (const char* personal : {"Nguyễn", "001185012345", "Chu Văn An", "Ngữ văn"}) {
      CHECK(log.str().find(personal) == std::string::npos);
    }
    // The private work directory (mode 700) is empty between validations.
    int work_dirs = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
      if (e.path().filename().string().rfind("kyso-verifyd-", 0) != 0) continue;
      ++work_dirs;
      CHECK((std::filesystem::status(e.path()).permissions() & std::filesystem::perms::all) ==
            std::filesystem::perms::owner_all);
      CHECK(std::filesystem::is_empty(e.path()));
    }
    CHECK(work_dirs == 1);
  }
  spdlog::set_default_logger(previous);
}

TEST_CASE("verifyd: the page in chromium reads the verdict in Vietnamese, then English",
          "[verifyd][browser]") {
  ScratchDir dir;
  OcspResponder ocsp;
  LoopbackTsa tsa;  // B-T, as transcripts are issued: the page says the time is proved
  RunningVerifyd vd(demo_profile(ocsp.url(), dir.path().string()));
  const auto doc = signed_transcript_pdf(dir, {{"teacher", "principal", "seal"}, tsa.url()});
  const std::string shot = std::filesystem::current_path().string() + "/verifyd-page.png";
  const auto [rc, out] = run("node " + std::string(KYSO_SOURCE_DIR) + "/tests/verifyd/page.mjs " +
                             vd.url("/") + " " + doc + " " + shot + " 2>&1");
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("vi: ✔ Học bạ hợp lệ") != std::string::npos);
  CHECK(out.find("en: ✔ The transcript is valid") != std::string::npos);
  CHECK(out.find("signer: 1. Nguyễn Thị Ánh — Giáo viên chủ nhiệm") != std::string::npos);
  CHECK(out.find("thời điểm được xác nhận bởi dấu thời gian") != std::string::npos);
}
