// `kyso provision` end to end on blank SoftHSM2 tokens made by the test itself (own
// SOFTHSM2_CONF in a temp dir: the fixture's tokens are never touched). The fixture provides only
// the demo PKI whose issuing CA certifies our requests, as a real CA would.

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include "fixture.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/firmware_config/provision.hpp"
#include "kyso/pkcs11/library.hpp"
#include "scratch_hsm.hpp"

namespace fs = std::filesystem;
using kyso::Bytes;
using kyso::Error;
using kyso::ErrorCode;
using kyso::Secret;
using kyso::firmware_config::Provisioner;
using kyso::test::ScratchHsm;
using kyso::test::secret;

namespace {

constexpr const char* kSubject =
    "C=VN, ST=HÀ NỘI, L=Quận Ba Đình, O=Trường THPT Chu Văn An, title=Giáo viên chủ nhiệm, "
    "UID=CCCD:001185099999, CN=Nguyễn Thị Ánh";

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string pki(const std::string& key) {
  return kyso::test::fixture().manifest.at("pki").at(key).get<std::string>();
}

// The fixture's issuing CA certifies a request, as `openssl x509 -req` (keyUsage from the request).
std::string issue(const ScratchHsm& hsm, const std::string& csr, const std::string& name) {
  const std::string sub = pki("sub");
  const std::string sub_key = fs::path(sub).parent_path() / "sub.key";
  const std::string out = hsm.path(name + ".crt");
  std::random_device rd;
  const auto [rc, text] =
      kyso::test::run("openssl x509 -req -in '" + csr + "' -CA '" + sub + "' -CAkey '" + sub_key +
                      "' -set_serial " + std::to_string(rd()) +
                      " -days 30 -sha256 -copy_extensions copy -out '" + out + "' 2>&1");
  INFO(text);
  REQUIRE(rc == 0);
  return out;
}

std::vector<Bytes> ders_of(const std::vector<std::string>& files) {
  std::vector<Bytes> out;
  for (const auto& f : files) {
    for (const auto& c : kyso::x509_read_file(f)) out.push_back(kyso::x509_to_der(c.get()));
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  return "'" + s + "'";
}

}  // namespace

TEST_CASE("provision_blankToken_initKeygenCsrImportSign_verifiesWithOpenSSL", "[provision]") {
  ScratchHsm hsm;
  const auto alg_name = GENERATE(std::string("rsa2048"), std::string("ec-p256"));
  const auto alg = *kyso::pkcs11::parse_key_algorithm(alg_name);
  const Secret pin = secret("123456");
  const std::string label = "GV-" + alg_name;

  Provisioner p(hsm.module);
  const auto init = p.init_token(label, secret("12345678"), pin);
  CHECK(init.label == label);
  CHECK_FALSE(init.serial.empty());

  const auto key = p.keygen(label, pin, alg, "kyso-sign");
  CHECK(key.key_type == (alg == kyso::pkcs11::KeyAlgorithm::EcP256 ? "EC" : "RSA"));
  CHECK(key.id.size() == 16);
  // A second key with the same label would make the token ambiguous: refused.
  CHECK_THROWS_AS(p.keygen(label, pin, alg, "kyso-sign"), Error);

  // The request: signed on the token, verified by OpenSSL alone, subject kept exactly.
  const auto csr =
      p.make_csr(label, pin, "kyso-sign", kyso::firmware_config::parse_subject(kSubject));
  const std::string csr_file = hsm.path("req.csr");
  write(csr_file, csr.pem);
  {
    const auto [rc, out] =
        kyso::test::run("openssl req -in " + shell_quote(csr_file) +
                        " -verify -noout -subject -nameopt utf8,sep_comma_plus_space 2>&1");
    INFO(out);
    CHECK(rc == 0);
    CHECK_THAT(out, Catch::Contains("verify OK"));
    CHECK_THAT(out, Catch::Contains(std::string("subject=") + kSubject));
  }
  {
    const auto [rc, out] =
        kyso::test::run("openssl asn1parse -in " + shell_quote(csr_file) + " 2>&1");
    CHECK_THAT(out, Catch::Contains("UTF8STRING        :CCCD:001185099999"));
  }

  const std::string crt = issue(hsm, csr_file, "gv");
  {
    const auto [rc, out] =
        kyso::test::run("openssl verify -CAfile " + shell_quote(pki("root")) + " -untrusted " +
                        shell_quote(pki("sub")) + " " + shell_quote(crt) + " 2>&1");
    INFO(out);
    REQUIRE(rc == 0);
  }

  // A running agent's view of the token, before the import: no credential yet.
  kyso::pkcs11::Library lib({.paths = {hsm.module}, .use_p11kit = false, .use_known = false});
  CHECK(lib.credentials().empty());

  // Import with its chain: the certificate takes the key pair's CKA_ID and label.
  const auto imported = p.import_certificate(label, pin, ders_of({crt, pki("sub"), pki("root")}));
  CHECK(imported.certificate_added);
  CHECK(imported.chain_added == 2);
  CHECK(imported.key.id == key.id);
  const auto again = p.import_certificate(label, pin, ders_of({crt}));
  CHECK_FALSE(again.certificate_added);

  // The same token layer now sees the credential (its cache follows the token's certificate
  // objects) and signs with it; OpenSSL verifies the signature.
  const auto creds = lib.credentials();
  REQUIRE(creds.size() == 1);
  CHECK(creds[0].cert.common_name == "Nguyễn Thị Ánh");
  CHECK(creds[0].cert.uid("CCCD") == std::optional<std::string>("001185099999"));
  CHECK(creds[0].chain.size() == 2);
  auto signer = lib.signer(creds[0].id());
  signer->authorize({.pin = &pin}, {});
  const std::string doc = "Học bạ số: Nguyễn Văn An, lớp 12A1";
  const Bytes digest =
      kyso::sha256(std::span(reinterpret_cast<const std::uint8_t*>(doc.data()), doc.size()));
  const auto sign_alg = alg == kyso::pkcs11::KeyAlgorithm::EcP256
                            ? kyso::SignAlgorithm::EcdsaSha256
                            : kyso::SignAlgorithm::RsaPkcs1Sha256;
  const Bytes sig = signer->sign_digest(sign_alg, digest);
  CHECK(kyso::test::openssl_verify(creds[0].cert.der, sign_alg, digest, sig));
}

TEST_CASE("importCert_certificateForAnotherKey_isRefusedAndNothingWritten", "[provision]") {
  ScratchHsm hsm;
  const Secret pin = secret("123456");
  Provisioner p(hsm.module);
  (void)p.init_token("GV-X", secret("12345678"), pin);
  (void)p.keygen("GV-X", pin, kyso::pkcs11::KeyAlgorithm::EcP256, "kyso-sign");

  // The fixture's teacher certificate certifies a key on the demo token, not on this one.
  const auto& teacher = kyso::test::fixture().credential("teacher");
  try {
    (void)p.import_certificate("GV-X", pin, std::vector<Bytes>{teacher.cert_der});
    FAIL("a certificate for a foreign key was imported");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::KeyNotFound);
    CHECK_THAT(e.detail(), Catch::Contains("matches no key pair"));
  }
  auto session = p.admin().open(p.find_token("GV-X").slot_id);
  session.login_user(pin);
  CHECK(session.certificates().empty());
}

