// `kyso verify` on XML, PDF and CMS signed on the fixture token: Vietnamese by default, JSON on
// request, exit 2 when a signature fails (tampered content, revoked signer).

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "format_support.hpp"
#include "kyso/formats/cms.hpp"
#include "kyso/formats/pdf.hpp"
#include "kyso/formats/verify.hpp"
#include "kyso/formats/xml.hpp"

using kyso::SignAlgorithm;
using namespace kyso::test;

namespace {

std::string kyso_verify(const std::string& file, const std::string& extra = "") {
  // OCSP pointed at a closed port: revocation comes from the CRL (the certificates' CDP).
  return std::string(std::getenv("KYSO_CLI")) + " verify " + file + " --trust " + pki_path("root") +
         " --ocsp-url http://127.0.0.1:1/ " + extra + " 2>&1";
}

std::string signed_xml(const ScratchDir& dir) {
  return signed_transcript_xml(dir);
}

std::string signed_pdf(const ScratchDir& dir) {
  return signed_transcript_pdf(dir);
}

}  // namespace

TEST_CASE("verify: XML with three signatures reports signers in Vietnamese, tampering fails",
          "[verify]") {
  ScratchDir dir;
  const auto path = signed_xml(dir);
  auto [rc, out] = run(kyso_verify(path));
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("Người ký: Nguyễn Thị Ánh  CCCD:001185012345") != std::string::npos);
  CHECK(out.find("Người ký: Trường THPT Chu Văn An  MNS:1047665") != std::string::npos);
  CHECK(out.find("Hiệu trưởng") != std::string::npos);
  CHECK(out.find("tổ chức") != std::string::npos);
  CHECK(out.find("Kết quả: tất cả chữ ký hợp lệ.") != std::string::npos);
  const auto bytes = read_bytes(path);
  flip_byte(path, static_cast<long>(std::string(bytes.begin(), bytes.end()).find("Ngữ văn")));
  std::tie(rc, out) = run(kyso_verify(path));
  CHECK(rc == 2);
  CHECK(out.find("KHÔNG ĐẠT") != std::string::npos);
  CHECK(out.find("Kết quả: có chữ ký KHÔNG hợp lệ.") != std::string::npos);
}

TEST_CASE("verify: PDF revisions as JSON in English, later changes flagged, tampering fails",
          "[verify]") {
  ScratchDir dir;
  const auto path = signed_pdf(dir);
  auto [rc, out] = run(kyso_verify(path, "--json --lang en"));
  INFO(out);
  REQUIRE(rc == 0);
  const auto j = nlohmann::json::parse(out);
  CHECK(j["kind"] == "pdf");
  CHECK(j["ok"] == true);
  REQUIRE(j["signatures"].size() == 3);
  CHECK(j["signatures"][0]["role"] == "teacher");
  CHECK(j["signatures"][1]["role"] == "principal");
  CHECK(j["signatures"][2]["role"] == "seal");
  CHECK(j["signatures"][0]["coversWholeFile"] == false);
  CHECK(j["signatures"][2]["coversWholeFile"] == true);
  CHECK(j["signatures"][0]["revocation"]["status"] == "ok");
  CHECK(j["signatures"][0]["signer"]["uids"][0]["value"] == "001185012345");
  CHECK(j["signatures"][1]["signingTime"].is_string());
  CHECK(j["signatures"][1]["signingCertificate"]["status"] == "ok");
  const auto bytes = read_bytes(path);
  flip_byte(path, static_cast<long>(std::string(bytes.begin(), bytes.end()).find("Ho va ten")));
  std::tie(rc, out) = run(kyso_verify(path, "--lang en"));
  CHECK(rc == 2);
  CHECK(out.find("Integrity: FAILED") != std::string::npos);
}

