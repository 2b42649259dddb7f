#pragma once
/// @file
/// One token in one slot of one PKCS#11 module: its state, its login and its sessions.

#include <algorithm>
#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kyso/core/pin_tag.hpp"
#include "kyso/core/secret.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/pkcs11/quirks.hpp"

namespace kyso::pkcs11 {

namespace detail {
class Module;
class SessionPool;
}  // namespace detail

struct TokenInfo {
  std::string module_path;
  unsigned long slot_id = 0;
  std::string slot_description;
  std::string label;
  std::string serial;
  std::string manufacturer;
  std::string model;
  bool login_required = true;
  bool protected_auth_path = false;  ///< PIN pad or the token's own PIN dialog
  bool user_pin_initialized = true;
  bool pin_count_low = false;
  bool pin_final_try = false;
  bool pin_locked = false;
  bool pin_to_be_changed = false;
  bool write_protected = false;
  unsigned long min_pin = 0;
  unsigned long max_pin = 0;
  bool logged_in = false;        ///< Kyso's own login state for this token
  std::string firmware_version;  ///< "major.minor" from CK_TOKEN_INFO
};

void to_json(nlohmann::json& j, const TokenInfo& t);

class Token : public std::enable_shared_from_this<Token> {
 public:
  /// Made by Library; `module` is the loaded module, `slot` a slot with a token present,
  /// `identity` what names this physical token (module, serial, label), `quirks` the token
  /// profile's workarounds that match it (copied; nullptr: none).
  Token(std::shared_ptr<detail::Module> module, unsigned long slot, std::string identity,
        const TokenQuirks* quirks = nullptr);
  ~Token();
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;
  Token(Token&&) = delete;
  Token& operator=(Token&&) = delete;

  /// Reads the token's state afresh (flags, PIN counters). Throws Error(TokenRemoved).
  TokenInfo info();
  [[nodiscard]] const std::string& module_path() const noexcept;
  /// The module instance this token is reached through (a quarantined module's tokens are
  /// replaced by the fresh instance's).
  [[nodiscard]] const detail::Module* module() const noexcept { return module_.get(); }
  [[nodiscard]] const std::string& identity() const noexcept { return identity_; }
  [[nodiscard]] unsigned long slot() const noexcept { return slot_; }
  /// The quirks applied to this token, or nullptr.
  [[nodiscard]] const TokenQuirks* quirks() const noexcept { return quirks_ ? &*quirks_ : nullptr; }
  [[nodiscard]] bool logged_in() const noexcept { return logged_in_.load(); }
  /// What login() needs: None when logged in or the token needs no login.
  [[nodiscard]] AuthKind auth_required();

  /// Logs in once for all sessions. Checks the token's PIN flags first and refuses (without
  /// touching the PIN counter) when the PIN is locked, on its final try or must be changed;
  /// refuses a PIN that the token already rejected (PinRepeated); sends the PIN exactly once.
  /// `pin` == nullptr uses the protected authentication path (PIN pad).
  void login(const Secret* pin);
  void logout() noexcept;

  /// The credentials on this token: end-entity certificates with a CKA_ID, with the chain
  /// built from CA certificates on the same token. Read again only when the set of
  /// certificate objects (or the token's label) changed, or after the token was removed.
  std::vector<Credential> credentials();

  /// A signer for one of this token's credentials.
  std::shared_ptr<Signer> signer(const Credential& credential);

  /// Whether the private key whose CKA_ID is `key_id` carries CKA_ALWAYS_AUTHENTICATE (PIV slot
  /// 9C, qualified-signature cards): each signature then needs a C_Login(CKU_CONTEXT_SPECIFIC)
  /// between C_SignInit and C_Sign. Private keys are often visible only after login, so this
  /// is read (and cached) once the user is logged in. Throws Error(LoginRequired) before.
  bool always_authenticate(std::span<const std::uint8_t> key_id);

