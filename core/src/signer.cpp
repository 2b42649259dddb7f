#include "kyso/core/signer.hpp"

#include <openssl/bn.h>
#include <openssl/ec.h>

#include <array>
#include <nlohmann/json.hpp>

namespace kyso {
namespace {

struct AlgEntry {
  SignAlgorithm alg;
  std::string_view name;
  HashAlgorithm hash;
};

constexpr std::array kAlgs{
    AlgEntry{SignAlgorithm::RsaPkcs1Sha256, "rsa-sha256", HashAlgorithm::Sha256},
    AlgEntry{SignAlgorithm::RsaPkcs1Sha384, "rsa-sha384", HashAlgorithm::Sha384},
    AlgEntry{SignAlgorithm::RsaPkcs1Sha512, "rsa-sha512", HashAlgorithm::Sha512},
    AlgEntry{SignAlgorithm::RsaPssSha256, "rsa-pss-sha256", HashAlgorithm::Sha256},
    AlgEntry{SignAlgorithm::RsaPssSha384, "rsa-pss-sha384", HashAlgorithm::Sha384},
    AlgEntry{SignAlgorithm::RsaPssSha512, "rsa-pss-sha512", HashAlgorithm::Sha512},
    AlgEntry{SignAlgorithm::EcdsaSha256, "ecdsa-sha256", HashAlgorithm::Sha256},
    AlgEntry{SignAlgorithm::EcdsaSha384, "ecdsa-sha384", HashAlgorithm::Sha384},
    AlgEntry{SignAlgorithm::EcdsaSha512, "ecdsa-sha512", HashAlgorithm::Sha512},
};

const AlgEntry& alg_entry(SignAlgorithm alg) noexcept {
  for (const auto& e : kAlgs) {
    if (e.alg == alg) return e;
  }
  return kAlgs[0];
}

using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, FnDeleter<ECDSA_SIG_free>>;

}  // namespace

std::string_view to_string(SignAlgorithm alg) noexcept {
  return alg_entry(alg).name;
}

std::optional<SignAlgorithm> parse_sign_algorithm(std::string_view name) noexcept {
  for (const auto& e : kAlgs) {
    if (e.name == name) return e.alg;
  }
  return std::nullopt;
}

std::string_view to_string(HashAlgorithm alg) noexcept {
  switch (alg) {
    case HashAlgorithm::Sha256:
      return "sha256";
    case HashAlgorithm::Sha384:
      return "sha384";
    case HashAlgorithm::Sha512:
      return "sha512";
  }
  return "sha256";
}

std::optional<HashAlgorithm> parse_hash_algorithm(std::string_view name) noexcept {
  for (auto h : {HashAlgorithm::Sha256, HashAlgorithm::Sha384, HashAlgorithm::Sha512}) {
    if (to_string(h) == name) return h;
  }
  return std::nullopt;
}

HashAlgorithm hash_of(SignAlgorithm alg) noexcept {
  return alg_entry(alg).hash;
}

std::size_t digest_size(HashAlgorithm alg) noexcept {
  switch (alg) {
    case HashAlgorithm::Sha256:
      return 32;
    case HashAlgorithm::Sha384:
      return 48;
    case HashAlgorithm::Sha512:
      return 64;
  }
  return 32;
}

const char* openssl_md_name(HashAlgorithm alg) noexcept {
  switch (alg) {
    case HashAlgorithm::Sha256:
      return "SHA256";
    case HashAlgorithm::Sha384:
      return "SHA384";
    case HashAlgorithm::Sha512:
      return "SHA512";
  }
  return "SHA256";
}

bool is_pss(SignAlgorithm alg) noexcept {
  return alg == SignAlgorithm::RsaPssSha256 || alg == SignAlgorithm::RsaPssSha384 ||
         alg == SignAlgorithm::RsaPssSha512;
}

bool is_ecdsa(SignAlgorithm alg) noexcept {
  return alg == SignAlgorithm::EcdsaSha256 || alg == SignAlgorithm::EcdsaSha384 ||
         alg == SignAlgorithm::EcdsaSha512;
}

bool is_rsa(SignAlgorithm alg) noexcept {
  return !is_ecdsa(alg);
}

std::vector<SignAlgorithm> algorithms_for_key(const CertificateInfo& cert) {
  std::vector<SignAlgorithm> out;
  for (const auto& e : kAlgs) {
    if ((cert.key_type == "RSA" && is_rsa(e.alg)) || (cert.key_type == "EC" && is_ecdsa(e.alg))) {
      out.push_back(e.alg);
    }
  }
  return out;
}

SignAlgorithm default_algorithm(const CertificateInfo& cert, HashAlgorithm h) noexcept {
  const bool ec = cert.key_type == "EC";
  switch (h) {
    case HashAlgorithm::Sha384:
      return ec ? SignAlgorithm::EcdsaSha384 : SignAlgorithm::RsaPkcs1Sha384;
    case HashAlgorithm::Sha512:
      return ec ? SignAlgorithm::EcdsaSha512 : SignAlgorithm::RsaPkcs1Sha512;
    case HashAlgorithm::Sha256:
      break;
  }
  return ec ? SignAlgorithm::EcdsaSha256 : SignAlgorithm::RsaPkcs1Sha256;
}

bool stops_batch(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::TokenRemoved:
    case ErrorCode::TokenUnresponsive:
    case ErrorCode::TokenNotFound:
    case ErrorCode::LoginRequired:
    case ErrorCode::PinLocked:
    case ErrorCode::KeyNotFound:
    case ErrorCode::AlgorithmUnsupported:
    case ErrorCode::RemoteUnreachable:
    case ErrorCode::RemoteAuthFailed:
    case ErrorCode::UserCancelled:
      return true;
    default:
      return false;
  }
}

