// Vietnamese subject parsing on certificates made here with OpenSSL, entry by entry, so the
// test controls the exact encoding (UTF8String, UID attribute, order).

#include <openssl/ec.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "kyso/core/certificate.hpp"
#include "kyso/core/roles.hpp"
#include "kyso/core/signer.hpp"

namespace {

using Entries = std::vector<std::pair<const char*, const char*>>;

kyso::Bytes make_cert(const Entries& subject, long days_from_now_start, long days_valid,
                      const char* key_usage = "critical,digitalSignature,nonRepudiation",
                      const char* not_after = nullptr) {
  kyso::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  kyso::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 4242);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const auto& [field, value] : subject) {
    X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(value), -1, -1, 0);
  }
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), days_from_now_start * 86400);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), (days_from_now_start + days_valid) * 86400);
  if (not_after != nullptr) ASN1_TIME_set_string(X509_getm_notAfter(cert.get()), not_after);
  X509_set_pubkey(cert.get(), key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_key_usage, key_usage);
  X509_add_ext(cert.get(), ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(cert.get(), key.get(), EVP_sha256());
  return kyso::x509_to_der(cert.get());
}

}  // namespace

TEST_CASE("a teacher's subject keeps its diacritics, order and CCCD", "[core][cert]") {
  const auto der = make_cert({{"C", "VN"},
                              {"ST", "HÀ NỘI"},
                              {"O", "Trường THPT Chu Văn An"},
                              {"title", "Giáo viên chủ nhiệm"},
                              {"UID", "CCCD:001185012345"},
                              {"CN", "Nguyễn Thị Ánh"}},
                             -1, 365);
  const auto c = kyso::parse_certificate(der);
  CHECK(c.common_name == "Nguyễn Thị Ánh");
  CHECK(c.state == "HÀ NỘI");
  CHECK(c.organization == "Trường THPT Chu Văn An");
  CHECK(c.subject ==
        "C=VN, ST=HÀ NỘI, O=Trường THPT Chu Văn An, T=Giáo viên chủ nhiệm, "
        "UID=CCCD:001185012345, CN=Nguyễn Thị Ánh");
  REQUIRE(c.uids.size() == 1);
  CHECK(c.uids[0].prefix == "CCCD");
  CHECK(c.uids[0].value == "001185012345");
  CHECK(c.kind == kyso::SubjectKind::Person);
  CHECK(c.uid("CCCD") == "001185012345");
  CHECK(c.key_type == "EC");
  CHECK(c.curve == "P-256");
  CHECK(c.can_sign());
  CHECK(c.id.size() == 64);
  CHECK(kyso::guess_role(c) == kyso::Role::Teacher);
  CHECK(kyso::role_accepts(kyso::Role::Teacher, c));
  CHECK_FALSE(kyso::role_accepts(kyso::Role::Seal, c));
}

TEST_CASE("a school seal is an organization (MNS, no personal id)", "[core][cert]") {
  const auto c = kyso::parse_certificate(make_cert({{"C", "VN"},
                                                    {"ST", "HÀ NỘI"},
                                                    {"O", "Trường Tiểu học X"},
                                                    {"UID", "MNS:1047665"},
                                                    {"CN", "Trường Tiểu học X"}},
                                                   -1, 365));
  CHECK(c.kind == kyso::SubjectKind::Organization);
  CHECK(c.uid("MNS") == "1047665");
  CHECK(kyso::guess_role(c) == kyso::Role::Seal);
  CHECK(kyso::role_accepts(kyso::Role::Seal, c));
  CHECK_FALSE(kyso::role_accepts(kyso::Role::Principal, c));
}

TEST_CASE("a person carrying the employer's MST stays a person; branch MST keeps its suffix",
          "[core][cert]") {
  const auto c = kyso::parse_certificate(make_cert({{"C", "VN"},
                                                    {"UID", "CMND:025123456"},
                                                    {"UID", "MST:0100686209-199"},
                                                    {"CN", "Lê Hoàng Phúc"}},
                                                   -1, 365));
  CHECK(c.kind == kyso::SubjectKind::Person);
  CHECK(c.uid("CMND") == "025123456");
  CHECK(c.uid("MST") == "0100686209-199");
  CHECK(c.uids.size() == 2);
}

TEST_CASE("passport and lower-case prefixes are recognised; no UID means unknown kind",
          "[core][cert]") {
  const auto p =
      kyso::parse_certificate(make_cert({{"UID", "hc:B1234567"}, {"CN", "Anna"}}, -1, 30));
  CHECK(p.kind == kyso::SubjectKind::Person);
  CHECK(p.uid("HC") == "B1234567");
  const auto u = kyso::parse_certificate(make_cert({{"CN", "no id"}}, -1, 30));
  CHECK(u.kind == kyso::SubjectKind::Unknown);
  CHECK_FALSE(kyso::role_accepts(kyso::Role::Teacher, u));
  CHECK_FALSE(kyso::guess_role(u).has_value());
}

TEST_CASE("a principal is recognised by title; IT pins narrow a role", "[core][cert]") {
  const auto c = kyso::parse_certificate(make_cert(
      {{"title", "Hiệu trưởng"}, {"UID", "CCCD:001080054321"}, {"CN", "Trần Văn Bình"}}, -1, 30));
  CHECK(kyso::guess_role(c) == kyso::Role::Principal);
  kyso::RolePin pin{.credential_ids = {"not-this-one"}, .issuer_contains = {}};
  CHECK_FALSE(kyso::role_accepts(kyso::Role::Principal, c, &pin));
  pin.credential_ids = {c.id};
  CHECK(kyso::role_accepts(kyso::Role::Principal, c, &pin));
}

