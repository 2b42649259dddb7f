// The token layer against a fresh SoftHSM2 token (tests/pki/make-demo-token.sh): listing,
// Vietnamese credentials, and signatures with every algorithm, each verified by OpenSSL.

#include <catch2/catch.hpp>
#include <thread>

#include "fixture.hpp"
#include "kyso/core/roles.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/pkcs11/library.hpp"

using kyso::SignAlgorithm;
using kyso::test::fixture;

namespace {

kyso::pkcs11::ModuleConfig fixture_modules() {
  return {.paths = {fixture().module}, .use_p11kit = false, .use_known = false};
}

kyso::Secret pin() {
  kyso::Secret s;
  s.assign(fixture().user_pin);
  return s;
}

kyso::Bytes digest_for(SignAlgorithm alg, std::string_view text) {
  return kyso::digest(kyso::openssl_md_name(kyso::hash_of(alg)),
                      {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
}

std::shared_ptr<kyso::Signer> logged_in_signer(kyso::pkcs11::Library& lib,
                                               const std::string& name) {
  auto signer = lib.signer(fixture().credential(name).credential_id());
  const auto p = pin();
  signer->authorize({.pin = &p}, {});
  return signer;
}

}  // namespace

TEST_CASE("tokens: the demo token is listed with its state", "[pkcs11]") {
  kyso::pkcs11::Library lib(fixture_modules());
  REQUIRE(lib.modules().size() == 1);
  CHECK(lib.modules()[0].loaded);
  CHECK(lib.modules()[0].manufacturer == "SoftHSM");
  bool found = false;
  for (const auto& t : lib.tokens()) {
    const auto info = t->info();
    if (info.label != "Kyso Demo") continue;
    found = true;
    CHECK(info.login_required);
    CHECK_FALSE(info.pin_locked);
    CHECK_FALSE(info.logged_in);
    CHECK(t->auth_required() == kyso::AuthKind::Pin);
  }
  CHECK(found);
  // Same physical token, same object (and so the same login and sessions).
  CHECK(lib.token("Kyso Demo") == lib.token("Kyso Demo"));
}

TEST_CASE("credentials: Vietnamese subjects, kinds, UIDs and chains", "[pkcs11]") {
  kyso::pkcs11::Library lib(fixture_modules());
  const auto creds = lib.credentials();
  auto find = [&](const std::string& name) -> const kyso::Credential& {
    const auto id = fixture().credential(name).credential_id();
    for (const auto& c : creds) {
      if (c.id() == id) return c;
    }
    FAIL("credential " << name << " not listed");
    throw;
  };
  const auto& teacher = find("teacher");
  CHECK(teacher.cert.common_name == "Nguyễn Thị Ánh");
  CHECK(teacher.cert.state == "HÀ NỘI");
  CHECK(teacher.cert.kind == kyso::SubjectKind::Person);
  CHECK(teacher.cert.uid("CCCD") == "001185012345");
  CHECK(teacher.cert.key_bits == 2048);
  CHECK(teacher.chain.size() == 2);  // issuing CA and root, from the token itself
  CHECK(teacher.source.kind == "token");
  CHECK(teacher.source.name == "Kyso Demo");
  CHECK(std::ranges::find(teacher.algorithms, SignAlgorithm::RsaPssSha256) !=
        teacher.algorithms.end());

  const auto& principal = find("principal");
  CHECK(principal.cert.key_bits == 3072);
  CHECK(kyso::guess_role(principal.cert) == kyso::Role::Principal);

  const auto& seal = find("seal");
  CHECK(seal.cert.kind == kyso::SubjectKind::Organization);
  CHECK(seal.cert.uid("MNS") == "1047665");
  CHECK(kyso::guess_role(seal.cert) == kyso::Role::Seal);

  const auto& ec = find("teacher-ec");
  CHECK(ec.cert.kind == kyso::SubjectKind::Person);  // CMND wins over the employer's MST
  CHECK(ec.cert.uid("MST") == "0301234567");
  CHECK(ec.cert.curve == "P-256");
  CHECK(std::ranges::all_of(ec.algorithms, kyso::is_ecdsa));

  const auto& expired = find("expired");
  CHECK_FALSE(expired.cert.valid_at(std::chrono::system_clock::now()));
  CHECK(kyso::to_iso8601(expired.cert.not_after).starts_with("2025-01-01"));

  // CA certificates on the token are chain material, not credentials.
  CHECK(creds.size() == fixture().credentials.size());
}

TEST_CASE("sign: every RSA algorithm verifies with OpenSSL against the certificate", "[pkcs11]") {
  kyso::pkcs11::Library lib(fixture_modules());
  for (const char* name : {"teacher", "principal"}) {
    auto signer = logged_in_signer(lib, name);
    for (auto alg : {SignAlgorithm::RsaPkcs1Sha256, SignAlgorithm::RsaPkcs1Sha384,
                     SignAlgorithm::RsaPkcs1Sha512, SignAlgorithm::RsaPssSha256,
                     SignAlgorithm::RsaPssSha384, SignAlgorithm::RsaPssSha512}) {
      INFO(name << " " << kyso::to_string(alg));
      const auto digest = digest_for(alg, "Học bạ số - Nguyễn Văn An - 12A1");
      const auto sig = signer->sign_digest(alg, digest);
      CHECK(sig.size() == static_cast<std::size_t>(signer->credential().cert.key_bits / 8));
      CHECK(kyso::test::openssl_verify(signer->credential().cert.der, alg, digest, sig));
      auto tampered = digest;
      tampered[0] ^= 1U;
      CHECK_FALSE(kyso::test::openssl_verify(signer->credential().cert.der, alg, tampered, sig));
    }
  }
}

TEST_CASE("sign: ECDSA P-256 in DER and raw r||s verifies with OpenSSL", "[pkcs11]") {
  kyso::pkcs11::Library lib(fixture_modules());
  auto signer = logged_in_signer(lib, "teacher-ec");
  for (auto alg :
       {SignAlgorithm::EcdsaSha256, SignAlgorithm::EcdsaSha384, SignAlgorithm::EcdsaSha512}) {
    INFO(kyso::to_string(alg));
    const auto digest = digest_for(alg, "Học bạ số");
    const auto der = signer->sign_digest(alg, digest, kyso::SignatureEncoding::Der);
    CHECK(kyso::test::openssl_verify(signer->credential().cert.der, alg, digest, der));
    const auto raw = signer->sign_digest(alg, digest, kyso::SignatureEncoding::Raw);
    CHECK(raw.size() == 64);
    CHECK(kyso::test::openssl_verify(signer->credential().cert.der, alg, digest,
                                     kyso::ecdsa_raw_to_der(raw)));
  }
}

TEST_CASE("sign: a wrong algorithm or digest length is refused before the token", "[pkcs11]") {
  kyso::pkcs11::Library lib(fixture_modules());
  auto signer = logged_in_signer(lib, "teacher");
  const kyso::Bytes short_digest(20, 0x11);
  try {
    (void)signer->sign_digest(SignAlgorithm::RsaPkcs1Sha256, short_digest);
    FAIL("a 20-byte digest was signed as SHA-256");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::DigestInvalid);
  }
  try {
    (void)signer->sign_digest(SignAlgorithm::EcdsaSha256, kyso::Bytes(32, 1));
    FAIL("ECDSA on an RSA key");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::AlgorithmUnsupported);
  }
}

