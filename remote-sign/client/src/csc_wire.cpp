#include "kyso/remote/csc_wire.hpp"

#include <array>
#include <utility>

namespace kyso::remote::wire {
namespace {

struct SignOid {
  SignAlgorithm alg;
  std::string_view oid;
};
constexpr std::array<SignOid, 9> kSignOids{{
    {SignAlgorithm::RsaPkcs1Sha256, "1.2.840.113549.1.1.11"},
    {SignAlgorithm::RsaPkcs1Sha384, "1.2.840.113549.1.1.12"},
    {SignAlgorithm::RsaPkcs1Sha512, "1.2.840.113549.1.1.13"},
    {SignAlgorithm::RsaPssSha256, kRsaPss},
    {SignAlgorithm::RsaPssSha384, kRsaPss},
    {SignAlgorithm::RsaPssSha512, kRsaPss},
    {SignAlgorithm::EcdsaSha256, "1.2.840.10045.4.3.2"},
    {SignAlgorithm::EcdsaSha384, "1.2.840.10045.4.3.3"},
    {SignAlgorithm::EcdsaSha512, "1.2.840.10045.4.3.4"},
}};

SignAlgorithm with_hash(SignAlgorithm family, HashAlgorithm h) noexcept {
  const int i = static_cast<int>(h);  // Sha256, Sha384, Sha512 in this order in each family
  if (is_pss(family))
    return static_cast<SignAlgorithm>(static_cast<int>(SignAlgorithm::RsaPssSha256) + i);
  if (is_ecdsa(family))
    return static_cast<SignAlgorithm>(static_cast<int>(SignAlgorithm::EcdsaSha256) + i);
  return static_cast<SignAlgorithm>(static_cast<int>(SignAlgorithm::RsaPkcs1Sha256) + i);
}

}  // namespace

std::string_view hash_oid(HashAlgorithm alg) noexcept {
  switch (alg) {
    case HashAlgorithm::Sha256:
      return kSha256;
    case HashAlgorithm::Sha384:
      return kSha384;
    case HashAlgorithm::Sha512:
      return kSha512;
  }
  return kSha256;
}

std::optional<HashAlgorithm> hash_from_oid(std::string_view oid) noexcept {
  if (oid == kSha256) return HashAlgorithm::Sha256;
  if (oid == kSha384) return HashAlgorithm::Sha384;
  if (oid == kSha512) return HashAlgorithm::Sha512;
  return std::nullopt;
}

std::string_view sign_oid(SignAlgorithm alg) noexcept {
  for (const auto& s : kSignOids) {
    if (s.alg == alg) return s.oid;
  }
  return {};
}

std::optional<SignAlgorithm> sign_from_oids(std::string_view sign_algo,
                                            std::string_view hash_algo) noexcept {
  const auto hash = hash_from_oid(hash_algo);
  if (sign_algo == kRsaEncryption) {
    return hash ? std::optional(with_hash(SignAlgorithm::RsaPkcs1Sha256, *hash)) : std::nullopt;
  }
  if (sign_algo == kRsaPss) {
    return hash ? std::optional(with_hash(SignAlgorithm::RsaPssSha256, *hash)) : std::nullopt;
  }
  if (sign_algo == kEcPublicKey) {
    return hash ? std::optional(with_hash(SignAlgorithm::EcdsaSha256, *hash)) : std::nullopt;
  }
  for (const auto& s : kSignOids) {
    if (s.oid == sign_algo && !is_pss(s.alg)) {
      // A hashAlgorithmOID that contradicts the signAlgo is refused, not ignored.
      if (hash && *hash != hash_of(s.alg)) return std::nullopt;
      return s.alg;
    }
  }
  return std::nullopt;
}

std::vector<std::string> key_algo_oids(const CertificateInfo& cert) {
  if (cert.key_type == "EC") {
    return {std::string(kEcPublicKey), "1.2.840.10045.4.3.2", "1.2.840.10045.4.3.3",
            "1.2.840.10045.4.3.4"};
  }
  return {std::string(kRsaEncryption), "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.12",
          "1.2.840.113549.1.1.13", std::string(kRsaPss)};
}

}  // namespace kyso::remote::wire
