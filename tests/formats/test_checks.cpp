// Checks before signing: validity, key usage, chain to the configured anchors, revocation by
// OCSP (`openssl ocsp` responder on loopback) with CRL fallback. A refused certificate never
// reaches the token: the fault module's C_Sign counter stays at zero.

#include <catch2/catch.hpp>

#include "format_support.hpp"
#include "kyso/formats/cert_check.hpp"
#include "kyso/formats/cms.hpp"

using kyso::ErrorCode;
using kyso::formats::CertificateChecker;
using kyso::formats::CheckedSigner;
using kyso::formats::TrustConfig;
using namespace kyso::test;

namespace {

TrustConfig trust(const std::string& ocsp_url) {
  TrustConfig t;
  t.anchors = {pki_path("root")};
  t.ocsp_url = ocsp_url;
  t.timeout = std::chrono::seconds(5);
  return t;
}

const kyso::Bytes kData{'h', 'o', 'c', ' ', 'b', 'a'};

ErrorCode sign_error(kyso::Signer& s) {
  try {
    (void)kyso::formats::sign_cms(s, kData, {});
  } catch (const kyso::Error& e) {
    return e.code();
  }
  FAIL("signed");
  return ErrorCode::Internal;
}

}  // namespace

TEST_CASE("checks: a valid certificate passes with OCSP good", "[ocsp]") {
  OcspResponder ocsp;
  CertificateChecker checker(trust(ocsp.url()));
  for (const char* name : {"teacher", "principal", "seal", "teacher-ec"}) {
    INFO(name);
    const auto r = checker.check(demo_signer(name)->credential());
    CHECK(r.ok);
    CHECK(r.revocation == "ocsp");
  }
}

TEST_CASE("checks: revoked and expired certificates are refused before any C_Sign", "[ocsp]") {
  OcspResponder ocsp;
  auto checker = std::make_shared<CertificateChecker>(trust(ocsp.url()));
  Faults::reset();
  CheckedSigner revoked(demo_signer("revoked", true), checker);
  CHECK(sign_error(revoked) == ErrorCode::CertRevoked);
  CheckedSigner expired(demo_signer("expired", true), checker);
  CHECK(sign_error(expired) == ErrorCode::CertExpired);
  CHECK(Faults::get("count.C_Sign") == 0);
  // The same checker lets a valid certificate through to the token.
  CheckedSigner teacher(demo_signer("teacher", true), checker);
  CHECK_NOTHROW(kyso::formats::sign_cms(teacher, kData, {}));
  CHECK(Faults::get("count.C_Sign") == 1);
}

TEST_CASE("checks: OCSP down falls back to the CRL", "[ocsp]") {
  CertificateChecker checker(trust("http://127.0.0.1:1/"));
  const auto good =
      checker.evaluate(demo_signer("teacher")->credential(), std::chrono::system_clock::now());
  CHECK(good.ok);
  CHECK(good.revocation == "crl");
  const auto bad =
      checker.evaluate(demo_signer("revoked")->credential(), std::chrono::system_clock::now());
  REQUIRE_FALSE(bad.ok);
  CHECK(bad.problems.front().code() == ErrorCode::CertRevoked);
  CHECK(bad.revocation == "crl");
  // No OCSP and no CRL: unknown, which the refuse policy refuses too.
  auto t = trust("http://127.0.0.1:1/");
  t.crl_fallback = false;
  CertificateChecker blind(t);
  CHECK_THROWS_MATCHES(blind.check(demo_signer("teacher")->credential()), kyso::Error,
                       Catch::Predicate<kyso::Error>([](const kyso::Error& e) {
                         return e.code() == ErrorCode::CertRevocationUnknown;
                       }));
}

TEST_CASE("checks: results are cached for the batch", "[ocsp]") {
  auto ocsp = std::make_unique<OcspResponder>();
  auto t = trust(ocsp->url());
  t.crl_fallback = false;
  CertificateChecker checker(t);
  const auto signer = demo_signer("seal");
  const auto& cred = signer->credential();
  CHECK(checker.check(cred).revocation == "ocsp");
  ocsp->stop();
  CHECK(checker.check(cred).revocation == "ocsp");  // not asked again
}

TEST_CASE("checks: untrusted anchor and the warn policy", "[ocsp]") {
  auto t = trust("");
  t.anchors = {pki_path("tsa_cert")};  // not the root of the signers' chain
  t.check_revocation = false;
  CertificateChecker untrusted(t);
  const auto r =
      untrusted.evaluate(demo_signer("teacher")->credential(), std::chrono::system_clock::now());
  REQUIRE_FALSE(r.ok);
  CHECK(r.problems.front().code() == ErrorCode::CertUntrusted);

  auto w = trust("");
  w.check_revocation = false;
  w.policy = kyso::formats::CheckPolicy::Warn;
  CheckedSigner expired(demo_signer("expired"), std::make_shared<CertificateChecker>(w));
  const auto p7 = kyso::formats::sign_cms(expired, kData, {});
  CHECK_FALSE(p7.empty());
  REQUIRE_FALSE(expired.last_check().ok);
  CHECK(expired.last_check().problems.front().code() == ErrorCode::CertExpired);
  CHECK_FALSE(expired.last_check().problems.front().message(kyso::Language::Vi).empty());
}
