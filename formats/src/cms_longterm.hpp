#pragma once
// CAdES B-LT and B-LTA by editing the DER of a SignedData, so nothing already signed is
// re-encoded: validation data appended to SignedData.certificates and .crls (OCSP responses as
// RFC 5940 id-ri-ocsp-response), and archive-time-stamp-v3 (EN 319 122-1 5.5.3) with its
// ats-hash-index-v3 in the token's unsigned attributes.

#include <functional>
#include <span>

#include "kyso/core/bytes.hpp"
#include "kyso/formats/longterm.hpp"
#include "kyso/formats/tsa.hpp"

namespace kyso::formats::detail {

/// The signed content's digest with the given hash.
using ContentHash = std::function<Bytes(HashAlgorithm)>;

/// `der` (a DER ContentInfo with SignedData) with `add` appended to certificates and crls;
/// version 5 once an OCSP response is there. Error(DocumentInvalid) for BER or not SignedData.
Bytes cms_append_validation_data(std::span<const std::uint8_t> der, const ValidationData& add);

/// What SignedData.certificates and .crls hold (OCSP responses from id-ri-ocsp-response).
ValidationData cms_validation_data(std::span<const std::uint8_t> der);

/// `der` with an archive-time-stamp-v3 on signer `index` over everything there now.
Bytes cms_add_archive_timestamp(std::span<const std::uint8_t> der, std::size_t index,
                                const ContentHash& content, const TsaConfig& tsa,
                                Bytes* token = nullptr);

/// The archive-time-stamp-v3 tokens of signer `index` whose imprint and TSA signature verify
/// and whose hash index names only data still present, unchanged.
std::vector<Bytes> cms_archive_timestamps(std::span<const std::uint8_t> der, std::size_t index,
                                          const ContentHash& content);

/// How many SignerInfos the SignedData has.
std::size_t cms_signer_count(std::span<const std::uint8_t> der);

/// `der` with a signature timestamp (id-aa-signatureTimeStampToken) on signer `index`: B-B to
/// B-T.
Bytes cms_add_signature_timestamp(std::span<const std::uint8_t> der, std::size_t index,
                                  const TsaConfig& tsa);

}  // namespace kyso::formats::detail
