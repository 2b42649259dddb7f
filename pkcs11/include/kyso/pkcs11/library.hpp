#pragma once
/// @file
/// Kyso's token layer: loads any number of PKCS#11 modules, finds the tokens in them and the
/// credentials (certificate + private key) on those tokens, and signs with them at the token's
/// own speed. Thread-safe: signing may run on several threads at once, each on its own session.

#include <chrono>
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

/// How long a call into a module may take before Kyso stops waiting for it and reports
/// TOKEN_UNRESPONSIVE (the module is then never called again, and a fresh copy of it is loaded
/// at the next token scan). Zero: the default, KYSO_PKCS11_TIMEOUT_MS from the environment
/// (quick and sign) or else the values below, generous for slow USB tokens.
struct CallTimeouts {
  std::chrono::milliseconds quick{0};  ///< state, sessions, objects, login: 30 s
  std::chrono::milliseconds sign{0};   ///< C_SignInit / C_Sign: 60 s
  std::chrono::milliseconds human{0};  ///< PIN pad, key generation, token init: 10 min
};

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
  CallTimeouts timeouts{};
};

/// The outcome of loading one module. A module that fails is reported; the others keep working.
struct ModuleStatus {
  std::string path;
  std::string source;  ///< "config", "p11-kit" or "known"
  bool loaded = false;
  std::string error;  ///< why it failed to load (empty when loaded)
  std::string manufacturer;
  std::string description;
  /// Times the module stopped answering and was loaded afresh (Library::tokens() updates it).
  int reloads = 0;
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

  [[nodiscard]] std::vector<ModuleStatus> modules() const;

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

  /// Replaces a quarantined module by a fresh instance (the module is left behind with its
  /// tokens); false when it cannot be loaded again (its tokens stay absent).
  bool revive(std::size_t index);

  std::vector<std::shared_ptr<detail::Module>> modules_;
  std::vector<std::size_t> module_status_;  // modules_[i]'s entry in status_
  CallTimeouts timeouts_;
  std::vector<TokenQuirks> quirks_;
  std::vector<ModuleStatus> status_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<Token>> known_tokens_;  // every token seen, present or not
};

}  // namespace kyso::pkcs11
