#pragma once
// Pieces shared by the XML, PDF and CMS verifiers.

#include <openssl/evp.h>

#include <functional>

#include "kyso/formats/longterm.hpp"
#include "kyso/formats/verify.hpp"

namespace kyso::formats::detail {

/// Fills signer, role, chain and revocation of `r` from the signer's certificate and any other
/// certificates the signature carries, judged at the timestamp, else the claimed signing time,
/// else now.
void judge_certificate(SignatureReport& r, const Bytes& cert_der, const std::vector<Bytes>& extra,
                       const VerifyOptions& o);

/// What a signature's document offers for long-term validation.
struct LongTermInputs {
  ValidationData data;            ///< certificates, OCSP responses and CRLs the document carries
  bool claims_long_term = false;  ///< it carries validation data: validate offline
  std::optional<Bytes> signature_timestamp;  ///< a token whose imprint and signature verified
  std::string signature_timestamp_problem;   ///< why its chain failed now (the online path)
  /// Verified tokens proving the signature existed but not covering its validation data (an
  /// enclosing XML signature's own timestamp).
  std::vector<Bytes> time_proofs;
  std::vector<Bytes> archive_timestamps;  ///< verified archive tokens over the signature
};

/// Checks a signature timestamp over `data`: imprint and TSA signature (the token is kept in
/// `lt`), and for the online path its chain to the anchors now (`r.timestamp`).
void read_signature_timestamp(SignatureReport& r, LongTermInputs& lt,
                              std::span<const std::uint8_t> token,
                              std::span<const std::uint8_t> data, const VerifyOptions& o);

/// Fills signer, role, chain, revocation and long_term: offline from `lt` as of the time its
/// timestamps prove when the document claims B-LT, else judge_certificate() online.
void judge_long_term(SignatureReport& r, const Bytes& cert_der, const std::vector<Bytes>& extra,
                     const LongTermInputs& lt, const VerifyOptions& o);

/// Digest of the signed content with the given algorithm (streamed by the caller).
using ContentDigest = std::function<Bytes(const EVP_MD*)>;

/// One report per SignerInfo of a DER CMS SignedData; `content` supplies the digest of the
/// signed content (detached or, when null, the encapsulated content); `document` (optional)
/// what the enclosing document holds for long-term validation (a PDF's DSS and document
/// timestamps).
std::vector<SignatureReport> verify_cms(const Bytes& der, const ContentDigest* content,
                                        const VerifyOptions& o, const std::string& format,
                                        const LongTermInputs* document = nullptr);

std::vector<SignatureReport> verify_xml(const Bytes& xml, const VerifyOptions& o);
/// `stamps` (optional) receives the PDF's document timestamps.
std::vector<SignatureReport> verify_pdf(const std::string& path, const VerifyOptions& o,
                                        std::vector<DocumentTimestampReport>* stamps = nullptr);

/// "2026-11-23T09:00:00Z", "2026-11-23T16:00:00+07:00" or "2026-11-23T09:00:00".
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s);

}  // namespace kyso::formats::detail
