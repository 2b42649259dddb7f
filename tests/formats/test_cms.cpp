// CMS / CAdES B-B and B-T over transcript packages, signed on the fixture token and checked by
// `openssl cms -verify` and `openssl ts -verify`.

#include <openssl/cms.h>

#include <catch2/catch.hpp>

#include "format_support.hpp"
#include "kyso/formats/cms.hpp"
#include "kyso/formats/tsa.hpp"

using kyso::SignAlgorithm;
using kyso::formats::CmsOptions;
using namespace kyso::test;

namespace {

const std::string kPackage =
    R"({"loai":"HocBaSo","truong":"Trường THPT Chu Văn An","lop":"10A1","namHoc":"2025-2026",)"
    R"("hocSinh":{"hoTen":"Nguyễn Thị Ánh","soDinhDanh":"001210010001"},"ketQua":"Lên lớp"})";

CmsOptions opts(SignAlgorithm alg, bool detached = true) {
  CmsOptions o;
  o.algorithm = alg;
  o.detached = detached;
  return o;
}

kyso::formats::TsaConfig tsa_config(const std::string& url) {
  kyso::formats::TsaConfig c;
  c.url = url;
  c.trusted_pem = {pki_path("root")};
  c.timeout = std::chrono::seconds(5);
  return c;
}

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

std::string openssl_cms_verify(const std::string& sig, const std::string& content = "") {
  return "openssl cms -verify -binary -inform DER -in " + sig +
         (content.empty() ? "" : " -content " + content) + " -CAfile " + pki_path("root") +
         " -purpose any -out /dev/null 2>&1";
}

}  // namespace

TEST_CASE("cms: detached CAdES B-B with each key type verifies with openssl cms", "[cms]") {
  ScratchDir dir;
  write_text(dir.file("goi.json"), kPackage);
  const std::vector<std::pair<std::string, SignAlgorithm>> cases{
      {"teacher", SignAlgorithm::RsaPkcs1Sha256},
      {"principal", SignAlgorithm::RsaPssSha256},
      {"seal", SignAlgorithm::RsaPssSha512},
      {"teacher-ec", SignAlgorithm::EcdsaSha256}};
  for (const auto& [name, alg] : cases) {
    INFO(name << " " << kyso::to_string(alg));
    auto signer = demo_signer(name);
    const auto p7s = kyso::formats::sign_cms(*signer, bytes_of(kPackage), opts(alg));
    const auto path = dir.file(name + ".p7s");
    write_bytes(path, p7s);
    const auto [rc, out] = run(openssl_cms_verify(path, dir.file("goi.json")));
    INFO(out);
    CHECK(rc == 0);
    const auto [prc, printed] = run("openssl cms -cmsout -print -inform DER -in " + path);
    CHECK(printed.find("id-smime-aa-signingCertificateV2") != std::string::npos);
    CHECK(printed.find("signingTime") != std::string::npos);
    if (kyso::is_pss(alg)) CHECK(printed.find("rsassaPss") != std::string::npos);
  }
}

TEST_CASE("cms: attached signature carries the content and verifies", "[cms]") {
  ScratchDir dir;
  auto signer = demo_signer("principal");
  const auto p7m = kyso::formats::sign_cms(*signer, bytes_of(kPackage),
                                           opts(SignAlgorithm::RsaPssSha256, false));
  write_bytes(dir.file("goi.p7m"), p7m);
  const auto [rc, out] =
      run("openssl cms -verify -binary -inform DER -in " + dir.file("goi.p7m") + " -CAfile " +
          pki_path("root") + " -purpose any -out " + dir.file("out.json") + " 2>&1");
  INFO(out);
  REQUIRE(rc == 0);
  const auto got = read_bytes(dir.file("out.json"));
  CHECK(std::string(got.begin(), got.end()) == kPackage);
}

TEST_CASE("cms: one changed byte of content or signature fails verification", "[cms]") {
  ScratchDir dir;
  auto signer = demo_signer("teacher");
  write_text(dir.file("goi.json"), kPackage);
  write_bytes(dir.file("goi.p7s"), kyso::formats::sign_cms(*signer, bytes_of(kPackage), {}));
  REQUIRE(run(openssl_cms_verify(dir.file("goi.p7s"), dir.file("goi.json"))).first == 0);
  flip_byte(dir.file("goi.json"), 40);
  CHECK(run(openssl_cms_verify(dir.file("goi.p7s"), dir.file("goi.json"))).first != 0);
  write_text(dir.file("goi.json"), kPackage);
  flip_byte(dir.file("goi.p7s"), -10);  // inside the signature value
  CHECK(run(openssl_cms_verify(dir.file("goi.p7s"), dir.file("goi.json"))).first != 0);
}

