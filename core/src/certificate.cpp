#include "kyso/core/certificate.hpp"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>

#include "kyso/core/error.hpp"

namespace kyso {
namespace {

template <auto Fn>
using Owned = std::unique_ptr<std::remove_pointer_t<decltype(Fn)>, FnDeleter<Fn>>;

std::string asn1_to_utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  const int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0) return {};
  std::string r(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  return r;
}

// A URI from an extension (RFC 3986: printable ASCII), or nullopt for anything else: such bytes
// are no address to fetch from, and they would break every JSON answer that lists the URLs.
std::optional<std::string> uri_text(const ASN1_IA5STRING* s) {
  if (s == nullptr) return std::nullopt;
  const auto* p = ASN1_STRING_get0_data(s);
  const auto n = static_cast<std::size_t>(ASN1_STRING_length(s));
  if (n == 0 || !std::all_of(p, p + n, [](unsigned char c) { return c > 0x20 && c < 0x7F; })) {
    return std::nullopt;
  }
  return std::string(reinterpret_cast<const char*>(p), n);
}

// Short attribute names as Vietnamese receivers expect them (RFC 4514 names, UID for userId).
std::string attribute_name(const ASN1_OBJECT* obj) {
  const int nid = OBJ_obj2nid(obj);
  if (nid == NID_userId) return "UID";
  if (nid == NID_title) return "T";
  if (nid != NID_undef) {
    if (const char* sn = OBJ_nid2sn(nid)) return sn;
  }
  std::array<char, 80> buf{};
  OBJ_obj2txt(buf.data(), static_cast<int>(buf.size()), obj, 1);
  return buf.data();
}

// "C=VN, ST=HÀ NỘI, ..., CN=..." in the order the entries appear in the certificate.
std::string name_to_string(const X509_NAME* name) {
  std::string out;
  const int n = X509_NAME_entry_count(name);
  for (int i = 0; i < n; ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    if (!out.empty()) out += ", ";
    out += attribute_name(X509_NAME_ENTRY_get_object(e));
    out += '=';
    out += asn1_to_utf8(X509_NAME_ENTRY_get_data(e));
  }
  return out;
}

std::vector<std::string> entries_by_nid(const X509_NAME* name, int nid) {
  std::vector<std::string> out;
  int pos = -1;
  while ((pos = X509_NAME_get_index_by_NID(name, nid, pos)) >= 0) {
    out.push_back(asn1_to_utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, pos))));
  }
  return out;
}

std::string first_by_nid(const X509_NAME* name, int nid) {
  auto v = entries_by_nid(name, nid);
  return v.empty() ? std::string{} : v.front();
}

std::chrono::system_clock::time_point to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) throw Error(ErrorCode::CertInvalid, "bad certificate time");
  return utc_time_point(tm);
}

UidValue split_uid(const std::string& raw) {
  UidValue v{.prefix = {}, .value = raw, .raw = raw};
  const auto colon = raw.find(':');
  if (colon != std::string::npos && colon > 0 && colon <= 8) {
    v.prefix = raw.substr(0, colon);
    std::transform(v.prefix.begin(), v.prefix.end(), v.prefix.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    v.value = raw.substr(colon + 1);
  }
  return v;
}

void read_key(X509* cert, CertificateInfo& info) {
  const EVP_PKEY* pkey = X509_get0_pubkey(cert);
  if (pkey == nullptr) throw Error(ErrorCode::CertInvalid, "certificate without a public key");
  info.key_bits = EVP_PKEY_get_bits(pkey);
  switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
      info.key_type = "RSA";
      break;
    case EVP_PKEY_EC: {
      info.key_type = "EC";
      std::array<char, 64> group{};
      std::size_t len = 0;
      if (EVP_PKEY_get_group_name(pkey, group.data(), group.size(), &len) == 1) {
        const std::string g(group.data(), len);
        if (g == "prime256v1" || g == "P-256")
          info.curve = "P-256";
        else if (g == "secp384r1" || g == "P-384")
          info.curve = "P-384";
        else if (g == "secp521r1" || g == "P-521")
          info.curve = "P-521";
        else
          info.curve = g;
      }
      break;
    }
    default:
      info.key_type = OBJ_nid2sn(EVP_PKEY_get_base_id(pkey));
  }
}

