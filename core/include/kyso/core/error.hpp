#pragma once
/// @file
/// Kyso's error model. Every failure a person or a web app can see carries a stable symbolic
/// code (the wire name, e.g. "PIN_LOCKED"), a Vietnamese and an English message that say what to
/// do, and whether trying again can help. Codes are mapped to names and messages in exactly one
/// place (error.cpp).

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace kyso {

enum class Language { Vi, En };

/// Parses "vi" / "en" (anything else: Vietnamese, the default for users).
Language parse_language(std::string_view s) noexcept;

enum class ErrorCode {
  // Requests and configuration
  BadRequest,
  NotSupported,
  ConfigInvalid,
  Internal,
  // Modules, tokens and PINs
  ModuleLoadFailed,
  ModuleNotInstalled,
  TokenNotFound,
  TokenRemoved,
  TokenUnresponsive,
  TokenError,
  LoginRequired,
  PinIncorrect,
  PinRepeated,
  PinLocked,
  PinFinalTry,
  PinMustChange,
  PinInvalid,
  CredentialNotFound,
  KeyNotFound,
  AlgorithmUnsupported,
  DigestInvalid,
  // Certificates
  CertInvalid,
  CertExpired,
  CertNotYetValid,
  CertRevoked,
  CertUntrusted,
  CertKeyUsage,
  CertRevocationUnknown,
  // Agent and users
  OriginForbidden,
  OriginNotPaired,
  UserCancelled,
  Busy,
  PairCooldown,
  Timeout,
  RoleNoCredential,
  RoleMismatch,
  BatchLimit,
  // Remote signing
  RemoteUnreachable,
  RemoteAuthFailed,
  RemoteError,
  OtpIncorrect,
  RemoteLocked,
  // Documents and timestamps
  DocumentInvalid,
  DocumentEncrypted,
  TsaUnavailable,
  TsaError,
  TsaNotConfigured,
  FormatsUnavailable,
  // Document transfers (agent uploads and downloads)
  DocumentTooLarge,
  UploadNotFound,
  UploadMismatch,
  // Two-phase signing (a server prepares, the signature is embedded later)
  PreparedStateInvalid,
  SignatureMismatch,
  CertificateMismatch,
  // Signing files from the command line (kyso sign)
  OutputExists,
};

/// The stable wire name, e.g. ErrorCode::PinLocked -> "PIN_LOCKED".
std::string_view code_name(ErrorCode code) noexcept;
/// The reverse of code_name; nullopt for an unknown name.
std::optional<ErrorCode> code_from_name(std::string_view name) noexcept;
/// What a person reads: what happened and what to do, in the given language.
std::string_view message(ErrorCode code, Language lang) noexcept;
/// Retriable errors may succeed when the user acts (re-inserts the token, types the PIN again,
/// the network comes back); the others are configuration or programming faults.
bool is_retriable(ErrorCode code) noexcept;

/// The one exception type Kyso's libraries throw. `detail` is for logs and support (English,
/// technical, never a secret); `message()` is for people.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, std::string detail);
  /// A PKCS#11 failure: keeps the return value and the call for diagnosis.
  Error(ErrorCode code, std::string detail, unsigned long ck_rv, std::string call);

  [[nodiscard]] ErrorCode code() const noexcept { return code_; }
  [[nodiscard]] const std::string& detail() const noexcept { return detail_; }
  [[nodiscard]] std::string_view name() const noexcept { return code_name(code_); }
  [[nodiscard]] std::string_view message(Language lang) const noexcept {
    return kyso::message(code_, lang);
  }
  [[nodiscard]] bool retriable() const noexcept { return is_retriable(code_); }
  [[nodiscard]] std::optional<unsigned long> ck_rv() const noexcept { return ck_rv_; }
  [[nodiscard]] const std::string& call() const noexcept { return call_; }

 private:
  ErrorCode code_;
  std::string detail_;
  std::optional<unsigned long> ck_rv_;
  std::string call_;
};

}  // namespace kyso