  /// Signs `digest` with the private key whose CKA_ID is `key_id`. Called by the token's
  /// signers; runs on the caller's thread on a session of its own. For a key with
  /// CKA_ALWAYS_AUTHENTICATE, `context_pin` is sent in a context-specific login right before
  /// the signature (nullptr: the PIN pad collects it); such signatures run one at a time, as
  /// the login covers only the next operation on the card.
  Bytes sign(std::span<const std::uint8_t> key_id, const CertificateInfo& cert, SignAlgorithm alg,
             std::span<const std::uint8_t> digest, SignatureEncoding enc,
             const Secret* context_pin = nullptr);

  /// What sign_run() made: the signatures of the first digests, in order, and the error that
  /// stopped the run at the next one, if any.
  struct Run {
    std::vector<Bytes> signatures;
    std::optional<Error> error;
  };
  /// Signs `digests` in order on one session of its own, all in one hand-off to the module's
  /// call pool, each C_SignInit and C_Sign under the signing deadline (sign() hands off each
  /// signature: two thread switches, and a wait for a CPU on a busy machine, while the token
  /// idles). Stops at the first digest that fails, with the error sign() would have thrown for
  /// it. A key with CKA_ALWAYS_AUTHENTICATE signs one digest (sign() without a PIN) per run.
  Run sign_run(std::span<const std::uint8_t> key_id, const CertificateInfo& cert, SignAlgorithm alg,
               std::span<const Bytes> digests, SignatureEncoding enc);

  /// Marks the token as removed: forgets the login, drops sessions and key handles.
  void mark_removed() noexcept;
  [[nodiscard]] bool removed() const noexcept { return removed_.load(); }
  /// Called by Library when the token is seen in a slot again (maybe another slot id).
  void reattach(unsigned long slot) noexcept;

 private:
  struct KeyInfo {
    unsigned long handle = 0;
    bool always_authenticate = false;
  };
  KeyInfo find_private_key(std::span<const std::uint8_t> key_id);
  void context_login(unsigned long session, const Secret* pin);
  /// `pin`'s tag; throws PinRepeated when the token rejected that PIN before (a wrong PIN is
  /// never sent twice). The caller holds login_mutex_.
  PinTagger::Tag tag_unless_rejected(const Secret& pin);
  /// C_Login of `user_type` on `session` with `pin` (nullptr: the token's PIN pad).
  unsigned long send_login(unsigned long session, unsigned long user_type, const Secret* pin);
  void forget_key(std::span<const std::uint8_t> key_id);
  /// After a signature's call failed with `e` (its session poisoned): throws the error to
  /// report, or returns when one more attempt with a fresh key handle may succeed.
  void sign_failed(const Error& e, std::span<const std::uint8_t> key_id, int attempt);
  bool session_logged_in();
  std::vector<unsigned long> mechanisms();

  std::shared_ptr<detail::Module> module_;
  std::string identity_;
  std::optional<TokenQuirks> quirks_;
  std::atomic<unsigned long> slot_;
  std::unique_ptr<detail::SessionPool> sessions_;
  std::atomic<bool> logged_in_{false};
  std::atomic<bool> removed_{false};
  std::atomic<bool> pin_pad_{false};  // as the token said at login (context-specific logins)
  std::mutex login_mutex_;
  // A rejected PIN, remembered without keeping the PIN itself.
  std::optional<PinTagger::Tag> failed_pin_tag_;
  PinTagger pin_tags_;
  unsigned long anchor_session_ = 0;  // keeps the login alive (closing all sessions logs out)
  std::mutex keys_mutex_;
  // Looked up on every signature: compare against the CKA_ID span without copying it.
  struct BytesLess {
    using is_transparent = void;
    bool operator()(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) const {
      return std::ranges::lexicographical_compare(a, b);
    }
  };
  std::map<Bytes, KeyInfo, BytesLess> key_handles_;
  std::mutex context_sign_mutex_;  // context-specific login + C_Sign, one pair at a time
  std::map<std::string, Bytes> credential_key_ids_;  // credential id -> CKA_ID
  std::optional<std::vector<unsigned long>> mechanisms_;
  /// credentials() as last read, with the certificate objects it came from.
  struct CachedCredentials {
    std::vector<unsigned long> handles;
    std::string label;
    std::vector<Credential> list;
  };
  std::optional<CachedCredentials> credentials_;  // under keys_mutex_
};

}  // namespace kyso::pkcs11
