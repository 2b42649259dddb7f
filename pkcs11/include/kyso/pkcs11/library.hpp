#pragma once
/// @file
/// Kyso's token layer: loads any number of PKCS#11 modules, finds the tokens in them and the
/// credentials (certificate + private key) on those tokens, and signs with them at the token's
/// own speed. Thread-safe: signing may run on several threads at once, each on its own session.

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "kyso/core/signer.hpp"
#include "kyso/pkcs11/quirks.hpp"
#include "kyso/pkcs11/token.hpp"
#include "kyso/pkcs11/usb.hpp"

namespace kyso::pkcs11 {

/// Where modules come from. Tests set `paths` only; the agent and CLI use all three sources.
struct ModuleConfig {
  std::vector<std::string> paths;  ///< explicitly configured module paths, loaded first
  bool use_p11kit = true;          ///< modules registered with p11-kit (except trust modules)
  bool use_known = true;           ///< the known-token table's modules, if present
  /// The table for use_known (firmware-config's token profiles); empty: builtin_known_tokens().
  std::vector<KnownToken> known_tokens{};
  /// Known token quirks (firmware-config's token profiles); the first entry matching a token
  /// applies to it.
  std::vector<TokenQuirks> quirks{};
};

/// The outcome of loading one module. A module that fails is reported; the others keep working.
struct ModuleStatus {
  std::string path;
  std::string source;  ///< "config", "p11-kit" or "known"
  bool loaded = false;
  std::string error;  ///< why it failed to load (empty when loaded)
  std::string manufacturer;
  std::string description;
};

namespace detail {
class Module;
}

class Library {
 public:
  explicit Library(ModuleConfig config);
  ~Library();
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  Library(Library&&) = delete;
  Library& operator=(Library&&) = delete;

  [[nodiscard]] const std::vector<ModuleStatus>& modules() const noexcept { return status_; }

  /// The tokens present now (the slot list is read again on every call, so a token plugged in
  /// or removed since shows up). The same physical token keeps the same Token object, and with
  /// it its login state and sessions.
  std::vector<std::shared_ptr<Token>> tokens();

  /// Every credential on every present token.
  std::vector<Credential> credentials();

  /// A signer for the credential with this id (SHA-256 of its certificate).
  /// Throws Error(CredentialNotFound) when no present token holds it.
  std::shared_ptr<Signer> signer(std::string_view credential_id);

  /// Throws Error(TokenNotFound) when no present token has this serial (or label).
  std::shared_ptr<Token> token(std::string_view serial_or_label);

 private:
  /// Lists one module's present tokens into `present`; returns a known token of that module
  /// that came back after removal and whose quirks ask for re-initialization (nullptr: none).
  std::shared_ptr<Token> enumerate(const std::shared_ptr<detail::Module>& m,
                                   std::vector<std::shared_ptr<Token>>& present);

  std::vector<std::shared_ptr<detail::Module>> modules_;
  std::vector<TokenQuirks> quirks_;
  std::vector<ModuleStatus> status_;
  std::mutex mutex_;
  std::vector<std::shared_ptr<Token>> known_tokens_;  // every token seen, present or not
};

}  // namespace kyso::pkcs11
