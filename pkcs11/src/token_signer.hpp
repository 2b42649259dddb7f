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
  /// signature. The user is asked once. Unless the token's profile says pin_per_signature:
  /// then the PIN typed at the approval signs the first item only and is wiped, and the user
  /// types it again (set_pin_prompt's dialog) before each further signature.
  void authorize(const UserAuth& typed, std::span<const Bytes> /*digests*/) override {
    token_->login(typed.pin);  // logged in already: nothing to do
    const std::lock_guard lock(mutex_);
    always_authenticate_ = token_->always_authenticate(key_id_);
    const auto* quirks = token_->quirks();
    // On a PIN pad the pad asks before each signature anyway.
    per_signature_ = always_authenticate_ && typed.pin != nullptr && quirks != nullptr &&
                     quirks->pin_per_signature;
    if (always_authenticate_ && typed.pin != nullptr) {
      context_pin_.emplace();
      context_pin_->assign(typed.pin->view());
    }
  }

  [[nodiscard]] std::string_view authorization_note() const override {
    const std::lock_guard lock(mutex_);
    if (!always_authenticate_) return {};
    if (per_signature_) {
      return "context-specific login before each signature, PIN asked for each signature "
             "(token profile: pin_per_signature)";
    }
    return context_pin_ ? "context-specific login before each signature, PIN kept for the batch"
                        : "context-specific login before each signature on the PIN pad";
  }

  void set_pin_prompt(PinPrompt prompt) override {
    const std::lock_guard lock(mutex_);
    prompt_ = std::move(prompt);
  }

  Bytes sign_digest(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                    SignatureEncoding enc) override {
    bool per_signature = false;
    const Secret* pin = nullptr;
    {
      const std::lock_guard lock(mutex_);
      per_signature = per_signature_;
      if (context_pin_ && !per_signature) pin = &*context_pin_;
    }
    // A PIN the card refuses in a context-specific login is remembered by the token (as for
    // C_Login) and never sent again: the batch's other items fail with PinRepeated.
    if (!per_signature) return token_->sign(key_id_, credential_.cert, alg, digest, enc, pin);
    return sign_asking(alg, digest, enc);
  }

  /// Without progress or cancellation to report per item, and for a key that needs no PIN
  /// before each signature: the digests go to the token in runs (Token::sign_run), one hand-off
  /// to the module's call pool per run instead of per signature; what each item gets (its
  /// signature, its error, the batch stopped by an error such as TokenRemoved) is what the
  /// default gives. kyso-appliance signs each share of a signHash chunk this way.
  std::vector<SignResult> sign_digests(SignAlgorithm alg, std::span<const Bytes> digests,
                                       SignatureEncoding enc, const SignControl& control) override {
    bool per_item = control.chunk_done || control.cancel != nullptr;
    {
      const std::lock_guard lock(mutex_);
      per_item = per_item || always_authenticate_;
    }
    if (per_item) return Signer::sign_digests(alg, digests, enc, control);  // locks mutex_
    std::vector<SignResult> out(digests.size());
    std::optional<Error> fatal;
    for (std::size_t i = 0; i < digests.size();) {
      if (fatal) {
        out[i++].error = fatal;
        continue;
      }
      auto run = token_->sign_run(key_id_, credential_.cert, alg, digests.subspan(i), enc);
      for (auto& sig : run.signatures) out[i++].signature = std::move(sig);
      if (run.error && i < digests.size()) {
        if (stops_batch(run.error->code())) fatal = run.error;
        out[i++].error = std::move(run.error);
      }
    }
    return out;
  }

 private:
  std::shared_ptr<Token> token_;
  Credential credential_;
  Bytes key_id_;
  mutable std::mutex mutex_;
  // One dialog at a time, each followed by its own signature (a batch signs on two lanes).
  Bytes sign_asking(SignAlgorithm alg, std::span<const std::uint8_t> digest,
                    SignatureEncoding enc) {
    const std::lock_guard order(prompt_mutex_);
    std::optional<Secret> pin;
    PinPrompt prompt;
    std::size_t n = 0;
    {
      const std::lock_guard lock(mutex_);
      if (refused_) {
        throw Error(ErrorCode::PinIncorrect,
                    "a PIN was refused earlier in this batch; the user is not asked again");
      }
      n = ++signatures_;
      if (context_pin_) {
        pin = std::move(context_pin_);  // the approval's PIN signs the first item, then goes
        context_pin_.reset();
      }
      prompt = prompt_;
    }
    if (!pin) {
      if (!prompt) {
        throw Error(ErrorCode::LoginRequired,
                    "the token's profile asks the PIN for each signature and there is no one to "
                    "ask");
      }
      pin = prompt(n);
    }
    try {
      return token_->sign(key_id_, credential_.cert, alg, digest, enc, &*pin);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::PinIncorrect || e.code() == ErrorCode::PinRepeated) {
        const std::lock_guard lock(mutex_);
        refused_ = true;  // a wrong PIN stops the asking: the card counts every try
      }
      throw;
    }
  }

  bool always_authenticate_ = false;
  bool per_signature_ = false;  // the token's profile: pin_per_signature
  bool refused_ = false;
  std::size_t signatures_ = 0;
  PinPrompt prompt_;
  std::mutex prompt_mutex_;
  std::optional<Secret> context_pin_;  // only for a key with CKA_ALWAYS_AUTHENTICATE
};

}  // namespace kyso::pkcs11::detail