TEST_CASE("cms: B-T carries a loopback TSA token over the signature value", "[cms][tsa]") {
  ScratchDir dir;
  LoopbackTsa tsa;
  auto signer = demo_signer("seal");
  CmsOptions o = opts(SignAlgorithm::RsaPssSha256);
  o.tsa = tsa_config(tsa.url());
  const auto p7s = kyso::formats::sign_cms(*signer, bytes_of(kPackage), o);
  CHECK(tsa.requests() == 1);
  write_bytes(dir.file("goi.p7s"), p7s);
  write_text(dir.file("goi.json"), kPackage);
  CHECK(run(openssl_cms_verify(dir.file("goi.p7s"), dir.file("goi.json"))).first == 0);

  // The token, checked by `openssl ts -verify` over the signature value it timestamps.
  const unsigned char* p = p7s.data();
  std::unique_ptr<CMS_ContentInfo, kyso::FnDeleter<CMS_ContentInfo_free>> cms(
      d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(p7s.size())));
  REQUIRE(cms);
  CMS_SignerInfo* si = sk_CMS_SignerInfo_value(CMS_get0_SignerInfos(cms.get()), 0);
  const ASN1_OCTET_STRING* sig = CMS_SignerInfo_get0_signature(si);
  write_bytes(dir.file("sig.bin"),
              {ASN1_STRING_get0_data(sig), static_cast<std::size_t>(ASN1_STRING_length(sig))});
  const int idx = CMS_unsigned_get_attr_by_NID(si, NID_id_smime_aa_timeStampToken, -1);
  REQUIRE(idx >= 0);
  const ASN1_TYPE* t = X509_ATTRIBUTE_get0_type(CMS_unsigned_get_attr(si, idx), 0);
  REQUIRE(t->type == V_ASN1_SEQUENCE);
  write_bytes(dir.file("tst.der"),
              {t->value.sequence->data, static_cast<std::size_t>(t->value.sequence->length)});
  const auto [rc, out] = run("openssl ts -verify -token_in -in " + dir.file("tst.der") + " -data " +
                             dir.file("sig.bin") + " -CAfile " + pki_path("root") + " -untrusted " +
                             pki_path("chain") + " 2>&1");
  INFO(out);
  CHECK(rc == 0);
}

TEST_CASE("tsa: a TSA that names itself answers with or without trust anchors", "[cms][tsa]") {
  // The loopback TSA puts its name in every token, as the demo PKI's does. Without anchors the
  // answer must still match the request and carry a valid signature.
  LoopbackTsa tsa;
  const std::string data = "hoc ba 10A1";
  for (const bool anchors : {true, false}) {
    auto c = tsa_config(tsa.url());
    if (!anchors) c.trusted_pem.clear();
    const auto ts = kyso::formats::request_timestamp(c, bytes_of(data));
    CHECK_FALSE(ts.token.empty());
    const auto skew = std::chrono::abs(std::chrono::system_clock::now() - ts.time);
    CHECK(skew < std::chrono::minutes(1));
  }
}

TEST_CASE("cms: a TSA that is down or busy gives TSA_UNAVAILABLE and no signature", "[cms][tsa]") {
  auto signer = demo_signer("teacher");
  LoopbackTsa busy(503);
  CmsOptions o;
  o.tsa = tsa_config(busy.url());
  try {
    (void)kyso::formats::sign_cms(*signer, bytes_of(kPackage), o);
    FAIL("signed without a timestamp");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::TsaUnavailable);
  }
  o.tsa->url = "http://127.0.0.1:1/tsa";  // nothing listens there
  CHECK_THROWS_MATCHES(kyso::formats::sign_cms(*signer, bytes_of(kPackage), o), kyso::Error,
                       Catch::Predicate<kyso::Error>([](const kyso::Error& e) {
                         return e.code() == kyso::ErrorCode::TsaUnavailable;
                       }));
}

TEST_CASE("cms: hash-only signing returns the signature and the chain", "[cms]") {
  auto signer = demo_signer("principal");
  const auto d = kyso::sha256(bytes_of(kPackage));
  const auto r = kyso::formats::sign_hash(*signer, SignAlgorithm::RsaPssSha256, d);
  REQUIRE(r.chain.size() == 3);
  CHECK(r.chain[0] == fixture().credential("principal").cert_der);
  CHECK(openssl_verify(r.chain[0], SignAlgorithm::RsaPssSha256, d, r.signature));
}