void read_extensions(X509* cert, CertificateInfo& info) {
  const std::uint32_t ku = X509_get_key_usage(cert);
  if (ku != UINT32_MAX) {
    static constexpr std::array<std::pair<std::uint32_t, const char*>, 9> kNames{{
        {KU_DIGITAL_SIGNATURE, "digitalSignature"},
        {KU_NON_REPUDIATION, "nonRepudiation"},
        {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
        {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
        {KU_KEY_AGREEMENT, "keyAgreement"},
        {KU_KEY_CERT_SIGN, "keyCertSign"},
        {KU_CRL_SIGN, "cRLSign"},
        {KU_ENCIPHER_ONLY, "encipherOnly"},
        {KU_DECIPHER_ONLY, "decipherOnly"},
    }};
    for (auto [bit, name] : kNames) {
      if ((ku & bit) != 0) info.key_usage.emplace_back(name);
    }
  }
  info.is_ca = X509_check_ca(cert) != 0;

  using EkuPtr = std::unique_ptr<EXTENDED_KEY_USAGE, FnDeleter<EXTENDED_KEY_USAGE_free>>;
  EkuPtr eku(static_cast<EXTENDED_KEY_USAGE*>(
      X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
  if (eku) {
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
      const ASN1_OBJECT* o = sk_ASN1_OBJECT_value(eku.get(), i);
      const int nid = OBJ_obj2nid(o);
      std::array<char, 80> buf{};
      OBJ_obj2txt(buf.data(), static_cast<int>(buf.size()), o, 1);
      info.extended_key_usage.emplace_back(nid != NID_undef ? OBJ_nid2sn(nid) : buf.data());
    }
  }

  // AIA's OCSP responders. Not X509_get1_ocsp: it hands the IA5String's bytes over as they are,
  // and a certificate is whatever its issuer (or a forger) wrote.
  using AiaPtr = std::unique_ptr<AUTHORITY_INFO_ACCESS, FnDeleter<AUTHORITY_INFO_ACCESS_free>>;
  AiaPtr aia(static_cast<AUTHORITY_INFO_ACCESS*>(
      X509_get_ext_d2i(cert, NID_info_access, nullptr, nullptr)));
  for (int i = 0; aia && i < sk_ACCESS_DESCRIPTION_num(aia.get()); ++i) {
    const ACCESS_DESCRIPTION* ad = sk_ACCESS_DESCRIPTION_value(aia.get(), i);
    if (OBJ_obj2nid(ad->method) != NID_ad_OCSP || ad->location->type != GEN_URI) continue;
    if (auto url = uri_text(ad->location->d.uniformResourceIdentifier)) {
      info.ocsp_urls.push_back(std::move(*url));
    }
  }

  using CrlDpPtr = std::unique_ptr<CRL_DIST_POINTS, FnDeleter<CRL_DIST_POINTS_free>>;
  CrlDpPtr dps(static_cast<CRL_DIST_POINTS*>(
      X509_get_ext_d2i(cert, NID_crl_distribution_points, nullptr, nullptr)));
  for (int i = 0; dps && i < sk_DIST_POINT_num(dps.get()); ++i) {
    const DIST_POINT* dp = sk_DIST_POINT_value(dps.get(), i);
    if (dp->distpoint == nullptr || dp->distpoint->type != 0) continue;
    const GENERAL_NAMES* names = dp->distpoint->name.fullname;
    for (int k = 0; k < sk_GENERAL_NAME_num(names); ++k) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, k);
      if (gn->type != GEN_URI) continue;
      if (auto url = uri_text(gn->d.uniformResourceIdentifier)) info.crl_urls.push_back(*url);
    }
  }
}

}  // namespace

std::chrono::system_clock::time_point utc_time_point(const std::tm& tm) {
  using namespace std::chrono;
  // In seconds (64 bits hold any year std::chrono::year does), months carried into years, the
  // other fields added as durations, so out-of-range fields carry over.
  const long long months = static_cast<long long>(tm.tm_year) * 12 + tm.tm_mon;
  const long long y =
      std::clamp(1900 + (months >= 0 ? months / 12 : (months - 11) / 12), -30000LL, 30000LL);
  const auto m = static_cast<unsigned>(((months % 12) + 12) % 12 + 1);
  const sys_seconds s = sys_days{year{static_cast<int>(y)} / month{m} / day{1}} +
                        days{tm.tm_mday - 1} + hours{tm.tm_hour} + minutes{tm.tm_min} +
                        seconds{tm.tm_sec};
  const auto lo = floor<seconds>(system_clock::time_point::min()) + days{1};
  const auto hi = floor<seconds>(system_clock::time_point::max()) - days{1};
  return time_point_cast<system_clock::duration>(std::clamp(s, lo, hi));
}

std::string_view to_string(SubjectKind kind) noexcept {
  switch (kind) {
    case SubjectKind::Person:
      return "person";
    case SubjectKind::Organization:
      return "organization";
    case SubjectKind::Unknown:
      break;
  }
  return "unknown";
}

