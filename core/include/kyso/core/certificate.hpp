#pragma once
/// @file
/// What Kyso reads out of an X.509 certificate, with the Vietnamese subject conventions:
/// UID (0.9.2342.19200300.100.1.1) values prefixed CCCD:/CMND:/HC: for persons and MST:/MNS:
/// for organizations. Names stay UTF-8 exactly as issued.

#include <chrono>
#include <ctime>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kyso/core/bytes.hpp"

namespace kyso {

enum class SubjectKind { Person, Organization, Unknown };
std::string_view to_string(SubjectKind kind) noexcept;

/// One UID value split at its prefix: "CCCD:001185012345" -> {"CCCD", "001185012345"}.
struct UidValue {
  std::string prefix;  ///< upper-cased: CCCD, CMND, HC, MST, MNS, or whatever the CA used
  std::string value;
  std::string raw;
  [[nodiscard]] bool is_personal() const;      ///< CCCD, CMND, HC
  [[nodiscard]] bool is_organization() const;  ///< MST, MNS
};

struct CertificateInfo {
  std::string id;  ///< SHA-256 of the DER certificate, lower-case hex: the credential id
  Bytes der;
  std::string subject;  ///< as issued, in certificate order: "C=VN, ST=HÀ NỘI, ..., CN=..."
  std::string issuer;
  std::string common_name;
  std::string organization;
  std::string organizational_unit;
  std::string title;
  std::string locality;
  std::string state;
  std::string country;
  std::string email;
  std::string issuer_common_name;
  std::vector<UidValue> uids;
  SubjectKind kind = SubjectKind::Unknown;
  std::string serial_hex;
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
  std::string key_type;  ///< "RSA" or "EC"
  int key_bits = 0;
  std::string curve;                            ///< "P-256", "P-384" for EC keys
  std::vector<std::string> key_usage;           ///< e.g. "digitalSignature", "nonRepudiation"
  std::vector<std::string> extended_key_usage;  ///< dotted OIDs or short names
  bool is_ca = false;
  std::vector<std::string> ocsp_urls;
  std::vector<std::string> crl_urls;

  /// First UID value with the given prefix, if any.
  [[nodiscard]] std::optional<std::string> uid(std::string_view prefix) const;
  [[nodiscard]] bool valid_at(std::chrono::system_clock::time_point t) const;
  [[nodiscard]] bool can_sign() const;  ///< digitalSignature or nonRepudiation (or no KU at all)
};

/// Parses a DER certificate. Throws Error(CertInvalid).
CertificateInfo parse_certificate(std::span<const std::uint8_t> der);

/// A UTC date and time in std::tm's fields (as ASN1_TIME_to_tm or a parsed PDF/XML date give
/// them; fields out of their range carry over, as timegm's do) as a time point, without timegm
/// (not in Windows' C library). system_clock counts nanoseconds since 1970 and holds the years
/// 1678-2261 only: a time outside them (a certificate's "no expiry" 99991231235959Z, a hostile
/// timestamp's year 9999) is clamped to a day inside either end, so comparisons stay right and
/// a zone offset added after cannot overflow (issue 17: the tsa_response fuzz target found the
/// overflow).
std::chrono::system_clock::time_point utc_time_point(const std::tm& tm);

/// RFC 3339 UTC, e.g. "2026-11-23T09:00:00Z".
std::string to_iso8601(std::chrono::system_clock::time_point t);

/// JSON form used by the CLI and the agent's protocol (stable field names, see docs/protocol.md).
void to_json(nlohmann::json& j, const CertificateInfo& c);

}  // namespace kyso
