#pragma once
// Pieces shared by the XML, PDF and CMS verifiers.

#include <openssl/evp.h>

#include <functional>

#include "kyso/formats/verify.hpp"

namespace kyso::formats::detail {

/// Fills signer, role, chain and revocation of `r` from the signer's certificate and any other
/// certificates the signature carries, judged at the timestamp, else the claimed signing time,
/// else now.
void judge_certificate(SignatureReport& r, const Bytes& cert_der, const std::vector<Bytes>& extra,
                       const VerifyOptions& o);

/// Digest of the signed content with the given algorithm (streamed by the caller).
using ContentDigest = std::function<Bytes(const EVP_MD*)>;

/// One report per SignerInfo of a DER CMS SignedData; `content` supplies the digest of the
/// signed content (detached or, when null, the encapsulated content).
std::vector<SignatureReport> verify_cms(const Bytes& der, const ContentDigest* content,
                                        const VerifyOptions& o, const std::string& format);

std::vector<SignatureReport> verify_xml(const Bytes& xml, const VerifyOptions& o);
std::vector<SignatureReport> verify_pdf(const std::string& path, const VerifyOptions& o);

/// "2026-11-23T09:00:00Z", "2026-11-23T16:00:00+07:00" or "2026-11-23T09:00:00".
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s);

}  // namespace kyso::formats::detail
