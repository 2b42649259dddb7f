#pragma once
/// @file
/// Token administration for IT (`kyso provision`): initialize a token, set and unblock PINs,
/// generate key pairs on the token, read public keys, and write certificates. Every call goes
/// through the same checked-call layer as signing (module.hpp), so a failure is a typed Error.
/// Signing stays in Token; this is the part of PKCS#11 that changes what is on a token.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/core/bytes.hpp"
#include "kyso/core/secret.hpp"

namespace kyso::pkcs11 {

namespace detail {
class Module;
}

/// One slot with a token present, initialized or not.
struct SlotState {
  unsigned long slot_id = 0;
  std::string label;
  std::string serial;
  std::string model;
  bool initialized = false;           ///< CKF_TOKEN_INITIALIZED
  bool user_pin_initialized = false;  ///< CKF_USER_PIN_INITIALIZED
  bool user_pin_locked = false;
  bool so_pin_locked = false;
  unsigned long min_pin = 0;
  unsigned long max_pin = 0;
};

enum class KeyAlgorithm { Rsa2048, Rsa3072, EcP256 };
/// "rsa2048", "rsa3072", "ec-p256"
std::string_view to_string(KeyAlgorithm alg) noexcept;
std::optional<KeyAlgorithm> parse_key_algorithm(std::string_view name) noexcept;

/// A key pair on the token, found by its CKA_ID.
struct KeyPairInfo {
  Bytes id;              ///< CKA_ID, shared by the private key, the public key and the certificate
  std::string label;     ///< CKA_LABEL, the same on all three
  std::string key_type;  ///< "RSA" or "EC"
  Bytes spki;            ///< DER SubjectPublicKeyInfo (empty if the token hides the public key)
};

/// A certificate object on the token.
struct CertObject {
  Bytes id;
  std::string label;
  Bytes der;
};

class AdminSession;

/// The administration side of one PKCS#11 module.
class Admin {
 public:
  /// Loads the module (the process-wide shared instance Library uses as well).
  explicit Admin(const std::string& module_path);
  ~Admin();
  Admin(const Admin&) = delete;
  Admin& operator=(const Admin&) = delete;
  Admin(Admin&&) = delete;
  Admin& operator=(Admin&&) = delete;

  /// Slots with a token present, including blank (uninitialized) ones.
  std::vector<SlotState> slots();
  /// C_InitToken: erases the token and sets its label and SO PIN. The token may move to
  /// another slot id afterwards (SoftHSM does); find it again by label with slots().
  void init_token(unsigned long slot, const Secret& so_pin, std::string_view label);
  /// Opens a read-write session on a slot.
  AdminSession open(unsigned long slot);

  [[nodiscard]] const std::string& module_path() const noexcept;

 private:
  std::shared_ptr<detail::Module> module_;
};

/// A read-write session; logs out and closes on destruction.
class AdminSession {
 public:
  AdminSession(std::shared_ptr<detail::Module> module, unsigned long slot);
  ~AdminSession();
  AdminSession(const AdminSession&) = delete;
  AdminSession& operator=(const AdminSession&) = delete;
  AdminSession(AdminSession&& other) noexcept;
  AdminSession& operator=(AdminSession&&) = delete;

  void login_so(const Secret& so_pin);
  void login_user(const Secret& pin);
  void logout() noexcept;
  /// C_InitPIN (SO logged in): sets a first user PIN, or unblocks a locked one.
  void init_user_pin(const Secret& new_pin);
  /// C_SetPIN for whoever is logged in (user: the user PIN; SO: the SO PIN).
  void set_pin(const Secret& old_pin, const Secret& new_pin);

  /// C_GenerateKeyPair on the token: private key sensitive, never extractable, for signing;
  /// both halves carry `id` and `label`. Returns the public key as read back from the token.
  KeyPairInfo generate_key_pair(KeyAlgorithm alg, std::span<const std::uint8_t> id,
                                std::string_view label);
  /// Key pairs on the token (private keys, with the public key of the same CKA_ID).
  std::vector<KeyPairInfo> key_pairs();
  /// The private key whose public key is `spki`, if any.
  std::optional<KeyPairInfo> find_key_pair(std::span<const std::uint8_t> spki);
  std::vector<CertObject> certificates();
  /// C_CreateObject for an X.509 certificate (a token object, public).
  void import_certificate(std::span<const std::uint8_t> der, std::span<const std::uint8_t> id,
                          std::string_view label, bool is_ca);

  [[nodiscard]] unsigned long handle() const noexcept { return session_; }

 private:
  std::shared_ptr<detail::Module> module_;
  unsigned long session_ = 0;
  bool logged_in_ = false;
};

}  // namespace kyso::pkcs11
