#include "kyso/core/bytes.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <array>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

#include "kyso/core/error.hpp"

namespace kyso {

std::string to_hex(std::span<const std::uint8_t> data) {
  static constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (auto b : data) {
    out.push_back(kDigits[b >> 4U]);
    out.push_back(kDigits[b & 0x0fU]);
  }
  return out;
}

Bytes from_hex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) throw Error(ErrorCode::BadRequest, "hex string of odd length");
  Bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) throw Error(ErrorCode::BadRequest, "not a hex string");
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return out;
}

std::string to_base64(std::span<const std::uint8_t> data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Bytes from_base64(std::string_view b64) {
  if (b64.size() % 4 != 0) throw Error(ErrorCode::BadRequest, "base64 length not a multiple of 4");
  Bytes out(3 * b64.size() / 4);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) throw Error(ErrorCode::BadRequest, "invalid base64");
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes; drop them.
  if (!b64.empty() && b64.back() == '=') --len;
  if (b64.size() > 1 && b64[b64.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

namespace {

// The digest `name` names, fetched once per process: EVP_get_digestbyname gives a legacy
// EVP_MD that OpenSSL 3 fetches from the provider again at each EVP_Digest.
const EVP_MD* fetched_md(std::string_view name) {
  // Never destroyed (as the EVP_MDs it holds): a map destroyed at exit would leave them
  // unreachable, a leak to LeakSanitizer, and freeing them then could follow OpenSSL's own
  // cleanup.
  static std::mutex mutex;
  static auto* const fetched = new std::map<std::string, EVP_MD*, std::less<>>;
  const std::scoped_lock lock(mutex);
  if (const auto it = fetched->find(name); it != fetched->end()) return it->second;
  EVP_MD* md = EVP_MD_fetch(nullptr, std::string(name).c_str(), nullptr);
  if (md == nullptr) {
    openssl_error();
    return nullptr;
  }
  fetched->emplace(std::string(name), md);
  return md;
}

}  // namespace

Bytes digest(std::string_view md_name, std::span<const std::uint8_t> data) {
  const EVP_MD* md = fetched_md(md_name);
  if (md == nullptr) throw Error(ErrorCode::AlgorithmUnsupported, "unknown digest");
  Bytes out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1) {
    throw Error(ErrorCode::Internal, "EVP_Digest failed: " + openssl_error());
  }
  return out;
}

std::string openssl_error() {
  std::string out;
  std::array<char, 256> buf{};
  while (const unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf.data(), buf.size());
    if (!out.empty()) out += "; ";
    out += buf.data();
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

X509Ptr x509_from_der(std::span<const std::uint8_t> der) {
  const unsigned char* p = der.data();
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) throw Error(ErrorCode::CertInvalid, "not a DER X.509 certificate: " + openssl_error());
  return cert;
}

std::vector<X509Ptr> x509_read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::CertInvalid, "cannot read " + path);
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<X509Ptr> out;
  if (data.find("-----BEGIN") != std::string::npos) {
    BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(c);
    ERR_clear_error();  // the loop ends on a "no start line" error
  } else {
    out.push_back(x509_from_der({reinterpret_cast<const std::uint8_t*>(data.data()), data.size()}));
  }
  if (out.empty()) throw Error(ErrorCode::CertInvalid, "no certificate in " + path);
  return out;
}

Bytes x509_to_der(const X509* cert) {
  const int n = i2d_X509(cert, nullptr);
  if (n <= 0) throw Error(ErrorCode::CertInvalid, "i2d_X509 failed");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_X509(cert, &p);
  return out;
}

}  // namespace kyso
