#include "der.hpp"

#include <openssl/pem.h>

#include <array>

namespace kyso::formats::detail {

Bytes der_wrap(std::uint8_t tag, std::span<const std::uint8_t> content) {
  Bytes out{tag};
  const std::size_t n = content.size();
  if (n < 0x80) {
    out.push_back(static_cast<std::uint8_t>(n));
  } else {
    Bytes len;
    for (std::size_t v = n; v != 0; v >>= 8) len.insert(len.begin(), static_cast<std::uint8_t>(v));
    out.push_back(static_cast<std::uint8_t>(0x80U | len.size()));
    out.insert(out.end(), len.begin(), len.end());
  }
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

Tlv read_tlv(std::span<const std::uint8_t> d, std::size_t at, std::size_t limit) {
  const auto malformed = [] {
    return Error(ErrorCode::DocumentInvalid, "the CMS is not DER-encoded SignedData");
  };
  if (at + 2 > limit) throw malformed();
  Tlv t;
  t.tag = d[at];
  t.start = at;
  std::size_t len = d[at + 1];
  std::size_t header = 2;
  if (len & 0x80U) {
    const std::size_t n = len & 0x7FU;
    if (n == 0 || n > 4 || at + 2 + n > limit) throw malformed();  // indefinite (BER) or huge
    len = 0;
    for (std::size_t i = 0; i < n; ++i) len = (len << 8U) | d[at + 2 + i];
    header += n;
  }
  t.header = header;
  t.length = len;
  if (t.end() > limit) throw malformed();
  return t;
}

Bytes issuer_serial(const X509* cert) {
  const Bytes name = i2d_bytes(X509_get_issuer_name(cert), i2d_X509_NAME);
  const Bytes serial = i2d_bytes(X509_get0_serialNumber(cert), i2d_ASN1_INTEGER);
  Bytes general_names = der_wrap(0x30, der_wrap(0xA4, name));
  general_names.insert(general_names.end(), serial.begin(), serial.end());
  return der_wrap(0x30, general_names);
}

void check(bool ok, const char* what) {
  if (!ok) throw Error(ErrorCode::Internal, std::string(what) + ": " + openssl_error());
}

const EVP_MD* evp_md(HashAlgorithm alg) {
  // Fetched once per process (thread-safe static initialisation): a legacy EVP_MD from
  // EVP_get_digestbyname makes OpenSSL 3 fetch the implementation again at each use.
  static const std::array<EVP_MD*, 3> fetched{
      EVP_MD_fetch(nullptr, openssl_md_name(HashAlgorithm::Sha256), nullptr),
      EVP_MD_fetch(nullptr, openssl_md_name(HashAlgorithm::Sha384), nullptr),
      EVP_MD_fetch(nullptr, openssl_md_name(HashAlgorithm::Sha512), nullptr)};
  const auto i = static_cast<std::size_t>(alg);
  const EVP_MD* md = i < fetched.size() ? fetched[i] : nullptr;
  check(md != nullptr, "digest");
  return md;
}

X509StorePtr make_store(const std::vector<std::string>& pem_files) {
  X509StorePtr store(X509_STORE_new());
  check(store != nullptr, "X509_STORE_new");
  for (const auto& file : pem_files) {
    for (auto& cert : x509_read_file(file))
      check(X509_STORE_add_cert(store.get(), cert.get()) == 1, "X509_STORE_add_cert");
  }
  return store;
}

Bytes pem_or_der(const Bytes& data, const std::string& name, std::string* label) {
  if (std::string_view(reinterpret_cast<const char*>(data.data()), data.size())
          .rfind("-----BEGIN", 0) != 0)
    return data;
  BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  char* pem_name = nullptr;
  char* header = nullptr;
  unsigned char* der = nullptr;
  long len = 0;
  if (PEM_read_bio(bio.get(), &pem_name, &header, &der, &len) != 1) {
    openssl_error();
    throw Error(ErrorCode::DocumentInvalid, name + " is not a PEM CMS");
  }
  Bytes out(der, der + len);
  if (label != nullptr) *label = pem_name;
  OPENSSL_free(pem_name);
  OPENSSL_free(header);
  OPENSSL_free(der);
  return out;
}

}  // namespace kyso::formats::detail
