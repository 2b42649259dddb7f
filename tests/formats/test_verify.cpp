// `kyso verify` on XML, PDF and CMS signed on the fixture token: Vietnamese by default, JSON on
// request, exit 2 when a signature fails (tampered content, revoked signer).

#include <catch2/catch.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>

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
  const auto t = sample_class(1).at(0);
  const auto xml = transcript_xml(t);
  auto doc = kyso::formats::XmlDocument::parse(
      {reinterpret_cast<const std::uint8_t*>(xml.data()), xml.size()});
  kyso::formats::XmlSignOptions o;
  o.reference_id = t.id + "-dl";
  o.container = "ChuKyGVCN";
  doc.sign(*demo_signer("teacher"), o);
  o.parent_id = t.id;
  o.container = "ChuKyHieuTruong";
  o.algorithm = SignAlgorithm::RsaPssSha256;
  doc.sign(*demo_signer("principal"), o);
  o.reference_id = t.id;
  o.container = "ConDau";
  o.algorithm = SignAlgorithm::RsaPkcs1Sha256;
  doc.sign(*demo_signer("seal"), o);
  const auto path = dir.file("hocba.xml");
  doc.save(path);
  return path;
}

std::string signed_pdf(const ScratchDir& dir) {
  write_bytes(dir.file("in.pdf"), transcript_pdf(sample_class(1).at(0)));
  kyso::formats::PdfSignOptions o;
  kyso::formats::sign_pdf(*demo_signer("teacher"), dir.file("in.pdf"), dir.file("r1.pdf"), o);
  o.algorithm = SignAlgorithm::RsaPssSha256;
  kyso::formats::sign_pdf(*demo_signer("principal"), dir.file("r1.pdf"), dir.file("r2.pdf"), o);
  o.algorithm = SignAlgorithm::RsaPkcs1Sha256;
  kyso::formats::sign_pdf(*demo_signer("seal"), dir.file("r2.pdf"), dir.file("hocba.pdf"), o);
  return dir.file("hocba.pdf");
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