bool UidValue::is_personal() const {
  return prefix == "CCCD" || prefix == "CMND" || prefix == "HC";
}
bool UidValue::is_organization() const {
  return prefix == "MST" || prefix == "MNS";
}

std::optional<std::string> CertificateInfo::uid(std::string_view prefix) const {
  for (const auto& u : uids) {
    if (u.prefix == prefix) return u.value;
  }
  return std::nullopt;
}

bool CertificateInfo::valid_at(std::chrono::system_clock::time_point t) const {
  return t >= not_before && t <= not_after;
}

bool CertificateInfo::can_sign() const {
  if (key_usage.empty()) return true;  // no keyUsage extension: unrestricted
  return std::ranges::any_of(key_usage, [](const std::string& k) {
    return k == "digitalSignature" || k == "nonRepudiation";
  });
}

CertificateInfo parse_certificate(std::span<const std::uint8_t> der) {
  X509Ptr cert = x509_from_der(der);
  CertificateInfo info;
  info.der.assign(der.begin(), der.end());
  info.id = to_hex(sha256(der));

  const X509_NAME* subject = X509_get_subject_name(cert.get());
  const X509_NAME* issuer = X509_get_issuer_name(cert.get());
  info.subject = name_to_string(subject);
  info.issuer = name_to_string(issuer);
  info.common_name = first_by_nid(subject, NID_commonName);
  info.organization = first_by_nid(subject, NID_organizationName);
  info.organizational_unit = first_by_nid(subject, NID_organizationalUnitName);
  info.title = first_by_nid(subject, NID_title);
  info.locality = first_by_nid(subject, NID_localityName);
  info.state = first_by_nid(subject, NID_stateOrProvinceName);
  info.country = first_by_nid(subject, NID_countryName);
  info.email = first_by_nid(subject, NID_pkcs9_emailAddress);
  info.issuer_common_name = first_by_nid(issuer, NID_commonName);
  for (const auto& raw : entries_by_nid(subject, NID_userId)) info.uids.push_back(split_uid(raw));

  // A personal ID makes a person even when the employer's MST is present too (CAs add it to
  // staff certificates);
  // an organization certificate has MST/MNS and no personal ID.
  const bool personal = std::ranges::any_of(info.uids, &UidValue::is_personal);
  const bool organization = std::ranges::any_of(info.uids, &UidValue::is_organization);
  info.kind = personal       ? SubjectKind::Person
              : organization ? SubjectKind::Organization
                             : SubjectKind::Unknown;

  using BnPtr = std::unique_ptr<BIGNUM, FnDeleter<BN_free>>;
  BnPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    info.serial_hex = hex;
    OPENSSL_free(hex);
  }
  info.not_before = to_time_point(X509_get0_notBefore(cert.get()));
  info.not_after = to_time_point(X509_get0_notAfter(cert.get()));
  read_key(cert.get(), info);
  read_extensions(cert.get(), info);
  return info;
}

std::string to_iso8601(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  OPENSSL_gmtime(&tt, &tm);  // gmtime_r() where there is one, gmtime_s() on Windows
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf.data();
}

void to_json(nlohmann::json& j, const CertificateInfo& c) {
  nlohmann::json uids = nlohmann::json::array();
  for (const auto& u : c.uids) {
    uids.push_back({{"prefix", u.prefix}, {"value", u.value}, {"raw", u.raw}});
  }
  const auto now = std::chrono::system_clock::now();
  j = {
      {"id", c.id},
      {"subject", c.subject},
      {"issuer", c.issuer},
      {"commonName", c.common_name},
      {"organization", c.organization},
      {"title", c.title},
      {"state", c.state},
      {"country", c.country},
      {"uids", uids},
      {"kind", std::string(to_string(c.kind))},
      {"serial", c.serial_hex},
      {"notBefore", to_iso8601(c.not_before)},
      {"notAfter", to_iso8601(c.not_after)},
      {"validNow", c.valid_at(now)},
      {"keyType", c.key_type},
      {"keyBits", c.key_bits},
      {"keyUsage", c.key_usage},
      {"extendedKeyUsage", c.extended_key_usage},
      {"isCa", c.is_ca},
      {"ocspUrls", c.ocsp_urls},
      {"crlUrls", c.crl_urls},
  };
  if (!c.curve.empty()) j["curve"] = c.curve;
  // Convenience fields for the prefixes web apps look up most.
  static constexpr std::array<std::pair<std::string_view, const char*>, 5> kShortcuts{
      {{"CCCD", "cccd"}, {"CMND", "cmnd"}, {"HC", "passport"}, {"MST", "mst"}, {"MNS", "mns"}}};
  for (auto [prefix, field] : kShortcuts) {
    if (auto v = c.uid(prefix)) j[field] = *v;
  }
}

}  // namespace kyso
