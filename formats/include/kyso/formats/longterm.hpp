#pragma once
/// @file
/// Long-term validation (ETSI baseline levels B-LT and B-LTA): the validation data a verifier
/// needs years later (certificates, OCSP responses, CRLs), fetched once while the responders
/// still answer, and the offline check that uses only that data, as of a time proven by a
/// timestamp. Format-independent: PAdES, XAdES and CAdES carry the same three lists.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/formats/cert_check.hpp"
#include "kyso/formats/tsa.hpp"

namespace kyso::formats {

/// Validation data as a document carries it: DER certificates, DER OCSPResponses, DER CRLs.
struct ValidationData {
  std::vector<Bytes> certs;
  std::vector<Bytes> ocsps;
  std::vector<Bytes> crls;
  /// Adds what is not already there (byte-exact); returns how many items were new.
  std::size_t merge(const ValidationData& other);
  [[nodiscard]] bool empty() const noexcept {
    return certs.empty() && ocsps.empty() && crls.empty();
  }
};

/// Builds `leaf`'s chain to one of `trust.anchors` (with `extra` and `trust.intermediates`;
/// dates are not checked, so an expired certificate can still be archived) and fetches, for
/// every certificate in it but the anchor, an OCSP response (the certificate's AIA or
/// `trust.ocsp_url`; nonce, signature and responder checked) or, when OCSP cannot answer, a CRL
/// from its issuer (`trust.crl_files`, then the CDP). The OCSP responder's own chain is added,
/// and its revocation data unless it carries id-pkix-ocsp-nocheck. Everything goes into `into`.
/// Throws Error(CertUntrusted) when no chain builds, Error(CertRevoked) for a revoked
/// certificate, Error(CertRevocationUnknown) when neither OCSP nor a CRL answers.
void collect_validation_data(const Bytes& leaf, const std::vector<Bytes>& extra,
                             const TrustConfig& trust, ValidationData& into);

/// What the offline check found for one certificate chain at one time.
struct OfflineCheck {
  bool ok = false;
  std::string problem;  ///< why not, when !ok
  /// The certificate problem behind `problem`: CertUntrusted (no chain builds at `at`),
  /// CertExpired / CertNotYetValid (the leaf was not valid at `at`), CertRevoked (revoked at or
  /// before `at`) or CertRevocationUnknown (no usable data says).
  ErrorCode code = ErrorCode::CertUntrusted;
  std::vector<std::string> evidence;  ///< per certificate: "CN=…: OCSP good (produced …)"
  /// The earliest notAfter in the chain (anchor excluded): how long a timestamp by this
  /// certificate proves anything without a newer one over it.
  std::chrono::system_clock::time_point chain_not_after{};
};

/// Validates `leaf` as of `at` with only `data` and the anchors: the chain builds at `at`, and
/// every certificate but the anchor has revocation data in `data` that says "not revoked" for
/// `at`: an OCSP response or CRL issued at or after `at`, or one current at `at` (thisUpdate <=
/// at <= nextUpdate); an OCSP response must verify at its producedAt with its responder's chain
/// (the issuer or a delegated responder). Certificates with id-pkix-ocsp-nocheck need none.
/// Never touches the network.
OfflineCheck check_offline(const Bytes& leaf, const ValidationData& data,
                           const std::vector<std::string>& anchors,
                           std::chrono::system_clock::time_point at);

/// A certificate to archive validation data for, with the certificates found beside it.
struct ChainToArchive {
  Bytes leaf;
  std::vector<Bytes> extra;
};
/// For a DER CMS SignedData (a CAdES signature, or a timestamp token): each signer's
/// certificate, and each signature timestamp's TSA certificate. Throws Error(DocumentInvalid)
/// when it is not a SignedData.
std::vector<ChainToArchive> chains_in_cms(std::span<const std::uint8_t> der);

/// A timestamp token's facts, without checking its chain: genTime, the TSA's certificate (from
/// the token) and every certificate the token carries.
struct TimestampFacts {
  std::chrono::system_clock::time_point time;
  Bytes tsa_cert;
  std::vector<Bytes> certs;
};
/// Throws Error(TsaError) when `token` is not a signed timestamp token.
TimestampFacts timestamp_facts(std::span<const std::uint8_t> token);

}  // namespace kyso::formats