void check_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest) {
  const auto want = digest_size(hash_of(alg));
  if (digest.size() != want) {
    throw Error(ErrorCode::DigestInvalid, std::string(to_string(alg)) + " needs a " +
                                              std::to_string(want) + "-byte digest, got " +
                                              std::to_string(digest.size()));
  }
}

// ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279). Encoded here rather than
// through BIGNUM + i2d_ECDSA_SIG: this runs once per token signature, and for a fast EC token
// the four allocations were a measurable share of the signing time (bench/token-sign).
// Round-tripped through OpenSSL's d2i_ECDSA_SIG in the unit tests.
Bytes ecdsa_raw_to_der(std::span<const std::uint8_t> raw) {
  if (raw.empty() || raw.size() % 2 != 0 || raw.size() > 2 * 66) {
    throw Error(ErrorCode::TokenError, "ECDSA signature of odd or excessive length");
  }
  const std::size_t half = raw.size() / 2;
  auto integer_len = [](std::span<const std::uint8_t> v, std::size_t& skip, bool& pad) {
    skip = 0;
    while (skip + 1 < v.size() && v[skip] == 0) ++skip;  // minimal encoding
    pad = (v[skip] & 0x80U) != 0;                        // keep it positive
    return v.size() - skip + (pad ? 1 : 0);
  };
  std::size_t skip_r = 0;
  std::size_t skip_s = 0;
  bool pad_r = false;
  bool pad_s = false;
  const auto r = raw.first(half);
  const auto s = raw.subspan(half);
  const std::size_t len_r = integer_len(r, skip_r, pad_r);
  const std::size_t len_s = integer_len(s, skip_s, pad_s);
  const std::size_t body = 2 + len_r + 2 + len_s;  // each INTEGER < 128 bytes: short lengths
  Bytes out;
  out.reserve(3 + body);
  out.push_back(0x30);
  if (body >= 0x80) out.push_back(0x81);
  out.push_back(static_cast<std::uint8_t>(body));
  auto put = [&out](std::span<const std::uint8_t> v, std::size_t skip, bool pad, std::size_t len) {
    out.push_back(0x02);
    out.push_back(static_cast<std::uint8_t>(len));
    if (pad) out.push_back(0x00);
    out.insert(out.end(), v.begin() + static_cast<std::ptrdiff_t>(skip), v.end());
  };
  put(r, skip_r, pad_r, len_r);
  put(s, skip_s, pad_s, len_s);
  return out;
}

Bytes ecdsa_der_to_raw(std::span<const std::uint8_t> der, std::size_t field_bytes) {
  const unsigned char* p = der.data();
  EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) throw Error(ErrorCode::BadRequest, "not a DER ECDSA signature");
  Bytes out(field_bytes * 2);
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out.data(), static_cast<int>(field_bytes)) < 0 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out.data() + field_bytes,
                   static_cast<int>(field_bytes)) < 0) {
    throw Error(ErrorCode::BadRequest, "ECDSA signature too large for the curve");
  }
  return out;
}

AuthNeeds Signer::needs() const {
  const AuthKind k = auth_required();
  return {.pin = k == AuthKind::Pin, .otp = k == AuthKind::Otp, .approval = false};
}

std::vector<SignResult> Signer::sign_digests(SignAlgorithm alg, std::span<const Bytes> digests,
                                             SignatureEncoding enc, const SignControl& control) {
  std::vector<SignResult> out;
  out.reserve(digests.size());
  std::optional<Error> fatal;
  for (const auto& d : digests) {
    if (!fatal && control.cancel != nullptr && control.cancel->load()) {
      fatal = Error(ErrorCode::UserCancelled, "cancelled before this item");
    }
    if (fatal) {
      out.push_back({.signature = {}, .error = fatal});
    } else {
      try {
        out.push_back({.signature = sign_digest(alg, d, enc), .error = std::nullopt});
      } catch (const Error& e) {
        out.push_back({.signature = {}, .error = e});
        if (stops_batch(e.code())) fatal = e;
      }
    }
    if (control.chunk_done) control.chunk_done(out.size() - 1, std::span(out).last(1));
  }
  return out;
}

void to_json(nlohmann::json& j, const Credential& c) {
  nlohmann::json algs = nlohmann::json::array();
  for (auto a : c.algorithms) algs.push_back(std::string(to_string(a)));
  nlohmann::json chain = nlohmann::json::array();
  for (const auto& der : c.chain) chain.push_back(to_base64(der));
  j = {
      {"id", c.id()},
      {"certificate", c.cert},
      {"certificateDer", to_base64(c.cert.der)},
      {"chain", chain},
      {"source",
       {{"kind", c.source.kind},
        {"name", c.source.name},
        {"serial", c.source.serial},
        {"module", c.source.module}}},
      {"algorithms", algs},
  };
}

}  // namespace kyso
