#pragma once
/// @file
/// CMS / CAdES baseline signatures (B-B, and B-T with a timestamp) over any bytes, detached or
/// attached, signed through kyso::Signer: the signed attributes are built and DER-encoded here,
/// their digest goes to Signer::sign_digest(), and the key never has to be reachable by OpenSSL.

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/formats/tsa.hpp"

namespace kyso::formats {

struct CmsOptions {
  SignAlgorithm algorithm = SignAlgorithm::RsaPkcs1Sha256;
  bool detached = true;
  /// CAdES puts signingTime in the signed attributes; PAdES must not (the PDF's /M has it).
  bool signing_time = true;
  /// The signingTime put in; none: now. (Two-phase signing and tests fix it.)
  std::optional<std::chrono::system_clock::time_point> time;
  /// Include the credential's issuer certificates beside the signer's own.
  bool include_chain = true;
  /// B-T: a signature timestamp from this TSA, added as an unsigned attribute.
  std::optional<TsaConfig> tsa;
};

/// Signs `content`. Attached output embeds it; detached output does not.
Bytes sign_cms(Signer& signer, std::span<const std::uint8_t> content, const CmsOptions& options);

/// Detached CMS over content known only by its digest (hash of options.algorithm), e.g. a
/// PDF's byte ranges hashed while streaming. options.detached is ignored (always detached).
Bytes sign_cms_digest(Signer& signer, std::span<const std::uint8_t> content_digest,
                      const CmsOptions& options);

/// Hash-only signing, the pattern deployed web apps use: their server prepares the digest,
/// the signature comes back with the certificate chain (leaf first, DER).
struct HashSignature {
  Bytes signature;
  std::vector<Bytes> chain;
};
HashSignature sign_hash(Signer& signer, SignAlgorithm algorithm,
                        std::span<const std::uint8_t> digest);

}  // namespace kyso::formats