TEST_CASE("verify: CMS detached and B-T, a revoked signer fails", "[verify][cms]") {
  ScratchDir dir;
  LoopbackTsa tsa;
  const std::string data = R"({"hocSinh":"Nguyễn Văn An","ketQua":"Lên lớp"})";
  write_text(dir.file("goi.json"), data);
  kyso::formats::CmsOptions o;
  o.tsa = kyso::formats::TsaConfig{};
  o.tsa->url = tsa.url();
  const std::span<const std::uint8_t> bytes{reinterpret_cast<const std::uint8_t*>(data.data()),
                                            data.size()};
  write_bytes(dir.file("goi.p7s"), kyso::formats::sign_cms(*demo_signer("seal"), bytes, o));
  auto [rc, out] =
      run(kyso_verify(dir.file("goi.p7s"), "--content " + dir.file("goi.json") + " --json"));
  INFO(out);
  REQUIRE(rc == 0);
  const auto j = nlohmann::json::parse(out);
  CHECK(j["signatures"][0]["timestamp"].is_string());
  CHECK(j["signatures"][0]["format"] == "cades");
  CHECK(j["signatures"][0]["signingCertificate"]["status"] == "ok");

  // Signed without the pre-sign check: verification still catches the revoked certificate.
  write_bytes(dir.file("revoked.p7s"), kyso::formats::sign_cms(*demo_signer("revoked"), bytes, {}));
  std::tie(rc, out) =
      run(kyso_verify(dir.file("revoked.p7s"), "--content " + dir.file("goi.json")));
  CHECK(rc == 2);
  CHECK(out.find("Tình trạng thu hồi: KHÔNG ĐẠT") != std::string::npos);
  // Wrong content for a detached signature.
  write_text(dir.file("other.json"), R"({"hocSinh":"Nguyễn Văn Bình"})");
  std::tie(rc, out) = run(kyso_verify(dir.file("goi.p7s"), "--content " + dir.file("other.json")));
  CHECK(rc == 2);
}

TEST_CASE("verify: not a signed document gives a clear error", "[verify]") {
  ScratchDir dir;
  write_text(dir.file("x.bin"), "xin chào");
  const auto [rc, out] = run(kyso_verify(dir.file("x.bin")));
  CHECK(rc == 1);
  CHECK(out.find("DOCUMENT_INVALID") != std::string::npos);
}

