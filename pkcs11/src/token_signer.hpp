#pragma once
// A Signer over one credential of one token.

#include <memory>
#include <mutex>
#include <optional>

#include "kyso/core/secret.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/pkcs11/token.hpp"

namespace kyso::pkcs11::detail {

class TokenSigner final : public Signer {
 public:
  TokenSigner(std::shared_ptr<Token> token, Credential credential, Bytes key_id)
      : token_(std::move(token)), credential_(std::move(credential)), key_id_(std::move(key_id)) {}

  [[nodiscard]] const Credential& credential() const override { return credential_; }
  [[nodiscard]] AuthKind auth_required() const override { return token_->auth_required(); }

  /// Logs in once with what the user typed (no PIN for a PIN pad). A key with
  /// CKA_ALWAYS_AUTHENTICATE needs the PIN again right before each signature: the signer keeps
  /// its own copy of the PIN for as long as it lives (one job: the approved batch), in a Secret
  /// that is wiped when the signer goes, and sends it in a context-specific login per
  /// signature. The user is asked once.
  void authorize(const UserAuth& typed, std::span<const Bytes> /*digests*/) override {
    token_->login(typed.pin);  // logged in already: nothing to do
    const std::lock_guard lock(mutex_);
    always_authenticate_ = token_->always_authenticate(key_id_);
    if (always_authenticate_ && typed.pin != nullptr) {
      context_pin_.emplace();
      context_pin_->assign(typed.pin->view());
    }
  }

  [[nodiscard]] std::string_view authorization_note() const override {
    const std::lock_guard lock(mutex_);
    if (!always_authenticate_) return {};
    return context_pin_ ? "context-specific login before each signature, PIN kept for the batch"
                        : "context-specific login before each signature on the PIN pad";
  }

  Bytes sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                    SignatureEncoding enc) override {
    const Secret* pin = nullptr;
    {
      const std::lock_guard lock(mutex_);
      if (context_pin_) pin = &*context_pin_;
    }
    // A PIN the card refuses in a context-specific login is remembered by the token (as for
    // C_Login) and never sent again: the batch's other items fail with PinRepeated.
    return token_->sign(key_id_, credential_.cert, alg, digest, enc, pin);
  }

 private:
  std::shared_ptr<Token> token_;
  Credential credential_;
  Bytes key_id_;
  mutable std::mutex mutex_;
  bool always_authenticate_ = false;
  std::optional<Secret> context_pin_;  // only for a key with CKA_ALWAYS_AUTHENTICATE
};

}  // namespace kyso::pkcs11::detail
