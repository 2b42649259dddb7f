#include "kyso/core/pin_tag.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "kyso/core/error.hpp"
#include "kyso/core/random.hpp"

namespace kyso {

PinTagger::PinTagger() {
  random_bytes(key_);
}

PinTagger::~PinTagger() {
  OPENSSL_cleanse(key_.data(), key_.size());
}

PinTagger::Tag PinTagger::tag(const Secret& pin) const {
  Tag t{};
  std::size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key_.data(), key_.size(), pin.data(),
                pin.size(), t.data(), t.size(), &len) == nullptr) {
    throw Error(ErrorCode::Internal, "HMAC failed: " + openssl_error());
  }
  return t;
}

bool PinTagger::same(const Tag& a, const Tag& b) noexcept {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace kyso
