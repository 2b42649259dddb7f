#pragma once
// Small DER and OpenSSL helpers shared by the format implementations.

#include <openssl/cms.h>
#include <openssl/ts.h>

#include <span>
#include <string>

#include "kyso/core/bytes.hpp"
#include "kyso/core/error.hpp"
#include "kyso/core/signer.hpp"

namespace kyso::formats::detail {

using CmsPtr = std::unique_ptr<CMS_ContentInfo, FnDeleter<CMS_ContentInfo_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, FnDeleter<X509_STORE_free>>;
struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const noexcept { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

/// Tag + DER length + content.
Bytes der_wrap(std::uint8_t tag, std::span<const std::uint8_t> content);

/// One DER TLV inside a buffer (definite lengths only).
struct Tlv {
  std::uint8_t tag = 0;
  std::size_t start = 0;   // of the tag
  std::size_t header = 0;  // tag + length octets
  std::size_t length = 0;  // of the value
  [[nodiscard]] std::size_t end() const { return start + header + length; }
  [[nodiscard]] std::span<const std::uint8_t> all(std::span<const std::uint8_t> d) const {
    return d.subspan(start, header + length);
  }
  [[nodiscard]] std::span<const std::uint8_t> value(std::span<const std::uint8_t> d) const {
    return d.subspan(start + header, length);
  }
};

/// The TLV at `at` of `d`, which must end by `limit`; Error(DocumentInvalid) when it is not
/// DER (an indefinite length, one over 4 bytes, or one past `limit`).
Tlv read_tlv(std::span<const std::uint8_t> d, std::size_t at, std::size_t limit);

/// i2d of any OpenSSL object into Bytes; throws Error(Internal) on failure.
template <typename T, typename F>
Bytes i2d_bytes(const T* obj, F i2d) {
  unsigned char* out = nullptr;
  const int n = i2d(obj, &out);
  if (n <= 0) throw Error(ErrorCode::Internal, "DER encoding failed: " + openssl_error());
  Bytes b(out, out + n);
  OPENSSL_free(out);
  return b;
}

/// IssuerSerial (RFC 5035) of a certificate, DER: SEQUENCE { GeneralNames { [4] issuer }, serial }.
/// DER is canonical, so two encodings name the same certificate exactly when the bytes match.
Bytes issuer_serial(const X509* cert);

/// Throws Error(Internal) with OpenSSL's reason when `ok` is false.
void check(bool ok, const char* what);

const EVP_MD* evp_md(HashAlgorithm alg);

/// X509_STORE with every certificate from these PEM/DER files as a trust anchor.
X509StorePtr make_store(const std::vector<std::string>& pem_files);

/// The DER inside a PEM file (its label into `label` when given), or `data` itself when it does
/// not start with "-----BEGIN". Error(DocumentInvalid) naming `name` for a broken PEM.
Bytes pem_or_der(const Bytes& data, const std::string& name, std::string* label = nullptr);

inline std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace kyso::formats::detail
