#pragma once
/// @file
/// Verification of XML-DSig/XAdES, PAdES and CMS/CAdES signatures, one report per signature:
/// signer (name, UID fields, person/organization, guessed role), claimed signing time,
/// timestamp, integrity, chain to a trust anchor, revocation, for PDFs whether the file was
/// changed after the signature, and the baseline level the document proves (B-B … B-LTA).
///
/// A signature whose document carries validation data (a PDF's /DSS, XAdES CertificateValues /
/// RevocationValues, CMS revocation info) and a timestamp is validated offline: only with that
/// data and the trust anchors, as of the time its timestamps prove, never the network; so it
/// stays valid after its certificates expired and the responders are gone.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kyso/core/certificate.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/roles.hpp"

namespace kyso::formats {

struct VerifyOptions {
  std::vector<std::string> anchors;        ///< trust anchors (PEM/DER files)
  std::vector<std::string> intermediates;  ///< extra CA certificates
  bool check_revocation = true;
  std::string ocsp_url;                ///< overrides the certificates' AIA
  std::vector<std::string> crl_files;  ///< local CRLs
  std::chrono::seconds timeout{10};
  std::string content;  ///< detached CMS: the signed file
  /// Hosts the certificates' OCSP/CRL URLs may be fetched from (TrustConfig::fetch_hosts);
  /// empty: any.
  std::vector<std::string> fetch_hosts;
};

enum class CheckStatus { Ok, Failed, Unknown };
std::string_view to_string(CheckStatus s) noexcept;  ///< "ok", "failed", "unknown"

/// PDF: what the revisions appended after a signature do to the document it signed.
struct PdfLaterChanges {
  enum class Kind {
    None,                    ///< the signature covers the whole file
    SignaturesOrFormFields,  ///< later revisions only add signatures or form fields
    ContentChanged,          ///< something the signer saw was changed, added or removed
  };
  Kind kind = Kind::None;
  int signatures_added = 0;   ///< later signatures
  int form_fields_added = 0;  ///< later non-signature form fields (widgets)
  /// For ContentChanged: what changed, e.g. "7 0 R (page 1): /Contents".
  std::vector<std::string> changed;
};
std::string_view to_string(
    PdfLaterChanges::Kind k) noexcept;  ///< "none", "signatures-or-form-fields", "content-changed"

/// Baseline levels (ETSI EN 319 102-1 / 319 142-1 / 319 132-1 / 319 122-1).
enum class BaselineLevel {
  B,    ///< "B-B": signed, no proof of time
  T,    ///< "B-T": a verified signature timestamp
  LT,   ///< "B-LT": and the document holds every certificate and revocation answer needed
  LTA,  ///< "B-LTA": and an archive timestamp covers all of it
};
std::string_view to_string(BaselineLevel l) noexcept;  ///< "B-B", "B-T", "B-LT", "B-LTA"

/// How a signature holds up in the long term: filled for every signature.
struct LongTermReport {
  /// The level proven. B-LT/B-LTA only when the offline validation succeeded.
  BaselineLevel level = BaselineLevel::B;
  /// Validated from the document's own validation data, offline (B-LT/B-LTA, or a document
  /// claiming it whose data fails: then `problem` says why).
  bool offline = false;
  /// The time the signer's certificate was validated at: the earliest timestamp over it.
  std::optional<std::chrono::system_clock::time_point> validated_at;
  /// What proves it, one line each: timestamps, and per certificate the OCSP answer or CRL.
  std::vector<std::string> evidence;
  /// Verified archive timestamps over the signature (PDF /DocTimeStamp, XAdES
  /// ArchiveTimeStamp, CAdES archive-time-stamp-v3), oldest first.
  std::vector<std::chrono::system_clock::time_point> archive_timestamps;
  /// When the last timestamp's certificate chain expires: the proof needs a new archive
  /// timestamp (`kyso extend --to lta --renew-before …`) before then.
  std::optional<std::chrono::system_clock::time_point> covered_until;
  std::string problem;  ///< why the offline validation failed; empty when it did not
};

/// Why a signature's integrity failed (ETSI TS 119 102-1: FORMAT_FAILURE, HASH_FAILURE,
/// SIG_CRYPTO_FAILURE).
enum class IntegrityFailure {
  None,            ///< intact, or not judged
  Format,          ///< the signature cannot be processed (incomplete, unsupported, malformed)
  Digest,          ///< a signed digest does not match the content: the document was changed
  SignatureValue,  ///< the signature value does not verify with the certificate's key
};
std::string_view to_string(IntegrityFailure f) noexcept;  ///< "none", "format", "digest", ...

struct SignatureReport {
  std::string id;      ///< XML Signature Id, PDF field name, or "signer-<n>" for CMS
  std::string format;  ///< "xmldsig", "xades", "pades", "cades"
  std::string algorithm;
  std::optional<CertificateInfo> signer;
  std::optional<Role> role;
  std::optional<std::chrono::system_clock::time_point> signing_time;  ///< as the signer claims
  std::optional<std::chrono::system_clock::time_point> timestamp;     ///< from a verified TSA token
  bool integrity = false;
  std::string integrity_detail;
  IntegrityFailure integrity_failure = IntegrityFailure::None;
  CheckStatus chain = CheckStatus::Unknown;
  std::string chain_detail;
  /// The certificate checks' findings, in order (CertExpired, CertUntrusted, CertRevoked, ...),
  /// judged at `checked_at`.
  std::vector<ErrorCode> certificate_problems;
  std::optional<std::chrono::system_clock::time_point> checked_at;
  CheckStatus revocation = CheckStatus::Unknown;
  std::string revocation_detail;
  /// XAdES SigningCertificateV2 (or V1) against the certificate that verifies the signature;
  /// Unknown for formats that do not carry it here.
  CheckStatus signing_certificate = CheckStatus::Unknown;
  std::string signing_certificate_detail;
  std::optional<bool> covers_whole_file;         ///< PDF: false when revisions were appended later
  std::optional<PdfLaterChanges> later_changes;  ///< PDF only
  LongTermReport long_term;
  /// Valid: intact, chained, not revoked, bound to its certificate, and (PDF) no content changed
  /// after it; later signatures and form fields are allowed.
  [[nodiscard]] bool ok() const noexcept {
    return integrity && chain == CheckStatus::Ok && revocation != CheckStatus::Failed &&
           signing_certificate != CheckStatus::Failed &&
           !(later_changes && later_changes->kind == PdfLaterChanges::Kind::ContentChanged);
  }
};

/// A PDF document timestamp (/DocTimeStamp): PAdES B-LTA's archive timestamp.
struct DocumentTimestampReport {
  std::string id;                                             ///< the field name
  std::optional<std::chrono::system_clock::time_point> time;  ///< set when it verifies
  std::string detail;                                         ///< why it does not verify
};

struct VerifyReport {
  std::string file;
  std::string kind;  ///< "xml", "pdf", "cms"
  std::vector<SignatureReport> signatures;
  std::vector<DocumentTimestampReport> document_timestamps;  ///< PDF only
  [[nodiscard]] bool ok() const noexcept;                    ///< at least one signature and all ok
};

/// Detects the kind from the content (XML, %PDF-, DER CMS). Throws Error(DocumentInvalid) for
/// a file that is none of them or cannot be parsed.
VerifyReport verify_file(const std::string& path, const VerifyOptions& options);

void to_json(nlohmann::json& j, const LongTermReport& r);
void to_json(nlohmann::json& j, const SignatureReport& r);
void to_json(nlohmann::json& j, const VerifyReport& r);

}  // namespace kyso::formats
