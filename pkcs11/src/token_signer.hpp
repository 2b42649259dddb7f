#pragma once
// A Signer over one credential of one token.

#include <memory>

#include "kyso/core/signer.hpp"
#include "kyso/pkcs11/token.hpp"

namespace kyso::pkcs11::detail {

class TokenSigner final : public Signer {
 public:
  TokenSigner(std::shared_ptr<Token> token, Credential credential, Bytes key_id)
      : token_(std::move(token)), credential_(std::move(credential)), key_id_(std::move(key_id)) {}

  [[nodiscard]] const Credential& credential() const override { return credential_; }
  [[nodiscard]] AuthKind auth_required() const override { return token_->auth_required(); }
  void authorize(const UserAuth& typed, std::span<const Bytes> /*digests*/) override {
    token_->login(typed.pin);  // none for a PIN pad; logged in already: nothing to do
  }
  Bytes sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                    SignatureEncoding enc) override {
    return token_->sign(key_id_, credential_.cert, alg, digest, enc);
  }

 private:
  std::shared_ptr<Token> token_;
  Credential credential_;
  Bytes key_id_;
};

}  // namespace kyso::pkcs11::detail
