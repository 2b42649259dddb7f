#pragma once
// RFC 3161 over content known only by its digest (a PDF's byte ranges, an XAdES archive
// timestamp's input): the request and the verification of kyso/formats/tsa.hpp, digest-first.

#include <openssl/ts.h>

#include <functional>

#include "kyso/formats/tsa.hpp"

namespace kyso::formats::detail {

/// request_timestamp() for data known only by its digest (of `config.hash`).
Timestamp request_timestamp_for_digest(const TsaConfig& config,
                                       std::span<const std::uint8_t> digest);

/// request_timestamp_for_digest()'s checks of the TSA's `reply` to `req`: the token, or
/// Error(TsaError/TsaUnavailable). Apart so that the fuzz target (tests/fuzz) feeds it replies.
Timestamp timestamp_from_reply(const TsaConfig& config, TS_REQ* req, const Bytes& reply);

/// verify_timestamp() for content known only by its digest: `content_digest` is called with the
/// hash the token's imprint uses.
std::optional<std::chrono::system_clock::time_point> verify_timestamp_digest(
    std::span<const std::uint8_t> token, const std::function<Bytes(HashAlgorithm)>& content_digest,
    const std::vector<std::string>& anchors, std::string& why);

}  // namespace kyso::formats::detail
