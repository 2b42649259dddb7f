#pragma once
// What CSC puts on the wire for algorithms: OIDs for hashes and signature algorithms, and the
// mapping to kyso::SignAlgorithm. Shared by the appliance and the client.

#include <optional>
#include <string>
#include <string_view>

#include "kyso/core/signer.hpp"

namespace kyso::remote::wire {

inline constexpr std::string_view kSha256 = "2.16.840.1.101.3.4.2.1";
inline constexpr std::string_view kSha384 = "2.16.840.1.101.3.4.2.2";
inline constexpr std::string_view kSha512 = "2.16.840.1.101.3.4.2.3";
inline constexpr std::string_view kRsaEncryption = "1.2.840.113549.1.1.1";
inline constexpr std::string_view kRsaPss = "1.2.840.113549.1.1.10";
inline constexpr std::string_view kEcPublicKey = "1.2.840.10045.2.1";

std::string_view hash_oid(HashAlgorithm alg) noexcept;
std::optional<HashAlgorithm> hash_from_oid(std::string_view oid) noexcept;
/// The signAlgo OID a client sends for `alg` (sha256WithRSAEncryption, RSASSA-PSS, ecdsa-with-…).
std::string_view sign_oid(SignAlgorithm alg) noexcept;
/// signAlgo (+ hashAlgorithmOID, needed when signAlgo names no hash) -> algorithm.
std::optional<SignAlgorithm> sign_from_oids(std::string_view sign_algo,
                                            std::string_view hash_algo) noexcept;
/// The signAlgo OIDs a key of this type offers in credentials/info.
std::vector<std::string> key_algo_oids(const CertificateInfo& cert);

}  // namespace kyso::remote::wire
