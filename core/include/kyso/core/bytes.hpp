#pragma once
/// @file
/// Byte strings and their text forms, plus RAII holders for the OpenSSL objects Kyso uses.

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kyso {

using Bytes = std::vector<std::uint8_t>;

std::string to_hex(std::span<const std::uint8_t> data);
/// Throws Error(BadRequest) on odd length or a non-hex character.
Bytes from_hex(std::string_view hex);
std::string to_base64(std::span<const std::uint8_t> data);
/// Throws Error(BadRequest) on invalid base64.
Bytes from_base64(std::string_view b64);
/// SHA-256/384/512 by name ("SHA256", ...), through OpenSSL.
Bytes digest(std::string_view md_name, std::span<const std::uint8_t> data);
inline Bytes sha256(std::span<const std::uint8_t> data) {
  return digest("SHA256", data);
}

/// The most recent OpenSSL error as text (and clears the queue), for `detail` strings.
std::string openssl_error();

template <auto Fn>
struct FnDeleter {
  template <typename T>
  void operator()(T* p) const noexcept {
    Fn(p);
  }
};
using X509Ptr = std::unique_ptr<X509, FnDeleter<X509_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, FnDeleter<EVP_PKEY_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, FnDeleter<EVP_MD_CTX_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, FnDeleter<EVP_PKEY_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, FnDeleter<BIO_free_all>>;

/// Parses a DER certificate; throws Error(CertInvalid).
X509Ptr x509_from_der(std::span<const std::uint8_t> der);
/// Reads every certificate from a PEM or DER file; throws Error(CertInvalid).
std::vector<X509Ptr> x509_read_file(const std::string& path);
Bytes x509_to_der(const X509* cert);

}  // namespace kyso
