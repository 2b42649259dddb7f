#pragma once
/// @file
/// What the agent does, without the WebSocket: lists credentials for a role, asks the user in
/// the agent's own dialog, logs in once and signs, writes the audit log. Blocking: the server
/// calls it from its worker pool, never from an io thread. Thread-safe.

#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "kyso/agent/audit.hpp"
#include "kyso/agent/items.hpp"
#include "kyso/agent/pairing.hpp"
#include "kyso/agent/pinentry.hpp"
#include "kyso/core/roles.hpp"
#include "kyso/core/signer.hpp"
#include "kyso/core/version.hpp"
#include "kyso/firmware_config/agent_config.hpp"
#include "kyso/pkcs11/library.hpp"
#include "kyso/pkcs11/usb.hpp"

namespace kyso::agent {

inline const std::string_view kAgentVersion = kyso::version();  // PROJECT_VERSION
inline constexpr int kProtocolVersion = 1;

/// One thing to sign: a pre-computed hash, or a document (xml, pdf, cms; items.hpp).
struct Item {
  HashAlgorithm hash_algorithm = HashAlgorithm::Sha256;
  /// The hash to sign; for a document, its SHA-256: what the approval covers.
  Bytes digest;
  std::string title;  ///< shown in the dialog, already cleaned of control characters
  ItemType type = ItemType::Hash;
  std::shared_ptr<const DocumentItem> document;  ///< set for xml, pdf and cms
};

/// Parses a protocol item (docs/protocol.md, "Items"). `transfers` resolves a document's
/// `uploadId`. Throws Error(BadRequest), Error(DigestInvalid) for a wrong digest length,
/// Error(UploadNotFound) / Error(DocumentTooLarge) for documents.
Item parse_item(const nlohmann::json& j, Transfers* transfers = nullptr);

/// A signing request as the user will approve it.
struct SignJob {
  std::string origin;
  Role role = Role::Teacher;
  std::optional<std::string> credential_id;
  std::optional<SignAlgorithm> algorithm;
  SignatureEncoding encoding = SignatureEncoding::Der;
  std::vector<Item> items;
  bool batch = false;
  Language language = Language::Vi;
  /// Where signed documents are written (the connection's transfer directory).
  std::filesystem::path scratch;
};

struct SignOutcome {
  Credential credential;
  SignAlgorithm algorithm = SignAlgorithm::RsaPkcs1Sha256;
  std::vector<SignResult> results;  ///< one per item, in order
  /// Document jobs: the signed document of each item that succeeded.
  std::vector<std::optional<DocumentOutput>> documents;
  bool cancelled = false;
};

/// The error's wire form: {"code", "message": {"vi", "en"}, "retriable", "detail"?}.
nlohmann::json error_json(const Error& e);

/// Which token a credential lives on, for logging out after a job (no token: a remote
/// credential, source.kind "remote").
struct Located {
  std::shared_ptr<pkcs11::Token> token;
  Credential credential;
};

class RemoteSources;

class Service {
 public:
  /// Called after each item: index, its result.
  using Progress = std::function<void(std::size_t, const SignResult&)>;

  explicit Service(firmware_config::AgentConfig config);
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  Service(Service&&) = delete;
  Service& operator=(Service&&) = delete;

  [[nodiscard]] const firmware_config::AgentConfig& config() const noexcept { return config_; }
  [[nodiscard]] pkcs11::Library& library() noexcept { return *library_; }
  /// The USB tokens the agent knows (IT's token profiles, else the built-in table): their
  /// modules are loaded when installed, and a plugged-in one without its module is diagnosed.
  [[nodiscard]] const std::vector<pkcs11::KnownToken>& known_tokens() const noexcept {
    return known_tokens_;
  }
  [[nodiscard]] PairingStore& pairings() noexcept { return pairings_; }
  [[nodiscard]] AuditLog& audit() noexcept { return *audit_; }

  /// IT's allow-list, compared in normalize_origin()'s form.
  [[nodiscard]] bool allow_listed(std::string_view origin) const;
  /// Allow-listed or paired by the user.
  [[nodiscard]] bool trusted(std::string_view origin) const;