TEST_CASE("sign: two threads sign in parallel on their own sessions", "[pkcs11]") {
  kyso::pkcs11::Library lib(fixture_modules());
  auto rsa = logged_in_signer(lib, "teacher");
  auto ec = logged_in_signer(lib, "teacher-ec");
  constexpr int kPerThread = 40;
  std::atomic<int> verified{0};
  auto work = [&](const std::shared_ptr<kyso::Signer>& s, SignAlgorithm alg, int seed) {
    for (int i = 0; i < kPerThread; ++i) {
      const auto d = digest_for(alg, "doc-" + std::to_string(seed * 1000 + i));
      const auto sig = s->sign_digest(alg, d);
      if (kyso::test::openssl_verify(s->credential().cert.der, alg, d, sig)) ++verified;
    }
  };
  std::thread a(work, rsa, SignAlgorithm::RsaPkcs1Sha256, 1);
  std::thread b(work, rsa, SignAlgorithm::RsaPssSha256, 2);
  std::thread c(work, ec, SignAlgorithm::EcdsaSha256, 3);
  a.join();
  b.join();
  c.join();
  CHECK(verified == 3 * kPerThread);
}

TEST_CASE("sign: without a login the token is not asked to sign", "[pkcs11][security]") {
  kyso::pkcs11::Library lib(fixture_modules());
  auto signer = lib.signer(fixture().credential("teacher").credential_id());
  CHECK(signer->auth_required() == kyso::AuthKind::Pin);
  try {
    (void)signer->sign_digest(SignAlgorithm::RsaPkcs1Sha256, kyso::Bytes(32, 7));
    FAIL("signed without a login");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::LoginRequired);
  }
}

TEST_CASE("modules: a missing module path is reported and the others keep working", "[pkcs11]") {
  kyso::pkcs11::Library lib({.paths = {"/nonexistent/libvnpt-ca.so", fixture().module},
                             .use_p11kit = false,
                             .use_known = false});
  REQUIRE(lib.modules().size() == 2);
  CHECK_FALSE(lib.modules()[0].loaded);
  CHECK(lib.modules()[0].path == "/nonexistent/libvnpt-ca.so");
  CHECK_FALSE(lib.modules()[0].error.empty());
  CHECK(lib.modules()[1].loaded);
  CHECK_FALSE(lib.credentials().empty());
}

TEST_CASE("modules: a file that is not a PKCS#11 module is refused with a reason", "[pkcs11]") {
  kyso::pkcs11::Library lib(
      {.paths = {"/usr/lib/x86_64-linux-gnu/libz.so.1"}, .use_p11kit = false, .use_known = false});
  REQUIRE(lib.modules().size() == 1);
  CHECK_FALSE(lib.modules()[0].loaded);
  CHECK(lib.modules()[0].error.find("C_GetFunctionList") != std::string::npos);
  CHECK(lib.tokens().empty());
}

TEST_CASE("credentials: an unknown credential id says so", "[pkcs11]") {
  kyso::pkcs11::Library lib(fixture_modules());
  try {
    (void)lib.signer(std::string(64, '0'));
    FAIL("found a credential that does not exist");
  } catch (const kyso::Error& e) {
    CHECK(e.code() == kyso::ErrorCode::CredentialNotFound);
  }
}