TEST_CASE("an expired certificate and a key-usage without signing are reported", "[core][cert]") {
  const auto expired = kyso::parse_certificate(
      make_cert({{"UID", "CCCD:001190011111"}, {"CN", "Phạm Minh Đức"}}, -400, 365));
  CHECK_FALSE(expired.valid_at(std::chrono::system_clock::now()));
  CHECK(expired.not_after < std::chrono::system_clock::now());
  const auto enc_only =
      kyso::parse_certificate(make_cert({{"CN", "x"}}, -1, 30, "critical,keyEncipherment"));
  CHECK_FALSE(enc_only.can_sign());
}

// RFC 5280 4.1.2.5: 99991231235959Z is a certificate's "no well-defined expiration date". The
// time point it was turned into overflowed system_clock's nanoseconds (years 1678-2261), so
// such a certificate read as expired, and a timestamp of year 9999 was undefined behaviour
// (the tsa_response fuzz target, issue 17).
TEST_CASE("certificate_notAfter9999_validAndAfterAnyRealDate", "[core][cert]") {
  const auto info =
      kyso::parse_certificate(make_cert({{"CN", "Trường THPT Kyso - con dấu"}}, -1, 30,
                                        "critical,digitalSignature", "99991231235959Z"));
  using namespace std::chrono;
  CHECK(info.valid_at(system_clock::now()));
  CHECK(info.not_after > sys_days{year{2200} / 1 / 1});
}

TEST_CASE("utcTimePoint_fieldsCarryOverAndTheClockEndsClamp", "[core][cert]") {
  using namespace std::chrono;
  const auto at = [](int y, int mon0, int d, int h = 0, int mi = 0, int sec = 0) {
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mon0;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return kyso::utc_time_point(tm);
  };
  CHECK(at(2026, 11, 3, 9, 30, 5) ==
        sys_days{year{2026} / 12 / 3} + hours{9} + minutes{30} + seconds{5});
  CHECK(at(1969, 11, 31, 23, 59, 59) == system_clock::time_point{} - seconds{1});
  CHECK(at(2026, 13, 1) == sys_days{year{2027} / 2 / 1});  // month 14 is next February
  CHECK(at(2026, 0, 32) == sys_days{year{2026} / 2 / 1});  // January 32nd
  CHECK(at(2026, -1, 1) == sys_days{year{2025} / 12 / 1});
  // Beyond the clock: a day inside its ends, ordered, with room for a zone offset.
  const auto far = at(9999, 11, 31, 23, 59, 59);
  CHECK(far > at(2261, 0, 1));
  CHECK(far + hours{14} > far);
  const auto early = at(1, 0, 1);
  CHECK(early < at(1678, 11, 31));
  CHECK(early - hours{14} < early);
}

TEST_CASE("garbage is not a certificate", "[core][cert]") {
  const kyso::Bytes junk{0x30, 0x03, 0x02, 0x01, 0x01};
  CHECK_THROWS_AS(kyso::parse_certificate(junk), kyso::Error);
}

TEST_CASE("certificate_urlsWithBytesNoUrlHas_leftOutAndTheJsonStillDumps",
          "[core][cert][security]") {
  // Found by tests/fuzz (certificate): an AIA OCSP URI with a byte >= 0x80 went into ocsp_urls
  // as it was, and every JSON answer listing the certificate (credentials.list, kyso verify
  // --json, the appliance's credentials/info) threw on the invalid UTF-8.
  kyso::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  kyso::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("x"),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86400);
  X509_set_pubkey(cert.get(), key.get());
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_info_access,
                                      "OCSP;URI:http://ocsp\x97.example.vn/,"
                                      "OCSP;URI:http://ocsp.example.vn/"},
                            std::pair{NID_crl_distribution_points,
                                      "URI:http://crl\xff.example.vn/ca.crl,"
                                      "URI:http://crl.example.vn/ca.crl"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    REQUIRE(ext != nullptr);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(cert.get(), key.get(), EVP_sha256());
  const auto c = kyso::parse_certificate(kyso::x509_to_der(cert.get()));
  CHECK(c.ocsp_urls == std::vector<std::string>{"http://ocsp.example.vn/"});
  CHECK(c.crl_urls == std::vector<std::string>{"http://crl.example.vn/ca.crl"});
  const nlohmann::json j = c;
  CHECK_NOTHROW(j.dump());
}

TEST_CASE("ECDSA raw r||s to DER agrees with OpenSSL, leading zeros and high bits included",
          "[core]") {
  for (const kyso::Bytes& raw :
       {kyso::Bytes(64, 0x7f), kyso::Bytes(64, 0x80), kyso::Bytes(96, 0xff)}) {
    const auto der = kyso::ecdsa_raw_to_der(raw);
    const unsigned char* p = der.data();
    ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
    REQUIRE(sig != nullptr);
    CHECK(p == der.data() + der.size());
    ECDSA_SIG_free(sig);
    CHECK(kyso::ecdsa_der_to_raw(der, raw.size() / 2) == raw);
  }
  kyso::Bytes small(64, 0);
  small[31] = 1;
  small[63] = 0x90;
  const auto der = kyso::ecdsa_raw_to_der(small);
  CHECK(der == kyso::Bytes{0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x02, 0x00, 0x90});
  CHECK(kyso::ecdsa_der_to_raw(der, 32) == small);
}