namespace {

// The latest definition of an object, as qpdf prints it.
std::string show_object(const std::string& path, int num) {
  auto [rc, out] = run("qpdf --show-object=" + std::to_string(num) + " " + path + " 2>/dev/null");
  REQUIRE(rc == 0);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

TEST_CASE("verify: later signatures and form fields are told apart from content changes",
          "[verify][pades]") {
  ScratchDir dir;
  const auto path = signed_pdf(dir);
  auto [rc, out] = run(kyso_verify(path, "--json"));
  INFO(out);
  REQUIRE(rc == 0);
  auto j = nlohmann::json::parse(out);
  CHECK(j["signatures"][0]["laterChanges"]["kind"] == "signatures-or-form-fields");
  CHECK(j["signatures"][0]["laterChanges"]["signaturesAdded"] == 2);
  CHECK(j["signatures"][1]["laterChanges"]["kind"] == "signatures-or-form-fields");
  CHECK(j["signatures"][1]["laterChanges"]["signaturesAdded"] == 1);
  CHECK(j["signatures"][2]["laterChanges"]["kind"] == "none");
  std::tie(rc, out) = run(kyso_verify(path));
  CHECK(out.find("chỉ thêm chữ ký hoặc trường biểu mẫu, nội dung không đổi") != std::string::npos);

  // A text field added after the seal (new widget, page /Annots and form /Fields grow).
  const auto field = dir.file("field.pdf");
  write_bytes(field, read_bytes(path));
  const int widget = 40;
  std::string page = show_object(field, 3);
  std::string root = show_object(field, 1);
  REQUIRE(page.find("/Annots [") != std::string::npos);
  REQUIRE(root.find("/Fields [") != std::string::npos);
  page.replace(page.find("/Annots [") + 9, 0, " 40 0 R ");
  root.replace(root.find("/Fields [") + 9, 0, " 40 0 R ");
  append_pdf_revision(field,
                      {{1, root},
                       {3, page},
                       {widget,
                        "<< /Type /Annot /Subtype /Widget /FT /Tx /T (GhiChu) /V (Da kiem tra)"
                        " /Rect [50 20 250 40] /P 3 0 R >>"}});
  std::tie(rc, out) = run(kyso_verify(field, "--json"));
  INFO(out);
  CHECK(rc == 0);
  j = nlohmann::json::parse(out);
  CHECK(j["signatures"][2]["laterChanges"]["kind"] == "signatures-or-form-fields");
  CHECK(j["signatures"][2]["laterChanges"]["formFieldsAdded"] == 1);
  CHECK(j["signatures"][0]["laterChanges"]["signaturesAdded"] == 2);

  // The page's text replaced in a later revision: every signature still verifies over its own
  // revision (pdfsig calls them valid), but the document shown is no longer the one signed.
  const auto changed = dir.file("changed.pdf");
  write_bytes(changed, read_bytes(path));
  const std::string text = "BT /F1 11 Tf 50 760 Td (Toan: 10.0  Ngu van: 10.0) Tj ET\n";
  append_pdf_revision(changed, {{4, "<< /Length " + std::to_string(text.size()) + " >>\nstream\n" +
                                        text + "endstream"}});
  REQUIRE(run("qpdf --check " + changed + " >/dev/null 2>&1").first == 0);
  std::tie(rc, out) = run(kyso_verify(changed, "--json"));
  INFO(out);
  CHECK(rc == 2);
  j = nlohmann::json::parse(out);
  for (const auto& s : j["signatures"]) {
    CHECK(s["integrity"]["ok"] == true);
    CHECK(s["laterChanges"]["kind"] == "content-changed");
    CHECK(s["laterChanges"]["changed"].dump().find("4 0 R") != std::string::npos);
    CHECK(s["ok"] == false);
  }
  std::tie(rc, out) = run(kyso_verify(changed));
  CHECK(out.find("NỘI DUNG ĐÃ BỊ THAY ĐỔI sau chữ ký này") != std::string::npos);
  std::tie(rc, out) = run(kyso_verify(changed, "--lang en"));
  CHECK(out.find("CONTENT WAS CHANGED after this signature") != std::string::npos);
}

TEST_CASE("verify: XAdES SigningCertificateV2 must name the certificate in KeyInfo",
          "[verify][xades]") {
  ScratchDir dir;
  const auto t = sample_class(1).at(0);
  const auto xml = transcript_xml(t);
  auto doc = kyso::formats::XmlDocument::parse(
      {reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
  kyso::formats::XmlSignOptions o;
  o.reference_id = t.id + "-dl";
  o.container = "ChuKyGVCN";
  o.level = kyso::formats::XmlLevel::XadesB;
  auto teacher = demo_signer("teacher");
  // Another certificate for the same key, issued by the same CA to someone else: the signature
  // value still verifies with it, so only SigningCertificateV2 shows the swap. Made before
  // signing, so it is already valid at the signing time the verifier judges it at.
  write_bytes(dir.file("teacher.der"), teacher->credential().cert.der);
  write_text(dir.file("ext.cnf"),
             "[e]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\n");
  const std::string sub = pki_path("sub");
  const std::string sub_key = sub.substr(0, sub.rfind('/')) + "/sub.key";
  REQUIRE(run("openssl x509 -inform DER -in " + dir.file("teacher.der") + " -pubkey -noout > " +
              dir.file("pub.pem") + " && openssl x509 -new -subj '/CN=Nguyen Thi Anh (gia mao)' " +
              "-force_pubkey " + dir.file("pub.pem") + " -CA " + sub + " -CAkey " + sub_key +
              " -set_serial 4242 -days 30 -extfile " + dir.file("ext.cnf") +
              " -extensions e -outform DER -out " + dir.file("fake.der") + " 2>&1")
              .first == 0);
  doc.sign(*teacher, o);
  const auto path = dir.file("xades.xml");
  doc.save(path);
  auto [rc, out] = run(kyso_verify(path, "--json"));
  INFO(out);
  REQUIRE(rc == 0);
  CHECK(nlohmann::json::parse(out)["signatures"][0]["signingCertificate"]["status"] == "ok");

  const auto fake = read_bytes(dir.file("fake.der"));
  const auto signed_bytes = read_bytes(path);
  std::string swapped(signed_bytes.begin(), signed_bytes.end());
  const auto start = swapped.find("X509Certificate>") + 16;
  swapped.replace(start, swapped.find('<', start) - start, kyso::to_base64(fake));
  write_text(dir.file("swapped.xml"), swapped);
  std::tie(rc, out) = run(kyso_verify(dir.file("swapped.xml"), "--json"));
  INFO(out);
  CHECK(rc == 2);
  const auto j = nlohmann::json::parse(out);
  CHECK(j["signatures"][0]["integrity"]["ok"] == true);
  CHECK(j["signatures"][0]["chain"]["status"] == "ok");
  CHECK(j["signatures"][0]["signingCertificate"]["status"] == "failed");
  std::tie(rc, out) = run(kyso_verify(dir.file("swapped.xml"), "--lang en"));
  CHECK(out.find("Signing certificate binding: FAILED") != std::string::npos);
}
