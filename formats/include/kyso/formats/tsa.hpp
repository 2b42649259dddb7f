#pragma once
/// @file
/// RFC 3161 timestamp client: asks a TSA for a token over a digest (with a fresh nonce and the
/// TSA's certificate requested), and checks the response answers exactly that request.

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/signer.hpp"

namespace kyso::formats {

struct TsaConfig {
  std::string url;  ///< http://host:port/path
  HashAlgorithm hash = HashAlgorithm::Sha256;
  std::chrono::seconds timeout{20};
  /// PEM files of trust anchors for the TSA's certificate; empty: the token's signature is
  /// checked with the certificate it carries, but not its chain.
  std::vector<std::string> trusted_pem;
};

struct Timestamp {
  Bytes token;  ///< the TimeStampToken (a CMS ContentInfo, DER)
  std::chrono::system_clock::time_point time;
};

/// Gets a timestamp token over `data` (hashed here with config.hash). Throws
/// Error(TsaUnavailable) when the TSA cannot be reached or refuses for load, and
/// Error(TsaError) when it answers something that does not match the request.
Timestamp request_timestamp(const TsaConfig& config, std::span<const std::uint8_t> data);

/// The genTime of a DER TimeStampToken; throws Error(TsaError) when it is not one.
std::chrono::system_clock::time_point timestamp_time(std::span<const std::uint8_t> token);

/// Verifies a TimeStampToken over `data`: the imprint matches, the TSA's signature is valid
/// and, when `anchors` are given, its certificate chains to one of them. Returns the genTime,
/// or nullopt with `why` set.
std::optional<std::chrono::system_clock::time_point> verify_timestamp(
    std::span<const std::uint8_t> token, std::span<const std::uint8_t> data,
    const std::vector<std::string>& anchors, std::string& why);

}  // namespace kyso::formats