  /// `credentials.list` params -> result. With `signIn: true` the remote services not signed
  /// in ask for their password first (the agent's dialog, naming `origin`).
  nlohmann::json list_credentials(const nlohmann::json& params, const std::string& origin = {},
                                  Language lang = Language::Vi);

  /// Shows the pairing dialog with `code`; stores the pairing when the user confirms.
  /// Throws Error(UserCancelled), Error(Timeout).
  void pair(const std::string& origin, const std::string& code, Language lang,
            const std::atomic<bool>* abort);

  /// Chooses the credential, checks it, asks for approval and the PIN, logs in once, signs
  /// every item in order (stopping at `cancel`), logs out. Throws for errors that stop the job
  /// before the first signature; item errors are in the outcome.
  SignOutcome sign(const SignJob& job, const std::atomic<bool>& cancel, const Progress& progress);

  /// One approval or signing job at a time (one dialog on screen, one user).
  bool try_begin_job() noexcept;
  void end_job() noexcept;

  /// Records a refusal that happened outside a job (refused upgrade, unpaired origin).
  void audit_refusal(const std::string& origin, const std::string& role, ErrorCode code,
                     const std::string& detail) noexcept;

  /// The role's credentials among those present; `why_none` says what is missing when empty.
  std::vector<Located> credentials_for(Role role, std::string* why_none);

 private:
  Located choose(const SignJob& job, const std::atomic<bool>* cancel);
  /// Document items (items.cpp): same approval, each document signed through formats/.
  SignOutcome sign_documents(const SignJob& job, const std::atomic<bool>& cancel,
                             const Progress& progress);
  /// Before the user is asked anything: validity dates and key usage (throws CertNotYetValid,
  /// CertExpired, CertKeyUsage), then the chain to IT's trust anchors and revocation (OCSP, CRL)
  /// when anchors are configured, throwing the first problem under the refuse policy and
  /// logging it under warn.
  void check_certificate(const Credential& cred);
  /// The job's algorithm, or the key's default with `hash` (SHA-256 when none is fixed); it must
  /// use `hash` when one is fixed and be one the credential offers (BadRequest,
  /// AlgorithmUnsupported).
  static SignAlgorithm choose_algorithm(const SignJob& job, const Credential& cred,
                                        std::optional<HashAlgorithm> hash);
  Dialog sign_dialog(const SignJob& job, const Credential& cred, bool with_pin) const;
  /// Records the user's approval of exactly `digests` (their concatenation's SHA-256);
  /// `how` names the algorithm and, for remote jobs, the service.
  void audit_approval(const SignJob& job, const Credential& cred, std::span<const Bytes> digests,
                      const std::string& how);
  /// Records a job refused before its first signature (never throws).
  void audit_job_refusal(const SignJob& job, const Error& e,
                         const std::string& credential_id) noexcept;
  /// The user's approval in the agent's dialog, with the PIN when the token wants one, then
  /// exactly one login for exactly `digests` (a wrong PIN is never retried). A refusal is
  /// audited and rethrown. Shared by hash and document jobs.
  void approve_and_log_in(const SignJob& job, const Credential& cred, Signer& signer,
                          std::span<const Bytes> digests, const std::atomic<bool>& cancel);
  // Remote credentials (remote_source.cpp): sign in to the services not signed in (true when
  // one was), and a job on a remote credential after the common checks.
  bool sign_in_remote(const std::string& origin, Language lang, const std::atomic<bool>* cancel);
  SignOutcome sign_remote(const SignJob& job, SignOutcome out, const std::atomic<bool>& cancel,
                          const Progress& progress);

  firmware_config::AgentConfig config_;
  std::vector<pkcs11::KnownToken> known_tokens_;
  std::unique_ptr<pkcs11::Library> library_;
  PairingStore pairings_;
  std::unique_ptr<AuditLog> audit_;
  Pinentry pinentry_;
  std::unique_ptr<RemoteSources> remote_;
  std::atomic<bool> busy_{false};
};

}  // namespace kyso::agent