TEST_CASE("provisionPins_changeAndUnblock_takeEffect", "[provision]") {
  ScratchHsm hsm;
  Provisioner p(hsm.module);
  (void)p.init_token("GV-PIN", secret("12345678"), secret("123456"));
  p.change_pin("GV-PIN", secret("123456"), secret("654321"));
  CHECK_NOTHROW(p.key_pairs("GV-PIN", secret("654321")));
  try {
    (void)p.key_pairs("GV-PIN", secret("123456"));
    FAIL("the old PIN still works");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::PinIncorrect);
  }
  p.unblock_pin("GV-PIN", secret("12345678"), secret("111222"));
  CHECK_NOTHROW(p.key_pairs("GV-PIN", secret("111222")));
  p.change_so_pin("GV-PIN", secret("12345678"), secret("87654321"));
  CHECK_NOTHROW(p.unblock_pin("GV-PIN", secret("87654321"), secret("123456")));
  // Initializing a token that is already in use needs an explicit target and --force.
  CHECK_THROWS_AS(
      p.init_token("GV-PIN2", secret("12345678"), secret("123456"), std::string("GV-PIN")), Error);
}

TEST_CASE("parseSubject_vietnameseIdentities_checked", "[provision]") {
  const auto s = kyso::firmware_config::parse_subject(
      "C=VN, ST=HÀ NỘI, O=Trường A\\, B, UID=MST:0100686209-199, CN=Trường A");
  REQUIRE(s.size() == 5);
  CHECK(s[2].second == "Trường A, B");
  CHECK(s[3] == std::pair<std::string, std::string>{"UID", "MST:0100686209-199"});
  CHECK_THROWS_AS(kyso::firmware_config::parse_subject("C=VN, UID=CCCD:12345, CN=X"), Error);
  CHECK_THROWS_AS(kyso::firmware_config::parse_subject("C=VN, UID=XYZ:123, CN=X"), Error);
  CHECK_THROWS_AS(kyso::firmware_config::parse_subject("C=Vietnam, CN=X"), Error);
  CHECK_THROWS_AS(kyso::firmware_config::parse_subject("C=VN, O=X"), Error);
  CHECK_THROWS_AS(kyso::firmware_config::parse_subject("C=VN, Foo=1, CN=X"), Error);
}

TEST_CASE("provisionWithProfile_pinPolicyAndAlgorithms_enforcedBeforeTouchingToken",
          "[provision]") {
  ScratchHsm hsm;
  Provisioner p(hsm.module);
  kyso::firmware_config::TokenProfile profile;
  profile.token.model = "ePass2003 (VNPT-CA)";
  profile.pin = {
      .min_length = 6, .max_length = 8, .charset = kyso::firmware_config::PinCharset::Digits};
  profile.algorithms = {kyso::pkcs11::KeyAlgorithm::Rsa2048};
  p.set_profile(profile);
  try {
    (void)p.init_token("GV-POL", secret("12345678"), secret("12ab56"));
    FAIL("a PIN against the policy was accepted");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::PinInvalid);
  }
  for (const auto& s : p.admin().slots()) CHECK_FALSE(s.initialized);  // untouched
  (void)p.init_token("GV-POL", secret("12345678"), secret("123456"));
  CHECK_THROWS_AS(p.change_pin("GV-POL", secret("123456"), secret("123456789")), Error);
  try {
    (void)p.keygen("GV-POL", secret("123456"), kyso::pkcs11::KeyAlgorithm::Rsa3072, "kyso-sign");
    FAIL("an algorithm outside the profile was generated");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::AlgorithmUnsupported);
  }
  CHECK(p.key_pairs("GV-POL", secret("123456")).empty());
}
